//! Reads by something other than a primary key, as the batch sees them: the committed rows from
//! SQL, with this batch's changes laid over them (`merge`). SQL holds the state the batch started
//! from (nothing is written before commit), so a committed row the batch changed is replaced by
//! its dirty entry, and dirty rows that SQL does not know are added.

use super::unit::UnitOfWork;
use super::Prefetch;
use mcp_events::{Role, StoreError};
use mcp_projections::queries;
use mcp_projections::rows::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a user may draw credentials from: memberships (with organization names) and the active
/// integrations of the user and of their organizations.
#[derive(Debug, Clone)]
pub struct UserAccess {
    pub memberships: Vec<(MembershipRow, String)>,
    /// Each membership's role by organization id, parsed once (unknown role names left out).
    pub roles: BTreeMap<i64, Role>,
    pub candidates: Vec<IntegrationRow>,
}

impl UnitOfWork {
    /// Loads the tokens and leases a batch's commands will read, one query per table, into the
    /// batch's clean entries (what the batch already has is left alone).
    pub async fn prefetch(&mut self, mut wanted: Prefetch) -> Result<(), StoreError> {
        wanted
            .token_hashes
            .retain(|hash| self.token_id(hash).is_none());
        wanted.token_hashes.sort_unstable();
        wanted.token_hashes.dedup();
        if !wanted.token_hashes.is_empty() {
            let tokens = queries::rows_where_in::<TokenRow>(
                self.tx().conn(),
                "token_hash",
                &wanted.token_hashes,
            )
            .await;
            for token in self.noted(tokens)? {
                self.remember_token(&token);
            }
        }
        wanted
            .lease_ids
            .retain(|id| !self.has_row::<LeaseRow>(&[Cell::Text(Some(id.clone()))]));
        wanted.lease_ids.sort_unstable();
        wanted.lease_ids.dedup();
        if !wanted.lease_ids.is_empty() {
            let leases =
                queries::rows_where_in::<LeaseRow>(self.tx().conn(), "id", &wanted.lease_ids).await;
            for lease in self.noted(leases)? {
                self.remember_clean(&lease);
            }
        }
        Ok(())
    }

    /// Committed rows merged with this batch's changes to the same table: those that satisfy
    /// `keep`, in key order. The committed rows must include every row that satisfies `keep`
    /// (the SQL query may select more).
    fn merge<R: TableRow>(&self, committed: Vec<R>, keep: impl Fn(&R) -> bool) -> Vec<R> {
        let dirty = self.dirty_rows::<R>();
        let mut rows: BTreeMap<Vec<Cell>, R> = committed
            .into_iter()
            .filter(&keep)
            .map(|row| (row.key(), row))
            .collect();

        for (key, row) in dirty {
            rows.remove(&key);
            if let Some(row) = row.filter(&keep) {
                rows.insert(key, row);
            }
        }
        rows.into_values().collect()
    }

    /// Up to `limit` secrets sealed with `key_id`, in key order, as this batch sees them.
    pub async fn secrets_sealed_with(
        &mut self,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<SecretRow>, StoreError> {
        // Rows this batch changed may no longer qualify: read enough to fill `limit` without them.
        let wanted = limit + self.dirty_count(SecretRow::TABLE) as i64;
        let found = queries::secrets_sealed_with(self.tx().conn(), key_id, wanted).await;
        let committed = self.noted(found)?;
        for row in &committed {
            self.remember_clean(row);
        }
        let mut rows = self.merge(committed, |row: &SecretRow| row.key_id == key_id);
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(rows)
    }

    /// A token by its hash.
    pub async fn token_by_hash(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        if let Some(id) = self.token_id(token_hash) {
            // A token issued by a command that was rolled back may have left its hash behind.
            if let Some(row) = self.get::<TokenRow>(vec![Cell::Int(Some(id))]).await? {
                if row.token_hash == token_hash {
                    return Ok(Some(row));
                }
            }
        }
        let found = queries::token_by_hash(self.tx().conn(), token_hash).await;
        let Some(committed) = self.noted(found)? else {
            return Ok(None);
        };
        self.remember_token(&committed);
        // The batch may have changed it since (a use, a revocation).
        self.get::<TokenRow>(committed.key()).await
    }

    /// The user with this e-mail address (compared case-insensitively). Users are never deleted
    /// and never change address.
    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let same = |user: &UserRow| user.email.eq_ignore_ascii_case(email);
        if let Some((_, Some(user))) = self
            .dirty_rows::<UserRow>()
            .into_iter()
            .find(|(_, row)| row.as_ref().is_some_and(same))
        {
            return Ok(Some(user));
        }
        let found = queries::user_by_email(self.tx().conn(), email).await;
        self.noted(found)
    }

    /// A user's memberships and the active integrations they may draw on.
    pub async fn access_of(&mut self, user_id: i64) -> Result<Arc<UserAccess>, StoreError> {
        if let Some(access) = self.cached_access(user_id) {
            return Ok(access);
        }
        let committed = queries::memberships_of_user(self.tx().conn(), user_id).await;
        let committed = self.noted(committed)?;
        let memberships = self.merge(committed, |m: &MembershipRow| m.user_id == user_id);
        let mut named = Vec::with_capacity(memberships.len());
        for membership in memberships {
            let organization = self
                .get::<OrganizationRow>(vec![Cell::Int(Some(membership.organization_id))])
                .await?;
            let name = organization.map(|o| o.name).unwrap_or_default();
            named.push((membership, name));
        }
        let organizations: Vec<i64> = named.iter().map(|(m, _)| m.organization_id).collect();
        let mut committed = {
            let personal = queries::integrations_of_user(self.tx().conn(), user_id).await;
            self.noted(personal)?
        };
        for organization_id in &organizations {
            let shared =
                queries::integrations_of_organization(self.tx().conn(), *organization_id).await;
            committed.extend(self.noted(shared)?);
        }
        let candidates = self.merge(committed, |i: &IntegrationRow| {
            i.status == "active"
                && (i.user_id == Some(user_id)
                    || i.organization_id
                        .is_some_and(|o| organizations.contains(&o)))
        });
        let roles = named
            .iter()
            .filter_map(|(m, _)| Role::parse(&m.role).map(|role| (m.organization_id, role)))
            .collect();
        let access = Arc::new(UserAccess {
            memberships: named,
            roles,
            candidates,
        });
        self.cache_access(user_id, access.clone());
        Ok(access)
    }

    /// Leases past their expiry at `now` with no revocation or expiry recorded, oldest first
    /// (then by id), at most `limit`.
    pub async fn leases_due(&mut self, now: i64, limit: i64) -> Result<Vec<LeaseRow>, StoreError> {
        // Each lease this batch changed can drop out of SQL's answer: ask for that many more.
        let extra = self.dirty_count(LeaseRow::TABLE) as i64;
        let committed = queries::leases_due_for_expiry(self.tx().conn(), now, limit + extra).await;
        let committed = self.noted(committed)?;
        for lease in &committed {
            self.remember_clean(lease);
        }
        let mut due = self.merge(committed, |l: &LeaseRow| {
            l.expires_at <= now && l.revoked_at.is_none() && l.expired_at.is_none()
        });
        due.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
        due.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(due)
    }
}

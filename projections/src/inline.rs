//! The inline path: projections updated inside the append transaction, batch by batch.
//!
//! Within one write transaction (which holds the ledger lock, so nobody else writes these
//! tables) rows read or written are cached. The rows every request changes — tokens (a use
//! each), leases and audit records — are not written one by one but kept in the cache and
//! written in multi-row statements just before commit; the other tables are written through.
//! Commands therefore read tokens and leases through this batch (`token_by_hash`, `get`), never
//! straight from SQL. Rolling a command back to its savepoint replays an undo log over the
//! cache and drops the audit records it added; the savepoint undoes its written-through rows.
//!
//! The writer keeps a batch from one transaction to the next while nobody else appends (it
//! decides when to drop it); everything buffered is written at each commit, so what is kept is
//! only a read cache.

use crate::rows::{AuditRow, Cell, IntegrationRow, LeaseRow, MembershipRow, TableRow, TokenRow};
use crate::store::{bulk_insert, bulk_upsert, Rows, SqlRows};
use mcp_events::{RecordedEvent, Role};
use sqlx::AnyConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Above this many cached rows a batch is too large to keep after its commit (bounded memory).
const MAX_CACHED_ROWS: usize = 50_000;

type Key = (&'static str, Vec<Cell>);
/// A cache entry as it was before a command changed it: (key, previous entry, was dirty).
type Undo = (Key, Option<Option<Vec<Cell>>>, bool);

/// What a user may draw credentials from: memberships (with organization names) and the active
/// integrations of the user and their organizations, as `queries` reads them.
#[derive(Debug, Clone)]
pub struct UserAccess {
    pub memberships: Vec<(MembershipRow, String)>,
    /// Each membership's role by organization id, parsed once (unknown role names left out).
    pub roles: BTreeMap<i64, Role>,
    pub candidates: Vec<IntegrationRow>,
}

#[derive(Default)]
pub struct InlineBatch {
    cache: HashMap<Key, Option<Vec<Cell>>>,
    /// Token keys by token hash (a token's hash never changes).
    token_keys: HashMap<String, Key>,
    /// Users' access, dropped whenever a written-through (directory) table changes.
    access: HashMap<i64, Arc<UserAccess>>,
    /// Cached rows not yet written (tokens and leases only).
    dirty: HashSet<Key>,
    audit: Vec<Vec<Cell>>,
    /// What the running command changed in the cache: (key, previous entry, was dirty).
    undo: Vec<Undo>,
    /// Whether the running command may write tables through (it has a SQL savepoint).
    table_writes_refused: bool,
}

fn deferred(table: &str) -> bool {
    table == TokenRow::TABLE || table == LeaseRow::TABLE
}

/// Where a command's projection changes start, to undo them if it fails.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

impl InlineBatch {
    /// Whether the cache has grown past what is worth keeping for the next transaction.
    pub fn is_oversized(&self) -> bool {
        self.cache.len() > MAX_CACHED_ROWS
    }

    /// Whether the running command may write the written-through tables (see `Command`).
    pub fn allow_table_writes(&mut self, allowed: bool) {
        self.table_writes_refused = !allowed;
    }

    /// Starts a command: what it changes from here on can be undone.
    pub fn mark(&mut self) -> Mark {
        self.undo.clear();
        Mark(self.audit.len())
    }

    /// Undoes the projection changes of a command that failed after `mark` (its SQL writes are
    /// undone by the savepoint).
    pub fn rollback(&mut self, mark: Mark) {
        self.audit.truncate(mark.0);
        self.access.clear();
        while let Some((key, previous, was_dirty)) = self.undo.pop() {
            match previous {
                Some(entry) => self.cache.insert(key.clone(), entry),
                None => self.cache.remove(&key),
            };
            if was_dirty {
                self.dirty.insert(key);
            } else {
                self.dirty.remove(&key);
            }
        }
    }

    /// Refuses a write to a written-through table when the running command may not make one.
    pub fn check_table_write(&self, table: &str) -> Result<(), sqlx::Error> {
        if self.table_writes_refused {
            return Err(sqlx::Error::Protocol(format!(
                "a command declared WRITES_TABLES = false but wrote {table}"
            )));
        }
        Ok(())
    }

    fn remember(&mut self, key: &Key) {
        let previous = self.cache.get(key).cloned();
        let was_dirty = self.dirty.contains(key);
        self.undo.push((key.clone(), previous, was_dirty));
    }

    /// A token by its hash, as this batch sees it.
    pub async fn token_by_hash(
        &mut self,
        conn: &mut AnyConnection,
        token_hash: &str,
    ) -> Result<Option<TokenRow>, sqlx::Error> {
        if let Some(entry) = self
            .token_keys
            .get(token_hash)
            .and_then(|k| self.cache.get(k))
        {
            return Ok(entry.clone().map(TokenRow::from_cells));
        }
        let row = crate::queries::token_by_hash(conn, token_hash).await?;
        if let Some(token) = &row {
            let key = (TokenRow::TABLE, token.key());
            self.token_keys
                .insert(token.token_hash.clone(), key.clone());
            // A cached version of that token (changed in this batch) wins over the stored one.
            if let Some(cached) = self.cache.get(&key) {
                return Ok(cached.clone().map(TokenRow::from_cells));
            }
            self.cache.insert(key, Some(token.cells()));
        }
        Ok(row)
    }

    /// A user's memberships and candidate integrations, as this batch sees them.
    pub async fn access_of(
        &mut self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<Arc<UserAccess>, sqlx::Error> {
        if let Some(access) = self.access.get(&user_id) {
            return Ok(access.clone());
        }
        let memberships = crate::queries::memberships_of_user(&mut *conn, user_id).await?;
        let roles = memberships
            .iter()
            .filter_map(|(m, _)| Role::parse(&m.role).map(|role| (m.organization_id, role)))
            .collect();
        let access = Arc::new(UserAccess {
            memberships,
            roles,
            candidates: crate::queries::candidate_integrations(conn, user_id).await?,
        });
        self.access.insert(user_id, access.clone());
        Ok(access)
    }

    /// A row by primary key, as this batch sees it.
    pub async fn get<R: TableRow>(
        &mut self,
        conn: &mut AnyConnection,
        key: Vec<Cell>,
    ) -> Result<Option<R>, sqlx::Error> {
        CachedRows {
            sql: SqlRows::new(conn, ""),
            batch: self,
        }
        .get(key)
        .await
    }

    /// Writes the deferred rows changed so far (before a savepoint, and before commit).
    pub async fn write_deferred(&mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut tokens = Vec::new();
        let mut leases = Vec::new();
        for key in dirty {
            if let Some(Some(cells)) = self.cache.get(&key) {
                if key.0 == TokenRow::TABLE {
                    tokens.push(cells.clone());
                } else {
                    leases.push(cells.clone());
                }
            }
        }
        bulk_upsert::<TokenRow>(conn, tokens).await?;
        bulk_upsert::<LeaseRow>(conn, leases).await
    }

    pub async fn apply(
        &mut self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        let mut rows = CachedRows {
            sql: SqlRows::new(conn, ""),
            batch: self,
        };
        for event in events {
            crate::fold::apply(&mut rows, event).await?;
        }
        Ok(())
    }

    /// Writes everything buffered; call once, just before commit.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.write_deferred(conn).await?;
        bulk_insert::<AuditRow>(conn, "", std::mem::take(&mut self.audit)).await
    }
}

struct CachedRows<'c, 'b> {
    sql: SqlRows<'c>,
    batch: &'b mut InlineBatch,
}

impl Rows for CachedRows<'_, '_> {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error> {
        if let Some(cached) = self.batch.cache.get(&(R::TABLE, key.clone())) {
            return Ok(cached.clone().map(R::from_cells));
        }
        let row = self.sql.get::<R>(key.clone()).await?;
        self.batch
            .cache
            .insert((R::TABLE, key), row.as_ref().map(R::cells));
        Ok(row)
    }

    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error> {
        if R::TABLE == AuditRow::TABLE {
            self.batch.audit.push(row.cells());
            return Ok(());
        }
        let cells = row.cells();
        let key = (R::TABLE, cells[..R::KEY_LEN].to_vec());
        self.batch.remember(&key);
        if deferred(R::TABLE) {
            self.batch.dirty.insert(key.clone());
        } else {
            self.batch.check_table_write(R::TABLE)?;
            self.batch.access.clear();
            self.sql.put(row).await?;
        }
        if R::TABLE == TokenRow::TABLE && !self.batch.cache.contains_key(&key) {
            let token = TokenRow::from_cells(cells.clone());
            self.batch.token_keys.insert(token.token_hash, key.clone());
        }
        self.batch.cache.insert(key, Some(cells));
        Ok(())
    }

    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error> {
        assert!(!deferred(R::TABLE), "tokens and leases are never deleted");
        self.batch.check_table_write(R::TABLE)?;
        self.batch.access.clear();
        self.sql.delete::<R>(key.clone()).await?;
        let key = (R::TABLE, key);
        self.batch.remember(&key);
        self.batch.cache.insert(key, None);
        Ok(())
    }
}

//! Operators' lease commands (`mcp-manager lease revoke`): revoke leases of any user, a batch
//! at a time, as the API's revocations do (`lease_revoked`, one per lease).

use crate::domain::lease::{Lease, LeaseCommand};
use crate::ledger::{Command, CommandError, Ctx, Prefetch};
use crate::validate::looks_like_lease_id;
use mcp_events::{ExpectedVersion, Metadata, StreamId};

/// Revokes the named leases that are not revoked yet; ids that name no lease are reported, not
/// refused, so one stale id does not stop a batch.
pub struct RevokeLeases {
    pub lease_ids: Vec<String>,
    pub reason: Option<String>,
    pub metadata: Metadata,
}

/// What a batch of revocations did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Leases this command revoked.
    pub revoked: Vec<String>,
    /// Leases that were revoked already (nothing recorded for them).
    pub already_revoked: Vec<String>,
    /// Ids that name no lease.
    pub unknown: Vec<String>,
}

impl Command for RevokeLeases {
    type Output = Revoked;

    fn prefetch(&self, wanted: &mut Prefetch) {
        let ids = self.lease_ids.iter().filter(|id| looks_like_lease_id(id));
        wanted.lease_ids.extend(ids.cloned());
    }

    async fn execute(&self, ctx: &mut Ctx) -> Result<Revoked, CommandError> {
        let mut outcome = Revoked::default();
        for lease_id in &self.lease_ids {
            // An id that cannot be a lease id is never looked up (as the API does).
            let row = if looks_like_lease_id(lease_id) {
                ctx.lease(lease_id).await?
            } else {
                None
            };
            let Some(row) = row else {
                outcome.unknown.push(lease_id.clone());
                continue;
            };
            let command = LeaseCommand::RevokeByOperator {
                reason: self.reason.clone(),
            };
            let events = Lease::from_row(&row).decide(command, ctx.now())?;
            if events.is_empty() {
                outcome.already_revoked.push(lease_id.clone());
                continue;
            }
            ctx.append(
                &StreamId::lease(lease_id),
                ExpectedVersion::Exact(row.version),
                &events,
                &self.metadata,
            )
            .await?;
            outcome.revoked.push(lease_id.clone());
        }
        Ok(outcome)
    }
}

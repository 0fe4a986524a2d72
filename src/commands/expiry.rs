//! The background expirer's command: record `lease_expired` for leases past their expiry.

use super::{Command, CommandError};
use crate::domain::lease::{Lease, LeaseCommand};
use crate::ledger::Ctx;
use mcp_events::{ExpectedVersion, Metadata, StreamId};
use mcp_projections::queries;

pub struct ExpireDueLeases {
    /// At most this many per run, so one run never holds the ledger lock for long.
    pub limit: i64,
}

impl Command for ExpireDueLeases {
    /// How many leases were marked expired.
    type Output = usize;
    const WRITES_TABLES: bool = false;

    async fn execute(self, ctx: &mut Ctx) -> Result<usize, CommandError> {
        let now = ctx.now().as_micros();
        let due = queries::leases_due_for_expiry(ctx.conn(), now, self.limit).await?;
        let metadata = Metadata::actor("expirer");
        let mut expired = 0;
        for lease_id in due {
            let stream = StreamId::lease(&lease_id);
            let (lease, version) = ctx.load::<Lease>(&stream).await?;
            let events = lease.decide(LeaseCommand::Expire, ctx.now())?;
            expired += events.len();
            ctx.append(&stream, ExpectedVersion::Exact(version), &events, &metadata)
                .await?;
        }
        Ok(expired)
    }
}

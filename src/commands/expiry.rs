//! The background expirer's command: record `lease_expired` for leases past their expiry.

use crate::domain::lease::{Lease, LeaseCommand};
use crate::ledger::Ctx;
use crate::ledger::{Command, CommandError};
use mcp_events::{ExpectedVersion, Metadata, StreamId};

pub struct ExpireDueLeases {
    /// At most this many per run, so one run never holds the ledger lock for long.
    pub limit: i64,
}

impl Command for ExpireDueLeases {
    /// How many leases were marked expired.
    type Output = usize;

    async fn execute(&self, ctx: &mut Ctx) -> Result<usize, CommandError> {
        let due = ctx.leases_due(self.limit).await?;
        let metadata = Metadata::actor("expirer");
        let mut expired = 0;
        for row in due {
            let lease = Lease::from_row(&row);
            let events = lease.decide(LeaseCommand::Expire, ctx.now())?;
            expired += events.len();
            let stream = StreamId::lease(&row.id);
            ctx.append(
                &stream,
                ExpectedVersion::Exact(row.version),
                &events,
                &metadata,
            )
            .await?;
        }
        Ok(expired)
    }
}

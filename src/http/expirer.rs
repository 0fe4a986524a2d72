//! The background expirer: every interval, record `lease_expired` for leases past their expiry.

use crate::commands::expiry::ExpireDueLeases;
use crate::ledger::Ledger;
use std::time::Duration;

/// Leases expired per command, so one run never holds the ledger lock for long.
const BATCH: i64 = 200;

pub async fn run(ledger: Ledger, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        loop {
            match ledger.submit(ExpireDueLeases { limit: BATCH }).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(expired = n, "recorded expired leases");
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "expiring leases failed");
                    break;
                }
            }
        }
    }
}

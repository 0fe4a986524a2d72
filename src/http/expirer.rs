//! The background expirer: every interval, record `lease_expired` for leases past their expiry.

use crate::commands::expiry::ExpireDueLeases;
use crate::ledger::Ledger;
use crate::metrics::{EXPIRER_LEASES_EXPIRED, EXPIRER_RUNS};
use std::time::Duration;

/// Leases expired per command, so one run never holds the ledger lock for long.
const BATCH: i64 = 200;

pub async fn run(ledger: Ledger, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut expired = 0;
        let outcome = loop {
            match ledger.submit(ExpireDueLeases { limit: BATCH }).await {
                Ok(n) => {
                    expired += n as u64;
                    metrics::counter!(EXPIRER_LEASES_EXPIRED).increment(n as u64);
                    if n as i64 != BATCH {
                        break "ok";
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "expiring leases failed");
                    break "failed";
                }
            }
        };
        metrics::counter!(EXPIRER_RUNS, "outcome" => outcome).increment(1);
        if expired > 0 {
            tracing::info!(expired, "recorded expired leases");
        }
    }
}

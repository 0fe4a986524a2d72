//! The write side's one entry point: `Ledger::submit(command) -> outcome`.
//!
//! Commands are queued to a writer task that runs them in batches: one transaction holding the
//! ledger lock, a savepoint per command, projections updated inline, one commit (group commit).
//! A caller that goes away mid-command changes nothing: its command still runs to the end on the
//! writer task, and the transaction is never left open.

mod context;
mod writer;

pub use context::{Ctx, IdTable};

use crate::clock::Clock;
use crate::commands::{Command, CommandError};
use crate::crypto::EncryptionKey;
use mcp_events::{EventStore, Timestamp};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Limits the lease commands enforce (from `MCP_LEASE_*` and `MCP_MAX_RENEWALS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    pub default_ttl: i64,
    pub min_ttl: i64,
    pub max_ttl: i64,
    pub max_renewals: i64,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        Self {
            default_ttl: 3600,
            min_ttl: 60,
            max_ttl: 86_400,
            max_renewals: 24,
        }
    }
}

pub(crate) struct Shared {
    pub store: EventStore,
    pub clock: Arc<dyn Clock>,
    pub key: EncryptionKey,
    pub policy: LeasePolicy,
}

/// A handle on the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<writer::Job>,
}

impl Ledger {
    /// Brings projections up to date with the log and starts the writer task.
    pub async fn open(
        store: EventStore,
        clock: Arc<dyn Clock>,
        key: EncryptionKey,
        policy: LeasePolicy,
    ) -> Result<Self, CommandError> {
        mcp_projections::ensure(&store)
            .await
            .map_err(|e| CommandError::Internal(format!("bringing projections up to date: {e}")))?;
        let shared = Arc::new(Shared {
            store,
            clock,
            key,
            policy,
        });
        let (jobs, queue) = mpsc::channel(writer::QUEUE_DEPTH);
        tokio::spawn(writer::run(shared.clone(), queue));
        Ok(Self { shared, jobs })
    }

    /// Runs one command in the ledger's write transaction and returns its outcome once committed.
    pub async fn submit<C: Command>(&self, command: C) -> Result<C::Output, CommandError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(writer::Job::new(command, reply))
            .await
            .map_err(|_| CommandError::Unavailable)?;
        outcome.await.map_err(|_| CommandError::Unavailable)?
    }

    pub fn store(&self) -> &EventStore {
        &self.shared.store
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    pub fn policy(&self) -> LeasePolicy {
        self.shared.policy
    }

    pub fn key(&self) -> &EncryptionKey {
        &self.shared.key
    }
}

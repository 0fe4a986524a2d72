//! Commands: each one loads what it needs inside the ledger transaction, asks an aggregate to
//! decide, and appends the resulting events. Handlers and the CLI only ever submit these.

pub mod api;
pub mod directory;
pub mod expiry;
pub mod integrations;
pub mod tokens;

use crate::domain::DomainError;
use crate::ledger::Ctx;
use mcp_events::{AppendError, StoreError};
use std::future::Future;

/// One unit of work on the ledger. `execute` runs under the ledger lock; an `Err` rolls back
/// everything the command wrote, an `Ok` is committed with its batch.
pub trait Command: Send + 'static {
    type Output: Send + 'static;

    /// Whether the command writes tables other than the log and the per-request projections
    /// (tokens, leases, audit), which need a SQL savepoint to be undone if it fails in a batch.
    /// A command that says `false` and tries anyway is refused, never half-applied.
    const WRITES_TABLES: bool = true;

    fn execute(
        self,
        ctx: &mut Ctx,
    ) -> impl Future<Output = Result<Self::Output, CommandError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("concurrent change: {0}")]
    Conflict(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    #[error("credentials error: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("the ledger writer is not running")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl From<AppendError> for CommandError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Conflict { .. } => CommandError::Conflict(error.to_string()),
            AppendError::Store(store) => CommandError::Store(store),
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        CommandError::Store(StoreError::Database(error))
    }
}

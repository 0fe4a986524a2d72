//! The write side's one entry point: `Ledger::submit(command) -> outcome`.
//!
//! Commands are queued to one writer task, which runs them in batches: one transaction holding
//! the ledger lock, one unit of work (`unit.rs`) that every command reads and writes through,
//! and one commit (group commit). A batch is indistinguishable from running its commands one
//! per transaction in queue order: a command that fails (an error or a panic) is rolled back to
//! its mark in the unit of work and leaves no trace; a commit that fails because of one
//! command's data is retried command by command, so only that command fails. A caller that goes
//! away changes nothing: its command still runs to the end on the writer task.

mod context;
mod reads;
mod unit;
mod writer;

pub use context::Ctx;
pub use reads::UserAccess;
pub use unit::IdTable;

use crate::clock::{Clock, SystemClock};
use crate::crypto::EncryptionKey;
use crate::domain::DomainError;
use crate::keyring::Keyring;
use crate::random::{Entropy, OsEntropy};
use crate::secrets::SecretError;
use mcp_events::{AppendError, EventStore, RawEvent, StoreError, Timestamp};
use mcp_projections::ReplayError;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

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

/// One unit of work on the ledger. `execute` runs under the ledger lock, reading and writing
/// only through its `Ctx`; an `Err` (or a panic) undoes everything it did, an `Ok` is committed
/// with its batch. It may run more than once (when its batch's commit is retried command by
/// command), so it takes `&self`; only the last run's outcome is delivered.
pub trait Command: Send + Sync + 'static {
    type Output: Send + 'static;

    /// Rows this command will read, so a batch can load those of all its commands in one query
    /// per table. Only a hint: a command reads what it needs either way.
    fn prefetch(&self, _wanted: &mut Prefetch) {}

    fn execute(
        &self,
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
    Secret(#[from] SecretError),
    /// The database cannot be reached or cannot take writes now; nothing was applied.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// The command panicked (a bug); nothing it did was applied.
    #[error("the command panicked: {0}")]
    Panicked(String),
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

/// Rows a batch's commands will read (see `Command::prefetch`).
#[derive(Debug, Default)]
pub struct Prefetch {
    pub token_hashes: Vec<String>,
    pub lease_ids: Vec<String>,
}

/// What the ledger is opened with besides its store.

#[derive(Clone)]
pub struct LedgerSetup {
    /// The keys that seal and open credentials; `None` for a process whose commands never
    /// touch them (an operator revoking leases needs no key).
    pub keys: Option<Keyring>,
    pub policy: LeasePolicy,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    /// Whether the writer keeps what it has read from one batch to the next (while nobody else
    /// appends). See README "Writer memory" for what it is worth.
    pub memory: bool,
    /// The log's verifier key, when this process knows it: a projection rebuild at opening
    /// checks the latest checkpoint's signature with it (without it, its stated root).
    pub log_key: Option<mcp_tlog::Verifier>,
}

impl LedgerSetup {
    pub fn new(key: EncryptionKey) -> Self {
        Self::with_keys(Some(Keyring::single(key)))
    }

    pub fn with_keys(keys: Option<Keyring>) -> Self {
        Self {
            keys,
            policy: LeasePolicy::default(),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            memory: true,
            log_key: None,
        }
    }
}

pub(crate) struct Shared {
    pub store: EventStore,
    pub setup: LedgerSetup,
    pub stats: WriterStats,
    /// Each committed batch's events, for live readers (the audit stream). Sending never waits:
    /// a reader that falls behind misses batches and reads them from the database instead.
    pub feed: broadcast::Sender<Arc<[RawEvent]>>,
}

/// Committed batches a reader may have missed before it reads the database.
const FEED_DEPTH: usize = 1024;

/// What the writer has done so far (for tests and metrics).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed, and the commands they held.
    pub committed_batches: AtomicU64,
    pub committed_commands: AtomicU64,
    /// Batches whose commands had to be run again one by one.
    pub retried_batches: AtomicU64,
    /// Batches the database failed (nothing applied).
    pub failed_batches: AtomicU64,
}

/// A handle on the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<writer::Job>,
    writer: Arc<tokio::task::AbortHandle>,
}

/// A command in the writer's queue; `outcome` waits for its batch.
pub struct Queued<T> {
    reply: oneshot::Receiver<Result<T, CommandError>>,
}

impl<T> Queued<T> {
    pub async fn outcome(self) -> Result<T, CommandError> {
        self.reply
            .await
            .unwrap_or_else(|_| Err(CommandError::Internal("the ledger writer stopped".into())))
    }
}

impl Ledger {
    /// Brings projections up to date with the log and starts the writer task.
    pub async fn open(store: EventStore, setup: LedgerSetup) -> Result<Self, CommandError> {
        // The tree first: a rebuild checks the events against it.
        mcp_events::tree::catch_up(&store).await?;
        let started = std::time::Instant::now();
        let rebuilt = mcp_projections::ensure_checked(&store, setup.log_key.as_ref())
            .await
            .map_err(|e| match e {
                // Already one line saying what is wrong and that nothing changed.
                e @ (ReplayError::Truncated { .. } | ReplayError::Tampered(_)) => {
                    CommandError::Internal(e.to_string())
                }
                e => CommandError::Internal(format!("bringing projections up to date: {e}")),
            })?;
        if rebuilt {
            let elapsed = started.elapsed();
            metrics::histogram!(crate::metrics::PROJECTIONS_REBUILD_DURATION)
                .record(elapsed.as_secs_f64());
            tracing::info!(
                duration_ms = elapsed.as_millis() as u64,
                "projections rebuilt"
            );
        }
        let shared = Arc::new(Shared {
            store,
            setup,
            stats: WriterStats::default(),
            feed: broadcast::channel(FEED_DEPTH).0,
        });

        let (jobs, queue) = mpsc::channel(writer::QUEUE_DEPTH);
        let task = tokio::spawn(writer::run(shared.clone(), queue));
        Ok(Self {
            shared,
            jobs,
            writer: Arc::new(task.abort_handle()),
        })
    }

    /// Whether the writer task still runs. It ends only if it panics outside a command (a
    /// command's own panic is caught) or is aborted; its queue's receiver goes with it.
    pub fn writer_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Ends the writer task as a crash would (the batch in progress is not committed; its
    /// callers and every later one get "the ledger writer stopped"). For tests of what
    /// notices a dead writer, such as the readiness check.
    #[doc(hidden)]
    pub fn abort_writer(&self) {
        self.writer.abort();
    }

    /// The keys this ledger seals and opens secrets with, if it holds any.
    pub fn keys(&self) -> Option<&crate::keyring::Keyring> {
        self.shared.setup.keys.as_ref()
    }

    /// Runs one command in the ledger's write transaction and returns its outcome once committed.
    pub async fn submit<C: Command>(&self, command: C) -> Result<C::Output, CommandError> {
        self.enqueue(command).await?.outcome().await
    }

    /// Puts a command in the writer's queue and returns once it is there (commands enqueued one
    /// after another run in that order).
    pub async fn enqueue<C: Command>(&self, command: C) -> Result<Queued<C::Output>, CommandError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(writer::Job::new(command, reply))
            .await
            .map_err(|_| CommandError::Internal("the ledger writer stopped".into()))?;
        Ok(Queued { reply: outcome })
    }

    /// The log's verifier key, when this process knows it (see `LedgerSetup::log_key`).
    pub fn log_key(&self) -> Option<&mcp_tlog::Verifier> {
        self.shared.setup.log_key.as_ref()
    }

    pub fn store(&self) -> &EventStore {
        &self.shared.store
    }

    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// The events of every batch this process commits from now on, as stored, in order. Other
    /// processes' appends are not in it: a reader that must see everything also reads the log.
    pub fn feed(&self) -> broadcast::Receiver<Arc<[RawEvent]>> {
        self.shared.feed.subscribe()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.setup.clock.now()
    }

    pub fn policy(&self) -> LeasePolicy {
        self.shared.setup.policy
    }
}

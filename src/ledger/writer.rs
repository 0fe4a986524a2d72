//! The writer task: drains queued commands into batches and runs each batch in one transaction.
//!
//! The contract of a batch: observably identical to running its commands one per transaction,
//! in queue order. Each command runs between a mark and a rollback (if it fails or panics) in
//! the unit of work. If the batch cannot commit for a reason one command's data could cause
//! (a value a column cannot hold, a constraint), or a statement failed inside it (PostgreSQL
//! then refuses the rest of the transaction), its commands are run again one per transaction, so
//! only the culprit fails. If the database itself fails (gone, full), the batch's callers get
//! `Unavailable`, nothing is applied, and the next batch starts afresh on a new connection.

use super::context::Ctx;
use super::unit::{Committed, Memory, UnitOfWork};
use super::{Command, CommandError, Prefetch, Shared};
use crate::metrics::{EVENTS_APPENDED, WRITER_BATCHES, WRITER_BATCH_SIZE, WRITER_COMMIT_DURATION};

use futures::future::BoxFuture;
use futures::FutureExt;
use mcp_events::{is_data_error, is_unavailable, AppendError, StoreError};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub const QUEUE_DEPTH: usize = 4096;
/// At most this many commands share one transaction.
const MAX_BATCH: usize = 256;

/// A queued command with the channel its outcome goes back on.
pub struct Job(Box<dyn Runnable>);

trait Runnable: Send {
    fn prefetch(&self, wanted: &mut Prefetch);
    /// Runs the command; keeps its outcome until `deliver`. `true` if it succeeded.
    fn run<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, bool>;
    /// Sends the outcome of the last run, or `failure` if a successful run was not committed.
    fn deliver(self: Box<Self>, failure: Option<CommandError>);
}

struct Pending<C: Command> {
    command: C,
    outcome: Option<Result<C::Output, CommandError>>,
    reply: oneshot::Sender<Result<C::Output, CommandError>>,
}

impl<C: Command> Runnable for Pending<C> {
    fn prefetch(&self, wanted: &mut Prefetch) {
        self.command.prefetch(wanted);
    }

    fn run<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, bool> {
        async move {
            let outcome = AssertUnwindSafe(self.command.execute(ctx))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(CommandError::Panicked(panic_message(&*panic))));
            let succeeded = outcome.is_ok();
            self.outcome = Some(outcome);
            succeeded
        }
        .boxed()
    }

    fn deliver(self: Box<Self>, failure: Option<CommandError>) {
        let result = match (self.outcome, failure) {
            // A command that failed on its own failed whatever happened to its batch.
            (Some(Err(error)), _) => Err(error),
            (_, Some(failure)) => Err(failure),
            (Some(Ok(output)), None) => Ok(output),
            (None, None) => Err(CommandError::Internal("the command never ran".into())),
        };
        // The caller may have gone away; its command ran all the same.
        let _ = self.reply.send(result);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Job {
    pub fn new<C: Command>(
        command: C,
        reply: oneshot::Sender<Result<C::Output, CommandError>>,
    ) -> Self {
        Job(Box::new(Pending {
            command,
            outcome: None,
            reply,
        }))
    }
}

pub async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    let mut memory = Memory::default();
    while let Some(first) = queue.recv().await {
        memory = run_batch(&shared, first, &mut queue, memory).await;
    }
}

/// How a batch ended.
enum Ended {
    Committed(Box<Committed>),
    /// A command's data (or a failed statement) spoiled the transaction: run them one by one.
    Retry,
    /// The database failed; every caller gets this.
    Failed(CommandError),
}

/// Runs a batch: the first job, and every job queued by the time the ledger lock is taken (so
/// commands that arrive while a batch commits share the next one). Returns what the writer may
/// remember for the next batch.
async fn run_batch(
    shared: &Arc<Shared>,
    first: Job,
    queue: &mut mpsc::Receiver<Job>,
    memory: Memory,
) -> Memory {
    let started = std::time::Instant::now();
    let unit = UnitOfWork::begin(&shared.store, memory).await;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let unit = match unit {
        Ok(unit) => unit,
        Err(error) => {
            let failure = unavailable(&error.to_string());
            tracing::error!(%error, "cannot start a ledger transaction");
            shared.stats.failed();
            for job in batch {
                job.0.deliver(Some(failure.share()));
            }
            return Memory::default();
        }
    };
    let size = batch.len();
    let ended = run_in(shared, unit, &mut batch, size > 1).await;
    let memory = match ended {
        Ended::Committed(committed) => {
            shared.stats.committed(size, &committed.appended);
            publish(shared, committed.events);
            for job in batch {
                job.0.deliver(None);
            }
            keep(shared, committed.memory)
        }
        Ended::Retry => {
            tracing::warn!(
                size,
                "a batch could not commit; running its commands one by one"
            );
            shared.stats.retried_batches.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(WRITER_BATCHES, "outcome" => "retried").increment(1);
            run_one_by_one(shared, batch).await;
            Memory::default()
        }
        Ended::Failed(failure) => {
            shared.stats.failed();
            for job in batch {
                job.0.deliver(Some(failure.share()));
            }
            Memory::default()
        }
    };
    tracing::trace!(size, micros = started.elapsed().as_micros() as u64, "batch");
    memory
}

/// Runs jobs in one unit of work and commits it. With `retry`, a spoiled transaction ends the
/// run early (the jobs are then run again one by one); without, it fails the jobs.
async fn run_in(shared: &Arc<Shared>, unit: UnitOfWork, batch: &mut [Job], retry: bool) -> Ended {
    let mut wanted = Prefetch::default();
    for job in batch.iter() {
        job.0.prefetch(&mut wanted);
    }
    let mut ctx = Ctx {
        unit,
        now: shared.setup.clock.now(),
        shared: shared.clone(),
    };
    if ctx.unit.prefetch(wanted).await.is_err() && retry {
        ctx.unit.abandon().await;
        return Ended::Retry;
    }
    for job in batch.iter_mut() {
        ctx.now = shared.setup.clock.now();
        let mark = ctx.unit.mark();
        if !job.0.run(&mut ctx).await {
            ctx.unit.rollback(mark);
        }
        if retry && ctx.unit.sql_failed() {
            ctx.unit.abandon().await;
            return Ended::Retry;
        }
    }
    let committing = std::time::Instant::now();
    match ctx.unit.commit().await {
        Ok(committed) => {
            metrics::histogram!(WRITER_COMMIT_DURATION).record(committing.elapsed().as_secs_f64());
            Ended::Committed(Box::new(committed))
        }
        Err(error) if retry && is_refused_data(&error) => {
            tracing::warn!(%error, "a batch's data was refused at commit");
            Ended::Retry
        }
        Err(error) => {
            tracing::error!(%error, "a ledger commit failed");
            Ended::Failed(commit_failure(error))
        }
    }
}

/// Runs each job in a transaction of its own. If the database fails for one, the rest are not
/// tried: they get the same answer at once.
async fn run_one_by_one(shared: &Arc<Shared>, batch: Vec<Job>) {
    let mut failure: Option<CommandError> = None;
    for mut job in batch {
        if let Some(failure) = &failure {
            job.0.deliver(Some(failure.share()));
            continue;
        }
        let ended = match UnitOfWork::begin(&shared.store, Memory::default()).await {
            Ok(unit) => run_in(shared, unit, std::slice::from_mut(&mut job), false).await,
            Err(error) => Ended::Failed(unavailable(&error.to_string())),
        };
        match ended {
            Ended::Committed(committed) => {
                shared.stats.committed(1, &committed.appended);
                publish(shared, committed.events);
                job.0.deliver(None);
            }
            Ended::Failed(error) if matches!(error, CommandError::Unavailable(_)) => {
                failure = Some(error.share());
                job.0.deliver(Some(error));
            }
            Ended::Failed(error) => job.0.deliver(Some(error)),
            Ended::Retry => unreachable!("a single job is never retried"),
        }
    }
}

/// Whether a commit failed for what one command wrote (a value or a constraint), not for the
/// database itself.
fn is_refused_data(error: &AppendError) -> bool {
    match error {
        AppendError::Conflict { .. } => true,
        AppendError::Store(StoreError::Database(error)) => is_data_error(error),
        AppendError::Store(_) => false,
    }
}

/// A commit that failed: the database (unreachable, full), or the culprit's own data (when it
/// was alone in its transaction).
fn commit_failure(error: AppendError) -> CommandError {
    match error {
        AppendError::Store(StoreError::Database(error)) if is_unavailable(&error) => {
            unavailable(&error.to_string())
        }
        other => CommandError::from(other),
    }
}

fn unavailable(reason: &str) -> CommandError {
    CommandError::Unavailable(reason.to_owned())
}

impl CommandError {
    /// The failure of a batch, for each of its callers.
    fn share(&self) -> CommandError {
        match self {
            CommandError::Unavailable(reason) => CommandError::Unavailable(reason.clone()),
            other => CommandError::Internal(format!("the batch did not commit: {other}")),
        }
    }
}

/// The stats and metrics of batches (the metrics are no-ops where no recorder is installed).
impl super::WriterStats {
    fn committed(&self, commands: usize, appended: &[(String, u64)]) {
        self.committed_batches.fetch_add(1, Ordering::Relaxed);
        self.committed_commands
            .fetch_add(commands as u64, Ordering::Relaxed);
        metrics::counter!(WRITER_BATCHES, "outcome" => "committed").increment(1);
        metrics::histogram!(WRITER_BATCH_SIZE).record(commands as f64);
        for (event_type, count) in appended {
            metrics::counter!(EVENTS_APPENDED, "type" => event_type.clone()).increment(*count);
        }
    }

    fn failed(&self) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(WRITER_BATCHES, "outcome" => "failed").increment(1);
    }
}

/// Offers a committed batch's events to live readers; never waits for them.
fn publish(shared: &Shared, events: Vec<mcp_events::RawEvent>) {
    if !events.is_empty() && shared.feed.receiver_count() > 0 {
        let _ = shared.feed.send(events.into());
    }
}

/// What the writer remembers after a commit, if configured to, within its bounds.
fn keep(shared: &Shared, memory: Memory) -> Memory {
    if shared.setup.memory {
        memory.trimmed()
    } else {
        Memory::default()
    }
}

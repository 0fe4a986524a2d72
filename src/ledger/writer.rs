//! The writer task: drains queued commands into batches and runs each batch in one transaction.

use super::context::SealedSecrets;
use super::{Ctx, Shared};
use crate::commands::{Command, CommandError};
use futures::future::BoxFuture;
use futures::FutureExt;
use mcp_events::{StreamMemory, ValidAt};
use mcp_projections::InlineBatch;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub const QUEUE_DEPTH: usize = 4096;
/// At most this many commands share one transaction.
const MAX_BATCH: usize = 256;

/// Sends a command's result once its batch has committed (or failed to).
type Delivery = Box<dyn FnOnce(Result<(), CommandError>) + Send>;
type Run = Box<dyn for<'a> FnOnce(&'a mut Ctx) -> BoxFuture<'a, (bool, Delivery)> + Send>;

/// A type-erased command with the channel its outcome goes back on.
pub struct Job {
    run: Run,
    writes_tables: bool,
}

impl Job {
    pub fn new<C: Command>(
        command: C,
        reply: oneshot::Sender<Result<C::Output, CommandError>>,
    ) -> Self {
        let run: Run = Box::new(move |ctx: &mut Ctx| {
            async move {
                let outcome = command.execute(ctx).await;
                let succeeded = outcome.is_ok();
                let delivery: Delivery = Box::new(move |committed| {
                    let result = committed.and(outcome);
                    // The caller may have gone away; its command still ran to the end.
                    let _ = reply.send(result);
                });
                (succeeded, delivery)
            }
            .boxed()
        });
        Self {
            run,
            writes_tables: C::WRITES_TABLES,
        }
    }
}

/// Above this many sealed secrets the writer's memory is not kept after a commit.
const MAX_SECRETS: usize = 10_000;

/// What the writer carries from one batch to the next. It is used only while the log's head is
/// where this writer's last commit left it: a batch that starts anywhere else (another process
/// appended), or follows a failed one, starts from nothing.
#[derive(Default)]
pub(super) struct Memory {
    /// Where `inline` and `secrets` are valid (the event store checks `streams` itself).
    valid_at: ValidAt,
    streams: StreamMemory,
    inline: InlineBatch,
    secrets: SealedSecrets,
}

pub async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    let mut memory = Memory::default();
    while let Some(first) = queue.recv().await {
        if let Err(error) = run_batch(&shared, first, &mut queue, &mut memory).await {
            memory = Memory::default();
            tracing::error!(%error, "a command batch failed");
        }
    }
}

/// Runs a batch: the first job, and every job queued by the time the ledger lock is taken (so
/// commands that arrive while a batch commits share the next one). Any job not delivered
/// (dropped) is answered `Unavailable` by its channel.
///
/// Each command runs behind a savepoint, so a failing one is undone without touching the others.
/// For request commands the savepoint is in memory only (their writes are deferred to commit);
/// commands that write other tables get a SQL savepoint as well.
async fn run_batch(
    shared: &Arc<Shared>,
    first: Job,
    queue: &mut mpsc::Receiver<Job>,
    memory: &mut Memory,
) -> Result<(), CommandError> {
    let started = std::time::Instant::now();
    let streams = std::mem::take(&mut memory.streams);
    let tx = shared.store.begin_write_remembering(streams).await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let size = batch.len();
    let (inline, secrets) = if memory.valid_at.resume_at(tx.position()) {
        (
            std::mem::take(&mut memory.inline),
            std::mem::take(&mut memory.secrets),
        )
    } else {
        Default::default()
    };
    let mut ctx = Ctx {
        tx,
        inline,
        secrets,
        now: shared.clock.now(),
        shared: shared.clone(),
    };
    let mut deliveries = Vec::with_capacity(size);
    if size == 1 {
        // Alone in its transaction: a failure rolls all of it back, so it may write any table.
        ctx.inline.allow_table_writes(true);
        let job = batch.into_iter().next().expect("one job");
        let (succeeded, delivery) = (job.run)(&mut ctx).await;
        if !succeeded {
            // Nothing to keep: the memory taken for this batch goes with the rollback.
            ctx.tx.rollback().await?;
            delivery(Ok(()));
            return Ok(());
        }
        deliveries.push(delivery);
    } else {
        for job in batch {
            run_job(&mut ctx, job, &mut deliveries).await?;
        }
    }
    let result = commit(ctx, memory).await;
    let failure = result.as_ref().err().map(|e| e.to_string());
    for delivery in deliveries {
        delivery(match &failure {
            None => Ok(()),
            Some(message) => Err(CommandError::Internal(format!("commit failed: {message}"))),
        });
    }
    tracing::trace!(size, micros = started.elapsed().as_micros() as u64, "batch");
    result
}

/// Runs one job of a batch behind its savepoint; an error here fails the whole batch.
async fn run_job(
    ctx: &mut Ctx,
    job: Job,
    deliveries: &mut Vec<Delivery>,
) -> Result<(), CommandError> {
    ctx.now = ctx.shared.clock.now();
    let savepoint = if job.writes_tables {
        ctx.tx.savepoint().await?
    } else {
        ctx.tx.mark()
    };
    ctx.inline.allow_table_writes(job.writes_tables);
    let mark = ctx.inline.mark();
    let (succeeded, delivery) = (job.run)(ctx).await;
    deliveries.push(delivery);
    if succeeded {
        ctx.tx.release(savepoint).await?;
    } else {
        ctx.inline.rollback(mark);
        // It may have stored a secret version that a later command would reuse.
        ctx.secrets.clear();
        ctx.tx.rollback_to(savepoint).await?;
    }
    Ok(())
}

/// Writes the deferred rows and checkpoints and commits; on success the memory carries on
/// (unless it has grown too large to keep).
async fn commit(ctx: Ctx, memory: &mut Memory) -> Result<(), CommandError> {
    let Ctx {
        mut tx,
        mut inline,
        secrets,
        ..
    } = ctx;
    let position = tx.position();
    inline.flush(tx.conn()).await?;
    mcp_projections::set_checkpoints(tx.conn(), position).await?;
    memory.streams = tx.commit_remembering().await?;
    if !inline.is_oversized() && secrets.len() <= MAX_SECRETS {
        memory.inline = inline;
        memory.secrets = secrets;
        memory.valid_at.committed_at(position);
    }
    Ok(())
}

//! The writer task: drains queued commands into batches and runs each batch in one transaction.

use super::secret_cache::SecretCache;
use super::{Ctx, Shared};
use crate::commands::{Command, CommandError};
use futures::future::BoxFuture;
use futures::FutureExt;
use mcp_events::StreamMemory;
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

/// What the writer carries from one batch to the next. It is only ever used while the log's head
/// is where the last commit left it: a batch that starts anywhere else (another process
/// appended) or fails drops it.
#[derive(Default)]
pub(super) struct Memory {
    streams: StreamMemory,
    inline: InlineBatch,
    secrets: SecretCache,
}

pub async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    let mut memory = Memory::default();
    while let Some(first) = queue.recv().await {
        let started = std::time::Instant::now();
        let (result, size) = run_batch(&shared, first, &mut queue, &mut memory).await;
        tracing::trace!(size, micros = started.elapsed().as_micros() as u64, "batch");
        if let Err(error) = result {
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
) -> (Result<(), CommandError>, usize) {
    let streams = std::mem::take(&mut memory.streams);
    let tx = match shared.store.begin_write_remembering(streams).await {
        Ok(tx) => tx,
        Err(error) => return (Err(error.into()), 1),
    };
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let size = batch.len();
    let mut inline = std::mem::take(&mut memory.inline);
    let mut secrets = std::mem::take(&mut memory.secrets);
    inline.resume_at(tx.position());
    secrets.resume_at(tx.position());
    let mut ctx = Ctx {
        tx,
        inline,
        secrets,
        now: shared.clock.now(),
        shared: shared.clone(),
    };
    let mut deliveries = Vec::with_capacity(size);
    if size == 1 {
        let job = batch.into_iter().next().expect("one job");
        let (succeeded, delivery) = (job.run)(&mut ctx).await;
        if !succeeded {
            // Nothing to keep: roll back, and forget what the command may have cached.
            let result = ctx.tx.rollback().await.map_err(CommandError::from);
            delivery(Ok(()));
            return (result, size);
        }
        deliveries.push(delivery);
    } else {
        for job in batch {
            if let Err(error) = run_job(&mut ctx, job, &mut deliveries).await {
                return (Err(error), size);
            }
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
    (result, size)
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
        ctx.secrets.forget();
        ctx.tx.rollback_to(savepoint).await?;
    }
    Ok(())
}

/// Writes the deferred rows and checkpoints and commits; on success the memory carries on.
async fn commit(ctx: Ctx, memory: &mut Memory) -> Result<(), CommandError> {
    let Ctx {
        mut tx,
        mut inline,
        mut secrets,
        ..
    } = ctx;
    let position = tx.position();
    inline.flush(tx.conn()).await?;
    mcp_projections::set_checkpoints(tx.conn(), position).await?;
    memory.streams = tx.commit_remembering().await?;
    inline.committed_at(position);
    secrets.committed_at(position);
    memory.inline = inline;
    memory.secrets = secrets;
    Ok(())
}

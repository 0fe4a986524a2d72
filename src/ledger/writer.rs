//! The writer task: drains queued commands into batches and runs each batch in one transaction.

use super::{Ctx, Shared};
use crate::commands::{Command, CommandError};
use futures::future::BoxFuture;
use futures::FutureExt;
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

pub async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = run_batch(&shared, batch).await {
            tracing::error!(%error, "a command batch failed");
        }
    }
}

/// Runs a batch; any job not delivered (dropped) is answered `Unavailable` by its channel.
///
/// Each command runs behind a savepoint, so a failing one is undone without touching the others.
/// For request commands the savepoint is in memory only (their writes are deferred to commit);
/// commands that write other tables get a SQL savepoint as well.
async fn run_batch(shared: &Arc<Shared>, batch: Vec<Job>) -> Result<(), CommandError> {
    let tx = shared.store.begin_write().await?;
    let mut ctx = Ctx {
        tx,
        inline: mcp_projections::InlineBatch::default(),
        now: shared.clock.now(),
        shared: shared.clone(),
    };
    let count = batch.len();
    let mut deliveries = Vec::with_capacity(count);
    if count == 1 {
        let job = batch.into_iter().next().expect("one job");
        let (succeeded, delivery) = (job.run)(&mut ctx).await;
        if !succeeded {
            ctx.tx.rollback().await?;
            delivery(Ok(()));
            return Ok(());
        }
        deliveries.push(delivery);
    } else {
        for job in batch {
            ctx.now = shared.clock.now();
            let savepoint = if job.writes_tables {
                ctx.tx.savepoint().await?
            } else {
                ctx.tx.mark()
            };
            ctx.inline.allow_table_writes(job.writes_tables);
            let mark = ctx.inline.mark();
            let (succeeded, delivery) = (job.run)(&mut ctx).await;
            if succeeded {
                ctx.tx.release(savepoint).await?;
            } else {
                ctx.inline.rollback(mark);
                ctx.tx.rollback_to(savepoint).await?;
            }
            deliveries.push(delivery);
        }
    }
    let Ctx {
        mut tx, mut inline, ..
    } = ctx;
    let position = tx.position();
    let committed = async move {
        inline.flush(tx.conn()).await?;
        mcp_projections::set_checkpoints(tx.conn(), position).await?;
        tx.commit().await?;
        Ok::<_, CommandError>(())
    }
    .await;
    let failure = committed.as_ref().err().map(|e| e.to_string());
    for delivery in deliveries {
        delivery(match &failure {
            None => Ok(()),
            Some(message) => Err(CommandError::Internal(format!("commit failed: {message}"))),
        });
    }
    committed
}

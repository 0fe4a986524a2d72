//! The signed log: the server's signing key, and the task that signs a checkpoint whenever the
//! log has grown and `MCP_CHECKPOINT_INTERVAL` has passed.
//!
//! It reads (never writes) the log and the tree, on connections of its own, so writers are not
//! slowed. Before signing it checks that the log extends the latest checkpoint
//! (`mcp_events::checkpoints`) — the first time in a process, the whole log from position 1, so
//! a log changed while no server ran is never signed; if it does not, it signs nothing, logs an
//! error naming both sizes, and `/readyz` fails until the log is mended. New checkpoints are
//! announced on a watch channel (the audit stream and lease receipts wait on it).
//!
//! It follows this process's writer (`Ledger::feed`) and keeps the events committed since the
//! last checkpoint, so the check before signing takes them from memory and reads back from the
//! log only what other processes appended (or what it missed when it fell behind the feed).

use crate::clock::Clock;
use mcp_events::checkpoints::{self, CheckpointError, StoredCheckpoint};
use mcp_events::{EventStore, RawEvent, Timestamp};
use mcp_tlog::Signer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The most committed events held for the next signing (a few seconds of writes at full speed,
/// some tens of megabytes); past it the oldest are dropped, and read back from the log instead.
const HELD_EVENTS: usize = 50_000;

pub struct SignedLog {
    signer: Signer,
    /// Whether this process has checked the whole log (from position 1) before signing: its
    /// first signing does, later ones check what was appended since the last checkpoint.
    checked_whole_log: AtomicBool,
    refusal: Mutex<Option<String>>,
    latest: watch::Sender<Option<StoredCheckpoint>>,
    /// Events this process committed since the last checkpoint, in ascending positions.
    committed: Mutex<Vec<RawEvent>>,
}

impl SignedLog {
    pub fn new(signer: Signer) -> Self {
        Self {
            signer,
            checked_whole_log: AtomicBool::new(false),
            refusal: Mutex::new(None),
            latest: watch::channel(None).0,
            committed: Mutex::new(Vec::new()),
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The log's origin (the signing key's name).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key, as signed-note derives it from the signing key.
    pub fn vkey(&self) -> String {
        self.signer.verifier().vkey()
    }

    /// How many events this process committed wait for the next signing.
    pub fn held_events(&self) -> usize {
        lock(&self.committed).len()
    }

    /// Why the last attempt refused to sign, while that lasts.
    pub fn refusal(&self) -> Option<String> {
        lock(&self.refusal).clone()
    }

    /// The latest checkpoint this process has seen signed, as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Option<StoredCheckpoint>> {
        self.latest.subscribe()
    }

    /// Signs a checkpoint of the log's head if the log grew; records a refusal for `/readyz`.
    pub async fn sign_if_grown(
        &self,
        store: &EventStore,
        now: Timestamp,
    ) -> Result<Option<StoredCheckpoint>, CheckpointError> {
        let from_start = !self.checked_whole_log.load(Ordering::Acquire);
        let held = std::mem::take(&mut *lock(&self.committed));
        let signed =
            checkpoints::sign_if_grown_checked(store, &self.signer, now, from_start, &held).await;
        // What a checkpoint covers is not needed again; the rest goes back in front of what was
        // committed meanwhile. Nothing to sign means the latest checkpoint (perhaps another
        // replica's) is at the head, which every held event was committed below.
        let covered = match &signed {
            Ok(Some(checkpoint)) => checkpoint.tree_size as i64,
            Ok(None) => i64::MAX,
            Err(_) => 0,
        };
        let mut committed = lock(&self.committed);
        let mut kept: Vec<RawEvent> = held.into_iter().filter(|e| e.position > covered).collect();
        kept.append(&mut committed);
        *committed = kept;
        drop(committed);
        if matches!(signed, Ok(Some(_))) {
            self.checked_whole_log.store(true, Ordering::Release);
        }
        let mut refusal = lock(&self.refusal);
        match &signed {
            Ok(_) => *refusal = None,
            Err(error @ CheckpointError::Inconsistent { .. }) => *refusal = Some(error.to_string()),
            Err(_) => {}
        }
        drop(refusal);
        if let Ok(Some(checkpoint)) = &signed {
            self.latest.send_replace(Some(checkpoint.clone()));
        }
        signed
    }

    /// Keeps the events of `feed` (this process's commits) for the next signing, until the task
    /// is stopped. Falling behind the feed forgets what was held: those events are read back.
    pub async fn follow(self: Arc<Self>, mut feed: broadcast::Receiver<Arc<[RawEvent]>>) {
        loop {
            match feed.recv().await {
                Ok(batch) => {
                    let mut committed = lock(&self.committed);
                    let excess = (committed.len() + batch.len()).saturating_sub(HELD_EVENTS);
                    let dropped = excess.min(committed.len());
                    committed.drain(..dropped);
                    committed.extend(batch.iter().cloned());
                }
                Err(broadcast::error::RecvError::Lagged(_)) => lock(&self.committed).clear(),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Signs every `interval` while the log grows, until the task is stopped.
    pub async fn run(
        self: Arc<Self>,
        store: EventStore,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.sign_if_grown(&store, clock.now()).await {
                Ok(Some(checkpoint)) => {
                    tracing::debug!(tree_size = checkpoint.tree_size, "signed a checkpoint")
                }
                Ok(None) => {}
                Err(error @ CheckpointError::Inconsistent { .. }) => {
                    tracing::error!(%error, "the log no longer extends its signed checkpoint")
                }
                Err(error) => tracing::warn!(%error, "signing a checkpoint failed"),
            }
        }
    }
}

/// A mutex's contents, also after a panic elsewhere (what they hold stays consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

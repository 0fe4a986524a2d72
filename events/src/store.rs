//! The event store: the log's one table, its head, and the check that walks its hash chain.
//!
//! Writes go through `WriteTx` (`write.rs`), reads through `reader.rs`. This module must never
//! update or delete an event.

use crate::db::Database;
use crate::envelope::{ExpectedVersion, RawEvent, StreamId};
use crate::hash::{chain_hash, ChainFields, GENESIS};
use crate::reader::PAGE_SIZE;
use crate::vocabulary::DecodeError;
use crate::write::WriteTx;
use sqlx::Row;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event at position {position} cannot be read: {source}")]
    Decode { position: i64, source: DecodeError },
    #[error("{0}")]
    Tree(String),
}

impl From<crate::tree::TreeStoreError> for StoreError {
    fn from(error: crate::tree::TreeStoreError) -> Self {
        match error {
            crate::tree::TreeStoreError::Store(store) => store,
            other => StoreError::Tree(other.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, expected {expected:?}")]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        AppendError::Store(StoreError::Database(e))
    }
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Valid { events: i64, head: String },
    Broken { position: i64, reason: String },
}

#[derive(Clone, Debug)]
pub struct EventStore {
    db: Database,
}

impl EventStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Opens a write transaction holding the ledger lock. Finish it (commit or rollback) on a
    /// task of its own: a dropped `WriteTx` closes its connection, which ends the transaction.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        WriteTx::begin(&self.db).await
    }

    /// The current head: number of events and the last hash.
    pub async fn head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("select position, hash from ledger_head where id = 1")
            .fetch_one(self.db.pool())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Walks the whole chain and names the first position whose row does not match.
    pub async fn verify(&self) -> Result<VerifyOutcome, StoreError> {
        let mut expected_position = 1;
        let mut prev = GENESIS.to_owned();
        loop {
            let page = self.read_raw_page(expected_position - 1, PAGE_SIZE).await?;
            if page.is_empty() {
                break;
            }
            for event in &page {
                if let Some(reason) = check_link(event, expected_position, &prev) {
                    return Ok(VerifyOutcome::Broken {
                        position: expected_position,
                        reason,
                    });
                }
                prev = event.hash.clone();
                expected_position += 1;
            }
        }
        let events = expected_position - 1;
        let (head_position, head_hash) = self.head().await?;
        if head_position != events || head_hash != prev {
            return Ok(VerifyOutcome::Broken {
                position: head_position.max(events),
                reason: format!(
                    "ledger head says {head_position} events ending in {head_hash}, \
                     the log holds {events} ending in {prev}"
                ),
            });
        }
        Ok(VerifyOutcome::Valid { events, head: prev })
    }
}

fn check_link(event: &RawEvent, expected_position: i64, prev: &str) -> Option<String> {
    if event.position != expected_position {
        return Some(format!(
            "position {expected_position} is missing (next stored position is {})",
            event.position
        ));
    }
    if event.prev_hash != prev {
        return Some("prev_hash does not match the previous event's hash".to_owned());
    }
    let recomputed = chain_hash(prev, &fields_of(event));
    (recomputed != event.hash).then(|| "hash does not match the event's contents".to_owned())
}

fn fields_of(event: &RawEvent) -> ChainFields<'_> {
    ChainFields {
        position: event.position,
        stream_id: &event.stream_id,
        stream_version: event.stream_version,
        event_type: &event.event_type,
        event_version: event.event_version,
        payload: &event.payload,
        metadata: &event.metadata,
        recorded_at: &event.recorded_at,
    }
}

//! The event store: the log's one table, its head, and the check that walks its hash chain.
//!
//! Writes go through `WriteTx` (`write.rs`), reads through `reader.rs`. This module must never
//! update or delete an event.

use crate::chain::{ChainBreak, ChainCheck, LinkedEvent};
use crate::db::Database;
use crate::envelope::{ExpectedVersion, StreamId};
use crate::hash::ChainFields;
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
    /// The log does not chain where it was read (`read_all_checked`).
    #[error("the event log is broken at {0}")]
    ChainBroken(#[from] ChainBreak),
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
        self.verify_with(&mut ChainCheck::new(), &mut |_| Ok(()))
            .await
    }

    /// [`verify`](Self::verify) through `chain` (which may keep roots at sizes asked for), with
    /// `after_page` called between pages (a caller checks what the walk passed, and may stop it
    /// with a break of its own).
    pub async fn verify_with(
        &self,
        chain: &mut ChainCheck,
        after_page: &mut (dyn FnMut(&mut ChainCheck) -> Result<(), ChainBreak> + Send),
    ) -> Result<VerifyOutcome, StoreError> {
        let broken = |b: ChainBreak| VerifyOutcome::Broken {
            position: b.position,
            reason: b.reason,
        };
        loop {
            match self.check_page(chain, PAGE_SIZE).await? {
                Err(b) => return Ok(broken(b)),
                Ok(0) => {}
                Ok(_) => {
                    if let Err(b) = after_page(chain) {
                        return Ok(broken(b));
                    }
                    continue;
                }
            }
            // The head is read after the walk: a writer that appended meanwhile moved it past
            // the walk, which then goes on; a head behind the log or off its chain is broken.
            let (head_position, head_hash) = self.head().await?;
            let events = chain.events();
            if head_position > events && self.has_event_after(events).await? {
                continue;
            }
            if head_position != events || head_hash != chain.head() {
                return Ok(VerifyOutcome::Broken {
                    position: head_position.max(events),
                    reason: format!(
                        "ledger head says {head_position} events ending in {head_hash}, \
                         the log holds {events} ending in {}",
                        chain.head()
                    ),
                });
            }
            return Ok(VerifyOutcome::Valid {
                events,
                head: chain.head().to_owned(),
            });
        }
    }

    async fn has_event_after(&self, position: i64) -> Result<bool, StoreError> {
        let next: Option<i64> =
            sqlx::query_scalar("select position from events where position > $1 limit 1")
                .bind(position)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(next.is_some())
    }

    /// Reads the page of at most `limit` events after the last one `chain` checked and checks
    /// them; returns how many there were (0: the end of the log), or the first break.
    pub async fn check_page(
        &self,
        chain: &mut ChainCheck,
        limit: i64,
    ) -> Result<Result<usize, ChainBreak>, StoreError> {
        let rows = sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where position > $1 \
             order by position limit $2",
        )
        .bind(chain.events())
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        for row in &rows {
            if let Err(b) = chain.push(&linked_from_row(row)?) {
                return Ok(Err(b));
            }
        }
        Ok(Ok(rows.len()))
    }
}

/// An event row's columns, borrowed, as the chain check reads them.
pub(crate) fn linked_from_row(row: &sqlx::any::AnyRow) -> Result<LinkedEvent<'_>, sqlx::Error> {
    Ok(LinkedEvent {
        fields: ChainFields {
            position: row.try_get(0)?,
            stream_id: row.try_get(1)?,
            stream_version: row.try_get(2)?,
            event_type: row.try_get(3)?,
            event_version: row.try_get(4)?,
            payload: row.try_get(5)?,
            metadata: row.try_get(6)?,
            recorded_at: row.try_get(7)?,
        },
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

//! A write transaction: the ledger lock, the chain head it extends, and the events it appends.
//!
//! `begin` takes the ledger lock first (`begin immediate` on SQLite, a row lock on `ledger_head`
//! on PostgreSQL) and holds it until commit, so positions are gap-free and equal commit order,
//! and each new event chains onto the true head. Appended events are numbered and chained at
//! once but inserted at commit, in multi-row statements: under the lock nobody else can append,
//! so deferring the insert changes nothing a reader can observe. This module never updates or
//! deletes an event.
//!
//! The transaction runs on a connection of its own, outside sqlx's transaction bookkeeping: if
//! anything goes wrong (a failed statement, a failed commit, a dropped transaction) the
//! connection is closed rather than returned to the pool, so no later user ever inherits a
//! half-finished transaction.

use crate::db::{Backend, Database};
use crate::envelope::{ExpectedVersion, Metadata, RawEvent, RecordedEvent, StreamId};
use crate::hash::{chain_hash, ChainFields};
use crate::reader::{decode, raw_from_row};
use crate::store::{AppendError, StoreError};
use crate::time::Timestamp;
use crate::vocabulary::DomainEvent;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row};
use std::collections::HashMap;

/// The name of the unique constraint that backs the expected-version check.
pub const STREAM_VERSION_CONSTRAINT: &str = "events_stream_version_key";
/// SQLite reports no constraint names; its extended code for a UNIQUE index violation is this.
const SQLITE_CONSTRAINT_UNIQUE: &str = "2067";
/// Events per multi-row insert (10 bind parameters each, under every backend's limit).
const INSERT_CHUNK: usize = 2_000;

/// A write transaction holding the ledger lock.
pub struct WriteTx {
    db: Database,
    conn: PoolConnection<Any>,
    backend: Backend,
    position: i64,
    hash: String,
    /// Chained, not yet inserted.
    pending: Vec<RawEvent>,
    /// The last version of each stream in `pending` (derived from it).
    pending_versions: HashMap<String, i64>,
    /// Until commit or rollback: a transaction dropped while open closes its connection.
    open: bool,
}

/// A point in a write transaction that its appends can be rolled back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    position: i64,
    hash: String,
    pending: usize,
}

impl WriteTx {
    pub(crate) async fn begin(db: &Database) -> Result<Self, StoreError> {
        let backend = db.backend();
        let conn = db.pool().acquire().await?;
        let mut tx = WriteTx {
            db: db.clone(),
            conn,
            backend,
            position: 0,
            hash: String::new(),
            pending: Vec::new(),
            pending_versions: HashMap::new(),
            open: true,
        };
        let (begin, head) = match backend {
            Backend::Sqlite => (
                "begin immediate",
                "select position, hash from ledger_head where id = 1",
            ),
            Backend::Postgres => (
                "begin",
                "select position, hash from ledger_head where id = 1 for update",
            ),
        };
        // On failure `tx` is dropped while open, which closes the connection.
        sqlx::raw_sql(begin).execute(&mut *tx.conn).await?;
        let row = sqlx::query(head).fetch_one(&mut *tx.conn).await?;
        tx.position = row.try_get(0)?;
        tx.hash = row.try_get(1)?;
        Ok(tx)
    }

    /// The connection, for reads that must happen under the ledger lock.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// The position of the last event, including this transaction's own appends.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The head this transaction extends, or will leave if it commits: position and hash.
    pub fn head(&self) -> (i64, &str) {
        (self.position, &self.hash)
    }

    /// The last version this transaction appended to a stream, if it appended to it.
    pub fn pending_version(&self, stream: &StreamId) -> Option<i64> {
        self.pending_versions.get(stream.as_str()).copied()
    }

    /// A stream's version as committed before this transaction (0 when it has no events).
    pub async fn committed_version(&mut self, stream: &StreamId) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("select max(stream_version) from events where stream_id = $1")
                .bind(stream.as_str())
                .fetch_one(&mut *self.conn)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// A stream's version as this transaction sees it: its own appends, else the committed one.
    pub async fn stream_version(&mut self, stream: &StreamId) -> Result<i64, StoreError> {
        match self.pending_version(stream) {
            Some(version) => Ok(version),
            None => self.committed_version(stream).await,
        }
    }

    /// Every event of one stream in version order, this transaction's own appends included.
    pub async fn read_stream(
        &mut self,
        stream: &StreamId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where stream_id = $1 \
             order by stream_version",
        )
        .bind(stream.as_str())
        .fetch_all(&mut *self.conn)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| decode(&raw_from_row(row)?))
            .collect::<Result<Vec<_>, _>>()?;
        if self.pending_versions.contains_key(stream.as_str()) {
            for raw in self
                .pending
                .iter()
                .filter(|e| e.stream_id == stream.as_str())
            {
                events.push(decode(raw)?);
            }
        }
        Ok(events)
    }

    /// Appends events to one stream if it is at the expected version (checked against the
    /// committed log and this transaction's own appends).
    pub async fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[DomainEvent],
        metadata: &Metadata,
        recorded_at: Timestamp,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        let actual = self.stream_version(stream).await?;
        if !expected.admits(actual) {
            return Err(AppendError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        Ok(self.append_at(stream, actual, events, metadata, recorded_at))
    }

    /// Appends events to a stream whose current version the caller has established (`current`;
    /// the first new event gets `current + 1`). The unique `(stream_id, stream_version)`
    /// constraint is the backstop if the caller was wrong.
    pub fn append_at(
        &mut self,
        stream: &StreamId,
        current: i64,
        events: &[DomainEvent],
        metadata: &Metadata,
        recorded_at: Timestamp,
    ) -> Vec<RecordedEvent> {
        let metadata_text = serde_json::to_string(metadata).expect("metadata serializes");
        let recorded_text = recorded_at.to_string();
        let mut recorded = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let encoded = event.encode();
            let position = self.position + 1;
            let stream_version = current + 1 + offset as i64;
            let hash = chain_hash(
                &self.hash,
                &ChainFields {
                    position,
                    stream_id: stream.as_str(),
                    stream_version,
                    event_type: &encoded.event_type,
                    event_version: encoded.event_version,
                    payload: &encoded.payload,
                    metadata: &metadata_text,
                    recorded_at: &recorded_text,
                },
            );
            let prev_hash = std::mem::replace(&mut self.hash, hash.clone());
            self.position = position;
            self.pending.push(RawEvent {
                position,
                stream_id: stream.as_str().to_owned(),
                stream_version,
                event_type: encoded.event_type,
                event_version: encoded.event_version,
                payload: encoded.payload,
                metadata: metadata_text.clone(),
                recorded_at: recorded_text.clone(),
                prev_hash,
                hash,
            });
            recorded.push(RecordedEvent {
                position,
                stream_id: stream.clone(),
                stream_version,
                event: event.clone(),
                metadata: metadata.clone(),
                recorded_at,
            });
        }
        if let Some(last) = recorded.last() {
            self.pending_versions
                .insert(stream.as_str().to_owned(), last.stream_version);
        }
        recorded
    }

    /// Where the appends stand now, to roll back to.
    pub fn mark(&self) -> Mark {
        Mark {
            position: self.position,
            hash: self.hash.clone(),
            pending: self.pending.len(),
        }
    }

    /// Undoes every append since `mark`.
    pub fn rollback_to(&mut self, mark: Mark) {
        if mark.pending == self.pending.len() {
            return;
        }
        self.position = mark.position;
        self.hash = mark.hash;
        self.pending.truncate(mark.pending);
        self.pending_versions.clear();
        for event in &self.pending {
            self.pending_versions
                .insert(event.stream_id.clone(), event.stream_version);
        }
    }

    /// The type of every event this transaction will insert at commit, in order.
    pub fn pending_types(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().map(|event| event.event_type.as_str())
    }

    /// The streams appended to and their last versions, as the commit will leave them.
    pub fn appended_streams(&self) -> impl Iterator<Item = (&str, i64)> {
        self.pending_versions
            .iter()
            .map(|(stream, version)| (stream.as_str(), *version))
    }

    /// Inserts the appended events, moves the chain head and commits: every append of this
    /// transaction becomes visible at once. On failure nothing is applied and the connection is
    /// closed.
    pub async fn commit(self) -> Result<(), AppendError> {
        self.commit_events().await.map(drop)
    }

    /// Commits and hands back the events it appended, as stored.
    pub async fn commit_events(mut self) -> Result<Vec<RawEvent>, AppendError> {
        self.grow_tree().await?;
        self.write_pending().await?;
        sqlx::query("update ledger_head set position = $1, hash = $2 where id = 1")
            .bind(self.position)
            .bind(&self.hash)
            .execute(&mut *self.conn)
            .await?;
        sqlx::raw_sql("commit").execute(&mut *self.conn).await?;
        self.open = false;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Ends the transaction without applying anything.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("rollback").execute(&mut *self.conn).await?;
        self.open = false;
        Ok(())
    }

    /// Stores the Merkle tree's new hashes for the appended events (`tree.rs`).
    async fn grow_tree(&mut self) -> Result<(), StoreError> {
        let Some(first) = self.pending.first() else {
            return Ok(());
        };
        let old_size = (first.position - 1) as u64;
        let leaves = self
            .pending
            .iter()
            .map(|e| crate::tree::leaf_of(&e.hash))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Tree(e.to_string()))?;
        crate::tree::append(&mut self.conn, old_size, &leaves).await?;
        Ok(())
    }

    /// Inserts the appended events in multi-row statements.
    async fn write_pending(&mut self) -> Result<(), AppendError> {
        for chunk in self.pending.chunks(INSERT_CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", self.backend.placeholders(i * 10 + 1, 10)))
                .collect();
            let sql = format!(
                "insert into events (position, stream_id, stream_version, event_type, \
                 event_version, payload, metadata, recorded_at, prev_hash, hash) values {}",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                query = query
                    .bind(e.position)
                    .bind(e.stream_id.as_str())
                    .bind(e.stream_version)
                    .bind(e.event_type.as_str())
                    .bind(e.event_version)
                    .bind(e.payload.as_str())
                    .bind(e.metadata.as_str())
                    .bind(e.recorded_at.as_str())
                    .bind(e.prev_hash.as_str())
                    .bind(e.hash.as_str());
            }
            if let Err(error) = query.execute(&mut *self.conn).await {
                if !is_stream_version_conflict(&error) {
                    return Err(error.into());
                }
                return Err(conflict_in(&self.db, chunk).await);
            }
        }
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Never hand a connection that may be inside a transaction back to the pool.
            self.conn.close_on_drop();
        }
    }
}

/// Names the row of `chunk` that the unique constraint refused. The transaction cannot be
/// asked any more (PostgreSQL aborts it), so the committed log is read on another connection.
async fn conflict_in(db: &Database, chunk: &[RawEvent]) -> AppendError {
    let mut streams: Vec<&str> = chunk.iter().map(|e| e.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let sql = format!(
        "select stream_id, max(stream_version) from events where stream_id in ({}) \
         group by stream_id",
        db.backend().placeholders(1, streams.len())
    );
    let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql));
    for stream in &streams {
        query = query.bind(*stream);
    }
    let committed: HashMap<String, i64> = match query.fetch_all(db.pool()).await {
        Ok(rows) => rows.into_iter().collect(),
        Err(error) => return error.into(),
    };
    let culprit = chunk
        .iter()
        .find(|e| {
            committed
                .get(&e.stream_id)
                .is_some_and(|v| *v >= e.stream_version)
        })
        .unwrap_or(&chunk[0]);
    AppendError::Conflict {
        stream: StreamId::from_stored(culprit.stream_id.clone()),
        expected: ExpectedVersion::Exact(culprit.stream_version - 1),
        actual: committed
            .get(&culprit.stream_id)
            .copied()
            .unwrap_or(culprit.stream_version),
    }
}

/// The backstop: the unique constraint on `(stream_id, stream_version)`, recognised by name.
pub fn is_stream_version_conflict(error: &sqlx::Error) -> bool {
    let Some(db_error) = error.as_database_error() else {
        return false;
    };
    db_error.constraint() == Some(STREAM_VERSION_CONSTRAINT)
        || db_error.code().as_deref() == Some(SQLITE_CONSTRAINT_UNIQUE)
}

//! The event store: serialized, hash-chained appends and ordered reads.
//!
//! A writer first takes the ledger lock (`begin immediate` on SQLite, a row lock on `ledger_head`
//! on PostgreSQL) and holds it until commit, so positions are gap-free and equal commit order, and
//! each new event chains onto the true head. This module must never update or delete an event.

use crate::db::{Backend, Database};
use crate::envelope::{ExpectedVersion, Metadata, RawEvent, RecordedEvent, StreamId};
use crate::hash::{chain_hash, ChainFields, GENESIS};
use crate::memory::StreamMemory;
use crate::time::Timestamp;
use crate::vocabulary::{DecodeError, DomainEvent};
use futures::stream::{self, Stream};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

/// The name of the unique constraint that backs the expected-version check.
pub const STREAM_VERSION_CONSTRAINT: &str = "events_stream_version_key";
/// SQLite reports no constraint names; its extended code for a UNIQUE index violation is this.
const SQLITE_CONSTRAINT_UNIQUE: &str = "2067";

const PAGE_SIZE: i64 = 5_000;
/// Events per multi-row insert (10 bind parameters each, under every backend's limit).
const INSERT_CHUNK: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event at position {position} cannot be read: {source}")]
    Decode { position: i64, source: DecodeError },
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

    /// Opens a write transaction holding the ledger lock. Run it to completion on a task of its
    /// own: a dropped `WriteTx` rolls back, but only a finished one releases the lock promptly.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.begin_write_remembering(StreamMemory::default()).await
    }

    /// Like `begin_write`, resuming what an earlier transaction of this writer remembered of
    /// its streams (`WriteTx::commit_remembering`); the memory is dropped if the head moved.
    pub async fn begin_write_remembering(
        &self,
        mut memory: StreamMemory,
    ) -> Result<WriteTx, StoreError> {
        let pool = self.db.pool();
        let (mut tx, head_query) = match self.db.backend() {
            Backend::Sqlite => (
                pool.begin_with("begin immediate").await?,
                "select position, hash from ledger_head where id = 1",
            ),
            Backend::Postgres => (
                pool.begin().await?,
                "select position, hash from ledger_head where id = 1 for update",
            ),
        };
        let row = sqlx::query(head_query).fetch_one(&mut *tx).await?;
        let position = row.try_get(0)?;
        memory.resume_at(position);
        Ok(WriteTx {
            tx,
            backend: self.db.backend(),
            position,
            hash: row.try_get(1)?,
            memory,
            pending: Vec::new(),
        })
    }

    /// The current head: number of events and the last hash.
    pub async fn head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("select position, hash from ledger_head where id = 1")
            .fetch_one(self.db.pool())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// One page of raw rows after `after`, in position order.
    pub async fn read_raw_page(&self, after: i64, limit: i64) -> Result<Vec<RawEvent>, StoreError> {
        let rows = sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where position > $1 \
             order by position limit $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(raw_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// One page of rows after `after` with the columns decoding needs.
    async fn read_rows(&self, after: i64, limit: i64) -> Result<Vec<AnyRow>, StoreError> {
        Ok(sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at from events where position > $1 order by position limit $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Every event after `after`, decoded, in position order, fetched a page at a time. Pages
    /// are fetched and decoded on other tasks while the caller works on the current one. On
    /// PostgreSQL the server also produces page n+1 while page n is decoded; SQLite reads in
    /// this process, where a second concurrent read only competes for the same cores.
    pub fn read_all(
        &self,
        after: i64,
    ) -> impl Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + '_ {
        let (pages, receiver) = tokio::sync::mpsc::channel(2);
        let overlap = self.db.backend() == Backend::Postgres;
        let store = self.clone();
        let fetch = move |after: i64| {
            let store = store.clone();
            AbortOnDrop(tokio::spawn(async move {
                store.read_rows(after, PAGE_SIZE).await
            }))
        };
        let reader = tokio::spawn(async move {
            let mut next = fetch(after);
            loop {
                let page = match next.join().await {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = pages.send(Err(error)).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                let last: i64 = match last.try_get(0) {
                    Ok(last) => last,
                    Err(error) => {
                        let _ = pages.send(Err(error.into())).await;
                        return;
                    }
                };
                if overlap {
                    next = fetch(last);
                }
                let decoded = page.iter().map(decode_row).collect::<Result<Vec<_>, _>>();
                let failed = decoded.is_err();
                if pages.send(decoded).await.is_err() || failed {
                    return;
                }
                if !overlap {
                    next = fetch(last);
                }
            }
        });
        let guard = AbortOnDrop(reader);
        stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
            receiver.recv().await.map(|page| (page, (receiver, guard)))
        })
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

/// A task that is stopped when its handle is dropped (the consumer stopped reading).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<Result<T, StoreError>> {
    /// The task's result; a task that panicked or was stopped counts as a failed read.
    async fn join(&mut self) -> Result<T, StoreError> {
        (&mut self.0)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Protocol(format!("page reader: {e}"))))?
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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

fn raw_from_row(row: &AnyRow) -> Result<RawEvent, sqlx::Error> {
    Ok(RawEvent {
        position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: row.try_get(2)?,
        event_type: row.try_get(3)?,
        event_version: row.try_get(4)?,
        payload: row.try_get(5)?,
        metadata: row.try_get(6)?,
        recorded_at: row.try_get(7)?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

/// Decodes a stored row into the current vocabulary.
pub fn decode(raw: &RawEvent) -> Result<RecordedEvent, StoreError> {
    decode_parts(&Stored {
        position: raw.position,
        stream_id: &raw.stream_id,
        stream_version: raw.stream_version,
        event_type: &raw.event_type,
        event_version: raw.event_version,
        payload: &raw.payload,
        metadata: &raw.metadata,
        recorded_at: &raw.recorded_at,
    })
}

/// The columns an event is decoded from, borrowed from wherever they are.
struct Stored<'a> {
    position: i64,
    stream_id: &'a str,
    stream_version: i64,
    event_type: &'a str,
    event_version: i64,
    payload: &'a str,
    metadata: &'a str,
    recorded_at: &'a str,
}

/// Decodes straight from a row's borrowed columns (replay's hot path: no copies).
fn decode_row(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
    decode_parts(&Stored {
        position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: row.try_get(2)?,
        event_type: row.try_get(3)?,
        event_version: row.try_get(4)?,
        payload: row.try_get(5)?,
        metadata: row.try_get(6)?,
        recorded_at: row.try_get(7)?,
    })
}

fn decode_parts(stored: &Stored<'_>) -> Result<RecordedEvent, StoreError> {
    let bad = |reason: String| StoreError::Decode {
        position: stored.position,
        source: DecodeError::Invalid {
            event_type: stored.event_type.to_owned(),
            event_version: stored.event_version,
            reason,
        },
    };
    let event = DomainEvent::decode(stored.event_type, stored.event_version, stored.payload)
        .map_err(|source| StoreError::Decode {
            position: stored.position,
            source,
        })?;
    let metadata: Metadata =
        serde_json::from_str(stored.metadata).map_err(|e| bad(format!("metadata: {e}")))?;
    let recorded_at = Timestamp::parse(stored.recorded_at)
        .ok_or_else(|| bad("recorded_at is not a timestamp".to_owned()))?;
    Ok(RecordedEvent {
        position: stored.position,
        stream_id: StreamId::from_stored(stored.stream_id.to_owned()),
        stream_version: stored.stream_version,
        event,
        metadata,
        recorded_at,
    })
}

/// A write transaction holding the ledger lock, with the chain head it extends.
///
/// Appended events are checked, numbered and chained at once but written to the `events` table
/// in multi-row inserts at commit (`read_stream` sees them before that). Under the lock nobody
/// else can append, so deferring the insert changes nothing a reader can observe.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
    position: i64,
    hash: String,
    /// Stream versions (and short streams' events) this writer has read or written: under the
    /// ledger lock nobody else can move them, so they need not be read again.
    memory: StreamMemory,
    pending: Vec<RawEvent>,
}

/// A point inside a write transaction that a failed command can be rolled back to.
pub struct Savepoint {
    position: i64,
    hash: String,
    pending: usize,
    /// Whether a SQL savepoint was taken (needed only by commands that write other tables).
    sql: bool,
}

impl WriteTx {
    /// The connection, for projections and reads that must see this transaction's writes.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The position of the last event, including this transaction's own appends.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// A stream's current version as this transaction sees it (0 when it has no events).
    pub async fn stream_version(&mut self, stream: &StreamId) -> Result<i64, StoreError> {
        if let Some(version) = self.memory.version(stream.as_str()) {
            return Ok(version);
        }
        let version: Option<i64> =
            sqlx::query_scalar("select max(stream_version) from events where stream_id = $1")
                .bind(stream.as_str())
                .fetch_one(&mut *self.tx)
                .await?;
        let version = version.unwrap_or(0);
        self.memory.set_version(stream.as_str(), version);
        Ok(version)
    }

    /// Every event of one stream, in version order, as this transaction sees it.
    pub async fn read_stream(
        &mut self,
        stream: &StreamId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if let Some(events) = self.memory.events(stream.as_str()) {
            return Ok(events.to_vec());
        }
        let rows = sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where stream_id = $1 \
             order by stream_version",
        )
        .bind(stream.as_str())
        .fetch_all(&mut *self.tx)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| decode(&raw_from_row(row)?))
            .collect::<Result<Vec<_>, _>>()?;
        for raw in self
            .pending
            .iter()
            .filter(|e| e.stream_id == stream.as_str())
        {
            events.push(decode(raw)?);
        }
        self.memory.read(stream.as_str(), &events);
        Ok(events)
    }

    /// Appends events to one stream if it is at the expected version.
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
        let metadata_text = serde_json::to_string(metadata).expect("metadata serializes");
        let recorded_text = recorded_at.to_string();
        let mut recorded = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let encoded = event.encode();
            let position = self.position + 1;
            let stream_version = actual + 1 + offset as i64;
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
        self.memory.appended(stream.as_str(), &recorded);
        Ok(recorded)
    }

    /// Writes the appended events in multi-row inserts.
    async fn write_pending(&mut self) -> Result<(), AppendError> {
        // SQLite gets anonymous `?` placeholders: with numbered ones the driver looks every
        // name up, which is quadratic in the number of parameters.
        let anonymous = self.backend == Backend::Sqlite;
        for chunk in self.pending.chunks(INSERT_CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p: Vec<String> = (1..=10)
                        .map(|c| {
                            if anonymous {
                                "?".to_owned()
                            } else {
                                format!("${}", i * 10 + c)
                            }
                        })
                        .collect();
                    format!("({})", p.join(", "))
                })
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
            if let Err(error) = query.execute(&mut *self.tx).await {
                return Err(if is_stream_version_conflict(&error) {
                    AppendError::Conflict {
                        stream: StreamId::from_stored(chunk[0].stream_id.clone()),
                        expected: ExpectedVersion::Any,
                        actual: chunk[0].stream_version,
                    }
                } else {
                    error.into()
                });
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Marks a point to roll back to, in memory only: enough for a command whose only writes
    /// are appends and deferred projection rows.
    pub fn mark(&self) -> Savepoint {
        Savepoint {
            position: self.position,
            hash: self.hash.clone(),
            pending: self.pending.len(),
            sql: false,
        }
    }

    /// Marks a point to roll back to, including a SQL savepoint for commands that write tables.
    pub async fn savepoint(&mut self) -> Result<Savepoint, StoreError> {
        sqlx::query("savepoint command")
            .execute(&mut *self.tx)
            .await?;
        Ok(Savepoint {
            sql: true,
            ..self.mark()
        })
    }

    /// Keeps everything since `savepoint`.
    pub async fn release(&mut self, savepoint: Savepoint) -> Result<(), StoreError> {
        if savepoint.sql {
            sqlx::query("release savepoint command")
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Undoes everything since `savepoint`.
    pub async fn rollback_to(&mut self, savepoint: Savepoint) -> Result<(), StoreError> {
        if savepoint.sql {
            sqlx::raw_sql("rollback to savepoint command; release savepoint command")
                .execute(&mut *self.tx)
                .await?;
        }
        self.position = savepoint.position;
        self.hash = savepoint.hash;
        self.pending.truncate(savepoint.pending);
        self.memory.forget();
        Ok(())
    }

    /// Writes the appended events, moves the chain head and commits: every append of this
    /// transaction becomes visible at once.
    pub async fn commit(self) -> Result<(), AppendError> {
        self.commit_remembering().await.map(drop)
    }

    /// Commits and hands back what this transaction knew of its streams, for the next one.
    pub async fn commit_remembering(mut self) -> Result<StreamMemory, AppendError> {
        self.write_pending().await?;
        sqlx::query("update ledger_head set position = $1, hash = $2 where id = 1")
            .bind(self.position)
            .bind(&self.hash)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        self.memory.committed_at(self.position);
        Ok(self.memory)
    }

    /// Declares a stream whose id was just drawn at random (so it cannot exist) without asking
    /// the database; the unique `(stream_id, stream_version)` constraint stays the backstop.
    pub fn claim_new_stream(&mut self, stream: &StreamId) {
        self.memory.new_stream(stream.as_str());
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
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

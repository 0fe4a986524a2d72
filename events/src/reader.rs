//! Reading the log: pages of raw rows, and the decoded stream replay folds, fetched ahead.

use crate::chain::ChainCheck;
use crate::db::Backend;
use crate::envelope::{Metadata, RawEvent, RecordedEvent, StreamId};
use crate::store::{EventStore, StoreError};
use crate::time::Timestamp;
use crate::vocabulary::{DecodeError, DomainEvent};
use futures::stream::{self, Stream};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::{Arc, Mutex};

pub(crate) const PAGE_SIZE: i64 = 5_000;

impl EventStore {
    /// Every event of one stream as stored, in version order.
    pub async fn read_raw_stream(&self, stream: &StreamId) -> Result<Vec<RawEvent>, StoreError> {
        let rows = sqlx::query(
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where stream_id = $1 \
             order by stream_version",
        )
        .bind(stream.as_str())
        .fetch_all(self.database().pool())
        .await?;
        rows.iter()
            .map(raw_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
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
        .fetch_all(self.database().pool())
        .await?;
        rows.iter()
            .map(raw_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// One page of rows after `after`, every column, unconverted: read them with
    /// [`raw_ref_of`] where they are used, without copying.
    pub async fn read_raw_rows(&self, after: i64, limit: i64) -> Result<Vec<AnyRow>, StoreError> {
        self.read_rows(after, limit, true).await
    }

    /// One page of rows after `after` with the columns decoding needs (and the chain's, when
    /// `linked`).
    async fn read_rows(
        &self,
        after: i64,
        limit: i64,
        linked: bool,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let sql = if linked {
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at, prev_hash, hash from events where position > $1 \
             order by position limit $2"
        } else {
            "select position, stream_id, stream_version, event_type, event_version, payload, \
             metadata, recorded_at from events where position > $1 order by position limit $2"
        };
        Ok(sqlx::query(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(self.database().pool())
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
        self.read_pages(after, None)
    }

    /// [`read_all`](Self::read_all), each event also checked by `chain` as it is read (on the
    /// reading task): the first event that breaks the chain ends the stream with
    /// [`StoreError::ChainBroken`]. `chain` must have checked exactly the events up to `after`.
    pub fn read_all_checked(
        &self,
        after: i64,
        chain: Arc<Mutex<ChainCheck>>,
    ) -> impl Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + '_ {
        self.read_pages(after, Some(chain))
    }

    fn read_pages(
        &self,
        after: i64,
        chain: Option<Arc<Mutex<ChainCheck>>>,
    ) -> impl Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + '_ {
        let (pages, receiver) = tokio::sync::mpsc::channel(2);
        let overlap = self.database().backend() == Backend::Postgres;
        let store = self.clone();
        let linked = chain.is_some();
        let fetch = move |after: i64| {
            let store = store.clone();
            AbortOnDrop(tokio::spawn(async move {
                store.read_rows(after, PAGE_SIZE, linked).await
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
                let decoded = match &chain {
                    Some(chain) => check_rows(chain, &page)
                        .and_then(|()| page.iter().map(decode_row).collect::<Result<Vec<_>, _>>()),
                    None => page.iter().map(decode_row).collect::<Result<Vec<_>, _>>(),
                };
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
}

/// Pushes a page of rows through the chain check; the first break is the page's error.
fn check_rows(chain: &Mutex<ChainCheck>, rows: &[AnyRow]) -> Result<(), StoreError> {
    let mut chain = chain
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for row in rows {
        chain.push(&crate::store::linked_from_row(row)?)?;
    }
    Ok(())
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

/// A row of [`EventStore::read_raw_rows`] as the event object it stores, borrowed.
pub fn raw_ref_of(row: &AnyRow) -> Result<crate::envelope::RawEventRef<'_>, sqlx::Error> {
    Ok(crate::envelope::RawEventRef {
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

pub(crate) fn raw_from_row(row: &AnyRow) -> Result<RawEvent, sqlx::Error> {
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

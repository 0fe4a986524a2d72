//! Signed checkpoints of the log (`c2sp.org/tlog-checkpoint`): the tree's size and root, signed
//! with the log's key, kept in the append-only `checkpoints` table.
//!
//! A checkpoint is only ever signed after checking that the log still extends the latest one:
//! the tree's root at the latest checkpoint's size is still the root that was signed, a
//! consistency proof from it to the new size verifies against both roots, and the events since
//! then chain onto each other and are the leaves the tree holds. A log whose newest events were
//! deleted, rewritten or re-chained fails one of these, and nothing is signed: the error names
//! both sizes. Signing is deterministic (Ed25519), so replicas signing the same size store the
//! same note.

use crate::envelope::RawEvent;
use crate::hash::{chain_hash, ChainFields};
use crate::store::{EventStore, StoreError};
use crate::time::Timestamp;
use crate::tree;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_tlog::merkle::{self, Hash};
use mcp_tlog::Signer;
pub use mcp_tlog::{Checkpoint, Verifier};
use sqlx::{AnyConnection, Row};

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root: Hash,
    /// The signed note, exactly as served.
    pub note: String,
    /// The signing key's id, 8 lowercase hex digits.
    pub key_id: String,
    pub recorded_at: String,
}

/// Why a checkpoint was not signed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log no longer extends the latest signed checkpoint.
    #[error("refusing to sign a checkpoint of size {size}: the log does not extend the signed checkpoint of size {signed}: {reason}")]
    Inconsistent {
        signed: u64,
        size: u64,
        reason: String,
    },
    #[error("cannot sign: {0}")]
    Signing(String),
}

impl From<sqlx::Error> for CheckpointError {
    fn from(error: sqlx::Error) -> Self {
        CheckpointError::Store(StoreError::Database(error))
    }
}

impl From<tree::TreeStoreError> for CheckpointError {
    fn from(error: tree::TreeStoreError) -> Self {
        CheckpointError::Store(error.into())
    }
}

impl StoredCheckpoint {
    /// The checkpoint its note states (unverified: the caller checks the signature), which
    /// must be the size and root stored beside it.
    pub fn stated(&self) -> Result<Checkpoint, String> {
        let note = mcp_tlog::note::parse(&self.note).map_err(|e| {
            format!(
                "the checkpoint of size {} is not a signed note: {e}",
                self.tree_size
            )
        })?;
        let stated = Checkpoint::parse(&note.text)
            .map_err(|e| format!("the checkpoint of size {}: {e}", self.tree_size))?;
        if stated.size != self.tree_size || stated.root != self.root {
            return Err(format!(
                "the checkpoint of size {} states size {} and another root than the one stored \
                 beside it",
                self.tree_size, stated.size
            ));
        }
        Ok(stated)
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredCheckpoint, StoreError> {
    let root: String = row.try_get(1)?;
    let root = BASE64
        .decode(root.as_bytes())
        .ok()
        .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| StoreError::Tree("a stored checkpoint's root is not a hash".into()))?;
    Ok(StoredCheckpoint {
        tree_size: row.try_get::<i64, _>(0)? as u64,
        root,
        note: row.try_get(2)?,
        key_id: row.try_get(3)?,
        recorded_at: row.try_get(4)?,
    })
}

const COLUMNS: &str = "tree_size, root, note, key_id, recorded_at";

/// The checkpoint of the largest size, if any.
pub async fn latest(conn: &mut AnyConnection) -> Result<Option<StoredCheckpoint>, StoreError> {
    let sql = format!("select {COLUMNS} from checkpoints order by tree_size desc limit 1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The latest signed checkpoint, as a reader of the log must find it again: its note states
/// the size and root stored beside it and, when `key` is given, its signature verifies. `Err`
/// says why it cannot be trusted.
pub async fn latest_signed(
    conn: &mut AnyConnection,
    key: Option<&Verifier>,
) -> Result<Result<Option<Checkpoint>, String>, StoreError> {
    let Some(stored) = latest(conn).await? else {
        return Ok(Ok(None));
    };
    let stated = match stored.stated() {
        Ok(stated) => stated,
        Err(reason) => return Ok(Err(reason)),
    };
    if let Some(key) = key {
        if let Err(error) = Checkpoint::open(&stored.note, key) {
            return Ok(Err(format!(
                "the signature of the checkpoint of size {} does not verify with the log's key \
                 {}: {error}",
                stored.tree_size,
                key.vkey()
            )));
        }
    }
    Ok(Ok(Some(stated)))
}

/// The checkpoint of exactly `size`, if one was signed.
pub async fn at_size(
    conn: &mut AnyConnection,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let sql = format!("select {COLUMNS} from checkpoints where tree_size = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(size as i64)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The stored checkpoints of sizes in `after + 1 ..= through`, smallest first, at most `limit`.
pub async fn between(
    conn: &mut AnyConnection,
    after: u64,
    through: u64,
    limit: i64,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from checkpoints where tree_size > $1 and tree_size <= $2 \
         order by tree_size limit $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(through.min(i64::MAX as u64) as i64)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Every stored checkpoint, smallest first.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = format!("select {COLUMNS} from checkpoints order by tree_size");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The ids of the keys that signed the stored checkpoints.
pub async fn key_ids(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("select distinct key_id from checkpoints order by key_id")
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Checks that the stored log, up to `size`, extends `signed`: the tree's root at its size is
/// the signed root, a consistency proof to `size` verifies, and the events after it chain and
/// are the tree's leaves. Returns the tree's root at `size`.
pub async fn check_extends(
    store: &EventStore,
    conn: &mut AnyConnection,
    signed: &StoredCheckpoint,
    size: u64,
    committed: &[RawEvent],
) -> Result<Hash, CheckpointError> {
    let inconsistent = |reason: String| CheckpointError::Inconsistent {
        signed: signed.tree_size,
        size,
        reason,
    };
    if size < signed.tree_size {
        return Err(inconsistent(format!(
            "the log holds {size} events, fewer than the {} signed",
            signed.tree_size
        )));
    }
    let root = tree::root(conn, size)
        .await
        .map_err(|e| inconsistent(e.to_string()))?;
    let old_root = tree::root(conn, signed.tree_size)
        .await
        .map_err(|e| inconsistent(e.to_string()))?;
    if old_root != signed.root {
        return Err(inconsistent(format!(
            "the tree's root at size {} is not the signed one",
            signed.tree_size
        )));
    }
    if signed.tree_size > 0 {
        let proof = tree::consistency_proof(conn, signed.tree_size, size)
            .await
            .map_err(|e| inconsistent(e.to_string()))?;
        merkle::verify_consistency(signed.tree_size, size, &signed.root, &root, &proof)
            .map_err(|e| inconsistent(format!("the consistency proof fails: {e}")))?;
    }
    check_new_events(store, conn, signed.tree_size, size, committed)
        .await
        .map_err(|reason| match reason {
            Ok(reason) => inconsistent(reason),
            Err(store) => CheckpointError::Store(store),
        })?;
    Ok(root)
}

/// The events at positions `from + 1 ..= to` chain onto the event at `from` and are the
/// tree's leaves. `Err(Ok(reason))` names the first that is not.
///
/// `committed` holds events this process's writer committed (ascending positions, not
/// necessarily contiguous): where they cover a position, the event is taken from there rather
/// than read back from the log, so a signer that follows its writer rereads only what other
/// processes appended. The check is the same (each event's link checked, each
/// compared with the tree's stored leaf; a held event's hash is the one its writer computed, not
/// recomputed); what a checkpoint then commits to is what the writer wrote, and a row changed
/// in the table since is found by `verify`, its leaf no longer its hash.
async fn check_new_events(
    store: &EventStore,
    conn: &mut AnyConnection,
    from: u64,
    to: u64,
    committed: &[RawEvent],
) -> Result<(), Result<String, StoreError>> {
    let mut prev = if from == 0 {
        crate::hash::GENESIS.to_owned()
    } else {
        let page = store.read_raw_page(from as i64 - 1, 1).await.map_err(Err)?;
        match page.first() {
            Some(event) if event.position == from as i64 => event.hash.clone(),
            _ => return Err(Ok(format!("the event at position {from} is missing"))),
        }
    };
    let mut position = from + 1;
    while position <= to {
        let limit = 2_000.min(to - position + 1);
        let held = contiguous_run(committed, position, limit);
        // The writer computed these events' hashes from these very fields: their links and
        // leaves are checked, their hashes not recomputed.
        let from_writer = !held.is_empty();
        let read;
        let page = if held.is_empty() {
            read = store
                .read_raw_page(position as i64 - 1, limit as i64)
                .await
                .map_err(Err)?;
            &read[..]
        } else {
            held
        };
        if page.is_empty() {
            return Err(Ok(format!("the event at position {position} is missing")));
        }
        let indexes: Vec<u64> = (0..page.len() as u64)
            .map(|i| merkle::stored_hash_index(0, position - 1 + i))
            .collect();
        let leaves = tree::read_hashes(conn, &indexes)
            .await
            .map_err(|e| Err(e.into()))?;
        for (event, leaf) in page.iter().zip(&leaves) {
            if event.position != position as i64 {
                return Err(Ok(format!("the event at position {position} is missing")));
            }
            let fields = ChainFields {
                position: event.position,
                stream_id: &event.stream_id,
                stream_version: event.stream_version,
                event_type: &event.event_type,
                event_version: event.event_version,
                payload: &event.payload,
                metadata: &event.metadata,
                recorded_at: &event.recorded_at,
            };
            let chains = event.prev_hash == prev
                && (from_writer || chain_hash(&prev, &fields) == event.hash);
            if !chains {
                return Err(Ok(format!(
                    "the event at position {position} does not chain onto the one before"
                )));
            }
            if tree::leaf_of(&event.hash).ok() != Some(*leaf) {
                return Err(Ok(format!(
                    "the tree's leaf {} is not the event at position {position}",
                    position - 1
                )));
            }
            prev = event.hash.clone();
            position += 1;
        }
        // A page's checks take a few milliseconds of CPU: requests on this worker go first.
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// The events of `committed` at positions `position, position + 1, …` without a gap, at most
/// `limit` of them (empty when `committed` does not hold `position`).
fn contiguous_run(committed: &[RawEvent], position: u64, limit: u64) -> &[RawEvent] {
    let Ok(start) = committed.binary_search_by_key(&(position as i64), |e| e.position) else {
        return &[];
    };
    let run = committed[start..]
        .iter()
        .zip(position as i64..)
        .take(limit as usize)
        .take_while(|(event, expected)| event.position == *expected)
        .count();
    &committed[start..start + run]
}

/// Checks that the signed checkpoint `later` extends the tree of `size` leaves whose root is
/// `root`: the stored tree's root at its size is the signed one, and a consistency proof from
/// `size` to it verifies against both roots.
async fn check_extended_by(
    conn: &mut AnyConnection,
    size: u64,
    root: &Hash,
    later: &StoredCheckpoint,
) -> Result<(), CheckpointError> {
    let inconsistent = |reason: String| CheckpointError::Inconsistent {
        signed: later.tree_size,
        size,
        reason,
    };
    let later_root = tree::root(conn, later.tree_size)
        .await
        .map_err(|e| inconsistent(e.to_string()))?;
    if later_root != later.root {
        return Err(inconsistent(format!(
            "the tree's root at size {} is not the signed one",
            later.tree_size
        )));
    }
    if size > 0 {
        let proof = tree::consistency_proof(conn, size, later.tree_size)
            .await
            .map_err(|e| inconsistent(e.to_string()))?;
        merkle::verify_consistency(size, later.tree_size, root, &later.root, &proof).map_err(
            |e| {
                inconsistent(format!(
                    "the signed checkpoint does not extend this tree: {e}"
                ))
            },
        )?;
    }
    Ok(())
}

/// Signs and stores a checkpoint of `size` (at most the log's head), after checking that the
/// log extends the latest stored checkpoint below that size and that the first one above it
/// (if any: a checkpoint of the past, for an export) extends the new one.
pub async fn sign_at(
    store: &EventStore,
    signer: &Signer,
    size: u64,
    now: Timestamp,
) -> Result<StoredCheckpoint, CheckpointError> {
    sign_at_checked(store, signer, size, now, false, &[]).await
}

/// [`sign_at`]; with `from_start`, the events before the checkpoint below are checked too (they
/// chain from position 1 and are the tree's leaves), so a log changed anywhere — not only
/// since the last checkpoint — is refused. A process signs so the first time (its predecessor
/// may have stopped long ago, and the log been changed meanwhile).
pub async fn sign_at_checked(
    store: &EventStore,
    signer: &Signer,
    size: u64,
    now: Timestamp,
    from_start: bool,
    committed: &[RawEvent],
) -> Result<StoredCheckpoint, CheckpointError> {
    let mut conn = store.database().pool().acquire().await?;
    if let Some(stored) = at_size(&mut conn, size).await? {
        return Ok(stored);
    }
    let sql = format!(
        "select {COLUMNS} from checkpoints where tree_size < $1 order by tree_size desc limit 1"
    );
    let below = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(size as i64)
        .fetch_optional(&mut *conn)
        .await?;
    let below = below.as_ref().map(from_row).transpose()?;
    let root = match &below {
        Some(signed) if from_start => {
            let root = check_extends(store, &mut conn, signed, size, committed).await?;
            check_new_events(store, &mut conn, 0, signed.tree_size, committed)
                .await
                .map_err(|reason| match reason {
                    Ok(reason) => CheckpointError::Inconsistent {
                        signed: signed.tree_size,
                        size,
                        reason,
                    },
                    Err(store) => CheckpointError::Store(store),
                })?;
            root
        }
        Some(signed) => check_extends(store, &mut conn, signed, size, committed).await?,
        None => {
            let genesis = StoredCheckpoint {
                tree_size: 0,
                root: merkle::empty_root(),
                note: String::new(),
                key_id: String::new(),
                recorded_at: String::new(),
            };
            check_extends(store, &mut conn, &genesis, size, committed).await?
        }
    };
    // A size below the latest checkpoint (an export of the past): the tree signed later must
    // extend this one too, or the log changed since.
    let sql = format!(
        "select {COLUMNS} from checkpoints where tree_size > $1 order by tree_size limit 1"
    );
    let above = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(size as i64)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(later) = above.as_ref().map(from_row).transpose()? {
        check_extended_by(&mut conn, size, &root, &later).await?;
    }
    let checkpoint = Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root,
    };
    let note = checkpoint
        .sign(signer)
        .map_err(|e| CheckpointError::Signing(e.to_string()))?;
    let stored = StoredCheckpoint {
        tree_size: size,
        root,
        note,
        key_id: format!("{:08x}", signer.key_id()),
        recorded_at: now.to_string(),
    };
    // Another replica may have signed the same size: the same key signs the same note.
    let insert = match store.database().backend() {
        crate::Backend::Sqlite => "insert or ignore into checkpoints",
        crate::Backend::Postgres => "insert into checkpoints",
    };
    let conflict = match store.database().backend() {
        crate::Backend::Sqlite => "",
        crate::Backend::Postgres => " on conflict (tree_size) do nothing",
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{insert} (tree_size, root, note, key_id, recorded_at) values ($1, $2, $3, $4, $5){conflict}"
    )))
    .bind(size as i64)
    .bind(BASE64.encode(root))
    .bind(&stored.note)
    .bind(&stored.key_id)
    .bind(&stored.recorded_at)
    .execute(&mut *conn)
    .await?;
    Ok(at_size(&mut conn, size).await?.unwrap_or(stored))
}

/// Signs a checkpoint of the log's head if the log grew since the latest one. `None`: nothing
/// new to sign.
pub async fn sign_if_grown(
    store: &EventStore,
    signer: &Signer,
    now: Timestamp,
) -> Result<Option<StoredCheckpoint>, CheckpointError> {
    sign_if_grown_checked(store, signer, now, false, &[]).await
}

/// [`sign_if_grown`], checking the whole log when `from_start` (see [`sign_at_checked`]).
pub async fn sign_if_grown_checked(
    store: &EventStore,
    signer: &Signer,
    now: Timestamp,
    from_start: bool,
    committed: &[RawEvent],
) -> Result<Option<StoredCheckpoint>, CheckpointError> {
    let (head, _) = store.head().await?;
    let head = head as u64;
    let mut conn = store.database().pool().acquire().await?;
    if let Some(latest) = latest(&mut conn).await? {
        if latest.tree_size == head {
            return Ok(None);
        }
        if latest.tree_size > head {
            return Err(CheckpointError::Inconsistent {
                signed: latest.tree_size,
                size: head,
                reason: format!(
                    "the log's head is at {head}, below the {} events already signed: events \
                     were removed",
                    latest.tree_size
                ),
            });
        }
    } else if head == 0 {
        return Ok(None);
    }
    drop(conn);
    sign_at_checked(store, signer, head, now, from_start, committed)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(position: i64) -> RawEvent {
        RawEvent {
            position,
            stream_id: "s".into(),
            stream_version: 1,
            event_type: "t".into(),
            event_version: 1,
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn positions(run: &[RawEvent]) -> Vec<i64> {
        run.iter().map(|e| e.position).collect()
    }

    #[test]
    fn a_run_is_the_held_events_from_a_position_without_a_gap() {
        let held: Vec<RawEvent> = [3, 4, 5, 7, 8].into_iter().map(at).collect();
        assert_eq!(positions(contiguous_run(&held, 3, 10)), [3, 4, 5]);
        assert_eq!(positions(contiguous_run(&held, 4, 1)), [4]);
        assert_eq!(positions(contiguous_run(&held, 7, 10)), [7, 8]);
        assert!(contiguous_run(&held, 6, 10).is_empty(), "6 was not held");
        assert!(contiguous_run(&held, 1, 10).is_empty());
        assert!(contiguous_run(&[], 1, 10).is_empty());
    }
}

//! The RFC 6962 Merkle tree over the log, stored as it grows.
//!
//! Leaf `i` is the event at position `i + 1`; its leaf data is the 32 bytes of that event's hash.
//! The tree is kept as its *stored hashes* — the hash of every complete subtree, numbered as in
//! Go's `sumdb/tlog` (`mcp_tlog::merkle`) — in `tlog_hashes`, about two rows per event, written
//! in the same transaction as the events they cover (`WriteTx::commit`). Rows are never changed
//! (triggers refuse it). So the root of any size, an inclusion or a consistency proof, and any
//! `tlog-tiles` tile cost one query of O(log n) (a tile: 256) rows, never a walk of the log.

use crate::store::StoreError;
use mcp_tlog::merkle::{self, Hash};
use mcp_tlog::{Tile, TreeError};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum TreeStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the Merkle tree: {0}")]
    Tree(#[from] TreeError),
    #[error(
        "the Merkle tree's stored hash {0} is missing (the tree is behind the log or damaged)"
    )]
    Missing(u64),
    #[error("the Merkle tree's stored hash {0} is not 32 bytes")]
    Malformed(u64),
}

impl From<sqlx::Error> for TreeStoreError {
    fn from(error: sqlx::Error) -> Self {
        TreeStoreError::Store(StoreError::Database(error))
    }
}

/// The stored hashes at `indexes`, in that order.
pub async fn read_hashes(
    conn: &mut AnyConnection,
    indexes: &[u64],
) -> Result<Vec<Hash>, TreeStoreError> {
    let mut found: HashMap<u64, Hash> = HashMap::with_capacity(indexes.len());
    let mut wanted: Vec<u64> = indexes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let backend = crate::db::Backend::of(conn);
    for chunk in wanted.chunks(1_000) {
        let sql = format!(
            "select idx, hash from tlog_hashes where idx in ({})",
            backend.placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for index in chunk {
            query = query.bind(*index as i64);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let index = row.try_get::<i64, _>(0)? as u64;
            let bytes: Vec<u8> = row.try_get(1)?;
            let hash =
                Hash::try_from(bytes.as_slice()).map_err(|_| TreeStoreError::Malformed(index))?;
            found.insert(index, hash);
        }
    }
    indexes
        .iter()
        .map(|index| {
            found
                .get(index)
                .copied()
                .ok_or(TreeStoreError::Missing(*index))
        })
        .collect()
}

/// The number of stored hashes (`stored_hash_count` of the tree's size when it is whole).
pub async fn stored_count(conn: &mut AnyConnection) -> Result<u64, TreeStoreError> {
    let count: i64 = sqlx::query_scalar("select count(*) from tlog_hashes")
        .fetch_one(&mut *conn)
        .await?;
    Ok(count as u64)
}

/// Whether the stored tree has grown to `size` leaves (a database from before the tree has
/// not, until `catch_up`).
pub async fn holds_size(conn: &mut AnyConnection, size: u64) -> Result<bool, TreeStoreError> {
    Ok(stored_count(conn).await? >= merkle::stored_hash_count(size))
}

/// The root of the tree of the log's first `size` events.
pub async fn root(conn: &mut AnyConnection, size: u64) -> Result<Hash, TreeStoreError> {
    let hashes = read_hashes(conn, &merkle::tree_hash_indexes(size)?).await?;
    Ok(merkle::tree_hash_from_hashes(size, &hashes)?)
}

/// The inclusion proof of leaf `index` (position `index + 1`) in the tree of `size` leaves.
pub async fn inclusion_proof(
    conn: &mut AnyConnection,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeStoreError> {
    let hashes = read_hashes(conn, &merkle::inclusion_proof_indexes(index, size)?).await?;
    Ok(merkle::inclusion_proof_from_hashes(index, size, &hashes)?)
}

/// The consistency proof from the tree of `m` leaves to the tree of `n`.
pub async fn consistency_proof(
    conn: &mut AnyConnection,
    m: u64,
    n: u64,
) -> Result<Vec<Hash>, TreeStoreError> {
    let hashes = read_hashes(conn, &merkle::consistency_proof_indexes(m, n)?).await?;
    Ok(merkle::consistency_proof_from_hashes(m, n, &hashes)?)
}

/// A `tlog-tiles` hash tile: its hashes, concatenated.
pub async fn tile_data(conn: &mut AnyConnection, tile: &Tile) -> Result<Vec<u8>, TreeStoreError> {
    Ok(read_hashes(conn, &tile.stored_indexes()?).await?.concat())
}

/// The leaf hash of an event, from its hex `hash` column.
pub fn leaf_of(event_hash: &str) -> Result<Hash, TreeError> {
    Ok(merkle::leaf_hash(&merkle::leaf_data_from_event_hash(
        event_hash,
    )?))
}

/// Stores the hashes that appending `leaf_hashes` to a tree of `old_size` leaves adds; inside
/// the transaction that appends the events they stand for.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    old_size: u64,
    leaf_hashes: &[Hash],
) -> Result<(), TreeStoreError> {
    if leaf_hashes.is_empty() {
        return Ok(());
    }
    let new_size = old_size + leaf_hashes.len() as u64;
    let old = read_hashes(conn, &merkle::append_indexes(old_size, new_size)?).await?;
    let new = merkle::append_from_hashes(old_size, leaf_hashes, &old)?;
    let first = merkle::stored_hash_count(old_size);
    insert(conn, first, &new).await
}

/// Inserts stored hashes at consecutive indexes from `first`, in multi-row statements.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    first: u64,
    hashes: &[Hash],
) -> Result<(), TreeStoreError> {
    let backend = crate::db::Backend::of(conn);
    for (chunk_number, chunk) in hashes.chunks(5_000).enumerate() {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", backend.placeholders(i * 2 + 1, 2)))
            .collect();
        let sql = format!(
            "insert into tlog_hashes (idx, hash) values {}",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let base = first + (chunk_number * 5_000) as u64;
        for (i, hash) in chunk.iter().enumerate() {
            query = query.bind((base + i as u64) as i64).bind(hash.to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The size of the tree whose stored hashes number `count`, if `count` is such a number.
pub fn size_of_count(count: u64) -> Option<u64> {
    // stored_hash_count(s) = 2s - popcount(s) grows with s, so the size lies near count / 2.
    let mut low = count / 2;
    while merkle::stored_hash_count(low) < count {
        low += 1;
    }
    (merkle::stored_hash_count(low) == count).then_some(low)
}

/// Brings the tree up to the log's head: a database from before the tree (or one whose tree
/// was lost) gets the hashes of every event it lacks, under the ledger lock. Returns how many
/// leaves were added.
pub async fn catch_up(store: &crate::EventStore) -> Result<u64, StoreError> {
    let mut tx = store.begin_write().await?;
    let head = tx.position() as u64;
    let count = stored_count(tx.conn()).await?;
    let Some(size) = size_of_count(count) else {
        let _ = tx.rollback().await;
        return Err(StoreError::Tree(format!(
            "the Merkle tree holds {count} stored hashes, which no tree size has"
        )));
    };
    if size >= head {
        tx.rollback().await?;
        if size > head {
            return Err(StoreError::Tree(format!(
                "the Merkle tree covers {size} events but the log's head is at {head}: \
                 events are missing from the log"
            )));
        }
        return Ok(0);
    }
    let mut done = size;
    while done < head {
        let page = store.read_raw_page(done as i64, 10_000).await?;
        if page.is_empty() {
            break;
        }
        let leaves = page
            .iter()
            .map(|e| leaf_of(&e.hash))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Tree(e.to_string()))?;
        append(tx.conn(), done, &leaves).await?;
        done += leaves.len() as u64;
    }
    tx.commit().await.map_err(|e| match e {
        crate::AppendError::Store(store) => store,
        other => StoreError::Tree(other.to_string()),
    })?;
    tracing::info!(
        leaves = done - size,
        "built the Merkle tree for events from before it"
    );
    Ok(done - size)
}

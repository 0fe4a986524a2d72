//! The Merkle tree grows with the log in the same transaction, and answers roots and proofs
//! that agree with an independent in-memory tree, on both backends.

use mcp_events::testing::TestDatabase;
use mcp_events::tree;
use mcp_events::{
    both_backends, Backend, DomainEvent, EventStore, ExpectedVersion, Metadata, StreamId, Timestamp,
};
use mcp_tlog::merkle::{self, MemoryHashStore};

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

/// Appends `count` events in one transaction; returns the log's event hashes so far.
async fn append(store: &EventStore, from: i64, count: i64) {
    let mut tx = store.begin_write().await.unwrap();
    for user in from..from + count {
        tx.append(
            &StreamId::user(user),
            ExpectedVersion::NoStream,
            &[DomainEvent::UserDisabled { user_id: user }],
            &Metadata::actor("test"),
            now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn memory_tree(store: &EventStore) -> MemoryHashStore {
    let mut memory = MemoryHashStore::new();
    for event in store.read_raw_page(0, i64::MAX).await.unwrap() {
        memory
            .append_leaves(&[merkle::leaf_data_from_event_hash(&event.hash).unwrap()])
            .unwrap();
    }
    memory
}

async fn the_stored_tree_agrees_with_an_independent_one(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect().await);
    let mut next = 1;
    // Batches of awkward sizes, across tile (256) and subtree boundaries.
    for count in [1, 1, 2, 5, 8, 13, 100, 255, 1, 300, 3] {
        append(&store, next, count).await;
        next += count;
        let size = (next - 1) as u64;
        let memory = memory_tree(&store).await;
        let mut conn = store.database().pool().acquire().await.unwrap();
        assert_eq!(
            tree::stored_count(&mut conn).await.unwrap(),
            merkle::stored_hash_count(size)
        );
        let root = tree::root(&mut conn, size).await.unwrap();
        assert_eq!(root, memory.root().unwrap(), "size {size}");
        for index in [0, size / 2, size - 1] {
            let proof = tree::inclusion_proof(&mut conn, index, size).await.unwrap();
            let leaf = merkle::leaf_hash(
                &merkle::leaf_data_from_event_hash(
                    &store.read_raw_page(index as i64, 1).await.unwrap()[0].hash,
                )
                .unwrap(),
            );
            merkle::verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        }
        for m in [1, size / 3 + 1, size] {
            let old_root = tree::root(&mut conn, m).await.unwrap();
            let proof = tree::consistency_proof(&mut conn, m, size).await.unwrap();
            merkle::verify_consistency(m, size, &old_root, &root, &proof).unwrap();
        }
    }
}

/// A log from before the tree (its stored hashes gone) gets them back from its events.
async fn a_log_without_its_tree_catches_up(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let database = db.connect().await;
    let store = EventStore::new(database.clone());
    append(&store, 1, 700).await;
    let before = {
        let mut conn = database.pool().acquire().await.unwrap();
        tree::root(&mut conn, 700).await.unwrap()
    };
    let drop = match backend {
        Backend::Sqlite => "drop trigger tlog_hashes_reject_delete; delete from tlog_hashes",
        Backend::Postgres => {
            "drop trigger tlog_hashes_reject_delete on tlog_hashes; delete from tlog_hashes"
        }
    };
    sqlx::raw_sql(drop).execute(database.pool()).await.unwrap();
    assert_eq!(tree::catch_up(&store).await.unwrap(), 700);
    assert_eq!(
        tree::catch_up(&store).await.unwrap(),
        0,
        "nothing more to do"
    );
    let mut conn = database.pool().acquire().await.unwrap();
    assert_eq!(tree::root(&mut conn, 700).await.unwrap(), before);
}

/// The tree is as immutable as the log.
async fn the_stored_tree_cannot_be_changed(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let database = db.connect().await;
    let store = EventStore::new(database.clone());
    append(&store, 1, 3).await;
    let pool = database.pool();
    let update = sqlx::query("update tlog_hashes set idx = idx + 100")
        .execute(pool)
        .await;
    let delete = sqlx::query("delete from tlog_hashes").execute(pool).await;
    assert!(update.unwrap_err().to_string().contains("immutable"));
    assert!(delete.unwrap_err().to_string().contains("immutable"));
}

#[test]
fn tree_sizes_follow_from_their_stored_counts() {
    for size in 0..2_000u64 {
        assert_eq!(
            tree::size_of_count(merkle::stored_hash_count(size)),
            Some(size)
        );
    }
    assert_eq!(
        tree::size_of_count(2),
        None,
        "no tree has two stored hashes"
    );
}

both_backends! {
    agrees => the_stored_tree_agrees_with_an_independent_one,
    catches_up => a_log_without_its_tree_catches_up,
    immutable => the_stored_tree_cannot_be_changed,
}

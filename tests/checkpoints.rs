//! Signed checkpoints: signed as the log grows, verifiable with the vkey, consistent with each
//! other; and never signed for a log that no longer extends the last one.

use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, checkpoints, tree, Backend, EventStore, Metadata};
use mcp_manager::checkpointer::SignedLog;
use mcp_manager::clock::{Clock, SystemClock};
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{Ledger, LedgerSetup};
use mcp_tlog::merkle;
use mcp_tlog::{Checkpoint, Signer, Verifier};

async fn ledger(db: &TestDatabase) -> Ledger {
    let store = EventStore::new(db.connect().await);
    Ledger::open(store, LedgerSetup::new(EncryptionKey::generate()))
        .await
        .unwrap()
}

fn log() -> SignedLog {
    SignedLog::new(Signer::from_seed(mcp_tlog::DEFAULT_ORIGIN, &[7; 32]).unwrap())
}

async fn register(ledger: &Ledger, from: usize, count: usize) {
    for n in from..from + count {
        ledger
            .submit(RegisterUser {
                email: format!("user{n}@example.com"),
                name: "User".into(),
                metadata: Metadata::actor("test"),
            })
            .await
            .unwrap();
    }
}

async fn checkpoints_follow_the_log_and_extend_each_other(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = ledger(&db).await;
    let log = log();
    let store = ledger.store();
    assert!(
        log.sign_if_grown(store, SystemClock.now())
            .await
            .unwrap()
            .is_none(),
        "nothing to sign"
    );
    register(&ledger, 0, 5).await;
    let first = log
        .sign_if_grown(store, SystemClock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(
        log.sign_if_grown(store, SystemClock.now())
            .await
            .unwrap()
            .is_none(),
        "not grown"
    );
    register(&ledger, 5, 300).await;
    let second = log
        .sign_if_grown(store, SystemClock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.tree_size, second.tree_size), (5, 305));

    let verifier = Verifier::parse(&log.vkey()).unwrap();
    let mut conn = store.database().pool().acquire().await.unwrap();
    for stored in [&first, &second] {
        let opened = Checkpoint::open(&stored.note, &verifier).unwrap();
        assert_eq!(opened.size, stored.tree_size);
        assert_eq!(
            opened.root,
            tree::root(&mut conn, stored.tree_size).await.unwrap()
        );
        assert_eq!(opened.origin, mcp_tlog::DEFAULT_ORIGIN);
    }
    let proof = tree::consistency_proof(&mut conn, 5, 305).await.unwrap();
    merkle::verify_consistency(5, 305, &first.root, &second.root, &proof).unwrap();
    let all = checkpoints::all(&mut conn).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.tree_size).collect::<Vec<_>>(),
        [5, 305]
    );
    assert!(log.refusal().is_none());
}

/// With the triggers dropped (as a database superuser could), the newest events and their tree
/// rows are deleted and the head reset; then new, different events are appended. The chain
/// verifies, but the checkpoint of the old size no longer matches: nothing is signed.
async fn a_truncated_and_regrown_log_is_never_signed(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = ledger(&db).await;
    let log = log();
    register(&ledger, 0, 40).await;
    let signed = log
        .sign_if_grown(ledger.store(), SystemClock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed.tree_size, 40);

    let pool = db.connect().await;
    let untrigger = match backend {
        Backend::Sqlite => {
            "drop trigger events_reject_delete; drop trigger tlog_hashes_reject_delete;"
        }
        Backend::Postgres => {
            "drop trigger events_reject_delete on events; \
             drop trigger tlog_hashes_reject_delete on tlog_hashes;"
        }
    };
    sqlx::raw_sql(untrigger).execute(pool.pool()).await.unwrap();
    sqlx::query("delete from events where position > 30")
        .execute(pool.pool())
        .await
        .unwrap();
    let keep = merkle::stored_hash_count(30) as i64;
    sqlx::query("delete from tlog_hashes where idx >= $1")
        .bind(keep)
        .execute(pool.pool())
        .await
        .unwrap();
    let hash: String = sqlx::query_scalar("select hash from events where position = 30")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    sqlx::query("update ledger_head set position = 30, hash = $1")
        .bind(&hash)
        .execute(pool.pool())
        .await
        .unwrap();
    assert!(
        matches!(
            ledger.store().verify().await.unwrap(),
            mcp_events::VerifyOutcome::Valid { .. }
        ),
        "the chain alone cannot tell"
    );

    // Shorter than what was signed.
    let refused = log.sign_if_grown(ledger.store(), SystemClock.now()).await;
    assert!(
        matches!(
            refused,
            Err(checkpoints::CheckpointError::Inconsistent {
                signed: 40,
                size: 30,
                ..
            })
        ),
        "{refused:?}"
    );
    // The projections remember the old head: nothing opens the ledger on the shorter log.
    let refused = Ledger::open(
        EventStore::new(db.connect().await),
        LedgerSetup::new(EncryptionKey::generate()),
    )
    .await
    .err()
    .expect("a truncated log is refused");
    assert!(refused.to_string().contains("truncation"), "{refused}");
    // Nor when they are forgotten: the rebuild they would need stops short of the signed size.
    let mut conn = pool.pool().acquire().await.unwrap();
    let kept: Vec<(String, i64, i64)> =
        sqlx::query_as("select name, position, version from projection_checkpoints")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    sqlx::query("delete from projection_checkpoints")
        .execute(&mut *conn)
        .await
        .unwrap();
    let refused = Ledger::open(
        EventStore::new(db.connect().await),
        LedgerSetup::new(EncryptionKey::generate()),
    )
    .await
    .err()
    .expect("a rebuild short of the signed checkpoint is refused");
    assert!(
        refused.to_string().contains("fewer than the 40"),
        "{refused}"
    );
    // A thorough attacker forges the projections too; a fresh ledger (no memory of the old
    // head) then appends other events past the old size.
    for (name, _, version) in kept {
        sqlx::query(
            "insert into projection_checkpoints (name, position, version) values ($1, 30, $2)",
        )
        .bind(name)
        .bind(version)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    sqlx::query("delete from audit_log where position > 30")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let other = self::ledger(&db).await;
    register(&other, 1_000, 20).await;
    let refused = log.sign_if_grown(other.store(), SystemClock.now()).await;
    match refused {
        Err(checkpoints::CheckpointError::Inconsistent {
            signed,
            size,
            reason,
        }) => {
            assert_eq!((signed, size), (40, 50));
            assert!(reason.contains("root at size 40"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let refusal = log.refusal().expect("the refusal is kept for /readyz");
    assert!(
        refusal.contains("40") && refusal.contains("50"),
        "{refusal}"
    );
    let mut conn = pool.pool().acquire().await.unwrap();
    assert_eq!(
        checkpoints::latest(&mut conn)
            .await
            .unwrap()
            .unwrap()
            .tree_size,
        40
    );
}

/// A signer that follows its writer takes the events it committed from memory and reads back
/// only what another process appended; what it signs is the tree either way, and what a
/// checkpoint covers is not held again.
async fn a_signer_following_its_writer_signs_the_tree(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = ledger(&db).await;
    let other = self::ledger(&db).await;
    let log = std::sync::Arc::new(log());
    let follower = tokio::spawn(log.clone().follow(ledger.feed()));
    let store = ledger.store();
    for round in 0..4 {
        register(&ledger, round * 100, 30).await;
        // Another replica's appends, between this process's.
        register(&other, round * 100 + 50, 7).await;
        register(&ledger, round * 100 + 70, 5).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            log.held_events() > 0,
            "the follower holds this process's commits"
        );
        let signed = log
            .sign_if_grown(store, SystemClock.now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(signed.tree_size, (round as u64 + 1) * 42);
        let mut conn = store.database().pool().acquire().await.unwrap();
        assert_eq!(
            signed.root,
            tree::root(&mut conn, signed.tree_size).await.unwrap()
        );
        assert_eq!(log.held_events(), 0, "a checkpoint's events are let go");
    }
    // Another replica signs first: what its checkpoint covers is let go too.
    register(&ledger, 1000, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(log.held_events() > 0);
    let replica = self::log();
    let theirs = replica
        .sign_if_grown(store, SystemClock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.tree_size, 4 * 42 + 10);
    assert!(log
        .sign_if_grown(store, SystemClock.now())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        log.held_events(),
        0,
        "another replica's checkpoint covers them"
    );
    follower.abort();
    assert!(log.refusal().is_none());
}

both_backends! {
    signed_as_it_grows => checkpoints_follow_the_log_and_extend_each_other,
    truncation_refused => a_truncated_and_regrown_log_is_never_signed,
    following_the_writer => a_signer_following_its_writer_signs_the_tree,
}

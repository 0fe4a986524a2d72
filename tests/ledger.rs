//! The write entry point: group commit, isolation of failing commands, and callers that vanish.

use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend, EventStore, Metadata, VerifyOutcome};
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::CommandError;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::domain::DomainError;
use mcp_manager::ledger::{LeasePolicy, Ledger};
use mcp_projections::queries;
use std::sync::Arc;
use std::time::Duration;

async fn open(db: &TestDatabase) -> Ledger {
    let store = EventStore::new(db.connect().await);
    Ledger::open(
        store,
        Arc::new(SystemClock),
        EncryptionKey::generate(),
        LeasePolicy::default(),
    )
    .await
    .unwrap()
}

fn register(email: &str) -> RegisterUser {
    RegisterUser {
        email: email.into(),
        name: "Someone".into(),
        metadata: Metadata::actor("test"),
    }
}

async fn concurrent_commands_share_transactions_without_mixing_outcomes(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    // 100 registrations, every fourth one a duplicate of an earlier email.
    let submits = (0..100).map(|i| {
        let ledger = ledger.clone();
        let email = if i % 4 == 3 {
            format!("user{}@x.io", i - 1)
        } else {
            format!("user{i}@x.io")
        };
        tokio::spawn(async move { ledger.submit(register(&email)).await })
    });
    let results: Vec<_> = futures::future::join_all(submits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(CommandError::Domain(DomainError::EmailTaken(_)))))
        .count();
    assert_eq!((created, refused), (75, 25));
    let mut ids: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=75).collect::<Vec<_>>(),
        "ids are unique and gap-free"
    );
    assert_eq!(
        ledger.store().verify().await.unwrap(),
        VerifyOutcome::Valid {
            events: 75,
            head: ledger.store().head().await.unwrap().1
        }
    );
}

async fn a_caller_that_goes_away_leaves_no_open_transaction(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    for i in 0..20 {
        // Poll the submission once, then drop it: the command is already queued.
        let submission = ledger.submit(register(&format!("gone{i}@x.io")));
        let _ = tokio::time::timeout(Duration::from_micros(1), submission).await;
    }
    let next = tokio::time::timeout(
        Duration::from_secs(30),
        ledger.submit(register("next@x.io")),
    )
    .await
    .expect("the ledger is stalled after callers went away");
    let next_id = next.unwrap();

    // Every abandoned command either ran to the end or never started; none is half-applied.
    let mut conn = ledger.store().database().pool().acquire().await.unwrap();
    let mut users = 0;
    for id in 1..=next_id {
        if queries::user(&mut conn, id).await.unwrap().is_some() {
            users += 1;
        }
    }
    assert_eq!(users, next_id);
    let (events, _) = ledger.store().head().await.unwrap();
    assert_eq!(
        events, next_id,
        "one event per registered user, nothing else"
    );
    assert!(matches!(
        ledger.store().verify().await.unwrap(),
        VerifyOutcome::Valid { .. }
    ));
}

both_backends! {
    group_commit => concurrent_commands_share_transactions_without_mixing_outcomes,
    vanishing_callers => a_caller_that_goes_away_leaves_no_open_transaction,
}

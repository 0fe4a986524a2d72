//! The event store's guarantees, on both backends.

use futures::TryStreamExt;
use mcp_events::testing::TestDatabase;
use mcp_events::{
    both_backends, AppendError, Backend, DbOptions, DomainEvent, EventStore, ExpectedVersion,
    Metadata, RecordedEvent, StreamId, Timestamp, VerifyOutcome, WriteTx,
};
use std::time::Duration;

fn disabled(user_id: i64) -> DomainEvent {
    DomainEvent::UserDisabled { user_id }
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

async fn append_one(
    store: &EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
) -> Result<i64, AppendError> {
    let mut tx = store.begin_write().await?;
    let recorded = append_in(&mut tx, stream, expected).await?;
    tx.commit().await?;
    Ok(recorded[0].position)
}

/// Appends one `user_disabled` inside an open transaction.
async fn append_in(
    tx: &mut WriteTx,
    stream: &StreamId,
    expected: ExpectedVersion,
) -> Result<Vec<RecordedEvent>, AppendError> {
    tx.append(
        stream,
        expected,
        &[disabled(1)],
        &Metadata::actor("test"),
        now(),
    )
    .await
}

async fn concurrent_writers_on_one_stream_exactly_one_wins(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect().await);
    let stream = StreamId::user(1);
    append_one(&store, &stream, ExpectedVersion::NoStream)
        .await
        .unwrap();

    let writers = (0..16).map(|_| {
        let store = store.clone();
        let stream = stream.clone();
        tokio::spawn(async move { append_one(&store, &stream, ExpectedVersion::Exact(1)).await })
    });
    let results = futures::future::join_all(writers).await;

    let wins = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(AppendError::Conflict { actual: 2, .. }))))
        .count();
    assert_eq!((wins, conflicts), (1, 15), "{results:?}");
    assert!(matches!(
        store.verify().await.unwrap(),
        VerifyOutcome::Valid { events: 2, .. }
    ));
}

async fn concurrent_appends_to_many_streams_leave_no_gap(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect().await);
    let writers = (1..=40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = StreamId::user(i);
            append_one(&store, &stream, ExpectedVersion::NoStream).await?;
            append_one(&store, &stream, ExpectedVersion::Exact(1)).await
        })
    });
    for result in futures::future::join_all(writers).await {
        result.unwrap().unwrap();
    }
    let events: Vec<_> = store.read_all(0).try_concat().await.unwrap();
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=80).collect::<Vec<_>>());
    for stream in 1..=40 {
        let versions: Vec<i64> = events
            .iter()
            .filter(|e| e.stream_id == StreamId::user(stream))
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, vec![1, 2]);
    }
    assert_eq!(
        store.verify().await.unwrap(),
        VerifyOutcome::Valid {
            events: 80,
            head: store.head().await.unwrap().1
        }
    );
}

async fn events_cannot_be_updated_or_deleted(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let database = db.connect().await;
    let store = EventStore::new(database.clone());
    append_one(&store, &StreamId::user(1), ExpectedVersion::NoStream)
        .await
        .unwrap();

    let pool = database.pool();
    let update = sqlx::query("update events set payload = '{}' where position = 1")
        .execute(pool)
        .await;
    let delete = sqlx::query("delete from events where position = 1")
        .execute(pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("immutable"));
    assert!(delete.unwrap_err().to_string().contains("immutable"));
    if backend == Backend::Postgres {
        let truncate = sqlx::query("truncate events").execute(pool).await;
        assert!(truncate.unwrap_err().to_string().contains("immutable"));
    }
    assert!(matches!(
        store.verify().await.unwrap(),
        VerifyOutcome::Valid { events: 1, .. }
    ));
}

async fn verify_names_the_first_doctored_position(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let database = db.connect().await;
    let store = EventStore::new(database.clone());
    for user in 1..=5 {
        append_one(&store, &StreamId::user(user), ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    let pool = database.pool();
    let drop_triggers = match backend {
        Backend::Sqlite => "drop trigger events_reject_update",
        Backend::Postgres => "drop trigger events_reject_update on events",
    };
    sqlx::query(drop_triggers).execute(pool).await.unwrap();
    sqlx::query(r#"update events set payload = '{"user_id":99}' where position = 3"#)
        .execute(pool)
        .await
        .unwrap();

    match store.verify().await.unwrap() {
        VerifyOutcome::Broken { position, .. } => assert_eq!(position, 3),
        valid => panic!("a doctored log verified: {valid:?}"),
    }
}

async fn the_unique_backstop_is_recognised_by_name(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let database = db.connect().await;
    let store = EventStore::new(database.clone());
    append_one(&store, &StreamId::user(1), ExpectedVersion::NoStream)
        .await
        .unwrap();
    let duplicate = sqlx::query(
        "insert into events select position + 1, stream_id, stream_version, event_type, \
         event_version, payload, metadata, recorded_at, prev_hash, hash from events",
    )
    .execute(database.pool())
    .await
    .unwrap_err();
    assert!(
        mcp_events::is_stream_version_conflict(&duplicate),
        "{duplicate}"
    );

    let other = sqlx::query(
        "insert into events select position, 'x', 9, event_type, \
         event_version, payload, metadata, recorded_at, prev_hash, hash from events",
    )
    .execute(database.pool())
    .await
    .unwrap_err();
    assert!(!mcp_events::is_stream_version_conflict(&other), "{other}");
}

async fn appends_rolled_back_to_a_mark_leave_no_trace(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect().await);
    let mut tx = store.begin_write().await.unwrap();
    let meta = Metadata::actor("test");
    append_in(&mut tx, &StreamId::user(1), ExpectedVersion::NoStream)
        .await
        .unwrap();
    let mark = tx.mark();
    tx.append(
        &StreamId::user(2),
        ExpectedVersion::NoStream,
        &[disabled(2)],
        &meta,
        now(),
    )
    .await
    .unwrap();
    tx.rollback_to(mark);
    tx.append(
        &StreamId::user(3),
        ExpectedVersion::NoStream,
        &[disabled(3)],
        &meta,
        now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let events: Vec<_> = store.read_all(0).try_concat().await.unwrap();
    let streams: Vec<_> = events
        .iter()
        .map(|e| (e.position, e.stream_id.to_string()))
        .collect();
    assert_eq!(streams, vec![(1, "user-1".into()), (2, "user-3".into())]);
    assert!(matches!(
        store.verify().await.unwrap(),
        VerifyOutcome::Valid { events: 2, .. }
    ));
}

/// A writer that never finishes must not stall the ledger for good (PostgreSQL's idle timeout),
/// and an abandoned `WriteTx` on SQLite is rolled back when dropped.
async fn an_abandoned_write_transaction_does_not_block_writers(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let options = DbOptions {
        idle_in_transaction_timeout: Duration::from_millis(500),
        ..DbOptions::default()
    };
    let store = EventStore::new(db.connect_with(&options).await);
    let stalled = store.begin_write().await.unwrap();
    match backend {
        // Leaked: the server itself must end the idle transaction.
        Backend::Postgres => std::mem::forget(stalled),
        Backend::Sqlite => drop(stalled),
    }
    let next = tokio::time::timeout(
        Duration::from_secs(30),
        append_one(&store, &StreamId::user(1), ExpectedVersion::NoStream),
    )
    .await
    .expect("the ledger stayed locked by an abandoned transaction");
    assert_eq!(next.unwrap(), 1);
}

/// Appends are visible to their own transaction at once and to everyone else at commit.
async fn a_transaction_sees_its_own_appends_first(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect().await);
    let stream = StreamId::user(1);
    append_one(&store, &stream, ExpectedVersion::NoStream)
        .await
        .unwrap();

    let mut tx = store.begin_write().await.unwrap();
    append_in(&mut tx, &stream, ExpectedVersion::Exact(1))
        .await
        .unwrap();
    assert_eq!(tx.committed_version(&stream).await.unwrap(), 1);
    assert_eq!(tx.stream_version(&stream).await.unwrap(), 2);
    assert_eq!(tx.read_stream(&stream).await.unwrap().len(), 2);
    let refused = append_in(&mut tx, &stream, ExpectedVersion::Exact(1)).await;
    assert!(
        matches!(refused, Err(AppendError::Conflict { actual: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.head().await.unwrap().0,
        1,
        "nothing visible before commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(store.head().await.unwrap().0, 2);
}

/// A commit that the unique backstop refuses names the stream that was wrong, applies nothing,
/// and leaves no transaction behind on a pooled connection.
async fn a_refused_commit_names_its_row_and_leaves_the_store_usable(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let options = DbOptions {
        max_connections: 2,
        ..DbOptions::default()
    };
    let store = EventStore::new(db.connect_with(&options).await);
    append_one(&store, &StreamId::user(7), ExpectedVersion::NoStream)
        .await
        .unwrap();

    let mut tx = store.begin_write().await.unwrap();
    let meta = Metadata::actor("test");
    for (stream, current) in [(1, 0), (2, 0), (7, 0), (3, 0)] {
        // The caller claims each stream is new; user-7 is not.
        tx.append_at(
            &StreamId::user(stream),
            current,
            &[disabled(stream)],
            &meta,
            now(),
        );
    }
    match tx.commit().await {
        Err(AppendError::Conflict { stream, actual, .. }) => {
            assert_eq!((stream, actual), (StreamId::user(7), 1))
        }
        other => panic!("{other:?}"),
    }
    for round in 0..4 {
        let position = append_one(
            &store,
            &StreamId::user(10 + round),
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
        assert_eq!(position, 2 + round);
    }
    assert!(matches!(
        store.verify().await.unwrap(),
        VerifyOutcome::Valid { events: 5, .. }
    ));
}

both_backends! {
    own_appends => a_transaction_sees_its_own_appends_first,
    refused_commit => a_refused_commit_names_its_row_and_leaves_the_store_usable,
    concurrent_writers_on_one_stream => concurrent_writers_on_one_stream_exactly_one_wins,
    concurrent_appends_to_many_streams => concurrent_appends_to_many_streams_leave_no_gap,
    immutability => events_cannot_be_updated_or_deleted,
    doctored_row => verify_names_the_first_doctored_position,
    unique_backstop => the_unique_backstop_is_recognised_by_name,
    marks => appends_rolled_back_to_a_mark_leave_no_trace,
    abandoned_transaction => an_abandoned_write_transaction_does_not_block_writers,
}

//! The database failing under the writer: killed connections, a database that cannot be
//! reached, a full disk. Each costs only the requests that ran into it (answered 503, never
//! half applied), requests fail fast instead of hanging, and the writer recovers by itself as
//! soon as the cause is gone.

use mcp_events::testing::TestDatabase;
use mcp_events::{Backend, DbOptions, EventStore, IntegrationOwner, IntegrationStatus, Metadata};
use mcp_manager::app::Application;
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::integrations::AddIntegration;
use mcp_manager::commands::mcp::{Answer, Caller, CreateLease, McpRequest};
use mcp_manager::commands::tokens::IssueToken;
use mcp_manager::config::Settings;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{CommandError, Ledger, LedgerSetup};
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use mcp_projections::CheckOutcome;
use serde_json::{json, Value};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

fn meta() -> Metadata {
    Metadata::actor("test")
}

/// A user with a personal todoist integration; returns the plain token.
async fn user_with_token(ledger: &Ledger) -> String {
    let user_id = ledger
        .submit(RegisterUser {
            email: "ada@x.io".into(),
            name: "Ada".into(),
            metadata: meta(),
        })
        .await
        .unwrap();
    ledger
        .submit(AddIntegration {
            service: ServiceName::parse("todoist").unwrap(),
            owner: IntegrationOwner::User { user_id },
            status: IntegrationStatus::Active,
            credentials: json!({"access_token": "t"}).as_object().cloned().unwrap(),
            metadata: meta(),
        })
        .await
        .unwrap();
    let issued = ledger
        .submit(IssueToken {
            user_id,
            scope: mcp_events::TokenScope::Leases,
            name: "test".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await
        .unwrap();
    expose(&issued.token).to_owned()
}

fn create(token: &str, server_id: &str) -> McpRequest<CreateLease> {
    McpRequest {
        caller: Caller {
            token_hash: Some(hash_token(token)),
            ..Caller::default()
        },
        action: CreateLease {
            services: vec!["todoist".into()],
            ttl: 3600,
            server_id: server_id.into(),
            renewable: true,
            client_info: None,
        },
    }
}

async fn assert_consistent(store: &EventStore) {
    assert!(matches!(
        store.verify().await.unwrap(),
        mcp_events::VerifyOutcome::Valid { .. }
    ));
    let outcome = mcp_projections::check(store, &mut |_, _| {}).await.unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
}

async fn admin() -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&mcp_events::testing::postgres_admin_url())
        .await
        .unwrap()
}

fn database_name(db: &TestDatabase) -> String {
    db.url.rsplit('/').next().unwrap().to_owned()
}

/// The writer's connection is terminated while it waits for the ledger lock (PostgreSQL's
/// `pg_terminate_backend`): that batch is answered `Unavailable`, nothing of it is applied,
/// and the next request succeeds on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_connection_costs_only_its_batch() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = EventStore::new(db.connect().await);
    let ledger = Ledger::open(store.clone(), LedgerSetup::new(EncryptionKey::generate()))
        .await
        .unwrap();
    let token = user_with_token(&ledger).await;
    let head = store.head().await.unwrap().0;

    let lock = db.hold_ledger_lock().await;
    let mut queued = Vec::new();
    for i in 0..5 {
        queued.push(
            ledger
                .enqueue(create(&token, &format!("s{i}")))
                .await
                .unwrap(),
        );
    }
    let mut admin = admin().await;
    let name = database_name(&db);
    let mut terminated = false;
    for _ in 0..100 {
        // The writer is the backend waiting for the lock on ledger_head.
        let killed: Vec<(bool,)> = sqlx::query_as(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 \
             and wait_event_type = 'Lock' and query like '%ledger_head%'",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if killed.iter().any(|(done,)| *done) {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(terminated, "the writer never waited for the lock");
    lock.release().await;
    for queued in queued {
        let outcome = queued.outcome().await;
        assert!(
            matches!(outcome, Err(CommandError::Unavailable(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(store.head().await.unwrap().0, head, "nothing was applied");

    // Every idle connection of the pool killed too: the next request still succeeds.
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let outcome = ledger.submit(create(&token, "after")).await;
    assert!(matches!(outcome, Ok(Answer::Granted(_))), "{outcome:?}");
    assert_consistent(&store).await;
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, as a network
/// partition or a database restart would.
struct Proxy {
    port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Self { port, server }
    }

    /// Stops listening and drops every forwarded connection.
    async fn cut(self) -> u16 {
        self.server.abort();
        let _ = self.server.await;
        self.port
    }
}

/// While the database cannot be reached, requests are answered 503 (JSON, with a request id)
/// within seconds rather than hanging; when it is back, requests succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_requests_fast_and_recovers() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = Proxy::start(0).await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port,
        database_name(&db)
    );
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(
        mcp_manager::signing::generate(mcp_tlog::DEFAULT_ORIGIN)
            .unwrap()
            .0
            .to_string()
            .into(),
    );
    let app = Application::build(
        settings,
        Arc::new(SystemClock),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}/api/mcp/credentials/lease", app.local_addr());
    let ledger = app.ledger().clone();
    let token = user_with_token(&ledger).await;
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let lease = || {
        client
            .post(&base)
            .bearer_auth(&token)
            .json(&json!({"services": ["todoist"], "server_id": "s"}))
            .send()
    };
    assert_eq!(lease().await.unwrap().status(), 201);

    let port = proxy.cut().await;
    let answered = tokio::time::timeout(Duration::from_secs(20), lease())
        .await
        .expect("a request hung while the database was unreachable")
        .unwrap();
    assert_eq!(answered.status(), 503);
    assert!(answered.headers().contains_key("x-request-id"));
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");

    let _proxy = Proxy::start(port).await;
    let mut recovered = false;
    for _ in 0..40 {
        let status = tokio::time::timeout(Duration::from_secs(20), lease())
            .await
            .expect("a request hung after the database came back")
            .unwrap()
            .status();
        if status == 201 {
            recovered = true;
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "the server did not recover when the database came back"
    );
    assert_consistent(ledger.store()).await;
}

/// While the database cannot be reached, `/readyz` answers 503 naming the database (within the
/// check's timeout, not hanging) and `/healthz` still 200; when it is back, ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_makes_the_server_unready_until_it_is_back() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = Proxy::start(0).await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port,
        database_name(&db)
    );
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(
        mcp_manager::signing::generate(mcp_tlog::DEFAULT_ORIGIN)
            .unwrap()
            .0
            .to_string()
            .into(),
    );
    let app = Application::build(
        settings,
        Arc::new(SystemClock),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let probe = |path: &'static str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = tokio::time::timeout(Duration::from_secs(20), request.send())
                .await
                .expect("a probe hung")
                .unwrap();
            assert!(response.headers().contains_key("x-request-id"));
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(probe("/readyz").await.0, 200);

    let port = proxy.cut().await;
    let (status, body) = probe("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["status"], "failing", "{body}");
    assert!(body["checks"]["database"]["detail"].is_string(), "{body}");
    assert_eq!(body["checks"]["writer"]["status"], "ok", "{body}");
    assert_eq!(probe("/healthz").await, (200, json!({"status": "ok"})));

    let _proxy = Proxy::start(port).await;
    let mut ready = false;
    for _ in 0..40 {
        if probe("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "not ready again after the database came back");
}

/// A SQLite file that cannot grow (a quota, a full disk): batches that need space fail with
/// `Unavailable` and leave nothing behind; once space is freed the writer carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_batches_until_space_is_freed() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let key = EncryptionKey::generate();
    let token = {
        let store = EventStore::new(db.connect().await);
        let ledger = Ledger::open(store.clone(), LedgerSetup::new(key.clone()))
            .await
            .unwrap();
        let token = user_with_token(&ledger).await;
        // Space that can be given back later.
        let mut conn = store.database().pool().acquire().await.unwrap();
        sqlx::raw_sql(
            "create table filler (data blob); \
             insert into filler select randomblob(4000) from (select 1 union all select 2) a, \
             (select 1 union all select 2) b, (select 1 union all select 2) c, \
             (select 1 union all select 2) d, (select 1 union all select 2) e, \
             (select 1 union all select 2) f, (select 1 union all select 2) g; \
             pragma wal_checkpoint(truncate);",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        store.database().close().await;
        token
    };
    // Reopened with a ceiling a few pages above what the file holds now.
    let pages: i64 = {
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        let (pages,): (i64,) = sqlx::query_as("pragma page_count")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        pages
    };
    let options = DbOptions {
        sqlite_max_pages: Some(pages as u64 + 4),
        ..DbOptions::default()
    };
    let store = EventStore::new(db.connect_with(&options).await);
    let ledger = Ledger::open(store.clone(), LedgerSetup::new(key))
        .await
        .unwrap();

    let mut granted = 0;
    let mut refused = 0;
    for round in 0..50 {
        let load = (0..40).map(|i| {
            let (ledger, token) = (ledger.clone(), token.clone());
            tokio::spawn(async move {
                ledger
                    .submit(create(&token, &format!("full-{round}-{i}")))
                    .await
            })
        });
        for outcome in futures::future::join_all(load).await {
            match outcome.unwrap() {
                Ok(Answer::Granted(_)) => granted += 1,
                Err(CommandError::Unavailable(_)) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "the file never filled up ({granted} leases granted)"
    );
    assert_consistent(&store).await;
    let leases: (i64,) = sqlx::query_as("select count(*) from leases")
        .fetch_one(store.database().pool())
        .await
        .unwrap();
    assert_eq!(leases.0, granted, "every granted lease, and only those");

    let mut conn = store.database().pool().acquire().await.unwrap();
    sqlx::raw_sql("drop table filler")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    for i in 0..20 {
        let outcome = ledger.submit(create(&token, &format!("after-{i}"))).await;
        assert!(matches!(outcome, Ok(Answer::Granted(_))), "{outcome:?}");
    }
    assert_consistent(&store).await;
}

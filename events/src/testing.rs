//! Fresh databases for tests: a temporary SQLite file, or a newly created PostgreSQL database.
//!
//! PostgreSQL tests never skip: if the server is unreachable they fail and say how to start it.

use crate::db::{Backend, Database, DbOptions};
use std::sync::atomic::{AtomicU64, Ordering};

/// The server tests create their databases on; override with `TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory for the SQLite file");
                let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "mcp_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_micros()
                );
                admin_execute(&format!("create database {name}")).await;
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Self {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Connects (and migrates) with default options.
    pub async fn connect(&self) -> Database {
        self.connect_with(&DbOptions::default()).await
    }

    pub async fn connect_with(&self, options: &DbOptions) -> Database {
        Database::connect(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }
}

/// The ledger lock, held from a connection of its own as another writer would hold it: while it
/// is held the ledger's writer waits, so commands submitted meanwhile share its next batch.
pub struct HeldLedgerLock {
    conn: sqlx::AnyConnection,
}

impl TestDatabase {
    pub async fn hold_ledger_lock(&self) -> HeldLedgerLock {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to hold the ledger lock: {e}"));
        let take = match self.backend {
            Backend::Sqlite => "begin immediate",
            Backend::Postgres => "begin; select position from ledger_head where id = 1 for update",
        };
        sqlx::raw_sql(take)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("taking the ledger lock: {e}"));
        HeldLedgerLock { conn }
    }
}

impl HeldLedgerLock {
    pub async fn release(mut self) {
        sqlx::raw_sql("rollback")
            .execute(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("releasing the ledger lock: {e}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop may run inside a runtime; do the async clean-up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        let _ = try_admin_execute(&format!(
                            "drop database if exists {name} with (force)"
                        ))
                        .await;
                    });
                }
            })
            .join();
        }
    }
}

async fn try_admin_execute(sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&postgres_admin_url()).await?;
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
    conn.close().await
}

async fn admin_execute(sql: &str) {
    if let Err(e) = try_admin_execute(sql).await {
        panic!(
            "PostgreSQL is needed for this test and is not usable at {} ({e}).\n\
             Start it with `pg_ctlcluster 15 main start` (or point TEST_POSTGRES_URL at a server \
             where this user may create databases).",
            postgres_admin_url()
        );
    }
}

/// Runs async test bodies on each backend: `both_backends!(name => body_fn, …);` where
/// `async fn body_fn(backend: Backend)` is defined beside the macro call.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$body($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$body($crate::Backend::Postgres).await
                }
            }
        )*
    };
}

//! Connecting to the ledger database: SQLite (the embedded default) or PostgreSQL, one code path.
//!
//! Both backends go through sqlx's `Any` driver so every query in the project is written once.
//! What differs per backend lives here (connection settings) and in `migrations/<backend>/`.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection settings that are ours rather than the URL's.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub max_connections: u32,
    /// PostgreSQL ends a session that sits idle inside a transaction this long, so a stalled
    /// writer can never hold the ledger lock for good.
    pub idle_in_transaction_timeout: Duration,
    /// How long SQLite waits for another process's write lock before giving up.
    pub busy_timeout: Duration,
    /// How long a caller waits for a connection (or a new one) before the database counts as
    /// unreachable: requests then fail fast instead of hanging.
    pub acquire_timeout: Duration,
    /// A ceiling on a SQLite file's size, in pages (`pragma max_page_count`): a quota, and how
    /// tests make the disk "full".
    pub sqlite_max_pages: Option<u64>,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            idle_in_transaction_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(5),
            sqlite_max_pages: None,
        }
    }
}

/// What a command may do to the database it is pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only: the ledger must exist with its schema current. Nothing is created, migrated
    /// or written (SQLite opens the file read-only, PostgreSQL sessions are read-only).
    ReadOnly,
    /// Writes to a ledger that exists (an older schema is migrated); never creates one.
    Existing,
    /// Writes, creating the database file (SQLite) and the ledger schema where there is none.
    Create,
}

/// The commands that create a ledger, named where another command finds none.
const CREATORS: &str = "`serve`, `seed`, `user add` and `org add` create one";

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
    #[error("there is no database at {path} (check DATABASE_URL; {CREATORS})")]
    Missing { path: String },
    #[error("the database at {url} holds no ledger (check DATABASE_URL; {CREATORS})")]
    NoLedger { url: String },
    #[error(
        "the ledger schema at {url} is older than this build: run a write command or `serve` \
         once (as the role that owns the schema) to migrate it"
    )]
    Outdated { url: String },
    #[error("cannot open the database at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error(
        "cannot migrate the database schema (run any command once as the role that owns the \
         schema, see README \"Production\"): {0}"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A pool on one of the two backends, with the schema migrated.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

/// A database just opened, and whether opening it created the ledger.
#[derive(Debug)]
pub struct Opened {
    pub database: Database,
    /// The ledger schema was created by this open (and, for SQLite, the file with it).
    pub created: bool,
}

/// How far the ledger schema of a database is.
enum SchemaState {
    /// No ledger at all (no migrations table, or nothing applied).
    Empty,
    /// Some of this build's migrations are not applied.
    Behind,
    Current,
}

impl Database {
    /// Opens the database, creating the ledger if there is none, and migrates its schema.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, ConnectError> {
        Ok(Self::open(url, options, Access::Create).await?.database)
    }

    /// Opens an existing ledger for reading only: fails, creating nothing, if the database or
    /// its ledger does not exist or its schema is not current.
    pub async fn connect_existing(url: &str, options: &DbOptions) -> Result<Self, ConnectError> {
        Ok(Self::open(url, options, Access::ReadOnly).await?.database)
    }

    /// Opens the database for what `access` allows.
    pub async fn open(
        url: &str,
        options: &DbOptions,
        access: Access,
    ) -> Result<Opened, ConnectError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(url, access)?;
        if backend == Backend::Sqlite && access != Access::Create {
            if let Some(path) = sqlite_path(&url).filter(|path| !path.exists()) {
                return Err(ConnectError::Missing {
                    path: path.display().to_string(),
                });
            }
        }
        let read_only = access == Access::ReadOnly;
        let open = |source| ConnectError::Open {
            url: redact(&url),
            source,
        };
        let connect_options = AnyConnectOptions::from_str(&url)
            .map_err(open)?
            .disable_statement_logging();
        let busy_ms = options.busy_timeout.as_millis();
        let idle_ms = options.idle_in_transaction_timeout.as_millis();
        let max_pages = options
            .sqlite_max_pages
            .map(|pages| format!(" pragma max_page_count = {pages};"))
            .unwrap_or_default();
        let pool = AnyPoolOptions::new()
            .acquire_timeout(options.acquire_timeout)
            .max_connections(match backend {
                Backend::Sqlite => options.max_connections.min(8),
                Backend::Postgres => options.max_connections,
            })
            .after_connect(move |conn, _meta| {
                let max_pages = max_pages.clone();
                Box::pin(async move {
                    match (backend, read_only) {
                        // The journal mode (WAL) is a property of the file, set once the file
                        // is known to be a ledger (see `open`): setting it writes.
                        (Backend::Sqlite, false) => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "pragma busy_timeout = {busy_ms}; pragma synchronous = full; \
                                 pragma foreign_keys = off; pragma cache_size = -65536;{max_pages}"
                            )))
                            .await?;
                        }
                        (Backend::Sqlite, true) => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "pragma busy_timeout = {busy_ms}; pragma query_only = 1; \
                                 pragma cache_size = -65536;"
                            )))
                            .await?;
                        }
                        (Backend::Postgres, _) => {
                            let read_only = if read_only {
                                " set default_transaction_read_only = on;"
                            } else {
                                ""
                            };
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "set idle_in_transaction_session_timeout = {idle_ms}; \
                                 set client_min_messages = warning;{read_only}"
                            )))
                            .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(open)?;
        let db = Self { pool, backend, url };
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        let state = db.schema_state(&migrator).await;
        let shown = || redact(&db.url);
        let created = match (state, access) {
            (Ok(SchemaState::Current), _) => false,
            (Ok(SchemaState::Empty), Access::ReadOnly | Access::Existing) => {
                db.close().await;
                return Err(ConnectError::NoLedger { url: shown() });
            }
            (Ok(SchemaState::Behind), Access::ReadOnly) => {
                db.close().await;
                return Err(ConnectError::Outdated { url: shown() });
            }
            (Err(error), Access::ReadOnly) => {
                db.close().await;
                return Err(ConnectError::Open {
                    url: shown(),
                    source: error,
                });
            }
            (Ok(SchemaState::Empty), Access::Create) => {
                migrator.run(&db.pool).await?;
                true
            }
            // Behind, or not readable (the migrator then says why).
            _ => {
                migrator.run(&db.pool).await?;
                false
            }
        };
        if backend == Backend::Sqlite && access != Access::ReadOnly {
            // Persistent in the file; a no-op once set.
            sqlx::query("pragma journal_mode = wal")
                .execute(&db.pool)
                .await
                .map_err(|source| ConnectError::Open {
                    url: shown(),
                    source,
                })?;
        }
        Ok(Opened {
            database: db,
            created,
        })
    }

    /// How far the schema is, found with reads only: the migrator itself starts by creating
    /// its table, which the production role (no `CREATE`) may not do.
    async fn schema_state(&self, migrator: &Migrator) -> Result<SchemaState, sqlx::Error> {
        let tables_sql = match self.backend {
            Backend::Sqlite => {
                "select count(*) from sqlite_master where type = 'table' \
                 and name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "select count(*) from information_schema.tables \
                 where table_schema = current_schema() and table_name = '_sqlx_migrations'"
            }
        };
        let tables: i64 = sqlx::query_scalar(tables_sql).fetch_one(&self.pool).await?;
        if tables == 0 {
            return Ok(SchemaState::Empty);
        }
        let applied: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("select version, checksum from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await?;
        if applied.is_empty() {
            return Ok(SchemaState::Empty);
        }
        let current = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .all(|m| {
                applied
                    .iter()
                    .any(|(version, checksum)| *version == m.version && **checksum == *m.checksum)
            });
        Ok(if current {
            SchemaState::Current
        } else {
            SchemaState::Behind
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file of a SQLite URL (where its key file lives beside it).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        sqlite_path(&self.url)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Backend {
    /// `count` bind placeholders starting at parameter `from` (1-based). SQLite gets anonymous
    /// `?`: with numbered ones its driver looks every name up, quadratic in their number.
    pub fn placeholders(&self, from: usize, count: usize) -> String {
        match self {
            Backend::Sqlite => vec!["?"; count].join(", "),
            Backend::Postgres => (from..from + count)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The backend of a connection.
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// A database error's code, by backend: SQLite's primary result code (the low byte of its
/// extended code), or PostgreSQL's SQLSTATE.
enum ErrorCode {
    Sqlite(i32),
    Postgres(String),
}

fn error_code(error: &sqlx::Error) -> Option<ErrorCode> {
    let db_error = error.as_database_error()?;
    if let Some(sqlite) = db_error.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        let extended = sqlx::error::DatabaseError::code(sqlite)?
            .parse::<i32>()
            .ok()?;
        return Some(ErrorCode::Sqlite(extended & 0xff));
    }
    let postgres = db_error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    Some(ErrorCode::Postgres(postgres.code().to_owned()))
}

/// Whether a database error is one that the values of a single statement can cause (a value
/// the column cannot hold, a constraint), as opposed to the database itself failing (gone, full,
/// shut down). A batch that fails for the first kind is worth re-running command by command.
pub fn is_data_error(error: &sqlx::Error) -> bool {
    match error_code(error) {
        // TOOBIG (18), CONSTRAINT (19), MISMATCH (20).
        Some(ErrorCode::Sqlite(code)) => matches!(code, 18..=20),
        // Data exception, integrity constraint violation, program limit exceeded (a value too
        // large for an index), and the transaction those leave aborted.
        Some(ErrorCode::Postgres(code)) => {
            ["22", "23", "54"].iter().any(|c| code.starts_with(c)) || code == "25P02"
        }
        None => false,
    }
}

/// Whether an error means the database cannot serve now (unreachable, shut down, full, out of
/// resources), so the request may succeed later, as opposed to a fault in one statement.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    match error {
        Io(_) | Tls(_) | PoolTimedOut | PoolClosed | WorkerCrashed => true,
        Database(_) => match error_code(error) {
            // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, NOTADB.
            Some(ErrorCode::Sqlite(code)) => matches!(code, 5 | 6 | 7 | 8 | 10 | 13 | 14 | 26),
            // Connection exception, insufficient resources, operator intervention (shutdown,
            // terminated), system error.
            Some(ErrorCode::Postgres(code)) => {
                ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
            }
            None => false,
        },
        _ => false,
    }
}

/// Which backend a URL names, without connecting.
pub fn backend_of(url: &str) -> Result<Backend, ConnectError> {
    normalize_url(url, Access::Create).map(|(backend, _)| backend)
}

/// The URL to connect with: a SQLite URL gets the open mode `access` allows (`rwc` creates
/// the file on first use, as `mcp-manager serve` on a fresh machine expects; `ro` reads only),
/// replacing any mode the URL names.
fn normalize_url(url: &str, access: Access) -> Result<(Backend, String), ConnectError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_owned()))
    } else if url.starts_with("sqlite:") {
        let mode = match access {
            Access::ReadOnly => "mode=ro",
            Access::Existing => "mode=rw",
            Access::Create => "mode=rwc",
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut parameters: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("mode="))
            .collect();
        parameters.push(mode);
        Ok((Backend::Sqlite, format!("{base}?{}", parameters.join("&"))))
    } else {
        Err(ConnectError::UnsupportedUrl(redact(url)))
    }
}

/// The database file a SQLite URL names, if any.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// A URL fit for an error message: any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://mcp-manager.db?mode=rwc"),
            Some(PathBuf::from("mcp-manager.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://bob:secret@db/ledger"),
            "postgres://bob:***@db/ledger"
        );
        assert_eq!(redact("postgres://db/ledger"), "postgres://db/ledger");
    }

    #[test]
    fn placeholders_fit_each_backend() {
        assert_eq!(Backend::Sqlite.placeholders(3, 3), "?, ?, ?");
        assert_eq!(Backend::Postgres.placeholders(3, 3), "$3, $4, $5");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(normalize_url("mysql://x", Access::Create).is_err());
    }

    #[test]
    fn sqlite_urls_open_in_the_mode_their_access_allows() {
        let url = |text, access| normalize_url(text, access).unwrap().1;
        assert_eq!(
            url("sqlite://a.db", Access::Create),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            url("sqlite://a.db", Access::Existing),
            "sqlite://a.db?mode=rw"
        );
        assert_eq!(
            url("sqlite://a.db?mode=rwc&cache=shared", Access::ReadOnly),
            "sqlite://a.db?cache=shared&mode=ro"
        );
    }
}

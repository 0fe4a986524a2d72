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

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
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

impl Database {
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, ConnectError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(url)?;
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
                    match backend {
                        Backend::Sqlite => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "pragma busy_timeout = {busy_ms}; pragma journal_mode = wal; \
                                 pragma synchronous = full; pragma foreign_keys = off; pragma cache_size = -65536;{max_pages}"
                            )))
                            .await?;
                        }
                        Backend::Postgres => {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "set idle_in_transaction_session_timeout = {idle_ms}; \
                                 set client_min_messages = warning;"
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
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), ConnectError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        if !self.is_migrated(&migrator).await {
            migrator.run(&self.pool).await?;
        }
        Ok(())
    }

    /// Whether every migration is applied already, found with reads only: the migrator itself
    /// starts by creating its table, which the production role (no `CREATE`) may not do.
    async fn is_migrated(&self, migrator: &Migrator) -> bool {
        let applied: Vec<(i64, Vec<u8>)> =
            match sqlx::query_as("select version, checksum from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                Err(_) => return false,
            };
        migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .all(|m| {
                applied
                    .iter()
                    .any(|(version, checksum)| *version == m.version && **checksum == *m.checksum)
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
    normalize_url(url).map(|(backend, _)| backend)
}

fn normalize_url(url: &str) -> Result<(Backend, String), ConnectError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_owned()))
    } else if url.starts_with("sqlite:") {
        // Create the file on first use, as `mcp-manager serve` on a fresh machine expects.
        let url = if url.contains('?') {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        Ok((Backend::Sqlite, url))
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
        assert!(normalize_url("mysql://x").is_err());
    }
}

//! One rebuild at a time per database, across processes.
//!
//! A rebuild writes shared `replay_*` shadow tables, so two at once (two replicas starting on a
//! fresh database, or `mcp-manager replay` while a server starts) would drop each other's
//! tables. PostgreSQL gets a session advisory lock on a connection of its own; SQLite an OS lock
//! on a file beside the database. Both are released when the holder drops the lock or dies.

use mcp_events::{Backend, EventStore};
use sqlx::pool::PoolConnection;
use sqlx::Any;
use std::fs::{File, OpenOptions};

/// The advisory lock key: "mcp replay" in ASCII, as a number.
const ADVISORY_KEY: i64 = 0x6d63_7072_6570;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("database error taking the replay lock: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot lock {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

pub struct ReplayLock {
    _held: Held,
}

/// Each variant is held only to be released when dropped.
#[allow(dead_code)]
enum Held {
    Postgres(PoolConnection<Any>),
    File(File),
    /// An in-memory SQLite database: no other process can see it.
    Nothing,
}

impl ReplayLock {
    /// Waits until no other rebuild runs on this database.
    pub async fn acquire(store: &EventStore) -> Result<Self, LockError> {
        let db = store.database();
        let held = match db.backend() {
            Backend::Postgres => {
                let mut conn = db.pool().acquire().await?;
                // Never hand the locked session back to the pool: closing it releases the lock.
                conn.close_on_drop();
                sqlx::query("select pg_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .execute(&mut *conn)
                    .await?;
                Held::Postgres(conn)
            }
            Backend::Sqlite => match db.sqlite_path() {
                Some(path) => {
                    let mut name = path.into_os_string();
                    name.push(".replay-lock");
                    let path = std::path::PathBuf::from(name);
                    let shown = path.display().to_string();
                    let file = tokio::task::spawn_blocking(move || {
                        let file = OpenOptions::new()
                            .create(true)
                            .truncate(false)
                            .write(true)
                            .open(&path)?;
                        file.lock()?;
                        Ok::<_, std::io::Error>(file)
                    })
                    .await
                    .map_err(|e| LockError::File {
                        path: shown.clone(),
                        source: std::io::Error::other(e),
                    })?
                    .map_err(|source| LockError::File {
                        path: shown,
                        source,
                    })?;
                    Held::File(file)
                }
                None => Held::Nothing,
            },
        };
        Ok(Self { _held: held })
    }
}

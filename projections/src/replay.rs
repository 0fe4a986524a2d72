//! Replay: rebuild every projection from the log, or prove the live tables equal a rebuild.
//!
//! The fold runs in memory (fast: no SQL per event), the result is written in bulk into shadow
//! tables, and the swap happens under the ledger lock after catching up with events that landed
//! meanwhile, so a running server loses nothing. `check` writes nothing at all: it folds in
//! memory and compares with the live tables as of one read snapshot.

use crate::replay_lock::ReplayLock;
use crate::rows::*;
use crate::schema::{create_tables, drop_tables, write_checkpoints};
use crate::store::{bulk_insert, load_all, MemoryRows, SqlRows};
use futures::TryStreamExt;
use mcp_events::{Backend, EventStore, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe};

const SHADOW: &str = "replay_";
/// Audit rows are flushed to the shadow table in chunks of this size to bound memory.
const AUDIT_FLUSH: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error during replay: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(#[from] mcp_events::AppendError),
    #[error(transparent)]
    Lock(#[from] crate::replay_lock::LockError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events folded: the log is gap-free, so also the position the projections reached.
    pub events: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    Same(ReplayReport),
    Differs {
        table: &'static str,
        description: String,
    },
}

/// Progress callback: `(events folded so far, events in the log)`.
pub type Progress<'a> = dyn FnMut(i64, i64) + Send + 'a;

/// Where the audit records of an in-memory fold go (the one table as long as the log).
enum AuditSink<'c> {
    /// Kept in memory, to compare with the live table.
    Keep,
    /// Written to the shadow table every `AUDIT_FLUSH` records.
    Shadow(&'c mut AnyConnection),
    /// Dropped every `AUDIT_FLUSH` records (replay's fold without its writes).
    Discard,
}

/// Folds the events after `after` (up to `upto`, if given) into `rows`; returns the position
/// reached.
async fn fold_in_memory(
    store: &EventStore,
    rows: &mut MemoryRows,
    after: i64,
    upto: Option<i64>,
    mut audit: AuditSink<'_>,
    progress: &mut Progress<'_>,
) -> Result<i64, ReplayError> {
    let (total, _) = store.head().await?;
    let mut position = after;
    let mut pages = std::pin::pin!(store.read_all(after));
    while let Some(page) = pages.try_next().await? {
        let mut reached_the_end = false;
        for event in &page {
            if upto.is_some_and(|upto| event.position > upto) {
                reached_the_end = true;
                break;
            }
            crate::fold::apply(rows, event).await?;
            position = event.position;
        }
        if reached_the_end {
            break;
        }
        if rows.row_count::<AuditRow>() >= AUDIT_FLUSH {
            match &mut audit {
                AuditSink::Keep => {}
                AuditSink::Shadow(conn) => {
                    bulk_insert::<AuditRow>(conn, SHADOW, rows.take::<AuditRow>()).await?
                }
                AuditSink::Discard => drop(rows.take::<AuditRow>()),
            }
        }
        progress(position, total.max(position));
    }
    Ok(position)
}

/// Replay's first pass alone: reads, decodes and folds the whole log into memory, then discards
/// the rows. Changes nothing; the benchmark times it against the raw read-decode-fold limit.
pub async fn fold_only(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let mut rows = MemoryRows::default();
    let position = fold_in_memory(store, &mut rows, 0, None, AuditSink::Discard, progress).await?;
    Ok(ReplayReport { events: position })
}

/// Rebuilds every projection from the log and swaps the result in. Waits for any other rebuild
/// of the same database to finish first.
pub async fn rebuild(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let _lock = ReplayLock::acquire(store).await?;
    rebuild_locked(store, progress).await
}

/// `rebuild`, for a caller that holds the replay lock.
pub(crate) async fn rebuild_locked(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let pool = store.database().pool();
    let mut shadow = pool.acquire().await?;
    drop_leftover_shadow_tables(&mut shadow).await?;
    let postgres = store.database().backend() == Backend::Postgres;
    create_tables(
        &mut shadow,
        SHADOW,
        TableKind::Shadow { unlogged: postgres },
    )
    .await?;

    let started = std::time::Instant::now();
    let mut rows = MemoryRows::default();
    let folded = fold_in_memory(
        store,
        &mut rows,
        0,
        None,
        AuditSink::Shadow(&mut shadow),
        progress,
    )
    .await?;
    let folded_in = started.elapsed();
    write_shadow(&mut shadow, rows).await?;
    let written_in = started.elapsed() - folded_in;

    // Catch up with whatever landed meanwhile, then swap, all under the ledger lock.
    let mut tx = store.begin_write().await?;
    let mut caught_up = folded;
    let mut pages = std::pin::pin!(store.read_all(folded));
    while let Some(page) = pages.try_next().await? {
        let mut sql_rows = SqlRows::new(tx.conn(), SHADOW);
        for event in &page {
            crate::fold::apply(&mut sql_rows, event).await?;
            caught_up = event.position;
        }
    }
    // PostgreSQL empties a table at once with `truncate` (transactional there); `delete` would
    // leave every old row behind as a dead tuple. SQLite's unfiltered `delete` is its truncate.
    let empty = if postgres {
        "truncate table"
    } else {
        "delete from"
    };
    macro_rules! swap {
        ($($row:ty),*) => {$(
            swap_table::<$row>(tx.conn(), empty).await?;
        )*};
    }
    swap!(
        UserRow,
        OrganizationRow,
        MembershipRow,
        IntegrationRow,
        TokenRow,
        LeaseRow,
        SessionRow,
        AuditRow
    );
    write_checkpoints(tx.conn(), caught_up).await?;
    tx.commit().await?;
    drop_tables(&mut shadow, SHADOW).await?;
    tracing::debug!(
        events = caught_up,
        fold_ms = folded_in.as_millis() as u64,
        write_ms = written_in.as_millis() as u64,
        swap_ms = (started.elapsed() - folded_in - written_in).as_millis() as u64,
        "projections rebuilt"
    );
    Ok(ReplayReport { events: caught_up })
}

/// Replaces a live table's rows by its shadow's. A live table of another shape (a projection
/// whose rows gained a column comes with a new version, so this rebuild) is recreated first.
async fn swap_table<R: TableRow>(conn: &mut AnyConnection, empty: &str) -> Result<(), sqlx::Error> {
    let table = R::TABLE;
    if crate::schema::has_current_shape::<R>(conn).await? {
        sqlx::query(AssertSqlSafe(format!("{empty} {table}")))
            .execute(&mut *conn)
            .await?;
    } else {
        tracing::info!(table, "the table changed shape: recreating it");
        sqlx::query(AssertSqlSafe(format!("drop table if exists {table}")))
            .execute(&mut *conn)
            .await?;
        for statement in crate::rows::ddl::<R>("", TableKind::Live) {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *conn)
                .await?;
        }
    }
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} select * from {SHADOW}{table}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_shadow(conn: &mut AnyConnection, mut rows: MemoryRows) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    bulk_insert::<UserRow>(&mut tx, SHADOW, rows.take::<UserRow>()).await?;
    bulk_insert::<OrganizationRow>(&mut tx, SHADOW, rows.take::<OrganizationRow>()).await?;
    bulk_insert::<MembershipRow>(&mut tx, SHADOW, rows.take::<MembershipRow>()).await?;
    bulk_insert::<IntegrationRow>(&mut tx, SHADOW, rows.take::<IntegrationRow>()).await?;
    bulk_insert::<TokenRow>(&mut tx, SHADOW, rows.take::<TokenRow>()).await?;
    bulk_insert::<LeaseRow>(&mut tx, SHADOW, rows.take::<LeaseRow>()).await?;
    bulk_insert::<SessionRow>(&mut tx, SHADOW, rows.take::<SessionRow>()).await?;
    bulk_insert::<AuditRow>(&mut tx, SHADOW, rows.take::<AuditRow>()).await?;
    tx.commit().await
}

/// The tables of a rebuild that did not finish (a replay killed mid-way), or of any earlier
/// one: every table named `replay_…`. Only ever called under the replay lock, so no running
/// rebuild owns them.
pub(crate) async fn leftover_shadow_tables(
    conn: &mut AnyConnection,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = match Backend::of(conn) {
        Backend::Sqlite => {
            "select name from sqlite_master where type = 'table' \
             and name like 'replay\\_%' escape '\\' order by name"
        }
        Backend::Postgres => {
            "select tablename::text from pg_tables where schemaname = current_schema() \
             and tablename like 'replay\\_%' escape '\\' order by tablename"
        }
    };
    sqlx::query_scalar(sql).fetch_all(&mut *conn).await
}

/// Drops what a rebuild that did not finish left behind; the caller holds the replay lock.
pub(crate) async fn drop_leftover_shadow_tables(
    conn: &mut AnyConnection,
) -> Result<usize, sqlx::Error> {
    let leftovers = leftover_shadow_tables(conn).await?;
    for table in &leftovers {
        sqlx::query(AssertSqlSafe(format!("drop table if exists {table}")))
            .execute(&mut *conn)
            .await?;
    }
    // Tables of this version's shape that the catalog query could not see are dropped too.
    drop_tables(conn, SHADOW).await?;
    Ok(leftovers.len())
}

/// Folds the whole log in memory and compares the result with the live tables, row by row, as
/// of one read snapshot (a running server keeps writing meanwhile; the snapshot's head says how
/// far to fold). Writes nothing, takes no lock, creates no table.
pub async fn check(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<CheckOutcome, ReplayError> {
    use sqlx::Connection;
    let mut rows = MemoryRows::default();
    let folded = fold_in_memory(store, &mut rows, 0, None, AuditSink::Keep, progress).await?;
    let mut conn = store.database().pool().acquire().await?;
    let begin = match store.database().backend() {
        Backend::Postgres => "begin isolation level repeatable read, read only",
        // A deferred transaction reads one snapshot from its first read (WAL).
        Backend::Sqlite => "begin",
    };
    let mut snapshot = conn.begin_with(begin).await?;
    let head: i64 = sqlx::query_scalar("select position from ledger_head where id = 1")
        .fetch_one(&mut *snapshot)
        .await?;
    let position = fold_in_memory(
        store,
        &mut rows,
        folded,
        Some(head),
        AuditSink::Keep,
        progress,
    )
    .await?;
    let outcome = match outdated_projection(&mut snapshot).await? {
        Some(description) => Some(("projection_checkpoints", description)),
        None => first_difference(&mut snapshot, &rows).await?,
    };
    snapshot.rollback().await?;
    Ok(match outcome {
        Some((table, description)) => CheckOutcome::Differs { table, description },
        None => CheckOutcome::Same(ReplayReport { events: position }),
    })
}

/// A projection whose stored version is not this build's: its tables may not even have this
/// build's columns, so comparing rows would say nothing useful.
async fn outdated_projection(conn: &mut AnyConnection) -> Result<Option<String>, sqlx::Error> {
    let stored: Vec<(String, i64)> =
        sqlx::query_as("select name, version from projection_checkpoints")
            .fetch_all(&mut *conn)
            .await?;
    for (name, version) in crate::schema::PROJECTIONS {
        match stored.iter().find(|(stored, _)| stored == name) {
            Some((_, found)) if found == version => {}
            Some((_, found)) => {
                return Ok(Some(format!(
                    "projection {name} is at version {found}, this build's is {version}: run \
                     `mcp-manager replay` (or start the server) to rebuild it"
                )))
            }
            None => {
                return Ok(Some(format!(
                    "projection {name} has no checkpoint: run `mcp-manager replay` (or start \
                     the server) to build it"
                )))
            }
        }
    }
    Ok(None)
}

async fn first_difference(
    conn: &mut AnyConnection,
    rebuilt: &MemoryRows,
) -> Result<Option<(&'static str, String)>, sqlx::Error> {
    macro_rules! compare {
        ($($row:ty),*) => {$(
            if let Some(d) = compare_table::<$row>(conn, rebuilt).await? {
                return Ok(Some((<$row>::TABLE, d)));
            }
        )*};
    }
    compare!(
        UserRow,
        OrganizationRow,
        MembershipRow,
        IntegrationRow,
        TokenRow,
        LeaseRow,
        SessionRow,
        AuditRow
    );
    Ok(None)
}

async fn compare_table<R: TableRow>(
    conn: &mut AnyConnection,
    rebuilt: &MemoryRows,
) -> Result<Option<String>, sqlx::Error> {
    let mut live = load_all::<R>(conn, "").await?;
    live.sort_by_key(|r| r.key());
    let rebuilt = rebuilt.rows::<R>();
    for i in 0..live.len().max(rebuilt.len()) {
        match (live.get(i), rebuilt.get(i)) {
            (Some(l), Some(r)) if l == r => continue,
            (Some(l), Some(r)) => {
                return Ok(Some(format!(
                    "live row {l:?} differs from rebuilt row {r:?}"
                )))
            }
            (Some(l), None) => return Ok(Some(format!("live row {l:?} is not in the rebuild"))),
            (None, Some(r)) => {
                return Ok(Some(format!(
                    "rebuilt row {r:?} is missing from the live table"
                )))
            }
            (None, None) => unreachable!(),
        }
    }
    Ok(None)
}

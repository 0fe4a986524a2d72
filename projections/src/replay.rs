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
use futures::{StreamExt, TryStreamExt};
use mcp_events::checkpoints::{self, Verifier};
use mcp_events::{Backend, ChainCheck, EventStore, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe};
use std::sync::{Arc, Mutex};

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
    /// A projection has seen more events than the log holds: events were removed.
    #[error(
        "the log's head is at position {head}, but the {projection} projection was built from \
         {position} events: events were removed from the log (truncation); nothing was changed \
         (restore the database from a backup; `mcp-manager verify` names what is missing)"
    )]
    Truncated {
        projection: String,
        position: i64,
        head: i64,
    },
    /// The log does not chain, or does not give the latest signed checkpoint's tree.
    #[error("refusing to rebuild the projections: {0}; nothing was swapped in")]
    Tampered(String),
}

impl From<mcp_events::ChainBreak> for ReplayError {
    fn from(broken: mcp_events::ChainBreak) -> Self {
        ReplayError::Tampered(format!("the event log is broken at {broken}"))
    }
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
    /// The log itself does not verify (a broken chain, or a tree that does not give the latest
    /// signed checkpoint): the projections cannot be checked against it.
    LogDoesNotVerify(String),
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
/// reached. With a `chain`, every event read is checked by it first (see
/// `EventStore::read_all_checked`).
async fn fold_in_memory(
    store: &EventStore,
    rows: &mut MemoryRows,
    after: i64,
    upto: Option<i64>,
    mut audit: AuditSink<'_>,
    progress: &mut Progress<'_>,
    chain: Option<&Arc<Mutex<ChainCheck>>>,
) -> Result<i64, ReplayError> {
    let (total, _) = store.head().await?;
    let mut position = after;
    let mut pages = match chain {
        Some(chain) => store.read_all_checked(after, chain.clone()).boxed(),
        None => store.read_all(after).boxed(),
    };
    while let Some(page) = pages.try_next().await.map_err(chain_broken)? {
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
    let position = fold_in_memory(
        store,
        &mut rows,
        0,
        None,
        AuditSink::Discard,
        progress,
        None,
    )
    .await?;
    Ok(ReplayReport { events: position })
}

/// Rebuilds every projection from the log and swaps the result in. Waits for any other rebuild
/// of the same database to finish first. Refuses, swapping nothing, when the log does not chain
/// or does not give the root of the latest signed checkpoint (see [`rebuild_checked`]).
pub async fn rebuild(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    rebuild_checked(store, progress, None).await
}

/// [`rebuild`], with the latest checkpoint's signature checked with the log's `key` too.
pub async fn rebuild_checked(
    store: &EventStore,
    progress: &mut Progress<'_>,
    key: Option<&Verifier>,
) -> Result<ReplayReport, ReplayError> {
    let _lock = ReplayLock::acquire(store).await?;
    rebuild_locked(store, progress, key).await
}

/// `rebuild`, for a caller that holds the replay lock.
///
/// Replay must never launder a tampered log into the projections, which are evidence too:
/// every event it folds is checked on the way (its hash, its link to the one before, see
/// `mcp_events::chain`), the tree of their hashes must give the latest signed checkpoint's
/// root at its size, and the stored tree must agree at the size swapped in; otherwise nothing
/// is swapped. Projections that have seen more events than the log holds are refused before
/// anything is read.
pub(crate) async fn rebuild_locked(
    store: &EventStore,
    progress: &mut Progress<'_>,
    key: Option<&Verifier>,
) -> Result<ReplayReport, ReplayError> {
    refuse_truncation(&crate::schema::checkpoints(store).await?)?;
    let pool = store.database().pool();
    let mut shadow = pool.acquire().await?;
    let anchor = checkpoints::latest_signed(&mut shadow, key)
        .await?
        .map_err(ReplayError::Tampered)?;
    let chain = Arc::new(Mutex::new(ChainCheck::new()));
    if let Some(anchor) = &anchor {
        lock(&chain).keep_root_at(anchor.size);
    }
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
        Some(&chain),
    )
    .await?;
    let folded_in = started.elapsed();
    write_shadow(&mut shadow, rows).await?;
    let written_in = started.elapsed() - folded_in;

    // Catch up with whatever landed meanwhile, then swap, all under the ledger lock.
    let mut tx = store.begin_write().await?;
    let mut caught_up = folded;
    let mut pages = std::pin::pin!(store.read_all_checked(folded, chain.clone()));
    while let Some(page) = pages.try_next().await.map_err(chain_broken)? {
        let mut sql_rows = SqlRows::new(tx.conn(), SHADOW);
        for event in &page {
            crate::fold::apply(&mut sql_rows, event).await?;
            caught_up = event.position;
        }
    }
    let checked = lock(&chain).clone();
    check_against_the_signed_tree(tx.conn(), &checked, anchor.as_ref(), caught_up).await?;
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

fn lock(chain: &Mutex<ChainCheck>) -> std::sync::MutexGuard<'_, ChainCheck> {
    chain
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A broken chain met while reading is a refusal, not a storage error.
fn chain_broken(error: StoreError) -> ReplayError {
    match error {
        StoreError::ChainBroken(broken) => broken.into(),
        other => other.into(),
    }
}

/// Projections checkpointed past the log's head have seen events the log no longer holds.
pub(crate) fn refuse_truncation(
    checkpoints: &[crate::schema::Checkpoint],
) -> Result<(), ReplayError> {
    match checkpoints.iter().max_by_key(|c| c.position) {
        Some(ahead) if ahead.position > ahead.head => Err(ReplayError::Truncated {
            projection: ahead.name.clone(),
            position: ahead.position,
            head: ahead.head,
        }),
        _ => Ok(()),
    }
}

/// The walk reached the signed checkpoint's size and gave its root there.
fn gives_the_signed_root(
    chain: &ChainCheck,
    anchor: &checkpoints::Checkpoint,
) -> Result<(), String> {
    if (chain.events() as u64) < anchor.size {
        return Err(format!(
            "the log holds {} events, fewer than the {} of its latest signed checkpoint: \
             events were removed",
            chain.events(),
            anchor.size
        ));
    }
    if chain.root_at(anchor.size) != Some(anchor.root) {
        return Err(format!(
            "the events' tree at size {} is not the root of the signed checkpoint of that size: \
             the log was changed",
            anchor.size
        ));
    }
    Ok(())
}

/// The walk that fed the rebuild reached the log's head (`caught_up`, under the ledger lock),
/// gave the signed root at the latest checkpoint's size, and its root at the head is the one
/// of the stored tree (which proofs and the next checkpoint are made from).
async fn check_against_the_signed_tree(
    conn: &mut AnyConnection,
    chain: &ChainCheck,
    anchor: Option<&checkpoints::Checkpoint>,
    caught_up: i64,
) -> Result<(), ReplayError> {
    let (head, _): (i64, String) =
        sqlx::query_as("select position, hash from ledger_head where id = 1")
            .fetch_one(&mut *conn)
            .await?;
    if chain.events() != head || caught_up != head {
        return Err(ReplayError::Tampered(format!(
            "the log's head says {head} events, but the log holds {}",
            chain.events()
        )));
    }
    if let Some(anchor) = anchor {
        gives_the_signed_root(chain, anchor).map_err(ReplayError::Tampered)?;
    }
    if mcp_events::tree::holds_size(conn, head as u64)
        .await
        .map_err(StoreError::from)?
    {
        let stored = mcp_events::tree::root(conn, head as u64)
            .await
            .map_err(StoreError::from)?;
        if stored != chain.root() {
            return Err(ReplayError::Tampered(format!(
                "the stored Merkle tree's root at size {head} is not the tree of the events' \
                 hashes"
            )));
        }
    }
    Ok(())
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
/// far to fold). Projections ahead of the log (a truncation) are reported first; then the log
/// itself is checked as a rebuild checks it (its chain, and the latest signed checkpoint's root
/// by its stated root: no key is needed to compare). Writes nothing, takes no lock, creates no
/// table.
pub async fn check(
    store: &EventStore,
    progress: &mut Progress<'_>,
) -> Result<CheckOutcome, ReplayError> {
    use sqlx::Connection;
    if let Err(truncated) = refuse_truncation(&crate::schema::checkpoints(store).await?) {
        return Ok(CheckOutcome::Differs {
            table: "projection_checkpoints",
            description: truncated.to_string(),
        });
    }
    let anchor = {
        let mut conn = store.database().pool().acquire().await?;
        match checkpoints::latest_signed(&mut conn, None).await? {
            Ok(anchor) => anchor,
            Err(reason) => return Ok(CheckOutcome::LogDoesNotVerify(reason)),
        }
    };
    let chain = Arc::new(Mutex::new(ChainCheck::new()));
    if let Some(anchor) = &anchor {
        lock(&chain).keep_root_at(anchor.size);
    }
    let mut rows = MemoryRows::default();
    let folded = match fold_in_memory(
        store,
        &mut rows,
        0,
        None,
        AuditSink::Keep,
        progress,
        Some(&chain),
    )
    .await
    {
        Err(ReplayError::Tampered(reason)) => return Ok(CheckOutcome::LogDoesNotVerify(reason)),
        folded => folded?,
    };
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
    let position = match fold_in_memory(
        store,
        &mut rows,
        folded,
        Some(head),
        AuditSink::Keep,
        progress,
        Some(&chain),
    )
    .await
    {
        Err(ReplayError::Tampered(reason)) => return Ok(CheckOutcome::LogDoesNotVerify(reason)),
        position => position?,
    };
    if let Some(anchor) = &anchor {
        if let Err(reason) = gives_the_signed_root(&lock(&chain), anchor) {
            return Ok(CheckOutcome::LogDoesNotVerify(reason));
        }
    }
    let outcome = match outdated_projection(&mut snapshot, head).await? {
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
/// build's columns, so comparing rows would say nothing useful. Or one that has seen more
/// events than the log's `head`: the log was truncated, and its rows are the evidence.
async fn outdated_projection(
    conn: &mut AnyConnection,
    head: i64,
) -> Result<Option<String>, sqlx::Error> {
    let stored: Vec<(String, i64, i64)> =
        sqlx::query_as("select name, version, position from projection_checkpoints")
            .fetch_all(&mut *conn)
            .await?;
    if let Some((name, _, position)) = stored.iter().find(|(_, _, position)| *position > head) {
        return Ok(Some(format!(
            "projection {name} was built from {position} events, but the log's head is at \
             position {head}: events were removed from the log (truncation)"
        )));
    }
    for (name, version) in crate::schema::PROJECTIONS {
        match stored.iter().find(|(stored, _, _)| stored == name) {
            Some((_, found, _)) if found == version => {}
            Some((_, found, _)) => {
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

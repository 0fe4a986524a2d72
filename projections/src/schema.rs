//! Projection tables, their versions and checkpoints, and the inline update path.

use crate::rows::*;
use mcp_events::EventStore;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

/// Each projection with the version of its code; bump a version when its fold or tables change
/// and the next start-up rebuilds it from the log.
pub const PROJECTIONS: &[(&str, i64)] = &[
    ("directory", 1),
    ("tokens", 2),
    ("leases", 2),
    ("sessions", 1),
    ("audit", 1),
];

/// Every projection table's DDL under `prefix`.
pub fn all_ddl(prefix: &str, kind: TableKind) -> Vec<String> {
    [
        ddl::<UserRow>(prefix, kind),
        ddl::<OrganizationRow>(prefix, kind),
        ddl::<MembershipRow>(prefix, kind),
        ddl::<IntegrationRow>(prefix, kind),
        ddl::<TokenRow>(prefix, kind),
        ddl::<LeaseRow>(prefix, kind),
        ddl::<SessionRow>(prefix, kind),
        ddl::<AuditRow>(prefix, kind),
    ]
    .concat()
}

pub const TABLES: &[&str] = &[
    UserRow::TABLE,
    OrganizationRow::TABLE,
    MembershipRow::TABLE,
    IntegrationRow::TABLE,
    TokenRow::TABLE,
    LeaseRow::TABLE,
    SessionRow::TABLE,
    AuditRow::TABLE,
];

pub async fn create_tables(
    conn: &mut AnyConnection,
    prefix: &str,
    kind: TableKind,
) -> Result<(), sqlx::Error> {
    for statement in all_ddl(prefix, kind) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn drop_tables(conn: &mut AnyConnection, prefix: &str) -> Result<(), sqlx::Error> {
    for table in TABLES {
        sqlx::query(AssertSqlSafe(format!(
            "drop table if exists {prefix}{table}"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records that every projection covers the log up to `position` (same transaction as the rows).
pub async fn set_checkpoints(conn: &mut AnyConnection, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update projection_checkpoints set position = $1")
        .bind(position)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn write_checkpoints(
    conn: &mut AnyConnection,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from projection_checkpoints")
        .execute(&mut *conn)
        .await?;
    for (name, version) in PROJECTIONS {
        sqlx::query(
            "insert into projection_checkpoints (name, position, version) values ($1, $2, $3)",
        )
        .bind(*name)
        .bind(position)
        .bind(*version)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Start-up: creates missing tables, and rebuilds from the log when a projection's version
/// changed or its checkpoint is behind the log. Returns whether a rebuild ran. Replicas starting
/// together take turns: the first rebuilds, the others then find the projections current.
/// Shadow tables a replay killed mid-way left behind are dropped first, under the same lock.
///
/// Projections checkpointed past the log's head are refused (the log was truncated; their rows
/// are the evidence), and a rebuild refuses a log that does not give its latest signed
/// checkpoint (see `replay::rebuild_checked`; `key`, when known, checks its signature).
pub async fn ensure(store: &EventStore) -> Result<bool, crate::ReplayError> {
    ensure_checked(store, None).await
}

/// [`ensure`], with the log's key to check the latest checkpoint's signature by.
pub async fn ensure_checked(
    store: &EventStore,
    key: Option<&mcp_events::checkpoints::Verifier>,
) -> Result<bool, crate::ReplayError> {
    let _lock = crate::replay_lock::ReplayLock::acquire(store).await?;
    if has_checkpoints(&mut *store.database().pool().acquire().await?).await {
        crate::replay::refuse_truncation(&checkpoints(store).await?)?;
    }
    drop_leftovers(store).await?;
    // Current projections need no DDL, so the production role (no `CREATE`) can start. Tables
    // are created under the lock: PostgreSQL's `create table if not exists` races with itself.
    if current(store).await.unwrap_or(false) {
        return Ok(false);
    }
    let mut conn = store.database().pool().acquire().await?;
    let first_build = !has_checkpoints(&mut conn).await;
    create_live_tables(&mut conn).await?;
    drop(conn);
    let checkpoints = checkpoints(store).await?;
    if is_current(&checkpoints) {
        return Ok(false);
    }
    if first_build {
        tracing::info!("building the projections for the first time on this database");
    } else {
        tracing::warn!("projections are outdated or behind the log: rebuilding");
    }
    crate::replay::rebuild_locked(store, &mut |_, _| {}, key).await?;
    Ok(true)
}

/// Creates the live tables that are missing (with their indexes). A table of another shape
/// (its projection's version changed) is left to the rebuild, whose swap recreates it.
async fn create_live_tables(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    async fn create<R: TableRow>(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let columns = live_columns(conn, R::TABLE).await?;
        if columns.is_empty() || has_current_shape::<R>(conn).await? {
            for statement in ddl::<R>("", TableKind::Live) {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }
    create::<UserRow>(conn).await?;
    create::<OrganizationRow>(conn).await?;
    create::<MembershipRow>(conn).await?;
    create::<IntegrationRow>(conn).await?;
    create::<TokenRow>(conn).await?;
    create::<LeaseRow>(conn).await?;
    create::<SessionRow>(conn).await?;
    create::<AuditRow>(conn).await
}

/// Whether a live table has exactly the columns of this build's rows, in order.
pub(crate) async fn has_current_shape<R: TableRow>(
    conn: &mut AnyConnection,
) -> Result<bool, sqlx::Error> {
    let columns = live_columns(conn, R::TABLE).await?;
    Ok(columns
        .iter()
        .map(String::as_str)
        .eq(R::COLUMNS.iter().map(|(name, _)| *name)))
}

/// A live table's column names, in order (none if it does not exist).
async fn live_columns(conn: &mut AnyConnection, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let sql = match mcp_events::Backend::of(conn) {
        mcp_events::Backend::Sqlite => "select name from pragma_table_info($1) order by cid",
        mcp_events::Backend::Postgres => {
            "select column_name::text from information_schema.columns \
             where table_schema = current_schema() and table_name = $1 order by ordinal_position"
        }
    };
    sqlx::query_scalar(sql)
        .bind(table)
        .fetch_all(&mut *conn)
        .await
}

/// Drops the `replay_*` tables of a rebuild that did not finish. A role that may not drop them
/// (the production role: `replay` runs as the owner) starts anyway and says so.
async fn drop_leftovers(store: &EventStore) -> Result<(), crate::ReplayError> {
    let mut conn = store.database().pool().acquire().await?;
    if crate::replay::leftover_shadow_tables(&mut conn)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    match crate::replay::drop_leftover_shadow_tables(&mut conn).await {
        Ok(dropped) => {
            tracing::info!(
                tables = dropped,
                "dropped the shadow tables of a replay that did not finish"
            );
        }
        Err(error) => tracing::warn!(
            %error,
            "cannot drop the replay_* tables a replay that did not finish left behind; \
             `mcp-manager replay` run as the schema's owner drops them"
        ),
    }
    Ok(())
}

async fn has_checkpoints(conn: &mut AnyConnection) -> bool {
    sqlx::query_scalar::<_, i64>("select count(*) from projection_checkpoints")
        .fetch_one(&mut *conn)
        .await
        .is_ok_and(|count| count > 0)
}

/// One projection's checkpoint, read with the log's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    pub position: i64,
    pub version: i64,
    /// The log's head position when the checkpoint was read.
    pub head: i64,
}

/// Every projection's checkpoint and the log's head. They are read in one statement, so one
/// snapshot: a writer committing between two reads would otherwise make current projections
/// look behind.
pub async fn checkpoints(store: &EventStore) -> Result<Vec<Checkpoint>, crate::ReplayError> {
    let rows = sqlx::query(
        "select c.name, c.position, c.version, h.position from projection_checkpoints c \
         cross join ledger_head h where h.id = 1",
    )
    .fetch_all(store.database().pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Checkpoint {
                name: row.try_get(0)?,
                position: row.try_get(1)?,
                version: row.try_get(2)?,
                head: row.try_get(3)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Whether every projection is at its current version and checkpointed at the log's head.
pub async fn current(store: &EventStore) -> Result<bool, crate::ReplayError> {
    Ok(is_current(&checkpoints(store).await?))
}

fn is_current(checkpoints: &[Checkpoint]) -> bool {
    checkpoints.len() == PROJECTIONS.len()
        && PROJECTIONS.iter().all(|(name, version)| {
            checkpoints
                .iter()
                .any(|c| c.name == *name && c.version == *version && c.position == c.head)
        })
}

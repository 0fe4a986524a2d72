//! Projection tables, their versions and checkpoints, and the inline update path.

use crate::rows::*;
use mcp_events::EventStore;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

/// Each projection with the version of its code; bump a version when its fold or tables change
/// and the next start-up rebuilds it from the log.
pub const PROJECTIONS: &[(&str, i64)] =
    &[("directory", 1), ("tokens", 1), ("leases", 1), ("audit", 1)];

/// Every projection table's DDL under `prefix`.
pub fn all_ddl(prefix: &str, kind: TableKind) -> Vec<String> {
    [
        ddl::<UserRow>(prefix, kind),
        ddl::<OrganizationRow>(prefix, kind),
        ddl::<MembershipRow>(prefix, kind),
        ddl::<IntegrationRow>(prefix, kind),
        ddl::<TokenRow>(prefix, kind),
        ddl::<LeaseRow>(prefix, kind),
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
pub async fn ensure(store: &EventStore) -> Result<bool, crate::ReplayError> {
    let _lock = crate::replay_lock::ReplayLock::acquire(store).await?;
    // Current projections need no DDL, so the production role (no `CREATE`) can start. Tables
    // are created under the lock: PostgreSQL's `create table if not exists` races with itself.
    if current(store).await.unwrap_or(false) {
        return Ok(false);
    }
    let mut conn = store.database().pool().acquire().await?;
    create_tables(&mut conn, "", TableKind::Live).await?;
    drop(conn);
    let checkpoints = checkpoints(store).await?;
    if is_current(&checkpoints) {
        return Ok(false);
    }
    if checkpoints.is_empty() {
        // A new database (or one that never had projections): building them is expected.
        tracing::info!("building the projections for the first time on this database");
    } else {
        tracing::warn!("projections are outdated or behind the log: rebuilding");
    }
    crate::replay::rebuild_locked(store, &mut |_, _| {}).await?;
    Ok(true)
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

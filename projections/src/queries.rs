//! Read queries over the live projections, for commands, the HTTP API and the CLI.
//! Only reads: every write to these tables goes through the fold.

use crate::rows::*;
use crate::store::{Rows, SqlRows};
use sqlx::{AnyConnection, AssertSqlSafe};

fn columns<R: TableRow>(alias: &str) -> String {
    R::COLUMNS
        .iter()
        .map(|(name, _)| format!("{alias}.{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn by_key<R: TableRow>(
    conn: &mut AnyConnection,
    key: Cell,
) -> Result<Option<R>, sqlx::Error> {
    SqlRows::new(conn, "").get::<R>(vec![key]).await
}

pub async fn user(conn: &mut AnyConnection, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
    by_key(conn, Cell::Int(Some(id))).await
}

pub async fn user_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!(
        "select {} from users u where lower(u.email) = lower($1)",
        columns::<UserRow>("u")
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(email)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(UserRow::from_row).transpose()
}

pub async fn organization(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<OrganizationRow>, sqlx::Error> {
    by_key(conn, Cell::Int(Some(id))).await
}

pub async fn token(conn: &mut AnyConnection, id: i64) -> Result<Option<TokenRow>, sqlx::Error> {
    by_key(conn, Cell::Int(Some(id))).await
}

pub async fn token_by_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<TokenRow>, sqlx::Error> {
    let sql = format!(
        "select {} from tokens t where t.token_hash = $1",
        columns::<TokenRow>("t")
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(token_hash)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(TokenRow::from_row).transpose()
}

pub async fn tokens_of_user(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<Vec<TokenRow>, sqlx::Error> {
    let sql = format!(
        "select {} from tokens t where t.user_id = $1 order by t.id",
        columns::<TokenRow>("t")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(TokenRow::from_row).collect()
}

/// A user's memberships, by organization id.
pub async fn memberships_of_user(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<Vec<MembershipRow>, sqlx::Error> {
    let sql = format!(
        "select {} from memberships m where m.user_id = $1 order by m.organization_id",
        columns::<MembershipRow>("m")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(MembershipRow::from_row).collect()
}

/// A user's personal integrations, in id order.
pub async fn integrations_of_user(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<Vec<IntegrationRow>, sqlx::Error> {
    let sql = format!(
        "select {} from integrations i where i.user_id = $1 order by i.id",
        columns::<IntegrationRow>("i")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(IntegrationRow::from_row).collect()
}

/// An organization's integrations, in id order.
pub async fn integrations_of_organization(
    conn: &mut AnyConnection,
    organization_id: i64,
) -> Result<Vec<IntegrationRow>, sqlx::Error> {
    let sql = format!(
        "select {} from integrations i where i.organization_id = $1 order by i.id",
        columns::<IntegrationRow>("i")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(organization_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(IntegrationRow::from_row).collect()
}

/// Leases past their expiry with no revocation or expiry recorded yet, oldest first (then by
/// id, so the order never depends on the database).
pub async fn leases_due_for_expiry(
    conn: &mut AnyConnection,
    now_micros: i64,
    limit: i64,
) -> Result<Vec<LeaseRow>, sqlx::Error> {
    let sql = format!(
        "select {} from leases l where l.expires_at <= $1 and l.revoked_at is null \
         and l.expired_at is null order by l.expires_at, l.id limit $2",
        columns::<LeaseRow>("l")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(now_micros)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(LeaseRow::from_row).collect()
}

/// Audit records, newest first, optionally for one user and/or one action.
pub async fn audit(
    conn: &mut AnyConnection,
    user_id: Option<i64>,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let sql = format!(
        "select {} from audit_log a where ($1 is null or a.user_id = $1) \
         and ($2 is null or a.action = $2) order by a.position desc limit $3",
        columns::<AuditRow>("a")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .bind(action)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(AuditRow::from_row).collect()
}

/// Rows whose `column` is one of `values`, in as few statements as the backend allows (for a
/// batch that loads what its commands will read, all at once).
pub async fn rows_where_in<R: TableRow>(
    conn: &mut AnyConnection,
    column: &str,
    values: &[String],
) -> Result<Vec<R>, sqlx::Error> {
    let mut rows = Vec::with_capacity(values.len());
    for chunk in values.chunks(1_000) {
        let sql = format!(
            "select {} from {} t where t.{column} in ({})",
            columns::<R>("t"),
            R::TABLE,
            mcp_events::Backend::of(conn).placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in chunk {
            query = query.bind(value.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            rows.push(R::from_row(&row)?);
        }
    }
    Ok(rows)
}

//! Read queries over the live projections, for commands, the HTTP API and the CLI.
//! Only reads: every write to these tables goes through the fold.

use crate::rows::*;
use crate::store::{bind_cells, Rows, SqlRows};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

fn columns<R: TableRow>(alias: &str) -> String {
    R::COLUMNS
        .iter()
        .map(|(name, _)| format!("{alias}.{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row by its one-column primary key.
pub async fn by_key<R: TableRow>(
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

/// Every user, by id.
pub async fn users(conn: &mut AnyConnection) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!(
        "select {} from users u order by u.id",
        columns::<UserRow>("u")
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter().map(UserRow::from_row).collect()
}

/// Every organization, by id.
pub async fn organizations(conn: &mut AnyConnection) -> Result<Vec<OrganizationRow>, sqlx::Error> {
    let sql = format!(
        "select {} from organizations o order by o.id",
        columns::<OrganizationRow>("o")
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter().map(OrganizationRow::from_row).collect()
}

/// Every membership, by organization, then user.
pub async fn memberships(conn: &mut AnyConnection) -> Result<Vec<MembershipRow>, sqlx::Error> {
    let sql = format!(
        "select {} from memberships m order by m.organization_id, m.user_id",
        columns::<MembershipRow>("m")
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter().map(MembershipRow::from_row).collect()
}

/// Integrations (optionally one user's or one organization's), by id, each with the key id of
/// its current secret version. Never the secrets.
pub async fn integrations_with_key_ids(
    conn: &mut AnyConnection,
    user_id: Option<i64>,
    organization_id: Option<i64>,
) -> Result<Vec<(IntegrationRow, Option<String>)>, sqlx::Error> {
    let sql = format!(
        "select {}, s.key_id from integrations i left join integration_secrets s \
         on s.integration_id = i.id and s.version = i.secret_version \
         where ($1 is null or i.user_id = $1) and ($2 is null or i.organization_id = $2) \
         order by i.id",
        columns::<IntegrationRow>("i")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user_id)
        .bind(organization_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let key_id = row.try_get(IntegrationRow::COLUMNS.len())?;
            Ok((IntegrationRow::from_row(row)?, key_id))
        })
        .collect()
}

/// A lease's status at a moment: revoked, else expired (recorded, or past its expiry), else
/// active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Active,
    Expired,
    Revoked,
}

/// Which leases a listing or a revocation is about.
#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub server_id: Option<String>,
    pub state: Option<LeaseState>,
    /// Only leases created at or before this time (microseconds).
    pub created_until: Option<i64>,
}

/// Leases that pass `filter` at `now_micros`, newest first (then by id), at most `limit`.
pub async fn leases(
    conn: &mut AnyConnection,
    filter: &LeaseFilter,
    now_micros: i64,
    limit: i64,
) -> Result<Vec<LeaseRow>, sqlx::Error> {
    let state = filter.state.map(|state| match state {
        LeaseState::Active => "active",
        LeaseState::Expired => "expired",
        LeaseState::Revoked => "revoked",
    });
    let sql = format!(
        "select {} from leases l where ($1 is null or l.user_id = $1) \
         and ($2 is null or l.token_id = $2) and ($3 is null or l.server_id = $3) \
         and ($4 is null or l.created_at <= $4) \
         and ($5 is null or $5 = case when l.revoked_at is not null then 'revoked' \
              when l.expired_at is not null or l.expires_at <= $6 then 'expired' \
              else 'active' end) \
         order by l.created_at desc, l.id limit $7",
        columns::<LeaseRow>("l")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.user_id)
        .bind(filter.token_id)
        .bind(filter.server_id.as_deref())
        .bind(filter.created_until)
        .bind(state)
        .bind(now_micros)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(LeaseRow::from_row).collect()
}

/// Stored secrets sealed with the key `key_id`, in (integration, version) order, at most
/// `limit`.
pub async fn secrets_sealed_with(
    conn: &mut AnyConnection,
    key_id: &str,
    limit: i64,
) -> Result<Vec<SecretRow>, sqlx::Error> {
    let sql = format!(
        "select {} from integration_secrets s where s.key_id = $1 \
         order by s.integration_id, s.version limit $2",
        columns::<SecretRow>("s")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(key_id)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(SecretRow::from_row).collect()
}

/// Rows whose `column` is one of `values`, in as few statements as the backend allows (for a
/// batch that loads what its commands will read, all at once).
pub async fn rows_where_in<R: TableRow>(
    conn: &mut AnyConnection,
    column: &str,
    values: &[String],
) -> Result<Vec<R>, sqlx::Error> {
    let cells = values.iter().map(|v| Cell::Text(Some(v.clone())));
    rows_where_cells_in(conn, column, cells.collect()).await
}

/// Rows whose integer `column` is one of `values` (in no particular order).
pub async fn rows_where_int_in<R: TableRow>(
    conn: &mut AnyConnection,
    column: &str,
    values: &[i64],
) -> Result<Vec<R>, sqlx::Error> {
    let cells = values.iter().map(|v| Cell::Int(Some(*v)));
    rows_where_cells_in(conn, column, cells.collect()).await
}

async fn rows_where_cells_in<R: TableRow>(
    conn: &mut AnyConnection,
    column: &str,
    values: Vec<Cell>,
) -> Result<Vec<R>, sqlx::Error> {
    let mut rows = Vec::with_capacity(values.len());
    for chunk in values.chunks(1_000) {
        let sql = format!(
            "select {} from {} t where t.{column} in ({})",
            columns::<R>("t"),
            R::TABLE,
            mcp_events::Backend::of(conn).placeholders(1, chunk.len())
        );
        let query = bind_cells(sqlx::query(AssertSqlSafe(sql)), chunk.iter().cloned());
        for row in query.fetch_all(&mut *conn).await? {
            rows.push(R::from_row(&row)?);
        }
    }
    Ok(rows)
}

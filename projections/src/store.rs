//! Where a projection's rows live while it folds: live (or shadow) SQL tables, or memory.
//!
//! The fold in `fold.rs` is written once against `Rows`; the inline path runs it on SQL tables in
//! the append transaction, and replay runs it in memory and writes the result in bulk.

use crate::rows::{Cell, TableRow};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};
use std::collections::HashMap;

/// Row access for the fold: get, put (insert or replace), delete, by primary key.
#[allow(async_fn_in_trait)]
pub trait Rows {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error>;
    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error>;
    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error>;
}

pub fn bind_cells<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    cells: impl IntoIterator<Item = Cell>,
) -> Query<'q, Any, AnyArguments> {
    for cell in cells {
        query = match cell {
            Cell::Int(v) => query.bind(v),
            Cell::Text(v) => query.bind(v),
        };
    }
    query
}

fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_filter<R: TableRow>() -> String {
    R::COLUMNS[..R::KEY_LEN]
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ${}", i + 1))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn column_list<R: TableRow>() -> String {
    R::COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows in SQL tables (`prefix` empty for the live tables), through one connection.
pub struct SqlRows<'c> {
    conn: &'c mut AnyConnection,
    prefix: &'c str,
}

impl<'c> SqlRows<'c> {
    pub fn new(conn: &'c mut AnyConnection, prefix: &'c str) -> Self {
        Self { conn, prefix }
    }
}

impl Rows for SqlRows<'_> {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error> {
        let sql = format!(
            "select {} from {}{} where {}",
            column_list::<R>(),
            self.prefix,
            R::TABLE,
            key_filter::<R>()
        );
        let row = bind_cells(sqlx::query(AssertSqlSafe(sql)), key)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(R::from_row).transpose()
    }

    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error> {
        let updates: Vec<String> = R::COLUMNS[R::KEY_LEN..]
            .iter()
            .map(|(name, _)| format!("{name} = excluded.{name}"))
            .collect();
        let key: Vec<&str> = R::COLUMNS[..R::KEY_LEN].iter().map(|(n, _)| *n).collect();
        let sql = format!(
            "insert into {}{} ({}) values ({}) on conflict ({}) do update set {}",
            self.prefix,
            R::TABLE,
            column_list::<R>(),
            placeholders(1, R::COLUMNS.len()),
            key.join(", "),
            updates.join(", ")
        );
        bind_cells(sqlx::query(AssertSqlSafe(sql)), row.cells())
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error> {
        let sql = format!(
            "delete from {}{} where {}",
            self.prefix,
            R::TABLE,
            key_filter::<R>()
        );
        bind_cells(sqlx::query(AssertSqlSafe(sql)), key)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

/// Rows in memory, by table and key. Audit records are append-only (keyed by a growing
/// position), so they are kept in a plain list.
#[derive(Default, Debug)]
pub struct MemoryRows {
    tables: HashMap<&'static str, HashMap<Vec<Cell>, Vec<Cell>>>,
    audit: Vec<Vec<Cell>>,
}

fn is_audit<R: TableRow>() -> bool {
    R::TABLE == crate::rows::AuditRow::TABLE
}

impl MemoryRows {
    /// Every row of one table, in key order.
    pub fn rows<R: TableRow>(&self) -> Vec<R> {
        let mut cells: Vec<Vec<Cell>> = if is_audit::<R>() {
            self.audit.clone()
        } else {
            self.tables
                .get(R::TABLE)
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default()
        };
        cells.sort_by(|a, b| a[..R::KEY_LEN].cmp(&b[..R::KEY_LEN]));
        cells.into_iter().map(R::from_cells).collect()
    }

    /// Takes every row of one table out (replay flushes the audit log in chunks this way).
    pub fn take<R: TableRow>(&mut self) -> Vec<Vec<Cell>> {
        if is_audit::<R>() {
            return std::mem::take(&mut self.audit);
        }
        self.tables
            .remove(R::TABLE)
            .map(|t| t.into_values().collect())
            .unwrap_or_default()
    }

    pub fn row_count<R: TableRow>(&self) -> usize {
        if is_audit::<R>() {
            return self.audit.len();
        }
        self.tables.get(R::TABLE).map_or(0, HashMap::len)
    }
}

impl Rows for MemoryRows {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error> {
        Ok(self
            .tables
            .get(R::TABLE)
            .and_then(|t| t.get(&key))
            .cloned()
            .map(R::from_cells))
    }

    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error> {
        let cells = row.cells();
        if is_audit::<R>() {
            self.audit.push(cells);
            return Ok(());
        }
        let key = cells[..R::KEY_LEN].to_vec();
        self.tables.entry(R::TABLE).or_default().insert(key, cells);
        Ok(())
    }

    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error> {
        if let Some(table) = self.tables.get_mut(R::TABLE) {
            table.remove(&key);
        }
        Ok(())
    }
}

/// Bind parameters per multi-row statement (SQLite allows 32766, PostgreSQL 65535).
const PARAMETER_BUDGET: usize = 30_000;

/// `count` placeholders for a multi-row statement. SQLite gets anonymous `?`: binding numbered
/// ones makes the driver look every name up (quadratic in the number of parameters).
fn bulk_placeholders(conn: &AnyConnection, from: usize, count: usize) -> String {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        vec!["?"; count].join(", ")
    } else {
        placeholders(from, count)
    }
}

/// Inserts rows in multi-row statements, staying under both backends' bind-parameter limits.
pub async fn bulk_insert<R: TableRow>(
    conn: &mut AnyConnection,
    prefix: &str,
    rows: Vec<Vec<Cell>>,
) -> Result<(), sqlx::Error> {
    let width = R::COLUMNS.len();
    let per_statement = (PARAMETER_BUDGET / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Cell>> = rows.by_ref().take(per_statement).collect();
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", bulk_placeholders(conn, i * width + 1, width)))
            .collect();
        let sql = format!(
            "insert into {prefix}{} ({}) values {}",
            R::TABLE,
            column_list::<R>(),
            values.join(", ")
        );
        bind_cells(sqlx::query(AssertSqlSafe(sql)), chunk.into_iter().flatten())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts or replaces rows by primary key, many per statement (keys must be distinct).
pub async fn bulk_upsert<R: TableRow>(
    conn: &mut AnyConnection,
    rows: Vec<Vec<Cell>>,
) -> Result<(), sqlx::Error> {
    let width = R::COLUMNS.len();
    let per_statement = (PARAMETER_BUDGET / width).max(1);
    let key: Vec<&str> = R::COLUMNS[..R::KEY_LEN].iter().map(|(n, _)| *n).collect();
    let updates: Vec<String> = R::COLUMNS[R::KEY_LEN..]
        .iter()
        .map(|(name, _)| format!("{name} = excluded.{name}"))
        .collect();
    for chunk in rows.chunks(per_statement) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", bulk_placeholders(conn, i * width + 1, width)))
            .collect();
        let sql = format!(
            "insert into {} ({}) values {} on conflict ({}) do update set {}",
            R::TABLE,
            column_list::<R>(),
            values.join(", "),
            key.join(", "),
            updates.join(", ")
        );
        bind_cells(
            sqlx::query(AssertSqlSafe(sql)),
            chunk.iter().flatten().cloned(),
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every row of a table, in key order.
pub async fn load_all<R: TableRow>(
    conn: &mut AnyConnection,
    prefix: &str,
) -> Result<Vec<R>, sqlx::Error> {
    let key: Vec<&str> = R::COLUMNS[..R::KEY_LEN].iter().map(|(n, _)| *n).collect();
    let sql = format!(
        "select {} from {prefix}{} order by {}",
        column_list::<R>(),
        R::TABLE,
        key.join(", ")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(R::from_row).collect()
}

//! Where a projection's rows live while it folds: live (or shadow) SQL tables, or memory.
//!
//! The fold in `fold.rs` is written once against `Rows`; the inline path runs it on SQL tables in
//! the append transaction, and replay runs it in memory and writes the result in bulk.

use crate::rows::{AuditRow, Cell, TableRow};
use mcp_events::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};
use std::any::Any as AnyValue;
use std::collections::HashMap;

/// Row access for the fold: get, put (insert or replace), delete, by primary key.
#[allow(async_fn_in_trait)]
pub trait Rows {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error>;
    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error>;
    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error>;

    /// Changes a row, if there is one under `key`.
    async fn update<R: TableRow>(
        &mut self,
        key: Vec<Cell>,
        change: impl FnOnce(&mut R),
    ) -> Result<(), sqlx::Error> {
        if let Some(mut row) = self.get::<R>(key).await? {
            change(&mut row);
            self.put(row).await?;
        }
        Ok(())
    }
}

pub fn bind_cells<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    cells: impl IntoIterator<Item = Cell>,
) -> Query<'q, Any, AnyArguments> {
    for cell in cells {
        query = match cell {
            Cell::Int(v) => query.bind(v),
            Cell::Text(v) => query.bind(v),
            Cell::Bytes(v) => query.bind(v),
        };
    }
    query
}

fn key_filter<R: TableRow>(backend: Backend) -> String {
    let names = R::COLUMNS[..R::KEY_LEN].iter().map(|(name, _)| *name);
    let placeholders = backend.placeholders(1, R::KEY_LEN);
    names
        .zip(placeholders.split(", "))
        .map(|(name, p)| format!("{name} = {p}"))
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
            key_filter::<R>(Backend::of(self.conn))
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
            Backend::of(self.conn).placeholders(1, R::COLUMNS.len()),
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
            key_filter::<R>(Backend::of(self.conn))
        );
        bind_cells(sqlx::query(AssertSqlSafe(sql)), key)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

/// Rows in memory, typed, by table and key. Audit records are append-only (keyed by a growing
/// position), so they are kept in a plain list.
#[derive(Default)]
pub struct MemoryRows {
    /// `R::TABLE` → `Table<R>`.
    tables: HashMap<&'static str, Box<dyn AnyValue + Send + Sync>>,
    audit: Vec<AuditRow>,
}

type Table<R> = HashMap<Vec<Cell>, R>;

impl std::fmt::Debug for MemoryRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRows")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .field("audit", &self.audit.len())
            .finish()
    }
}

impl MemoryRows {
    /// The audit list, if `R` is `AuditRow`.
    fn audit<R: TableRow>(&self) -> Option<&Vec<R>> {
        (&self.audit as &dyn AnyValue).downcast_ref::<Vec<R>>()
    }

    fn audit_mut<R: TableRow>(&mut self) -> Option<&mut Vec<R>> {
        (&mut self.audit as &mut dyn AnyValue).downcast_mut::<Vec<R>>()
    }

    fn table<R: TableRow>(&self) -> Option<&Table<R>> {
        self.tables.get(R::TABLE)?.downcast_ref::<Table<R>>()
    }

    fn table_mut<R: TableRow>(&mut self) -> &mut Table<R> {
        self.tables
            .entry(R::TABLE)
            .or_insert_with(|| Box::new(Table::<R>::new()))
            .downcast_mut::<Table<R>>()
            .expect("one row type per table")
    }

    /// Every row of one table, in key order.
    pub fn rows<R: TableRow>(&self) -> Vec<R> {
        let mut rows: Vec<R> = match self.audit::<R>() {
            Some(audit) => audit.clone(),
            None => self
                .table::<R>()
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default(),
        };
        rows.sort_by_cached_key(R::key);
        rows
    }

    /// Takes every row of one table out as cells (replay writes them in bulk this way).
    pub fn take<R: TableRow>(&mut self) -> Vec<Vec<Cell>> {
        if let Some(audit) = self.audit_mut::<R>() {
            return std::mem::take(audit).iter().map(R::cells).collect();
        }
        self.tables
            .remove(R::TABLE)
            .and_then(|t| t.downcast::<Table<R>>().ok())
            .map(|t| t.values().map(R::cells).collect())
            .unwrap_or_default()
    }

    pub fn row_count<R: TableRow>(&self) -> usize {
        if let Some(audit) = self.audit::<R>() {
            return audit.len();
        }
        self.table::<R>().map_or(0, HashMap::len)
    }
}

impl Rows for MemoryRows {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error> {
        Ok(self.table::<R>().and_then(|t| t.get(&key)).cloned())
    }

    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error> {
        if let Some(audit) = self.audit_mut::<R>() {
            audit.push(row);
            return Ok(());
        }
        self.table_mut::<R>().insert(row.key(), row);
        Ok(())
    }

    /// In place: no copy of the row, no new key.
    async fn update<R: TableRow>(
        &mut self,
        key: Vec<Cell>,
        change: impl FnOnce(&mut R),
    ) -> Result<(), sqlx::Error> {
        if let Some(row) = self.table_mut::<R>().get_mut(&key) {
            change(row);
        }
        Ok(())
    }

    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error> {
        if let Some(table) = self.tables.get_mut(R::TABLE) {
            if let Some(table) = table.downcast_mut::<Table<R>>() {
                table.remove(&key);
            }
        }
        Ok(())
    }
}

/// Bind parameters per multi-row statement (SQLite allows 32766, PostgreSQL 65535).
const PARAMETER_BUDGET: usize = 30_000;

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
            .map(|i| format!("({})", Backend::of(conn).placeholders(i * width + 1, width)))
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
            .map(|i| format!("({})", Backend::of(conn).placeholders(i * width + 1, width)))
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

/// Deletes rows by primary key.
pub async fn delete_keys<R: TableRow>(
    conn: &mut AnyConnection,
    keys: Vec<Vec<Cell>>,
) -> Result<(), sqlx::Error> {
    let mut sql = SqlRows::new(conn, "");
    for key in keys {
        sql.delete::<R>(key).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{OrganizationRow, UserRow};

    fn user(id: i64) -> UserRow {
        UserRow {
            id,
            email: format!("u{id}@x.io"),
            name: "U".into(),
            disabled: false,
            created_at: 0,
        }
    }

    fn audit(position: i64) -> AuditRow {
        AuditRow {
            position,
            user_id: None,
            action: "user_registered".into(),
            entity_type: "User".into(),
            entity_id: position.to_string(),
            ip: None,
            user_agent: None,
            details: "{}".into(),
            created_at: 0,
        }
    }

    #[tokio::test]
    async fn memory_rows_keep_each_table_typed_and_in_key_order() {
        let mut rows = MemoryRows::default();
        for id in [3, 1, 2] {
            rows.put(user(id)).await.unwrap();
        }
        rows.put(audit(2)).await.unwrap();
        rows.put(audit(1)).await.unwrap();
        rows.update::<UserRow>(vec![Cell::Int(Some(2))], |u| u.disabled = true)
            .await
            .unwrap();
        rows.update::<UserRow>(vec![Cell::Int(Some(9))], |u| u.disabled = true)
            .await
            .unwrap();
        rows.delete::<UserRow>(vec![Cell::Int(Some(3))])
            .await
            .unwrap();

        let users = rows.rows::<UserRow>();
        assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), [1, 2]);
        assert!(users[1].disabled && !users[0].disabled);
        assert_eq!(rows.row_count::<UserRow>(), 2);
        assert_eq!(rows.row_count::<OrganizationRow>(), 0);
        assert_eq!(
            rows.rows::<AuditRow>()
                .iter()
                .map(|a| a.position)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        let taken = rows.take::<AuditRow>();
        assert_eq!(taken, vec![audit(2).cells(), audit(1).cells()]);
        assert_eq!(rows.row_count::<AuditRow>(), 0);
        assert_eq!(rows.take::<UserRow>().len(), 2);
        assert!(rows
            .get::<UserRow>(vec![Cell::Int(Some(1))])
            .await
            .unwrap()
            .is_none());
    }
}

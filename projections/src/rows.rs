//! The rows of every read model, and how each maps to its table.
//!
//! One DDL serves both backends (`bigint` and `text` mean the same to SQLite and PostgreSQL
//! here; booleans are 0/1), and every table can be created under a prefix so replay can build a shadow copy.

use sqlx::any::AnyRow;
use sqlx::Row;

/// One value of a row, as bound to or read from SQL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// A row type stored in one table.
pub trait TableRow: Sized + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    const TABLE: &'static str;
    /// `(name, type)` pairs in column order; the first `KEY_LEN` columns are the primary key.
    const COLUMNS: &'static [(&'static str, &'static str)];
    const KEY_LEN: usize;
    /// Secondary indexes: `(suffix, columns)`.
    const INDEXES: &'static [(&'static str, &'static str)] = &[];

    fn cells(&self) -> Vec<Cell>;
    fn from_cells(cells: Vec<Cell>) -> Self;
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error>;

    /// The first `KEY_LEN` cells.
    fn key(&self) -> Vec<Cell>;
}

macro_rules! table_row {
    (
        $(#[$meta:meta])*
        $row:ident in $table:literal, key $key_len:literal
        $(, index $( $suffix:literal => $cols:literal ),+ )?
        { $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $sql:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $row {
            $( $(#[$fmeta])* pub $field: $ty ),+
        }

        impl TableRow for $row {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [(&'static str, &'static str)] = &[ $( (stringify!($field), $sql) ),+ ];
            const KEY_LEN: usize = $key_len;
            $( const INDEXES: &'static [(&'static str, &'static str)] = &[ $( ($suffix, $cols) ),+ ]; )?

            fn cells(&self) -> Vec<Cell> {
                vec![ $( ToCell::to_cell(&self.$field) ),+ ]
            }

            /// The key columns only (the first `KEY_LEN` fields), without converting the rest.
            fn key(&self) -> Vec<Cell> {
                let mut key = Vec::with_capacity($key_len);
                $(
                    if key.len() < $key_len {
                        key.push(ToCell::to_cell(&self.$field));
                    }
                )+
                key
            }

            fn from_cells(cells: Vec<Cell>) -> Self {
                let mut cells = cells.into_iter();
                $(
                    let $field: $ty = FromCell::from_cell(cells.next().expect("a cell per column"));
                )+
                Self { $( $field ),+ }
            }

            fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
                let mut index = 0usize;
                $(
                    let $field: $ty = FromCell::from_any(row, index)?;
                    index += 1;
                )+
                let _ = index;
                Ok(Self { $( $field ),+ })
            }
        }
    };
}

pub trait ToCell {
    fn to_cell(&self) -> Cell;
}
impl ToCell for i64 {
    fn to_cell(&self) -> Cell {
        Cell::Int(Some(*self))
    }
}
impl ToCell for Option<i64> {
    fn to_cell(&self) -> Cell {
        Cell::Int(*self)
    }
}
impl ToCell for String {
    fn to_cell(&self) -> Cell {
        Cell::Text(Some(self.clone()))
    }
}
impl ToCell for Option<String> {
    fn to_cell(&self) -> Cell {
        Cell::Text(self.clone())
    }
}
impl ToCell for Vec<u8> {
    fn to_cell(&self) -> Cell {
        Cell::Bytes(Some(self.clone()))
    }
}
/// Booleans are stored as 0/1 integers: sqlx's `Any` driver cannot read SQLite booleans.
impl ToCell for bool {
    fn to_cell(&self) -> Cell {
        Cell::Int(Some(i64::from(*self)))
    }
}

pub trait FromCell: Sized {
    fn from_any(row: &AnyRow, index: usize) -> Result<Self, sqlx::Error>;
    fn from_cell(cell: Cell) -> Self;
}
macro_rules! from_cell {
    ($($ty:ty => $pat:pat => $value:expr),* $(,)?) => {$(
        impl FromCell for $ty {
            fn from_any(row: &AnyRow, index: usize) -> Result<Self, sqlx::Error> {
                row.try_get(index)
            }
            fn from_cell(cell: Cell) -> Self {
                match cell {
                    $pat => $value,
                    other => panic!("column type mismatch: {other:?}"),
                }
            }
        }
    )*};
}
from_cell!(
    i64 => Cell::Int(Some(v)) => v,
    Option<i64> => Cell::Int(v) => v,
    String => Cell::Text(Some(v)) => v,
    Option<String> => Cell::Text(v) => v,
    Vec<u8> => Cell::Bytes(Some(v)) => v,
);

impl FromCell for bool {
    fn from_any(row: &AnyRow, index: usize) -> Result<Self, sqlx::Error> {
        row.try_get::<i64, _>(index).map(|v| v != 0)
    }
    fn from_cell(cell: Cell) -> Self {
        matches!(cell, Cell::Int(Some(v)) if v != 0)
    }
}

table_row! {
    UserRow in "users", key 1, index "email" => "email" {
        id: i64 => "bigint not null",
        email: String => "text not null",
        name: String => "text not null",
        disabled: bool => "bigint not null",
        created_at: i64 => "bigint not null",
    }
}

table_row! {
    OrganizationRow in "organizations", key 1 {
        id: i64 => "bigint not null",
        name: String => "text not null",
        created_at: i64 => "bigint not null",
    }
}

table_row! {
    MembershipRow in "memberships", key 2, index "user" => "user_id" {
        organization_id: i64 => "bigint not null",
        user_id: i64 => "bigint not null",
        role: String => "text not null",
        created_at: i64 => "bigint not null",
    }
}

table_row! {
    /// An integration's non-secret fields; its credentials live encrypted in `integration_secrets`.
    IntegrationRow in "integrations", key 1, index "user" => "user_id", "org" => "organization_id" {
        id: i64 => "bigint not null",
        service: String => "text not null",
        user_id: Option<i64> => "bigint",
        organization_id: Option<i64> => "bigint",
        shared_with: Option<String> => "text",
        status: String => "text not null",
        secret_version: i64 => "bigint not null",
        created_at: i64 => "bigint not null",
        updated_at: i64 => "bigint not null",
    }
}

table_row! {
    /// A token as the server knows it: its SHA-256 hash, never the token.
    TokenRow in "tokens", key 1, index "hash" => "token_hash", "user" => "user_id" {
        id: i64 => "bigint not null",
        user_id: i64 => "bigint not null",
        name: String => "text not null",
        token_hash: String => "text not null",
        revoked: bool => "bigint not null",
        expires_at: Option<i64> => "bigint",
        max_uses: Option<i64> => "bigint",
        usage_count: i64 => "bigint not null",
        last_used_at: Option<i64> => "bigint",
        created_at: i64 => "bigint not null",
        /// The token stream's version, so a command can append with an exact expected version.
        version: i64 => "bigint not null",
        /// `leases` or `audit`.
        scope: String => "text not null",
    }
}

table_row! {
    LeaseRow in "leases", key 1, index "user" => "user_id", "expiry" => "expires_at", "token" => "token_id" {
        id: String => "text not null",
        user_id: i64 => "bigint not null",
        server_id: String => "text not null",
        /// JSON arrays and objects, as the lease_created event holds them.
        services: String => "text not null",
        resolved: String => "text not null",
        missing_services: String => "text not null",
        credential_scope: String => "text not null",
        ttl: i64 => "bigint not null",
        renewable: bool => "bigint not null",
        max_renewals: i64 => "bigint not null",
        renewal_count: i64 => "bigint not null",
        created_at: i64 => "bigint not null",
        expires_at: i64 => "bigint not null",
        last_renewed_at: Option<i64> => "bigint",
        revoked_at: Option<i64> => "bigint",
        revoke_reason: Option<String> => "text",
        expired_at: Option<i64> => "bigint",
        client_info: Option<String> => "text",
        version: i64 => "bigint not null",
        /// The token that created the lease (from its `lease_created` event's metadata), so an
        /// operator can find and revoke every lease a leaked token obtained.
        token_id: Option<i64> => "bigint",
    }
}

table_row! {
    /// A signed-in session, keyed by the hex SHA-256 of its cookie (the cookie is never stored).
    SessionRow in "account_sessions", key 1, index "user" => "user_id" {
        id: String => "text not null",
        user_id: i64 => "bigint not null",
        created_at: i64 => "bigint not null",
        /// The last recorded activity; the idle timeout counts from here.
        last_seen_at: i64 => "bigint not null",
        /// The absolute end, whatever the activity.
        expires_at: i64 => "bigint not null",
        ended_at: Option<i64> => "bigint",
        version: i64 => "bigint not null",
    }
}

table_row! {
    /// One audit record (the original's `user_activity_logs`), keyed by the event's position.
    AuditRow in "audit_log", key 1, index "user" => "user_id", "action" => "action" {
        position: i64 => "bigint not null",
        user_id: Option<i64> => "bigint",
        action: String => "text not null",
        entity_type: String => "text not null",
        entity_id: String => "text not null",
        ip: Option<String> => "text",
        user_agent: Option<String> => "text",
        details: String => "text not null",
        created_at: i64 => "bigint not null",
    }
}

table_row! {
    /// One sealed version of an integration's credentials (AES-256-GCM). Not a projection: the
    /// log holds no secrets, so replay never touches this table; it is written in the same
    /// transaction as the event that names the version.
    SecretRow in "integration_secrets", key 2 {
        integration_id: i64 => "bigint not null",
        version: i64 => "bigint not null",
        key_id: String => "text not null",
        nonce: Vec<u8> => "blob not null",
        ciphertext: Vec<u8> => "blob not null",
    }
}

table_row! {
    /// A user's password as an Argon2id hash (PHC string). Not a projection: the log records only
    /// that a password was set, so replay never touches this table; it is written in the same
    /// transaction as that event.
    PasswordRow in "user_passwords", key 1 {
        user_id: i64 => "bigint not null",
        phc: String => "text not null",
        set_at: i64 => "bigint not null",
    }
}

/// How a set of projection tables is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Live,
    /// Replay's shadow copies: no secondary index (nothing queries them) and, on PostgreSQL,
    /// unlogged (no WAL for rows that are rebuilt from the log if lost).
    Shadow {
        unlogged: bool,
    },
}

/// `create table` and its indexes for one row type under a table-name prefix.
pub fn ddl<R: TableRow>(prefix: &str, kind: TableKind) -> Vec<String> {
    let table = format!("{prefix}{}", R::TABLE);
    let columns: Vec<String> = R::COLUMNS
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    let key: Vec<&str> = R::COLUMNS[..R::KEY_LEN].iter().map(|(n, _)| *n).collect();
    let create = match kind {
        TableKind::Shadow { unlogged: true } => "create unlogged table",
        _ => "create table",
    };
    let mut statements = vec![format!(
        "{create} if not exists {table} ({}, primary key ({}))",
        columns.join(", "),
        key.join(", ")
    )];
    if kind == TableKind::Live {
        for (suffix, cols) in R::INDEXES {
            statements.push(format!(
                "create index if not exists {table}_{suffix}_idx on {table} ({cols})"
            ));
        }
    }
    statements
}

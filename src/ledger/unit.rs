//! The unit of work: all that one batch of commands has read and changed, behind one journal.
//!
//! Nothing a command does reaches SQL before commit. Events are chained in the write
//! transaction and inserted at commit; every projection row and secret a command writes is kept
//! here as a dirty entry and written at commit in multi-row statements. Reads look here first and
//! go to SQL only for what this batch has not touched, so SQL always answers with the state the
//! batch started from, and the entries here say how the batch changed it.
//!
//! Every change goes through `put`, `delete`, `next_id` or the write transaction's appends, and
//! each first records how to undo itself in the journal. `mark` notes where a command starts;
//! `rollback(mark)` undoes exactly what came after, so a failed command leaves no trace and the
//! next one sees what it would have seen in a transaction of its own.
//!
//! What is clean (read from SQL, or written by a committed batch) may be kept for the next batch
//! (`Memory`): it stays true while the log's head is where this writer's last commit left it,
//! because every change to these tables comes with an event. A batch that finds the head
//! anywhere else starts from nothing.

use super::reads::UserAccess;
use mcp_events::{EventStore, Mark as EventsMark, RawEvent, StoreError, StreamId, WriteTx};
use mcp_projections::rows::*;
use mcp_projections::store::{bulk_insert, bulk_upsert, delete_keys, Rows, SqlRows};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub(super) type RowKey = (&'static str, Vec<Cell>);

/// Above this many cached rows or streams the memory is not kept after a commit.
const MAX_REMEMBERED: usize = 100_000;

/// Tables whose integer ids the ledger hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdTable {
    Users,
    Organizations,
    Integrations,
    Tokens,
}

impl IdTable {
    fn max_id_sql(self) -> &'static str {
        match self {
            IdTable::Users => "select coalesce(max(id), 0) from users",
            IdTable::Organizations => "select coalesce(max(id), 0) from organizations",
            IdTable::Integrations => "select coalesce(max(id), 0) from integrations",
            IdTable::Tokens => "select coalesce(max(id), 0) from tokens",
        }
    }
}

/// A row as this batch sees it: `None` if it does not exist (or was deleted).
#[derive(Debug, Clone)]
struct Entry {
    cells: Option<Vec<Cell>>,
    /// Changed by this batch, not yet written.
    dirty: bool,
    /// SQL holds a row under this key (as this writer last saw it): a changed sealed secret
    /// is then written as an update, a new one as an insert.
    stored: bool,
}

/// How to undo one change.
enum Undo {
    Row {
        key: RowKey,
        previous: Option<Entry>,
    },
    NextId {
        table: IdTable,
        previous: Option<i64>,
    },
}

/// Where a command started.
pub(super) struct Mark {
    journal: usize,
    events: EventsMark,
    audit: usize,
}

/// What a writer keeps between batches: only clean entries.
#[derive(Default)]
pub(super) struct Memory {
    /// The head this memory is true at; `None` after a failure.
    valid_at: Option<i64>,
    rows: HashMap<RowKey, Entry>,
    /// Committed stream versions.
    versions: HashMap<StreamId, i64>,
    /// Token id by token hash (a token's hash never changes and tokens are never deleted).
    token_ids: HashMap<String, i64>,
    /// The last id handed out per table.
    last_ids: HashMap<IdTable, i64>,
    access: HashMap<i64, Arc<UserAccess>>,
}

/// A committed unit of work: what the writer may keep, and the events it appended by type.
pub(super) struct Committed {
    pub memory: Memory,
    pub appended: Vec<(String, u64)>,
    /// The events the batch appended, as stored.
    pub events: Vec<RawEvent>,
}

pub(super) struct UnitOfWork {
    tx: WriteTx,
    journal: Vec<Undo>,
    rows: HashMap<RowKey, Entry>,
    /// Keys of dirty rows, by table (what commit writes, and what overlay queries merge).
    dirty: HashMap<&'static str, BTreeSet<Vec<Cell>>>,
    audit: Vec<AuditRow>,
    versions: HashMap<StreamId, i64>,
    token_ids: HashMap<String, i64>,
    last_ids: HashMap<IdTable, i64>,
    /// Derived from memberships, organizations and integrations; dropped when they change.
    access: HashMap<i64, Arc<UserAccess>>,
    /// A statement failed in this transaction (PostgreSQL then refuses every later one).
    sql_failed: bool,
}

impl UnitOfWork {
    /// Takes the ledger lock and starts a batch, with `memory` if it is still true.
    pub async fn begin(store: &EventStore, memory: Memory) -> Result<Self, StoreError> {
        let tx = store.begin_write().await?;
        let memory = if memory.valid_at == Some(tx.position()) {
            memory
        } else {
            Memory::default()
        };
        Ok(Self {
            tx,
            journal: Vec::new(),
            rows: memory.rows,
            dirty: HashMap::new(),
            audit: Vec::new(),
            versions: memory.versions,
            token_ids: memory.token_ids,
            last_ids: memory.last_ids,
            access: memory.access,
            sql_failed: false,
        })
    }

    pub fn tx(&mut self) -> &mut WriteTx {
        &mut self.tx
    }

    pub fn sql_failed(&self) -> bool {
        self.sql_failed
    }

    /// Notes a failed statement before passing its error on.
    pub(super) fn noted<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        if result.is_err() {
            self.sql_failed = true;
        }
        result.map_err(StoreError::from)
    }

    pub fn mark(&self) -> Mark {
        Mark {
            journal: self.journal.len(),
            events: self.tx.mark(),
            audit: self.audit.len(),
        }
    }

    /// Undoes every change since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        while self.journal.len() > mark.journal {
            match self.journal.pop().expect("journal entries above the mark") {
                Undo::Row { key, previous } => {
                    let dirty = self.dirty.entry(key.0).or_default();
                    match &previous {
                        Some(entry) if entry.dirty => dirty.insert(key.1.clone()),
                        _ => dirty.remove(&key.1),
                    };
                    match previous {
                        Some(entry) => self.rows.insert(key, entry),
                        None => self.rows.remove(&key),
                    };
                }
                Undo::NextId { table, previous } => {
                    match previous {
                        Some(last) => self.last_ids.insert(table, last),
                        None => self.last_ids.remove(&table),
                    };
                }
            }
        }
        self.tx.rollback_to(mark.events);
        self.audit.truncate(mark.audit);
        // Derived, and possibly derived from what was just undone.
        self.access.clear();
    }

    /// A stream's version as this batch sees it.
    pub async fn stream_version(&mut self, stream: &StreamId) -> Result<i64, StoreError> {
        if let Some(version) = self.tx.pending_version(stream) {
            return Ok(version);
        }
        if let Some(version) = self.versions.get(stream) {
            return Ok(*version);
        }
        let version = self.tx.committed_version(stream).await;
        let version = self.noted_store(version)?;
        self.versions.insert(stream.clone(), version);
        Ok(version)
    }

    /// Declares a stream whose id was just drawn at random, so it cannot exist yet: no read.
    /// The unique `(stream_id, stream_version)` constraint stays the backstop.
    pub fn new_stream(&mut self, stream: &StreamId) {
        self.versions.insert(stream.clone(), 0);
    }

    pub(super) fn noted_store<T>(
        &mut self,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if result.is_err() {
            self.sql_failed = true;
        }
        result
    }

    /// A row by primary key, as this batch sees it.
    pub async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, StoreError> {
        let key = (R::TABLE, key);
        if let Some(entry) = self.rows.get(&key) {
            return Ok(entry.cells.clone().map(R::from_cells));
        }
        let row = SqlRows::new(self.tx.conn(), "")
            .get::<R>(key.1.clone())
            .await;
        let row = self.noted(row)?;
        if let Some(row) = &row {
            self.note_stream_version(row);
        }
        self.rows.insert(
            key,
            Entry {
                cells: row.as_ref().map(R::cells),
                dirty: false,
                stored: row.is_some(),
            },
        );
        Ok(row)
    }

    /// Whether this batch has an entry (clean or dirty) for a row.
    pub(super) fn has_row<R: TableRow>(&self, key: &[Cell]) -> bool {
        self.rows.contains_key(&(R::TABLE, key.to_vec()))
    }

    /// A token's and a lease's projection rows carry their stream's version, kept exact in the
    /// same transaction as the events: a committed row read from SQL tells its stream's committed
    /// version, so appending after it needs no read of the log.
    fn note_stream_version<R: TableRow>(&mut self, row: &R) {
        let row = row as &dyn std::any::Any;
        let (stream, version) = if let Some(lease) = row.downcast_ref::<LeaseRow>() {
            (StreamId::lease(&lease.id), lease.version)
        } else if let Some(token) = row.downcast_ref::<TokenRow>() {
            (StreamId::token(token.id), token.version)
        } else {
            return;
        };
        self.versions.entry(stream).or_insert(version);
    }

    /// Remembers a row read from SQL (unless this batch already has it).
    pub(super) fn remember_clean<R: TableRow>(&mut self, row: &R) {
        self.note_stream_version(row);

        self.rows
            .entry((R::TABLE, row.key()))
            .or_insert_with(|| Entry {
                cells: Some(row.cells()),
                dirty: false,
                stored: true,
            });
    }

    /// The rows of table `R` this batch has changed (`None`: deleted), in key order.
    pub(super) fn dirty_rows<R: TableRow>(&self) -> Vec<(Vec<Cell>, Option<R>)> {
        self.dirty
            .get(R::TABLE)
            .into_iter()
            .flatten()
            .map(|key| {
                let entry = &self.rows[&(R::TABLE, key.clone())];
                (key.clone(), entry.cells.clone().map(R::from_cells))
            })
            .collect()
    }

    pub(super) fn dirty_count(&self, table: &str) -> usize {
        self.dirty.get(table).map_or(0, BTreeSet::len)
    }

    fn change(&mut self, key: RowKey, cells: Option<Vec<Cell>>) {
        if matches!(
            key.0,
            MembershipRow::TABLE | OrganizationRow::TABLE | IntegrationRow::TABLE
        ) {
            self.access.clear();
        }
        let stored = self.rows.get(&key).is_some_and(|entry| entry.stored);
        let previous = self.rows.insert(
            key.clone(),
            Entry {
                cells,
                dirty: true,
                stored,
            },
        );
        self.dirty.entry(key.0).or_default().insert(key.1.clone());
        self.journal.push(Undo::Row { key, previous });
    }

    /// Inserts or replaces a row.
    pub fn put<R: TableRow>(&mut self, row: R) {
        if R::TABLE == AuditRow::TABLE {
            let cells = row.cells();
            self.audit.push(AuditRow::from_cells(cells));
            return;
        }
        if R::TABLE == TokenRow::TABLE {
            let token = TokenRow::from_cells(row.cells());
            self.token_ids.insert(token.token_hash, token.id);
        }
        self.change((R::TABLE, row.key()), Some(row.cells()));
    }

    pub fn delete<R: TableRow>(&mut self, key: Vec<Cell>) {
        self.change((R::TABLE, key), None);
    }

    pub(super) fn token_id(&self, token_hash: &str) -> Option<i64> {
        self.token_ids.get(token_hash).copied()
    }

    pub(super) fn remember_token(&mut self, token: &TokenRow) {
        self.token_ids.insert(token.token_hash.clone(), token.id);
        self.remember_clean(token);
    }

    pub(super) fn cached_access(&self, user_id: i64) -> Option<Arc<UserAccess>> {
        self.access.get(&user_id).cloned()
    }

    pub(super) fn cache_access(&mut self, user_id: i64, access: Arc<UserAccess>) {
        self.access.insert(user_id, access);
    }

    /// The next id of a directory table. Rows are never deleted from these tables (removal is
    /// a status), so the committed maximum plus what this batch handed out is exact.
    pub async fn next_id(&mut self, table: IdTable) -> Result<i64, StoreError> {
        let previous = self.last_ids.get(&table).copied();
        let last = match previous {
            Some(last) => last,
            None => {
                let max = sqlx::query_scalar::<_, i64>(table.max_id_sql())
                    .fetch_one(self.tx.conn())
                    .await;
                self.noted(max)?
            }
        };
        self.journal.push(Undo::NextId { table, previous });
        self.last_ids.insert(table, last + 1);
        Ok(last + 1)
    }

    /// Writes every dirty row, the audit records and the checkpoints, and commits. Returns what
    /// may be kept for the next batch, and how many events of each type were appended.
    pub async fn commit(mut self) -> Result<Committed, mcp_events::AppendError> {
        let position = self.tx.position();
        let dirty = std::mem::take(&mut self.dirty);
        let nothing_appended = self.tx.appended_streams().next().is_none();
        if nothing_appended && dirty.values().all(BTreeSet::is_empty) && self.audit.is_empty() {
            // Every command failed, or only read: nothing to write, and the head stays.
            let (tx, memory) = self.into_memory(position);
            tx.rollback().await?;
            return Ok(Committed {
                memory,
                appended: Vec::new(),
                events: Vec::new(),
            });
        }
        for (table, keys) in dirty {
            let mut upserts = Vec::new();
            let mut deletes = Vec::new();
            for key in keys {
                let entry = self
                    .rows
                    .get_mut(&(table, key.clone()))
                    .expect("a dirty key has an entry");
                entry.dirty = false;
                let was_stored = std::mem::replace(&mut entry.stored, entry.cells.is_some());
                match &entry.cells {
                    Some(cells) => upserts.push((cells.clone(), was_stored)),
                    None => deletes.push(key),
                }
            }
            write_table(self.tx.conn(), table, upserts, deletes).await?;
        }
        let audit = std::mem::take(&mut self.audit);
        bulk_insert::<AuditRow>(
            self.tx.conn(),
            "",
            audit.iter().map(TableRow::cells).collect(),
        )
        .await?;
        mcp_projections::set_checkpoints(self.tx.conn(), position).await?;
        let appended: Vec<(StreamId, i64)> = self
            .tx
            .appended_streams()
            .map(|(stream, version)| (StreamId::from_stored(stream.to_owned()), version))
            .collect();
        self.versions.extend(appended);
        let mut appended: Vec<(String, u64)> = Vec::new();
        for event_type in self.tx.pending_types() {
            match appended.iter_mut().find(|(known, _)| known == event_type) {
                Some((_, count)) => *count += 1,
                None => appended.push((event_type.to_owned(), 1)),
            }
        }
        let (tx, memory) = self.into_memory(position);
        let events = tx.commit_events().await?;
        Ok(Committed {
            memory,
            appended,
            events,
        })
    }

    /// Splits off the transaction; the rest is the memory, true at `head` once it commits.
    fn into_memory(self, head: i64) -> (WriteTx, Memory) {
        let memory = Memory {
            valid_at: Some(head),
            rows: self.rows,
            versions: self.versions,
            token_ids: self.token_ids,
            last_ids: self.last_ids,
            access: self.access,
        };
        (self.tx, memory)
    }

    /// Ends the batch without applying anything.
    pub async fn abandon(self) {
        // A failed rollback closes the connection (the write transaction's drop), which ends
        // the transaction as surely.
        let _ = self.tx.rollback().await;
    }
}

impl Memory {
    /// Bounds the memory: past its limit, leases (one per lease ever made, so the part that
    /// grows) are forgotten first, and everything if that is not enough.
    pub fn trimmed(mut self) -> Self {
        if self.rows.len() > MAX_REMEMBERED || self.versions.len() > MAX_REMEMBERED {
            self.rows.retain(|(table, _), _| *table != LeaseRow::TABLE);
            self.versions
                .retain(|stream, _| !stream.as_str().starts_with("lease-"));
        }
        if self.rows.len() > MAX_REMEMBERED || self.versions.len() > MAX_REMEMBERED {
            return Memory::default();
        }
        self
    }
}

/// Writes one table's dirty rows; each comes with whether SQL already holds its key.
async fn write_table(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    upserts: Vec<(Vec<Cell>, bool)>,
    deletes: Vec<Vec<Cell>>,
) -> Result<(), sqlx::Error> {
    async fn write<R: TableRow>(
        conn: &mut sqlx::AnyConnection,
        upserts: Vec<(Vec<Cell>, bool)>,
        deletes: Vec<Vec<Cell>>,
    ) -> Result<(), sqlx::Error> {
        delete_keys::<R>(conn, deletes).await?;
        bulk_upsert::<R>(conn, upserts.into_iter().map(|(cells, _)| cells).collect()).await
    }
    match table {
        UserRow::TABLE => write::<UserRow>(conn, upserts, deletes).await,
        OrganizationRow::TABLE => write::<OrganizationRow>(conn, upserts, deletes).await,
        MembershipRow::TABLE => write::<MembershipRow>(conn, upserts, deletes).await,
        IntegrationRow::TABLE => write::<IntegrationRow>(conn, upserts, deletes).await,
        TokenRow::TABLE => write::<TokenRow>(conn, upserts, deletes).await,
        LeaseRow::TABLE => write::<LeaseRow>(conn, upserts, deletes).await,
        SessionRow::TABLE => write::<SessionRow>(conn, upserts, deletes).await,
        PasswordRow::TABLE => write::<PasswordRow>(conn, upserts, deletes).await,
        SecretRow::TABLE => write_secrets(conn, upserts).await,
        other => unreachable!("no row type is stored in table {other}"),
    }
}

/// A new sealed version is inserted (a version is never overwritten by mistake: the insert
/// would fail); a version re-sealed under another key is an update of its key id, nonce and
/// ciphertext, the only columns the production role may update.
async fn write_secrets(
    conn: &mut sqlx::AnyConnection,
    rows: Vec<(Vec<Cell>, bool)>,
) -> Result<(), sqlx::Error> {
    let (resealed, new): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, stored)| *stored);
    bulk_insert::<SecretRow>(conn, "", new.into_iter().map(|(cells, _)| cells).collect()).await?;
    for (cells, _) in resealed {
        let row = SecretRow::from_cells(cells);
        let updated = sqlx::query(
            "update integration_secrets set key_id = $1, nonce = $2, ciphertext = $3 \
             where integration_id = $4 and version = $5",
        )
        .bind(row.key_id)
        .bind(row.nonce)
        .bind(row.ciphertext)
        .bind(row.integration_id)
        .bind(row.version)
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(sqlx::Error::RowNotFound);
        }
    }
    Ok(())
}

/// The fold's view of the unit of work: projections change here, in the batch.
pub(super) struct Fold<'u>(pub &'u mut UnitOfWork);

impl Rows for Fold<'_> {
    async fn get<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<Option<R>, sqlx::Error> {
        self.0.get::<R>(key).await.map_err(|error| match error {
            StoreError::Database(error) => error,
            other => sqlx::Error::Protocol(other.to_string()),
        })
    }

    async fn put<R: TableRow>(&mut self, row: R) -> Result<(), sqlx::Error> {
        self.0.put(row);
        Ok(())
    }

    async fn delete<R: TableRow>(&mut self, key: Vec<Cell>) -> Result<(), sqlx::Error> {
        self.0.delete::<R>(key);
        Ok(())
    }
}

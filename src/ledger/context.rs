//! What a command sees while it runs: the write transaction, the clock reading, the key, the policy.

use super::{LeasePolicy, Shared};
use crate::commands::CommandError;
use crate::crypto::SealedSecret;
use crate::domain::{Aggregate, DomainError};
use crate::secrets::{self, SecretError};
use mcp_events::{
    AppendError, DomainEvent, ExpectedVersion, Metadata, RecordedEvent, StoreError, StreamId,
    Timestamp, WriteTx,
};
use mcp_projections::rows::{Cell, TableRow, TokenRow};
use mcp_projections::UserAccess;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::sync::Arc;

/// Sealed integration secrets read so far, by (integration id, version). A stored version never
/// changes, so they are kept with the rest of the writer's memory; only ciphertext is kept, and
/// every use decrypts it again.
pub(super) type SealedSecrets = HashMap<(i64, i64), SealedSecret>;

/// Tables whose integer ids the ledger hands out.
#[derive(Debug, Clone, Copy)]
pub enum IdTable {
    Users,
    Organizations,
    Integrations,
    Tokens,
}

pub struct Ctx {
    pub(super) tx: WriteTx,
    pub(super) inline: mcp_projections::InlineBatch,
    pub(super) secrets: SealedSecrets,
    pub(super) now: Timestamp,
    pub(super) shared: Arc<Shared>,
}

impl Ctx {
    /// The time this command runs at (read once, under the ledger lock).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn policy(&self) -> LeasePolicy {
        self.shared.policy
    }

    /// Encrypts and stores one version of an integration's credentials in this transaction.
    pub async fn store_secret(
        &mut self,
        integration_id: i64,
        version: i64,
        credentials: &Map<String, Value>,
    ) -> Result<(), SecretError> {
        self.inline.check_table_write("integration_secrets")?;
        secrets::store(
            self.tx.conn(),
            &self.shared.key,
            integration_id,
            version,
            credentials,
        )
        .await
    }

    /// Decrypts one version of an integration's credentials.
    pub async fn open_secret(
        &mut self,
        integration_id: i64,
        version: i64,
    ) -> Result<Map<String, Value>, SecretError> {
        let id = (integration_id, version);
        if !self.secrets.contains_key(&id) {
            let sealed = secrets::load(self.tx.conn(), integration_id, version).await?;
            self.secrets.insert(id, sealed);
        }
        secrets::unseal(
            &self.shared.key,
            integration_id,
            version,
            &self.secrets[&id],
        )
    }

    /// A user's memberships and candidate integrations, as this batch sees them.
    pub async fn access_of(&mut self, user_id: i64) -> Result<Arc<UserAccess>, StoreError> {
        Ok(self.inline.access_of(self.tx.conn(), user_id).await?)
    }

    /// The transaction's connection, for reads that must see this batch's writes.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.tx.conn()
    }

    /// A token by hash as this batch sees it (tokens change on every request and are written
    /// at commit, so they are never read straight from SQL inside a command).
    pub async fn token_by_hash(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .inline
            .token_by_hash(self.tx.conn(), token_hash)
            .await?)
    }

    /// A projection row by its one-column primary key, as this batch sees it.
    pub async fn row<R: TableRow>(&mut self, key: Cell) -> Result<Option<R>, StoreError> {
        Ok(self.inline.get::<R>(self.tx.conn(), vec![key]).await?)
    }

    /// Folds one stream into its aggregate; returns the state and the stream's version.
    pub async fn load<A: Aggregate>(&mut self, stream: &StreamId) -> Result<(A, i64), StoreError> {
        let events = self.tx.read_stream(stream).await?;
        let version = events.last().map_or(0, |e| e.stream_version);
        Ok((A::fold(events.iter().map(|e| &e.event)), version))
    }

    /// Loads a stream's aggregate, lets `decide` choose the events, and appends them at the
    /// version that was loaded. Returns the aggregate as it was before the new events.
    pub async fn decide<A: Aggregate>(
        &mut self,
        stream: &StreamId,
        metadata: &Metadata,
        decide: impl FnOnce(&A) -> Result<Vec<DomainEvent>, DomainError>,
    ) -> Result<A, CommandError> {
        let (state, version) = self.load::<A>(stream).await?;
        let events = decide(&state)?;
        self.append(stream, ExpectedVersion::Exact(version), &events, metadata)
            .await?;
        Ok(state)
    }

    /// Appends the first events of a stream whose id the caller just drew at random (so it
    /// cannot exist yet), without asking the database whether it does.
    pub async fn append_to_new_stream(
        &mut self,
        stream: &StreamId,
        events: &[DomainEvent],
        metadata: &Metadata,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        self.tx.claim_new_stream(stream);
        self.append(stream, ExpectedVersion::NoStream, events, metadata)
            .await
    }

    /// Appends to one stream and updates the projections in the same transaction.
    pub async fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[DomainEvent],
        metadata: &Metadata,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let recorded = self
            .tx
            .append(stream, expected, events, metadata, self.now)
            .await?;
        self.inline
            .apply(self.tx.conn(), &recorded)
            .await
            .map_err(StoreError::from)?;
        Ok(recorded)
    }

    /// The next id in a directory table. Rows are never deleted from these tables (removal is a
    /// status), so an id is never reused; the ledger lock makes the read-then-append safe.
    pub async fn next_id(&mut self, table: IdTable) -> Result<i64, StoreError> {
        let sql = match table {
            IdTable::Users => "select coalesce(max(id), 0) + 1 from users",
            IdTable::Organizations => "select coalesce(max(id), 0) + 1 from organizations",
            IdTable::Integrations => "select coalesce(max(id), 0) + 1 from integrations",
            IdTable::Tokens => "select coalesce(max(id), 0) + 1 from tokens",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(self.tx.conn()).await?)
    }
}

//! What a command sees while it runs: the unit of work (its only way to read or write), the
//! clock reading, the policy, the key, and the source of random ids.

use super::reads::UserAccess;
use super::unit::{Fold, IdTable, UnitOfWork};
use super::{CommandError, LeasePolicy, Shared};
use crate::domain::{Aggregate, DomainError};
use crate::keyring::Keyring;
use crate::random;
use crate::secrets::{self, SecretError};
use crate::tokens::NewToken;
use mcp_events::{
    DomainEvent, ExpectedVersion, Metadata, RecordedEvent, StoreError, StreamId, Timestamp,
};
use mcp_projections::rows::{Cell, LeaseRow, SecretRow, TableRow, TokenRow, UserRow};
use serde_json::{Map, Value};
use std::sync::Arc;

pub struct Ctx {
    pub(super) unit: UnitOfWork,
    pub(super) now: Timestamp,
    pub(super) shared: Arc<Shared>,
}

impl Ctx {
    /// The time this command runs at (read once, under the ledger lock).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn policy(&self) -> LeasePolicy {
        self.shared.setup.policy
    }

    /// A new lease id: `lse_` and 48 random base62 characters.
    pub fn new_lease_id(&self) -> String {
        format!("lse_{}", random::base62(&*self.shared.setup.entropy, 48))
    }

    /// New token material, shown once; only its hash is kept.
    pub fn new_token(&self, name: &str) -> NewToken {
        let mut bytes = [0u8; 32];
        self.shared.setup.entropy.fill(&mut bytes);
        NewToken::from_bytes(name, &bytes)
    }

    fn keys(&self) -> Result<&Keyring, CommandError> {
        self.shared.setup.keys.as_ref().ok_or_else(|| {
            CommandError::Internal("the ledger was opened without an encryption key".into())
        })
    }

    /// Encrypts one version of an integration's credentials with the current key; it is stored
    /// with the batch.
    pub fn store_secret(
        &mut self,
        integration_id: i64,
        version: i64,
        credentials: &Map<String, Value>,
    ) -> Result<(), CommandError> {
        let row = secrets::seal(self.keys()?.current(), integration_id, version, credentials);
        self.unit.put(row);
        Ok(())
    }

    /// Decrypts one version of an integration's credentials, with whichever configured key
    /// sealed it.
    pub async fn open_secret(
        &mut self,
        integration_id: i64,
        version: i64,
    ) -> Result<Map<String, Value>, CommandError> {
        let key = vec![Cell::Int(Some(integration_id)), Cell::Int(Some(version))];
        let sealed = self
            .unit
            .get::<SecretRow>(key)
            .await?
            .ok_or(SecretError::Missing {
                integration_id,
                version,
            })?;
        let keys = self.keys()?;
        let key = keys.for_key_id(&sealed.key_id).unwrap_or(keys.current());
        Ok(secrets::unseal(key, &sealed)?)
    }

    /// Up to `limit` stored secrets sealed with the key `key_id`, as this batch sees them, in
    /// (integration, version) order: what a key rotation re-seals next.
    pub async fn secrets_sealed_with(
        &mut self,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<SecretRow>, StoreError> {
        self.unit.secrets_sealed_with(key_id, limit).await
    }

    /// Replaces a stored secret by the same version sealed anew (a key rotation): written with
    /// the batch as an update of its row, never as a new version.
    pub fn put_resealed_secret(&mut self, row: SecretRow) {
        self.unit.put(row);
    }

    /// Stores a user's password hash with the batch (it never enters the log).
    pub fn put_password(&mut self, row: mcp_projections::rows::PasswordRow) {
        self.unit.put(row);
    }

    /// A projection row by its one-column primary key.
    pub async fn row<R: TableRow>(&mut self, key: Cell) -> Result<Option<R>, StoreError> {
        self.unit.get::<R>(vec![key]).await
    }

    /// A projection row by its full primary key.
    pub async fn row_by_key<R: TableRow>(
        &mut self,
        key: Vec<Cell>,
    ) -> Result<Option<R>, StoreError> {
        self.unit.get::<R>(key).await
    }

    pub async fn user(&mut self, user_id: i64) -> Result<Option<UserRow>, StoreError> {
        self.row::<UserRow>(Cell::Int(Some(user_id))).await
    }

    pub async fn lease(&mut self, lease_id: &str) -> Result<Option<LeaseRow>, StoreError> {
        self.row::<LeaseRow>(Cell::Text(Some(lease_id.to_owned())))
            .await
    }

    pub async fn token_by_hash(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.unit.token_by_hash(token_hash).await
    }

    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRow>, StoreError> {
        self.unit.user_by_email(email).await
    }

    /// A user's memberships and candidate integrations.
    pub async fn access_of(&mut self, user_id: i64) -> Result<Arc<UserAccess>, StoreError> {
        self.unit.access_of(user_id).await
    }

    /// Leases past their expiry now, oldest first, at most `limit`.
    pub async fn leases_due(&mut self, limit: i64) -> Result<Vec<LeaseRow>, StoreError> {
        let now = self.now.as_micros();
        self.unit.leases_due(now, limit).await
    }

    pub async fn next_id(&mut self, table: IdTable) -> Result<i64, StoreError> {
        self.unit.next_id(table).await
    }

    /// Folds one stream into its aggregate; returns the state and the stream's version.
    pub async fn load<A: Aggregate>(&mut self, stream: &StreamId) -> Result<(A, i64), StoreError> {
        let events = self.unit.tx().read_stream(stream).await;
        let events = self.unit.noted_store(events)?;
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

    /// Appends the first events of a stream whose id was just drawn at random (so it cannot
    /// exist yet), without asking the database whether it does.
    pub async fn append_to_new_stream(
        &mut self,
        stream: &StreamId,
        events: &[DomainEvent],
        metadata: &Metadata,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        self.unit.new_stream(stream);
        self.append(stream, ExpectedVersion::NoStream, events, metadata)
            .await
    }

    /// Appends to one stream if it is at the expected version, and folds the new events into
    /// the projections, all in this batch.
    pub async fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[DomainEvent],
        metadata: &Metadata,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let actual = self.unit.stream_version(stream).await?;
        if !expected.admits(actual) {
            return Err(CommandError::Conflict(format!(
                "stream {stream} is at version {actual}, expected {expected:?}"
            )));
        }
        let recorded = self
            .unit
            .tx()
            .append_at(stream, actual, events, metadata, self.now);
        let mut fold = Fold(&mut self.unit);
        for event in &recorded {
            mcp_projections::fold::apply(&mut fold, event)
                .await
                .map_err(StoreError::from)?;
        }
        Ok(recorded)
    }
}

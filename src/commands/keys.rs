//! Key rotation: re-seal stored credentials under a new key, a batch at a time.
//!
//! Each re-sealed version is one `integration_secret_resealed` event naming the key ids (never
//! key material or credentials) and an update of that version's row, in the same transaction.
//! A rotation that stops part-way is resumed by running it again: it picks up the secrets still
//! sealed with the old key.

use crate::crypto::EncryptionKey;
use crate::ledger::{Command, CommandError, Ctx};
use crate::secrets;
use mcp_events::{DomainEvent, ExpectedVersion, Metadata, StreamId};

/// Re-seals up to `limit` secrets sealed with `from` under `to`.
pub struct ResealSecrets {
    pub from: EncryptionKey,
    pub to: EncryptionKey,
    pub limit: i64,
    pub metadata: Metadata,
}

impl Command for ResealSecrets {
    /// The (integration id, version) pairs re-sealed.
    type Output = Vec<(i64, i64)>;

    async fn execute(&self, ctx: &mut Ctx) -> Result<Self::Output, CommandError> {
        let sealed = ctx
            .secrets_sealed_with(self.from.key_id(), self.limit)
            .await?;
        let mut resealed = Vec::with_capacity(sealed.len());
        for row in sealed {
            let credentials = secrets::unseal(&self.from, &row)?;
            let event = DomainEvent::IntegrationSecretResealed {
                integration_id: row.integration_id,
                version: row.version,
                from_key_id: self.from.key_id().to_owned(),
                to_key_id: self.to.key_id().to_owned(),
            };
            // Re-sealing changes no state of the integration, so it conflicts with nothing.
            ctx.append(
                &StreamId::integration(row.integration_id),
                ExpectedVersion::Any,
                &[event],
                &self.metadata,
            )
            .await?;
            ctx.put_resealed_secret(secrets::seal(
                &self.to,
                row.integration_id,
                row.version,
                &credentials,
            ));
            resealed.push((row.integration_id, row.version));
        }
        Ok(resealed)
    }
}

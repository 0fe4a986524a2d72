//! The keys a process holds, and whether they fit the secrets its database stores.
//!
//! New secrets are sealed with the current key; a stored secret opens with whichever configured
//! key sealed it (the current one, or during a key rotation the old one). Before a process
//! serves or encrypts anything, `check` compares the configured key ids with those of the stored
//! secrets, so a wrong key is refused at once with one line naming both ids, instead of
//! surfacing later as failed requests. Nothing here holds or prints key material: keys are
//! named by their ids.

use crate::crypto::{EncryptionKey, KeyOrigin};
use mcp_events::Database;

/// The current key (seals and opens) and, while keys are rotated, the old one (opens only).
#[derive(Clone, Debug)]
pub struct Keyring {
    current: EncryptionKey,
    origin: KeyOrigin,
    old: Option<EncryptionKey>,
}

/// The stored secrets need a key this process does not hold.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyMismatch(String);

impl Keyring {
    /// One key, from `MCP_ENCRYPTION_KEY` (as tests and embedders pass it).
    pub fn single(key: EncryptionKey) -> Self {
        Self {
            current: key,
            origin: KeyOrigin::Environment("MCP_ENCRYPTION_KEY"),
            old: None,
        }
    }

    pub fn new(current: EncryptionKey, origin: KeyOrigin, old: Option<EncryptionKey>) -> Self {
        Self {
            current,
            origin,
            old,
        }
    }

    /// The key new secrets are sealed with.
    pub fn current(&self) -> &EncryptionKey {
        &self.current
    }

    /// The key that sealed a stored secret, if this process holds it.
    pub fn for_key_id(&self, key_id: &str) -> Option<&EncryptionKey> {
        std::iter::once(&self.current)
            .chain(self.old.as_ref())
            .find(|key| key.key_id() == key_id)
    }

    /// Refuses stored secrets sealed with a key this process does not hold. `stored` are the
    /// distinct key ids of the stored secrets.
    pub fn check(&self, stored: &[String]) -> Result<(), KeyMismatch> {
        let unknown: Vec<&str> = stored
            .iter()
            .map(String::as_str)
            .filter(|id| self.for_key_id(id).is_none())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let stored_ids = unknown.join(" and ");
        let configured = match &self.old {
            Some(old) => format!(
                "the configured keys are {} ({}) and {} (MCP_ENCRYPTION_KEY_OLD)",
                self.current.key_id(),
                self.origin,
                old.key_id()
            ),
            None => format!(
                "the configured key is {} ({})",
                self.current.key_id(),
                self.origin
            ),
        };
        let what_to_set = match &self.origin {
            KeyOrigin::File { path, .. } => format!(
                "restore the key file {} that holds key {stored_ids}, or set MCP_ENCRYPTION_KEY \
                 to that key (during a key rotation, MCP_ENCRYPTION_KEY_OLD)",
                path.display()
            ),
            KeyOrigin::Environment(_) => format!(
                "set MCP_ENCRYPTION_KEY to the key with id {stored_ids} (during a key rotation, \
                 MCP_ENCRYPTION_KEY_OLD)"
            ),
        };
        Err(KeyMismatch(format!(
            "the database holds credentials encrypted with key {stored_ids}, but {configured}: \
             {what_to_set}"
        )))
    }
}

/// The distinct key ids the stored secrets were sealed with.
pub async fn stored_key_ids(database: &Database) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select distinct key_id from integration_secrets order by key_id")
        .fetch_all(database.pool())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_under_the_current_or_the_old_key_are_accepted() {
        let (new, old) = (EncryptionKey::generate(), EncryptionKey::generate());
        let ring = Keyring::new(
            new.clone(),
            KeyOrigin::Environment("MCP_ENCRYPTION_KEY"),
            Some(old.clone()),
        );

        let both = vec![new.key_id().to_owned(), old.key_id().to_owned()];

        assert!(ring.check(&both).is_ok());
        assert!(ring.check(&[]).is_ok());
        assert_eq!(
            ring.for_key_id(old.key_id()).unwrap().key_id(),
            old.key_id()
        );
        assert_eq!(ring.current().key_id(), new.key_id());
    }

    #[test]
    fn a_secret_under_another_key_is_refused_naming_both_ids_and_what_to_set() {
        let configured = EncryptionKey::generate();
        let sealing = EncryptionKey::generate();
        let ring = Keyring::single(configured.clone());

        let message = ring
            .check(&[sealing.key_id().to_owned()])
            .unwrap_err()
            .to_string();

        assert!(message.contains(sealing.key_id()), "{message}");
        assert!(message.contains(configured.key_id()), "{message}");
        assert!(message.contains("set MCP_ENCRYPTION_KEY"), "{message}");
        assert!(message.contains("MCP_ENCRYPTION_KEY_OLD"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn a_key_file_that_does_not_fit_is_named() {
        let ring = Keyring::new(
            EncryptionKey::generate(),
            KeyOrigin::File {
                path: "/srv/ledger.db.key".into(),
                created: false,
            },
            None,
        );

        let message = ring
            .check(&["0123456789abcdef".into()])
            .unwrap_err()
            .to_string();

        assert!(
            message.contains("restore the key file /srv/ledger.db.key"),
            "{message}"
        );
    }
}

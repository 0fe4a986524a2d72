//! Integration credentials at rest: one sealed row per version in `integration_secrets`.
//!
//! Rows are sealed with AES-256-GCM and bound to `integration:<id>:v<version>`, so a ciphertext
//! copied onto another row does not open. The rows are stored through the ledger's unit of work
//! (with the event that names the version); this module only seals and opens them, and nothing
//! here logs or returns plaintext except `unseal`.

use crate::crypto::{self, EncryptionKey, SealedSecret};
use mcp_projections::rows::SecretRow;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("credentials of integration {integration_id} version {version} are missing")]
    Missing { integration_id: i64, version: i64 },
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("stored credentials are not a JSON object")]
    NotAnObject,
}

fn identity(integration_id: i64, version: i64) -> String {
    format!("integration:{integration_id}:v{version}")
}

/// Seals one version of an integration's credentials.
pub fn seal(
    key: &EncryptionKey,
    integration_id: i64,
    version: i64,
    credentials: &Map<String, Value>,
) -> SecretRow {
    let plaintext = serde_json::to_vec(credentials).expect("a JSON object serializes");
    let sealed = crypto::seal(
        key,
        identity(integration_id, version).as_bytes(),
        &plaintext,
    );
    SecretRow {
        integration_id,
        version,
        key_id: sealed.key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
    }
}

/// Opens a sealed version of an integration's credentials.
pub fn unseal(key: &EncryptionKey, row: &SecretRow) -> Result<Map<String, Value>, SecretError> {
    let sealed = SealedSecret {
        key_id: row.key_id.clone(),
        nonce: row.nonce.clone(),
        ciphertext: row.ciphertext.clone(),
    };
    let plaintext = crypto::open(
        key,
        identity(row.integration_id, row.version).as_bytes(),
        &sealed,
    )?;
    match serde_json::from_slice(&plaintext) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(SecretError::NotAnObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_version_opens_only_as_itself() {
        let key = EncryptionKey::generate();
        let credentials = serde_json::json!({"access_token": "s3cret"})
            .as_object()
            .cloned()
            .unwrap();
        let row = seal(&key, 7, 2, &credentials);
        assert_eq!(unseal(&key, &row).unwrap(), credentials);
        assert!(!format!("{row:?}").contains("s3cret"));
        let moved = SecretRow {
            version: 3,
            ..row.clone()
        };
        assert!(matches!(unseal(&key, &moved), Err(SecretError::Crypto(_))));
        assert!(unseal(&EncryptionKey::generate(), &row).is_err());
    }
}

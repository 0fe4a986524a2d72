//! The secret table: integration credentials, encrypted, one row per version.
//!
//! Rows are sealed with AES-256-GCM and bound to `integration:<id>:v<version>`, so a ciphertext
//! copied onto another row does not open. Nothing here logs or returns plaintext except `open`.

use crate::crypto::{self, EncryptionKey, SealedSecret};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("credentials of integration {integration_id} version {version} are missing")]
    Missing { integration_id: i64, version: i64 },
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("stored credentials are not a JSON object")]
    NotAnObject,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn identity(integration_id: i64, version: i64) -> String {
    format!("integration:{integration_id}:v{version}")
}

pub async fn store(
    conn: &mut AnyConnection,
    key: &EncryptionKey,
    integration_id: i64,
    version: i64,
    credentials: &Map<String, Value>,
) -> Result<(), SecretError> {
    let plaintext = serde_json::to_vec(credentials).expect("a JSON object serializes");
    let sealed = crypto::seal(
        key,
        identity(integration_id, version).as_bytes(),
        &plaintext,
    );
    sqlx::query(
        "insert into integration_secrets (integration_id, version, key_id, nonce, ciphertext) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(integration_id)
    .bind(version)
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads one sealed version of an integration's credentials (still encrypted).
pub async fn load(
    conn: &mut AnyConnection,
    integration_id: i64,
    version: i64,
) -> Result<SealedSecret, SecretError> {
    let row = sqlx::query(
        "select key_id, nonce, ciphertext from integration_secrets \
         where integration_id = $1 and version = $2",
    )
    .bind(integration_id)
    .bind(version)
    .fetch_optional(conn)
    .await?
    .ok_or(SecretError::Missing {
        integration_id,
        version,
    })?;
    Ok(SealedSecret {
        key_id: row.try_get(0)?,
        nonce: row.try_get(1)?,
        ciphertext: row.try_get(2)?,
    })
}

/// Decrypts a sealed version of an integration's credentials.
pub fn unseal(
    key: &EncryptionKey,
    integration_id: i64,
    version: i64,
    sealed: &SealedSecret,
) -> Result<Map<String, Value>, SecretError> {
    let plaintext = crypto::open(key, identity(integration_id, version).as_bytes(), sealed)?;
    match serde_json::from_slice(&plaintext) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(SecretError::NotAnObject),
    }
}

//! Encryption of integration credentials at rest: AES-256-GCM, a fresh 96-bit nonce per
//! encryption, the row's identity as associated data, and a key id so keys can be told apart.
//!
//! Must never print, log or return key material or plaintext in an error.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const NONCE_LEN: usize = 12;

/// A 256-bit data key with an id derived from it; `Debug` never shows the key.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: std::sync::Arc<SecretBox<[u8; 32]>>,
    key_id: String,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("MCP_ENCRYPTION_KEY must be base64 of exactly 32 bytes ({0}); generate one with `openssl rand -base64 32`")]
    Malformed(String),
    #[error("MCP_ENCRYPTION_KEY is required for PostgreSQL: generate one with `openssl rand -base64 32` and keep it safe")]
    Missing,
    #[error("the key file {path} is readable by other users; run `chmod 600 {path}`")]
    TooOpen { path: String },
    #[error("the key file {path} cannot be used: {reason}")]
    File { path: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("credentials were encrypted with key {stored}, but the configured key is {configured}: set MCP_ENCRYPTION_KEY (or the key file) to the key they were encrypted with")]
    WrongKey { stored: String, configured: String },
    #[error("credentials cannot be decrypted: wrong key or a tampered row")]
    Undecryptable,
    #[error("stored credentials have a malformed nonce")]
    BadNonce,
}

impl EncryptionKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let key_id = hex::encode(&Sha256::digest(bytes)[..8]);
        Self {
            bytes: std::sync::Arc::new(SecretBox::new(Box::new(bytes))),
            key_id,
        }
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let trimmed = text.trim();
        let decoded = STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| KeyError::Malformed("not valid base64".into()))?;
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed(format!("got {} bytes", decoded.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A fresh key as `MCP_ENCRYPTION_KEY` takes it (for tests and first-time set-up).
    pub fn generate_base64() -> String {
        Self::generate().to_base64()
    }

    /// First 16 hex characters of SHA-256 of the key: identifies it without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.expose_secret())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.bytes.expose_secret()).expect("a 32-byte key")
    }
}

/// The key file of a SQLite database: `<database>.key` beside it.
pub fn key_file_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// `MCP_ENCRYPTION_KEY` if set; else, for SQLite, the key file (created on first use, mode
/// 0600, with a warning); else an error naming what to set.
pub fn load_key(
    env_value: Option<&str>,
    sqlite_db_path: Option<&Path>,
) -> Result<EncryptionKey, KeyError> {
    if let Some(value) = env_value {
        return EncryptionKey::from_base64(value);
    }
    let Some(database) = sqlite_db_path else {
        return Err(KeyError::Missing);
    };
    let path = key_file_path(database);
    let shown = path.display().to_string();
    let file_error = |reason: String| KeyError::File {
        path: shown.clone(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path, &shown)?;
            EncryptionKey::from_base64(&text).map_err(|e| file_error(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = EncryptionKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(|e| file_error(e.to_string()))?;
            file.write_all(key.to_base64().as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| file_error(e.to_string()))?;
            tracing::warn!(
                path = %shown,
                "created a new encryption key file for the SQLite database; back it up: without it the stored credentials cannot be decrypted"
            );
            Ok(key)
        }
        Err(e) => Err(file_error(e.to_string())),
    }
}

#[cfg(unix)]
fn check_private(path: &Path, shown: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| KeyError::File {
            path: shown.to_owned(),
            reason: e.to_string(),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: shown.to_owned(),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &str) -> Result<(), KeyError> {
    Ok(())
}

pub struct SealedSecret {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub fn seal(key: &EncryptionKey, aad: &[u8], plaintext: &[u8]) -> SealedSecret {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    SealedSecret {
        key_id: key.key_id.clone(),
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

pub fn open(
    key: &EncryptionKey,
    aad: &[u8],
    sealed: &SealedSecret,
) -> Result<Vec<u8>, CryptoError> {
    if sealed.key_id != key.key_id {
        return Err(CryptoError::WrongKey {
            stored: sealed.key_id.clone(),
            configured: key.key_id.clone(),
        });
    }
    if sealed.nonce.len() != NONCE_LEN {
        return Err(CryptoError::BadNonce);
    }
    key.cipher()
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Undecryptable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_and_identity() {
        let key = EncryptionKey::generate();
        let sealed = seal(&key, b"integration:1:v1", b"{\"a\":1}");
        assert_eq!(
            open(&key, b"integration:1:v1", &sealed).unwrap(),
            b"{\"a\":1}"
        );
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"{\"a\":1}"));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let key = EncryptionKey::generate();
        let a = seal(&key, b"x", b"same");
        let b = seal(&key, b"x", b"same");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn another_rows_identity_does_not_open() {
        let key = EncryptionKey::generate();
        let sealed = seal(&key, b"integration:1:v1", b"secret");
        assert!(matches!(
            open(&key, b"integration:2:v1", &sealed),
            Err(CryptoError::Undecryptable)
        ));
    }

    #[test]
    fn a_wrong_key_is_named_not_garbage() {
        let sealed = seal(&EncryptionKey::generate(), b"x", b"secret");
        let error = open(&EncryptionKey::generate(), b"x", &sealed).unwrap_err();
        assert!(error.to_string().contains("MCP_ENCRYPTION_KEY"));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let key = EncryptionKey::generate();
        let mut sealed = seal(&key, b"x", b"secret");
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(
            open(&key, b"x", &sealed),
            Err(CryptoError::Undecryptable)
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(EncryptionKey::from_base64("not base64!").is_err());
        let short = STANDARD.encode([0u8; 16]);
        assert!(EncryptionKey::from_base64(&short)
            .unwrap_err()
            .to_string()
            .contains("16 bytes"));
        let good = STANDARD.encode([7u8; 32]);
        let key = EncryptionKey::from_base64(&format!(" {good}\n")).unwrap();
        assert_eq!(key.key_id().len(), 16);
        assert!(!format!("{key:?}").contains(&good));
    }

    #[test]
    fn the_sqlite_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let first = load_key(None, Some(&db)).unwrap();
        let path = key_file_path(&db);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_key(None, Some(&db)).unwrap().key_id(), first.key_id());
        let env = STANDARD.encode([1u8; 32]);
        assert_ne!(
            load_key(Some(&env), Some(&db)).unwrap().key_id(),
            first.key_id()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        load_key(None, Some(&db)).unwrap();
        let path = key_file_path(&db);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_key(None, Some(&db)),
            Err(KeyError::TooOpen { .. })
        ));
    }

    #[test]
    fn postgres_needs_the_environment_key() {
        assert!(matches!(load_key(None, None), Err(KeyError::Missing)));
    }
}

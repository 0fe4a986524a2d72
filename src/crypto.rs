//! Encryption of integration credentials at rest: AES-256-GCM with a fresh random 96-bit nonce per
//! seal, the row's identity as associated data (so a ciphertext copied onto another row does not
//! open), and a key id stored beside each row so a wrong key is named rather than guessed at.
//!
//! The key comes from `MCP_ENCRYPTION_KEY`, or for SQLite from a private key file beside the
//! database, created on first use (never for a database that already holds secrets: a new key
//! would not open them).
//!
//! This module must never print, log or put into an error any key material or plaintext: key
//! bytes live only inside a [`SecretBox`], `Debug` shows the key id alone, and errors carry key
//! ids, paths and lengths, never the text they rejected.

use crate::private_file;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const MAKE_A_KEY: &str = "openssl rand -base64 32";

/// Standard alphabet; padding may be present or left off, as people paste keys either way.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why no usable key could be had. Messages name what to fix and never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `origin` is `MCP_ENCRYPTION_KEY` or "the key file <path>"; `problem` never echoes the text.
    #[error(
        "{origin} must be base64 of exactly 32 bytes ({problem}); generate one with `{MAKE_A_KEY}`"
    )]
    Malformed { origin: String, problem: String },
    #[error("MCP_ENCRYPTION_KEY is required with PostgreSQL (there is no key file to fall back on); generate one with `{MAKE_A_KEY}` and keep a copy: credentials encrypted with it cannot be read without it")]
    MissingForPostgres,
    #[error("the key file {path} is accessible to group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    KeyFileTooOpen { path: String, mode: u32 },
    #[error("the key file {path} is missing, but the database holds credentials encrypted with key {stored}: restore the key file (back it up with the database) or set MCP_ENCRYPTION_KEY to that key; a new key would not open them")]
    KeyFileMissing { path: String, stored: String },
    #[error("cannot {action} the key file {path}: {source}")]
    KeyFile {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// Why a sealed secret did not open. Messages carry key ids and lengths, never plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("these credentials were encrypted with key {stored}, but the configured key is {configured}: MCP_ENCRYPTION_KEY (or the key file) is not the key these credentials were encrypted with; restore that key")]
    WrongKey { stored: String, configured: String },
    #[error("the stored secret cannot be decrypted: wrong key or tampered row")]
    Undecryptable,
    #[error(
        "the stored secret has a {actual}-byte nonce, expected {NONCE_LEN}: the row is corrupt"
    )]
    BadNonce { actual: usize },
}

/// A 256-bit data key with an id derived from it; `Debug` shows the id, never the key.
///
/// Cloning shares the one boxed copy of the key rather than duplicating it in memory.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Arc<SecretBox<[u8; KEY_LEN]>>,
    key_id: String,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// From base64 of exactly 32 bytes (standard alphabet, padding optional, surrounding
    /// whitespace trimmed), as `MCP_ENCRYPTION_KEY` holds it.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Self::decode(text, "MCP_ENCRYPTION_KEY")
    }

    /// As [`Self::from_base64`], naming `origin` (another variable) in errors.
    pub fn from_base64_named(text: &str, origin: &str) -> Result<Self, KeyError> {
        Self::decode(text, origin)
    }

    /// 32 random bytes from the operating system.
    pub fn generate() -> Self {
        // Filled in place so no copy of the key is left on the stack.
        Self::from_secret(SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
            rand::rngs::OsRng.fill_bytes(bytes)
        }))
    }

    /// A fresh key in the form `MCP_ENCRYPTION_KEY` takes (for tests and first-time set-up).
    pub fn generate_base64() -> String {
        Self::generate().to_base64().to_string()
    }

    /// First 16 hex characters of SHA-256 of the key bytes: tells keys apart without revealing them.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn decode(text: &str, origin: &str) -> Result<Self, KeyError> {
        let malformed = |problem: String| KeyError::Malformed {
            origin: origin.to_owned(),
            problem,
        };
        // The decoder's own error names the offending character, which is part of the key.
        let decoded = Zeroizing::new(
            KEY_BASE64
                .decode(text.trim())
                .map_err(|_| malformed("it is not valid base64".to_owned()))?,
        );
        if decoded.len() != KEY_LEN {
            return Err(malformed(format!("got {} bytes", decoded.len())));
        }
        Ok(Self::from_secret(SecretBox::init_with_mut(
            |bytes: &mut [u8; KEY_LEN]| bytes.copy_from_slice(&decoded),
        )))
    }

    fn from_secret(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let digest = Sha256::digest(bytes.expose_secret());
        Self {
            key_id: hex::encode(&digest[..8]),
            bytes: Arc::new(bytes),
        }
    }

    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(KEY_BASE64.encode(self.bytes.expose_secret()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.bytes.expose_secret().into())
    }
}

/// The key file of a SQLite database: the database file name with `.key` appended
/// (`mcp-manager.db` -> `mcp-manager.db.key`).
pub fn key_file_path(database: &Path) -> PathBuf {
    private_file::with_suffix(database, ".key")
}

/// Where a key came from, so messages can say what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// An environment variable, by name.
    Environment(&'static str),
    /// A key file; `created` when this process just made it.
    File { path: PathBuf, created: bool },
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Environment(name) => f.write_str(name),
            KeyOrigin::File { path, .. } => write!(f, "the key file {}", path.display()),
        }
    }
}

/// A key and where it came from.
#[derive(Clone, Debug)]
pub struct LoadedKey {
    pub key: EncryptionKey,
    pub origin: KeyOrigin,
}

impl LoadedKey {
    /// What an operator must be told once: a key file was just created and needs a backup.
    pub fn notice(&self) -> Option<String> {
        match &self.origin {
            KeyOrigin::File {
                path,
                created: true,
            } => Some(format!(
                "created a new encryption key file {} for the SQLite database; back it up with \
                 the database: the stored credentials cannot be decrypted without it",
                path.display()
            )),
            _ => None,
        }
    }
}

/// The encryption key, from the first source that has one:
/// 1. `env_value` (the value of `MCP_ENCRYPTION_KEY`), if given;
/// 2. for SQLite, the key file beside the database ([`key_file_path`]), which must be private
///    to its owner. A missing key file is created (mode 0600) only while the database holds no
///    secrets (`stored_key_ids` empty); otherwise it is an error naming the keys they need;
/// 3. otherwise (PostgreSQL) an error saying `MCP_ENCRYPTION_KEY` is required.
pub fn load_key(
    env_value: Option<&str>,
    sqlite_db_path: Option<&Path>,
    stored_key_ids: &[String],
) -> Result<LoadedKey, KeyError> {
    if let Some(value) = env_value {
        return Ok(LoadedKey {
            key: EncryptionKey::from_base64(value)?,
            origin: KeyOrigin::Environment("MCP_ENCRYPTION_KEY"),
        });
    }
    let Some(database) = sqlite_db_path else {
        return Err(KeyError::MissingForPostgres);
    };
    let path = key_file_path(database);
    let (key, created) = match private_file::read(&path).map_err(key_file_error)? {
        Some(text) => (decode_key_file(&text, &path)?, false),
        None if stored_key_ids.is_empty() => create_key_file(&path)?,
        None => {
            return Err(KeyError::KeyFileMissing {
                path: path.display().to_string(),
                stored: stored_key_ids.join(", "),
            })
        }
    };
    Ok(LoadedKey {
        key,
        origin: KeyOrigin::File { path, created },
    })
}

/// A key from a file an operator names (`--old-key-file`, `--new-key-file`): base64 of 32
/// bytes, private to its owner, as the SQLite key file is.
pub fn read_key_file_at(path: &Path) -> Result<EncryptionKey, KeyError> {
    match private_file::read(path).map_err(key_file_error)? {
        Some(text) => decode_key_file(&text, path),
        None => Err(key_file_error(private_file::PrivateFileError::Io {
            action: "open",
            path: path.display().to_string(),
            source: ErrorKind::NotFound.into(),
        })),
    }
}

fn decode_key_file(text: &str, path: &Path) -> Result<EncryptionKey, KeyError> {
    EncryptionKey::decode(text, &format!("the key file {}", path.display()))
}

/// Writes a new key file, or reads the one a racing process wrote first. Returns the key and
/// whether this call created the file.
fn create_key_file(path: &Path) -> Result<(EncryptionKey, bool), KeyError> {
    let key = EncryptionKey::generate();
    let mut text = key.to_base64();
    text.push('\n');
    match private_file::create(path, &text).map_err(key_file_error)? {
        private_file::Created::New => Ok((key, true)),
        private_file::Created::Existing(text) => Ok((decode_key_file(&text, path)?, false)),
    }
}

fn key_file_error(error: private_file::PrivateFileError) -> KeyError {
    match error {
        private_file::PrivateFileError::TooOpen { path, mode } => {
            KeyError::KeyFileTooOpen { path, mode }
        }
        private_file::PrivateFileError::Io {
            action,
            path,
            source,
        } => KeyError::KeyFile {
            action,
            path,
            source,
        },
    }
}

/// A secret as stored: which key sealed it, the nonce, and the ciphertext with its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Encrypts `plaintext` under a fresh random nonce, bound to `aad` (the row's identity, e.g.
/// `b"integration:7:v2"`), so it opens only with the same key and the same identity.
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
        // AES-GCM refuses only messages over 64 GiB; credentials are a few hundred bytes.
        .expect("AES-GCM encrypts any in-memory credential");
    SealedSecret {
        key_id: key.key_id.clone(),
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

/// Decrypts a sealed secret with the key and row identity it was sealed under; any mismatch is an
/// error, never garbage.
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
        return Err(CryptoError::BadNonce {
            actual: sealed.nonce.len(),
        });
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
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    const ROW: &[u8] = b"integration:7:v2";
    const CREDENTIALS: &[u8] = br#"{"api_token":"tok-3f9a"}"#;

    fn key_from(bytes: [u8; KEY_LEN]) -> EncryptionKey {
        EncryptionKey::from_base64(&STANDARD.encode(bytes)).unwrap()
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_row_identity() {
        let key = EncryptionKey::generate();

        let sealed = seal(&key, ROW, CREDENTIALS);

        assert_eq!(sealed.key_id, key.key_id());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert!(!sealed
            .ciphertext
            .windows(CREDENTIALS.len())
            .any(|w| w == CREDENTIALS));
        assert_eq!(open(&key, ROW, &sealed).unwrap(), CREDENTIALS);
    }

    #[test]
    fn sealing_the_same_plaintext_twice_uses_fresh_nonces() {
        let key = EncryptionKey::generate();

        let first = seal(&key, ROW, CREDENTIALS);
        let second = seal(&key, ROW, CREDENTIALS);

        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let key = EncryptionKey::generate();
        let sealed = seal(&key, ROW, CREDENTIALS);

        let result = open(&key, b"integration:8:v2", &sealed);

        assert!(matches!(result, Err(CryptoError::Undecryptable)));
    }

    #[test]
    fn a_different_key_is_named_by_both_key_ids() {
        let sealing_key = EncryptionKey::generate();
        let other_key = EncryptionKey::generate();
        let sealed = seal(&sealing_key, ROW, CREDENTIALS);

        let error = open(&other_key, ROW, &sealed).unwrap_err();

        assert!(matches!(error, CryptoError::WrongKey { .. }));
        let message = error.to_string();
        assert!(message.contains(sealing_key.key_id()), "{message}");
        assert!(message.contains(other_key.key_id()), "{message}");
        assert!(message.contains("MCP_ENCRYPTION_KEY"), "{message}");
        assert!(message.contains("key file"), "{message}");
    }

    #[test]
    fn a_row_claiming_the_right_key_id_but_sealed_with_another_key_does_not_open() {
        let key = EncryptionKey::generate();
        let mut sealed = seal(&EncryptionKey::generate(), ROW, CREDENTIALS);
        sealed.key_id = key.key_id().to_owned();

        let error = open(&key, ROW, &sealed).unwrap_err();

        assert!(matches!(error, CryptoError::Undecryptable));
        assert!(error.to_string().contains("wrong key or tampered row"));
    }

    #[test]
    fn tampering_with_any_part_of_a_row_is_detected() {
        let key = EncryptionKey::generate();
        let sealed = seal(&key, ROW, CREDENTIALS);
        let mut flipped_ciphertext = sealed.clone();
        flipped_ciphertext.ciphertext[0] ^= 1;
        let mut flipped_tag = sealed.clone();
        *flipped_tag.ciphertext.last_mut().unwrap() ^= 1;
        let mut flipped_nonce = sealed.clone();
        flipped_nonce.nonce[0] ^= 1;
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(4);

        for tampered in [flipped_ciphertext, flipped_tag, flipped_nonce, truncated] {
            assert!(matches!(
                open(&key, ROW, &tampered),
                Err(CryptoError::Undecryptable)
            ));
        }
    }

    #[test]
    fn a_nonce_of_the_wrong_length_is_an_error_not_a_panic() {
        let key = EncryptionKey::generate();
        let mut sealed = seal(&key, ROW, CREDENTIALS);
        sealed.nonce.truncate(8);

        let error = open(&key, ROW, &sealed).unwrap_err();

        assert!(matches!(error, CryptoError::BadNonce { actual: 8 }));
        assert!(error.to_string().contains("8-byte nonce"));
    }

    #[test]
    fn text_that_is_not_base64_is_refused_without_being_echoed() {
        let text = "correct horse battery staple!";

        let error = EncryptionKey::from_base64(text).unwrap_err();

        let message = error.to_string();
        assert!(matches!(error, KeyError::Malformed { .. }));
        assert!(message.contains("not valid base64"), "{message}");
        assert!(!message.contains("horse"), "{message}");
        assert!(!message.contains('!'), "{message}");
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused_with_its_length() {
        let short = STANDARD.encode([7u8; 16]);
        let long = STANDARD.encode([7u8; 33]);

        let short_error = EncryptionKey::from_base64(&short).unwrap_err();
        let long_error = EncryptionKey::from_base64(&long).unwrap_err();

        assert_eq!(
            short_error.to_string(),
            "MCP_ENCRYPTION_KEY must be base64 of exactly 32 bytes (got 16 bytes); \
             generate one with `openssl rand -base64 32`"
        );
        assert!(long_error.to_string().contains("got 33 bytes"));
        assert!(EncryptionKey::from_base64("").is_err());
    }

    #[test]
    fn padding_is_optional_and_surrounding_whitespace_is_ignored() {
        let bytes = [42u8; KEY_LEN];
        let padded = STANDARD.encode(bytes);
        let unpadded = STANDARD_NO_PAD.encode(bytes);
        assert_ne!(padded, unpadded);

        let from_padded = EncryptionKey::from_base64(&format!("  {padded}\n")).unwrap();
        let from_unpadded = EncryptionKey::from_base64(&format!("\t{unpadded}\r\n")).unwrap();

        assert_eq!(from_padded.key_id(), from_unpadded.key_id());
    }

    #[test]
    fn the_key_id_is_the_first_16_hex_characters_of_the_keys_sha256() {
        // sha256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
        assert_eq!(key_from([0u8; KEY_LEN]).key_id(), "66687aadf862bd77");
        assert_ne!(
            EncryptionKey::generate().key_id(),
            EncryptionKey::generate().key_id()
        );
    }

    #[test]
    fn debug_output_shows_the_key_id_and_never_the_key() {
        let text = EncryptionKey::generate_base64();
        let key = EncryptionKey::from_base64(&text).unwrap();

        let debug = format!("{key:?} {:?}", key.clone());

        assert!(debug.contains(key.key_id()), "{debug}");
        assert!(!debug.contains(&text), "{debug}");
        assert!(!debug.contains(text.trim_end_matches('=')), "{debug}");
    }

    #[test]
    fn the_key_file_is_named_after_the_whole_database_file_name() {
        assert_eq!(
            key_file_path(Path::new("/var/lib/mcp-manager.db")),
            Path::new("/var/lib/mcp-manager.db.key")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_sqlite_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");

        let first = load_key(None, Some(&database), &[]).unwrap().key;
        let second = load_key(None, Some(&database), &[]).unwrap().key;

        let path = dir.path().join("mcp-manager.db.key");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(second.key_id(), first.key_id());
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            EncryptionKey::from_base64(&on_disk).unwrap().key_id(),
            first.key_id()
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["mcp-manager.db.key"]);
    }

    #[test]
    fn creating_the_key_file_asks_for_a_backup_with_the_path_and_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("ledger.db");

        let created = load_key(None, Some(&database), &[]).unwrap();
        let again = load_key(None, Some(&database), &[]).unwrap();

        let notice = created.notice().expect("a notice for a new key file");
        let key_text = std::fs::read_to_string(key_file_path(&database)).unwrap();
        assert!(notice.contains("back it up"), "{notice}");
        assert!(
            notice.contains(&key_file_path(&database).display().to_string()),
            "{notice}"
        );
        assert!(!notice.contains(key_text.trim()), "{notice}");
        assert_eq!(again.notice(), None, "only the creation is announced");
    }

    #[test]
    fn no_key_file_is_created_for_a_database_that_holds_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("ledger.db");
        let stored = vec!["0123456789abcdef".to_owned()];

        let error = load_key(None, Some(&database), &stored).unwrap_err();

        let message = error.to_string();
        assert!(
            matches!(error, KeyError::KeyFileMissing { .. }),
            "{message}"
        );
        assert!(message.contains("0123456789abcdef"), "{message}");
        assert!(message.contains("MCP_ENCRYPTION_KEY"), "{message}");
        assert!(!key_file_path(&database).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_the_group_or_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");
        let path = key_file_path(&database);
        let key_text = EncryptionKey::generate_base64();
        std::fs::write(&path, &key_text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

        let error = load_key(None, Some(&database), &[]).unwrap_err();

        let message = error.to_string();
        assert!(
            matches!(error, KeyError::KeyFileTooOpen { mode: 0o644, .. }),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        assert!(!message.contains(&key_text), "{message}");
    }

    #[test]
    fn a_malformed_key_file_is_named_rather_than_the_environment_variable() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");
        let path = key_file_path(&database);
        std::fs::write(&path, STANDARD.encode([1u8; 16])).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }

        let message = load_key(None, Some(&database), &[])
            .unwrap_err()
            .to_string();

        assert!(
            message.starts_with(&format!("the key file {}", path.display())),
            "{message}"
        );
        assert!(message.contains("got 16 bytes"), "{message}");
        assert!(!message.contains("MCP_ENCRYPTION_KEY"), "{message}");
    }

    #[test]
    fn the_environment_value_wins_over_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");
        let from_file = load_key(None, Some(&database), &[]).unwrap().key;
        let env_value = STANDARD.encode([9u8; KEY_LEN]);

        let key = load_key(Some(&env_value), Some(&database), &[])
            .unwrap()
            .key;

        assert_eq!(key.key_id(), key_from([9u8; KEY_LEN]).key_id());
        assert_ne!(key.key_id(), from_file.key_id());
    }

    #[test]
    fn an_environment_value_means_no_key_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");

        load_key(
            Some(&EncryptionKey::generate_base64()),
            Some(&database),
            &[],
        )
        .unwrap();

        assert!(!key_file_path(&database).exists());
    }

    #[test]
    fn a_malformed_environment_value_is_not_replaced_by_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("mcp-manager.db");
        load_key(None, Some(&database), &[]).unwrap();

        let error = load_key(Some("too short"), Some(&database), &[]).unwrap_err();

        assert!(error.to_string().starts_with("MCP_ENCRYPTION_KEY must be"));
    }

    #[test]
    fn postgresql_without_the_environment_key_is_refused_with_how_to_make_one() {
        let error = load_key(None, None, &[]).unwrap_err();

        let message = error.to_string();
        assert!(matches!(error, KeyError::MissingForPostgres));
        assert!(
            message.contains("MCP_ENCRYPTION_KEY is required with PostgreSQL"),
            "{message}"
        );
        assert!(message.contains("openssl rand -base64 32"), "{message}");
    }
}

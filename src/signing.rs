//! The log's signing key: Ed25519 in signed-note syntax, whose name is the log's origin.
//!
//! From `MCP_LOG_SIGNING_KEY` (`PRIVATE+KEY+<origin>+<key id>+<base64>`, as `mcp-manager log-key
//! generate` prints it); for SQLite, when unset, from a `<database>.signing-key` file beside the
//! database (mode 0600), created on first use — but never for a database whose checkpoints were
//! signed by another key: that key is needed, not a new one. PostgreSQL needs the variable.
//! The verifier key (`vkey`) is derived from the private key exactly as signed-note says.
//! Nothing here prints or logs the private key.

use crate::private_file::{self, PrivateFileError};
use mcp_tlog::{NoteError, Signer, Verifier};
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("MCP_LOG_SIGNING_KEY is not a signed-note private key ({0}); generate one with `mcp-manager log-key generate`")]
    Malformed(NoteError),
    #[error("the signing key file {path} is not a signed-note private key ({source})")]
    MalformedFile { path: String, source: NoteError },
    #[error("the signing key is named {key}, but the log's origin is {origin}: set MCP_LOG_ORIGIN={key}, or use a key generated with `mcp-manager log-key generate --origin {origin}`")]
    WrongOrigin { key: String, origin: String },
    #[error("MCP_LOG_SIGNING_KEY is required with PostgreSQL (there is no key file to fall back on); generate one with `mcp-manager log-key generate` and keep it in the secret store")]
    MissingForPostgres,
    #[error("the signing key file {path} is missing, but the log's checkpoints are signed with key {stored}: restore the key file or set MCP_LOG_SIGNING_KEY to that key; a new key would not match the checkpoints auditors hold")]
    FileMissing { path: String, stored: String },
    #[error("the log's checkpoints are signed with key {stored}, but the configured signing key is {configured}: set MCP_LOG_SIGNING_KEY to the key that signed them")]
    OtherKey { stored: String, configured: String },
    #[error("the signing key file: {0}")]
    File(#[from] PrivateFileError),
    #[error("{0} is not a valid log origin (a key name: no spaces, no `+`)")]
    BadOrigin(String),
}

/// The signing key file of a SQLite database (`ledger.db` -> `ledger.db.signing-key`).
pub fn key_file_path(database: &Path) -> PathBuf {
    private_file::with_suffix(database, ".signing-key")
}

/// The key id as signed-note writes it: 8 lowercase hex digits.
pub fn key_id_hex(signer: &Signer) -> String {
    format!("{:08x}", signer.key_id())
}

/// A signing key and, if this process just created its file, what to tell the operator.
pub struct LoadedSigner {
    pub signer: Signer,
    pub notice: Option<String>,
}

/// A new key pair for `origin`: `(private key, vkey)`.
pub fn generate(origin: &str) -> Result<(Zeroizing<String>, String), SigningKeyError> {
    if !mcp_tlog::note::is_valid_key_name(origin) {
        return Err(SigningKeyError::BadOrigin(origin.to_owned()));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *seed);
    let signer = Signer::from_seed(origin, &seed).map_err(SigningKeyError::Malformed)?;
    Ok((
        Zeroizing::new(signer.private_key()),
        signer.verifier().vkey(),
    ))
}

/// The signing key, from the first source that has one (see the module's doc).
/// `stored_key_ids` are the key ids (8 hex) of the checkpoints already stored.
pub fn load(
    env_value: Option<&SecretString>,
    origin: &str,
    sqlite_db_path: Option<&Path>,
    stored_key_ids: &[String],
) -> Result<LoadedSigner, SigningKeyError> {
    if !mcp_tlog::note::is_valid_key_name(origin) {
        return Err(SigningKeyError::BadOrigin(origin.to_owned()));
    }
    let (signer, notice) = if let Some(value) = env_value {
        let signer = Signer::from_private_key(value.expose_secret().trim())
            .map_err(SigningKeyError::Malformed)?;
        (signer, None)
    } else {
        let Some(database) = sqlite_db_path else {
            return Err(SigningKeyError::MissingForPostgres);
        };
        from_file(&key_file_path(database), origin, stored_key_ids)?
    };
    if signer.name() != origin {
        return Err(SigningKeyError::WrongOrigin {
            key: signer.name().to_owned(),
            origin: origin.to_owned(),
        });
    }
    let configured = key_id_hex(&signer);
    if let Some(stored) = stored_key_ids.iter().find(|id| **id != configured) {
        return Err(SigningKeyError::OtherKey {
            stored: stored.clone(),
            configured,
        });
    }
    Ok(LoadedSigner { signer, notice })
}

/// The verifier key of the configured signing key, creating nothing: from
/// `MCP_LOG_SIGNING_KEY`, else from the SQLite key file if there is one; `None` when neither.
pub fn configured_verifier(
    env_value: Option<&SecretString>,
    sqlite_db_path: Option<&Path>,
) -> Result<Option<Verifier>, SigningKeyError> {
    if let Some(value) = env_value {
        let signer = Signer::from_private_key(value.expose_secret().trim())
            .map_err(SigningKeyError::Malformed)?;
        return Ok(Some(signer.verifier()));
    }
    let Some(database) = sqlite_db_path else {
        return Ok(None);
    };
    let path = key_file_path(database);
    let Some(text) = private_file::read(&path)? else {
        return Ok(None);
    };
    let signer =
        Signer::from_private_key(text.trim()).map_err(|source| SigningKeyError::MalformedFile {
            path: path.display().to_string(),
            source,
        })?;
    Ok(Some(signer.verifier()))
}

fn from_file(
    path: &Path,
    origin: &str,
    stored_key_ids: &[String],
) -> Result<(Signer, Option<String>), SigningKeyError> {
    let parse = |text: &str| {
        Signer::from_private_key(text.trim()).map_err(|source| SigningKeyError::MalformedFile {
            path: path.display().to_string(),
            source,
        })
    };
    if let Some(text) = private_file::read(path)? {
        return Ok((parse(&text)?, None));
    }
    if !stored_key_ids.is_empty() {
        return Err(SigningKeyError::FileMissing {
            path: path.display().to_string(),
            stored: stored_key_ids.join(", "),
        });
    }
    let (private, _) = generate(origin)?;
    let mut contents = Zeroizing::new(private.to_string());
    contents.push('\n');
    match private_file::create(path, &contents)? {
        private_file::Created::New => {
            let notice = format!(
                "created a new log signing key file {}; back it up with the database: auditors' \
                 checkpoints are verified with its key",
                path.display()
            );
            Ok((parse(&private)?, Some(notice)))
        }
        private_file::Created::Existing(text) => Ok((parse(&text)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_pair_loads_and_its_vkey_is_derived_from_it() {
        let (private, vkey) = generate("example.org/log").unwrap();
        let secret = SecretString::from(private.to_string());
        let loaded = load(Some(&secret), "example.org/log", None, &[]).unwrap();
        assert_eq!(loaded.signer.verifier().vkey(), vkey);
        assert!(vkey.starts_with(&format!("example.org/log+{}+", key_id_hex(&loaded.signer))));
    }

    #[test]
    fn a_key_for_another_origin_or_another_key_is_refused_by_name() {
        let (private, _) = generate("a.example/log").unwrap();
        let secret = SecretString::from(private.to_string());
        let wrong = load(Some(&secret), "b.example/log", None, &[])
            .err()
            .unwrap();
        assert!(
            wrong.to_string().contains("MCP_LOG_ORIGIN=a.example/log"),
            "{wrong}"
        );
        let other = load(Some(&secret), "a.example/log", None, &["0badc0de".into()])
            .err()
            .unwrap();
        assert!(other.to_string().contains("0badc0de"), "{other}");
        assert!(!other.to_string().contains(private.as_str()));
        let garbage = SecretString::from("PRIVATE+KEY+nope".to_owned());
        let error = load(Some(&garbage), "a.example/log", None, &[])
            .err()
            .unwrap();
        assert!(!error.to_string().contains("nope+"), "{error}");
        assert!(matches!(
            load(None, "a.example/log", None, &[]),
            Err(SigningKeyError::MissingForPostgres)
        ));
    }

    #[test]
    fn the_sqlite_key_file_is_created_once_and_never_for_a_signed_log() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("ledger.db");
        let first = load(None, "x.example/log", Some(&database), &[]).unwrap();
        assert!(first.notice.is_some());
        let again = load(None, "x.example/log", Some(&database), &[]).unwrap();
        assert!(again.notice.is_none());
        assert_eq!(again.signer.key_id(), first.signer.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file_path(&database))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = dir.path().join("other.db");
        let refused = load(None, "x.example/log", Some(&other), &["12345678".into()]);
        assert!(matches!(refused, Err(SigningKeyError::FileMissing { .. })));
        assert!(!key_file_path(&other).exists());
    }
}

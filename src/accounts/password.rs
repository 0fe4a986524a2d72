//! Passwords: Argon2id with OWASP's parameters (19 MiB of memory, 2 passes, 1 lane), hashed and
//! verified on blocking threads, a bounded number at a time, so a burst of sign-ins costs
//! sign-ins their latency and never stalls other requests.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Shortest and longest password accepted (in characters and bytes): long enough to matter,
/// short enough that hashing one is bounded work.
pub const MIN_CHARS: usize = 8;
pub const MAX_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must be at most {MAX_BYTES} bytes")]
    TooLong,
    #[error("hashing the password failed")]
    Hashing,
}

/// OWASP's Argon2id parameters (m=19456 KiB, t=2, p=1).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP's parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the rules a new password must meet.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// Hashes a password (a PHC string) with a salt of 16 random bytes. Slow on purpose: call it on
/// a blocking thread (`Passwords::hash`) from async code.
pub fn hash_blocking(password: &str, salt: &[u8; 16]) -> Result<String, PasswordError> {
    check(password)?;
    let salt = SaltString::encode_b64(salt).map_err(|_| PasswordError::Hashing)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Whether a password matches a PHC string (any Argon2 variant and parameters it names).
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    PasswordHash::new(phc)
        .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// Hashes a password on a blocking thread, with a fresh random salt (for the CLI and the seed;
/// the server goes through `Passwords`, which bounds how many run at once).
pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    crate::random::Entropy::fill(&crate::random::OsEntropy, &mut salt);
    tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret(), &salt))
        .await
        .map_err(|_| PasswordError::Hashing)?
}

/// Hashing and verification off the async threads, at most `concurrency` at a time.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a password nobody knows: an unknown e-mail is verified against it, so a
    /// refusal takes about as long whether or not the e-mail exists.
    decoy: Arc<str>,
}

impl Passwords {
    pub fn new(concurrency: usize) -> Self {
        let mut salt = [0u8; 16];
        let mut secret = [0u8; 32];
        crate::random::Entropy::fill(&crate::random::OsEntropy, &mut salt);
        crate::random::Entropy::fill(&crate::random::OsEntropy, &mut secret);
        let decoy = hash_blocking(&hex::encode(secret), &salt).expect("a 64-character password");
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: decoy.into(),
        }
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        check(password.expose_secret())?;
        let mut salt = [0u8; 16];
        crate::random::Entropy::fill(&crate::random::OsEntropy, &mut salt);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Hashing)?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret(), &salt))
            .await
            .map_err(|_| PasswordError::Hashing)?
    }

    /// Whether `password` matches `phc`; with no stored hash, the same work against the decoy,
    /// and `false`.
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.to_string());
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let matched =
            tokio::task::spawn_blocking(move || verify_blocking(password.expose_secret(), &phc))
                .await
                .unwrap_or(false);
        known && matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let phc = hash_blocking("correct horse", &[7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("correct horse", &phc));
        assert!(!verify_blocking("correct horsf", &phc));
        assert!(!verify_blocking("correct horse", "not a phc string"));
    }

    #[test]
    fn passwords_too_short_or_too_long_are_refused() {
        assert_eq!(check("seven77"), Err(PasswordError::TooShort));
        assert_eq!(check("ééééééé"), Err(PasswordError::TooShort));
        assert_eq!(
            check(&"x".repeat(MAX_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        assert!(check("password").is_ok());
        assert!(!verify_blocking(
            &"x".repeat(MAX_BYTES + 1),
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
    }
}

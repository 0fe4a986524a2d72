//! Session cookies: 32 random bytes, sent to the browser once in `Set-Cookie`; the server keeps
//! (and the log records) only their SHA-256. The CSRF token is derived from the cookie, so it
//! needs no storage: a page from another site can make the browser send the cookie, but cannot
//! read it, so it cannot compute the token.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "mcp_session";

pub struct NewSession {
    /// The cookie's value: shown to the browser once, never stored.
    pub cookie: SecretString,
    pub hash: String,
}

impl NewSession {
    pub fn from_bytes(random: &[u8; 32]) -> Self {
        let cookie = SecretString::from(hex::encode(random));
        let hash = session_hash(cookie.expose_secret());
        Self { cookie, hash }
    }
}

/// Hex SHA-256 of a cookie value: what is stored and looked up.
pub fn session_hash(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// The CSRF token of a session: hex SHA-256 of a fixed label and the cookie.
pub fn csrf_token(cookie: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"mcp-manager csrf token\0");
    digest.update(cookie.as_bytes());
    hex::encode(digest.finalize())
}

/// Whether a request's CSRF token is its session's, compared in constant time.
pub fn csrf_matches(cookie: &str, sent: &str) -> bool {
    csrf_token(cookie).as_bytes().ct_eq(sent.as_bytes()).into()
}

/// A cookie value as the server issues them (64 lowercase hex digits); anything else is not
/// looked up at all.
pub fn well_formed(cookie: &str) -> bool {
    cookie.len() == 64
        && cookie
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let a = NewSession::from_bytes(&[1; 32]);
        let b = NewSession::from_bytes(&[2; 32]);
        let token = csrf_token(a.cookie.expose_secret());
        assert!(csrf_matches(a.cookie.expose_secret(), &token));
        assert!(!csrf_matches(b.cookie.expose_secret(), &token));
        assert!(!csrf_matches(a.cookie.expose_secret(), ""));
        assert_ne!(token, a.hash, "the token is not the stored hash");
        assert!(well_formed(a.cookie.expose_secret()));
        assert!(!well_formed("x"));
    }
}

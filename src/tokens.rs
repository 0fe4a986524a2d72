//! Token material: generation, hashing, constant-time comparison. The only module that ever
//! holds a token's text, and only long enough to hash it or hand it out once.

use crate::domain::token::Token;
use mcp_events::{Timestamp, TokenScope};
use mcp_projections::rows::TokenRow;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub struct NewToken {
    pub token: SecretString,
    pub hash: String,
}

impl NewToken {
    /// `mcp_<label>_` + 32 random bytes in hex; the label comes from the token's name.
    pub fn from_bytes(name: &str, random: &[u8; 32]) -> Self {
        let token = format!("mcp_{}_{}", label(name), hex::encode(random));
        let hash = hash_token(&token);
        Self {
            token: SecretString::from(token),
            hash,
        }
    }
}

fn label(name: &str) -> String {
    let label: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect();
    if label.is_empty() {
        "token".to_owned()
    } else {
        label
    }
}

/// Hex SHA-256 of a token: what is stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two hashes without leaking where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The token aggregate's state from its projection row (a snapshot kept exact inline).
pub fn token_state(row: &TokenRow) -> Token {
    Token {
        id: Some(row.id),
        user_id: row.user_id,
        // Every row this build writes holds a known scope; an unknown one gets the default.
        scope: TokenScope::parse(&row.scope).unwrap_or(TokenScope::Leases),
        revoked: row.revoked,
        expires_at: row.expires_at.map(Timestamp::from_micros),
        max_uses: row.max_uses,
        usage_count: row.usage_count,
    }
}

pub fn expose(token: &SecretString) -> &str {
    token.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(name: &str) -> NewToken {
        let mut bytes = [0u8; 32];
        crate::random::Entropy::fill(&crate::random::OsEntropy, &mut bytes);
        NewToken::from_bytes(name, &bytes)
    }

    #[test]
    fn tokens_have_the_contract_shape() {
        let new = generate("Dev Box");
        let text = expose(&new.token);
        assert!(text.starts_with("mcp_devbox_"));
        assert_eq!(text.len(), "mcp_devbox_".len() + 64);
        assert_eq!(new.hash, hash_token(text));
        assert!(!new.hash.contains(text));
    }

    #[test]
    fn hashes_compare_exactly() {
        let h = hash_token("a");
        assert!(hashes_match(&h, &hash_token("a")));
        assert!(!hashes_match(&h, &hash_token("b")));
    }

    #[test]
    fn an_unusable_name_gets_a_generic_label() {
        assert!(expose(&generate("!!").token).starts_with("mcp_token_"));
    }
}

//! The hash chain: `hash = SHA-256(prev_hash ‖ canonical bytes of the event)`.
//!
//! The canonical bytes are the stored column values, each length-prefixed, so that no two different
//! events can produce the same byte string and `verify` can recompute a hash from the row alone.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct ChainFields<'a> {
    pub position: i64,
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub event_type: &'a str,
    pub event_version: i64,
    pub payload: &'a str,
    pub metadata: &'a str,
    pub recorded_at: &'a str,
}

/// The hex hash of an event given the hex hash of its predecessor.
pub fn chain_hash(prev_hash: &str, fields: &ChainFields<'_>) -> String {
    hex::encode(chain_digest(prev_hash, fields))
}

/// [`chain_hash`] as raw bytes (what a verifier compares, without formatting hex).
pub fn chain_digest(prev_hash: &str, fields: &ChainFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(fields.position.to_be_bytes());
    field(&mut hasher, fields.stream_id);
    hasher.update(fields.stream_version.to_be_bytes());
    field(&mut hasher, fields.event_type);
    hasher.update(fields.event_version.to_be_bytes());
    field(&mut hasher, fields.payload);
    field(&mut hasher, fields.metadata);
    field(&mut hasher, fields.recorded_at);
    hasher.finalize().into()
}

fn field(hasher: &mut Sha256, value: &str) {
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(payload: &'a str) -> ChainFields<'a> {
        ChainFields {
            position: 1,
            stream_id: "user-1",
            stream_version: 1,
            event_type: "user_registered",
            event_version: 1,
            payload,
            metadata: "{}",
            recorded_at: "2025-11-08T23:39:56.000000Z",
        }
    }

    #[test]
    fn any_change_to_a_field_changes_the_hash() {
        let a = chain_hash(GENESIS, &sample(r#"{"a":1}"#));
        let b = chain_hash(GENESIS, &sample(r#"{"a":2}"#));
        assert_ne!(a, b);
        assert_eq!(a, chain_hash(GENESIS, &sample(r#"{"a":1}"#)));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn the_hash_depends_on_the_predecessor() {
        let first = chain_hash(GENESIS, &sample("{}"));
        assert_ne!(first, chain_hash(&first, &sample("{}")));
    }

    #[test]
    fn length_prefixes_keep_field_boundaries_apart() {
        let mut a = sample("{}");
        a.stream_id = "ab";
        a.metadata = "c";
        let mut b = sample("{}");
        b.stream_id = "a";
        b.metadata = "bc";
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
    }
}

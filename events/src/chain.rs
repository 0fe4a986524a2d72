//! The log checked as a verifier reads it: event by event in position order, each event's hash
//! recomputed from its columns, its link to the one before, and the Merkle tree of the events'
//! hashes grown alongside, so the root at any size asked for in advance is known once the walk
//! passes it.
//!
//! One implementation for every reader that must not trust what it reads: `verify` on the
//! database, `verify --export` on a file, and `replay` before it swaps a rebuild in. It holds
//! O(log n) memory whatever the log's length, and never reads stored tree hashes: the roots it
//! gives come from the events alone.

use crate::hash::{chain_digest, ChainFields, GENESIS};
use mcp_tlog::merkle::{self, Frontier, Hash};
use std::collections::BTreeMap;

/// An event's columns as a verifier reads them, borrowed from a row or a line of an export.
pub struct LinkedEvent<'a> {
    pub fields: ChainFields<'a>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl crate::RawEvent {
    /// The row's columns as the chain check reads them.
    pub fn linked(&self) -> LinkedEvent<'_> {
        LinkedEvent {
            fields: ChainFields {
                position: self.position,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                event_type: &self.event_type,
                event_version: self.event_version,
                payload: &self.payload,
                metadata: &self.metadata,
                recorded_at: &self.recorded_at,
            },
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// The first event that does not belong where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("position {position}: {reason}")]
pub struct ChainBreak {
    /// The position the walk expected next.
    pub position: i64,
    pub reason: String,
}

/// The state of a walk: the events checked so far, the last one's hash, and the tree's edge.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    position: i64,
    /// The last event's hash, as the 64 ASCII hex digits the next event's `prev_hash` holds.
    prev: [u8; 64],
    frontier: Frontier,
    /// Tree sizes whose root is wanted, with the root once the walk has passed them.
    roots: BTreeMap<u64, Option<Hash>>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainCheck {
    /// A walk from the start of the log (the first `prev_hash` is 64 zeros).
    pub fn new() -> Self {
        let mut prev = [0u8; 64];
        prev.copy_from_slice(GENESIS.as_bytes());
        Self {
            position: 0,
            prev,
            frontier: Frontier::new(),
            roots: BTreeMap::new(),
        }
    }

    /// Keeps the tree's root at `size` leaves when the walk gets there (at once if it is
    /// there). A size the walk has passed cannot be asked for any more: its root is `None`.
    pub fn keep_root_at(&mut self, size: u64) {
        let known = (size == self.frontier.size()).then(|| self.frontier.root());
        self.roots.entry(size).or_insert(known);
    }

    /// The root kept for `size`, once the walk has reached it.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        self.roots.get(&size).copied().flatten()
    }

    /// The root kept for `size`, forgotten here (a long walk's memory stays small); `None`
    /// if the walk has not reached `size` (it is then forgotten too).
    pub fn take_root(&mut self, size: u64) -> Option<Hash> {
        self.roots.remove(&size).flatten()
    }

    /// Events checked so far (the last one's position).
    pub fn events(&self) -> i64 {
        self.position
    }

    /// The last checked event's hash (64 zeros before the first).
    pub fn head(&self) -> &str {
        std::str::from_utf8(&self.prev).expect("hex digits")
    }

    /// The Merkle tree root of the events checked so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Checks the next event: its position follows the last one, its `prev_hash` is the last
    /// one's hash, and its `hash` is its columns' hash; then grows the tree by its leaf.
    pub fn push(&mut self, event: &LinkedEvent<'_>) -> Result<(), ChainBreak> {
        let expected = self.position + 1;
        let broken = |reason: String| ChainBreak {
            position: expected,
            reason,
        };
        let found = event.fields.position;
        if found != expected {
            return Err(broken(if found > expected {
                format!("position {expected} is missing (the next event is at position {found})")
            } else {
                format!(
                    "the event at position {found} comes again after position {}",
                    self.position
                )
            }));
        }
        if event.prev_hash.as_bytes() != self.prev {
            return Err(broken(if expected == 1 {
                "prev_hash is not the genesis value (64 zeros)".to_owned()
            } else {
                "prev_hash does not match the previous event's hash".to_owned()
            }));
        }
        let digest = chain_digest(event.prev_hash, &event.fields);
        let mut hex = [0u8; 64];
        hex::encode_to_slice(digest, &mut hex).expect("64 hex digits for 32 bytes");
        if event.hash.as_bytes() != hex {
            return Err(broken(
                "hash does not match the event's contents".to_owned(),
            ));
        }
        self.prev = hex;
        self.position = expected;
        self.frontier.push_leaf_hash(merkle::leaf_hash(&digest));
        let size = self.frontier.size();
        if let Some(root) = self.roots.get_mut(&size) {
            *root = Some(self.frontier.root());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::chain_hash;

    struct Owned {
        position: i64,
        payload: String,
        prev_hash: String,
        hash: String,
    }

    fn fields<'a>(position: i64, payload: &'a str) -> ChainFields<'a> {
        ChainFields {
            position,
            stream_id: "user-1",
            stream_version: position,
            event_type: "user_registered",
            event_version: 1,
            payload,
            metadata: "{}",
            recorded_at: "2025-11-08T23:39:56.000000Z",
        }
    }

    fn log(n: i64) -> Vec<Owned> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|position| {
                let payload = format!("{{\"n\":{position}}}");
                let hash = chain_hash(&prev, &fields(position, &payload));
                let event = Owned {
                    position,
                    payload,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                event
            })
            .collect()
    }

    fn push(chain: &mut ChainCheck, event: &Owned) -> Result<(), ChainBreak> {
        chain.push(&LinkedEvent {
            fields: fields(event.position, &event.payload),
            prev_hash: &event.prev_hash,
            hash: &event.hash,
        })
    }

    #[test]
    fn a_whole_log_checks_and_gives_the_roots_asked_for() {
        let events = log(9);
        let mut chain = ChainCheck::new();
        chain.keep_root_at(0);
        chain.keep_root_at(5);
        chain.keep_root_at(9);
        for event in &events {
            push(&mut chain, event).unwrap();
        }
        let leaves: Vec<[u8; 32]> = events
            .iter()
            .map(|e| merkle::leaf_data_from_event_hash(&e.hash).unwrap())
            .collect();
        assert_eq!(chain.root_at(0), Some(merkle::empty_root()));
        assert_eq!(chain.root_at(5), Some(merkle::root(&leaves[..5])));
        assert_eq!(chain.root_at(9), Some(merkle::root(&leaves)));
        assert_eq!(chain.root(), merkle::root(&leaves));
        assert_eq!(chain.events(), 9);
        assert_eq!(chain.head(), events[8].hash);
        assert_eq!(chain.take_root(5), Some(merkle::root(&leaves[..5])));
        assert_eq!(chain.root_at(5), None);
        assert!(chain.root_at(9).is_some());
    }

    #[test]
    fn the_first_event_out_of_place_is_named() {
        let mut events = log(5);
        let mut chain = ChainCheck::new();
        push(&mut chain, &events[0]).unwrap();
        let gap = push(&mut chain, &events[2]).unwrap_err();
        assert_eq!(gap.position, 2);
        assert!(gap.reason.contains("missing"), "{gap}");

        events[3].payload = "{\"n\":400}".into();
        let mut chain = ChainCheck::new();
        for event in &events[..3] {
            push(&mut chain, event).unwrap();
        }
        let edited = push(&mut chain, &events[3]).unwrap_err();
        assert_eq!(edited.position, 4);
        assert!(edited.reason.contains("contents"), "{edited}");

        let mut chain = ChainCheck::new();
        let relinked = push(&mut chain, &events[1]).unwrap_err();
        assert_eq!(relinked.position, 1);
        let mut forged = log(2).remove(1);
        forged.position = 1;
        let genesis = push(&mut ChainCheck::new(), &forged).unwrap_err();
        assert!(genesis.reason.contains("genesis"), "{genesis}");
    }

    #[test]
    fn a_root_asked_for_after_the_walk_passed_its_size_is_unknown() {
        let events = log(3);
        let mut chain = ChainCheck::new();
        for event in &events {
            push(&mut chain, event).unwrap();
        }
        chain.keep_root_at(2);
        chain.keep_root_at(3);
        assert_eq!(chain.root_at(2), None);
        assert_eq!(chain.root_at(3), Some(chain.root()));
    }
}

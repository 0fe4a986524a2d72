//! Sealed integration secrets the writer has read, kept (still encrypted) between batches.
//!
//! A stored version of an integration's credentials never changes, so a sealed copy can be kept
//! as long as the writer's other memory: it is dropped when another process appends, when a
//! command that may have stored one is rolled back, and when a commit fails. Only ciphertext is
//! kept; every use decrypts it again.

use crate::crypto::SealedSecret;
use mcp_events::ValidAt;
use std::collections::HashMap;

const MAX_SECRETS: usize = 10_000;

#[derive(Default)]
pub struct SecretCache {
    valid_at: ValidAt,
    sealed: HashMap<(i64, i64), SealedSecret>,
}

impl SecretCache {
    /// Starts a transaction at `head`: the cache survives only if it was left there.
    pub fn resume_at(&mut self, head: i64) {
        if !self.valid_at.resume_at(head) {
            self.forget();
        }
    }

    /// Marks the cache valid at `head`, just after a commit.
    pub fn committed_at(&mut self, head: i64) {
        if self.sealed.len() > MAX_SECRETS {
            self.forget();
        }
        self.valid_at.committed_at(head);
    }

    pub fn forget(&mut self) {
        self.valid_at = ValidAt::default();
        self.sealed.clear();
    }

    pub fn get(&self, integration_id: i64, version: i64) -> Option<&SealedSecret> {
        self.sealed.get(&(integration_id, version))
    }

    pub fn insert(&mut self, integration_id: i64, version: i64, sealed: SealedSecret) {
        self.sealed.insert((integration_id, version), sealed);
    }
}

//! The one place the ledger's random values come from (lease ids, token material), so a test
//! can run the same commands twice and get the same log.

use rand::rngs::{OsRng, StdRng};
use rand::{RngCore, SeedableRng};
use std::sync::Mutex;

pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, bytes: &mut [u8]);
}

/// The operating system's generator: what production uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, bytes: &mut [u8]) {
        OsRng.fill_bytes(bytes);
    }
}

/// A seeded generator: the same seed gives the same values in the same order. For tests only:
/// token material drawn from it is predictable.
#[derive(Debug)]
pub struct SeededEntropy(Mutex<StdRng>);

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, bytes: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fill_bytes(bytes);
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `count` random base62 characters, without bias (bytes past the last full 62 are redrawn).
pub fn base62(entropy: &dyn Entropy, count: usize) -> String {
    let mut out = String::with_capacity(count);
    let mut buffer = [0u8; 64];
    while out.len() < count {
        entropy.fill(&mut buffer);
        for byte in buffer {
            if out.len() < count && byte < 248 {
                out.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_values() {
        let (a, b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        assert_eq!(base62(&a, 48), base62(&b, 48));
        assert_ne!(base62(&a, 48), base62(&SeededEntropy::new(8), 48));
    }

    #[test]
    fn base62_draws_every_character_from_the_alphabet() {
        let text = base62(&OsEntropy, 5_000);
        assert_eq!(text.len(), 5_000);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        // Every one of the 62 characters turns up in 5,000 unbiased draws.
        let distinct: std::collections::BTreeSet<u8> = text.bytes().collect();
        assert_eq!(distinct.len(), 62);
    }
}

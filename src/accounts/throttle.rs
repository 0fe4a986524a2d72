//! The sign-in throttle: at most `limit` failed sign-ins per account (e-mail) and per client
//! address within a sliding window; past that, sign-ins are answered 429 with `Retry-After`
//! until the oldest failure leaves the window. Only failures count, so a person who types their
//! password right is never slowed by it. (A rate limiter such as governor counts every attempt;
//! this counts failures, and needs a look before it counts, so it is written here.)
//!
//! In memory, per process: with several replicas, each enforces its own limits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept at most; past this, keys whose failures all left the window are dropped first, then
/// the throttle forgets the oldest half (an attacker spraying addresses costs memory, not
/// correctness for the accounts it targets).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub per_account: usize,
    pub per_address: usize,
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
}

pub struct SignInThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl SignInThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, email: &str, address: Option<&str>) -> Vec<(Key, usize)> {
        let mut keys = vec![(
            Key::Account(email.trim().to_lowercase()),
            self.policy.per_account,
        )];
        if let Some(address) = address {
            keys.push((Key::Address(address.to_owned()), self.policy.per_address));
        }
        keys
    }

    /// `Err(wait)` when the account or the address has used its failures in the window.
    pub fn check(&self, email: &str, address: Option<&str>, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in self.keys(email, address) {
            if let Some(times) = failures.get_mut(&key) {
                prune(times, now, self.policy.window);
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    wait = wait.max(self.policy.window.saturating_sub(now - oldest));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.max(Duration::from_secs(1)))
        }
    }

    /// Counts one failed sign-in against the account and the address.
    pub fn failed(&self, email: &str, address: Option<&str>, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= MAX_KEYS {
            let window = self.policy.window;
            failures.retain(|_, times| {
                prune(times, now, window);
                !times.is_empty()
            });
            if failures.len() >= MAX_KEYS {
                let mut oldest: Vec<_> = failures
                    .iter()
                    .map(|(k, t)| (t.back().copied(), k.clone()))
                    .collect();
                oldest.sort_by_key(|(t, _)| *t);
                for (_, key) in oldest.into_iter().take(MAX_KEYS / 2) {
                    failures.remove(&key);
                }
            }
        }
        for (key, _) in self.keys(email, address) {
            failures.entry(key).or_default().push_back(now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> SignInThrottle {
        SignInThrottle::new(ThrottlePolicy {
            per_account: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn an_account_is_throttled_after_its_failures_and_freed_by_the_window() {
        let t = throttle();
        let start = Instant::now();
        for i in 0..3 {
            assert!(
                t.check("A@x.io", Some("1.1.1.1"), start).is_ok(),
                "attempt {i}"
            );
            t.failed("a@x.io", Some(&format!("1.1.1.{i}")), start);
        }
        let wait = t.check("a@X.io ", Some("9.9.9.9"), start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        let later = start + Duration::from_secs(45);
        assert_eq!(t.check("a@x.io", None, later), Err(Duration::from_secs(15)));
        assert!(t
            .check("a@x.io", None, start + Duration::from_secs(60))
            .is_ok());
        assert!(
            t.check("b@x.io", Some("1.1.1.0"), start).is_ok(),
            "other accounts"
        );
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5 {
            t.failed(&format!("user{i}@x.io"), Some("6.6.6.6"), now);
        }
        assert!(t.check("new@x.io", Some("6.6.6.6"), now).is_err());
        assert!(t.check("new@x.io", Some("7.7.7.7"), now).is_ok());
    }
}

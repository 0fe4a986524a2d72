//! Bounds floods of refused authentication, so that nobody can grow the permanent log at will.
//!
//! Every refused request appends an event (`mcp_auth_failed`), which is right for the occasional
//! mistake and ruinous for a flood: one client with a bad token could write gigabytes an hour
//! into a log that can never be trimmed. So refusals are budgeted per client address and per
//! token prefix (`governor`'s keyed GCRA limiter: a burst, then a steady rate). While a key is
//! over its budget, a request that is *certainly* refused — no bearer token, a token refused
//! moments ago, or one the tokens table does not know — is answered `429` with `Retry-After`
//! at the door, without the ledger, and counted; every window the counts are recorded as one
//! `mcp_auth_failed` per kind of refusal (reason, address, token) with how many there were and
//! when, so the audit trail keeps who, how often and when without one row per request.
//!
//! Accepted requests are never limited by this: a token the tokens table knows always goes on to
//! the ledger, which decides. Nothing here holds a token: only the SHA-256 hashes, and a short
//! prefix of a refused token as a budget key (kept in memory, never logged or recorded).

use super::request::bearer_of;
use crate::commands::refusals::{RecordRepeatedRefusals, RepeatedRefusal};
use crate::domain::AuthRefusal;
use crate::ledger::Ledger;
use crate::tokens::hash_token;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{RETRY_AFTER, USER_AGENT};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use mcp_events::{Repeated, Timestamp};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Characters of a refused token that key its budget: enough to tell one token from another.
const TOKEN_PREFIX: usize = 16;
/// Bound on the entries each map holds, so a flood of distinct keys cannot exhaust memory.
const MAX_ENTRIES: usize = 100_000;

/// The budget of refused requests, per client address and per token prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodPolicy {
    /// Refusals a key may have at once; 0 turns the guard off.
    pub burst: u32,
    /// Refusals per minute a key regains.
    pub per_minute: u32,
    /// How often the refusals turned away are recorded.
    pub window: Duration,
}

impl Default for FloodPolicy {
    fn default() -> Self {
        Self {
            burst: 20,
            per_minute: 10,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    TokenPrefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TallyKey {
    token_hash: Option<String>,
    reason: AuthRefusal,
    ip: Option<String>,
}

struct Tally {
    count: u64,
    first_at: Timestamp,
    last_at: Timestamp,
    user_agent: Option<String>,
}

#[derive(Default)]
struct State_ {
    /// Keys over budget, until when.
    closed: HashMap<Key, Instant>,
    /// Token hashes refused recently, with why (a refused token is never accepted later: it is
    /// unknown, expired, revoked, used up, or its user disabled).
    refused: HashMap<String, (AuthRefusal, Instant)>,
    tallies: HashMap<TallyKey, Tally>,
}

pub struct FloodGuard {
    policy: FloodPolicy,
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
    state: Mutex<State_>,
    ledger: Ledger,
}

/// What a request brings that the guard looks at.
struct Visitor {
    ip: Option<IpAddr>,
    token: Option<String>,
    token_hash: Option<String>,
    user_agent: Option<String>,
}

impl Visitor {
    fn of(request: &Request) -> Self {
        let token = bearer_of(request.headers()).map(str::to_owned);
        Self {
            ip: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
            token_hash: token.as_deref().map(hash_token),
            token,
            user_agent: request
                .headers()
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(512).collect()),
        }
    }

    fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::with_capacity(2);
        if let Some(ip) = self.ip {
            keys.push(Key::Address(ip));
        }
        if let Some(token) = &self.token {
            keys.push(Key::TokenPrefix(token.chars().take(TOKEN_PREFIX).collect()));
        }
        keys
    }
}

impl FloodGuard {
    pub fn new(policy: FloodPolicy, ledger: Ledger) -> Self {
        let limiter = NonZeroU32::new(policy.burst).map(|burst| {
            let per_minute = NonZeroU32::new(policy.per_minute).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        Self {
            policy,
            limiter,
            state: Mutex::new(State_::default()),
            ledger,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long until every key of this visitor is within budget again, if one is not now.
    fn closed_for(&self, visitor: &Visitor) -> Option<Duration> {
        let now = Instant::now();
        let state = self.state();
        visitor
            .keys()
            .iter()
            .filter_map(|key| state.closed.get(key))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max()
    }

    /// Why this visitor would certainly be refused, without asking the ledger, if we know.
    async fn certain_refusal(&self, visitor: &Visitor) -> Option<AuthRefusal> {
        let Some(hash) = &visitor.token_hash else {
            return Some(AuthRefusal::Missing);
        };
        let now = Instant::now();
        if let Some((reason, until)) = self.state().refused.get(hash) {
            if *until > now {
                return Some(*reason);
            }
        }
        let mut conn = self.ledger.store().database().pool().acquire().await.ok()?;
        match mcp_projections::queries::token_by_hash(&mut conn, hash).await {
            Ok(None) => Some(AuthRefusal::Invalid),
            // A known token goes to the ledger, which decides (and may well accept it).
            Ok(Some(_)) | Err(_) => None,
        }
    }

    /// Counts a refusal the ledger recorded against the visitor's budgets.
    fn note_refusal(&self, visitor: &Visitor, reason: AuthRefusal) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let now = Instant::now();
        let mut state = self.state();
        if let Some(hash) = &visitor.token_hash {
            bounded(&mut state.refused);
            state
                .refused
                .insert(hash.clone(), (reason, now + self.policy.window));
        }
        for key in visitor.keys() {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                bounded(&mut state.closed);
                state
                    .closed
                    .insert(key, now + wait.max(Duration::from_secs(1)));
            }
        }
    }

    /// Counts a refusal turned away at the door, to be recorded with the next window.
    fn tally(&self, visitor: &Visitor, reason: AuthRefusal) {
        let at = Timestamp::from_datetime(chrono::Utc::now());
        let key = TallyKey {
            // An unknown token names nobody: such refusals are counted together, however many
            // different tokens a flood tries.
            token_hash: match reason {
                AuthRefusal::Missing | AuthRefusal::Invalid => None,
                _ => visitor.token_hash.clone(),
            },
            reason,
            ip: visitor.ip.map(|ip| ip.to_string()),
        };

        let mut state = self.state();
        let full = state.tallies.len() >= MAX_ENTRIES && !state.tallies.contains_key(&key);
        let key = if full {
            // Past the bound, further kinds of refusal are counted together.
            TallyKey {
                token_hash: None,
                reason,
                ip: None,
            }
        } else {
            key
        };
        let tally = state.tallies.entry(key).or_insert_with(|| Tally {
            count: 0,
            first_at: at,
            last_at: at,
            user_agent: visitor.user_agent.clone(),
        });
        tally.count += 1;
        tally.last_at = at;
    }

    /// Records the refusals turned away since the last call, one event per kind.
    pub async fn record(&self) {
        let tallies = std::mem::take(&mut self.state().tallies);
        let refusals: Vec<RepeatedRefusal> = tallies
            .into_iter()
            .map(|(key, tally)| RepeatedRefusal {
                token_hash: key.token_hash,
                reason: key.reason,
                ip: key.ip,
                user_agent: tally.user_agent,
                repeated: Repeated {
                    count: tally.count,
                    first_at: tally.first_at,
                    last_at: tally.last_at,
                },
            })
            .collect();
        if refusals.is_empty() {
            return;
        }
        let count: u64 = refusals.iter().map(|r| r.repeated.count).sum();
        match self.ledger.submit(RecordRepeatedRefusals(refusals)).await {
            Ok(events) => tracing::info!(events, refused = count, "recorded refusals turned away"),
            Err(error) => tracing::error!(%error, refused = count, "recording refusals failed"),
        }
        let now = Instant::now();
        let mut state = self.state();
        state.closed.retain(|_, until| *until > now);
        state.refused.retain(|_, (_, until)| *until > now);
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }

    /// Records the refusals turned away, every window, until the task is stopped.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.policy.window);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.record().await;
        }
    }
}

type RateLimiter =
    governor::RateLimiter<Key, governor::state::keyed::DefaultKeyedStateStore<Key>, DefaultClock>;

/// Keeps a map within its bound by forgetting everything in it (what it holds is recoverable:
/// budgets restart, refusals are asked again).
fn bounded<K, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

/// The middleware on authenticated routes.
pub async fn guard(State(guard): State<Arc<FloodGuard>>, request: Request, next: Next) -> Response {
    if guard.limiter.is_none() {
        return next.run(request).await;
    }
    let visitor = Visitor::of(&request);
    if let Some(wait) = guard.closed_for(&visitor) {
        if let Some(reason) = guard.certain_refusal(&visitor).await {
            metrics::counter!(
                crate::metrics::AUTH_FAILURES_TURNED_AWAY,
                "reason" => super::error::auth_reason(reason)
            )
            .increment(1);
            guard.tally(&visitor, reason);

            return too_many(wait);
        }
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        if let Some(reason) = response.extensions().get::<AuthRefusal>() {
            guard.note_refusal(&visitor, *reason);
        }
    }
    response
}

fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = super::error::plain(
        StatusCode::TOO_MANY_REQUESTS,
        "Too Many Attempts.",
        "too_many_attempts",
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

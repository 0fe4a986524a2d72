//! The account API (`/api/account/*`): people signed in with a session cookie manage their own
//! integrations, tokens and leases, see their activity, and (as owners or admins) their
//! organizations' members and integrations. Every change is a command on the ledger, run through
//! `AsUser` so the object is checked to be the caller's under the ledger lock.
//!
//! Never: accept an MCP bearer token here, answer differently for another user's object than for
//! a missing one (both 404), or put a password, a cookie or a credential in a response, a log line
//! or an event.

// The web console (`super::console`) is a client of these handlers, in the same process.
pub(super) mod activity;
mod error;
pub(super) mod ids;
pub(super) mod integrations;
pub(super) mod leases;
pub mod openapi;
pub(super) mod organizations;
mod session;
pub(super) mod sign_in;
pub(super) mod tokens;

pub use error::AccountError;
pub use session::{Anonymous, Body, SignedIn};

use super::AppState;
use crate::accounts::password::Passwords;
use crate::accounts::throttle::{SignInThrottle, ThrottlePolicy};
use crate::config::Settings;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the account routes share: password hashing, the sign-in throttle, session settings.
pub struct Accounts {
    pub passwords: Passwords,
    pub throttle: SignInThrottle,
    /// Seconds without activity after which a session ends.
    pub idle_timeout: i64,
    /// Seconds after which a session ends whatever the activity.
    pub lifetime: i64,
    pub secure_cookies: bool,
}

impl Accounts {
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(
            settings.sign_in_throttle(),
            settings.session_idle_timeout,
            settings.session_lifetime,
            settings.secure_cookies,
        )
    }

    pub fn new(throttle: ThrottlePolicy, idle_timeout: i64, lifetime: i64, secure: bool) -> Self {
        // Two hashes at a time: on a small machine, sign-ins wait for each other, not the API.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            passwords: Passwords::new(cores.clamp(1, 4)),
            throttle: SignInThrottle::new(throttle),
            idle_timeout,
            lifetime,
            secure_cookies: secure,
        }
    }

    /// How stale a session's last recorded activity may get before a request records it again:
    /// often enough for the idle timeout to be exact within a few minutes, rarely enough that a
    /// busy console does not fill the log.
    pub fn refresh_after(&self) -> i64 {
        (self.idle_timeout / 4).clamp(1, 300)
    }
}

/// The account API's routes, as CONTRACT.md lists them, each with its description (`routes!`
/// reads the handler's `#[utoipa::path]`). Ids that are not what the handler reads are 404
/// before the session is looked at (`ids.rs`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in::login))
        .routes(routes!(sign_in::logout))
        .routes(routes!(sign_in::me))
        .routes(routes!(integrations::list, integrations::add))
        .routes(routes!(integrations::set_status, integrations::remove))
        .routes(routes!(integrations::rotate))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(leases::list))
        .routes(routes!(leases::revoke))
        .routes(routes!(activity::list))
        .routes(routes!(organizations::members, organizations::add_member))
        .routes(routes!(
            organizations::set_role,
            organizations::remove_member
        ))
        .routes(routes!(
            organizations::integrations,
            organizations::add_integration
        ))
        .routes(routes!(organizations::set_integration_status))
        .routes(routes!(organizations::rotate_integration))
        .route_layer(axum::middleware::from_fn(ids::well_formed))
}

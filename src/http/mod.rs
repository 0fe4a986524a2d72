//! The HTTP API of the guide and CONTRACT.md: handlers turn a request into one `ApiCall`
//! command, submit it, and render its outcome. Never logs a token, a credential or a body.

pub mod error;
pub mod expirer;
mod leases;
mod me;
mod request;
pub mod views;

use crate::ledger::Ledger;
use axum::routing::{get, post};
use axum::Router;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
}

impl AppState {
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }
}

/// The route table of CONTRACT.md.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/mcp/me", get(me::me))
        .route("/api/mcp/credentials/lease", post(leases::create))
        .route("/api/mcp/credentials/lease/{id}/renew", post(leases::renew))
        .route(
            "/api/mcp/credentials/lease/{id}",
            get(leases::show).delete(leases::revoke),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(request::trace))
        .with_state(state)
}

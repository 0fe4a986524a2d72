//! The HTTP API of the guide and the contract: handlers turn a request into one command, submit
//! it, and render its outcome. Never logs a token, a credential or a body.

pub mod error;
pub mod expirer;
pub mod flood;
mod leases;
mod me;
mod request;
pub mod views;

use crate::ledger::Ledger;
use axum::routing::{get, post};
use axum::Router;
use flood::{FloodGuard, FloodPolicy};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub flood: Arc<FloodGuard>,
}

impl AppState {
    pub fn new(ledger: Ledger, flood: FloodPolicy) -> Self {
        let flood = Arc::new(FloodGuard::new(flood, ledger.clone()));
        Self { ledger, flood }
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
        .route_layer(axum::middleware::from_fn_with_state(
            state.flood.clone(),
            flood::guard,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(request::trace))
        .with_state(state)
}

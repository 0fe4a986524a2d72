//! The HTTP API of the guide and the contract: handlers turn a request into one command, submit
//! it, and render its outcome. Never logs a token, a credential or a body. Beside it, the
//! operator's routes (health, readiness, metrics), the flood guard on refused authentication
//! (`flood.rs`), and the server loop with its connection limits (`server.rs`).

pub mod account;
pub mod audit;
pub mod error;
pub mod expirer;
pub mod flood;
pub mod health;
mod leases;
mod limits;
mod me;
pub mod metrics;
mod path;
mod receipt;
mod request;
pub mod server;
pub mod views;

use crate::checkpointer::SignedLog;
use crate::ledger::Ledger;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use flood::{FloodGuard, FloodPolicy};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub flood: Arc<FloodGuard>,
    pub log: Arc<SignedLog>,
    pub accounts: Arc<account::Accounts>,
}

impl AppState {
    pub fn new(
        ledger: Ledger,
        flood: FloodPolicy,
        log: Arc<SignedLog>,
        accounts: account::Accounts,
    ) -> Self {
        let flood = Arc::new(FloodGuard::new(flood, ledger.clone()));
        Self {
            ledger,
            flood,
            log,
            accounts: Arc::new(accounts),
        }
    }
}

/// The route table of CONTRACT.md, and the operator's routes: `/healthz`, `/readyz` and, unless
/// it is served on an address of its own, `/metrics`.
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let mut routes = Router::new()
        .route("/api/mcp/me", get(me::me))
        .route("/api/mcp/credentials/lease", post(leases::create))
        .route("/api/mcp/credentials/lease/{id}/renew", post(leases::renew))
        .route(
            "/api/mcp/credentials/lease/{id}",
            get(leases::show).delete(leases::revoke),
        )
        .route(
            "/api/mcp/credentials/lease/{id}/receipt",
            get(receipt::receipt),
        )
        .route("/api/audit/events", get(audit::events))
        .route("/api/audit/events/stream", get(audit::stream))
        .route("/api/audit/checkpoint", get(audit::checkpoint))
        .route("/api/audit/key", get(audit::key))
        .route("/api/audit/proof/inclusion", get(audit::inclusion))
        .route("/api/audit/proof/consistency", get(audit::consistency))
        .route("/api/audit/tlog/checkpoint", get(audit::checkpoint))
        .route("/api/audit/tlog/tile/{*path}", get(audit::tile))
        .route_layer(axum::middleware::from_fn_with_state(
            state.flood.clone(),
            flood::guard,
        ))
        .merge(account::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if with_metrics {
        routes = routes.route("/metrics", get(metrics::metrics));
    }
    layered(routes).with_state(state)
}

/// `/metrics` alone, for `--metrics-bind`.
pub fn metrics_router(state: AppState) -> Router {
    layered(Router::new().route("/metrics", get(metrics::metrics))).with_state(state)
}

/// What every response goes through, outermost last: the request id and log line, the request
/// metrics, a panic turned into a JSON 500, the declared body length.
fn layered(routes: Router<AppState>) -> Router<AppState> {
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(limits::declared_length))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(axum::middleware::from_fn(request::trace))
}

fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error::plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Server Error",
        "internal",
    )
}

//! The HTTP API of the guide and the contract: handlers turn a request into one command, submit
//! it, and render its outcome. Never logs a token, a credential or a body. Beside it, the
//! operator's routes (health, readiness, metrics, the OpenAPI document), the flood guard on
//! refused authentication (`flood.rs`), and the server loop with its connection limits
//! (`server.rs`). People sign in to the account API (`account/`) and the web console
//! (`console/`), which is its client.

pub mod account;
pub mod audit;
mod console;
pub mod error;
pub mod expirer;
pub mod flood;
pub mod health;
mod leases;
mod limits;
mod me;
pub mod metrics;
pub mod openapi;
mod path;
mod receipt;
mod request;
pub mod server;
pub mod views;

use crate::checkpointer::SignedLog;
use crate::ledger::Ledger;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use flood::{FloodGuard, FloodPolicy};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The route table of CONTRACT.md (the MCP and auditors' routes, and the account API), and the
/// operator's routes: `/healthz`, `/readyz`, the OpenAPI document and, unless it is served on an
/// address of its own, `/metrics`. Each route comes with its description (`routes!` reads the
/// handler's `#[utoipa::path]`); `openapi::ROUTES` lists them all.
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let authenticated = OpenApiRouter::new()
        .routes(routes!(me::me))
        .routes(routes!(leases::create))
        .routes(routes!(leases::renew))
        .routes(routes!(leases::show, leases::revoke))
        .routes(routes!(receipt::receipt))
        .routes(routes!(audit::events))
        .routes(routes!(audit::stream))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::key))
        .routes(routes!(audit::inclusion))
        .routes(routes!(audit::consistency))
        .routes(routes!(audit::tlog_checkpoint))
        // axum's `{*path}` (the rest of the path) is no OpenAPI template: the route is added
        // by hand, its description (`{path}`) from the handler's attribute.
        .route("/api/audit/tlog/tile/{*path}", get(audit::tile))
        .merge(OpenApiRouter::with_openapi(TileDoc::openapi()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.flood.clone(),
            flood::guard,
        ));
    let mut open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::document));
    if with_metrics {
        open = open.routes(routes!(metrics::metrics));
    }
    let (routes, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(authenticated)
        .merge(account::router())
        .merge(open)
        .split_for_parts();
    let json = openapi::to_json(&openapi::finish(document, state.ledger.policy()));
    let routes = routes
        .layer(Extension(openapi::Document(json)))
        .merge(console::router());

    layered(routes).with_state(state)
}

/// The description of the tiles' route.
#[derive(OpenApi)]
#[openapi(paths(audit::tile))]
struct TileDoc;

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

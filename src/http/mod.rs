//! The HTTP API of the guide and CONTRACT.md: handlers submit `ApiCall` commands and render their
//! outcomes. Never logs a token, a credential or a request body.

pub mod expirer;

use crate::ledger::Ledger;
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

/// The route table.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}

//! `GET /metrics` (Prometheus text format) and the middleware that counts HTTP requests.
//!
//! Requests are labelled by route template (`/api/mcp/credentials/lease/{id}`, from axum's
//! `MatchedPath`; `unmatched` for the fallback), never by the raw path, which holds lease ids.
//! Active leases and the expirer's lag are counted at scrape time by one query with a timeout;
//! if the database does not answer in time they keep their last value, and the rest is served.

use super::openapi::Stack;
use super::AppState;
use crate::metrics::{EXPIRER_LAG, HTTP_REQUESTS, HTTP_REQUEST_DURATION, LEASES_ACTIVE};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts a request and its latency once answered.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Every metric (Prometheus text format 0.0.4).",
            body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        Stack,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    scrape_time_gauges(&state).await;
    let text = crate::metrics::install().render();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Active leases, and how long the oldest lease past its expiry has waited for the expirer.
async fn scrape_time_gauges(state: &AppState) {
    let now = state.ledger.now().as_micros();
    let query = sqlx::query_as::<_, (i64, Option<i64>)>(
        "select count(case when expires_at > $1 then 1 end), \
         min(case when expires_at <= $1 then expires_at end) \
         from leases where revoked_at is null and expired_at is null",
    )
    .bind(now)
    .fetch_one(state.ledger.store().database().pool());
    match tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, query).await {
        Ok(Ok((active, oldest_due))) => {
            metrics::gauge!(LEASES_ACTIVE).set(active as f64);
            let lag = oldest_due.map_or(0.0, |due| (now - due).max(0) as f64 / 1e6);
            metrics::gauge!(EXPIRER_LAG).set(lag);
        }
        Ok(Err(error)) => tracing::warn!(%error, "counting leases for /metrics failed"),
        Err(_) => tracing::warn!("counting leases for /metrics timed out"),
    }
}

//! `GET /healthz` (the process answers) and `GET /readyz` (this replica can serve requests now).
//!
//! Readiness checks, concurrently and each within `CHECK_TIMEOUT`: the database answers; the
//! ledger's writer task runs; the projections are at their current version and at most
//! `MAX_PROJECTION_LAG` events behind the log's head (a replica catching up after another one
//! appended a burst is still ready; a rebuild that has not run is not); and the configured key
//! is the one every stored secret is sealed with. Neither route authenticates, records an event
//! or counts on a token; the answers never hold key material, only key ids.

use super::openapi::Stack;
use super::AppState;
use crate::ledger::Ledger;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// How long one readiness check may take before it counts as failing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How many events projections may be behind the head and still be ready.
pub const MAX_PROJECTION_LAG: i64 = 1000;

/// The body of `/healthz`, and of `/readyz` with its checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    /// `ok`, or (`/readyz`) `unavailable`.
    #[schema(value_type = String, pattern = "^(ok|unavailable)$")]
    pub status: &'static str,
    /// `/readyz` only: each check by name (`database`, `writer`, `projections`,
    /// `encryption_key`, `checkpoints`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, CheckView>>)]
    pub checks: Option<BTreeMap<&'static str, CheckView>>,
}

/// One readiness check: `ok`, or `failing` with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    #[schema(value_type = String, pattern = "^(ok|failing)$")]
    pub status: &'static str,
    /// What is wrong, and what to do (key ids, never keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckView {
    fn from(outcome: Result<(), String>) -> Self {
        match outcome {
            Ok(()) => Self {
                status: "ok",
                detail: None,
            },
            Err(detail) => Self {
                status: "failing",
                detail: Some(detail),
            },
        }
    }
}

/// The process answers (a liveness probe).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`.", body = HealthView),
        Stack,
    )
)]
pub async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok",
        checks: None,
    })
}

/// This replica can serve requests now (a readiness probe); each check has 2 s.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Every check is `ok`.", body = HealthView),
        (status = 503, description = "A check is failing: each one named, with what is wrong \
            (or, at the connection cap, the `unavailable` error).", body = HealthView),
        Stack,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = readiness(&state.ledger).await;
    let signing = match state.log.refusal() {
        None => Ok(()),
        Some(refusal) => Err(refusal),
    };
    checks.insert("checkpoints", CheckView::from(signing));
    let ready = checks.values().all(|check| check.status == "ok");
    let (status, word) = if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = HealthView {
        status: word,
        checks: Some(checks),
    };
    (status, Json(body)).into_response()
}

/// Runs every readiness check; each one's outcome by name.
pub async fn readiness(ledger: &Ledger) -> BTreeMap<&'static str, CheckView> {
    let (database, projections, key) = tokio::join!(
        within(database(ledger)),
        within(projections(ledger)),
        within(encryption_key(ledger)),
    );
    let writer = if ledger.writer_alive() {
        Ok(())
    } else {
        Err("the ledger's writer task has stopped: restart the server".to_owned())
    };
    BTreeMap::from([
        ("database", CheckView::from(database)),
        ("writer", CheckView::from(writer)),
        ("projections", CheckView::from(projections)),
        ("encryption_key", CheckView::from(key)),
    ])
}

async fn within(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from the database within {} s",
                CHECK_TIMEOUT.as_secs()
            ))
        })
}

async fn database(ledger: &Ledger) -> Result<(), String> {
    sqlx::query_scalar::<_, i32>("select 1")
        .fetch_one(ledger.store().database().pool())
        .await
        .map(drop)
        .map_err(|error| format!("the database does not answer: {error}"))
}

async fn projections(ledger: &Ledger) -> Result<(), String> {
    let checkpoints = mcp_projections::schema::checkpoints(ledger.store())
        .await
        .map_err(|error| format!("cannot read the projection checkpoints: {error}"))?;
    projections_ready(&checkpoints)
}

/// Every projection at this build's version and within `MAX_PROJECTION_LAG` of the head.
fn projections_ready(checkpoints: &[mcp_projections::schema::Checkpoint]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, version) in mcp_projections::schema::PROJECTIONS {
        match checkpoints.iter().find(|c| c.name == *name) {
            None => problems.push(format!("projection {name} has no checkpoint")),
            Some(c) if c.version != *version => problems.push(format!(
                "projection {name} is at version {}, this server needs {version} \
                 (restart the server or run `mcp-manager replay`)",
                c.version
            )),
            Some(c) if c.head - c.position > MAX_PROJECTION_LAG => problems.push(format!(
                "projection {name} is {} events behind the log (at {}, head {})",
                c.head - c.position,
                c.position,
                c.head
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The configured keys must open every stored secret; otherwise every lease of those
/// integrations would fail to decrypt.
pub async fn encryption_key(ledger: &Ledger) -> Result<(), String> {
    let stored: Vec<String> =
        sqlx::query_scalar("select distinct key_id from integration_secrets order by key_id")
            .fetch_all(ledger.store().database().pool())
            .await
            .map_err(|error| format!("cannot read the secrets' key ids: {error}"))?;
    match ledger.keys() {
        Some(keys) => keys.check(&stored).map_err(|mismatch| mismatch.to_string()),
        None if stored.is_empty() => Ok(()),
        None => Err("this process holds no encryption key".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_projections::schema::{Checkpoint, PROJECTIONS};

    fn at(position: i64, head: i64) -> Vec<Checkpoint> {
        PROJECTIONS
            .iter()
            .map(|(name, version)| Checkpoint {
                name: (*name).to_owned(),
                position,
                version: *version,
                head,
            })
            .collect()
    }

    #[test]
    fn projections_within_the_bound_are_ready() {
        assert!(projections_ready(&at(10, 10)).is_ok());
        assert!(projections_ready(&at(0, MAX_PROJECTION_LAG)).is_ok());
    }

    #[test]
    fn projections_too_far_behind_are_named() {
        let error = projections_ready(&at(0, MAX_PROJECTION_LAG + 1)).unwrap_err();
        assert!(error.contains("1001 events behind"), "{error}");
    }

    #[test]
    fn a_missing_or_outdated_projection_is_named() {
        let mut checkpoints = at(5, 5);
        checkpoints[0].version += 1;
        checkpoints.pop();
        let error = projections_ready(&checkpoints).unwrap_err();
        assert!(error.contains(&format!("projection {} is at version", PROJECTIONS[0].0)));
        let last = PROJECTIONS.last().unwrap().0;
        assert!(error.contains(&format!("projection {last} has no checkpoint")));
    }
}

//! A person's own activity: their audit records, newest first.

use super::openapi::{AccountUnprocessable, ActivityRecord, SessionRefusals, Stack};
use super::{AccountError, AppState, SignedIn};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::Timestamp;
use mcp_projections::queries;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `GET /api/account/activity?limit=L` (1–200, default 50).
#[utoipa::path(
    get,
    path = "/api/account/activity",
    tag = "account",
    operation_id = "account_activity",
    security(("account_session" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200,
            description = "At most this many records (default 50)."),
    ),
    responses(
        (status = 200, description = "The person's own audit records, newest first.",
            body = Vec<ActivityRecord>),
        (status = 422, description = "`limit` is not an integer from 1 to 200.",
            body = AccountUnprocessable),
        SessionRefusals,
        Stack,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    who: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AccountError> {
    let limit = match query.get("limit") {
        None => 50,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                AccountError::field("limit", "The limit must be an integer from 1 to 200.")
            })?,
    };
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let rows = queries::audit(&mut conn, Some(who.user_id()), None, limit).await?;
    let list: Vec<_> = rows
        .iter()
        .map(|a| {
            json!({
                "id": a.position,
                "action": a.action,
                "entity_type": a.entity_type,
                "entity_id": a.entity_id,
                "details": serde_json::from_str::<Value>(&a.details).unwrap_or(Value::Null),
                "ip": a.ip,
                "user_agent": a.user_agent,
                "created_at": Timestamp::from_micros(a.created_at),
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

//! `GET /api/mcp/me`: who the token belongs to and what they can lease.

use super::error::ApiError;
use super::openapi::Refusals;
use super::request::{perform, RequestCaller};
use super::views::MeView;
use super::AppState;
use crate::commands::mcp::Me;
use axum::extract::State;
use axum::Json;

/// Who the token belongs to and what they can lease.
#[utoipa::path(
    get,
    path = "/api/mcp/me",
    tag = "leases",
    operation_id = "me",
    security(("leases_token" = []), ("audit_token" = [])),
    responses(
        (status = 200, description = "The token's user, their organizations and the services \
            they can lease now.", body = MeView),
        Refusals,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn me(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Json<MeView>, ApiError> {
    let profile = perform(&state, caller, Me).await?;
    Ok(Json(profile.into()))
}

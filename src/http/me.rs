//! `GET /api/mcp/me`: who the token belongs to and what they can lease.

use super::error::ApiError;
use super::request::{perform, RequestCaller};
use super::views::MeView;
use super::AppState;
use crate::commands::mcp::Me;
use axum::extract::State;
use axum::Json;

#[tracing::instrument(skip_all)]
pub async fn me(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Json<MeView>, ApiError> {
    let profile = perform(&state, caller, Me).await?;
    Ok(Json(profile.into()))
}

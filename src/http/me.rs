//! `GET /api/mcp/me`: who the token belongs to and what they can lease.

use super::error::ApiError;
use super::request::RequestCaller;
use super::AppState;
use crate::commands::api::{ApiAction, ApiCall, ApiReply};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[tracing::instrument(skip_all)]
pub async fn me(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Response, ApiError> {
    let call = ApiCall {
        caller,
        action: ApiAction::Me,
    };
    match state.ledger.submit(call).await? {
        Ok(ApiReply::Me(view)) => Ok(Json(view).into_response()),
        Ok(_) => Err(ApiError::unexpected_reply()),
        Err(refusal) => Err(ApiError::Refused(refusal)),
    }
}

//! One error type for the HTTP layer, speaking the JSON shapes of CONTRACT.md.

use crate::commands::mcp::{Refusal, RequestRejection};
use crate::domain::{AuthRefusal, DomainError};
use crate::ledger::CommandError;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request refused: {0:?}")]
    Refused(Refusal),
    #[error("command failed: {0}")]
    Failed(#[from] CommandError),
    /// Query values out of range or malformed (after authentication): 422, Laravel style.
    #[error("invalid request: {0:?}")]
    Invalid(std::collections::BTreeMap<String, Vec<String>>),
    /// Nothing at this address (a tile the signed tree does not hold): 404 with this message.
    #[error("not found: {0}")]
    NotFound(&'static str),
}

fn body(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// A Laravel-style validation response: the first message (and how many more), then all.
pub fn validation(errors: &std::collections::BTreeMap<String, Vec<String>>) -> Response {
    let mut messages = errors.values().flatten();
    let first = messages.next().cloned().unwrap_or_default();
    let more = messages.count();
    let message = match more {
        0 => first,
        1 => format!("{first} (and 1 more error)"),
        n => format!("{first} (and {n} more errors)"),
    };
    body(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "message": message, "errors": errors }),
    )
}

/// A refusal's label on `mcp_auth_failures_total`.
pub(crate) fn auth_reason(reason: AuthRefusal) -> &'static str {
    match reason {
        AuthRefusal::Missing => "missing",
        AuthRefusal::Invalid => "invalid",
        AuthRefusal::Expired => "expired",
        AuthRefusal::Inactive => "inactive",
        AuthRefusal::UsageLimitExceeded => "usage_limit_exceeded",
    }
}

fn refusal(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::Auth(reason) => {
            metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => auth_reason(*reason))
                .increment(1);
            let mut response = body(
                StatusCode::UNAUTHORIZED,
                json!({ "message": "Unauthenticated", "error": reason.to_string() }),
            );
            // For the flood guard, which budgets refusals (`flood.rs`).
            response.extensions_mut().insert(*reason);
            response
        }
        Refusal::Rejected(RequestRejection::Validation(errors)) => validation(errors),
        Refusal::Rejected(RequestRejection::Malformed { status, message }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            let code = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::REQUEST_TIMEOUT => "request_timeout",
                _ => "invalid_json",
            };
            let mut response = body(status, json!({ "message": message, "error": code }));
            if matches!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
            ) {
                // The rest of the body was not read: the connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
        Refusal::Domain(error) => domain(error),
    }
}

fn domain(error: &DomainError) -> Response {
    match error {
        DomainError::LeaseNotOwned => body(
            StatusCode::FORBIDDEN,
            json!({ "message": "This action is unauthorized." }),
        ),
        DomainError::InsufficientScope => body(
            StatusCode::FORBIDDEN,
            json!({ "message": "This action is unauthorized.", "error": "insufficient_scope" }),
        ),
        DomainError::LeaseNotFound => body(
            StatusCode::NOT_FOUND,
            json!({ "message": "Lease not found", "error": "not_found" }),
        ),
        DomainError::LeaseCannotBeRenewed { reason } => body(
            StatusCode::FORBIDDEN,
            json!({ "message": "Lease cannot be renewed", "error": reason }),
        ),
        DomainError::MaxRenewalsReached => body(
            StatusCode::FORBIDDEN,
            json!({ "message": "Maximum renewal count reached", "error": "max_renewals_reached" }),
        ),
        DomainError::NoCredentials { missing_services } => body(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "message": "No credentials available for requested services",
                "missing_services": missing_services,
            }),
        ),
        other => body(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "message": other.to_string(), "error": "invalid_request" }),
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Refused(r) => refusal(&r),
            ApiError::Invalid(errors) => validation(&errors),
            ApiError::NotFound(message) => body(
                StatusCode::NOT_FOUND,
                json!({ "message": message, "error": "not_found" }),
            ),
            ApiError::Failed(CommandError::Unavailable(reason)) => {
                // The request id is on the enclosing span; details stay in the log.
                tracing::error!(%reason, "the ledger is unavailable");
                body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "message": "Service Unavailable", "error": "unavailable" }),
                )
            }
            ApiError::Failed(error) => {
                tracing::error!(%error, "request failed");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "message": "Server Error", "error": "internal" }),
                )
            }
        }
    }
}

/// A JSON error with its `error` code (for the HTTP stack's own refusals).
pub fn plain(status: StatusCode, message: &str, code: &str) -> Response {
    body(status, json!({ "message": message, "error": code }))
}

pub async fn not_found() -> Response {
    body(
        StatusCode::NOT_FOUND,
        json!({ "message": "Not Found", "error": "not_found" }),
    )
}

pub async fn method_not_allowed() -> Response {
    body(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "message": "Method Not Allowed", "error": "method_not_allowed" }),
    )
}

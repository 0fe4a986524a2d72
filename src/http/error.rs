//! One error type for the HTTP layer, speaking the JSON shapes of CONTRACT.md. The bodies are
//! types, so that the OpenAPI document describes what is sent (`openapi.rs`).

use crate::commands::mcp::{Refusal, RequestRejection};
use crate::domain::{AuthRefusal, DomainError};
use crate::ledger::CommandError;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request refused: {0:?}")]
    Refused(Refusal),
    #[error("command failed: {0}")]
    Failed(#[from] CommandError),
    /// Query values out of range or malformed (after authentication): 422, Laravel style.
    #[error("invalid request: {0:?}")]
    Invalid(BTreeMap<String, Vec<String>>),
    /// Nothing at this address (a tile the signed tree does not hold): 404 with this message.
    #[error("not found: {0}")]
    NotFound(&'static str),
}

/// Every error but a validation error: what happened, and a machine-readable code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(examples("Lease not found"))]
    pub message: String,
    /// `not_found`, `invalid_json`, `invalid_path`, `unsupported_media_type`,
    /// `payload_too_large`, `request_timeout`, `too_many_attempts`, `unavailable`, `internal`, …
    #[schema(examples("not_found"))]
    pub error: String,
}

/// A refused bearer token (401).
#[derive(Debug, Serialize, ToSchema)]
pub struct Unauthenticated {
    /// Always `Unauthenticated`.
    #[schema(value_type = String, pattern = "^Unauthenticated$")]
    pub message: &'static str,
    pub error: AuthRefusal,
}

/// A refusal after authentication (403): another user's lease (no `error`), a token of the
/// wrong scope (`insufficient_scope`), a lease that cannot be renewed (`error`: `Lease has
/// expired`, `Lease has been revoked`, `Lease is not renewable`) or out of renewals
/// (`max_renewals_reached`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Forbidden {
    #[schema(examples("This action is unauthorized."))]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples("insufficient_scope"))]
    pub error: Option<String>,
}

/// Invalid fields (422, Laravel style): the first message (and how many more), then every
/// message by field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrors {
    #[schema(examples("The services field is required."))]
    pub message: String,
    pub errors: BTreeMap<String, Vec<String>>,
}

/// No requested service resolves to a credential (422): no lease was made.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoCredentials {
    /// Always `No credentials available for requested services`.
    pub message: &'static str,
    pub missing_services: Vec<String>,
}

/// What a refused lease request may answer with 422.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LeaseUnprocessable {
    Validation(ValidationErrors),
    NoCredentials(NoCredentials),
}

fn body(status: StatusCode, value: impl Serialize) -> Response {
    (status, Json(value)).into_response()
}

fn error_body(status: StatusCode, message: impl Into<String>, code: impl Into<String>) -> Response {
    body(
        status,
        ErrorBody {
            message: message.into(),
            error: code.into(),
        },
    )
}

fn forbidden(message: &str, code: Option<&str>) -> Response {
    body(
        StatusCode::FORBIDDEN,
        Forbidden {
            message: message.to_owned(),
            error: code.map(str::to_owned),
        },
    )
}

/// A Laravel-style validation response: the first message (and how many more), then all.
pub fn validation(errors: &BTreeMap<String, Vec<String>>) -> Response {
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
        ValidationErrors {
            message,
            errors: errors.clone(),
        },
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
                Unauthenticated {
                    message: "Unauthenticated",
                    error: *reason,
                },
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
            let mut response = error_body(status, message.as_str(), code);
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
        DomainError::LeaseNotOwned => forbidden("This action is unauthorized.", None),
        DomainError::InsufficientScope => {
            forbidden("This action is unauthorized.", Some("insufficient_scope"))
        }
        DomainError::LeaseNotFound => {
            error_body(StatusCode::NOT_FOUND, "Lease not found", "not_found")
        }
        DomainError::LeaseCannotBeRenewed { reason } => {
            forbidden("Lease cannot be renewed", Some(reason))
        }
        DomainError::MaxRenewalsReached => forbidden(
            "Maximum renewal count reached",
            Some("max_renewals_reached"),
        ),
        DomainError::NoCredentials { missing_services } => body(
            StatusCode::UNPROCESSABLE_ENTITY,
            NoCredentials {
                message: "No credentials available for requested services",
                missing_services: missing_services.clone(),
            },
        ),
        other => error_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            other.to_string(),
            "invalid_request",
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Refused(r) => refusal(&r),
            ApiError::Invalid(errors) => validation(&errors),
            ApiError::NotFound(message) => error_body(StatusCode::NOT_FOUND, message, "not_found"),
            ApiError::Failed(CommandError::Unavailable(reason)) => {
                // The request id is on the enclosing span; details stay in the log.
                tracing::error!(%reason, "the ledger is unavailable");
                error_body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "unavailable",
                )
            }
            ApiError::Failed(error) => {
                tracing::error!(%error, "request failed");
                error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server Error",
                    "internal",
                )
            }
        }
    }
}

/// A JSON error with its `error` code (for the HTTP stack's own refusals).
pub fn plain(status: StatusCode, message: &str, code: &str) -> Response {
    error_body(status, message, code)
}

pub async fn not_found() -> Response {
    error_body(StatusCode::NOT_FOUND, "Not Found", "not_found")
}

pub async fn method_not_allowed() -> Response {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "method_not_allowed",
    )
}

//! The account API's errors, in the contract's shapes (Laravel's, as the original answers).

use crate::commands::mcp::RequestRejection;
use crate::domain::DomainError;
use crate::ledger::CommandError;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No session, or one that ended, expired or belongs to a disabled user.
    #[error("unauthenticated")]
    Unauthenticated,
    /// A refused sign-in: the same answer whatever was wrong.
    #[error("bad credentials")]
    BadCredentials,
    #[error("CSRF token mismatch")]
    Csrf,
    #[error("too many failed sign-ins")]
    Throttled(Duration),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("invalid: {0:?}")]
    Invalid(BTreeMap<String, Vec<String>>),
    #[error("malformed request: {0:?}")]
    Malformed(RequestRejection),
    #[error(transparent)]
    Failed(CommandError),
}

impl AccountError {
    /// A 422 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }
}

impl From<CommandError> for AccountError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(DomainError::NotYours) => Self::NotFound,
            CommandError::Domain(DomainError::NotPermitted) => Self::Forbidden,
            CommandError::Domain(DomainError::SessionEnded) => Self::Unauthenticated,
            other => Self::Failed(other),
        }
    }
}

impl From<sqlx::Error> for AccountError {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(CommandError::from(error))
    }
}

fn body(status: StatusCode, value: serde_json::Value) -> Response {
    (status, Json(value)).into_response()
}

impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated => body(
                StatusCode::UNAUTHORIZED,
                json!({ "message": "Unauthenticated" }),
            ),
            Self::BadCredentials => body(
                StatusCode::UNAUTHORIZED,
                json!({ "message": "These credentials do not match our records." }),
            ),
            Self::Csrf => body(
                StatusCode::from_u16(419).expect("419 is a status code"),
                json!({ "message": "CSRF token mismatch." }),
            ),
            Self::Throttled(wait) => {
                let seconds = wait.as_secs().max(1);
                let mut response = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({
                        "message": format!(
                            "Too many sign-in attempts. Please try again in {seconds} seconds."
                        ),
                    }),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            Self::NotFound => body(StatusCode::NOT_FOUND, json!({ "message": "Not found" })),
            Self::Forbidden => body(
                StatusCode::FORBIDDEN,
                json!({ "message": "This action is unauthorized." }),
            ),
            Self::Invalid(errors) => crate::http::error::validation(&errors),
            Self::Malformed(RequestRejection::Validation(errors)) => {
                crate::http::error::validation(&errors)
            }
            Self::Malformed(RequestRejection::Malformed { status, message }) => body(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                json!({ "message": message }),
            ),
            Self::Failed(CommandError::Domain(error)) => body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": error.to_string() }),
            ),
            Self::Failed(CommandError::Unavailable(reason)) => {
                tracing::error!(%reason, "the ledger is unavailable");
                body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "message": "Service Unavailable" }),
                )
            }
            Self::Failed(error) => {
                tracing::error!(%error, "account request failed");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "message": "Server Error" }),
                )
            }
        }
    }
}

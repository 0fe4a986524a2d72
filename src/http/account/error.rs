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

impl AccountError {
    /// The answer's status: Laravel's, as the original answers.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Csrf => StatusCode::from_u16(419).expect("419 is a status code"),
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Invalid(_)
            | Self::Malformed(RequestRejection::Validation(_))
            | Self::Failed(CommandError::Domain(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Malformed(RequestRejection::Malformed { status, .. }) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Failed(CommandError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a person reads: the body's `message`, or each field's messages of a 422. A failure
    /// of the server is logged here and described to the client in general words only.
    pub fn messages(&self) -> Vec<String> {
        let one = |text: &str| vec![text.to_owned()];
        match self {
            Self::Unauthenticated => one("Unauthenticated"),
            Self::BadCredentials => one("These credentials do not match our records."),
            Self::Csrf => one("CSRF token mismatch."),
            Self::Throttled(wait) => vec![format!(
                "Too many sign-in attempts. Please try again in {} seconds.",
                wait.as_secs().max(1)
            )],
            Self::NotFound => one("Not found"),
            Self::Forbidden => one("This action is unauthorized."),
            Self::Invalid(errors) | Self::Malformed(RequestRejection::Validation(errors)) => {
                errors.values().flatten().cloned().collect()
            }
            Self::Malformed(RequestRejection::Malformed { message, .. }) => vec![message.clone()],
            Self::Failed(CommandError::Domain(error)) => vec![error.to_string()],
            Self::Failed(CommandError::Unavailable(reason)) => {
                tracing::error!(%reason, "the ledger is unavailable");
                one("Service Unavailable")
            }
            Self::Failed(error) => {
                tracing::error!(%error, "account request failed");
                one("Server Error")
            }
        }
    }
}

impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Invalid(errors) | Self::Malformed(RequestRejection::Validation(errors)) => {
                crate::http::error::validation(&errors)
            }
            other => {
                let message = other.messages().join(" ");
                let mut response = body(status, json!({ "message": message }));
                if let Self::Throttled(wait) = other {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
                }
                response
            }
        }
    }
}

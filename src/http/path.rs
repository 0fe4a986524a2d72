//! Path parameters whose refusal is JSON like every other error (axum's own `Path` rejection is
//! a `text/plain` 400, e.g. for `%FF`, which is not UTF-8).

use super::error::plain;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;

/// The one path parameter of a route (a lease id), as text.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                tracing::debug!(%error, "refusing a path parameter");
                Err(plain(
                    StatusCode::BAD_REQUEST,
                    "The request path is not valid: it must be UTF-8 once percent-decoded.",
                    "invalid_path",
                ))
            }
            Err(error) => {
                // A route without the parameter its handler expects: a bug, not a bad request.
                tracing::error!(%error, "a handler expects a path parameter its route lacks");
                Err(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server Error",
                    "internal",
                ))
            }
        }
    }
}

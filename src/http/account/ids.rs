//! The account routes' ids, checked before anything else, as Laravel's route constraints
//! (`whereNumber`) would: an organization, integration, token or user id is an integer, a lease
//! id is text, and a path whose id is anything else names nothing, so it is `404 Not found` (in
//! JSON; axum's own `Path` rejection is a plain-text 400).

use super::AccountError;
use axum::extract::{RawPathParams, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The one path parameter that is not an integer id.
const LEASE_ID: &str = "lease_id";

/// A route layer: answers 404 when an id of the matched route is not what its handler reads.
pub async fn well_formed(
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    if !ids_are_ids(params) {
        return AccountError::NotFound.into_response();
    }
    next.run(request).await
}

/// Whether every id of a matched route is what its handler reads: parsed as `Path<i64>` parses
/// them; percent-decoding to something that is not UTF-8 is the rejection here.
pub fn ids_are_ids(
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
) -> bool {
    params.is_ok_and(|params| {
        params
            .iter()
            .all(|(name, value)| name == LEASE_ID || value.parse::<i64>().is_ok())
    })
}

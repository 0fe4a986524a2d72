//! What a request carries besides its route: the caller (token hash, address, user agent,
//! request id), its JSON body, and the per-request trace span.

use super::error::ApiError;
use super::AppState;
use crate::commands::mcp::{Answer, Caller, McpAction, McpRequest, Rejected, RequestRejection};
use crate::tokens::hash_token;
use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use tracing::Instrument;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;
pub(crate) const USER_AGENT_LIMIT: usize = 512;

#[derive(Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The client's `x-request-id` if it is a sensible id (1 to 64 of `A-Z a-z 0-9 . _ -`), so a
/// request can be followed across a proxy and this server; anything else is replaced.
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let id = headers.get(REQUEST_ID)?.to_str().ok()?;
    let well_formed = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    well_formed.then(|| id.to_owned())
}

const REQUEST_ID: &str = "x-request-id";

/// Routes probed every few seconds by orchestrators and scrapers: logged at debug, not info.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Gives every request an id (the client's if well-formed, else a fresh UUID; echoed as
/// `x-request-id`) and a span with method, path and id. Logs status and latency (whole
/// microseconds); never headers, query strings or bodies.
pub async fn trace(mut request: Request, next: Next) -> Response {
    let id =
        client_request_id(request.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let probe = is_probe(request.uri().path());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    );
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_us = started.elapsed().as_micros() as u64;
    span.in_scope(|| {
        if probe {
            tracing::debug!(status, latency_us, "request finished")
        } else {
            tracing::info!(status, latency_us, "request finished")
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The token of an `Authorization: Bearer <token>` header; the scheme in any letter case, as
/// Laravel accepts it (`bearer`, `BEARER`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller of a request; its token is hashed at once and never kept.
pub struct RequestCaller(pub Caller);

/// The bearer token a request sends, if it sends one.
pub fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCaller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let token_hash = bearer_of(&parts.headers).map(hash_token);

        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(USER_AGENT_LIMIT).collect());
        let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
        Ok(Self(Caller {
            token_hash,
            request_id,
            ip,
            user_agent,
        }))
    }
}

fn malformed(status: u16, message: &str) -> RequestRejection {
    RequestRejection::Malformed {
        status,
        message: message.to_owned(),
    }
}

/// Reads an optional JSON object body. An empty body is `None` (the guide's client renews with
/// no body and no content type), and so is JSON `null` (Laravel reads it as no input); anything
/// else must be `application/json` and an object.
pub async fn json_object(
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<Map<String, Value>>, RequestRejection> {
    let bytes = to_bytes(body, BODY_LIMIT).await.map_err(|error| {
        if caused_by::<http_body_util::LengthLimitError>(&error) {
            malformed(413, "The request body is too large (64 KiB at most).")
        } else if caused_by::<super::limits::BodyTimedOut>(&error) {
            malformed(408, "The request body did not arrive in time.")
        } else {
            malformed(400, "The request body could not be read.")
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if !json_type {
        return Err(malformed(
            415,
            "The request body must be sent as application/json.",
        ));
    }
    // serde_json refuses nesting deeper than 128 levels with an error, not a stack overflow.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        Ok(_) => Err(malformed(400, "The request body must be a JSON object.")),
        Err(_) => Err(malformed(400, "The request body is not valid JSON.")),
    }
}

/// Whether an error or one of its causes is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<E>())
}

/// Submits one MCP action for the caller; a refusal becomes the error that renders it.
pub async fn perform<A: McpAction>(
    state: &AppState,
    caller: Caller,
    action: A,
) -> Result<A::Reply, ApiError> {
    match state.ledger.submit(McpRequest { caller, action }).await? {
        Answer::Granted(reply) => Ok(reply),
        Answer::Refused(refusal) => Err(ApiError::Refused(refusal)),
    }
}

/// Authenticates (and records) a request whose body was refused, then answers with the refusal.
pub async fn reject(state: &AppState, caller: Caller, rejection: RequestRejection) -> ApiError {
    match perform(state, caller, Rejected(rejection)).await {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

//! Who is signed in: the `SignedIn` extractor reads the session cookie, finds its session (by
//! the cookie's hash) in the sessions projection, checks it has not ended, expired or idled out
//! and that its user is enabled, checks the CSRF token of state-changing requests, and records
//! activity when the last record is stale. And `Body`, the JSON object of a request.

use super::{AccountError, AppState};
use crate::accounts::session::{csrf_matches, session_hash, well_formed, COOKIE};
use crate::commands::accounts::RefreshSession;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{COOKIE as COOKIE_HEADER, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use mcp_events::Metadata;
use mcp_projections::queries;
use mcp_projections::rows::{Cell, SessionRow, UserRow};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::net::SocketAddr;

/// The header a state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone)]
pub struct SignedIn {
    pub user: UserRow,
    pub cookie: SecretString,
    pub session_hash: String,
    /// Who did it, from where: the metadata of the events this request records.
    pub metadata: Metadata,
}

impl SignedIn {
    pub fn user_id(&self) -> i64 {
        self.user.id
    }

    pub fn csrf_token(&self) -> String {
        crate::accounts::session::csrf_token(self.cookie.expose_secret())
    }
}

/// The value of the session cookie, if the request sends one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The metadata of an event recorded for this request (before anyone is signed in).
fn request_metadata(parts: &Parts, actor: Option<i64>) -> Metadata {
    Metadata {
        actor: actor.map(|id| format!("user:{id}")),
        token_id: None,
        request_id: parts
            .extensions
            .get::<crate::http::request::RequestId>()
            .map(|id| id.0.clone()),
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                ua.chars()
                    .take(crate::http::request::USER_AGENT_LIMIT)
                    .collect()
            }),
    }
}

/// The metadata of a request nobody is signed in for yet (a sign-in).
pub struct Anonymous(pub Metadata);

impl<S: Send + Sync> FromRequestParts<S> for Anonymous {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_metadata(parts, None)))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AccountError;

    /// The account API's way: the CSRF token of a state-changing request is in `X-CSRF-Token`.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AccountError> {
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        Self::resolve(parts, state, sent).await
    }
}

impl SignedIn {
    /// The request's session: the cookie's session, not ended, expired or idle, of an enabled
    /// user; for a state-changing request, `csrf` (from a header or a form field) must be the
    /// session's token. Records activity when the last record is stale.
    pub async fn resolve(
        parts: &Parts,
        state: &AppState,
        csrf: Option<&str>,
    ) -> Result<Self, AccountError> {
        let cookie = session_cookie(&parts.headers)
            .filter(|c| well_formed(c))
            .ok_or(AccountError::Unauthenticated)?;
        let hash = session_hash(&cookie);
        let accounts = &state.accounts;
        let now = state.ledger.now().as_micros();
        let mut conn = state.ledger.store().database().pool().acquire().await?;
        let session: SessionRow = queries::by_key(&mut conn, Cell::Text(Some(hash.clone())))
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        let idle_until = session.last_seen_at + accounts.idle_timeout * 1_000_000;
        if session.ended_at.is_some() || now >= session.expires_at || now >= idle_until {
            return Err(AccountError::Unauthenticated);
        }
        let user = queries::user(&mut conn, session.user_id)
            .await?
            .filter(|user| !user.disabled)
            .ok_or(AccountError::Unauthenticated)?;
        drop(conn);
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_matches(&cookie, csrf.unwrap_or_default()) {
            return Err(AccountError::Csrf);
        }
        let metadata = request_metadata(parts, Some(user.id));
        if now - session.last_seen_at >= accounts.refresh_after() * 1_000_000 {
            state
                .ledger
                .submit(RefreshSession {
                    session_hash: hash.clone(),
                    metadata: metadata.clone(),
                })
                .await?;
        }
        Ok(Self {
            user,
            cookie: cookie.into(),
            session_hash: hash,
            metadata,
        })
    }
}

/// A request's JSON object body (an empty body is an empty object).
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AccountError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, AccountError> {
        let (parts, body) = request.into_parts();
        crate::http::request::json_object(&parts.headers, body)
            .await
            .map(|object| Self(object.unwrap_or_default()))
            .map_err(AccountError::Malformed)
    }
}

impl Body {
    /// A required string member.
    pub fn text(&self, field: &str) -> Result<String, AccountError> {
        match self.0.get(field) {
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(AccountError::field(
                field,
                format!("The {field} field is required."),
            )),
            Some(_) => Err(AccountError::field(
                field,
                format!("The {field} field must be a string."),
            )),
        }
    }

    /// An optional string member.
    pub fn optional_text(&self, field: &str) -> Result<Option<String>, AccountError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.text(field).map(Some),
        }
    }

    /// An optional positive integer member.
    pub fn optional_positive(&self, field: &str) -> Result<Option<i64>, AccountError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_i64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                AccountError::field(field, format!("The {field} must be a positive integer."))
            }),
        }
    }

    /// The `credentials` member: a non-empty JSON object.
    pub fn credentials(&self) -> Result<Map<String, Value>, AccountError> {
        match self.0.get("credentials") {
            Some(Value::Object(map)) if !map.is_empty() => Ok(map.clone()),
            Some(Value::Object(_)) | None | Some(Value::Null) => Err(AccountError::field(
                "credentials",
                "The credentials field is required.",
            )),
            Some(_) => Err(AccountError::field(
                "credentials",
                "The credentials must be a JSON object.",
            )),
        }
    }
}

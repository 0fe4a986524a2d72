//! Signing in and out of the console: the same checks, throttle and session as
//! `POST /api/account/login`, with the cookie set on a redirect to the dashboard.

use super::layout::{bare_page, problems};
use super::{see_other, ConsoleError, Submission};
use crate::http::account::sign_in::{cleared_cookie, no_store, session_cookie, sign_in};
use crate::http::account::{AccountError, Anonymous};
use crate::http::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{HOST, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maud::{html, Markup};
use secrecy::SecretString;

fn sign_in_page(email: &str, refusal: Option<&AccountError>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            @if let Some(error) = refusal {
                (problems(&error.messages()))
            }
            form.card method="post" action="/sign-in" {
                label for="email" { "E-mail" }
                input #email type="email" name="email" value=(email) autocomplete="username"
                    required autofocus[email.is_empty()];
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password"
                    required autofocus[!email.is_empty()];
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /sign-in`: the form (or the dashboard, for someone already signed in).
pub async fn form(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    match super::Visitor::from_request_parts(&mut parts, &state).await {
        Ok(_) => see_other("/"),
        Err(_) => no_store(sign_in_page("", None).into_response()),
    }
}

/// `POST /sign-in` (`email`, `password`): a session and the dashboard, or the form again with
/// the one answer for every refusal (429 with `Retry-After` when throttled).
pub async fn submit(
    State(state): State<AppState>,
    Anonymous(metadata): Anonymous,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // No session yet, so no CSRF token: a form posted from another site (which would sign the
    // visitor in to someone else's account) is told apart by its `Origin`.
    if !same_origin(&headers) {
        let refusal = AccountError::Forbidden;
        return (refusal.status(), sign_in_page("", Some(&refusal))).into_response();
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let email = field("email").trim().to_owned();
    let password = field("password");
    if email.is_empty() || password.is_empty() {
        let missing = AccountError::field("email", "Enter your e-mail and password.");
        let page = sign_in_page(&email, Some(&missing));
        return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
    }
    match sign_in(&state, metadata, &email, SecretString::from(password)).await {
        Ok((_, cookie)) => {
            let mut response = see_other("/");
            response
                .headers_mut()
                .insert(SET_COOKIE, session_cookie(&state.accounts, &cookie));
            no_store(response)
        }
        Err(refusal) => {
            let mut response =
                (refusal.status(), sign_in_page(&email, Some(&refusal))).into_response();
            if let AccountError::Throttled(wait) = refusal {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            }
            no_store(response)
        }
    }
}

/// Whether a request's `Origin`, when it sends one, is this server as the request addressed it
/// (`Host`). Browsers send `Origin` with every form they post.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `POST /sign-out`: ends the session and forgets the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    Submission { who, .. }: Submission,
) -> Result<Response, ConsoleError> {
    crate::http::account::sign_in::sign_out(&state, &who).await?;
    let mut response = see_other("/sign-in");
    response
        .headers_mut()
        .insert(SET_COOKIE, cleared_cookie(&state.accounts));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn a_sign_in_from_another_origin_is_told_apart() {
        assert!(
            same_origin(&headers(&[("host", "127.0.0.1:3978")])),
            "no Origin: not a browser's cross-site post"
        );
        assert!(same_origin(&headers(&[
            ("host", "mcp.example.com"),
            ("origin", "https://mcp.example.com")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:3978"),
            ("origin", "http://127.0.0.1:3978")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "mcp.example.com"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:3978"),
            ("origin", "http://127.0.0.1:4000")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "mcp.example.com"),
            ("origin", "null")
        ])));
        assert!(
            !same_origin(&headers(&[("origin", "https://mcp.example.com")])),
            "no Host to compare"
        );
    }
}

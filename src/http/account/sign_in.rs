//! Signing in and out, and the signed-in person's profile.

use super::session::{Anonymous, Body};
use super::{AccountError, Accounts, AppState, SignedIn};
use crate::accounts::session::{csrf_token, NewSession, COOKIE};
use crate::commands::accounts::{EndSession, RecordSignInFailure, StartSession};
use crate::random::{Entropy, OsEntropy};
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::Metadata;
use mcp_projections::queries;
use mcp_projections::rows::{PasswordRow, UserRow};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::time::Instant;

/// `POST /api/account/login {email, password}`.
#[utoipa::path(
    post,
    path = "/api/account/login",
    tag = "account",
    operation_id = "account_login",
    request_body(content = super::openapi::LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in: a new session. Its cookie is in `Set-Cookie`; \
            send `csrf_token` as `X-CSRF-Token` with every `POST`, `PATCH` and `DELETE`.",
            body = super::openapi::SignedInView,
            headers(
                ("Set-Cookie" = String, description = "`mcp_session=<64 hex digits>; HttpOnly; \
                    SameSite=Lax; Path=/; Max-Age=<session lifetime>` (and `Secure` when the \
                    server is configured so)."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        (status = 401, description = "A wrong e-mail or password, or a disabled user: the same \
            answer (`These credentials do not match our records.`), in about the same time.",
            body = super::openapi::AccountMessage),
        (status = 429, description = "Too many failed sign-ins for this e-mail or from this \
            address within the window; nothing was checked.",
            body = super::openapi::AccountMessage,
            headers(("Retry-After" = u64, description = "Seconds until a sign-in is allowed \
                again."))),
        super::openapi::BodyRefusals,
        super::openapi::Stack,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Anonymous(metadata): Anonymous,
    body: Body,
) -> Result<Response, AccountError> {
    let email = body.text("email")?;
    let password = SecretString::from(body.text("password")?);
    let (user, cookie) = sign_in(&state, metadata, &email, password).await?;
    let mut response = Json(json!({
        "user_id": user.id,
        "email": user.email,
        "name": user.name,
        "csrf_token": csrf_token(cookie.expose_secret()),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state.accounts, &cookie));
    // Nothing here may be cached by a proxy: it holds the session.
    Ok(no_store(response))
}

/// Checks an e-mail and password (throttled, recorded when refused, the same answer and about
/// the same time whatever was wrong) and starts a session: the user and the session's cookie.
pub async fn sign_in(
    state: &AppState,
    metadata: Metadata,
    email: &str,
    password: SecretString,
) -> Result<(UserRow, SecretString), AccountError> {
    let address = metadata.ip.clone();
    let accounts = &state.accounts;
    accounts
        .throttle
        .check(email, address.as_deref(), Instant::now())
        .map_err(AccountError::Throttled)?;

    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let user = queries::user_by_email(&mut conn, email.trim()).await?;
    let phc = match &user {
        Some(user) => queries::rows_where_int_in::<PasswordRow>(&mut conn, "user_id", &[user.id])
            .await?
            .pop()
            .map(|row| row.phc),
        None => None,
    };
    drop(conn);
    // The password is checked even for a disabled user, so the answer takes the same time.
    let matched = accounts.passwords.verify(password, phc).await;
    let refused = match &user {
        None => Some("unknown_email"),
        Some(user) if user.disabled => Some("user_disabled"),
        Some(_) if !matched => Some("wrong_password"),
        Some(_) => None,
    };
    if let Some(reason) = refused {
        accounts
            .throttle
            .failed(email, address.as_deref(), Instant::now());
        state
            .ledger
            .submit(RecordSignInFailure {
                user_id: user.as_ref().map(|u| u.id),
                reason,
                metadata,
            })
            .await?;
        return Err(AccountError::BadCredentials);
    }
    let user = user.expect("a refusal above unless the user exists");
    let mut random = [0u8; 32];
    OsEntropy.fill(&mut random);
    let session = NewSession::from_bytes(&random);
    let started = state
        .ledger
        .submit(StartSession {
            user_id: user.id,
            session_hash: session.hash.clone(),
            lifetime: accounts.lifetime,
            metadata: Metadata {
                actor: Some(format!("user:{}", user.id)),
                ..metadata
            },
        })
        .await;
    match started {
        Ok(()) => Ok((user, session.cookie)),
        // Disabled between the check and the session.
        Err(crate::ledger::CommandError::Domain(crate::domain::DomainError::SessionEnded)) => {
            Err(AccountError::BadCredentials)
        }
        Err(other) => Err(other.into()),
    }
}

/// The `Set-Cookie` value that gives the browser its session.
pub fn session_cookie(accounts: &Accounts, cookie: &SecretString) -> HeaderValue {
    let attributes = cookie_attributes(accounts.secure_cookies);
    let set = format!(
        "{COOKIE}={}; {attributes}; Max-Age={}",
        cookie.expose_secret(),
        accounts.lifetime
    );
    HeaderValue::from_str(&set).expect("hex and fixed attributes")
}

/// The `Set-Cookie` value that tells the browser to forget its session.
pub fn cleared_cookie(accounts: &Accounts) -> HeaderValue {
    let attributes = cookie_attributes(accounts.secure_cookies);
    HeaderValue::from_str(&format!("{COOKIE}=; {attributes}; Max-Age=0")).expect("fixed attributes")
}

fn cookie_attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Lax; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Lax; Path=/"
    }
}

pub fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// Ends the signed-in session.
pub async fn sign_out(state: &AppState, who: &SignedIn) -> Result<(), AccountError> {
    state
        .ledger
        .submit(EndSession {
            session_hash: who.session_hash.clone(),
            reason: "signed_out",
            metadata: who.metadata.clone(),
        })
        .await?;
    Ok(())
}

/// `POST /api/account/logout`: ends the session, and tells the browser to forget the cookie.
#[utoipa::path(
    post,
    path = "/api/account/logout",
    tag = "account",
    operation_id = "account_logout",
    security(("account_session" = [])),
    params(super::openapi::CsrfHeader),
    responses(
        (status = 204, description = "The session ended for good.",
            headers(("Set-Cookie" = String, description = "`mcp_session=; …; Max-Age=0`: the \
                browser forgets the cookie."))),
        super::openapi::SessionRefusals,
        super::openapi::CsrfRefusal,
        super::openapi::Stack,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    who: SignedIn,
) -> Result<Response, AccountError> {
    sign_out(&state, &who).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cleared_cookie(&state.accounts));
    Ok(response)
}

/// `GET /api/account/me`.
#[utoipa::path(
    get,
    path = "/api/account/me",
    tag = "account",
    operation_id = "account_me",
    security(("account_session" = [])),
    responses(
        (status = 200, description = "The signed-in person, their organizations and the \
            session's CSRF token.", body = super::openapi::ProfileView,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        super::openapi::SessionRefusals,
        super::openapi::Stack,
    )
)]
pub async fn me(State(state): State<AppState>, who: SignedIn) -> Result<Response, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let memberships = queries::memberships_of_user(&mut conn, who.user_id()).await?;
    let mut organizations = Vec::new();
    for membership in memberships {
        if let Some(org) = queries::organization(&mut conn, membership.organization_id).await? {
            organizations.push(json!({
                "id": org.id,
                "name": org.name,
                "role": membership.role,
            }));
        }
    }
    Ok(no_store(
        Json(json!({
            "user_id": who.user.id,
            "email": who.user.email,
            "name": who.user.name,
            "organizations": organizations,
            "csrf_token": who.csrf_token(),
        }))
        .into_response(),
    ))
}

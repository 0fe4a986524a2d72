//! A person's own MCP tokens: listed with their usage, created (the token shown once), revoked.

use super::session::Body;
use super::{AccountError, AppState, SignedIn};
use crate::commands::accounts::{AsUser, Grant};
use crate::commands::tokens::{IssueToken, RevokeToken};
use crate::http::views::token_json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::TokenScope;
use mcp_projections::queries;
use secrecy::ExposeSecret;

/// `GET /api/account/tokens`.
pub async fn list(State(state): State<AppState>, who: SignedIn) -> Result<Response, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let tokens = queries::tokens_of_user(&mut conn, who.user_id()).await?;
    let now = state.ledger.now();
    let list: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
    Ok(Json(list).into_response())
}

/// `POST /api/account/tokens {name, scope?, expires_in?, max_uses?}`: 201 with the token, once.
pub async fn create(
    State(state): State<AppState>,
    who: SignedIn,
    body: Body,
) -> Result<Response, AccountError> {
    let name = body.text("name")?;
    let scope = match body.optional_text("scope")? {
        None => TokenScope::Leases,
        Some(text) => TokenScope::parse(&text)
            .ok_or_else(|| AccountError::field("scope", "The scope must be leases or audit."))?,
    };
    let expires_in = body.optional_positive("expires_in")?;
    let max_uses = body.optional_positive("max_uses")?;
    let issued = state
        .ledger
        .submit(IssueToken {
            user_id: who.user_id(),
            scope,
            name,
            expires_in,
            max_uses,
            metadata: who.metadata.clone(),
        })
        .await?;
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let row = queries::token(&mut conn, issued.id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let mut view = token_json(&row, state.ledger.now());
    view["token"] = issued.token.expose_secret().into();
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `DELETE /api/account/tokens/{id}`.
pub async fn revoke(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, AccountError> {
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Token(id),
            command: RevokeToken {
                token_id: id,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

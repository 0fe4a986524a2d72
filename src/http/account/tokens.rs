//! A person's own MCP tokens: listed with their usage, created (the token shown once), revoked.

use super::openapi::{
    AccountMessage, AccountUnprocessable, BodyRefusals, CreatedTokenView, CsrfHeader, CsrfRefusal,
    SessionRefusals, Stack, TokenRequest, TokenView,
};
use super::session::Body;
use super::{AccountError, AppState, SignedIn};
use crate::commands::accounts::{AsUser, Grant};
use crate::commands::tokens::{IssueToken, RevokeToken, MAX_EXPIRES_IN};
use crate::http::views::token_json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::TokenScope;
use mcp_projections::queries;
use secrecy::ExposeSecret;

/// `GET /api/account/tokens`.
#[utoipa::path(
    get,
    path = "/api/account/tokens",
    tag = "account",
    operation_id = "account_tokens",
    security(("account_session" = [])),
    responses(
        (status = 200, description = "The person's tokens with their usage, never the tokens.",
            body = Vec<TokenView>),
        SessionRefusals,
        Stack,
    )
)]
pub async fn list(State(state): State<AppState>, who: SignedIn) -> Result<Response, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let tokens = queries::tokens_of_user(&mut conn, who.user_id()).await?;
    let now = state.ledger.now();
    let list: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
    Ok(Json(list).into_response())
}

/// `POST /api/account/tokens {name, scope?, expires_in?, max_uses?}`: 201 with the token, once.
#[utoipa::path(
    post,
    path = "/api/account/tokens",
    tag = "account",
    operation_id = "account_create_token",
    security(("account_session" = [])),
    params(CsrfHeader),
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new token, shown this once.", body = CreatedTokenView,
            headers(("Cache-Control" = String, description = "`no-store`.")),
            links(
                ("RevokeToken" = (operation_id = "account_revoke_token",
                    parameters(("id" = "$response.body#/id")))),
            )),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
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
    if expires_in.is_some_and(|seconds| seconds > MAX_EXPIRES_IN) {
        return Err(AccountError::field(
            "expires_in",
            format!("The expires in must not be greater than {MAX_EXPIRES_IN}."),
        ));
    }
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
#[utoipa::path(
    delete,
    path = "/api/account/tokens/{id}",
    tag = "account",
    operation_id = "account_revoke_token",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The token's id."),
        CsrfHeader,
    ),
    responses(
        (status = 204, description = "Revoked: the token is refused from now on."),
        (status = 404, description = "No token of this person has this id.",
            body = AccountMessage),
        (status = 422, description = "The token is already revoked.",
            body = AccountUnprocessable),
        SessionRefusals,
        CsrfRefusal,
        Stack,
    )
)]
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

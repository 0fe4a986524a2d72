//! A person's own integrations: listed without their secrets (a version, a status and a
//! fingerprint of the sealed secret instead), added, rotated, switched on and off, removed.

use super::openapi::{
    AccountMessage, AccountUnprocessable, BodyRefusals, CsrfHeader, CsrfRefusal,
    IntegrationRequest, IntegrationView, RotateRequest, SessionRefusals, Stack, StatusRequest,
};
use super::session::Body;
use super::{AccountError, AppState, SignedIn};
use crate::commands::accounts::{AsUser, Grant};
use crate::commands::integrations::{
    AddIntegration, RemoveIntegration, RotateIntegration, SetIntegrationStatus,
};
use crate::validate::ServiceName;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::{IntegrationOwner, IntegrationStatus, Timestamp};
use mcp_projections::queries;
use mcp_projections::rows::{IntegrationRow, SecretRow};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Integrations as their owners see them, with one query for all their secrets. The fingerprint
/// is the first 8 bytes of SHA-256 over the current version's nonce and ciphertext: it changes
/// whenever the secret (or the key that seals it) changes, and says nothing about the secret.
pub(super) async fn integration_views(
    conn: &mut sqlx::AnyConnection,
    rows: &[IntegrationRow],
) -> Result<Vec<Value>, AccountError> {
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let secrets = queries::rows_where_int_in::<SecretRow>(conn, "integration_id", &ids).await?;
    let fingerprint = |row: &IntegrationRow| {
        let sealed = secrets
            .iter()
            .find(|s| s.integration_id == row.id && s.version == row.secret_version)?;
        let mut digest = Sha256::new();
        digest.update(&sealed.nonce);
        digest.update(&sealed.ciphertext);
        Some(hex::encode(&digest.finalize()[..8]))
    };
    Ok(rows
        .iter()
        .filter(|row| row.status != "removed")
        .map(|row| {
            json!({
                "id": row.id,
                "service": row.service,
                "status": row.status,
                "secret_version": row.secret_version,
                "fingerprint": fingerprint(row),
                "shared_with": row.shared_with,
                "created_at": Timestamp::from_micros(row.created_at),
                "updated_at": Timestamp::from_micros(row.updated_at),
            })
        })
        .collect())
}

pub(super) fn service(body: &Body) -> Result<ServiceName, AccountError> {
    ServiceName::parse(&body.text("service")?).map_err(|why| AccountError::field("service", why))
}

pub(super) fn status(body: &Body) -> Result<IntegrationStatus, AccountError> {
    IntegrationStatus::parse(&body.text("status")?).ok_or_else(|| {
        AccountError::field(
            "status",
            "The status must be one of active, inactive, expired, error.",
        )
    })
}

/// One integration by id, if it exists (removed ones do not).
pub(super) async fn integration(
    state: &AppState,
    id: i64,
) -> Result<Option<IntegrationRow>, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let row: Option<IntegrationRow> =
        queries::by_key(&mut conn, mcp_projections::rows::Cell::Int(Some(id))).await?;
    Ok(row.filter(|row| row.status != "removed"))
}

/// `GET /api/account/integrations`.
#[utoipa::path(
    get,
    path = "/api/account/integrations",
    tag = "account",
    operation_id = "account_integrations",
    security(("account_session" = [])),
    responses(
        (status = 200, description = "The person's own integrations (not removed ones), never \
            their credentials.", body = Vec<IntegrationView>),
        SessionRefusals,
        Stack,
    )
)]
pub async fn list(State(state): State<AppState>, who: SignedIn) -> Result<Response, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let rows = queries::integrations_of_user(&mut conn, who.user_id()).await?;
    Ok(Json(integration_views(&mut conn, &rows).await?).into_response())
}

/// `POST /api/account/integrations {service, credentials}`.
#[utoipa::path(
    post,
    path = "/api/account/integrations",
    tag = "account",
    operation_id = "account_add_integration",
    security(("account_session" = [])),
    params(CsrfHeader),
    request_body(content = IntegrationRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new personal integration.", body = IntegrationView,
            links(
                ("RotateIntegration" = (operation_id = "account_rotate_integration",
                    parameters(("id" = "$response.body#/id")))),
                ("SetIntegrationStatus" = (operation_id = "account_set_integration_status",
                    parameters(("id" = "$response.body#/id")))),
                ("RemoveIntegration" = (operation_id = "account_remove_integration",
                    parameters(("id" = "$response.body#/id")))),
            )),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn add(
    State(state): State<AppState>,
    who: SignedIn,
    body: Body,
) -> Result<Response, AccountError> {
    let (service, credentials) = (service(&body)?, body.credentials()?);
    let id = state
        .ledger
        .submit(AddIntegration {
            service,
            owner: IntegrationOwner::User {
                user_id: who.user_id(),
            },
            status: IntegrationStatus::Active,
            credentials,
            metadata: who.metadata.clone(),
        })
        .await?;
    view(&state, id, StatusCode::CREATED).await
}

/// One integration's view after a change (`201` when it was just added).
pub(super) async fn view(
    state: &AppState,
    id: i64,
    status: StatusCode,
) -> Result<Response, AccountError> {
    let row = integration(state, id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let mut views = integration_views(&mut conn, &[row]).await?;
    Ok((status, Json(views.pop())).into_response())
}

/// `POST /api/account/integrations/{id}/rotate {credentials}`.
#[utoipa::path(
    post,
    path = "/api/account/integrations/{id}/rotate",
    tag = "account",
    operation_id = "account_rotate_integration",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The integration's id."),
        CsrfHeader,
    ),
    request_body(content = RotateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The integration with its new secret version.",
            body = IntegrationView),
        (status = 404, description = "No integration of this person has this id (`Not found`, \
            whether or not it is someone else's).", body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<i64>,
    body: Body,
) -> Result<Response, AccountError> {
    let credentials = body.credentials()?;
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Integration(id),
            command: RotateIntegration {
                integration_id: id,
                credentials,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    view(&state, id, StatusCode::OK).await
}

/// `PATCH /api/account/integrations/{id} {status}`.
#[utoipa::path(
    patch,
    path = "/api/account/integrations/{id}",
    tag = "account",
    operation_id = "account_set_integration_status",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The integration's id."),
        CsrfHeader,
    ),
    request_body(content = StatusRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The integration in its new status.",
            body = IntegrationView),
        (status = 404, description = "No integration of this person has this id.",
            body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn set_status(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<i64>,
    body: Body,
) -> Result<Response, AccountError> {
    let status = status(&body)?;
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Integration(id),
            command: SetIntegrationStatus {
                integration_id: id,
                status,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    view(&state, id, StatusCode::OK).await
}

/// `DELETE /api/account/integrations/{id}`.
#[utoipa::path(
    delete,
    path = "/api/account/integrations/{id}",
    tag = "account",
    operation_id = "account_remove_integration",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The integration's id."),
        CsrfHeader,
    ),
    responses(
        (status = 204, description = "Removed: it no longer resolves for leases."),
        (status = 404, description = "No integration of this person has this id.",
            body = AccountMessage),
        (status = 422, description = "The ledger refused the change.",
            body = AccountUnprocessable),
        SessionRefusals,
        CsrfRefusal,
        Stack,
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, AccountError> {
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Integration(id),
            command: RemoveIntegration {
                integration_id: id,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

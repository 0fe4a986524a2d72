//! A person's own leases: listed (never their credentials), revoked.

use super::openapi::{
    AccountMessage, AccountUnprocessable, CsrfHeader, CsrfRefusal, OwnLeaseView, SessionRefusals,
    Stack,
};
use super::{AccountError, AppState, SignedIn};
use crate::commands::accounts::{AsUser, Grant};
use crate::commands::leases::RevokeLeases;
use crate::domain::lease::LeaseStatus;
use crate::http::views::lease_json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_projections::queries::{self, LeaseFilter, LeaseState};
use std::collections::HashMap;

/// How many leases a page lists at most.
const LIMIT: i64 = 500;

/// `GET /api/account/leases?status=active|expired|revoked`.
#[utoipa::path(
    get,
    path = "/api/account/leases",
    tag = "account",
    operation_id = "account_leases",
    security(("account_session" = [])),
    params(
        ("status" = Option<LeaseStatus>, Query,
            description = "Only leases in this state (all when absent or empty)."),
    ),
    responses(
        (status = 200, description = "The person's leases, newest first (at most 500), never \
            their credentials.", body = Vec<OwnLeaseView>),
        (status = 422, description = "`status` is not `active`, `expired` or `revoked`.",
            body = AccountUnprocessable),
        SessionRefusals,
        Stack,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    who: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AccountError> {
    let status = match query.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("active") => Some(LeaseState::Active),
        Some("expired") => Some(LeaseState::Expired),
        Some("revoked") => Some(LeaseState::Revoked),
        Some(_) => {
            return Err(AccountError::field(
                "status",
                "The status must be one of active, expired, revoked.",
            ))
        }
    };
    let filter = LeaseFilter {
        user_id: Some(who.user_id()),
        state: status,
        ..LeaseFilter::default()
    };
    let now = state.ledger.now();
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let leases = queries::leases(&mut conn, &filter, now.as_micros(), LIMIT).await?;
    let list: Vec<_> = leases.iter().map(|l| lease_json(l, now)).collect();
    Ok(Json(list).into_response())
}

/// `DELETE /api/account/leases/{lease_id}`.
#[utoipa::path(
    delete,
    path = "/api/account/leases/{lease_id}",
    tag = "account",
    operation_id = "account_revoke_lease",
    security(("account_session" = [])),
    params(
        ("lease_id" = String, Path, description = "The lease's id (`lse_…`)."),
        CsrfHeader,
    ),
    responses(
        (status = 204, description = "Revoked (or it already was): its credentials are no longer \
            handed out."),
        (status = 404, description = "No lease of this person has this id.",
            body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        Stack,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, AccountError> {
    if !crate::validate::looks_like_lease_id(&id) {
        return Err(AccountError::NotFound);
    }
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Lease(id.clone()),
            command: RevokeLeases {
                lease_ids: vec![id],
                reason: Some("revoked by its owner".into()),
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

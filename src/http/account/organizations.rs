//! Organizations a person belongs to: members and roles, and the organization's integrations.
//! Members see both lists; owners and admins manage members and integrations; owners change
//! roles. Someone not in the organization gets 404, as if it did not exist.

use super::integrations::{integration_views, service, status, view};
use super::openapi::{
    AccountMessage, AccountUnprocessable, AddedMemberView, BodyRefusals, CsrfHeader, CsrfRefusal,
    IntegrationView, MemberRequest, MemberRoleView, MemberView, OrganizationIntegrationRequest,
    RoleRequest, RotateRequest, SessionRefusals, Stack, StatusRequest,
};
use super::session::Body;
use super::{AccountError, AppState, SignedIn};
use crate::commands::accounts::{AsUser, Grant, ManageMember, MemberChange};
use crate::commands::integrations::{AddIntegration, RotateIntegration, SetIntegrationStatus};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_events::{IntegrationOwner, IntegrationStatus, Role, SharedWith, Timestamp};
use mcp_projections::queries;
use mcp_projections::rows::{MembershipRow, UserRow};
use serde_json::json;

/// The caller's role in an organization; `NotFound` when they are not in it.
async fn role(
    state: &AppState,
    who: &SignedIn,
    organization_id: i64,
) -> Result<Role, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    queries::memberships_of_user(&mut conn, who.user_id())
        .await?
        .into_iter()
        .find(|m| m.organization_id == organization_id)
        .and_then(|m| Role::parse(&m.role))
        .ok_or(AccountError::NotFound)
}

fn role_of(body: &Body) -> Result<Role, AccountError> {
    Role::parse(&body.text("role")?)
        .ok_or_else(|| AccountError::field("role", "The role must be one of owner, admin, member."))
}

/// `GET /api/account/organizations/{id}/members`.
#[utoipa::path(
    get,
    path = "/api/account/organizations/{id}/members",
    tag = "account",
    operation_id = "organization_members",
    security(("account_session" = [])),
    params(("id" = i64, Path, description = "The organization's id.")),
    responses(
        (status = 200, description = "The organization's members, by user id.",
            body = Vec<MemberView>),
        (status = 404, description = "The person is not in this organization (or there is \
            none with this id).", body = AccountMessage),
        SessionRefusals,
        Stack,
    )
)]
pub async fn members(
    State(state): State<AppState>,
    who: SignedIn,
    Path(organization_id): Path<i64>,
) -> Result<Response, AccountError> {
    role(&state, &who, organization_id).await?;
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let memberships = queries::rows_where_int_in::<MembershipRow>(
        &mut conn,
        "organization_id",
        &[organization_id],
    )
    .await?;
    let ids: Vec<i64> = memberships.iter().map(|m| m.user_id).collect();
    let users = queries::rows_where_int_in::<UserRow>(&mut conn, "id", &ids).await?;
    let mut list: Vec<_> = memberships
        .iter()
        .filter_map(|m| {
            let user = users.iter().find(|u| u.id == m.user_id)?;
            Some(json!({
                "user_id": user.id,
                "email": user.email,
                "name": user.name,
                "role": m.role,
                "joined_at": Timestamp::from_micros(m.created_at),
            }))
        })
        .collect();
    list.sort_by_key(|m| m["user_id"].as_i64());
    Ok(Json(list).into_response())
}

async fn change(
    state: &AppState,
    who: &SignedIn,
    organization_id: i64,
    user_id: i64,
    change: MemberChange,
) -> Result<(), AccountError> {
    // `ManageMember` checks the caller's membership and role under the ledger lock.
    state
        .ledger
        .submit(ManageMember {
            actor: who.user_id(),
            organization_id,
            user_id,
            change,
            metadata: who.metadata.clone(),
        })
        .await?;
    Ok(())
}

/// `POST /api/account/organizations/{id}/members {email, role}`.
#[utoipa::path(
    post,
    path = "/api/account/organizations/{id}/members",
    tag = "account",
    operation_id = "add_organization_member",
    security(("account_session" = [])),
    params(("id" = i64, Path, description = "The organization's id."), CsrfHeader),
    request_body(content = MemberRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Added.", body = AddedMemberView),
        (status = 403, description = "A member who is not an owner or admin, or an admin \
            adding an owner (`This action is unauthorized.`).", body = AccountMessage),
        (status = 404, description = "The person is not in this organization.",
            body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn add_member(
    State(state): State<AppState>,
    who: SignedIn,
    Path(organization_id): Path<i64>,
    body: Body,
) -> Result<Response, AccountError> {
    let (email, role) = (body.text("email")?, role_of(&body)?);
    // Only a member learns whether an e-mail has an account (to add it); others get 404 first.
    self::role(&state, &who, organization_id).await?;
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let user = queries::user_by_email(&mut conn, email.trim())
        .await?
        .ok_or_else(|| AccountError::field("email", "No user has this e-mail address."))?;
    drop(conn);
    change(
        &state,
        &who,
        organization_id,
        user.id,
        MemberChange::Add(role),
    )
    .await?;
    let view = json!({ "user_id": user.id, "email": user.email, "name": user.name, "role": role });
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `PATCH /api/account/organizations/{id}/members/{user_id} {role}` (owners).
#[utoipa::path(
    patch,
    path = "/api/account/organizations/{id}/members/{user_id}",
    tag = "account",
    operation_id = "set_organization_member_role",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The organization's id."),
        ("user_id" = i64, Path, description = "The member's user id."),
        CsrfHeader,
    ),
    request_body(content = RoleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The member's new role.", body = MemberRoleView),
        (status = 403, description = "The person is not an owner of the organization.",
            body = AccountMessage),
        (status = 404, description = "The person is not in this organization, or the user is \
            not a member.", body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn set_role(
    State(state): State<AppState>,
    who: SignedIn,
    Path((organization_id, user_id)): Path<(i64, i64)>,
    body: Body,
) -> Result<Response, AccountError> {
    let role = role_of(&body)?;
    change(
        &state,
        &who,
        organization_id,
        user_id,
        MemberChange::SetRole(role),
    )
    .await?;
    Ok(Json(json!({ "user_id": user_id, "role": role })).into_response())
}

/// `DELETE /api/account/organizations/{id}/members/{user_id}`.
#[utoipa::path(
    delete,
    path = "/api/account/organizations/{id}/members/{user_id}",
    tag = "account",
    operation_id = "remove_organization_member",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The organization's id."),
        ("user_id" = i64, Path, description = "The member's user id."),
        CsrfHeader,
    ),
    responses(
        (status = 204, description = "Removed from the organization."),
        (status = 403, description = "A member who is not an owner or admin, or an admin \
            removing an owner.", body = AccountMessage),
        (status = 404, description = "The person is not in this organization, or the user is \
            not a member.", body = AccountMessage),
        (status = 422, description = "One's own membership (nobody removes themselves).",
            body = AccountUnprocessable),
        SessionRefusals,
        CsrfRefusal,
        Stack,
    )
)]
pub async fn remove_member(
    State(state): State<AppState>,
    who: SignedIn,
    Path((organization_id, user_id)): Path<(i64, i64)>,
) -> Result<Response, AccountError> {
    change(&state, &who, organization_id, user_id, MemberChange::Remove).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/account/organizations/{id}/integrations` (never credentials).
#[utoipa::path(
    get,
    path = "/api/account/organizations/{id}/integrations",
    tag = "account",
    operation_id = "organization_integrations",
    security(("account_session" = [])),
    params(("id" = i64, Path, description = "The organization's id.")),
    responses(
        (status = 200, description = "The organization's integrations (not removed ones), \
            never their credentials.", body = Vec<IntegrationView>),
        (status = 404, description = "The person is not in this organization.",
            body = AccountMessage),
        SessionRefusals,
        Stack,
    )
)]
pub async fn integrations(
    State(state): State<AppState>,
    who: SignedIn,
    Path(organization_id): Path<i64>,
) -> Result<Response, AccountError> {
    role(&state, &who, organization_id).await?;
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let rows = queries::integrations_of_organization(&mut conn, organization_id).await?;
    Ok(Json(integration_views(&mut conn, &rows).await?).into_response())
}

/// `POST /api/account/organizations/{id}/integrations {service, credentials, shared_with}`.
#[utoipa::path(
    post,
    path = "/api/account/organizations/{id}/integrations",
    tag = "account",
    operation_id = "add_organization_integration",
    security(("account_session" = [])),
    params(("id" = i64, Path, description = "The organization's id."), CsrfHeader),
    request_body(content = OrganizationIntegrationRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The organization's new integration.",
            body = IntegrationView,
            links(
                ("RotateIntegration" = (operation_id = "rotate_organization_integration",
                    parameters(("id" = "$request.path.id"), ("iid" = "$response.body#/id")))),
                ("SetIntegrationStatus" = (operation_id = "set_organization_integration_status",
                    parameters(("id" = "$request.path.id"), ("iid" = "$response.body#/id")))),
            )),
        (status = 403, description = "The person is a member, not an owner or admin.",
            body = AccountMessage),
        (status = 404, description = "The person is not in this organization.",
            body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn add_integration(
    State(state): State<AppState>,
    who: SignedIn,
    Path(organization_id): Path<i64>,
    body: Body,
) -> Result<Response, AccountError> {
    role(&state, &who, organization_id).await?;
    let (service, credentials) = (service(&body)?, body.credentials()?);
    let shared_with = match body.0.get("shared_with") {
        None | Some(serde_json::Value::Null) => SharedWith::AllMembers,
        Some(serde_json::Value::Array(ids)) => {
            let ids: Option<Vec<i64>> = ids
                .iter()
                .map(|id| id.as_i64().filter(|id| *id > 0))
                .collect();
            match ids {
                Some(ids) if !ids.is_empty() => SharedWith::Users(ids),
                _ => return Err(shared_with_error()),
            }
        }
        Some(serde_json::Value::String(text)) => {
            SharedWith::parse(text).ok_or_else(shared_with_error)?
        }
        Some(_) => return Err(shared_with_error()),
    };
    let id = state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::Manager(organization_id),
            command: AddIntegration {
                service,
                owner: IntegrationOwner::Organization {
                    organization_id,
                    shared_with,
                },
                status: IntegrationStatus::Active,
                credentials,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    view(&state, id, StatusCode::CREATED).await
}

fn shared_with_error() -> AccountError {
    AccountError::field(
        "shared_with",
        "The shared_with must be all_members, admins_only or a list of user ids.",
    )
}

/// `POST /api/account/organizations/{id}/integrations/{iid}/rotate {credentials}`.
#[utoipa::path(
    post,
    path = "/api/account/organizations/{id}/integrations/{iid}/rotate",
    tag = "account",
    operation_id = "rotate_organization_integration",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The organization's id."),
        ("iid" = i64, Path, description = "The integration's id."),
        CsrfHeader,
    ),
    request_body(content = RotateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The integration with its new secret version.",
            body = IntegrationView),
        (status = 403, description = "The person is a member, not an owner or admin.",
            body = AccountMessage),
        (status = 404, description = "The person is not in this organization, or it has no \
            integration with this id.", body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn rotate_integration(
    State(state): State<AppState>,
    who: SignedIn,
    Path((organization_id, integration_id)): Path<(i64, i64)>,
    body: Body,
) -> Result<Response, AccountError> {
    role(&state, &who, organization_id).await?;
    let credentials = body.credentials()?;
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::OrganizationIntegration {
                organization_id,
                integration_id,
            },
            command: RotateIntegration {
                integration_id,
                credentials,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    view(&state, integration_id, StatusCode::OK).await
}

/// `PATCH /api/account/organizations/{id}/integrations/{iid} {status}`.
#[utoipa::path(
    patch,
    path = "/api/account/organizations/{id}/integrations/{iid}",
    tag = "account",
    operation_id = "set_organization_integration_status",
    security(("account_session" = [])),
    params(
        ("id" = i64, Path, description = "The organization's id."),
        ("iid" = i64, Path, description = "The integration's id."),
        CsrfHeader,
    ),
    request_body(content = StatusRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The integration in its new status.",
            body = IntegrationView),
        (status = 403, description = "The person is a member, not an owner or admin.",
            body = AccountMessage),
        (status = 404, description = "The person is not in this organization, or it has no \
            integration with this id.", body = AccountMessage),
        SessionRefusals,
        CsrfRefusal,
        BodyRefusals,
        Stack,
    )
)]
pub async fn set_integration_status(
    State(state): State<AppState>,
    who: SignedIn,
    Path((organization_id, integration_id)): Path<(i64, i64)>,
    body: Body,
) -> Result<Response, AccountError> {
    role(&state, &who, organization_id).await?;
    let status = status(&body)?;
    state
        .ledger
        .submit(AsUser {
            user_id: who.user_id(),
            grant: Grant::OrganizationIntegration {
                organization_id,
                integration_id,
            },
            command: SetIntegrationStatus {
                integration_id,
                status,
                metadata: who.metadata.clone(),
            },
        })
        .await?;
    view(&state, integration_id, StatusCode::OK).await
}

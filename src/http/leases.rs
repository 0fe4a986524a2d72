//! The lease routes: create, renew, show, revoke. Bodies are validated here (Laravel-style 422
//! errors) and the result travels inside the `ApiCall`, so authentication is still checked and
//! recorded first.

use super::error::{ApiError, ErrorBody, Forbidden, LeaseUnprocessable, ValidationErrors};
use super::openapi::Refusals;
use super::path::PathParam;
use super::request::{json_object, perform, reject, RequestCaller};
use super::views::{
    CreatedLeaseView, LeaseRequestBody, LeaseView, RenewRequestBody, RenewedLeaseView,
    RevokeRequestBody, RevokedLeaseView,
};
use super::AppState;
use crate::commands::mcp::{CreateLease, GetLease, RenewLease, RequestRejection, RevokeLease};
use crate::ledger::LeasePolicy;
use crate::validate::{storable, ServiceName};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const MAX_SERVICES: usize = 64;
const CLIENT_INFO_LIMIT: usize = 4096;
const REASON_LIMIT: usize = 255;
/// PostgreSQL cannot store NUL in text; both backends refuse it alike, before storage.
const NUL_MESSAGE: &str = "The :field field must not contain NUL characters.";

type Errors = BTreeMap<String, Vec<String>>;

fn add(errors: &mut Errors, field: impl Into<String>, message: impl Into<String>) {
    errors.entry(field.into()).or_default().push(message.into());
}

/// An integer, or a number with no fractional part (`3600.0`): Laravel's `integer` rule and
/// JSON Schema's `integer` accept both. Past `i64`, saturated (and so out of range).
fn whole_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let number = value.as_f64()?;
        (number.fract() == 0.0).then_some(number as i64)
    })
}

fn ttl(body: &Map<String, Value>, policy: LeasePolicy, errors: &mut Errors) -> Option<i64> {
    let value = body.get("ttl").filter(|v| !v.is_null())?;
    match whole_number(value) {
        Some(ttl) if (policy.min_ttl..=policy.max_ttl).contains(&ttl) => Some(ttl),
        Some(_) => {
            add(
                errors,
                "ttl",
                format!(
                    "The ttl field must be between {} and {}.",
                    policy.min_ttl, policy.max_ttl
                ),
            );
            None
        }
        None => {
            add(errors, "ttl", "The ttl field must be an integer.");
            None
        }
    }
}

fn lease_request(
    body: Option<Map<String, Value>>,
    policy: LeasePolicy,
) -> Result<CreateLease, Errors> {
    let body = body.unwrap_or_default();
    let mut errors = Errors::new();
    let mut services = Vec::new();
    match body.get("services") {
        None | Some(Value::Null) => add(&mut errors, "services", "The services field is required."),
        Some(Value::Array(items)) if items.is_empty() => {
            add(&mut errors, "services", "The services field is required.")
        }
        Some(Value::Array(items)) if items.len() > MAX_SERVICES => add(
            &mut errors,
            "services",
            format!("The services field must not have more than {MAX_SERVICES} items."),
        ),
        Some(Value::Array(items)) => {
            let mut seen = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let field = format!("services.{index}");
                match item.as_str().map(ServiceName::parse) {
                    None => add(
                        &mut errors,
                        field.clone(),
                        format!("The {field} field must be a string."),
                    ),
                    Some(Err(_)) => add(
                        &mut errors,
                        field.clone(),
                        format!("The {field} field format is invalid."),
                    ),
                    Some(Ok(name)) if !seen.insert(name.clone()) => add(
                        &mut errors,
                        field.clone(),
                        format!("The {field} field has a duplicate value."),
                    ),
                    Some(Ok(name)) => services.push(name.into_inner()),
                }
            }
        }
        Some(_) => add(
            &mut errors,
            "services",
            "The services field must be an array.",
        ),
    }
    let ttl = ttl(&body, policy, &mut errors).unwrap_or(policy.default_ttl);
    let server_id = match body.get("server_id") {
        None | Some(Value::Null) => {
            add(&mut errors, "server_id", "The server id field is required.");
            String::new()
        }
        Some(Value::String(id)) if id.trim().is_empty() => {
            add(&mut errors, "server_id", "The server id field is required.");
            String::new()
        }
        Some(Value::String(id)) if id.chars().count() > 255 => {
            add(
                &mut errors,
                "server_id",
                "The server id field must not be greater than 255 characters.",
            );
            String::new()
        }
        Some(Value::String(id)) if !storable(id) => {
            add(
                &mut errors,
                "server_id",
                NUL_MESSAGE.replace(":field", "server id"),
            );
            String::new()
        }
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            add(
                &mut errors,
                "server_id",
                "The server id field must be a string.",
            );
            String::new()
        }
    };
    let renewable = match body.get("renewable") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            add(
                &mut errors,
                "renewable",
                "The renewable field must be true or false.",
            );
            true
        }
    };
    let client_info = body.get("client_info").filter(|v| !v.is_null()).cloned();
    if client_info
        .as_ref()
        .is_some_and(|v| v.to_string().len() > CLIENT_INFO_LIMIT)
    {
        add(
            &mut errors,
            "client_info",
            format!("The client info field must not be larger than {CLIENT_INFO_LIMIT} bytes."),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CreateLease {
        services,
        ttl,
        server_id,
        renewable,
        client_info,
    })
}

/// Leases credentials for some services.
#[utoipa::path(
    post,
    path = "/api/mcp/credentials/lease",
    tag = "leases",
    operation_id = "create_lease",
    security(("leases_token" = [])),
    request_body(content = LeaseRequestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The lease, with the credentials of every service that \
            resolved; the others are in `missing_services`.", body = CreatedLeaseView,
            links(
                ("GetLease" = (operation_id = "get_lease",
                    parameters(("id" = "$response.body#/lease_id")))),
                ("RenewLease" = (operation_id = "renew_lease",
                    parameters(("id" = "$response.body#/lease_id")))),
                ("RevokeLease" = (operation_id = "revoke_lease",
                    parameters(("id" = "$response.body#/lease_id")))),
                ("LeaseReceipt" = (operation_id = "lease_receipt",
                    parameters(("id" = "$response.body#/lease_id")))),
            )),
        (status = 400, description = "The body is not JSON, or not a JSON object \
            (`invalid_json`).", body = ErrorBody),
        (status = 403, description = "A token of the `audit` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 408, description = "The body did not arrive within the request timeout \
            (`request_timeout`); the connection is closed.", body = ErrorBody),
        (status = 415, description = "A body sent as anything but `application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        (status = 422, description = "Invalid fields (`errors` by field), or no requested \
            service resolves to a credential (`missing_services`): no lease was made.",
            body = LeaseUnprocessable),
        Refusals,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CreatedLeaseView>), ApiError> {
    let request = match json_object(&headers, body).await {
        Err(rejection) => return Err(reject(&state, caller, rejection).await),
        Ok(body) => match lease_request(body, state.ledger.policy()) {
            Ok(request) => request,
            Err(errors) => {
                let rejection = RequestRejection::Validation(errors);
                return Err(reject(&state, caller, rejection).await);
            }
        },
    };
    let lease = perform(&state, caller, request).await?;
    Ok((StatusCode::CREATED, Json(lease.into())))
}

/// Extends a lease to now + `ttl` (the body's, else the lease's original).
#[utoipa::path(
    post,
    path = "/api/mcp/credentials/lease/{id}/renew",
    tag = "leases",
    operation_id = "renew_lease",
    security(("leases_token" = [])),
    params(
        ("id" = String, Path, description = "The lease's id (`lse_…`).", min_length = 1),
    ),
    request_body(content = Option<RenewRequestBody>, content_type = "application/json",
        description = "Optional: renew may be sent with no body and no content type."),
    responses(
        (status = 200, description = "The lease's new expiry.", body = RenewedLeaseView),
        (status = 400, description = "The path is not UTF-8 once percent-decoded \
            (`invalid_path`), or the body is not JSON or not an object (`invalid_json`).",
            body = ErrorBody),
        (status = 404, description = "No lease has this id (`not_found`).", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout \
            (`request_timeout`); the connection is closed.", body = ErrorBody),
        (status = 415, description = "A body sent as anything but `application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        (status = 403, description = "Another user's lease (no `error`); a token of the \
            `audit` scope (`insufficient_scope`); `Lease cannot be renewed` (`error`: `Lease has \
            expired`, `Lease has been revoked`, `Lease is not renewable`); `Maximum renewal count \
            reached` (`max_renewals_reached`).", body = Forbidden),
        (status = 422, description = "An invalid `ttl`.", body = ValidationErrors),
        Refusals,
    )
)]
#[tracing::instrument(skip_all, fields(lease_id = %id))]
pub async fn renew(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    RequestCaller(caller): RequestCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RenewedLeaseView>, ApiError> {
    let body = match json_object(&headers, body).await {
        Ok(body) => body,
        Err(rejection) => return Err(reject(&state, caller, rejection).await),
    };
    let mut errors = Errors::new();
    let ttl = body
        .as_ref()
        .and_then(|b| ttl(b, state.ledger.policy(), &mut errors));
    if !errors.is_empty() {
        return Err(reject(&state, caller, RequestRejection::Validation(errors)).await);
    }
    let renewal = perform(&state, caller, RenewLease { lease_id: id, ttl }).await?;
    Ok(Json(renewal.into()))
}

/// A lease as it is now: never its credentials.
#[utoipa::path(
    get,
    path = "/api/mcp/credentials/lease/{id}",
    tag = "leases",
    operation_id = "get_lease",
    security(("leases_token" = [])),
    params(
        ("id" = String, Path, description = "The lease's id (`lse_…`).", min_length = 1),
    ),
    responses(
        (status = 200, description = "The lease.", body = LeaseView),
        (status = 400, description = "The path is not UTF-8 once percent-decoded \
            (`invalid_path`).", body = ErrorBody),
        (status = 404, description = "No lease has this id (`not_found`).", body = ErrorBody),
        (status = 403, description = "Another user's lease (no `error`), or a token of the \
            `audit` scope (`insufficient_scope`).", body = Forbidden),
        Refusals,
    )
)]
#[tracing::instrument(skip_all, fields(lease_id = %id))]
pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    RequestCaller(caller): RequestCaller,
) -> Result<Json<LeaseView>, ApiError> {
    let lease = perform(&state, caller, GetLease { lease_id: id }).await?;
    Ok(Json(lease.into()))
}

/// Revokes a lease; revoking it again answers the original `revoked_at` and records nothing.
#[utoipa::path(
    delete,
    path = "/api/mcp/credentials/lease/{id}",
    tag = "leases",
    operation_id = "revoke_lease",
    security(("leases_token" = [])),
    params(
        ("id" = String, Path, description = "The lease's id (`lse_…`).", min_length = 1),
    ),
    request_body(content = Option<RevokeRequestBody>, content_type = "application/json",
        description = "Optional."),
    responses(
        (status = 200, description = "The lease is revoked.", body = RevokedLeaseView),
        (status = 400, description = "The path is not UTF-8 once percent-decoded \
            (`invalid_path`), or the body is not JSON or not an object (`invalid_json`).",
            body = ErrorBody),
        (status = 404, description = "No lease has this id (`not_found`).", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout \
            (`request_timeout`); the connection is closed.", body = ErrorBody),
        (status = 415, description = "A body sent as anything but `application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        (status = 403, description = "Another user's lease (no `error`), or a token of the \
            `audit` scope (`insufficient_scope`).", body = Forbidden),
        (status = 422, description = "An invalid `reason`.", body = ValidationErrors),
        Refusals,
    )
)]
#[tracing::instrument(skip_all, fields(lease_id = %id))]
pub async fn revoke(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    RequestCaller(caller): RequestCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RevokedLeaseView>, ApiError> {
    let body = match json_object(&headers, body).await {
        Ok(body) => body,
        Err(rejection) => return Err(reject(&state, caller, rejection).await),
    };
    let reason = match body
        .as_ref()
        .and_then(|b| b.get("reason"))
        .filter(|v| !v.is_null())
    {
        None => None,
        Some(Value::String(reason))
            if reason.chars().count() <= REASON_LIMIT && storable(reason) =>
        {
            Some(reason.clone())
        }
        Some(_) => {
            let mut errors = Errors::new();
            add(
                &mut errors,
                "reason",
                format!(
                    "The reason field must be a string of at most {REASON_LIMIT} characters \
                     without NUL characters."
                ),
            );
            return Err(reject(&state, caller, RequestRejection::Validation(errors)).await);
        }
    };
    let revocation = perform(
        &state,
        caller,
        RevokeLease {
            lease_id: id,
            reason,
        },
    )
    .await?;
    Ok(Json(revocation.into()))
}

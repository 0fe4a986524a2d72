//! The MCP API as commands: authenticate the bearer token and perform one action, in one
//! transaction, so the auth record and the lease event commit (or not) together.
//!
//! Every request records exactly one auth event: `mcp_auth_success` (a use of the token) or
//! `mcp_auth_failed`. The token's text never reaches this module: only its SHA-256 hash.

use super::{Command, CommandError};
use crate::domain::lease::{Lease, LeaseCommand, LeaseStatus, NewLease};
use crate::domain::{AuthRefusal, DomainError};
use crate::ledger::Ctx;
use crate::resolve;
use crate::tokens::{hashes_match, token_state};
use crate::validate::new_lease_id;
use mcp_events::{ExpectedVersion, Metadata, ResolvedService, StreamId, Timestamp};
use mcp_projections::rows::{Cell, LeaseRow, UserRow};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the HTTP layer knows about the caller. Never the token itself.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Hex SHA-256 of the presented bearer token; `None` when no usable header was sent.
    pub token_hash: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A validated lease request (the HTTP layer answers 422 before it gets here).
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub services: Vec<String>,
    pub ttl: i64,
    pub server_id: String,
    pub renewable: bool,
    pub client_info: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum ApiAction {
    Me,
    CreateLease(LeaseRequest),
    RenewLease {
        lease_id: String,
        ttl: Option<i64>,
    },
    GetLease {
        lease_id: String,
    },
    RevokeLease {
        lease_id: String,
        reason: Option<String>,
    },
    /// The request was authenticated but its body was unusable; answered after auth, as the
    /// original does, and still counted as a use of the token.
    Rejected(RequestRejection),
}

/// Why a request body was refused; the HTTP layer renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRejection {
    Validation(BTreeMap<String, Vec<String>>),
    Malformed { status: u16, message: String },
}

pub struct ApiCall {
    pub caller: Caller,
    pub action: ApiAction,
}

#[derive(Debug)]
pub enum ApiRefusal {
    Auth(AuthRefusal),
    Domain(DomainError),
    Rejected(RequestRejection),
}

#[derive(Debug, Serialize, PartialEq)]
pub struct OrganizationView {
    pub id: i64,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct MeView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub organizations: Vec<OrganizationView>,
    pub available_services: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct OrgCredentialsView {
    pub organization_id: i64,
    pub services: Vec<String>,
}

/// `Debug` leaves the credentials out, so a stray log line cannot leak them.
#[derive(Serialize, PartialEq)]
pub struct CreatedLeaseView {
    pub lease_id: String,
    pub credentials: Map<String, Value>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub credential_scope: String,
    pub included_org_credentials: Vec<OrgCredentialsView>,
    pub missing_services: Vec<String>,
}

impl std::fmt::Debug for CreatedLeaseView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedLeaseView")
            .field("lease_id", &self.lease_id)
            .field(
                "credentials",
                &format_args!("<{} redacted>", self.credentials.len()),
            )
            .field("expires_at", &self.expires_at)
            .field("credential_scope", &self.credential_scope)
            .field("missing_services", &self.missing_services)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RenewedLeaseView {
    pub lease_id: String,
    pub expires_at: Timestamp,
    pub renewal_count: i64,
    pub last_renewed_at: Timestamp,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct LeaseView {
    pub lease_id: String,
    pub status: &'static str,
    pub services: Vec<String>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub renewal_count: i64,
    pub credential_scope: String,
    pub server_id: String,
    pub created_at: Timestamp,
    pub max_renewals: i64,
    pub last_renewed_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RevokedLeaseView {
    pub message: &'static str,
    pub lease_id: String,
    pub revoked_at: Timestamp,
}

#[derive(Debug)]
pub enum ApiReply {
    Me(MeView),
    Created(CreatedLeaseView),
    Renewed(RenewedLeaseView),
    Lease(LeaseView),
    Revoked(RevokedLeaseView),
}

impl Command for ApiCall {
    type Output = Result<ApiReply, ApiRefusal>;
    const WRITES_TABLES: bool = false;

    async fn execute(self, ctx: &mut Ctx) -> Result<Self::Output, CommandError> {
        let mut metadata = Metadata {
            actor: None,
            token_id: None,
            request_id: self.caller.request_id.clone(),
            ip: self.caller.ip.clone(),
            user_agent: self.caller.user_agent.clone(),
        };
        let user_id = match authenticate(ctx, &self.caller, &mut metadata).await? {
            Ok(user_id) => user_id,
            Err(refusal) => return Ok(Err(ApiRefusal::Auth(refusal))),
        };
        let reply = match self.action {
            ApiAction::Me => me(ctx, user_id).await.map(|v| Ok(ApiReply::Me(v))),
            ApiAction::CreateLease(request) => create_lease(ctx, user_id, request, &metadata).await,
            ApiAction::RenewLease { lease_id, ttl } => {
                renew_lease(ctx, user_id, &lease_id, ttl, &metadata).await
            }
            ApiAction::GetLease { lease_id } => get_lease(ctx, user_id, &lease_id).await,
            ApiAction::RevokeLease { lease_id, reason } => {
                revoke_lease(ctx, user_id, &lease_id, reason, &metadata).await
            }
            ApiAction::Rejected(rejection) => Ok(Err(ApiRefusal::Rejected(rejection))),
        }?;
        Ok(reply)
    }
}

/// Checks the token and records the outcome; `Ok(Ok(user_id))` for an accepted request.
async fn authenticate(
    ctx: &mut Ctx,
    caller: &Caller,
    metadata: &mut Metadata,
) -> Result<Result<i64, AuthRefusal>, CommandError> {
    let Some(hash) = caller.token_hash.as_deref() else {
        record_anonymous_failure(ctx, AuthRefusal::Missing, metadata).await?;
        return Ok(Err(AuthRefusal::Missing));
    };
    let row = match ctx.token_by_hash(hash).await? {
        Some(row) if hashes_match(&row.token_hash, hash) => row,
        _ => {
            record_anonymous_failure(ctx, AuthRefusal::Invalid, metadata).await?;
            return Ok(Err(AuthRefusal::Invalid));
        }
    };
    let user_disabled = ctx
        .row::<UserRow>(Cell::Int(Some(row.user_id)))
        .await?
        .is_none_or(|user| user.disabled);
    let (event, refusal) = token_state(&row).authenticate(ctx.now(), user_disabled);
    metadata.actor = Some(format!("user:{}", row.user_id));
    metadata.token_id = Some(row.id);
    ctx.append(
        &StreamId::token(row.id),
        ExpectedVersion::Exact(row.version),
        &[event],
        metadata,
    )
    .await?;
    Ok(refusal.map_or(Ok(row.user_id), Err))
}

async fn record_anonymous_failure(
    ctx: &mut Ctx,
    refusal: AuthRefusal,
    metadata: &Metadata,
) -> Result<(), CommandError> {
    let event = mcp_events::DomainEvent::McpAuthFailed {
        token_id: None,
        user_id: None,
        reason: refusal.to_string(),
    };
    let metadata = Metadata {
        actor: Some("anonymous".into()),
        ..metadata.clone()
    };
    ctx.append(
        &StreamId::anonymous_auth(),
        ExpectedVersion::Any,
        &[event],
        &metadata,
    )
    .await?;
    Ok(())
}

async fn me(ctx: &mut Ctx, user_id: i64) -> Result<MeView, CommandError> {
    let user = ctx
        .row::<UserRow>(Cell::Int(Some(user_id)))
        .await?
        .ok_or_else(|| CommandError::Internal(format!("token owner {user_id} is missing")))?;
    let access = ctx.access_of(user_id).await?;
    Ok(MeView {
        user_id,
        email: user.email,
        name: user.name,
        available_services: resolve::available_services(user_id, &access.roles, &access.candidates),
        organizations: access
            .memberships
            .iter()
            .filter_map(|(m, name)| {
                let role = access.roles.get(&m.organization_id)?;
                Some(OrganizationView {
                    id: m.organization_id,
                    name: name.clone(),
                    role: role.as_str().to_owned(),
                })
            })
            .collect(),
    })
}

async fn create_lease(
    ctx: &mut Ctx,
    user_id: i64,
    request: LeaseRequest,
    metadata: &Metadata,
) -> Result<Result<ApiReply, ApiRefusal>, CommandError> {
    let access = ctx.access_of(user_id).await?;
    let (resolved, missing) = resolve::resolve(
        user_id,
        &access.roles,
        &access.candidates,
        &request.services,
    );
    let lease_id = new_lease_id();
    let new = NewLease {
        lease_id: lease_id.clone(),
        user_id,
        server_id: request.server_id,
        services: request.services,
        resolved: resolved.clone(),
        missing_services: missing.clone(),
        ttl: request.ttl,
        renewable: request.renewable,
        max_renewals: ctx.policy().max_renewals,
        client_info: request.client_info,
    };
    let events = match Lease::default().decide(LeaseCommand::Create(new), ctx.now()) {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(ApiRefusal::Domain(refusal))),
    };
    let mut credentials = Map::new();
    for service in &resolved {
        let secret = ctx
            .open_secret(service.integration_id, service.secret_version)
            .await?;
        credentials.insert(service.service.clone(), Value::Object(secret));
    }
    let recorded = ctx
        .append_to_new_stream(&StreamId::lease(&lease_id), &events, metadata)
        .await?;
    let (expires_at, renewable, scope) = match &recorded[0].event {
        mcp_events::DomainEvent::LeaseCreated {
            expires_at,
            renewable,
            credential_scope,
            ..
        } => (
            *expires_at,
            *renewable,
            credential_scope.as_str().to_owned(),
        ),
        other => {
            return Err(CommandError::Internal(format!(
                "unexpected event {other:?}"
            )))
        }
    };
    Ok(Ok(ApiReply::Created(CreatedLeaseView {
        lease_id,
        credentials,
        expires_at,
        renewable,
        credential_scope: scope,
        included_org_credentials: org_credentials(&resolved),
        missing_services: missing,
    })))
}

fn org_credentials(resolved: &[ResolvedService]) -> Vec<OrgCredentialsView> {
    let mut by_org: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in resolved {
        if let Some(org) = r.organization_id {
            by_org.entry(org).or_default().push(r.service.clone());
        }
    }
    by_org
        .into_iter()
        .map(|(organization_id, services)| OrgCredentialsView {
            organization_id,
            services,
        })
        .collect()
}

async fn renew_lease(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
    ttl: Option<i64>,
    metadata: &Metadata,
) -> Result<Result<ApiReply, ApiRefusal>, CommandError> {
    let stream = StreamId::lease(lease_id);
    let (lease, version) = ctx.load::<Lease>(&stream).await?;
    let command = LeaseCommand::Renew {
        requester: user_id,
        ttl,
    };
    let events = match lease.decide(command, ctx.now()) {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(ApiRefusal::Domain(refusal))),
    };
    ctx.append(&stream, ExpectedVersion::Exact(version), &events, metadata)
        .await?;
    match &events[0] {
        mcp_events::DomainEvent::LeaseRenewed {
            renewal_count,
            renewed_at,
            expires_at,
            ..
        } => Ok(Ok(ApiReply::Renewed(RenewedLeaseView {
            lease_id: lease_id.to_owned(),
            expires_at: *expires_at,
            renewal_count: *renewal_count,
            last_renewed_at: *renewed_at,
        }))),
        other => Err(CommandError::Internal(format!(
            "unexpected event {other:?}"
        ))),
    }
}

async fn owned_lease_row(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
) -> Result<Result<LeaseRow, ApiRefusal>, CommandError> {
    let row = ctx
        .row::<LeaseRow>(Cell::Text(Some(lease_id.to_owned())))
        .await?;
    Ok(match row {
        None => Err(ApiRefusal::Domain(DomainError::LeaseNotFound)),
        Some(row) if row.user_id != user_id => Err(ApiRefusal::Domain(DomainError::LeaseNotOwned)),
        Some(row) => Ok(row),
    })
}

async fn get_lease(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
) -> Result<Result<ApiReply, ApiRefusal>, CommandError> {
    let row = match owned_lease_row(ctx, user_id, lease_id).await? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    Ok(Ok(ApiReply::Lease(lease_view(&row, ctx.now()))))
}

/// A lease as `GET` shows it; `status` computed from the clock; never its credentials.
pub fn lease_view(row: &LeaseRow, now: Timestamp) -> LeaseView {
    let resolved: Vec<ResolvedService> = serde_json::from_str(&row.resolved).unwrap_or_default();
    let expires_at = Timestamp::from_micros(row.expires_at);
    let status = if row.revoked_at.is_some() {
        LeaseStatus::Revoked
    } else if row.expired_at.is_some() || now >= expires_at {
        LeaseStatus::Expired
    } else {
        LeaseStatus::Active
    };
    LeaseView {
        lease_id: row.id.clone(),
        status: status.as_str(),
        services: resolved.into_iter().map(|r| r.service).collect(),
        expires_at,
        renewable: row.renewable,
        renewal_count: row.renewal_count,
        credential_scope: row.credential_scope.clone(),
        server_id: row.server_id.clone(),
        created_at: Timestamp::from_micros(row.created_at),
        max_renewals: row.max_renewals,
        last_renewed_at: row.last_renewed_at.map(Timestamp::from_micros),
        revoked_at: row.revoked_at.map(Timestamp::from_micros),
    }
}

async fn revoke_lease(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
    reason: Option<String>,
    metadata: &Metadata,
) -> Result<Result<ApiReply, ApiRefusal>, CommandError> {
    let stream = StreamId::lease(lease_id);
    let (lease, version) = ctx.load::<Lease>(&stream).await?;
    let command = LeaseCommand::Revoke {
        requester: user_id,
        reason,
    };
    let events = match lease.decide(command, ctx.now()) {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(ApiRefusal::Domain(refusal))),
    };
    ctx.append(&stream, ExpectedVersion::Exact(version), &events, metadata)
        .await?;
    let revoked_at = match events.first() {
        Some(mcp_events::DomainEvent::LeaseRevoked { revoked_at, .. }) => *revoked_at,
        // Already revoked: answer with the original time and record nothing new.
        _ => lease
            .revoked_at
            .ok_or_else(|| CommandError::Internal("revoked lease without a time".into()))?,
    };
    Ok(Ok(ApiReply::Revoked(RevokedLeaseView {
        message: "Lease revoked successfully",
        lease_id: lease_id.to_owned(),
        revoked_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_lease_never_prints_its_credentials() {
        let mut credentials = Map::new();
        credentials.insert(
            "todoist".into(),
            serde_json::json!({"access_token": "s3cret"}),
        );
        let view = CreatedLeaseView {
            lease_id: "lse_x".into(),
            credentials,
            expires_at: Timestamp::from_micros(0),
            renewable: true,
            credential_scope: "personal".into(),
            included_org_credentials: vec![],
            missing_services: vec![],
        };
        let direct = format!("{view:?}");
        let printed = format!("{direct} {:?}", ApiReply::Created(view));
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}

//! The MCP API as commands: authenticate the bearer token, then perform one action, in one unit
//! of work, so the auth record and the lease event commit (or not) together.
//!
//! Every request records exactly one auth event: `mcp_auth_success` (a use of the token) or
//! `mcp_auth_failed`. The token's text never reaches this module: only its SHA-256 hash.

use crate::domain::lease::{Lease, LeaseCommand, LeaseStatus, NewLease};
use crate::domain::resolve;
use crate::domain::{AuthRefusal, DomainError};
use crate::ledger::{Command, CommandError, Ctx, Prefetch, UserAccess};
use crate::tokens::{hashes_match, token_state};
use crate::validate::looks_like_lease_id;
use mcp_events::{
    CredentialScope, DomainEvent, ExpectedVersion, Metadata, ResolvedService, StreamId, Timestamp,
    TokenScope,
};
use mcp_projections::rows::{LeaseRow, UserRow};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

/// What the HTTP layer knows about the caller. Never the token itself.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Hex SHA-256 of the presented bearer token; `None` when no usable header was sent.
    pub token_hash: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A request to the MCP API: who asks, and for what.
pub struct McpRequest<A> {
    pub caller: Caller,
    pub action: A,
}

/// What a request comes to. Both arms commit: a refusal is an answer whose auth event is
/// recorded, not a failure that is undone.
#[derive(Debug)]
pub enum Answer<T> {
    Granted(T),
    Refused(Refusal),
}

#[derive(Debug)]
pub enum Refusal {
    Auth(AuthRefusal),
    Domain(DomainError),
    Rejected(RequestRejection),
}

impl<T> From<DomainError> for Answer<T> {
    fn from(error: DomainError) -> Self {
        Answer::Refused(Refusal::Domain(error))
    }
}

/// Why a request body was refused; the HTTP layer renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRejection {
    Validation(BTreeMap<String, Vec<String>>),
    Malformed { status: u16, message: String },
}

/// One action of the MCP API, performed for an authenticated user.
pub trait McpAction: Send + Sync + 'static {
    type Reply: Send + 'static;

    /// The scope a token needs for this action; `None`: any token (`GET /api/mcp/me`).
    const SCOPE: Option<TokenScope> = Some(TokenScope::Leases);

    /// The lease this action works on, if any (read ahead with the rest of its batch).
    fn lease_id(&self) -> Option<&str> {
        None
    }

    fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<Answer<Self::Reply>, CommandError>> + Send;
}

impl<A: McpAction> Command for McpRequest<A> {
    type Output = Answer<A::Reply>;

    fn prefetch(&self, wanted: &mut Prefetch) {
        if let Some(hash) = &self.caller.token_hash {
            wanted.token_hashes.push(hash.clone());
        }
        if let Some(id) = self.action.lease_id().filter(|id| looks_like_lease_id(id)) {
            wanted.lease_ids.push(id.to_owned());
        }
    }

    async fn execute(&self, ctx: &mut Ctx) -> Result<Self::Output, CommandError> {
        let mut metadata = Metadata {
            actor: None,
            token_id: None,
            request_id: self.caller.request_id.clone(),
            ip: self.caller.ip.clone(),
            user_agent: self.caller.user_agent.clone(),
        };
        match authenticate(ctx, &self.caller, &mut metadata).await? {
            // Authenticated (and counted): a token of the wrong scope is refused like another
            // user's lease, after its use is recorded.
            Ok((_, scope)) if A::SCOPE.is_some_and(|needed| needed != scope) => {
                Ok(DomainError::InsufficientScope.into())
            }
            Ok((user_id, _)) => self.action.perform(ctx, user_id, &metadata).await,
            Err(refusal) => Ok(Answer::Refused(Refusal::Auth(refusal))),
        }
    }
}

/// Checks the token and records the outcome; `Ok(Ok((user_id, scope)))` for an accepted request.
async fn authenticate(
    ctx: &mut Ctx,
    caller: &Caller,
    metadata: &mut Metadata,
) -> Result<Result<(i64, TokenScope), AuthRefusal>, CommandError> {
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
        .user(row.user_id)
        .await?
        .is_none_or(|user| user.disabled);
    let token = token_state(&row);
    let (event, refusal) = token.authenticate(ctx.now(), user_disabled);
    metadata.actor = Some(format!("user:{}", row.user_id));
    metadata.token_id = Some(row.id);
    ctx.append(
        &StreamId::token(row.id),
        ExpectedVersion::Exact(row.version),
        &[event],
        metadata,
    )
    .await?;
    Ok(refusal.map_or(Ok((row.user_id, token.scope)), Err))
}

async fn record_anonymous_failure(
    ctx: &mut Ctx,
    refusal: AuthRefusal,
    metadata: &Metadata,
) -> Result<(), CommandError> {
    let event = DomainEvent::McpAuthFailed {
        token_id: None,
        user_id: None,
        reason: refusal.to_string(),
        repeated: None,
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

/// `GET /api/mcp/me`.
pub struct Me;

/// Who the caller is and what they may lease now.
#[derive(Debug)]
pub struct Profile {
    pub user: UserRow,
    pub access: Arc<UserAccess>,
    pub available_services: Vec<String>,
}

impl McpAction for Me {
    type Reply = Profile;
    const SCOPE: Option<TokenScope> = None;

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        _: &Metadata,
    ) -> Result<Answer<Profile>, CommandError> {
        let user = ctx
            .user(user_id)
            .await?
            .ok_or_else(|| CommandError::Internal(format!("token owner {user_id} is missing")))?;
        let access = ctx.access_of(user_id).await?;
        let available_services =
            resolve::available_services(user_id, &access.roles, &access.candidates);
        Ok(Answer::Granted(Profile {
            user,
            access,
            available_services,
        }))
    }
}

/// `POST /api/mcp/credentials/lease`, its body validated by the HTTP layer.
#[derive(Debug, Clone)]
pub struct CreateLease {
    pub services: Vec<String>,
    pub ttl: i64,
    pub server_id: String,
    pub renewable: bool,
    pub client_info: Option<Value>,
}

/// A new lease with its credentials. `Debug` leaves the credentials out, so a stray log line
/// cannot leak them.
pub struct GrantedLease {
    pub lease_id: String,
    pub credentials: Map<String, Value>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub credential_scope: CredentialScope,
    pub resolved: Vec<ResolvedService>,
    pub missing_services: Vec<String>,
}

impl std::fmt::Debug for GrantedLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantedLease")
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

impl McpAction for CreateLease {
    type Reply = GrantedLease;

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        metadata: &Metadata,
    ) -> Result<Answer<GrantedLease>, CommandError> {
        let access = ctx.access_of(user_id).await?;
        let (resolved, missing) =
            resolve::resolve(user_id, &access.roles, &access.candidates, &self.services);
        let lease_id = ctx.new_lease_id();
        let new = NewLease {
            lease_id: lease_id.clone(),
            user_id,
            server_id: self.server_id.clone(),
            services: self.services.clone(),
            resolved: resolved.clone(),
            missing_services: missing.clone(),
            ttl: self.ttl,
            renewable: self.renewable,
            max_renewals: ctx.policy().max_renewals,
            client_info: self.client_info.clone(),
        };
        let events = match Lease::default().decide(LeaseCommand::Create(new), ctx.now()) {
            Ok(events) => events,
            Err(refusal) => return Ok(refusal.into()),
        };
        let mut credentials = Map::new();
        for service in &resolved {
            let secret = ctx
                .open_secret(service.integration_id, service.secret_version)
                .await?;
            credentials.insert(service.service.clone(), Value::Object(secret));
        }
        ctx.append_to_new_stream(&StreamId::lease(&lease_id), &events, metadata)
            .await?;
        let DomainEvent::LeaseCreated {
            expires_at,
            renewable,
            credential_scope,
            ..
        } = &events[0]
        else {
            return Err(CommandError::Internal(
                "a new lease without lease_created".into(),
            ));
        };
        Ok(Answer::Granted(GrantedLease {
            lease_id,
            credentials,
            expires_at: *expires_at,
            renewable: *renewable,
            credential_scope: *credential_scope,
            resolved,
            missing_services: missing,
        }))
    }
}

/// A lease of the caller's, or why not: unknown (also for ids that cannot be lease ids, which are
/// never looked up) or another user's.
async fn owned_lease(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
) -> Result<Result<LeaseRow, DomainError>, CommandError> {
    if !looks_like_lease_id(lease_id) {
        return Ok(Err(DomainError::LeaseNotFound));
    }
    Ok(match ctx.lease(lease_id).await? {
        None => Err(DomainError::LeaseNotFound),
        Some(row) if row.user_id != user_id => Err(DomainError::LeaseNotOwned),
        Some(row) => Ok(row),
    })
}

/// Decides a command on one of the caller's leases and appends what it decided.
async fn on_owned_lease(
    ctx: &mut Ctx,
    user_id: i64,
    lease_id: &str,
    command: LeaseCommand,
    metadata: &Metadata,
) -> Result<Result<(Lease, Vec<DomainEvent>), DomainError>, CommandError> {
    let row = match owned_lease(ctx, user_id, lease_id).await? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let lease = Lease::from_row(&row);
    let events = match lease.decide(command, ctx.now()) {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let stream = StreamId::lease(lease_id);
    ctx.append(
        &stream,
        ExpectedVersion::Exact(row.version),
        &events,
        metadata,
    )
    .await?;
    Ok(Ok((lease, events)))
}

/// `POST /api/mcp/credentials/lease/{id}/renew`.
#[derive(Debug, Clone)]
pub struct RenewLease {
    pub lease_id: String,
    pub ttl: Option<i64>,
}

#[derive(Debug)]
pub struct Renewal {
    pub lease_id: String,
    pub expires_at: Timestamp,
    pub renewal_count: i64,
    pub renewed_at: Timestamp,
}

impl McpAction for RenewLease {
    type Reply = Renewal;

    fn lease_id(&self) -> Option<&str> {
        Some(&self.lease_id)
    }

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        metadata: &Metadata,
    ) -> Result<Answer<Renewal>, CommandError> {
        let command = LeaseCommand::Renew {
            requester: user_id,
            ttl: self.ttl,
        };
        let events = match on_owned_lease(ctx, user_id, &self.lease_id, command, metadata).await? {
            Ok((_, events)) => events,
            Err(refusal) => return Ok(refusal.into()),
        };
        match &events[..] {
            [DomainEvent::LeaseRenewed {
                renewal_count,
                renewed_at,
                expires_at,
                ..
            }] => Ok(Answer::Granted(Renewal {
                lease_id: self.lease_id.clone(),
                expires_at: *expires_at,
                renewal_count: *renewal_count,
                renewed_at: *renewed_at,
            })),
            _ => Err(CommandError::Internal(
                "a renewal without lease_renewed".into(),
            )),
        }
    }
}

/// `GET /api/mcp/credentials/lease/{id}`.
#[derive(Debug, Clone)]
pub struct GetLease {
    pub lease_id: String,
}

/// A lease as stored, and its status now. Never its credentials.
#[derive(Debug)]
pub struct LeaseSnapshot {
    pub row: LeaseRow,
    pub status: LeaseStatus,
}

impl McpAction for GetLease {
    type Reply = LeaseSnapshot;

    fn lease_id(&self) -> Option<&str> {
        Some(&self.lease_id)
    }

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        _: &Metadata,
    ) -> Result<Answer<LeaseSnapshot>, CommandError> {
        Ok(match owned_lease(ctx, user_id, &self.lease_id).await? {
            Ok(row) => Answer::Granted(LeaseSnapshot {
                status: Lease::from_row(&row).status(ctx.now()),
                row,
            }),
            Err(refusal) => refusal.into(),
        })
    }
}

/// `DELETE /api/mcp/credentials/lease/{id}`.
#[derive(Debug, Clone)]
pub struct RevokeLease {
    pub lease_id: String,
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct Revocation {
    pub lease_id: String,
    pub revoked_at: Timestamp,
}

impl McpAction for RevokeLease {
    type Reply = Revocation;

    fn lease_id(&self) -> Option<&str> {
        Some(&self.lease_id)
    }

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        metadata: &Metadata,
    ) -> Result<Answer<Revocation>, CommandError> {
        let command = LeaseCommand::Revoke {
            requester: user_id,
            reason: self.reason.clone(),
        };
        let (lease, events) =
            match on_owned_lease(ctx, user_id, &self.lease_id, command, metadata).await? {
                Ok(decided) => decided,
                Err(refusal) => return Ok(refusal.into()),
            };
        let revoked_at = match events.first() {
            Some(DomainEvent::LeaseRevoked { revoked_at, .. }) => *revoked_at,
            // Already revoked: the original time, and nothing new recorded.
            _ => lease
                .revoked_at
                .ok_or_else(|| CommandError::Internal("revoked lease without a time".into()))?,
        };
        Ok(Answer::Granted(Revocation {
            lease_id: self.lease_id.clone(),
            revoked_at,
        }))
    }
}

/// A request to the auditors' API (`/api/audit/*`): an `audit` token, authenticated and
/// recorded; what it reads is read afterwards, outside the ledger's writer.
#[derive(Debug, Clone)]
pub struct AuditAccess;

impl McpAction for AuditAccess {
    type Reply = i64;
    const SCOPE: Option<TokenScope> = Some(TokenScope::Audit);

    /// The user the token belongs to.
    async fn perform(
        &self,
        _: &mut Ctx,
        user_id: i64,
        _: &Metadata,
    ) -> Result<Answer<i64>, CommandError> {
        Ok(Answer::Granted(user_id))
    }
}

/// `GET /api/mcp/credentials/lease/{id}/receipt`: the caller's own lease, whose events and
/// proofs are then read outside the writer.
#[derive(Debug, Clone)]
pub struct LeaseReceipt {
    pub lease_id: String,
}

impl McpAction for LeaseReceipt {
    type Reply = LeaseRow;

    fn lease_id(&self) -> Option<&str> {
        Some(&self.lease_id)
    }

    async fn perform(
        &self,
        ctx: &mut Ctx,
        user_id: i64,
        _: &Metadata,
    ) -> Result<Answer<LeaseRow>, CommandError> {
        Ok(match owned_lease(ctx, user_id, &self.lease_id).await? {
            Ok(row) => Answer::Granted(row),
            Err(refusal) => refusal.into(),
        })
    }
}

/// An authenticated request whose body was unusable: answered after authentication, as the
/// original does, and still counted as a use of the token.
#[derive(Debug, Clone)]
pub struct Rejected(pub RequestRejection);

impl McpAction for Rejected {
    type Reply = Infallible;

    async fn perform(
        &self,
        _: &mut Ctx,
        _: i64,
        _: &Metadata,
    ) -> Result<Answer<Infallible>, CommandError> {
        Ok(Answer::Refused(Refusal::Rejected(self.0.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_lease_never_prints_its_credentials() {
        let mut credentials = Map::new();
        credentials.insert(
            "todoist".into(),
            serde_json::json!({"access_token": "s3cret"}),
        );
        let lease = GrantedLease {
            lease_id: "lse_x".into(),
            credentials,
            expires_at: Timestamp::from_micros(0),
            renewable: true,
            credential_scope: CredentialScope::Personal,
            resolved: vec![],
            missing_services: vec![],
        };
        let direct = format!("{lease:?}");
        let printed = format!("{direct} {:?}", Answer::Granted(lease));
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}

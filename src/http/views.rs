//! The JSON bodies of the API's answers, as the guide and the contract shape them, built from
//! what the commands return; the bodies its requests may carry, as the OpenAPI document describes
//! them (the handlers read them field by field, for Laravel-style 422 errors); and the listings'
//! views of tokens and leases (the CLI's and the account API's), never a token or a credential.

use crate::commands::mcp::{GrantedLease, LeaseSnapshot, Profile, Renewal, Revocation};
use crate::domain::lease::LeaseStatus;
use crate::validate::ServiceName;
use mcp_events::{CredentialScope, ResolvedService, Role, Timestamp};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct OrganizationView {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// Who the token belongs to, and what they can lease now.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct MeView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub organizations: Vec<OrganizationView>,
    /// Every service the user can lease now: personal first, then organization; no duplicates.
    #[schema(value_type = Vec<ServiceName>)]
    pub available_services: Vec<String>,
}

/// The body of `POST /api/mcp/credentials/lease` (unknown fields are ignored).
#[derive(Debug, ToSchema)]
#[schema(examples(json!({"services": ["todoist", "jira"], "server_id": "claude-desktop", "ttl": 3600})))]
pub struct LeaseRequestBody {
    /// Distinct service names.
    #[schema(min_items = 1, max_items = 64)]
    pub services: Vec<ServiceName>,
    /// Seconds, within `MCP_LEASE_MIN_TTL`..=`MCP_LEASE_MAX_TTL` (this server's bounds are
    /// `minimum` and `maximum`); `MCP_LEASE_DEFAULT_TTL` when absent.
    pub ttl: Option<i64>,
    /// Who holds the lease: 1 to 255 characters, not only spaces, no NUL.
    #[schema(min_length = 1, max_length = 255)]
    pub server_id: String,
    /// `true` when absent.
    pub renewable: Option<bool>,
    /// Anything JSON, at most 4,096 bytes once serialized; recorded with the lease.
    pub client_info: Option<Value>,
}

/// The optional body of `POST /api/mcp/credentials/lease/{id}/renew`.
#[derive(Debug, ToSchema)]
pub struct RenewRequestBody {
    /// Seconds from now, within this server's TTL bounds; the lease's original TTL when
    /// absent.
    pub ttl: Option<i64>,
}

/// The optional body of `DELETE /api/mcp/credentials/lease/{id}`.
#[derive(Debug, ToSchema)]
pub struct RevokeRequestBody {
    /// Recorded with the revocation: at most 255 characters, no NUL.
    #[schema(max_length = 255)]
    pub reason: Option<String>,
}

impl From<Profile> for MeView {
    fn from(profile: Profile) -> Self {
        let access = &profile.access;
        MeView {
            user_id: profile.user.id,
            email: profile.user.email,
            name: profile.user.name,
            organizations: access
                .memberships
                .iter()
                .filter_map(|(m, name)| {
                    let role = access.roles.get(&m.organization_id)?;
                    Some(OrganizationView {
                        id: m.organization_id,
                        name: name.clone(),
                        role: *role,
                    })
                })
                .collect(),
            available_services: profile.available_services,
        }
    }
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct OrgCredentialsView {
    pub organization_id: i64,
    pub services: Vec<String>,
}

/// A new lease, with its credentials. Holds credentials: never logged (it has no `Debug`).
#[derive(Serialize, PartialEq, ToSchema)]
pub struct CreatedLeaseView {
    #[schema(examples("lse_8f3a1c9e0b7d4f2a6c5e1b9d3f7a2c4e6b8d0f1a"))]
    pub lease_id: String,
    /// Each resolved service's credential object, exactly as it was stored.
    #[schema(value_type = BTreeMap<String, Object>)]
    pub credentials: Map<String, Value>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub credential_scope: CredentialScope,
    pub included_org_credentials: Vec<OrgCredentialsView>,
    pub missing_services: Vec<String>,
}

impl From<GrantedLease> for CreatedLeaseView {
    fn from(lease: GrantedLease) -> Self {
        CreatedLeaseView {
            included_org_credentials: org_credentials(&lease.resolved),
            lease_id: lease.lease_id,
            credentials: lease.credentials,
            expires_at: lease.expires_at,
            renewable: lease.renewable,
            credential_scope: lease.credential_scope,
            missing_services: lease.missing_services,
        }
    }
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

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct RenewedLeaseView {
    #[schema(examples("lse_8f3a1c9e0b7d4f2a6c5e1b9d3f7a2c4e6b8d0f1a"))]
    pub lease_id: String,
    pub expires_at: Timestamp,
    pub renewal_count: i64,
    pub last_renewed_at: Timestamp,
}

impl From<Renewal> for RenewedLeaseView {
    fn from(renewal: Renewal) -> Self {
        RenewedLeaseView {
            lease_id: renewal.lease_id,
            expires_at: renewal.expires_at,
            renewal_count: renewal.renewal_count,
            last_renewed_at: renewal.renewed_at,
        }
    }
}

/// A lease as `GET` shows it: never its credentials.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct LeaseView {
    #[schema(examples("lse_8f3a1c9e0b7d4f2a6c5e1b9d3f7a2c4e6b8d0f1a"))]
    pub lease_id: String,
    pub status: LeaseStatus,
    /// The services the lease holds credentials for (not the missing ones).
    pub services: Vec<String>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub renewal_count: i64,
    #[schema(value_type = CredentialScope)]
    pub credential_scope: String,
    pub server_id: String,
    pub created_at: Timestamp,
    pub max_renewals: i64,
    pub last_renewed_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl From<LeaseSnapshot> for LeaseView {
    fn from(LeaseSnapshot { row, status }: LeaseSnapshot) -> Self {
        // The services the lease holds credentials for (not the missing ones).
        let resolved: Vec<ResolvedService> =
            serde_json::from_str(&row.resolved).unwrap_or_default();
        LeaseView {
            lease_id: row.id,
            status,
            services: resolved.into_iter().map(|r| r.service).collect(),
            expires_at: Timestamp::from_micros(row.expires_at),
            renewable: row.renewable,
            renewal_count: row.renewal_count,
            credential_scope: row.credential_scope,
            server_id: row.server_id,
            created_at: Timestamp::from_micros(row.created_at),
            max_renewals: row.max_renewals,
            last_renewed_at: row.last_renewed_at.map(Timestamp::from_micros),
            revoked_at: row.revoked_at.map(Timestamp::from_micros),
        }
    }
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct RevokedLeaseView {
    /// Always `Lease revoked successfully`.
    pub message: &'static str,
    #[schema(examples("lse_8f3a1c9e0b7d4f2a6c5e1b9d3f7a2c4e6b8d0f1a"))]
    pub lease_id: String,
    pub revoked_at: Timestamp,
}

impl From<Revocation> for RevokedLeaseView {
    fn from(revocation: Revocation) -> Self {
        RevokedLeaseView {
            message: "Lease revoked successfully",
            lease_id: revocation.lease_id,
            revoked_at: revocation.revoked_at,
        }
    }
}

/// A token as its owner and the operator see it: usage and status; never the token.
pub fn token_json(t: &mcp_projections::rows::TokenRow, now: Timestamp) -> Value {
    let expired = t.expires_at.is_some_and(|at| now.as_micros() >= at);
    let status = if t.revoked {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": t.id,
        "name": t.name,
        "scope": t.scope,
        "status": status,
        "expires_at": t.expires_at.map(Timestamp::from_micros),
        "max_uses": t.max_uses,
        "usage_count": t.usage_count,
        "last_used_at": t.last_used_at.map(Timestamp::from_micros),
        "created_at": Timestamp::from_micros(t.created_at),
    })
}

/// A lease as an operator sees it: who, which token, which server, when; never credentials.
pub fn lease_json(lease: &mcp_projections::rows::LeaseRow, now: Timestamp) -> Value {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "lease_id": lease.id,
        "user_id": lease.user_id,
        "token_id": lease.token_id,
        "server_id": lease.server_id,
        "status": crate::domain::lease::Lease::from_row(lease).status(now).as_str(),
        "services": parse(&lease.services),
        "missing_services": parse(&lease.missing_services),
        "credential_scope": lease.credential_scope,
        "renewable": lease.renewable,
        "renewal_count": lease.renewal_count,
        "max_renewals": lease.max_renewals,
        "created_at": Timestamp::from_micros(lease.created_at),
        "expires_at": Timestamp::from_micros(lease.expires_at),
        "last_renewed_at": lease.last_renewed_at.map(Timestamp::from_micros),
        "revoked_at": lease.revoked_at.map(Timestamp::from_micros),
        "revoke_reason": lease.revoke_reason,
    })
}

//! The JSON bodies of the API's answers, as the guide and the contract shape them, built from
//! what the commands return; and the listings' views of tokens and leases (the CLI's and the
//! account API's), which never hold a token or a credential.

use crate::commands::mcp::{GrantedLease, LeaseSnapshot, Profile, Renewal, Revocation};
use mcp_events::{ResolvedService, Timestamp};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

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
                        role: role.as_str().to_owned(),
                    })
                })
                .collect(),
            available_services: profile.available_services,
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct OrgCredentialsView {
    pub organization_id: i64,
    pub services: Vec<String>,
}

/// Holds credentials: never logged (it has no `Debug`).
#[derive(Serialize, PartialEq)]
pub struct CreatedLeaseView {
    pub lease_id: String,
    pub credentials: Map<String, Value>,
    pub expires_at: Timestamp,
    pub renewable: bool,
    pub credential_scope: &'static str,
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
            credential_scope: lease.credential_scope.as_str(),
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

#[derive(Debug, Serialize, PartialEq)]
pub struct RenewedLeaseView {
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

impl From<LeaseSnapshot> for LeaseView {
    fn from(LeaseSnapshot { row, status }: LeaseSnapshot) -> Self {
        // The services the lease holds credentials for (not the missing ones).
        let resolved: Vec<ResolvedService> =
            serde_json::from_str(&row.resolved).unwrap_or_default();
        LeaseView {
            lease_id: row.id,
            status: status.as_str(),
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

#[derive(Debug, Serialize, PartialEq)]
pub struct RevokedLeaseView {
    pub message: &'static str,
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

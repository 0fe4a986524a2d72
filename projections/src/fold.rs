//! How each event changes the read models. Deterministic: no clock, no randomness, no I/O but `Rows`.

use crate::rows::*;
use crate::store::Rows;
use mcp_events::{DomainEvent, IntegrationOwner, RecordedEvent};
use serde_json::{json, Value};

fn int(v: i64) -> Vec<Cell> {
    vec![Cell::Int(Some(v))]
}

fn text(v: &str) -> Vec<Cell> {
    vec![Cell::Text(Some(v.to_owned()))]
}

/// Applies one event to every projection.
pub async fn apply<S: Rows>(rows: &mut S, recorded: &RecordedEvent) -> Result<(), sqlx::Error> {
    let at = recorded.recorded_at.as_micros();
    let version = recorded.stream_version;
    match &recorded.event {
        DomainEvent::UserRegistered {
            user_id,
            email,
            name,
        } => {
            rows.put(UserRow {
                id: *user_id,
                email: email.clone(),
                name: name.clone(),
                disabled: false,
                created_at: at,
            })
            .await?
        }
        DomainEvent::UserDisabled { user_id } => {
            rows.update::<UserRow>(int(*user_id), |user| {
                user.disabled = true;
            })
            .await?
        }
        DomainEvent::OrganizationCreated {
            organization_id,
            name,
        } => {
            rows.put(OrganizationRow {
                id: *organization_id,
                name: name.clone(),
                created_at: at,
            })
            .await?
        }
        DomainEvent::MembershipAdded {
            organization_id,
            user_id,
            role,
        } => {
            rows.put(MembershipRow {
                organization_id: *organization_id,
                user_id: *user_id,
                role: role.as_str().to_owned(),
                created_at: at,
            })
            .await?
        }
        DomainEvent::MembershipRoleChanged {
            organization_id,
            user_id,
            role,
        } => {
            let key = [int(*organization_id), int(*user_id)].concat();
            rows.update::<MembershipRow>(key, |membership| {
                membership.role = role.as_str().to_owned();
            })
            .await?
        }
        DomainEvent::MembershipRemoved {
            organization_id,
            user_id,
        } => {
            let key = [int(*organization_id), int(*user_id)].concat();
            rows.delete::<MembershipRow>(key).await?
        }
        DomainEvent::IntegrationAdded {
            integration_id,
            service,
            owner,
            status,
            secret_version,
        } => {
            let (user_id, organization_id, shared_with) = match owner {
                IntegrationOwner::User { user_id } => (Some(*user_id), None, None),
                IntegrationOwner::Organization {
                    organization_id,
                    shared_with,
                } => (None, Some(*organization_id), Some(shared_with.to_text())),
            };
            rows.put(IntegrationRow {
                id: *integration_id,
                service: service.clone(),
                user_id,
                organization_id,
                shared_with,
                status: status.as_str().to_owned(),
                secret_version: *secret_version,
                created_at: at,
                updated_at: at,
            })
            .await?
        }
        DomainEvent::IntegrationRotated {
            integration_id,
            secret_version,
        } => {
            rows.update::<IntegrationRow>(int(*integration_id), |integration| {
                integration.secret_version = *secret_version;
                integration.updated_at = at;
            })
            .await?
        }
        DomainEvent::IntegrationStatusChanged {
            integration_id,
            status,
        } => {
            rows.update::<IntegrationRow>(int(*integration_id), |integration| {
                integration.status = status.as_str().to_owned();
                integration.updated_at = at;
            })
            .await?
        }
        // Kept as a row with status `removed`, so its id is never handed out again.
        DomainEvent::IntegrationRemoved { integration_id } => {
            rows.update::<IntegrationRow>(int(*integration_id), |integration| {
                integration.status = "removed".to_owned();
                integration.updated_at = at;
            })
            .await?
        }
        // The secret table is not a projection; only the audit record below changes.
        DomainEvent::IntegrationSecretResealed { .. } => {}
        DomainEvent::TokenIssued {
            token_id,
            user_id,
            name,
            token_hash,
            expires_at,
            max_uses,
            scope,
        } => {
            rows.put(TokenRow {
                id: *token_id,
                user_id: *user_id,
                name: name.clone(),
                token_hash: token_hash.clone(),
                revoked: false,
                expires_at: expires_at.map(|t| t.as_micros()),
                max_uses: *max_uses,
                usage_count: 0,
                last_used_at: None,
                created_at: at,
                version,
                scope: scope.as_str().to_owned(),
            })
            .await?
        }
        DomainEvent::TokenRevoked { token_id, .. } => {
            rows.update::<TokenRow>(int(*token_id), |token| {
                token.revoked = true;
                token.version = version;
            })
            .await?
        }
        DomainEvent::McpAuthSucceeded { token_id, at, .. } => {
            rows.update::<TokenRow>(int(*token_id), |token| {
                token.usage_count += 1;
                token.last_used_at = Some(at.as_micros());
                token.version = version;
            })
            .await?
        }
        DomainEvent::McpAuthFailed {
            token_id: Some(token_id),
            ..
        } => {
            rows.update::<TokenRow>(int(*token_id), |token| {
                token.version = version;
            })
            .await?
        }
        DomainEvent::McpAuthFailed { token_id: None, .. } => {}
        // The password lives beside the log; sign-in failures are audit records only.
        DomainEvent::UserPasswordSet { .. } | DomainEvent::AccountSignInFailed { .. } => {}
        DomainEvent::AccountSessionStarted {
            session_hash,
            user_id,
            expires_at,
        } => {
            rows.put(SessionRow {
                id: session_hash.clone(),
                user_id: *user_id,
                created_at: at,
                last_seen_at: at,
                expires_at: expires_at.as_micros(),
                ended_at: None,
                version,
            })
            .await?
        }
        DomainEvent::AccountSessionRefreshed { session_hash, .. } => {
            rows.update::<SessionRow>(text(session_hash), |session| {
                session.last_seen_at = at;
                session.version = version;
            })
            .await?
        }
        DomainEvent::AccountSessionEnded { session_hash, .. } => {
            rows.update::<SessionRow>(text(session_hash), |session| {
                session.ended_at = Some(at);
                session.version = version;
            })
            .await?
        }
        DomainEvent::LeaseCreated {
            lease_id,
            user_id,
            server_id,
            services,
            resolved,
            missing_services,
            credential_scope,
            ttl,
            renewable,
            max_renewals,
            created_at,
            expires_at,
            client_info,
        } => {
            rows.put(LeaseRow {
                id: lease_id.clone(),
                user_id: *user_id,
                server_id: server_id.clone(),
                services: json!(services).to_string(),
                resolved: json!(resolved).to_string(),
                missing_services: json!(missing_services).to_string(),
                credential_scope: credential_scope.as_str().to_owned(),
                ttl: *ttl,
                renewable: *renewable,
                max_renewals: *max_renewals,
                renewal_count: 0,
                created_at: created_at.as_micros(),
                expires_at: expires_at.as_micros(),
                last_renewed_at: None,
                revoked_at: None,
                revoke_reason: None,
                expired_at: None,
                client_info: client_info.as_ref().map(Value::to_string),
                version,
                token_id: recorded.metadata.token_id,
            })
            .await?
        }
        DomainEvent::LeaseRenewed {
            lease_id,
            renewal_count,
            renewed_at,
            expires_at,
            ..
        } => {
            rows.update::<LeaseRow>(text(lease_id), |lease| {
                lease.renewal_count = *renewal_count;
                lease.last_renewed_at = Some(renewed_at.as_micros());
                lease.expires_at = expires_at.as_micros();
                lease.version = version;
            })
            .await?
        }
        DomainEvent::LeaseRevoked {
            lease_id,
            revoked_at,
            reason,
            ..
        } => {
            rows.update::<LeaseRow>(text(lease_id), |lease| {
                lease.revoked_at = Some(revoked_at.as_micros());
                lease.revoke_reason = reason.clone();
                lease.version = version;
            })
            .await?
        }
        DomainEvent::LeaseExpired {
            lease_id,
            expired_at,
            ..
        } => {
            rows.update::<LeaseRow>(text(lease_id), |lease| {
                lease.expired_at = Some(expired_at.as_micros());
                lease.version = version;
            })
            .await?
        }
    }
    rows.put(audit_record(recorded)).await
}

/// The audit record of an event: who, what, on which entity, from where; never a secret.
pub fn audit_record(recorded: &RecordedEvent) -> AuditRow {
    let event = &recorded.event;
    let (entity_type, entity_id, details) = match event {
        DomainEvent::UserRegistered { user_id, email, .. } => {
            ("User", user_id.to_string(), json!({ "email": email }))
        }
        DomainEvent::UserDisabled { user_id } => ("User", user_id.to_string(), json!({})),
        DomainEvent::OrganizationCreated {
            organization_id,
            name,
        } => (
            "Organization",
            organization_id.to_string(),
            json!({ "name": name }),
        ),
        DomainEvent::MembershipAdded {
            organization_id,
            role,
            ..
        }
        | DomainEvent::MembershipRoleChanged {
            organization_id,
            role,
            ..
        } => (
            "Organization",
            organization_id.to_string(),
            json!({ "role": role }),
        ),
        DomainEvent::MembershipRemoved {
            organization_id, ..
        } => ("Organization", organization_id.to_string(), json!({})),
        DomainEvent::IntegrationAdded {
            integration_id,
            service,
            status,
            ..
        } => (
            "Integration",
            integration_id.to_string(),
            json!({ "service": service, "status": status }),
        ),
        DomainEvent::IntegrationRotated {
            integration_id,
            secret_version,
        } => (
            "Integration",
            integration_id.to_string(),
            json!({ "secret_version": secret_version }),
        ),
        DomainEvent::IntegrationStatusChanged {
            integration_id,
            status,
        } => (
            "Integration",
            integration_id.to_string(),
            json!({ "status": status }),
        ),
        DomainEvent::IntegrationRemoved { integration_id } => {
            ("Integration", integration_id.to_string(), json!({}))
        }
        DomainEvent::IntegrationSecretResealed {
            integration_id,
            version,
            from_key_id,
            to_key_id,
        } => (
            "Integration",
            integration_id.to_string(),
            json!({ "version": version, "from_key_id": from_key_id, "to_key_id": to_key_id }),
        ),
        DomainEvent::TokenIssued {
            token_id,
            name,
            scope,
            ..
        } => (
            "UserToken",
            token_id.to_string(),
            json!({ "name": name, "scope": scope }),
        ),
        DomainEvent::TokenRevoked { token_id, .. } => {
            ("UserToken", token_id.to_string(), json!({}))
        }
        DomainEvent::McpAuthSucceeded { token_id, .. } => {
            ("UserToken", token_id.to_string(), json!({}))
        }
        DomainEvent::McpAuthFailed {
            token_id,
            reason,
            repeated,
            ..
        } => (
            "UserToken",
            token_id.map(|id| id.to_string()).unwrap_or_default(),
            match repeated {
                None => json!({ "reason": reason }),
                Some(repeated) => json!({
                    "reason": reason,
                    "count": repeated.count,
                    "first_at": repeated.first_at,
                    "last_at": repeated.last_at,
                }),
            },
        ),

        DomainEvent::UserPasswordSet { user_id } => ("User", user_id.to_string(), json!({})),
        // A session is named in the audit by the first 12 hex digits of its hash: enough to tell
        // sessions apart, useless to anyone holding the log.
        DomainEvent::AccountSessionStarted {
            session_hash,
            expires_at,
            ..
        } => (
            "Session",
            session_hash.chars().take(12).collect(),
            json!({ "expires_at": expires_at }),
        ),
        DomainEvent::AccountSessionRefreshed { session_hash, .. } => (
            "Session",
            session_hash.chars().take(12).collect(),
            json!({}),
        ),
        DomainEvent::AccountSessionEnded {
            session_hash,
            reason,
            ..
        } => (
            "Session",
            session_hash.chars().take(12).collect(),
            json!({ "reason": reason }),
        ),
        DomainEvent::AccountSignInFailed { user_id, reason } => (
            "User",
            user_id.map(|id| id.to_string()).unwrap_or_default(),
            json!({ "reason": reason }),
        ),
        DomainEvent::LeaseCreated {
            lease_id,
            server_id,
            services,
            missing_services,
            credential_scope,
            ttl,
            ..
        } => (
            "CredentialLease",
            lease_id.clone(),
            json!({
                "server_id": server_id,
                "services": services,
                "missing_services": missing_services,
                "credential_scope": credential_scope,
                "ttl": ttl,
            }),
        ),
        DomainEvent::LeaseRenewed {
            lease_id,
            renewal_count,
            expires_at,
            ..
        } => (
            "CredentialLease",
            lease_id.clone(),
            json!({ "renewal_count": renewal_count, "expires_at": expires_at }),
        ),
        DomainEvent::LeaseRevoked {
            lease_id, reason, ..
        } => (
            "CredentialLease",
            lease_id.clone(),
            json!({ "reason": reason }),
        ),
        DomainEvent::LeaseExpired { lease_id, .. } => {
            ("CredentialLease", lease_id.clone(), json!({}))
        }
    };
    AuditRow {
        position: recorded.position,
        user_id: event.user_id(),
        action: event.event_type().to_owned(),
        entity_type: entity_type.to_owned(),
        entity_id,
        ip: recorded.metadata.ip.clone(),
        user_agent: recorded.metadata.user_agent.clone(),
        details: details.to_string(),
        created_at: recorded.recorded_at.as_micros(),
    }
}

//! The facts MCP Manager records. Each variant is one `event_type`; its fields are the payload.
//!
//! Rule of this module: no payload ever holds a token or a credential. Tokens appear as ids and
//! SHA-256 hashes, credentials as an integration id and a secret version.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The current version of every event type; bump one (and add an upcaster) when its payload changes.
pub const CURRENT_EVENT_VERSION: i64 = 1;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    Hash,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Active,
    Inactive,
    Expired,
    Error,
}

impl IntegrationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Expired => "expired",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "expired" => Some(Self::Expired),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// Who may use an organization integration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedWith {
    AllMembers,
    AdminsOnly,
    Users(Vec<i64>),
}

impl SharedWith {
    /// The form the CLI takes and the directory stores: `all_members`, `admins_only` or `1,2,3`.
    pub fn to_text(&self) -> String {
        match self {
            Self::AllMembers => "all_members".to_owned(),
            Self::AdminsOnly => "admins_only".to_owned(),
            Self::Users(ids) => ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all_members" => Some(Self::AllMembers),
            "admins_only" => Some(Self::AdminsOnly),
            list => {
                let ids: Option<Vec<i64>> = list
                    .split(',')
                    .map(|id| id.trim().parse::<i64>().ok().filter(|id| *id > 0))
                    .collect();
                ids.filter(|ids| !ids.is_empty()).map(Self::Users)
            }
        }
    }

    pub fn admits(&self, user_id: i64, role: Role) -> bool {
        match self {
            Self::AllMembers => true,
            Self::AdminsOnly => role.is_admin(),
            Self::Users(ids) => ids.contains(&user_id),
        }
    }
}

/// Whose integration it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationOwner {
    User {
        user_id: i64,
    },
    Organization {
        organization_id: i64,
        shared_with: SharedWith,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialScope {
    Personal,
    Organization,
    Mixed,
}

impl CredentialScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Organization => "organization",
            Self::Mixed => "mixed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "personal" => Some(Self::Personal),
            "organization" => Some(Self::Organization),
            "mixed" => Some(Self::Mixed),
            _ => None,
        }
    }
}

/// One service of a lease and the integration (and secret version) it resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedService {
    pub service: String,
    pub integration_id: i64,
    pub secret_version: i64,
    /// `None` for a personal integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<i64>,
}

/// What a token may call: the MCP lease routes, or the auditors' read-only API (`/api/audit/*`).
/// Both may call `GET /api/mcp/me`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    #[default]
    Leases,
    Audit,
}

impl TokenScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Leases => "leases",
            Self::Audit => "audit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "leases" => Some(Self::Leases),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }

    /// Lets old events, which have no scope, encode exactly as they did.
    pub fn is_leases(&self) -> bool {
        *self == Self::Leases
    }
}

/// How many identical refused requests one `mcp_auth_failed` stands for, and over which time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeated {
    pub count: u64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload", rename_all = "snake_case")]
pub enum DomainEvent {
    UserRegistered {
        user_id: i64,
        email: String,
        name: String,
    },
    UserDisabled {
        user_id: i64,
    },
    OrganizationCreated {
        organization_id: i64,
        name: String,
    },
    MembershipAdded {
        organization_id: i64,
        user_id: i64,
        role: Role,
    },
    MembershipRoleChanged {
        organization_id: i64,
        user_id: i64,
        role: Role,
    },
    MembershipRemoved {
        organization_id: i64,
        user_id: i64,
    },
    IntegrationAdded {
        integration_id: i64,
        service: String,
        owner: IntegrationOwner,
        status: IntegrationStatus,
        secret_version: i64,
    },
    IntegrationRotated {
        integration_id: i64,
        secret_version: i64,
    },
    IntegrationStatusChanged {
        integration_id: i64,
        status: IntegrationStatus,
    },
    IntegrationRemoved {
        integration_id: i64,
    },
    /// One stored version of an integration's credentials re-encrypted under another key (a
    /// key rotation). Names the keys by id only; the credentials themselves do not change.
    IntegrationSecretResealed {
        integration_id: i64,
        version: i64,
        from_key_id: String,
        to_key_id: String,
    },
    TokenIssued {
        token_id: i64,
        user_id: i64,
        name: String,
        /// Hex SHA-256 of the token; the token itself is never recorded.
        token_hash: String,
        expires_at: Option<Timestamp>,
        max_uses: Option<i64>,
        /// What the token may call; tokens issued before scopes existed are `leases` tokens.
        #[serde(default, skip_serializing_if = "TokenScope::is_leases")]
        scope: TokenScope,
    },
    TokenRevoked {
        token_id: i64,
        user_id: i64,
    },
    /// A request authenticated with a token: one use of it.
    #[serde(rename = "mcp_auth_success")]
    McpAuthSucceeded {
        token_id: i64,
        user_id: i64,
        at: Timestamp,
    },
    /// A refused request; `token_id`/`user_id` are set when the token was recognised. During a
    /// flood of refused requests, identical refusals turned away at the door are recorded as one
    /// event per window, with how many there were (`repeated`).
    #[serde(rename = "mcp_auth_failed")]
    McpAuthFailed {
        token_id: Option<i64>,
        user_id: Option<i64>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repeated: Option<Repeated>,
    },
    /// A user's password was set or changed. The Argon2id hash lives beside the log (like
    /// credentials), never in it.
    UserPasswordSet {
        user_id: i64,
    },
    /// A person signed in. `session_hash` is the hex SHA-256 of the session cookie's value (the
    /// cookie itself is never recorded); `expires_at` is the session's absolute end.
    AccountSessionStarted {
        session_hash: String,
        user_id: i64,
        expires_at: Timestamp,
    },
    /// A signed-in person was active again (recorded at most every few minutes per session), so
    /// the idle timeout counts from here.
    AccountSessionRefreshed {
        session_hash: String,
        user_id: i64,
    },
    /// A person signed out (or their session was ended for them).
    AccountSessionEnded {
        session_hash: String,
        user_id: i64,
        reason: String,
    },
    /// A refused sign-in. `user_id` is set when the e-mail belongs to a user; the e-mail and the
    /// password tried are never recorded.
    AccountSignInFailed {
        user_id: Option<i64>,
        reason: String,
    },
    LeaseCreated {
        lease_id: String,
        user_id: i64,
        server_id: String,
        services: Vec<String>,
        resolved: Vec<ResolvedService>,
        missing_services: Vec<String>,
        credential_scope: CredentialScope,
        ttl: i64,
        renewable: bool,
        max_renewals: i64,
        created_at: Timestamp,
        expires_at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_info: Option<Value>,
    },
    LeaseRenewed {
        lease_id: String,
        user_id: i64,
        ttl: i64,
        renewal_count: i64,
        renewed_at: Timestamp,
        expires_at: Timestamp,
    },
    LeaseRevoked {
        lease_id: String,
        user_id: i64,
        revoked_at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    LeaseExpired {
        lease_id: String,
        user_id: i64,
        expired_at: Timestamp,
    },
}

/// Every `event_type` of the vocabulary (the actions of the audit log), in the order above.
pub const EVENT_TYPES: &[&str] = &[
    "user_registered",
    "user_disabled",
    "organization_created",
    "membership_added",
    "membership_role_changed",
    "membership_removed",
    "integration_added",
    "integration_rotated",
    "integration_status_changed",
    "integration_removed",
    "integration_secret_resealed",
    "token_issued",
    "token_revoked",
    "mcp_auth_success",
    "mcp_auth_failed",
    "user_password_set",
    "account_session_started",
    "account_session_refreshed",
    "account_session_ended",
    "account_sign_in_failed",
    "lease_created",
    "lease_renewed",
    "lease_revoked",
    "lease_expired",
];

/// Whether a stored type name can be spliced into JSON as is (it always can for our own names).
fn is_tag(event_type: &str) -> bool {
    !event_type.is_empty()
        && event_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// An event split into the columns it is stored in.
pub struct EncodedEvent {
    pub event_type: String,
    pub event_version: i64,
    /// Canonical JSON: serde_json's map keeps keys sorted, so equal payloads give equal bytes.
    pub payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event {event_type} v{event_version}: {reason}")]
    Invalid {
        event_type: String,
        event_version: i64,
        reason: String,
    },
}

impl DomainEvent {
    /// The stored `event_type` (the serde tag of the variant).
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "user_registered",
            Self::UserDisabled { .. } => "user_disabled",
            Self::OrganizationCreated { .. } => "organization_created",
            Self::MembershipAdded { .. } => "membership_added",
            Self::MembershipRoleChanged { .. } => "membership_role_changed",
            Self::MembershipRemoved { .. } => "membership_removed",
            Self::IntegrationAdded { .. } => "integration_added",
            Self::IntegrationRotated { .. } => "integration_rotated",
            Self::IntegrationStatusChanged { .. } => "integration_status_changed",
            Self::IntegrationRemoved { .. } => "integration_removed",
            Self::IntegrationSecretResealed { .. } => "integration_secret_resealed",
            Self::TokenIssued { .. } => "token_issued",
            Self::TokenRevoked { .. } => "token_revoked",
            Self::McpAuthSucceeded { .. } => "mcp_auth_success",
            Self::McpAuthFailed { .. } => "mcp_auth_failed",
            Self::UserPasswordSet { .. } => "user_password_set",
            Self::AccountSessionStarted { .. } => "account_session_started",
            Self::AccountSessionRefreshed { .. } => "account_session_refreshed",
            Self::AccountSessionEnded { .. } => "account_session_ended",
            Self::AccountSignInFailed { .. } => "account_sign_in_failed",
            Self::LeaseCreated { .. } => "lease_created",
            Self::LeaseRenewed { .. } => "lease_renewed",
            Self::LeaseRevoked { .. } => "lease_revoked",
            Self::LeaseExpired { .. } => "lease_expired",
        }
    }

    pub fn encode(&self) -> EncodedEvent {
        let tagged = serde_json::to_value(self).expect("events serialize to JSON");
        let Value::Object(mut map) = tagged else {
            unreachable!("adjacently tagged enums serialize to objects")
        };
        let event_type = self.event_type().to_owned();
        let tag = map.remove("event_type");
        debug_assert_eq!(tag, Some(Value::String(event_type.clone())));
        let payload = map
            .remove("payload")
            .unwrap_or(Value::Object(Default::default()));
        EncodedEvent {
            event_type,
            event_version: CURRENT_EVENT_VERSION,
            payload: payload.to_string(),
        }
    }

    /// Decodes a stored event, upcasting older versions first.
    pub fn decode(
        event_type: &str,
        event_version: i64,
        payload: &str,
    ) -> Result<Self, DecodeError> {
        let invalid = |reason: String| DecodeError::Invalid {
            event_type: event_type.to_owned(),
            event_version,
            reason,
        };
        if event_version == CURRENT_EVENT_VERSION && is_tag(event_type) {
            // Fast path (replay reads millions of these): one parse, no intermediate value.
            let tagged = format!(r#"{{"event_type":"{event_type}","payload":{payload}}}"#);
            return serde_json::from_str(&tagged).map_err(|e| invalid(e.to_string()));
        }
        let value: Value = serde_json::from_str(payload).map_err(|e| invalid(e.to_string()))?;
        let value = crate::upcast::upcast(event_type, event_version, value).map_err(invalid)?;
        let tagged = serde_json::json!({ "event_type": event_type, "payload": value });
        serde_json::from_value(tagged).map_err(|e| invalid(e.to_string()))
    }

    /// The user a fact is about, where there is one (the audit log keys on it).
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::UserRegistered { user_id, .. }
            | Self::UserDisabled { user_id }
            | Self::MembershipAdded { user_id, .. }
            | Self::MembershipRoleChanged { user_id, .. }
            | Self::MembershipRemoved { user_id, .. }
            | Self::TokenIssued { user_id, .. }
            | Self::TokenRevoked { user_id, .. }
            | Self::McpAuthSucceeded { user_id, .. }
            | Self::UserPasswordSet { user_id }
            | Self::AccountSessionStarted { user_id, .. }
            | Self::AccountSessionRefreshed { user_id, .. }
            | Self::AccountSessionEnded { user_id, .. }
            | Self::LeaseCreated { user_id, .. }
            | Self::LeaseRenewed { user_id, .. }
            | Self::LeaseRevoked { user_id, .. }
            | Self::LeaseExpired { user_id, .. } => Some(*user_id),
            Self::McpAuthFailed { user_id, .. } | Self::AccountSignInFailed { user_id, .. } => {
                *user_id
            }

            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_stored_columns() {
        let event = DomainEvent::McpAuthFailed {
            token_id: Some(3),
            user_id: None,
            reason: "Token has expired".into(),
            repeated: None,
        };
        let encoded = event.encode();
        assert_eq!(encoded.event_type, "mcp_auth_failed");
        assert_eq!(
            encoded.payload,
            r#"{"reason":"Token has expired","token_id":3,"user_id":null}"#
        );
        let decoded =
            DomainEvent::decode(&encoded.event_type, encoded.event_version, &encoded.payload)
                .unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn event_types_are_snake_case_names() {
        let event = DomainEvent::MembershipRoleChanged {
            organization_id: 1,
            user_id: 2,
            role: Role::Admin,
        };
        assert_eq!(event.event_type(), "membership_role_changed");
    }

    #[test]
    fn every_event_type_is_listed_once() {
        let mut listed = EVENT_TYPES.to_vec();
        listed.sort_unstable();
        listed.dedup();
        assert_eq!(listed.len(), EVENT_TYPES.len());
        let resealed = DomainEvent::IntegrationSecretResealed {
            integration_id: 1,
            version: 2,
            from_key_id: "a".into(),
            to_key_id: "b".into(),
        };
        assert!(EVENT_TYPES.contains(&resealed.event_type()));
        assert_eq!(
            resealed.encode().payload,
            r#"{"from_key_id":"a","integration_id":1,"to_key_id":"b","version":2}"#
        );
    }

    #[test]
    fn unknown_event_types_are_errors_not_panics() {
        assert!(DomainEvent::decode("nope", 1, "{}").is_err());
        assert!(DomainEvent::decode("user_disabled", 1, "not json").is_err());
    }

    #[test]
    fn shared_with_parses_its_three_forms() {
        assert_eq!(
            SharedWith::parse("all_members"),
            Some(SharedWith::AllMembers)
        );
        assert_eq!(
            SharedWith::parse("admins_only"),
            Some(SharedWith::AdminsOnly)
        );
        assert_eq!(
            SharedWith::parse("3, 4"),
            Some(SharedWith::Users(vec![3, 4]))
        );
        assert_eq!(SharedWith::parse("x"), None);
        assert_eq!(SharedWith::parse(""), None);
        assert!(SharedWith::AdminsOnly.admits(9, Role::Owner));
        assert!(!SharedWith::AdminsOnly.admits(9, Role::Member));
        assert!(SharedWith::Users(vec![9]).admits(9, Role::Member));
    }
}

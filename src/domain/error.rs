//! Why a command was refused. Messages are fit for an operator or a client: never a secret.

/// A refusal of a command by an aggregate or by the command layer's cross-aggregate checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    #[error("user {0} does not exist")]
    UserNotFound(i64),
    #[error("user {0} is already disabled")]
    UserAlreadyDisabled(i64),
    #[error("organization {0} does not exist")]
    OrganizationNotFound(i64),
    #[error(
        "user {user_id} is already a member of organization {organization_id} with role {role}"
    )]
    AlreadyMember {
        organization_id: i64,
        user_id: i64,
        role: &'static str,
    },
    #[error("user {user_id} is not a member of organization {organization_id}")]
    NotAMember { organization_id: i64, user_id: i64 },
    #[error("integration {0} does not exist")]
    IntegrationNotFound(i64),
    #[error("integration {id} already has status {status}")]
    IntegrationStatusUnchanged { id: i64, status: &'static str },
    #[error("token {0} does not exist")]
    TokenNotFound(i64),
    #[error("token {0} is already revoked")]
    TokenAlreadyRevoked(i64),
    #[error("lease not found")]
    LeaseNotFound,
    #[error("This action is unauthorized.")]
    LeaseNotOwned,
    /// The token's scope does not cover the route (`leases` on the audit API, or the reverse).
    #[error("This action is unauthorized.")]
    InsufficientScope,
    /// `reason` is the contract's `error` string.
    #[error("Lease cannot be renewed")]
    LeaseCannotBeRenewed { reason: &'static str },
    #[error("Maximum renewal count reached")]
    MaxRenewalsReached,
    #[error("No credentials available for requested services")]
    NoCredentials { missing_services: Vec<String> },
    /// An account route's object that does not exist or is not the caller's: the same answer
    /// for both, so the route never confirms another user's ids.
    #[error("Not found")]
    NotYours,
    /// A member of an organization asking for what only its owners (or admins) may do.
    #[error("This action is unauthorized.")]
    NotPermitted,
    /// A session that ended (signed out) or never was.
    #[error("Unauthenticated")]
    SessionEnded,
    #[error("{0}")]
    Invalid(String),
}

/// Why a bearer token was refused; `Display` and the serialized form are the contract's `error`
/// string.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error, serde::Serialize, utoipa::ToSchema,
)]
pub enum AuthRefusal {
    #[error("Missing bearer token")]
    #[serde(rename = "Missing bearer token")]
    Missing,
    #[error("Invalid token")]
    #[serde(rename = "Invalid token")]
    Invalid,
    #[error("Token has expired")]
    #[serde(rename = "Token has expired")]
    Expired,
    #[error("Token is inactive")]
    #[serde(rename = "Token is inactive")]
    Inactive,
    #[error("Token usage limit exceeded")]
    #[serde(rename = "Token usage limit exceeded")]
    UsageLimitExceeded,
}

#[cfg(test)]
mod tests {
    use super::AuthRefusal;

    #[test]
    fn a_refusal_serializes_as_it_displays() {
        for refusal in [
            AuthRefusal::Missing,
            AuthRefusal::Invalid,
            AuthRefusal::Expired,
            AuthRefusal::Inactive,
            AuthRefusal::UsageLimitExceeded,
        ] {
            assert_eq!(
                serde_json::to_value(refusal).unwrap(),
                serde_json::Value::String(refusal.to_string())
            );
        }
    }
}

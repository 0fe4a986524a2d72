//! The account API's part of the OpenAPI document: the bodies its handlers read and the answers
//! they build, as types, and the refusals every account route shares.
//!
//! The handlers read bodies field by field (`session::Body`, for Laravel-style 422 errors) and
//! build their answers with `json!`, so the types here describe those bodies and are never built.
//! Keep them in step with the handlers: `tests/http/openapi.rs` and Schemathesis check real
//! answers against them. Nothing here is a credential, a cookie or a password.

use crate::domain::lease::LeaseStatus;
use crate::http::views::OrganizationView;
use crate::validate::ServiceName;
use mcp_events::{CredentialScope, IntegrationStatus, Role, Timestamp, TokenScope};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

/// The header every state-changing account request carries.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CsrfHeader {
    /// The session's `csrf_token` (from the sign-in's answer or `GET /api/account/me`); a
    /// `POST`, `PATCH` or `DELETE` without it, or with another session's, is `419`.
    #[param(rename = "X-CSRF-Token", pattern = "^[0-9a-f]{64}$")]
    pub csrf_token: String,
}

/// An account error: `{"message": …}` (Laravel's shape; no `error` code).
#[derive(Serialize, ToSchema)]
pub struct AccountMessage {
    #[schema(examples("Not found"))]
    pub message: String,
}

/// No session, or one that ended, expired, idled out or belongs to a disabled user (also the
/// answer to an MCP bearer token, which the account API never accepts).
#[derive(Serialize, ToSchema)]
pub struct SessionRequired {
    /// Always `Unauthenticated`.
    #[schema(pattern = "^Unauthenticated$")]
    pub message: String,
}

/// A state-changing request without its session's CSRF token (Laravel's 419).
#[derive(Serialize, ToSchema)]
pub struct CsrfMismatch {
    /// Always `CSRF token mismatch.`
    #[schema(pattern = "^CSRF token mismatch\\.$")]
    pub message: String,
}

/// A refused request (422): invalid fields (`errors` by field, Laravel style, the first message
/// in `message`), or a change the ledger refuses (`message` alone: e.g. a token already revoked,
/// an integration already in that status, one's own membership).
#[derive(Serialize, ToSchema)]
pub struct AccountUnprocessable {
    #[schema(examples("The service field is required."))]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// What any account route may answer besides its own responses.
#[derive(IntoResponses)]
pub enum Stack {
    /// A body over 64 KiB (declared, or as it arrives); the connection is closed.
    #[response(status = 413)]
    PayloadTooLarge(AccountMessage),
    /// The database is unreachable, full or shut down: nothing was applied, retry later; or the
    /// server is at its connection cap.
    #[response(status = 503)]
    Unavailable(AccountMessage),
    /// Anything unexpected; the details are in the server's log, under the request id.
    #[response(status = 500)]
    Internal(AccountMessage),
}

/// What a route that needs a session may answer besides its own responses.
#[derive(IntoResponses)]
pub enum SessionRefusals {
    /// No session (no `mcp_session` cookie, or one the server did not issue), or one that
    /// ended, expired or idled out, or whose user is disabled.
    #[response(status = 401)]
    Unauthenticated(SessionRequired),
}

/// What a state-changing route may answer besides its own responses.
#[derive(IntoResponses)]
pub enum CsrfRefusal {
    /// No `X-CSRF-Token`, or not this session's.
    #[response(status = 419)]
    CsrfMismatch(CsrfMismatch),
}

/// What a route that reads a JSON body may answer besides its own responses.
#[derive(IntoResponses)]
pub enum BodyRefusals {
    /// The body is not JSON, or not a JSON object.
    #[response(status = 400)]
    Malformed(AccountMessage),
    /// The body did not arrive within the request timeout; the connection is closed.
    #[response(status = 408)]
    TimedOut(AccountMessage),
    /// A body sent as anything but `application/json` (or `…+json`).
    #[response(status = 415)]
    UnsupportedMediaType(AccountMessage),
    /// Invalid fields, or a change the ledger refuses.
    #[response(status = 422)]
    Unprocessable(AccountUnprocessable),
}

/// The body of `POST /api/account/login`.
#[derive(ToSchema)]
#[schema(examples(json!({"email": "ada@example.com", "password": "correct horse battery staple"})))]
pub struct LoginRequest {
    /// The account's e-mail address (compared as stored, surrounding spaces ignored).
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(min_length = 1, format = Password)]
    pub password: String,
}

/// A new session: who signed in, and the session's CSRF token (the cookie is in `Set-Cookie`).
#[derive(ToSchema)]
pub struct SignedInView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    /// Send it as `X-CSRF-Token` with every `POST`, `PATCH` and `DELETE` of this session.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub csrf_token: String,
}

/// The signed-in person, their organizations, and the session's CSRF token.
#[derive(ToSchema)]
pub struct ProfileView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub organizations: Vec<OrganizationView>,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub csrf_token: String,
}

/// An integration as its owners see it: never its credentials.
#[derive(ToSchema)]
pub struct IntegrationView {
    pub id: i64,
    pub service: ServiceName,
    pub status: IntegrationStatus,
    /// Counts rotations: 1 for the credentials it was added with.
    pub secret_version: i64,
    /// The first 8 bytes of SHA-256 over the current sealed secret, in hex: it changes whenever
    /// the credentials (or the key sealing them) change, and tells nothing about them.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub fingerprint: Option<String>,
    /// An organization's integration: `all_members`, `admins_only` or the user ids allowed
    /// (`2,3`); `null` for a personal one.
    pub shared_with: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The body of `POST /api/account/integrations`.
#[derive(ToSchema)]
#[schema(examples(json!({"service": "todoist", "credentials": {"access_token": "t0d01st"}})))]
pub struct IntegrationRequest {
    pub service: ServiceName,
    pub credentials: Credentials,
}

/// The body of a rotation: the new credentials.
#[derive(ToSchema)]
#[schema(examples(json!({"credentials": {"access_token": "r0tat3d"}})))]
pub struct RotateRequest {
    pub credentials: Credentials,
}

/// The body of a status change.
#[derive(ToSchema)]
pub struct StatusRequest {
    pub status: IntegrationStatus,
}

/// An integration's credentials: any JSON object with at least one member (stored sealed, never
/// shown).
pub struct Credentials;

impl PartialSchema for Credentials {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .min_properties(Some(1))
            .description(Some(
                "Any JSON object with at least one member (stored sealed, never shown).",
            ))
            .examples([json!({"access_token": "t0k3n"})])
            .into()
    }
}

impl ToSchema for Credentials {}

/// Who may use an organization's integration: `all_members`, `admins_only`, or positive user
/// ids, as an array or as text separated by commas (`"2,3"`).
pub struct SharedWithChoice;

impl PartialSchema for SharedWithChoice {
    fn schema() -> RefOr<Schema> {
        let named = ObjectBuilder::new().schema_type(Type::String).examples([
            "all_members",
            "admins_only",
            "2,3",
        ]);
        let id = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1));
        let users = ArrayBuilder::new().items(id).min_items(Some(1));
        OneOfBuilder::new()
            .item(named)
            .item(users)
            .description(Some(
                "`all_members`, `admins_only`, or positive user ids (an array, or text \
                 separated by commas).",
            ))
            .into()
    }
}

impl ToSchema for SharedWithChoice {}

/// The body of `POST /api/account/organizations/{id}/integrations`.
#[derive(ToSchema)]
#[schema(examples(json!({"service": "jira", "credentials": {"api_token": "j1ra"}, "shared_with": "all_members"})))]
pub struct OrganizationIntegrationRequest {
    pub service: ServiceName,
    pub credentials: Credentials,
    /// `all_members` when absent.
    pub shared_with: Option<SharedWithChoice>,
}

/// A token's state now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

/// A token as its owner sees it, with its usage: never the token.
#[derive(ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub status: TokenStatus,
    pub expires_at: Option<Timestamp>,
    pub max_uses: Option<i64>,
    pub usage_count: i64,
    pub last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A new token: its view and, this once, the token itself.
#[derive(ToSchema)]
pub struct CreatedTokenView {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub status: TokenStatus,
    pub expires_at: Option<Timestamp>,
    pub max_uses: Option<i64>,
    pub usage_count: i64,
    pub last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// `mcp_<name>_…`: shown here once, stored only as a hash.
    #[schema(pattern = "^mcp_")]
    pub token: String,
}

/// The body of `POST /api/account/tokens`.
#[derive(ToSchema)]
#[schema(examples(json!({"name": "laptop", "scope": "leases", "expires_in": 86400})))]
pub struct TokenRequest {
    /// 1 to 255 characters, no control characters.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// `leases` when absent.
    pub scope: Option<TokenScope>,
    /// Seconds until the token expires, at most 100 years (`maximum`); never when absent.
    #[schema(minimum = 1)]
    pub expires_in: Option<i64>,
    /// Uses before the token is used up; unlimited when absent.
    #[schema(minimum = 1)]
    pub max_uses: Option<i64>,
}

/// A lease as its owner sees it: never its credentials.
#[derive(ToSchema)]
pub struct OwnLeaseView {
    #[schema(examples("lse_8f3a1c9e0b7d4f2a6c5e1b9d3f7a2c4e6b8d0f1a"))]
    pub lease_id: String,
    pub user_id: i64,
    /// The token that created it.
    pub token_id: Option<i64>,
    pub server_id: String,
    pub status: LeaseStatus,
    /// The services requested.
    pub services: Vec<String>,
    /// The requested services no credential resolved for.
    pub missing_services: Vec<String>,
    pub credential_scope: CredentialScope,
    pub renewable: bool,
    pub renewal_count: i64,
    pub max_renewals: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_renewed_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub revoke_reason: Option<String>,
}

/// One of the person's audit records.
#[derive(ToSchema)]
pub struct ActivityRecord {
    /// The event's position in the log.
    pub id: i64,
    #[schema(examples("lease_created"))]
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// The record's details, as JSON (never a token or a credential).
    pub details: Value,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
}

/// A member of an organization.
#[derive(ToSchema)]
pub struct MemberView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// Someone just added to an organization.
#[derive(ToSchema)]
pub struct AddedMemberView {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// A member's new role.
#[derive(ToSchema)]
pub struct MemberRoleView {
    pub user_id: i64,
    pub role: Role,
}

/// The body of `POST /api/account/organizations/{id}/members`.
#[derive(ToSchema)]
#[schema(examples(json!({"email": "ada@example.com", "role": "member"})))]
pub struct MemberRequest {
    /// The e-mail of someone who has an account.
    #[schema(min_length = 1)]
    pub email: String,
    pub role: Role,
}

/// The body of a role change.
#[derive(ToSchema)]
pub struct RoleRequest {
    pub role: Role,
}

/// The schemas the account routes' shared refusals refer to, for `openapi::finish`.
pub fn refusal_schemas() -> Vec<(String, RefOr<Schema>)> {
    vec![
        (AccountMessage::name().into(), AccountMessage::schema()),
        (SessionRequired::name().into(), SessionRequired::schema()),
        (CsrfMismatch::name().into(), CsrfMismatch::schema()),
        (
            AccountUnprocessable::name().into(),
            AccountUnprocessable::schema(),
        ),
    ]
}

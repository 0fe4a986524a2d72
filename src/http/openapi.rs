//! The OpenAPI 3.1 document of this server, served at `GET /api/openapi.json` (no token, nothing
//! recorded, like `/healthz`).
//!
//! It is generated, never written by hand: each handler's `#[utoipa::path]` attribute gives its
//! route, method, parameters and responses, and the types it answers with (`views.rs`,
//! `error.rs`, `audit.rs`, `health.rs`, …) give the schemas. The router registers handlers
//! through `utoipa_axum::routes!`, so a route's path and method and its description come from
//! that one attribute. `ROUTES` is the route table: `tests/http/openapi.rs` checks that the
//! server serves each of these and that the document describes exactly these, so a route added
//! without a description, or a description without its route, fails the tests.

use super::error::{ErrorBody, Unauthenticated};
use crate::commands::tokens::MAX_EXPIRES_IN;
use crate::ledger::LeasePolicy;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Number;
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// Every route the API's address serves, `(method, path template)`, in the document's spelling
/// (`{id}`; the tiles' `{path}` stands for the rest of the path, slashes included). `/metrics`
/// is here when it is served on the API's address (no `--metrics-bind`).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/mcp/me"),
    ("POST", "/api/mcp/credentials/lease"),
    ("POST", "/api/mcp/credentials/lease/{id}/renew"),
    ("GET", "/api/mcp/credentials/lease/{id}"),
    ("DELETE", "/api/mcp/credentials/lease/{id}"),
    ("GET", "/api/mcp/credentials/lease/{id}/receipt"),
    ("GET", "/api/audit/events"),
    ("GET", "/api/audit/events/stream"),
    ("GET", "/api/audit/checkpoint"),
    ("GET", "/api/audit/key"),
    ("GET", "/api/audit/proof/inclusion"),
    ("GET", "/api/audit/proof/consistency"),
    ("GET", "/api/audit/tlog/checkpoint"),
    ("GET", "/api/audit/tlog/tile/{path}"),
    ("POST", "/api/account/login"),
    ("POST", "/api/account/logout"),
    ("GET", "/api/account/me"),
    ("GET", "/api/account/integrations"),
    ("POST", "/api/account/integrations"),
    ("POST", "/api/account/integrations/{id}/rotate"),
    ("PATCH", "/api/account/integrations/{id}"),
    ("DELETE", "/api/account/integrations/{id}"),
    ("GET", "/api/account/tokens"),
    ("POST", "/api/account/tokens"),
    ("DELETE", "/api/account/tokens/{id}"),
    ("GET", "/api/account/leases"),
    ("DELETE", "/api/account/leases/{lease_id}"),
    ("GET", "/api/account/activity"),
    ("GET", "/api/account/organizations/{id}/members"),
    ("POST", "/api/account/organizations/{id}/members"),
    ("PATCH", "/api/account/organizations/{id}/members/{user_id}"),
    (
        "DELETE",
        "/api/account/organizations/{id}/members/{user_id}",
    ),
    ("GET", "/api/account/organizations/{id}/integrations"),
    ("POST", "/api/account/organizations/{id}/integrations"),
    (
        "POST",
        "/api/account/organizations/{id}/integrations/{iid}/rotate",
    ),
    (
        "PATCH",
        "/api/account/organizations/{id}/integrations/{iid}",
    ),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
];

/// The security scheme of tokens of the `leases` scope (the default).
pub const LEASES_TOKEN: &str = "leases_token";
/// The security scheme of tokens of the `audit` scope.
pub const AUDIT_TOKEN: &str = "audit_token";
/// The security scheme of the account API: the session cookie.
pub const ACCOUNT_SESSION: &str = "account_session";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "MCP Manager",
        description = "Time-limited credential leases for MCP servers, recorded in an immutable, \
hash-chained event ledger; and the auditors' API over that ledger (signed checkpoints, proofs, \
tiles).\n\n\
Every `/api/mcp/*` and `/api/audit/*` route takes `Authorization: Bearer <token>` (the scheme in \
any letter case). A token has one scope: `leases` tokens may call the lease routes, `audit` \
tokens the auditors' routes, and both `GET /api/mcp/me`; any other combination is `403` with \
`error: insufficient_scope`, after the use is counted and recorded. Every accepted request \
counts one use of its token and is recorded; so is every refused one, except that past a budget \
of refusals per client address and per token a request that is certainly refused is answered \
`429` with `Retry-After` and counted together with others. Timestamps are UTC with exactly six \
fractional digits and `Z`. Every response carries `x-request-id`. Past the connection cap a \
connection is answered `503` (with `Retry-After: 1`) and closed, whatever its route.\n\n\
The account API (`/api/account/*`) is for people: `POST /api/account/login` with an e-mail and \
password starts a session, whose cookie `mcp_session` every other account route takes (never a \
bearer token); every `POST`, `PATCH` and `DELETE` also carries the session's `X-CSRF-Token`, \
else `419`. Another person's object, or an organization the caller is not in, is `404`, never \
a hint that it exists. Its errors are `{\"message\": …}`, and Laravel-style `422`s.",
    ),
    tags(
        (name = "leases", description = "The MCP API: who the token is, and credential leases."),
        (name = "audit", description = "The auditors' read-only API (tokens of the `audit` scope)."),
        (name = "operations", description = "Health, readiness, metrics and this document: no token."),
        (name = "account", description = "People's own integrations, tokens, leases, activity and \
organizations, with a session cookie (`POST /api/account/login`)."),
    ),
)]
pub struct ApiDoc;

/// What every authenticated route may answer besides its own responses.
#[derive(IntoResponses)]
pub enum Refusals {
    /// The bearer token is missing, unknown, expired, inactive (revoked, or its user disabled)
    /// or used up.
    #[response(status = 401)]
    Unauthenticated(Unauthenticated),
    /// A declared `Content-Length` over 64 KiB: refused before authentication, without reading
    /// the body, and the connection closed (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Too many refused requests from this address or with this token, and this one would be
    /// refused too (`too_many_attempts`).
    #[response(
        status = 429,
        headers(("Retry-After" = u64, description = "Seconds until the budget allows a refusal again."))
    )]
    TooManyAttempts(ErrorBody),
    /// The database is unreachable, full or shut down: nothing was applied, retry later; or the
    /// server is at its connection cap (`unavailable`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// Anything unexpected (`internal`); the details are in the server's log, under the request
    /// id.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// What a route without a token may answer besides its own responses: the HTTP stack's.
#[derive(IntoResponses)]
pub enum Stack {
    /// A declared `Content-Length` over 64 KiB (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Anything unexpected (`internal`).
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// The document as served: the routes' descriptions, the security schemes, the request id
/// every response carries, and this server's TTL bounds.
pub fn finish(mut document: OpenApi, policy: LeasePolicy) -> OpenApi {
    let components = document.components.get_or_insert_with(Default::default);
    for (name, scope) in [(LEASES_TOKEN, "leases"), (AUDIT_TOKEN, "audit")] {
        components.add_security_scheme(
            name,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!(
                        "A bearer token of the `{scope}` scope (`mcp-manager token create \
                         --user ID --scope {scope}`)."
                    )))
                    .build(),
            ),
        );
    }
    components.add_security_scheme(
        ACCOUNT_SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::accounts::session::COOKIE,
            "A person's session: the cookie `POST /api/account/login` sets (64 hex digits). \
             State-changing requests also carry the session's `X-CSRF-Token`.",
        ))),
    );
    // Schemas the responses above refer to.
    let shared = [
        (ErrorBody::name(), ErrorBody::schema()),
        (Unauthenticated::name(), Unauthenticated::schema()),
        (
            crate::domain::AuthRefusal::name(),
            crate::domain::AuthRefusal::schema(),
        ),
    ]
    .into_iter()
    .map(|(name, schema)| (name.into_owned(), schema))
    .chain(super::account::openapi::refusal_schemas());
    for (name, schema) in shared {
        components.schemas.entry(name).or_insert(schema);
    }
    // What the attributes cannot say: this server's TTL bounds, that services are distinct
    // (utoipa 5 has no `unique_items`), and a token's longest life (a constant's value).
    if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("TokenRequest") {
        if let Some(RefOr::T(Schema::Object(expires_in))) = object.properties.get_mut("expires_in")
        {
            expires_in.maximum = Some(Number::Int(MAX_EXPIRES_IN as isize));
        }
    }
    for body in ["LeaseRequestBody", "RenewRequestBody"] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(body) {
            if let Some(RefOr::T(Schema::Object(ttl))) = object.properties.get_mut("ttl") {
                ttl.minimum = Some(Number::Int(policy.min_ttl as isize));
                ttl.maximum = Some(Number::Int(policy.max_ttl as isize));
            }
            if let Some(RefOr::T(Schema::Array(services))) = object.properties.get_mut("services") {
                services.unique_items = true;
            }
        }
    }
    let request_id = HeaderBuilder::new()
        .schema(String::schema())
        .description(Some(
            "The request's id: the client's `x-request-id` if it is 1-64 characters of \
             `A-Za-z0-9._-`, else a fresh UUID; the server's log lines carry it.",
        ))
        .build();
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("x-request-id".to_owned(), request_id.clone());
                }
            }
        }
    }
    document
}

/// A body of raw bytes (a tile), for the document.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/octet-stream")
            .into()
    }
}

impl ToSchema for Binary {}

/// The document as JSON. utoipa 5 writes a link's fields in snake case (`operation_id`; fixed in
/// utoipa 6, which needs a newer Rust than this project's minimum): they are renamed to the
/// specification's `operationId`, `operationRef` and `requestBody` here.
pub fn to_json(document: &OpenApi) -> Bytes {
    let mut value = serde_json::to_value(document).unwrap_or_default();
    let operations = value
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut());
        for response in responses {
            let links = response
                .get_mut("links")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|links| links.values_mut())
                .filter_map(Value::as_object_mut);
            for link in links {
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(field) = link.remove(snake) {
                        link.insert(camel.to_owned(), field);
                    }
                }
            }
        }
    }
    Bytes::from(value.to_string())
}

/// The document, serialized once when the router is built.
#[derive(Clone)]
pub struct Document(pub Bytes);

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openapi_document",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", body = Object),
        Stack,
    )
)]
pub async fn document(Extension(Document(json)): Extension<Document>) -> Response {
    ([(CONTENT_TYPE, "application/json")], json).into_response()
}

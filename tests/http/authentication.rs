//! Authentication (the original's McpAuthenticationTest, ported): the five 401 cases, usage
//! tracking and limits, and the audit records of successes and failures.

use crate::helpers::{into_parts, spawn_app};
use mcp_events::{both_backends, Backend, Role};
use reqwest::Method;
use serde_json::json;

const ME: &str = "/api/mcp/me";

async fn a_valid_token_authenticates(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    let (status, body) = app.get(ME, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], user);
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["organizations"], json!([]));
    assert_eq!(body["available_services"], json!([]));
}

async fn unauthenticated(
    app: &crate::helpers::TestApp,
    header: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = app.client.get(format!("{}{ME}", app.base));
    if let Some(value) = header {
        request = request.header("authorization", value);
    }
    into_parts(request.send().await.unwrap()).await
}

async fn a_missing_or_malformed_header_is_a_missing_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    for header in [
        None,
        Some(token.as_str()),
        Some("Token abc"),
        Some("Bearer "),
        Some("bearer "),
        Some("Bearerx abc"),
    ] {
        let (status, body) = unauthenticated(&app, header).await;
        assert_eq!(status, 401, "{header:?}");
        assert_eq!(
            body,
            json!({"message": "Unauthenticated", "error": "Missing bearer token"})
        );
    }
}

/// The scheme in any letter case, as Laravel's `bearerToken()` accepts it.
async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("{scheme} {token}");
        let response = app
            .client
            .get(format!("{}{ME}", app.base))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    let (status, body) = unauthenticated(&app, Some("bearer x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Invalid token");
}

async fn an_unknown_token_is_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.get(ME, "mcp_dev_0000").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"message": "Unauthenticated", "error": "Invalid token"})
    );
}

async fn an_expired_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token_with(user, Some(60), None).await;
    assert_eq!(app.get(ME, &token).await.0, 200);
    app.clock.advance(61);
    let (status, body) = app.get(ME, &token).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Token has expired");
}

async fn revoked_tokens_and_disabled_users_are_inactive(backend: Backend) {
    use mcp_manager::commands::directory::DisableUser;
    use mcp_manager::commands::tokens::RevokeToken;
    let app = spawn_app(backend).await;
    let ada = app.user("ada@example.com").await;
    let revoked = app.token(ada).await;
    app.ledger
        .submit(RevokeToken {
            token_id: 1,
            metadata: mcp_events::Metadata::default(),
        })
        .await
        .unwrap();
    assert_eq!(app.get(ME, &revoked).await.1["error"], "Token is inactive");

    let bob = app.user("bob@example.com").await;
    let token = app.token(bob).await;
    assert_eq!(app.get(ME, &token).await.0, 200);
    app.ledger
        .submit(DisableUser {
            user_id: bob,
            metadata: mcp_events::Metadata::default(),
        })
        .await
        .unwrap();
    let (status, body) = app.get(ME, &token).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Token is inactive");
}

async fn every_accepted_request_counts_a_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    for _ in 0..3 {
        assert_eq!(app.get(ME, &token).await.0, 200);
    }
    // A refused lease request is still an accepted (authenticated) request.
    assert_eq!(app.lease(&token, &["nothing"]).await.0, 422);
    let row = app.token_row(1).await;
    assert_eq!(row.usage_count, 4);
    assert!(row.last_used_at.is_some());
}

async fn a_usage_limit_is_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token_with(user, None, Some(2)).await;
    assert_eq!(app.get(ME, &token).await.0, 200);
    assert_eq!(app.get(ME, &token).await.0, 200);
    let (status, body) = app.get(ME, &token).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Token usage limit exceeded");
    assert_eq!(app.token_row(1).await.usage_count, 2);
}

async fn successes_and_failures_are_audited_without_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token_with(user, Some(60), None).await;
    app.get(ME, &token).await;
    app.get(ME, "mcp_x_unknown").await;
    app.clock.advance(120);
    app.get(ME, &token).await;

    let successes = app.audit(Some(user), "mcp_auth_success").await;
    assert_eq!(successes.len(), 1);
    assert_eq!(successes[0].entity_type, "UserToken");
    assert_eq!(successes[0].entity_id, "1");
    assert_eq!(successes[0].ip.as_deref(), Some("127.0.0.1"));

    let failures = app.audit(None, "mcp_auth_failed").await;
    assert_eq!(failures.len(), 2);
    // Newest first: the expired token (recognised, so its owner is named), then the unknown one.
    assert_eq!(failures[0].user_id, Some(user));
    assert!(failures[0].details.contains("Token has expired"));
    assert_eq!(failures[1].user_id, None);

    let pool = app.ledger.store().database().pool();
    let log: Vec<(String, String)> = sqlx::query_as("select payload, metadata from events")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(log
        .iter()
        .all(|(p, m)| !p.contains(&token) && !m.contains(&token)));
}

async fn organizations_are_listed_with_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let first = app.org("Platform").await;
    let second = app.org("Research").await;
    app.member(second, user, Role::Member).await;
    app.member(first, user, Role::Admin).await;
    let token = app.token(user).await;
    let (_, body) = app.get(ME, &token).await;
    assert_eq!(
        body["organizations"],
        json!([
            {"id": first, "name": "Platform", "role": "admin"},
            {"id": second, "name": "Research", "role": "member"},
        ])
    );
}

async fn unknown_routes_and_methods_answer_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.request(Method::GET, "/nope", None, None).await;
    assert_eq!(into_parts(response).await.0, 404);
    let response = app.request(Method::PUT, ME, None, None).await;
    assert_eq!(into_parts(response).await.0, 405);
}

/// An audit token reads `/me` but no lease route: 403 insufficient_scope, after its use is
/// counted and recorded like any authenticated request.
async fn an_audit_token_cannot_use_the_lease_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("auditor@example.com").await;
    app.personal(user, "todoist", serde_json::json!({"access_token": "t"}))
        .await;
    let token = app
        .token_scoped(user, mcp_events::TokenScope::Audit, None, None)
        .await;
    let (status, _) = app.get(ME, &token).await;
    assert_eq!(status, 200);
    let (status, body) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"message": "This action is unauthorized.", "error": "insufficient_scope"})
    );
    let (status, _) = app
        .get(
            &format!("/api/mcp/credentials/lease/lse_{}", "0".repeat(48)),
            &token,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(app.token_row(1).await.usage_count, 3);
    assert_eq!(app.audit(Some(user), "mcp_auth_success").await.len(), 3);
    assert!(app.audit(Some(user), "lease_created").await.is_empty());
}

both_backends! {
    audit_scope => an_audit_token_cannot_use_the_lease_routes,
    valid_token => a_valid_token_authenticates,
    missing_token => a_missing_or_malformed_header_is_a_missing_bearer_token,
    bearer_any_case => the_bearer_scheme_is_case_insensitive,
    invalid_token => an_unknown_token_is_invalid,
    expired_token => an_expired_token_is_refused,
    inactive_token => revoked_tokens_and_disabled_users_are_inactive,
    usage_tracked => every_accepted_request_counts_a_use,
    usage_limit => a_usage_limit_is_enforced,
    audited => successes_and_failures_are_audited_without_the_token,
    organizations_listed => organizations_are_listed_with_roles,
    json_fallbacks => unknown_routes_and_methods_answer_json,
}

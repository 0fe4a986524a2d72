//! The exact JSON of every answer the contract pins, as snapshots (ids and times redacted). One
//! snapshot per shape serves both backends: they must answer alike.

use crate::helpers::{into_parts, spawn_app, TestApp};
use mcp_events::{both_backends, Backend, Role, SharedWith};
use reqwest::Method;
use serde_json::{json, Value};

const LEASES: &str = "/api/mcp/credentials/lease";

/// A time is redacted, but whether there is one is kept.
fn time(value: insta::internals::Content, _: insta::internals::ContentPath<'_>) -> String {
    match value.as_str() {
        Some(text) if text.len() == 27 && text.ends_with('Z') => "[time]".to_owned(),
        Some(other) => format!("[not a contract time: {other}]"),
        None => "[null]".to_owned(),
    }
}

/// Snapshots `body` under `name` with `status`, lease ids and times redacted.
fn snapshot(name: &str, status: u16, body: Value) {
    let shown = json!({ "status": status, "body": body });
    insta::with_settings!({ prepend_module_to_snapshot => false, snapshot_path => "snapshots" }, {
        insta::assert_json_snapshot!(name, shown, {
            ".body.lease_id" => "[lease id]",
            ".body.expires_at" => insta::dynamic_redaction(time),
            ".body.created_at" => insta::dynamic_redaction(time),
            ".body.last_renewed_at" => insta::dynamic_redaction(time),
            ".body.revoked_at" => insta::dynamic_redaction(time),
        });
    });
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    into_parts(request.send().await.unwrap()).await
}

async fn every_answer_has_the_contract_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada@example.com").await;
    let bob = app.user("bob@example.com").await;
    let org = app.org("Platform").await;
    app.member(org, ada, Role::Owner).await;
    app.personal(ada, "todoist", json!({"access_token": "todo-1"}))
        .await;
    app.shared(
        org,
        "jira",
        SharedWith::AllMembers,
        json!({"url": "https://j", "api_token": "jira-1"}),
    )
    .await;
    let token = app.token(ada).await;
    let bobs = app.token(bob).await;

    let (status, body) = app.get("/api/mcp/me", &token).await;
    snapshot("me", status, body);
    let (status, body) = app.lease(&token, &["todoist", "jira", "sentry"]).await;
    let id = body["lease_id"].as_str().unwrap().to_owned();
    snapshot("lease_created", status, body);
    let (status, body) = app
        .post(&format!("{LEASES}/{id}/renew"), &token, json!({}))
        .await;
    snapshot("lease_renewed", status, body);
    let (status, body) = app.get(&format!("{LEASES}/{id}"), &token).await;
    snapshot("lease_shown", status, body);
    let (status, body) = raw(
        &app,
        Method::DELETE,
        &format!("{LEASES}/{id}"),
        Some(&token),
        None,
    )
    .await;
    snapshot("lease_revoked", status, body);

    let refusals: Vec<(&str, (u16, Value))> = vec![
        (
            "missing_token",
            raw(&app, Method::GET, "/api/mcp/me", None, None).await,
        ),
        (
            "invalid_token",
            raw(&app, Method::GET, "/api/mcp/me", Some("mcp_x_0"), None).await,
        ),
        (
            "another_users_lease",
            app.get(&format!("{LEASES}/{id}"), &bobs).await,
        ),
        (
            "unknown_lease",
            app.get(&format!("{LEASES}/lse_{}", "0".repeat(48)), &token)
                .await,
        ),
        (
            "cannot_renew",
            app.post(&format!("{LEASES}/{id}/renew"), &token, json!({}))
                .await,
        ),
        ("no_credentials", app.lease(&token, &["sentry"]).await),
        (
            "validation",
            raw(
                &app,
                Method::POST,
                LEASES,
                Some(&token),
                Some(r#"{"services":[],"ttl":"x"}"#),
            )
            .await,
        ),
        (
            "invalid_json",
            raw(&app, Method::POST, LEASES, Some(&token), Some("{nope")).await,
        ),
        (
            "unknown_route",
            raw(&app, Method::GET, "/api/nothing", Some(&token), None).await,
        ),
        (
            "wrong_method",
            raw(&app, Method::PUT, "/api/mcp/me", Some(&token), None).await,
        ),
    ];
    for (name, (status, body)) in refusals {
        snapshot(name, status, body);
    }
}

both_backends! {
    shapes => every_answer_has_the_contract_shape,
}

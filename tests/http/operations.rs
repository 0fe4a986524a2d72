//! The operator's routes: `/healthz`, `/readyz` (and each way it fails), `/metrics`, and
//! request ids. None of them authenticates or records anything.

use crate::helpers::spawn_app;
use mcp_events::Metadata;
use mcp_events::{both_backends, Backend, EventStore, IntegrationOwner, IntegrationStatus};
use mcp_manager::commands::integrations::AddIntegration;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{Ledger, LedgerSetup};
use mcp_manager::validate::ServiceName;
use serde_json::{json, Value};
use std::time::Duration;

async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    crate::helpers::into_parts(response).await
}

async fn healthy_apps_are_alive_and_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        get(&app.base, "/healthz").await,
        (200, json!({"status": "ok"}))
    );
    let (status, body) = get(&app.base, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "ok", "checks": {
            "database": {"status": "ok"},
            "writer": {"status": "ok"},
            "projections": {"status": "ok"},
            "encryption_key": {"status": "ok"},
            "checkpoints": {"status": "ok"},
        }})
    );
    // Probes authenticate nobody and record nothing.
    let metrics = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(app.audit(None, "mcp_auth_failed").await.is_empty());
    assert!(app.audit(None, "mcp_auth_success").await.is_empty());
}

/// Secrets sealed with another key than the server's (added by another process on the same
/// database, as a second replica with the wrong key would): not ready, naming both key ids
/// and no key material.
async fn secrets_under_another_key_make_the_app_unready(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let other_key = EncryptionKey::generate();
    let other = Ledger::open(
        EventStore::new(app.ledger.store().database().clone()),
        LedgerSetup::new(other_key.clone()),
    )
    .await
    .unwrap();
    other
        .submit(AddIntegration {
            service: ServiceName::parse("todoist").unwrap(),
            owner: IntegrationOwner::User { user_id: user },
            status: IntegrationStatus::Active,
            credentials: json!({"access_token": "t"}).as_object().cloned().unwrap(),
            metadata: Metadata::actor("test"),
        })
        .await
        .unwrap();

    let (status, body) = get(&app.base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["writer"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["projections"]["status"], "ok", "{body}");
    let key = &body["checks"]["encryption_key"];
    assert_eq!(key["status"], "failing", "{body}");
    let detail = key["detail"].as_str().unwrap();
    let configured = app.ledger.keys().unwrap().current().key_id();
    assert!(
        detail.contains(other_key.key_id()) && detail.contains(configured),
        "the detail names both key ids: {detail}"
    );

    // Still alive: a restart would not help, a key would.
    assert_eq!(get(&app.base, "/healthz").await.0, 200);
}

/// A writer task that has died makes the app unready (its requests could never be written).
async fn a_dead_writer_makes_the_app_unready(backend: Backend) {
    let app = spawn_app(backend).await;
    app.ledger.abort_writer();
    let mut body = Value::Null;
    for _ in 0..100 {
        let (status, answer) = get(&app.base, "/readyz").await;
        body = answer;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body["checks"]["writer"]["status"], "failing", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
}

/// `/metrics` speaks the Prometheus text format, labels requests by route template (never by
/// a lease id from the path) and counts refused tokens by reason. (The format is checked with
/// a real Prometheus parser against the binary in tests/operations.rs.)
async fn metrics_label_requests_by_route_template(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    let (status, _) = app
        .get("/api/mcp/credentials/lease/lse_secretish123", &token)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/mcp/me", "not-a-token").await;
    assert_eq!(status, 401);

    let response = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    for expected in [
        "# TYPE mcp_http_requests_total counter",
        r#"route="/api/mcp/credentials/lease/{id}""#,
        "# TYPE mcp_http_request_duration_seconds histogram",
        r#"mcp_build_info{version=""#,
        r#"mcp_auth_failures_total{reason="invalid"}"#,
        "# TYPE mcp_writer_batch_size histogram",
        r#"mcp_events_appended_total{type="user_registered"}"#,
        "mcp_leases_active ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("lse_secretish123"), "{text}");
    assert!(!text.contains("not-a-token"), "{text}");
}

/// A client's well-formed `x-request-id` is kept (to follow a request through a proxy);
/// anything else is replaced by a fresh id.
async fn well_formed_request_ids_are_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = reqwest::Client::new();
    let id_for = |sent: String| {
        let request = client
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", sent);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    for kept in ["abc-123", "Trace_9.x", &"a".repeat(64)] {
        assert_eq!(id_for(kept.to_owned()).await, kept);
    }
    for replaced in ["", "has space", "semi;colon", &"a".repeat(65), "ü"] {
        let id = id_for(replaced.to_owned()).await;
        assert_ne!(id, replaced);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
}

both_backends! {
    healthy => healthy_apps_are_alive_and_ready,
    poisoned_key => secrets_under_another_key_make_the_app_unready,
    dead_writer => a_dead_writer_makes_the_app_unready,
    metrics_by_route => metrics_label_requests_by_route_template,
    request_ids => well_formed_request_ids_are_kept,
}

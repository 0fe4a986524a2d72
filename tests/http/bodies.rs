//! Every refusal of a bad body is JSON with a 4xx status, never a 500 or a plain-text page.

use crate::helpers::{into_parts, spawn_app};
use mcp_events::{both_backends, Backend};

async fn bad_bodies_get_clean_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    let url = format!("{}/api/mcp/credentials/lease", app.base);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!(
        r#"{{"services":["x"],"server_id":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(&str, String, u16)> = vec![
        ("application/json", "{not json".into(), 400),
        (
            "text/plain",
            r#"{"services":["x"],"server_id":"s"}"#.into(),
            415,
        ),
        ("application/json", huge, 413),
        ("application/json", deep, 400),
        ("application/json", "[1,2]".into(), 400),
        (
            "application/json",
            r#"{"services":"todoist","server_id":"s"}"#.into(),
            422,
        ),
    ];
    for (content_type, body, expected) in cases {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = into_parts(response).await;
        assert_eq!(status, expected, "{json}");
        assert!(json["message"].is_string(), "{json}");
    }
}

async fn authentication_is_checked_before_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .post(format!("{}/api/mcp/credentials/lease", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, json) = into_parts(response).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"], "Missing bearer token");
}

/// Values a backend cannot store (NUL, which PostgreSQL refuses in text) are refused before
/// storage, alike on both backends: 422 in a body, 404 for a lease id in the path. Nobody
/// else's request is touched (see tests/ledger.rs for the batch side).
async fn unstorable_values_are_refused_at_the_boundary(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    app.personal(user, "todoist", serde_json::json!({"access_token": "t"}))
        .await;
    let (status, body) = app
        .post(
            "/api/mcp/credentials/lease",
            &token,
            serde_json::json!({"services": ["todoist"], "server_id": "x\0y"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["server_id"].is_array(), "{body}");
    let (status, lease) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 201, "{lease}");
    let id = lease["lease_id"].as_str().unwrap();
    let response = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/mcp/credentials/lease/{id}"),
            Some(&token),
            Some(serde_json::json!({"reason": "a\0b"})),
        )
        .await;
    let (status, body) = into_parts(response).await;
    assert_eq!(status, 422, "{body}");
    for path in ["x%00y", "lse_x%00y", "%00"] {
        let (status, body) = app
            .get(&format!("/api/mcp/credentials/lease/{path}"), &token)
            .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["message"], "Lease not found");
    }
    // Still usable, and every refusal above counted as a use of the token.
    let (status, _) = app
        .get(&format!("/api/mcp/credentials/lease/{id}"), &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.token_row(1).await.usage_count, 7);
}

/// What Laravel accepts, this server accepts (found by Schemathesis against the OpenAPI
/// document): a JSON `null` body is no body, and a whole number written `3600.0` is an integer.
async fn null_bodies_and_whole_floats_are_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    app.personal(user, "todoist", serde_json::json!({"access_token": "t"}))
        .await;
    let token = app.token(user).await;
    let send = |method: reqwest::Method, path: String, body: &'static str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let lease = "/api/mcp/credentials/lease".to_owned();
    let (status, created) = into_parts(
        send(
            reqwest::Method::POST,
            lease.clone(),
            r#"{"services":["todoist"],"server_id":"s","ttl":120.0}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["lease_id"].as_str().unwrap();
    let (status, renewed) = into_parts(
        send(reqwest::Method::POST, format!("{lease}/{id}/renew"), "null")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &renewed["renewal_count"]),
        (200, &1.into()),
        "{renewed}"
    );
    let (status, renewed) = into_parts(
        send(
            reqwest::Method::POST,
            format!("{lease}/{id}/renew"),
            r#"{"ttl":600.0}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    for (body, message) in [
        (r#"{"ttl":600.5}"#, "The ttl field must be an integer."),
        (
            r#"{"ttl":1e300}"#,
            "The ttl field must be between 60 and 86400.",
        ),
        (
            r#"{"ttl":18446744073709551615}"#,
            "The ttl field must be between 60 and 86400.",
        ),
    ] {
        let (status, refused) = into_parts(
            send(reqwest::Method::POST, format!("{lease}/{id}/renew"), body)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{body}: {refused}");
        assert_eq!(refused["errors"]["ttl"][0], message, "{body}");
    }
    let (status, revoked) = into_parts(
        send(reqwest::Method::DELETE, format!("{lease}/{id}"), "null")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    // A null body to create is no body: the fields it needs are missing.
    let (status, refused) =
        into_parts(send(reqwest::Method::POST, lease, "null").await.unwrap()).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["errors"]["services"].is_array(), "{refused}");
}

both_backends! {
    null_and_whole_floats => null_bodies_and_whole_floats_are_accepted,
    unstorable_values => unstorable_values_are_refused_at_the_boundary,
    bad_bodies => bad_bodies_get_clean_json_errors,
    auth_first => authentication_is_checked_before_the_body,
}

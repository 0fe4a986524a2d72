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

both_backends! {
    bad_bodies => bad_bodies_get_clean_json_errors,
    auth_first => authentication_is_checked_before_the_body,
}

//! The README's production grant is all the server's role needs, and no more than it says.
//!
//! PostgreSQL only: SQLite has no roles. The grant is read from the README itself, so the
//! documentation and this test cannot drift apart.

mod support;

use mcp_events::testing::TestDatabase;
use mcp_events::Backend;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use support::{cli_succeeds, free_port, seed, start, start_with};

/// The statements of the README's `GRANT` block, for `role` instead of `mcp_manager`.
fn readme_grant(role: &str) -> Vec<String> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```sql")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("ON events"))
        .expect("the README has a ```sql block granting on events");
    let without_comments: String = block
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("TO mcp_manager", &format!("TO {role}")))
        .collect()
}

/// The same database as another (password-less, trust-authenticated) role.
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{role}@{host_and_path}")
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_readme_grant_is_enough_to_serve_and_keeps_the_log_insert_only() {
    let db = TestDatabase::new(Backend::Postgres).await;
    // The owning role migrates, creates the projections and seeds.
    let token = seed(&db.url);

    let role = format!(
        "mcp_grant_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut owner = PgConnection::connect(&db.url).await.unwrap();
    owner
        .execute(sqlx::AssertSqlSafe(format!("create role {role} login")))
        .await
        .unwrap();
    let grant = readme_grant(&role);
    assert!(grant.len() >= 5, "{grant:?}");
    for statement in &grant {
        owner
            .execute(sqlx::AssertSqlSafe(statement.clone()))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let url = as_role(&db.url, &role);

    // The server starts as that role and serves the whole lease life cycle.
    let port = free_port();
    let mut server = start(&url, port).await;
    let base = format!("http://127.0.0.1:{port}/api/mcp/credentials/lease");
    let client = reqwest::Client::new();
    let (status, created) = post(
        &client,
        &base,
        &token,
        json!({"services": ["todoist"], "server_id": "prod"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let lease = format!("{base}/{}", created["lease_id"].as_str().unwrap());
    let (status, renewed) = post(&client, &format!("{lease}/renew"), &token, json!({})).await;
    assert_eq!(status, 200, "{renewed}");
    let revoked = client
        .delete(&lease)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    server.kill().unwrap();
    server.wait().unwrap();

    // The admin commands work as that role too.
    cli_succeeds(
        &url,
        &["user", "add", "--email", "ops@example.com", "--name", "Ops"],
    );
    let credentials = r#"{"access_token": "ops"}"#;
    let add = [
        "integration",
        "add",
        "--service",
        "linear",
        "--user",
        "1",
        "--credentials",
        credentials,
    ];
    cli_succeeds(&url, &add);
    let rotate = [
        "integration",
        "rotate",
        "--id",
        "7",
        "--credentials",
        credentials,
    ];
    cli_succeeds(&url, &rotate);
    cli_succeeds(&url, &["verify"]);

    cli_succeeds(&url, &["replay", "--check"]);

    // A key rotation re-seals every stored secret in place (the grant's column UPDATE), and
    // the server, restarted with the new key alone, hands them out.
    let new_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let rotated = support::command(&url, &["key", "rotate", "--batch", "3"])
        .env("MCP_ENCRYPTION_KEY", new_key)
        .env("MCP_ENCRYPTION_KEY_OLD", support::KEY)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["complete"], true, "{rotated}");
    assert!(rotated["resealed"].as_i64().unwrap() > 6, "{rotated}");
    let port = free_port();
    let mut server = start_with(&url, port, &[("MCP_ENCRYPTION_KEY", new_key)]).await;
    let (status, created) = post(
        &client,
        &format!("http://127.0.0.1:{port}/api/mcp/credentials/lease"),
        &token,
        json!({"services": ["todoist", "linear"], "server_id": "prod"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["credentials"]["linear"]["access_token"], "ops");
    server.kill().unwrap();
    server.wait().unwrap();

    // And the log is insert-only for it even without the triggers.
    owner
        .execute("alter table events disable trigger user")
        .await
        .unwrap();
    let mut restricted = PgConnection::connect(&url).await.unwrap();
    for statement in [
        "update events set payload = '{}' where position = 1",
        "delete from events where position = 1",
        "truncate events",
    ] {
        let refused = restricted.execute(statement).await.unwrap_err();
        assert!(
            refused.to_string().contains("permission denied"),
            "{statement}: {refused}"
        );
    }
    restricted.close().await.unwrap();
    owner
        .execute(sqlx::AssertSqlSafe(format!("drop owned by {role}")))
        .await
        .unwrap();
    owner.close().await.unwrap();
    let mut admin = PgConnection::connect(&mcp_events::testing::postgres_admin_url())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("drop role {role}")))
        .await
        .unwrap();
}

//! What an operator needs in an incident: the directory, integrations and leases listed (never
//! a secret), and leases revoked by id, user, token or server.

use crate::helpers::{key_id, Cli, KEY};
use mcp_events::{both_backends, Backend};
use serde_json::Value;

fn ids(listing: &Value, field: &str) -> Vec<Value> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[field].clone())
        .collect()
}

async fn the_directory_and_integrations_are_listed_without_secrets(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    cli.ok(&["user", "add", "--email", "bob@example.com", "--name", "Bob"]);
    cli.ok(&["org", "add", "--name", "Platform"]);
    cli.ok(&["org", "add", "--name", "Empty"]);
    cli.ok(&[
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "1",
        "--role",
        "owner",
    ]);
    cli.ok(&[
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "2",
        "--role",
        "member",
    ]);
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "todoist",
        "--user",
        "1",
        "--credentials",
        r#"{"access_token":"listing-secret-1"}"#,
    ]);
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "jira",
        "--org",
        "1",
        "--shared-with",
        "2",
        "--credentials",
        r#"{"api_token":"listing-secret-2"}"#,
        "--status",
        "inactive",
    ]);
    cli.ok(&["user", "disable", "--id", "2"]);

    let users = cli.ok(&["user", "list"]);
    assert_eq!(ids(&users, "email"), ["ada@example.com", "bob@example.com"]);
    assert_eq!(users[1]["disabled"], true);
    let orgs = cli.ok(&["org", "list"]);
    assert_eq!(ids(&orgs, "name"), ["Platform", "Empty"]);
    assert_eq!(ids(&orgs[0]["members"], "role"), ["owner", "member"]);
    assert_eq!(orgs[1]["members"], serde_json::json!([]));
    let all = cli.ok(&["integration", "list"]);
    assert_eq!(ids(&all, "service"), ["todoist", "jira"]);
    assert_eq!(all[0]["user_id"], 1);
    assert_eq!(all[1]["organization_id"], 1);
    assert_eq!(all[1]["shared_with"], "2");
    assert_eq!(all[1]["status"], "inactive");
    assert_eq!(all[1]["secret_version"], 1);
    assert_eq!(all[1]["key_id"], key_id(KEY));
    assert_eq!(
        ids(&cli.ok(&["integration", "list", "--user", "1"]), "id"),
        [1]
    );
    assert_eq!(
        ids(&cli.ok(&["integration", "list", "--org", "1"]), "id"),
        [2]
    );
    assert_eq!(
        cli.ok(&["integration", "list", "--user", "2"]),
        serde_json::json!([])
    );
    let everything = format!("{users}{orgs}{all}");
    assert!(!everything.contains("listing-secret"), "{everything}");
}

async fn leases_are_listed_and_revoked_by_id_user_token_or_server(backend: Backend) {
    let cli = Cli::new(backend).await;
    for (email, name) in [("ada@example.com", "Ada"), ("bob@example.com", "Bob")] {
        cli.ok(&["user", "add", "--email", email, "--name", name]);
    }
    for user in ["1", "2"] {
        cli.ok(&[
            "integration",
            "add",
            "--service",
            "todoist",
            "--user",
            user,
            "--credentials",
            r#"{"access_token":"lease-secret"}"#,
        ]);
    }
    let token = |user: &str| {
        cli.ok(&["token", "create", "--user", user])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (laptop, ci, bobs) = (token("1"), token("1"), token("2"));
    let server = cli.serve(&[]).await;
    let lease = |token: String, server_id: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.lease(&token, &["todoist"], server_id).await;
            assert_eq!(status, 201, "{body}");
            body["lease_id"].as_str().unwrap().to_owned()
        }
    };
    let mut from_laptop = Vec::new();
    for _ in 0..5 {
        from_laptop.push(lease(laptop.clone(), "laptop-mcp").await);
    }
    let from_ci = lease(ci.clone(), "ci-mcp").await;
    let bobs_first = lease(bobs.clone(), "ci-mcp").await;
    let bobs_second = lease(bobs.clone(), "bob-mcp").await;

    let all = cli.ok(&["lease", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 8);
    assert_eq!(all[0]["lease_id"], bobs_second, "newest first");
    assert_eq!(all[0]["token_id"], 3);
    assert_eq!(all[0]["status"], "active");
    assert!(!all.to_string().contains("lease-secret"));
    assert_eq!(
        cli.ok(&["lease", "list", "--token", "1"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        ids(&cli.ok(&["lease", "list", "--token", "2"]), "lease_id"),
        [from_ci.as_str()]
    );
    assert_eq!(
        cli.ok(&["lease", "list", "--user", "2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        ids(
            &cli.ok(&["lease", "list", "--server", "ci-mcp"]),
            "lease_id"
        ),
        [bobs_first.as_str(), from_ci.as_str()]
    );
    assert_eq!(
        cli.ok(&["lease", "list", "--limit", "3"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A leaked laptop token: every lease it obtained, in batches of two.
    let revoked = cli.ok(&[
        "lease",
        "revoke",
        "--token",
        "1",
        "--reason",
        "laptop stolen",
        "--batch",
        "2",
    ]);
    assert_eq!(revoked["revoked"], 5);
    let mut revoked_ids: Vec<String> =
        serde_json::from_value(revoked["lease_ids"].clone()).unwrap();
    revoked_ids.sort();
    from_laptop.sort();
    assert_eq!(revoked_ids, from_laptop);
    let listed = cli.ok(&["lease", "list", "--token", "1", "--status", "revoked"]);
    assert_eq!(listed.as_array().unwrap().len(), 5);
    assert_eq!(listed[0]["revoke_reason"], "laptop stolen");
    assert_eq!(
        cli.ok(&["lease", "list", "--status", "active"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (status, body) = server.renew(&laptop, &from_laptop[0]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "Lease has been revoked");
    let (status, _) = server.renew(&ci, &from_ci).await;
    assert_eq!(status, 200, "other leases are untouched");
    // The revocations are the API's events, by the operator.
    let by_cli = cli
        .scalar(
            "select count(*) from events where event_type = 'lease_revoked' \
             and metadata = '{\"actor\":\"cli\"}'",
        )
        .await;
    assert_eq!(by_cli, 5);

    let one = cli.ok(&["lease", "revoke", "--id", &from_ci]);
    assert_eq!(one["revoked"], 1);
    assert_eq!(one["lease_ids"], serde_json::json!([from_ci]));
    let again = cli.ok(&["lease", "revoke", "--id", &from_ci]);
    assert_eq!(again["revoked"], 0);
    assert_eq!(again["already_revoked"], serde_json::json!([from_ci]));
    let unknown = cli.run(&["lease", "revoke", "--id", "lse_unknown"]);
    assert!(unknown
        .refused_with(1)
        .contains("lease lse_unknown does not exist"));
    let not_a_lease = cli.run(&["lease", "revoke", "--id", "../etc"]);
    assert!(not_a_lease.refused_with(1).contains("does not exist"));
    let control = cli.run(&["lease", "revoke", "--server", "ci\u{1b}[31m"]);
    assert!(control.refused_with(2).contains("--server"));
    assert_eq!(
        cli.ok(&["lease", "revoke", "--server", "ci-mcp"])["revoked"],
        1
    );
    assert_eq!(
        cli.ok(&["lease", "revoke", "--user", "2"])["lease_ids"],
        serde_json::json!([bobs_second])
    );
    assert_eq!(cli.ok(&["lease", "revoke", "--user", "2"])["revoked"], 0);
    assert_eq!(
        cli.ok(&["lease", "list", "--status", "active"]),
        serde_json::json!([])
    );
    let both = cli.run(&["lease", "revoke", "--user", "1", "--token", "1"]);
    both.refused_with(2);

    drop(server);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
}

/// A database whose lease projection predates `token_id` (an older build) is rebuilt at the
/// next start, the column filled from the events.
async fn an_older_lease_projection_is_rebuilt_with_its_new_column(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "todoist",
        "--user",
        "1",
        "--credentials",
        "{}",
    ]);
    let token = cli.ok(&["token", "create", "--user", "1"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        let server = cli.serve(&[]).await;
        let (status, body) = server.lease(&token, &["todoist"], "srv").await;
        assert_eq!(status, 201, "{body}");
    }
    let db = cli.db.connect().await;
    for statement in [
        "drop index leases_token_idx",
        "alter table leases drop column token_id",
        "update projection_checkpoints set version = 1 where name = 'leases'",
    ] {
        sqlx::query(statement).execute(db.pool()).await.unwrap();
    }
    db.close().await;
    let stale = cli.run(&["lease", "list"]);
    assert!(stale.refused_with(1).contains("not current"));

    cli.ok(&["user", "add", "--email", "bob@example.com", "--name", "Bob"]);

    let leases = cli.ok(&["lease", "list", "--token", "1"]);
    assert_eq!(leases.as_array().unwrap().len(), 1);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
}

both_backends! {
    directory => the_directory_and_integrations_are_listed_without_secrets,
    leases => leases_are_listed_and_revoked_by_id_user_token_or_server,
    lease_projection_upgrade => an_older_lease_projection_is_rebuilt_with_its_new_column,
}

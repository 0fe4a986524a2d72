//! An operator's day: the directory, integrations, tokens and the audit log from the command
//! line, and the refusals along the way.

use crate::helpers::Cli;
use mcp_events::{both_backends, Backend};
use serde_json::Value;

async fn an_operator_sets_up_a_team_from_the_command_line(backend: Backend) {
    let cli = Cli::new(backend).await;
    assert_eq!(
        cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"])["id"],
        1
    );
    assert_eq!(
        cli.ok(&["user", "add", "--email", "bob@example.com", "--name", "Bob"])["id"],
        2
    );
    assert_eq!(cli.ok(&["org", "add", "--name", "Platform"])["id"], 1);
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
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "2",
        "--role",
        "admin",
    ]);
    let personal = cli.ok(&[
        "integration",
        "add",
        "--service",
        "todoist",
        "--user",
        "1",
        "--credentials",
        r#"{"access_token":"todo-secret-1"}"#,
    ]);
    assert_eq!(personal["id"], 1);
    let shared = cli.ok(&[
        "integration",
        "add",
        "--service",
        "jira",
        "--org",
        "1",
        "--shared-with",
        "admins_only",
        "--credentials",
        r#"{"url":"https://x.atlassian.net","api_token":"jira-secret-2"}"#,
    ]);
    assert_eq!(shared["id"], 2);
    assert_eq!(
        cli.ok(&[
            "integration",
            "rotate",
            "--id",
            "2",
            "--credentials",
            r#"{"api_token":"jira-secret-3"}"#
        ])["secret_version"],
        2
    );
    cli.ok(&[
        "integration",
        "set-status",
        "--id",
        "1",
        "--status",
        "inactive",
    ]);
    cli.ok(&["org", "remove-member", "--org", "1", "--user", "2"]);

    let token = cli.ok(&[
        "token",
        "create",
        "--user",
        "1",
        "--name",
        "laptop",
        "--max-uses",
        "5",
    ]);
    let text = token["token"].as_str().unwrap().to_owned();
    assert!(text.starts_with("mcp_laptop_"), "{text}");
    assert_eq!(text.len(), "mcp_laptop_".len() + 64);

    let listed = cli.ok(&["token", "list", "--user", "1"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["max_uses"], 5);
    assert_eq!(listed[0]["usage_count"], 0);
    assert!(
        !listed.to_string().contains(&text),
        "token list shows the token"
    );

    cli.ok(&["token", "revoke", "--id", "1"]);
    assert_eq!(
        cli.ok(&["token", "list", "--user", "1"])[0]["status"],
        "revoked"
    );
    cli.ok(&["user", "disable", "--id", "2"]);

    let audit = cli.ok(&["audit", "list", "--user", "1", "--limit", "3"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["token_revoked", "token_issued", "membership_added"]
    );
    let revokes = cli.ok(&["audit", "list", "--action", "token_revoked"]);
    assert_eq!(revokes.as_array().unwrap().len(), 1);
    assert_eq!(revokes[0]["entity_type"], "UserToken");

    // Neither the token nor any credential ever reaches the log.
    let log = cli.all_event_text().await;
    for secret in [
        text.as_str(),
        "todo-secret-1",
        "jira-secret-2",
        "jira-secret-3",
    ] {
        assert!(!log.contains(secret), "the event log holds a secret");
    }

    assert_eq!(cli.ok(&["verify"])["valid"], true);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
    assert_eq!(cli.ok(&["replay"])["rebuilt"], true);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
    assert_eq!(
        cli.ok(&["token", "list", "--user", "1"])[0]["status"],
        "revoked"
    );
}

async fn bad_arguments_get_one_line_and_change_nothing(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    cli.ok(&["org", "add", "--name", "Platform"]);
    let before = cli.event_count().await;

    let duplicate = cli.run(&[
        "user",
        "add",
        "--email",
        "ADA@example.com",
        "--name",
        "Ada 2",
    ]);
    assert!(
        duplicate.refusal().contains("already exists"),
        "{}",
        duplicate.stderr
    );
    let unknown_user = cli.run(&[
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "99",
        "--role",
        "member",
    ]);
    assert!(unknown_user.refusal().contains("user 99 does not exist"));
    let unknown_org = cli.run(&[
        "org",
        "add-member",
        "--org",
        "7",
        "--user",
        "1",
        "--role",
        "member",
    ]);
    assert!(unknown_org
        .refusal()
        .contains("organization 7 does not exist"));
    let unknown_role = cli.run(&[
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "1",
        "--role",
        "boss",
    ]);
    // A value clap knows the choices of: refused with exit 2, listing them.
    assert!(unknown_role
        .refused_with(2)
        .contains("[possible values: owner, admin, member]"));
    let bad_json = cli.run(&[
        "integration",
        "add",
        "--service",
        "x",
        "--user",
        "1",
        "--credentials",
        "{nope",
    ]);
    assert!(bad_json.refusal().contains("not valid JSON"));
    let not_object = cli.run(&[
        "integration",
        "add",
        "--service",
        "x",
        "--user",
        "1",
        "--credentials",
        "[1]",
    ]);
    assert!(not_object.refusal().contains("JSON object"));
    let bad_service = cli.run(&[
        "integration",
        "add",
        "--service",
        "Bad Name",
        "--user",
        "1",
        "--credentials",
        "{}",
    ]);
    assert!(bad_service.refusal().contains("not a service name"));
    let no_owner = cli.run(&[
        "integration",
        "add",
        "--service",
        "x",
        "--credentials",
        "{}",
    ]);
    no_owner.refusal();
    let unknown_integration = cli.run(&[
        "integration",
        "set-status",
        "--id",
        "5",
        "--status",
        "active",
    ]);
    assert!(unknown_integration
        .refusal()
        .contains("integration 5 does not exist"));
    let unknown_token = cli.run(&["token", "revoke", "--id", "3"]);
    assert!(unknown_token.refusal().contains("token 3 does not exist"));
    let no_user = cli.run(&["token", "create", "--user", "42"]);
    assert!(no_user.refusal().contains("user 42 does not exist"));
    let not_a_number = cli.run(&["user", "disable", "--id", "abc"]);
    not_a_number.refusal();

    assert_eq!(
        cli.event_count().await,
        before,
        "a refused command wrote events"
    );
}

async fn verify_names_a_doctored_position(backend: Backend) {
    let cli = Cli::new(backend).await;
    for i in 0..4 {
        cli.ok(&[
            "user",
            "add",
            "--email",
            &format!("u{i}@example.com"),
            "--name",
            "U",
        ]);
    }
    let db = cli.db.connect().await;
    let drop_trigger = match backend {
        Backend::Sqlite => "drop trigger events_reject_update",
        Backend::Postgres => "drop trigger events_reject_update on events",
    };
    sqlx::query(drop_trigger).execute(db.pool()).await.unwrap();
    sqlx::query("update events set metadata = '{\"actor\":\"mallory\"}' where position = 2")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;

    let verify = cli.run(&["verify"]);
    assert_eq!(verify.code, 1);
    assert!(verify.stderr.contains("position 2"), "{}", verify.stderr);
    let report: Value = serde_json::from_str(verify.stdout.trim()).unwrap();
    assert_eq!(report["position"], 2);
}

async fn replay_check_names_a_tampered_projection(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    let db = cli.db.connect().await;
    sqlx::query("update users set name = 'Eve' where id = 1")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;

    let check = cli.run(&["replay", "--check"]);
    assert_eq!(check.code, 1);
    assert!(check.stderr.contains("users"), "{}", check.stderr);
    assert_eq!(cli.ok(&["replay"])["rebuilt"], true);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
}

both_backends! {
    operator_flow => an_operator_sets_up_a_team_from_the_command_line,
    bad_arguments => bad_arguments_get_one_line_and_change_nothing,
    doctored_log => verify_names_a_doctored_position,
    tampered_projection => replay_check_names_a_tampered_projection,
}

/// Only commands that seal or open credentials need the key: with PostgreSQL (no key file to
/// fall back on) they are refused, one line naming the variable, before anything is written.
#[tokio::test]
async fn postgres_without_an_encryption_key_is_a_clear_error() {
    let cli = Cli::new(Backend::Postgres).await;
    let no_key = [("MCP_ENCRYPTION_KEY", "")];
    cli.run_with(
        &["user", "add", "--email", "a@b.c", "--name", "A"],
        &no_key,
        None,
    )
    .json();
    let before = cli.event_count().await;

    let output = cli.run_with(
        &[
            "integration",
            "add",
            "--service",
            "x",
            "--user",
            "1",
            "--credentials",
            "{}",
        ],
        &no_key,
        None,
    );

    let line = output.refused_with(1);
    assert!(line.contains("MCP_ENCRYPTION_KEY"), "{line}");
    assert_eq!(cli.event_count().await, before);
}

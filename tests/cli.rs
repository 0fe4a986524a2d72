//! The command line end to end, as an operator types it, on both backends.

use assert_cmd::Command;
use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend};
use serde_json::Value;

/// A fixed test key (base64 of 32 bytes); real deployments generate their own.
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Cli {
    db: TestDatabase,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", self.stdout))
    }

    /// A refusal: non-zero exit, exactly one line on stderr, nothing on stdout.
    fn refusal(&self) -> &str {
        assert_ne!(self.code, 0, "expected a failure, got: {}", self.stdout);
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "stderr: {:?}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self.stderr.trim_end()
    }
}

impl Cli {
    async fn new(backend: Backend) -> Self {
        Self {
            db: TestDatabase::new(backend).await,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::cargo_bin("mcp-manager")
            .unwrap()
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("MCP_ENCRYPTION_KEY", KEY)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Value {
        self.run(args).json()
    }

    async fn event_count(&self) -> i64 {
        let db = self.db.connect().await;
        let count = sqlx::query_scalar("select count(*) from events")
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.close().await;
        count
    }

    async fn all_event_text(&self) -> String {
        let db = self.db.connect().await;
        let rows: Vec<(String, String)> =
            sqlx::query_as("select payload, metadata from events order by position")
                .fetch_all(db.pool())
                .await
                .unwrap();
        db.close().await;
        rows.into_iter()
            .map(|(p, m)| format!("{p}\n{m}\n"))
            .collect()
    }
}

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
    assert!(unknown_role.refusal().contains("unknown role"));
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

#[tokio::test]
async fn postgres_without_an_encryption_key_is_a_clear_error() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let output = Command::cargo_bin("mcp-manager")
        .unwrap()
        .args(["user", "add", "--email", "a@b.c", "--name", "A"])
        .env("DATABASE_URL", &db.url)
        .env_remove("MCP_ENCRYPTION_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("MCP_ENCRYPTION_KEY"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

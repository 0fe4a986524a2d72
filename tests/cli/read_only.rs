//! Read-only commands create and change nothing; write commands create a ledger only where
//! that is their point, and say so once.

use crate::helpers::{command, output, Cli, Output, KEY, OTHER_KEY};
use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend};
use sqlx::{Connection, Executor};

const READ_ONLY: &[&[&str]] = &[
    &["verify"],
    &["export", "--out", "events.jsonl"],
    &["replay", "--check"],
    &["user", "list"],
    &["org", "list"],
    &["integration", "list"],
    &["token", "list", "--user", "1"],
    &["lease", "list"],
    &["audit", "list"],
];

/// Write commands that act on what exists: none of them may create a ledger.
const WRITES_ON_EXISTING: &[&[&str]] = &[
    &["replay"],
    &["user", "disable", "--id", "1"],
    &[
        "org",
        "add-member",
        "--org",
        "1",
        "--user",
        "1",
        "--role",
        "member",
    ],
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
    &["token", "create", "--user", "1"],
    &["token", "revoke", "--id", "1"],
    &["lease", "revoke", "--user", "1"],
    &["key", "rotate"],
];

/// Both keys, so that `key rotate` gets as far as opening the database.
const KEYS: &[(&str, &str)] = &[
    ("MCP_ENCRYPTION_KEY", OTHER_KEY),
    ("MCP_ENCRYPTION_KEY_OLD", KEY),
];

fn sqlite_run(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut command = command(dir, args);
    command
        .env("DATABASE_URL", "sqlite://ledger.db")
        .envs(KEYS.iter().copied());
    output(command, None)
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn on_a_missing_sqlite_file_nothing_but_creating_commands_creates_anything() {
    let dir = tempfile::tempdir().unwrap();
    for args in READ_ONLY.iter().chain(WRITES_ON_EXISTING) {
        let output = sqlite_run(dir.path(), args);

        let line = output.refused_with(1);
        assert!(
            line.contains("there is no database at ledger.db"),
            "{args:?}: {line}"
        );
        assert!(line.contains("user add"), "{args:?}: {line}");
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "{args:?} created files"
        );
    }

    // Without a key: a command that seals nothing needs none, and makes no key file.
    let keyless = |args: &[&str]| {
        let mut command = command(dir.path(), args);
        command.env("DATABASE_URL", "sqlite://ledger.db");
        output(command, None)
    };
    let created = keyless(&["user", "add", "--email", "a@b.c", "--name", "A"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert_eq!(created.stderr, "created the database ledger.db\n");
    let again = keyless(&["user", "add", "--email", "b@b.c", "--name", "B"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stderr, "", "said twice");
    let files = files_in(dir.path());
    assert!(!files.iter().any(|f| f.ends_with(".key")), "{files:?}");
}

#[test]
fn an_empty_sqlite_file_holds_no_ledger_and_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ledger.db"), b"").unwrap();
    for args in READ_ONLY.iter().chain(WRITES_ON_EXISTING) {
        let output = sqlite_run(dir.path(), args);

        let line = output.refused_with(1);
        assert!(line.contains("holds no ledger"), "{args:?}: {line}");
        assert_eq!(
            std::fs::metadata(dir.path().join("ledger.db"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            files_in(dir.path()),
            vec!["ledger.db".to_owned()],
            "{args:?}"
        );
    }
}

async fn public_tables(db: &TestDatabase) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let count = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_empty_postgresql_database_nothing_but_creating_commands_creates_anything() {
    let cli = Cli::new(Backend::Postgres).await;
    sqlx::any::install_default_drivers();
    for args in READ_ONLY.iter().chain(WRITES_ON_EXISTING) {
        let output = cli.run_with(args, KEYS, None);

        let line = output.refused_with(1);
        assert!(line.contains("holds no ledger"), "{args:?}: {line}");
        assert_eq!(public_tables(&cli.db).await, 0, "{args:?} created tables");
    }

    let created = cli.run(&["org", "add", "--name", "Platform"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(
        created
            .stderr
            .starts_with("created the ledger in the database postgres://"),
        "{}",
        created.stderr
    );
    assert_eq!(created.stderr.lines().count(), 1);
    assert_eq!(cli.run(&["org", "add", "--name", "Ops"]).stderr, "");
}

/// Proof that the read-only commands write nothing: they all succeed as a role that may only
/// read (PostgreSQL), and leave the file bytes as they were (SQLite).
async fn read_only_commands_change_nothing(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    cli.ok(&["org", "add", "--name", "Platform"]);
    cli.ok(&[
        "integration",
        "add",
        "--service",
        "jira",
        "--user",
        "1",
        "--credentials",
        r#"{"api_token":"x"}"#,
    ]);
    cli.ok(&["token", "create", "--user", "1"]);

    match backend {
        Backend::Postgres => {
            let role = format!("mcp_reader_{}", std::process::id());
            let mut owner = sqlx::AnyConnection::connect(&cli.db.url).await.unwrap();
            for statement in [
                format!("create role {role} login"),
                format!("grant select on all tables in schema public to {role}"),
            ] {
                owner.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
            }
            let (scheme, rest) = cli.db.url.split_once("://").unwrap();
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let url = format!("{scheme}://{role}@{host}");
            for args in READ_ONLY {
                let output = cli.run_with(args, &[("DATABASE_URL", &url)], None);
                assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
                assert_eq!(output.stderr, "", "{args:?}");
            }
            owner
                .execute(sqlx::AssertSqlSafe(format!("drop owned by {role}")))
                .await
                .unwrap();
            owner
                .execute(sqlx::AssertSqlSafe(format!("drop role {role}")))
                .await
                .unwrap();
            owner.close().await.unwrap();
        }
        Backend::Sqlite => {
            let path = cli.db.url.strip_prefix("sqlite://").unwrap().to_owned();
            // A reader of a WAL database may create SQLite's empty `-wal` and `-shm` beside
            // it (its shared-memory index); what it must not do is change the content.
            let bytes = |suffix: &str| std::fs::read(format!("{path}{suffix}")).unwrap_or_default();
            let before = (bytes(""), bytes("-wal"));
            for args in READ_ONLY {
                let output = cli.run(args);
                assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
                assert_eq!(output.stderr, "", "{args:?}");
            }
            assert!(before == (bytes(""), bytes("-wal")), "the database changed");
        }
    }
}

both_backends! {
    change_nothing => read_only_commands_change_nothing,
}

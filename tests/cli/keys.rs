//! Keys are checked early: a key that does not fit the stored credentials is refused before
//! anything is served or written; a key file is never invented for a database with secrets;
//! and `key rotate` re-seals everything, resumably, while the server keeps decrypting.

use crate::helpers::{key_id, Cli, KEY, OTHER_KEY};
use mcp_events::{both_backends, Backend};
use serde_json::Value;

/// A user with a token and `n` integrations (`svc1`… `svcN`), one rotated once: n + 1 sealed
/// secrets under `KEY`. Returns the token.
fn directory_with_secrets(cli: &Cli, n: usize) -> String {
    cli.ok(&["user", "add", "--email", "ada@example.com", "--name", "Ada"]);
    for i in 1..=n {
        cli.ok(&[
            "integration",
            "add",
            "--service",
            &format!("svc{i}"),
            "--user",
            "1",
            "--credentials",
            &format!(r#"{{"api_token":"secret-{i}-v1"}}"#),
        ]);
    }
    cli.ok(&[
        "integration",
        "rotate",
        "--id",
        "1",
        "--credentials",
        r#"{"api_token":"secret-1-v2"}"#,
    ]);
    cli.ok(&["token", "create", "--user", "1"])["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn services(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("svc{i}")).collect()
}

/// Leases every service and checks each credential is the one stored last.
async fn every_credential_opens(server: &crate::helpers::Server, token: &str, n: usize) {
    let services = services(n);
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let (status, lease) = server.lease(token, &names, "rotation").await;
    assert_eq!(status, 201, "{lease}");
    assert_eq!(lease["credentials"]["svc1"]["api_token"], "secret-1-v2");
    for i in 2..=n {
        assert_eq!(
            lease["credentials"][format!("svc{i}")]["api_token"],
            format!("secret-{i}-v1"),
            "{lease}"
        );
    }
}

async fn a_key_that_does_not_fit_the_stored_secrets_is_refused_early(backend: Backend) {
    let cli = Cli::new(backend).await;
    directory_with_secrets(&cli, 1);
    let before = cli.event_count().await;
    let wrong = [("MCP_ENCRYPTION_KEY", OTHER_KEY)];

    let serve = cli.serve_refused(&wrong);
    let line = serve.refused_with(1);
    assert!(line.contains(&key_id(KEY)), "{line}");
    assert!(line.contains(&key_id(OTHER_KEY)), "{line}");
    assert!(line.contains("MCP_ENCRYPTION_KEY"), "{line}");

    for args in [
        vec![
            "integration",
            "add",
            "--service",
            "x",
            "--user",
            "1",
            "--credentials",
            "{}",
        ],
        vec!["integration", "rotate", "--id", "1", "--credentials", "{}"],
        vec!["seed"],
    ] {
        let output = cli.run_with(&args, &wrong, None);
        let line = output.refused_with(1);
        assert!(line.contains(&key_id(KEY)), "{args:?}: {line}");
        assert!(line.contains(&key_id(OTHER_KEY)), "{args:?}: {line}");
    }
    assert_eq!(cli.event_count().await, before, "a refused write wrote");

    // Commands that seal nothing need no key: break-glass works with a lost key.
    cli.run_with(&["token", "revoke", "--id", "1"], &wrong, None)
        .json();
    cli.run_with(&["user", "list"], &[("MCP_ENCRYPTION_KEY", "")], None)
        .json();
}

/// SQLite with its key file: a missing key file is an error once the database holds secrets,
/// never a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_is_never_replaced_by_a_new_key() {
    let cli = Cli::new(Backend::Sqlite).await;
    let no_env_key = [("MCP_ENCRYPTION_KEY", "")];
    cli.run_with(
        &["user", "add", "--email", "ada@example.com", "--name", "Ada"],
        &no_env_key,
        None,
    )
    .json();
    let added = cli.run_with(
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
        &no_env_key,
        None,
    );
    added.json();
    assert!(added.stderr.contains("back it up"), "{}", added.stderr);
    let database = cli.db.url.strip_prefix("sqlite://").unwrap().to_owned();
    let key_file = format!("{database}.key");
    let stored_key_id = mcp_manager::crypto::EncryptionKey::from_base64(
        &std::fs::read_to_string(&key_file).unwrap(),
    )
    .unwrap()
    .key_id()
    .to_owned();
    std::fs::remove_file(&key_file).unwrap();

    let refused = cli.run_with(
        &[
            "integration",
            "add",
            "--service",
            "y",
            "--user",
            "1",
            "--credentials",
            "{}",
        ],
        &no_env_key,
        None,
    );
    let line = refused.refused_with(1);
    assert!(line.contains("is missing"), "{line}");
    assert!(line.contains(&stored_key_id), "{line}");
    assert!(
        !std::path::Path::new(&key_file).exists(),
        "a new key file appeared"
    );
    let serve = cli.serve_refused(&no_env_key);
    assert!(serve.refused_with(1).contains(&stored_key_id));
    assert!(
        !std::path::Path::new(&key_file).exists(),
        "a new key file appeared"
    );
}

async fn key_rotation_reseals_every_secret_resumably_while_the_server_decrypts(backend: Backend) {
    let cli = Cli::new(backend).await;
    let n = 4;
    let token = directory_with_secrets(&cli, n);
    let secrets = (n + 1) as i64;
    {
        let server = cli.serve(&[]).await;
        every_credential_opens(&server, &token, n).await;
    }
    let rotating = [
        ("MCP_ENCRYPTION_KEY", OTHER_KEY),
        ("MCP_ENCRYPTION_KEY_OLD", KEY),
    ];

    // Interrupted: the first run stops after 2.
    let first = cli
        .run_with(
            &["key", "rotate", "--limit", "2", "--batch", "1"],
            &rotating,
            None,
        )
        .json();
    assert_eq!(first["resealed"], 2);
    assert_eq!(first["remaining"], secrets - 2);
    assert_eq!(first["complete"], false);
    assert_eq!(first["from_key_id"], key_id(KEY));
    assert_eq!(first["to_key_id"], key_id(OTHER_KEY));

    // Meanwhile: secrets under both keys; a server with both keys serves all of them, one
    // with either key alone is refused.
    {
        let server = cli.serve(&rotating).await;
        every_credential_opens(&server, &token, n).await;
    }
    for alone in [KEY, OTHER_KEY] {
        let refused = cli.serve_refused(&[("MCP_ENCRYPTION_KEY", alone)]);
        refused.refused_with(1);
    }

    // Resumed: the rest, in batches of 2; then nothing is left to do.
    let second = cli
        .run_with(&["key", "rotate", "--batch", "2"], &rotating, None)
        .json();
    assert_eq!(second["resealed"], secrets - 2);
    assert_eq!(second["remaining"], 0);
    assert_eq!(second["complete"], true);
    let third = cli.run_with(&["key", "rotate"], &rotating, None).json();
    assert_eq!(third["resealed"], 0);
    assert_eq!(third["complete"], true);

    // The new key alone serves everything; the old one alone is refused.
    let new_only = [("MCP_ENCRYPTION_KEY", OTHER_KEY)];
    {
        let server = cli.serve(&new_only).await;
        every_credential_opens(&server, &token, n).await;
    }
    let old_only = cli.serve_refused(&[]);
    assert!(old_only.refused_with(1).contains(&key_id(OTHER_KEY)));
    cli.run_with(
        &[
            "integration",
            "rotate",
            "--id",
            "2",
            "--credentials",
            r#"{"api_token":"v2"}"#,
        ],
        &new_only,
        None,
    )
    .json();

    // Each re-seal is on the record, by key ids only.
    let audit = cli.ok(&["audit", "list", "--action", "integration_secret_resealed"]);
    let records = audit.as_array().unwrap();
    assert_eq!(records.len() as i64, secrets);
    assert_eq!(records[0]["details"]["from_key_id"], key_id(KEY));
    assert_eq!(records[0]["details"]["to_key_id"], key_id(OTHER_KEY));
    let mut resealed: Vec<(i64, i64)> = records
        .iter()
        .map(|r| {
            (
                r["entity_id"].as_str().unwrap().parse().unwrap(),
                r["details"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    resealed.sort_unstable();
    resealed.dedup();
    assert_eq!(resealed.len() as i64, secrets, "a secret re-sealed twice");
    let log = cli.all_event_text().await;
    for i in 1..=n {
        assert!(
            !log.contains(&format!("secret-{i}")),
            "a credential reached the log"
        );
    }
    assert!(
        !log.contains(KEY) && !log.contains(OTHER_KEY),
        "a key reached the log"
    );
    let under_old = cli
        .scalar(&format!(
            "select count(*) from integration_secrets where key_id = '{}'",
            key_id(KEY)
        ))
        .await;
    assert_eq!(under_old, 0);
    assert_eq!(cli.ok(&["verify"])["valid"], true);
    assert_eq!(cli.ok(&["replay", "--check"])["identical"], true);
    let listed: Value = cli.ok(&["integration", "list"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["key_id"] == key_id(OTHER_KEY)));
}

async fn key_rotate_refuses_what_it_cannot_do(backend: Backend) {
    let cli = Cli::new(backend).await;
    directory_with_secrets(&cli, 1);

    let no_new = cli.run_with(
        &["key", "rotate"],
        &[("MCP_ENCRYPTION_KEY", ""), ("MCP_ENCRYPTION_KEY_OLD", KEY)],
        None,
    );
    assert!(no_new
        .refused_with(2)
        .contains("MCP_ENCRYPTION_KEY or give --new-key-file"));
    let no_old = cli.run_with(&["key", "rotate"], &[], None);
    assert!(no_old.refused_with(2).contains("MCP_ENCRYPTION_KEY_OLD"));
    let same = cli.run_with(&["key", "rotate"], &[("MCP_ENCRYPTION_KEY_OLD", KEY)], None);
    assert!(same.refused_with(2).contains("the same key"));
    let third = mcp_manager::crypto::EncryptionKey::generate_base64();
    let wrong_old = cli.run_with(
        &["key", "rotate"],
        &[
            ("MCP_ENCRYPTION_KEY", OTHER_KEY),
            ("MCP_ENCRYPTION_KEY_OLD", &third),
        ],
        None,
    );
    let line = wrong_old.refused_with(1);
    assert!(line.contains(&key_id(KEY)), "{line}");
    assert!(line.contains("neither"), "{line}");
}

/// SQLite key-file users rotate with key files named explicitly; the command reads them and
/// never writes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_can_name_both_keys() {
    let cli = Cli::new(Backend::Sqlite).await;
    let token = directory_with_secrets(&cli, 2);
    let dir = tempfile::tempdir().unwrap();
    let write_key = |name: &str, key: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        path.to_str().unwrap().to_owned()
    };
    let (old, new) = (write_key("old.key", KEY), write_key("new.key", OTHER_KEY));

    let rotated = cli
        .run_with(
            &[
                "key",
                "rotate",
                "--old-key-file",
                &old,
                "--new-key-file",
                &new,
            ],
            &[("MCP_ENCRYPTION_KEY", "")],
            None,
        )
        .json();

    assert_eq!(rotated["complete"], true);
    assert_eq!(rotated["resealed"], 3);
    let server = cli.serve(&[("MCP_ENCRYPTION_KEY", OTHER_KEY)]).await;
    every_credential_opens(&server, &token, 2).await;
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2);
}

both_backends! {
    wrong_key_refused => a_key_that_does_not_fit_the_stored_secrets_is_refused_early,
    rotation => key_rotation_reseals_every_secret_resumably_while_the_server_decrypts,
    rotation_refusals => key_rotate_refuses_what_it_cannot_do,
}

//! The auditors' commands: `export` writes the audit API's event objects and the checkpoint of
//! their size, `verify` checks the log with the database or an export without one (and
//! tools/verify_ledger.py agrees), and nothing exported holds a secret.

use crate::helpers::{command, output, python_verify, vkey, Cli, KEY, SIGNING_KEY};
use mcp_events::{both_backends, Backend, EventStore};
use serde_json::Value;

async fn seeded(backend: Backend) -> (Cli, Vec<String>) {
    let cli = Cli::new(backend).await;
    let seeded = cli.run(&["seed"]);
    assert_eq!(seeded.code, 0, "{}", seeded.stderr);
    let tokens = seeded
        .stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(_, token)| token.to_owned()))
        .collect();
    (cli, tokens)
}

fn path(cli: &Cli, name: &str) -> String {
    cli.path(name).to_str().unwrap().to_owned()
}

async fn an_export_is_the_logs_event_objects_and_verifies_offline(backend: Backend) {
    let (cli, _) = seeded(backend).await;
    let head = cli.event_count().await;

    let exported = cli.ok(&[
        "export",
        "--out",
        "events.jsonl",
        "--checkpoint-out",
        "checkpoint.txt",
    ]);
    assert_eq!(exported["events"], head);
    assert_eq!(
        (exported["after"].as_i64(), exported["to"].as_i64()),
        (Some(0), Some(head))
    );
    assert_eq!(exported["checkpoint"]["tree_size"], head);

    // Every line is the audit API's event object for that position, byte for byte.
    let db = cli.db.connect().await;
    let stored = EventStore::new(db.clone())
        .read_raw_page(0, 10_000)
        .await
        .unwrap();
    let note: String = sqlx::query_scalar("select note from checkpoints where tree_size = $1")
        .bind(head)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    let text = std::fs::read_to_string(cli.path("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as i64, head);
    for (line, event) in lines.iter().zip(&stored) {
        assert_eq!(*line, serde_json::to_string(event).unwrap());
    }
    assert_eq!(
        std::fs::read_to_string(cli.path("checkpoint.txt")).unwrap(),
        note
    );
    assert!(!cli.path("events.jsonl.partial").exists());

    // Offline: no database configured, none created.
    let elsewhere = tempfile::tempdir().unwrap();
    let vkey = vkey();
    let offline = output(
        command(
            elsewhere.path(),
            &[
                "verify",
                "--export",
                &path(&cli, "events.jsonl"),
                "--checkpoint",
                &path(&cli, "checkpoint.txt"),
                "--vkey",
                &vkey,
            ],
        ),
        None,
    )
    .json();
    assert_eq!(offline["valid"], true);
    assert_eq!(offline["events"], head);
    assert_eq!(offline["tree_size"], head);
    assert_eq!(offline["root"], exported["checkpoint"]["root"]);
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let (code, line) = python_verify(&[
        "--export",
        &path(&cli, "events.jsonl"),
        "--checkpoint",
        &path(&cli, "checkpoint.txt"),
        "--vkey",
        &vkey,
    ]);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with(&format!("ok: {head} events")), "{line}");

    // The vkey from a file, as /api/audit/key serves it.
    std::fs::write(
        cli.path("key.json"),
        serde_json::json!({ "origin": "mcp-manager.local/ledger", "vkey": vkey }).to_string(),
    )
    .unwrap();
    let with_file = cli.ok(&[
        "verify",
        "--checkpoint",
        "checkpoint.txt",
        "--vkey",
        "@key.json",
    ]);
    assert_eq!(with_file["checkpoint"]["tree_size"], head);

    // A part of the log, with a checkpoint of a past size signed for it.
    let part = cli.ok(&[
        "export",
        "--after",
        "5",
        "--to",
        "20",
        "--out",
        "part.jsonl",
        "--checkpoint-out",
        "checkpoint-20.txt",
    ]);
    assert_eq!(part["events"], 15);
    let text = std::fs::read_to_string(cli.path("part.jsonl")).unwrap();
    let positions: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, (6..=20).collect::<Vec<_>>());
    let verified = cli.ok(&["verify", "--checkpoint", "checkpoint-20.txt"]);
    assert_eq!(verified["checkpoint"]["tree_size"], 20);
    assert_eq!(verified["checkpoints"], 2, "{verified}");
    // An export from --after cannot be checked against a root from position 1: said so.
    let refused = cli.run(&[
        "verify",
        "--export",
        "part.jsonl",
        "--checkpoint",
        "checkpoint-20.txt",
        "--vkey",
        &vkey,
    ]);
    assert!(
        refused.refused_with(1).contains("--after"),
        "{}",
        refused.stderr
    );
}

async fn an_export_of_the_seeded_ledger_holds_no_secret(backend: Backend) {
    let (cli, tokens) = seeded(backend).await;
    assert_eq!(tokens.len(), 2, "MCP_TOKEN and MCP_SERVER_TOKEN");
    let integrations = cli.ok(&["integration", "list"]);
    assert_eq!(
        integrations.as_array().unwrap().len(),
        6,
        "the credentials are stored"
    );
    cli.ok(&[
        "export",
        "--out",
        "events.jsonl",
        "--checkpoint-out",
        "checkpoint.txt",
    ]);
    let exported = std::fs::read_to_string(cli.path("events.jsonl")).unwrap()
        + &std::fs::read_to_string(cli.path("checkpoint.txt")).unwrap();
    // The JSON lines escape quotes: compare with the payloads as they are stored, too.
    let unescaped = exported.replace("\\\"", "\"");

    let mut secrets: Vec<String> = tokens;
    for (_, credentials) in mcp_manager::seed::development_credentials() {
        for value in credentials.as_object().unwrap().values() {
            if let Some(text) = value.as_str() {
                secrets.push(text.to_owned());
            }
        }
    }
    secrets.push(KEY.to_owned());
    secrets.push(SIGNING_KEY.to_owned());
    secrets.push(SIGNING_KEY.rsplit('+').next().unwrap().to_owned());
    assert!(secrets.len() > 12, "{secrets:?}");
    for secret in &secrets {
        assert!(
            !exported.contains(secret.as_str()) && !unescaped.contains(secret.as_str()),
            "the export holds the secret {secret:?}"
        );
    }
}

async fn export_and_verify_refuse_in_one_line(backend: Backend) {
    let (cli, _) = seeded(backend).await;
    let head = cli.event_count().await;
    assert_eq!(cli.run(&["checkpoint"]).code, 0);

    let past = (head + 5).to_string();
    let line = cli
        .run(&["export", "--to", &past, "--out", "x.jsonl"])
        .refused_with(1)
        .to_owned();
    assert!(line.contains("past the log's head"), "{line}");
    assert!(!cli.path("x.jsonl").exists() && !cli.path("x.jsonl.partial").exists());
    let line = cli
        .run(&["export", "--after", "10", "--to", "5", "--out", "x.jsonl"])
        .refused_with(2)
        .to_owned();
    assert!(line.contains("--after 10"), "{line}");
    cli.run(&["verify", "--export", "x.jsonl"]).refused_with(2);

    cli.ok(&[
        "export",
        "--out",
        "events.jsonl",
        "--checkpoint-out",
        "checkpoint.txt",
    ]);
    let other = mcp_tlog::Signer::from_seed(mcp_tlog::DEFAULT_ORIGIN, &[9; 32])
        .unwrap()
        .verifier()
        .vkey();
    let wrong_key = cli.run(&[
        "verify",
        "--export",
        "events.jsonl",
        "--checkpoint",
        "checkpoint.txt",
        "--vkey",
        &other,
    ]);
    let line = wrong_key.refused_with(1);
    assert!(
        line.contains("checkpoint.txt") && line.contains(&other),
        "{line}"
    );
    let missing = cli.run(&[
        "verify",
        "--export",
        "missing.jsonl",
        "--checkpoint",
        "checkpoint.txt",
        "--vkey",
        &vkey(),
    ]);
    assert!(missing.refused_with(1).contains("missing.jsonl"));
    let not_a_key = cli.run(&["verify", "--vkey", "nope"]);
    assert!(not_a_key.refused_with(2).contains("--vkey"));

    // The stored checkpoints' signatures need the log's key: without it, said so.
    let keyless = cli.run_with(&["verify"], &[("MCP_LOG_SIGNING_KEY", "")], None);
    assert!(
        keyless.refused_with(1).contains("--vkey"),
        "{}",
        keyless.stderr
    );
    let given = cli.run_with(
        &["verify", "--vkey", &vkey()],
        &[("MCP_LOG_SIGNING_KEY", "")],
        None,
    );
    assert_eq!(given.json()["checkpoints"], 1);
    let replay = cli.run_with(&["replay"], &[("MCP_LOG_SIGNING_KEY", "")], None);
    assert!(
        replay.refused_with(1).contains("MCP_LOG_SIGNING_KEY"),
        "{}",
        replay.stderr
    );
    assert_eq!(cli.ok(&["replay"])["rebuilt"], true);
}

both_backends! {
    export_verifies => an_export_is_the_logs_event_objects_and_verifies_offline,
    no_secret_exported => an_export_of_the_seeded_ledger_holds_no_secret,
    refusals => export_and_verify_refuse_in_one_line,
}

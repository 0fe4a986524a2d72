//! Tampering, tried as someone with the database's superuser would (the immutability triggers
//! dropped): (a) the newest events deleted with their tree rows and the head reset, (b) the
//! tail rewritten and re-chained, its tree rows rebuilt to match, (c) one payload changed. Each
//! is caught by `verify --checkpoint` with a checkpoint an auditor kept, by `verify` (the stored
//! checkpoints), by the offline verifiers (`verify --export` and tools/verify_ledger.py), and
//! no new checkpoint is signed; `replay` refuses to launder it and `replay --check` changes
//! nothing.

use crate::helpers::{python_verify, vkey, Cli, Output};
use mcp_events::hash::chain_hash;
use mcp_events::{both_backends, Backend, EventStore, RawEvent};
use mcp_tlog::merkle;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A log with two signed checkpoints: one an auditor kept (`kept.txt`, at `kept` events) and a
/// later one (at `head`).
struct SignedLog {
    cli: Cli,
    token: String,
    kept: i64,
    head: i64,
}

async fn a_signed_log(backend: Backend) -> SignedLog {
    let cli = Cli::new(backend).await;
    let seeded = cli.run(&["seed"]);
    assert_eq!(seeded.code, 0, "{}", seeded.stderr);
    let token = seeded
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("MCP_TOKEN="))
        .expect("seed prints MCP_TOKEN")
        .to_owned();
    add_users(&cli, 0, 10);
    let kept = cli.run(&["checkpoint"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    std::fs::write(cli.path("kept.txt"), &kept.stdout).unwrap();
    let kept = cli.event_count().await;
    add_users(&cli, 10, 6);
    assert_eq!(cli.run(&["checkpoint"]).code, 0);
    let head = cli.event_count().await;
    let verified = cli.ok(&["verify", "--checkpoint", "kept.txt"]);
    assert_eq!(verified["checkpoints"], 2, "{verified}");
    SignedLog {
        cli,
        token,
        kept,
        head,
    }
}

fn add_users(cli: &Cli, from: usize, count: usize) {
    for n in from..from + count {
        let email = format!("user{n}@example.com");
        cli.ok(&["user", "add", "--email", &email, "--name", "User"]);
    }
}

/// What the projections hold, to prove a command changed none of it.
async fn projections(cli: &Cli) -> (i64, i64, i64) {
    (
        cli.scalar("select count(*) from audit_log").await,
        cli.scalar("select cast(coalesce(sum(usage_count), 0) as bigint) from tokens")
            .await,
        cli.scalar("select max(position) from projection_checkpoints")
            .await,
    )
}

async fn drop_triggers(cli: &Cli) {
    let sql = match cli.db.backend {
        Backend::Sqlite => {
            "drop trigger events_reject_update; drop trigger events_reject_delete; \
             drop trigger tlog_hashes_reject_delete;"
        }
        // The tests connect as the superuser `postgres`, who may.
        Backend::Postgres => {
            "drop trigger events_reject_update on events; \
             drop trigger events_reject_delete on events; \
             drop trigger tlog_hashes_reject_delete on tlog_hashes;"
        }
    };
    let db = cli.db.connect().await;
    sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
    db.close().await;
}

/// Deletes the events after `keep` and the tree's rows for them, and resets the head.
async fn truncate(cli: &Cli, keep: i64) {
    let db = cli.db.connect().await;
    sqlx::query("delete from events where position > $1")
        .bind(keep)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("delete from tlog_hashes where idx >= $1")
        .bind(merkle::stored_hash_count(keep as u64) as i64)
        .execute(db.pool())
        .await
        .unwrap();
    let hash: String = sqlx::query_scalar("select hash from events where position = $1")
        .bind(keep)
        .fetch_one(db.pool())
        .await
        .unwrap();
    sqlx::query("update ledger_head set position = $1, hash = $2 where id = 1")
        .bind(keep)
        .bind(&hash)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
}

/// Rewrites the metadata of every event after `from` and re-chains them, so the chain
/// verifies; the tree's rows for them are rebuilt from the new hashes.
async fn rewrite_tail(cli: &Cli, from: i64) {
    let db = cli.db.connect().await;
    let store = EventStore::new(db.clone());
    let mut tail: Vec<RawEvent> = store.read_raw_page(from - 1, 10_000).await.unwrap();
    let mut prev = tail[0].hash.clone();
    for event in &mut tail[1..] {
        event.metadata = "{\"actor\":\"mallory\"}".into();
        event.prev_hash = prev.clone();
        event.hash = chain_hash(&prev, &event.linked().fields);
        prev = event.hash.clone();
        sqlx::query(
            "update events set metadata = $1, prev_hash = $2, hash = $3 where position = $4",
        )
        .bind(&event.metadata)
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .bind(event.position)
        .execute(db.pool())
        .await
        .unwrap();
    }
    sqlx::query("update ledger_head set hash = $1 where id = 1")
        .bind(&prev)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("delete from tlog_hashes where idx >= $1")
        .bind(merkle::stored_hash_count(from as u64) as i64)
        .execute(db.pool())
        .await
        .unwrap();
    mcp_events::tree::catch_up(&store).await.unwrap();
    db.close().await;
}

/// Changes one event's payload, nothing else.
async fn edit_payload(cli: &Cli, position: i64) {
    let db = cli.db.connect().await;
    sqlx::query(
        "update events set payload = replace(payload, 'example.com', 'mallory.example') \
         where position = $1",
    )
    .bind(position)
    .execute(db.pool())
    .await
    .unwrap();
    db.close().await;
}

/// A refusal of `verify`: exit 1, one line naming `names`, and the JSON report.
fn refused(output: &Output, names: &str) -> Value {
    let line = output.refused_with(1);
    assert!(line.contains(names), "expected {names:?} in: {line}");
    let report: Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(report["valid"], false, "{report}");
    report
}

/// The offline verifiers on an export of the tampered log, against the kept checkpoint.
fn offline_verifiers_refuse(log: &SignedLog, names: &str) {
    let exported = log.cli.ok(&["export", "--out", "tampered.jsonl"]);
    assert!(exported["events"].as_i64().unwrap() > 0);
    let export = log.cli.path("tampered.jsonl");
    let kept = log.cli.path("kept.txt");
    let vkey = vkey();
    let rust = log.cli.run_with(
        &[
            "verify",
            "--export",
            export.to_str().unwrap(),
            "--checkpoint",
            kept.to_str().unwrap(),
            "--vkey",
            &vkey,
        ],
        &[("DATABASE_URL", "")],
        None,
    );
    refused(&rust, names);
    let (code, line) = python_verify(&[
        "--export",
        export.to_str().unwrap(),
        "--checkpoint",
        kept.to_str().unwrap(),
        "--vkey",
        &vkey,
    ]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains(names), "expected {names:?} in: {line}");
}

/// The server on the tampered log signs nothing new: the log grows (requests record their
/// use) or is shorter than signed (`shorter`: its size), and `/readyz` reports the refusal
/// naming both sizes; the `checkpoint` command refuses too.
async fn the_server_signs_nothing_new(log: &SignedLog, shorter: Option<i64>) {
    let server = log.cli.serve(&[("MCP_CHECKPOINT_INTERVAL", "0.1")]).await;
    if shorter.is_none() {
        let me = server
            .client
            .get(format!("{}/api/mcp/me", server.base))
            .bearer_auth(&log.token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    let started = Instant::now();
    let readiness = loop {
        let response = server
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status == 503 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server never refused to sign: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = readiness["checks"]["checkpoints"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refused_size = detail
        .strip_prefix("refusing to sign a checkpoint of size ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|size| size.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("{readiness}"));
    match shorter {
        Some(size) => assert_eq!(refused_size, size, "{readiness}"),
        None => assert!(refused_size > log.head, "{readiness}"),
    }
    assert!(
        detail.contains(&format!("signed checkpoint of size {}", log.head)),
        "{readiness}"
    );
    drop(server);
    assert_eq!(
        log.cli
            .scalar("select max(tree_size) from checkpoints")
            .await,
        log.head,
        "nothing new was signed"
    );
    let checkpoint = log.cli.run(&["checkpoint"]);
    assert!(
        checkpoint.refused_with(1).contains("refusing to sign"),
        "{}",
        checkpoint.stderr
    );
}

/// `replay --check` reports the damage and changes nothing; `replay` refuses, swapping
/// nothing in.
async fn replay_launders_nothing(log: &SignedLog, check_names: &str, replay_names: &str) {
    let before = projections(&log.cli).await;
    let check = log.cli.run(&["replay", "--check"]);
    let line = check.refused_with(1);
    assert!(
        line.contains(check_names),
        "expected {check_names:?} in: {line}"
    );
    assert_eq!(projections(&log.cli).await, before, "replay --check wrote");
    let replay = log.cli.run(&["replay"]);
    let line = replay.refused_with(1);
    assert!(
        line.contains(replay_names),
        "expected {replay_names:?} in: {line}"
    );
    assert_eq!(projections(&log.cli).await, before, "replay swapped");
}

async fn a_truncated_log_is_caught_everywhere(backend: Backend) {
    let log = a_signed_log(backend).await;
    drop_triggers(&log.cli).await;
    let keep = log.kept - 4;
    truncate(&log.cli, keep).await;

    let kept = log.cli.run(&["verify", "--checkpoint", "kept.txt"]);
    refused(&kept, &format!("position {}", keep + 1));
    assert!(kept.stderr.contains("truncation"), "{}", kept.stderr);
    offline_verifiers_refuse(&log, &format!("tree size {}", log.kept));
    replay_launders_nothing(&log, "truncation", "truncation").await;
    let refused_start = log.cli.serve_refused(&[]);
    assert!(
        refused_start.stderr.contains("truncation"),
        "{}",
        refused_start.stderr
    );

    // Projections agree with the shorter log (a thorough attacker forged them too): the
    // checkpoints still tell, by their sizes.
    let db = log.cli.db.connect().await;
    sqlx::query("update projection_checkpoints set position = $1")
        .bind(keep)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let stored = log.cli.run(&["verify"]);
    refused(&stored, &format!("tree size {}", log.kept));
    let kept = log.cli.run(&["verify", "--checkpoint", "kept.txt"]);
    let report = refused(&kept, &format!("tree size {}", log.kept));
    assert!(
        report["reason"].as_str().unwrap().contains("kept.txt"),
        "{report}"
    );
    // Nothing signs a checkpoint for it: the rebuild a start would need stops short of the
    // signed size, and `checkpoint` opens the ledger the same way.
    the_server_signs_nothing_new(&log, Some(keep)).await;
}

async fn a_rewritten_and_rechained_tail_is_caught_everywhere(backend: Backend) {
    let log = a_signed_log(backend).await;
    drop_triggers(&log.cli).await;
    let from = log.kept - 3;
    rewrite_tail(&log.cli, from).await;
    assert!(
        EventStore::new(log.cli.db.connect().await)
            .verify()
            .await
            .is_ok_and(|outcome| matches!(outcome, mcp_events::VerifyOutcome::Valid { .. })),
        "the chain alone cannot tell"
    );

    let kept = log.cli.run(&["verify", "--checkpoint", "kept.txt"]);
    let report = refused(&kept, &format!("tree size {}", log.kept));
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("does not extend"),
        "{report}"
    );
    let stored = log.cli.run(&["verify"]);
    refused(&stored, &format!("tree size {}", log.kept));
    offline_verifiers_refuse(&log, &format!("tree size {}", log.kept));
    let tree = format!("tree at size {} is not the root", log.head);
    replay_launders_nothing(&log, &tree, &tree).await;
    the_server_signs_nothing_new(&log, None).await;
}

async fn a_changed_payload_is_caught_everywhere(backend: Backend) {
    let log = a_signed_log(backend).await;
    drop_triggers(&log.cli).await;
    // A `user_registered` event of the users added after the seed.
    let position = log.kept - 2;
    edit_payload(&log.cli, position).await;
    let names = format!("position {position}");

    refused(
        &log.cli.run(&["verify", "--checkpoint", "kept.txt"]),
        &names,
    );
    refused(&log.cli.run(&["verify"]), &names);
    offline_verifiers_refuse(&log, &names);
    replay_launders_nothing(&log, &names, &names).await;
    the_server_signs_nothing_new(&log, None).await;
}

both_backends! {
    truncated_log => a_truncated_log_is_caught_everywhere,
    rewritten_tail => a_rewritten_and_rechained_tail_is_caught_everywhere,
    changed_payload => a_changed_payload_is_caught_everywhere,
}

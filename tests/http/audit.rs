//! The auditors' API and lease receipts, as an auditor's client uses them: everything verified
//! with the published verifier key, nothing taken on trust.

use crate::helpers::{into_parts, spawn_app_with, TestApp};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_events::{both_backends, Backend, TokenScope};
use mcp_tlog::merkle::{self, Hash};
use mcp_tlog::tile::{self, Tile};
use mcp_tlog::{Checkpoint, TlogProof, Verifier};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn audited_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |settings| {
        settings.checkpoint_interval = Duration::from_millis(200);
    })
    .await
}

/// A user with a todoist integration, a leases token and an audit token.
async fn people(app: &TestApp) -> (String, String) {
    let user = app.user("ada@example.com").await;
    app.personal(user, "todoist", json!({"access_token": "secret-todo"}))
        .await;
    let leases = app.token(user).await;
    let audit = app.token_scoped(user, TokenScope::Audit, None, None).await;
    (leases, audit)
}

async fn text(app: &TestApp, path: &str, token: &str) -> (u16, String) {
    let response = app.request(Method::GET, path, Some(token), None).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

fn hash(text: &str) -> Hash {
    Hash::try_from(BASE64.decode(text).unwrap().as_slice()).unwrap()
}

async fn verifier(app: &TestApp, audit: &str) -> Verifier {
    let (status, key) = app.get("/api/audit/key", audit).await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["origin"], mcp_tlog::DEFAULT_ORIGIN);
    Verifier::parse(key["vkey"].as_str().unwrap()).unwrap()
}

async fn the_audit_api_answers_audit_tokens_only(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    for path in [
        "/api/audit/events",
        "/api/audit/checkpoint",
        "/api/audit/key",
        "/api/audit/proof/inclusion?position=1",
        "/api/audit/tlog/checkpoint",
        "/api/audit/tlog/tile/0/000.p/1",
    ] {
        let (status, body) = text(&app, path, &leases).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("insufficient_scope"), "{path}: {body}");
        let (status, _) = text(&app, path, &audit).await;
        assert_eq!(status, 200, "{path}");
        let response = app.request(Method::GET, path, None, None).await;
        assert_eq!(response.status(), 401, "{path}");
    }
    // Every one of those requests was counted and recorded.
    assert_eq!(app.token_row(1).await.usage_count, 6);
    assert_eq!(app.token_row(2).await.usage_count, 6);
}

async fn events_come_page_by_page_as_stored(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    for _ in 0..3 {
        assert_eq!(app.lease(&leases, &["todoist"]).await.0, 201);
    }
    let (status, page) = app.get("/api/audit/events?after=0&limit=4", &audit).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(page["next_after"], 4);
    let head = page["head"].as_i64().unwrap();
    assert!(head >= 9, "{page}");
    // The stored columns, payload and metadata as strings: the hash recomputes from them.
    let first = &events[0];
    for field in [
        "position",
        "stream_id",
        "stream_version",
        "event_type",
        "event_version",
        "payload",
        "metadata",
        "recorded_at",
        "prev_hash",
        "hash",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert!(first["payload"].is_string() && first["metadata"].is_string());
    let (_, rest) = app
        .get("/api/audit/events?after=4&limit=1000", &audit)
        .await;
    assert_eq!(rest["events"][0]["position"], 5);
    assert_eq!(rest["events"][0]["prev_hash"], events[3]["hash"]);
    for bad in ["limit=0", "limit=1001", "after=-1", "limit=x"] {
        let (status, body) = app.get(&format!("/api/audit/events?{bad}"), &audit).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["errors"].is_object(), "{body}");
    }
    // No secret anywhere in the log.
    let (_, all) = text(&app, "/api/audit/events?limit=1000", &audit).await;
    assert!(!all.contains("secret-todo"));
    assert!(!all.contains(&leases));
}

async fn checkpoints_and_proofs_verify_with_the_vkey(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    for _ in 0..10 {
        app.lease(&leases, &["todoist"]).await;
    }
    let verifier = verifier(&app, &audit).await;
    let (status, note) = text(&app, "/api/audit/checkpoint", &audit).await;
    assert_eq!(status, 200);
    let first = Checkpoint::open(&note, &verifier).unwrap();
    // The same latest checkpoint at the tlog-tiles path (or a later one: every request here is
    // an event, and the checkpointer signs every 200 ms while the log grows).
    let (status, tlog_note) = text(&app, "/api/audit/tlog/checkpoint", &audit).await;
    assert_eq!(status, 200);
    assert!(Checkpoint::open(&tlog_note, &verifier).unwrap().size >= first.size);

    // Every event is in the signed tree.
    let (_, page) = app.get("/api/audit/events?limit=1000", &audit).await;
    for event in page["events"].as_array().unwrap() {
        let position = event["position"].as_u64().unwrap();
        if position > first.size {
            break;
        }
        // Against `first` by name: a later checkpoint may be signed meanwhile.
        let (status, proof) = app
            .get(
                &format!(
                    "/api/audit/proof/inclusion?position={position}&tree_size={}",
                    first.size
                ),
                &audit,
            )
            .await;
        assert_eq!(status, 200, "{proof}");
        assert_eq!(proof["leaf_index"].as_u64().unwrap(), position - 1);
        assert_eq!(proof["tree_size"].as_u64().unwrap(), first.size);
        let leaf = merkle::leaf_hash(
            &merkle::leaf_data_from_event_hash(event["hash"].as_str().unwrap()).unwrap(),
        );
        assert_eq!(hash(proof["leaf_hash"].as_str().unwrap()), leaf);
        let hashes: Vec<Hash> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hash(h.as_str().unwrap()))
            .collect();
        merkle::verify_inclusion(&leaf, position - 1, first.size, &hashes, &first.root).unwrap();
    }

    // Later: the log grew, and the new checkpoint extends the old one.
    for _ in 0..5 {
        app.lease(&leases, &["todoist"]).await;
    }
    let mut later = first.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        later = Checkpoint::open(
            &text(&app, "/api/audit/checkpoint", &audit).await.1,
            &verifier,
        )
        .unwrap();
        if later.size > first.size + 5 {
            break;
        }
    }
    assert!(later.size > first.size, "no new checkpoint was signed");
    let (status, proof) = app
        .get(
            &format!(
                "/api/audit/proof/consistency?from={}&to={}",
                first.size, later.size
            ),
            &audit,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hash(h.as_str().unwrap()))
        .collect();
    merkle::verify_consistency(first.size, later.size, &first.root, &later.root, &hashes).unwrap();

    // Beyond what is signed, or malformed: 422 naming the field.
    let beyond = later.size + 1000;
    for (path, field) in [
        (
            format!("/api/audit/proof/inclusion?position={beyond}"),
            "position",
        ),
        (
            format!("/api/audit/proof/inclusion?position=1&tree_size={beyond}"),
            "tree_size",
        ),
        ("/api/audit/proof/inclusion".to_owned(), "position"),
        ("/api/audit/proof/consistency?from=0".to_owned(), "from"),
        (
            format!("/api/audit/proof/consistency?from=2&to={beyond}"),
            "to",
        ),
        ("/api/audit/proof/consistency?from=x".to_owned(), "from"),
    ] {
        let (status, body) = app.get(&path, &audit).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body["errors"][field].is_array(), "{path}: {body}");
    }
}

async fn tiles_rebuild_the_signed_root(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    for _ in 0..140 {
        app.lease(&leases, &["todoist"]).await;
    }
    let verifier = verifier(&app, &audit).await;
    let mut checkpoint = Checkpoint::open(
        &text(&app, "/api/audit/checkpoint", &audit).await.1,
        &verifier,
    )
    .unwrap();
    for _ in 0..100 {
        if checkpoint.size > 256 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let note = text(&app, "/api/audit/checkpoint", &audit).await.1;
        checkpoint = Checkpoint::open(&note, &verifier).unwrap();
    }
    assert!(checkpoint.size > 256, "{}", checkpoint.size);
    // A tlog-tiles client: the level-0 tiles are the leaf hashes; the entry bundles are the
    // events' hashes; from them it rebuilds the root it was signed.
    let mut leaves: Vec<Hash> = Vec::new();
    let mut n = 0;
    while (leaves.len() as u64) < checkpoint.size {
        let tile = Tile::for_tree_size(0, n, checkpoint.size).unwrap();
        let response = app
            .request(
                Method::GET,
                &format!("/api/audit/tlog/{}", tile.path()),
                Some(&audit),
                None,
            )
            .await;
        assert_eq!(response.status(), 200, "{}", tile.path());
        let cache = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(tile.is_partial(), cache == "no-cache", "{cache}");
        let data = response.bytes().await.unwrap();
        assert_eq!(data.len(), usize::from(tile.width()) * 32);
        let bundle = tile::EntryBundle::for_tree_size(n, checkpoint.size).unwrap();
        let response = app
            .request(
                Method::GET,
                &format!("/api/audit/tlog/{}", bundle.path()),
                Some(&audit),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let entries = tile::decode_entry_bundle(&response.bytes().await.unwrap()).unwrap();
        for (entry, stored) in entries.iter().zip(data.chunks(32)) {
            assert_eq!(merkle::leaf_hash(entry).as_slice(), stored);
        }
        leaves.extend(data.chunks(32).map(|c| Hash::try_from(c).unwrap()));
        n += 1;
    }
    let mut memory = merkle::MemoryHashStore::new();
    memory.append_leaf_hashes(&leaves).unwrap();
    assert_eq!(memory.root().unwrap(), checkpoint.root);
    // A tile beyond the signed tree, or a malformed path: 404.
    for path in ["tile/0/x001/000", "tile/0/nope", "tile/entries/999"] {
        let (status, body) = app.get(&format!("/api/audit/tlog/{path}"), &audit).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
}

async fn a_lease_receipt_verifies_offline(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    let (_, lease) = app.lease(&leases, &["todoist"]).await;
    let id = lease["lease_id"].as_str().unwrap().to_owned();
    let path = format!("/api/mcp/credentials/lease/{id}");
    app.post(&format!("{path}/renew"), &leases, json!({})).await;
    let revoked = app
        .request(Method::DELETE, &path, Some(&leases), None)
        .await;
    assert_eq!(revoked.status(), 200);

    let (status, receipt) = app.get(&format!("{path}/receipt"), &leases).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["lease_id"], id.as_str());
    let verifier = Verifier::parse(receipt["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(verifier.vkey(), self::verifier(&app, &audit).await.vkey());
    let checkpoint = Checkpoint::open(receipt["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let events = receipt["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["lease_created", "lease_renewed", "lease_revoked"]);
    for event in events {
        let proof = TlogProof::parse(event["proof"].as_str().unwrap()).unwrap();
        assert_eq!(proof.extra.as_deref(), Some(id.as_bytes()));
        assert_eq!(proof.checkpoint, receipt["checkpoint"].as_str().unwrap());
        let position = event["event"]["position"].as_u64().unwrap();
        assert_eq!(proof.index, position - 1);
        let leaf =
            merkle::leaf_data_from_event_hash(event["event"]["hash"].as_str().unwrap()).unwrap();
        assert_eq!(
            proof.verify(&leaf, &verifier).unwrap().size,
            checkpoint.size
        );
    }
    // The receipt holds no credential.
    assert!(!receipt.to_string().contains("secret-todo"));

    // The same rules as the other lease routes.
    let other = app.user("bob@example.com").await;
    let bobs = app.token(other).await;
    assert_eq!(app.get(&format!("{path}/receipt"), &bobs).await.0, 403);
    let unknown = format!("/api/mcp/credentials/lease/lse_{}/receipt", "0".repeat(48));
    assert_eq!(app.get(&unknown, &leases).await.0, 404);
    assert_eq!(app.get(&format!("{path}/receipt"), &audit).await.0, 403);
    let response = app
        .request(Method::GET, &format!("{path}/receipt"), None, None)
        .await;
    assert_eq!(into_parts(response).await.0, 401);
}

both_backends! {
    audit_scope_only => the_audit_api_answers_audit_tokens_only,
    events_paged => events_come_page_by_page_as_stored,
    proofs_verify => checkpoints_and_proofs_verify_with_the_vkey,
    tiles_rebuild_root => tiles_rebuild_the_signed_root,
    receipts_verify => a_lease_receipt_verifies_offline,
}

/// A minimal server-sent-events reader: each message's fields (`id`, `event`, `data`).
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Default)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl SseReader {
    async fn open(app: &TestApp, token: &str, after: i64, last_event_id: Option<i64>) -> Self {
        let mut request = app
            .client
            .get(format!(
                "{}/api/audit/events/stream?after={after}",
                app.base
            ))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next message that is not a comment (heartbeat).
    async fn next(&mut self) -> Message {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                let mut comment = true;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        message.id = Some(value.trim().to_owned());
                        comment = false;
                    } else if let Some(value) = line.strip_prefix("event:") {
                        message.event = Some(value.trim().to_owned());
                        comment = false;
                    } else if let Some(value) = line.strip_prefix("data:") {
                        message.data.push_str(value.trim_start());
                        comment = false;
                    }
                }
                if !comment {
                    return message;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("the stream went quiet")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events up to and including `position`, skipping checkpoints; their positions.
    async fn events_until(&mut self, position: i64) -> Vec<i64> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            if message.event.as_deref() != Some("ledger_event") {
                continue;
            }
            let event: Value = serde_json::from_str(&message.data).unwrap();
            let at = event["position"].as_i64().unwrap();
            assert_eq!(message.id.as_deref(), Some(at.to_string().as_str()));
            seen.push(at);
            if at >= position {
                return seen;
            }
        }
    }
}

async fn head(app: &TestApp) -> i64 {
    app.ledger.store().head().await.unwrap().0
}

async fn the_live_stream_follows_the_log_and_resumes(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    app.lease(&leases, &["todoist"]).await;
    let mut stream = SseReader::open(&app, &audit, 0, None).await;
    let now = head(&app).await;
    assert_eq!(
        stream.events_until(now).await,
        (1..=now).collect::<Vec<_>>()
    );
    // Live: new events arrive in order, and so do checkpoints.
    app.lease(&leases, &["todoist"]).await;
    let later = head(&app).await;
    assert_eq!(
        stream.events_until(later).await,
        (now + 1..=later).collect::<Vec<_>>()
    );
    let verifier = verifier(&app, &audit).await;
    loop {
        let message = stream.next().await;
        if message.event.as_deref() == Some("checkpoint") {
            let body: Value = serde_json::from_str(&message.data).unwrap();
            let checkpoint =
                Checkpoint::open(body["checkpoint"].as_str().unwrap(), &verifier).unwrap();
            assert_eq!(body["tree_size"].as_u64().unwrap(), checkpoint.size);
            break;
        }
    }
    // Resuming: Last-Event-ID wins over `after`.
    let mut resumed = SseReader::open(&app, &audit, 0, Some(now)).await;
    let seen = resumed.events_until(later).await;
    assert_eq!(seen.first(), Some(&(now + 1)));
    let (status, body) = app.get("/api/audit/events/stream?after=-3", &audit).await;
    assert_eq!(status, 422, "{body}");
}

/// A hundred subscribers, one of which never reads, while leases are created: every reader
/// gets every event in order, and the writer is never held up by the one that does not read.
async fn many_subscribers_never_hold_up_writers(backend: Backend) {
    let app = audited_app(backend).await;
    let (leases, audit) = people(&app).await;
    let start = head(&app).await;
    let _stalled = SseReader::open(&app, &audit, 0, None).await;
    let mut readers = Vec::new();
    for _ in 0..100 {
        readers.push(SseReader::open(&app, &audit, start, None).await);
    }
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token) = (
                app.client.clone(),
                format!("{}/api/mcp/credentials/lease", app.base),
                leases.clone(),
            );
            tokio::spawn(async move {
                for n in 0..40 {
                    let body = json!({"services": ["todoist"], "server_id": format!("w{n}")});
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(writers))
        .await
        .expect("writers were held up");
    let end = head(&app).await;
    let checks = readers
        .into_iter()
        .map(|mut reader| async move { reader.events_until(end).await });
    for seen in futures::future::join_all(checks).await {
        // Each subscriber's own authentication is an event too; all are in order, none missed.
        assert_eq!(
            seen,
            (start + 1..=seen.last().copied().unwrap()).collect::<Vec<_>>()
        );
        assert!(*seen.last().unwrap() >= end);
    }
}

both_backends! {
    live_stream => the_live_stream_follows_the_log_and_resumes,
    many_subscribers => many_subscribers_never_hold_up_writers,
}

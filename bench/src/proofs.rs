//! The auditors' figures: inclusion and consistency proofs through HTTP on a large log.
//!
//! The log is generated (as for the replay measurement), its projections rebuilt, then the real
//! server opens it, signs a checkpoint of its head, and `connections` clients ask for proofs of
//! positions (and from sizes) spread over the whole log, each against that checkpoint.

use crate::http::{phase, Phase};
use mcp_events::{Database, DbOptions, EventStore, Metadata, TokenScope};
use mcp_manager::app::Application;
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::tokens::IssueToken;
use mcp_manager::config::Settings;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::tokens::expose;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Proof requests per kind, spread over a log of `events` events.
pub async fn proofs(
    url: &str,
    events: usize,
    requests: usize,
    connections: usize,
) -> anyhow::Result<Vec<Phase>> {
    let store = EventStore::new(Database::connect(url, &DbOptions::default()).await?);
    mcp_projections::ensure(&store).await?;
    crate::generate(&store, events).await?;
    mcp_projections::rebuild(&store, &mut |_, _| {}).await?;
    store.database().close().await;

    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(crate::http::signing_key());
    settings.checkpoint_interval = Duration::from_millis(100);
    let app = Application::build(settings, Arc::new(SystemClock), "127.0.0.1:0".parse()?).await?;
    let base: Arc<str> = format!("http://{}/api/audit", app.local_addr()).into();
    let ledger = app.ledger().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let issued = ledger
        .submit(IssueToken {
            user_id: 1,
            scope: TokenScope::Audit,
            name: "auditor".into(),
            expires_in: None,
            max_uses: None,
            metadata: Metadata::actor("bench"),
        })
        .await?;
    let token: Arc<str> = expose(&issued.token).into();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;

    // The checkpoint the proofs are against: the first that covers the generated log.
    let size = loop {
        let note = client
            .get(format!("{base}/checkpoint"))
            .bearer_auth(&*token)
            .send()
            .await?;
        if note.status() == 200 {
            let text = note.text().await?;
            let size: usize = text.lines().nth(1).unwrap_or("0").parse()?;
            if size >= events {
                break size;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let workers = connections.max(1);
    let per_worker = (requests / workers).max(1);
    let get = move |path: String| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let response = client
                .get(format!("{base}/{path}"))
                .bearer_auth(&*token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "{path} answered {}",
                response.status()
            );
            let proof: Value = response.json().await?;
            anyhow::ensure!(proof["hashes"].is_array(), "{path}: no hashes in {proof}");
            Ok(Value::Null)
        }
    };
    let spread =
        move |worker: usize, n: usize| crate::http::scattered(size, worker * per_worker + n) + 1;
    let mut phases = Vec::new();
    let label = format!("inclusion proof, {size} events");
    let (inclusion, _) = phase(&label, workers, per_worker, {
        let get = get.clone();
        move |worker, n| {
            get(format!(
                "proof/inclusion?position={}&tree_size={size}",
                spread(worker, n)
            ))
        }
    })
    .await?;
    phases.push(inclusion);
    let label = format!("consistency proof, {size} events");
    let (consistency, _) = phase(&label, workers, per_worker, move |worker, n| {
        get(format!(
            "proof/consistency?from={}&to={size}",
            spread(worker, n)
        ))
    })
    .await?;
    phases.push(consistency);

    let _ = stop.send(());
    server.await??;
    ledger.store().database().close().await;
    Ok(phases)
}

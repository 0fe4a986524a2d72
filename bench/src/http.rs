//! The HTTP load measurement of `mcp-manager-bench`: the real server on a loopback port, and
//! `connections` concurrent clients creating, renewing and reading leases.

use mcp_events::{IntegrationOwner, IntegrationStatus, Metadata};
use mcp_manager::app::Application;
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::integrations::AddIntegration;
use mcp_manager::commands::tokens::IssueToken;
use mcp_manager::config::Settings;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::tokens::expose;
use mcp_manager::validate::ServiceName;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Phase {
    pub name: &'static str,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs one phase: `per_worker[i]` requests for worker `i`, made by `request`.
async fn phase<F, Fut>(
    name: &'static str,
    workers: usize,
    per_worker: usize,
    request: F,
) -> anyhow::Result<(Phase, Vec<Vec<Value>>)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Value>> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                let mut bodies = Vec::with_capacity(per_worker);
                for n in 0..per_worker {
                    let sent = Instant::now();
                    bodies.push(request(worker, n).await?);
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok((latencies, bodies))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut bodies = Vec::new();
    for task in tasks {
        let (l, b) = task.await??;
        latencies.extend(l);
        bodies.push(b);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok((
        Phase {
            name,
            rate: latencies.len() as f64 / elapsed,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
        },
        bodies,
    ))
}

pub async fn run(url: &str, requests: usize, connections: usize) -> anyhow::Result<Vec<Phase>> {
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    let app = Application::build(settings, Arc::new(SystemClock), "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{}/api/mcp/credentials/lease", app.local_addr());
    let ledger = app.ledger().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let meta = || Metadata::actor("bench");
    let user_id = ledger
        .submit(RegisterUser {
            email: "load@example.com".into(),
            name: "Load".into(),
            metadata: meta(),
        })
        .await?;
    for service in ["todoist", "openai"] {
        ledger
            .submit(AddIntegration {
                service: ServiceName::parse(service).map_err(anyhow::Error::msg)?,
                owner: IntegrationOwner::User { user_id },
                status: IntegrationStatus::Active,
                credentials: json!({"access_token": "load"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                metadata: meta(),
            })
            .await?;
    }
    let issued = ledger
        .submit(IssueToken {
            user_id,
            name: "load".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await?;
    let token = Arc::new(expose(&issued.token).to_owned());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let workers = connections.max(1);
    let per_worker = (requests / workers).max(1);

    let (create, leases) = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        phase("create", workers, per_worker, move |worker, n| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let body = json!({"services": ["todoist", "openai"], "server_id": format!("load-{worker}-{n}")});
                let response = client.post(&base).bearer_auth(token.as_str()).json(&body).send().await?;
                anyhow::ensure!(response.status() == 201, "create answered {}", response.status());
                let body: Value = response.json().await?;
                Ok(body["lease_id"].clone())
            }
        })
        .await?
    };
    let leases = Arc::new(leases);
    let (renew, _) = {
        let (client, base, token, leases) =
            (client.clone(), base.clone(), token.clone(), leases.clone());
        phase("renew", workers, per_worker, move |worker, n| {
            let (client, base, token, leases) =
                (client.clone(), base.clone(), token.clone(), leases.clone());
            async move {
                let id = leases[worker][n].as_str().unwrap_or_default().to_owned();
                let response = client
                    .post(format!("{base}/{id}/renew"))
                    .bearer_auth(token.as_str())
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status() == 200,
                    "renew answered {}",
                    response.status()
                );
                Ok(Value::Null)
            }
        })
        .await?
    };
    let (get, _) = {
        let (client, base, token, leases) =
            (client.clone(), base.clone(), token.clone(), leases.clone());
        phase("get", workers, per_worker, move |worker, n| {
            let (client, base, token, leases) =
                (client.clone(), base.clone(), token.clone(), leases.clone());
            async move {
                let id = leases[worker][n].as_str().unwrap_or_default().to_owned();
                let response = client
                    .get(format!("{base}/{id}"))
                    .bearer_auth(token.as_str())
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status() == 200,
                    "get answered {}",
                    response.status()
                );
                Ok(Value::Null)
            }
        })
        .await?
    };
    let _ = stop.send(());
    server.await??;
    ledger.store().database().close().await;
    Ok(vec![create, renew, get])
}

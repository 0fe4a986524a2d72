//! The HTTP load measurement: the real server on a loopback port, and `connections` concurrent
//! clients creating, renewing, reading and revoking leases.
//!
//! Two shapes: the short run (create `requests` leases, then renew and read each once), and
//! the large population (`population` live leases, then renewals and revocations of leases
//! drawn at random from all of them, as a real fleet of MCP servers would send).

use mcp_manager::app::Application;
use mcp_manager::clock::SystemClock;
use mcp_manager::config::Settings;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::random::{base62, OsEntropy};
use mcp_manager::tokens::expose;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Phase {
    pub name: String,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: usize,
    pub connections: usize,
    /// Live leases before the population phases (0: only the short run).
    pub population: usize,
    /// The writer's memory between batches.
    pub memory: bool,
    /// Whether the server signs checkpoints every second while the log grows (off: one a year).
    pub checkpoints: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs one phase: `per_worker` requests for each of `workers`, made by `request(worker, n)`;
/// returns its figures and each request's answer.
pub(crate) async fn phase<F, Fut>(
    name: &str,
    workers: usize,
    per_worker: usize,
    request: F,
) -> anyhow::Result<(Phase, Vec<Value>)>
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
        bodies.extend(b);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok((
        Phase {
            name: name.to_owned(),
            rate: latencies.len() as f64 / elapsed,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
        },
        bodies,
    ))
}

/// What every request needs: the client, the lease URL and the token.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl Target {
    async fn create(&self, server_id: String) -> anyhow::Result<Value> {
        let body = json!({"services": ["todoist", "openai"], "server_id": server_id});
        let response = self
            .client
            .post(&*self.base)
            .bearer_auth(&*self.token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "create answered {}",
            response.status()
        );
        let body: Value = response.json().await?;
        Ok(body["lease_id"].clone())
    }

    async fn call(&self, method: reqwest::Method, path: String) -> anyhow::Result<Value> {
        let response = self
            .client
            .request(method.clone(), format!("{}/{path}", self.base))
            .bearer_auth(&*self.token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "{method} {path} answered {}",
            response.status()
        );
        Ok(Value::Null)
    }
}

/// Picks distinct pseudo-random indexes below `n` (a fixed permutation step, no RNG state).
pub(crate) fn scattered(n: usize, i: usize) -> usize {
    // 7919 is prime and does not divide any population used here, so i ↦ i·7919 mod n is a
    // permutation of 0..n when gcd(7919, n) = 1.
    (i.wrapping_mul(7919) + 13) % n
}

/// A fresh signing key for the bench's server.
pub(crate) fn signing_key() -> secrecy::SecretString {
    let (private, _) = mcp_manager::signing::generate(mcp_tlog::DEFAULT_ORIGIN)
        .expect("the default origin is a valid key name");
    private.to_string().into()
}

pub async fn run(url: &str, load: Load) -> anyhow::Result<Vec<Phase>> {
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(signing_key());
    settings.writer_memory = load.memory;
    settings.checkpoint_interval = if load.checkpoints {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(365 * 24 * 3600)
    };

    let app = Application::build(settings, Arc::new(SystemClock), "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{}/api/mcp/credentials/lease", app.local_addr());
    let ledger = app.ledger().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let (_, issued) = crate::person(&ledger, "load@example.com", &["todoist", "openai"]).await?;
    let target = Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(load.connections)
            .build()?,
        base: base.into(),
        token: expose(&issued.token).into(),
    };
    let workers = load.connections.max(1);
    let per_worker = (load.requests / workers).max(1);
    let mut phases = Vec::new();

    let (create, leases) = {
        let target = target.clone();
        phase("create", workers, per_worker, move |worker, n| {
            let target = target.clone();
            async move { target.create(format!("load-{worker}-{n}")).await }
        })
        .await?
    };
    phases.push(create);
    let leases: Arc<Vec<String>> = Arc::new(
        leases
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_owned())
            .collect(),
    );
    for (name, method, suffix) in [
        ("renew", reqwest::Method::POST, "/renew"),
        ("get", reqwest::Method::GET, ""),
    ] {
        let (target, leases) = (target.clone(), leases.clone());
        let (figures, _) = phase(name, workers, per_worker, move |worker, n| {
            let (target, leases, method) = (target.clone(), leases.clone(), method.clone());
            let id = leases[worker * per_worker + n].clone();
            async move { target.call(method, format!("{id}{suffix}")).await }
        })
        .await?;
        phases.push(figures);
    }

    if load.population > leases.len() {
        let more = (load.population - leases.len()).div_ceil(workers);
        let run = base62(&OsEntropy, 6);
        let target_ = target.clone();
        let (populate, created) = phase("create (populating)", workers, more, move |worker, n| {
            let target = target_.clone();
            let run = run.clone();
            async move { target.create(format!("pool-{run}-{worker}-{n}")).await }
        })
        .await?;
        let pool: Arc<Vec<String>> = Arc::new(
            leases
                .iter()
                .cloned()
                .chain(
                    created
                        .iter()
                        .map(|l| l.as_str().unwrap_or_default().to_owned()),
                )
                .collect(),
        );
        phases.push(populate);
        let size = pool.len();

        for (name, method, suffix, offset) in [
            ("renew (pool)", reqwest::Method::POST, "/renew", 0),
            (
                "revoke (pool)",
                reqwest::Method::DELETE,
                "",
                per_worker * workers,
            ),
        ] {
            let (target, pool) = (target.clone(), pool.clone());
            let label = format!("{name} of {size}");
            let (figures, _) = phase(&label, workers, per_worker, move |worker, n| {
                let (target, pool, method) = (target.clone(), pool.clone(), method.clone());
                let id = pool[scattered(size, offset + worker * per_worker + n)].clone();
                async move { target.call(method, format!("{id}{suffix}")).await }
            })
            .await?;
            phases.push(figures);
        }
    }
    let _ = stop.send(());
    server.await??;
    ledger.store().database().close().await;
    Ok(phases)
}

/// What a flood of refused requests cost.
pub struct Flood {
    pub rate: f64,
    pub events: i64,
    pub bytes: i64,
}

/// The size of the database on disk: the SQLite file and its WAL, or PostgreSQL's database.
async fn database_bytes(url: &str, ledger: &mcp_manager::ledger::Ledger) -> anyhow::Result<i64> {
    match mcp_events::db::sqlite_path(url) {
        Some(path) => {
            let mut bytes = 0;
            for suffix in ["", "-wal"] {
                let file = format!("{}{suffix}", path.display());
                bytes += std::fs::metadata(&file).map_or(0, |m| m.len() as i64);
            }
            Ok(bytes)
        }
        None => Ok(
            sqlx::query_scalar("select pg_database_size(current_database())")
                .fetch_one(ledger.store().database().pool())
                .await?,
        ),
    }
}

/// `requests` refused requests (a bad token) from `connections` clients, with the flood guard
/// on or off, and a User-Agent of `user_agent` characters.
pub async fn flood(
    url: &str,
    requests: usize,
    connections: usize,
    guard: bool,
    user_agent: usize,
) -> anyhow::Result<Flood> {
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(signing_key());
    if !guard {
        settings.auth_failure_burst = 0;
    }
    settings.auth_failure_window_seconds = 1;
    let app = Application::build(settings, Arc::new(SystemClock), "127.0.0.1:0".parse()?).await?;
    let url_me = format!("http://{}/api/mcp/me", app.local_addr());
    let ledger = app.ledger().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    // A baseline: one refusal, so the tables exist and have their first pages.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    client
        .get(&url_me)
        .bearer_auth("mcp_flood_0")
        .send()
        .await?;
    let (head, bytes) = (
        ledger.store().head().await?.0,
        database_bytes(url, &ledger).await?,
    );
    let agent: Arc<str> = "x".repeat(user_agent.max(1)).into();
    let per_worker = (requests / connections.max(1)).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (client, url_me, agent) = (client.clone(), url_me.clone(), agent.clone());
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    let response = client
                        .get(&url_me)
                        .bearer_auth("mcp_flood_0")
                        .header("user-agent", &*agent)
                        .send()
                        .await?;
                    anyhow::ensure!(
                        matches!(response.status().as_u16(), 401 | 429),
                        "a refused request got {}",
                        response.status()
                    );
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let rate = (per_worker * connections.max(1)) as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await??;
    let events = ledger.store().head().await?.0 - head;
    let grown = database_bytes(url, &ledger).await? - bytes;
    ledger.store().database().close().await;
    Ok(Flood {
        rate,
        events,
        bytes: grown,
    })
}

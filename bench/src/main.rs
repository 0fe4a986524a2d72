//! `mcp-manager-bench`: the speed figures of the README, measured on throwaway databases.
//!
//! - append: authenticated `GET lease` commands through `Ledger::submit` (each appends one
//!   `mcp_auth_success` event, updates the token and audit projections and commits), with 1 and
//!   32 concurrent submitters;
//! - replay: a full `replay` (read, decode, fold in memory, write and swap in every projection
//!   table) over a generated log, then `replay --check` (read, decode, fold, compare every
//!   row), and reading and decoding alone for reference;
//! - the auditors' commands over a generated log: the first checkpoint's signing (the whole
//!   log checked), `export`, `verify` on the database, and `verify --export` offline;
//! - the web console: dashboard page loads for people with 100 active leases each.
//!
//! It never touches `DATABASE_URL`: SQLite runs in a temporary directory, PostgreSQL in a fresh
//! database created (and dropped) on `--postgres-url`.

mod console;
mod http;
mod proofs;

use anyhow::Context;
use clap::Parser;
use mcp_events::{
    Backend, CredentialScope, Database, DbOptions, DomainEvent, EventStore, ExpectedVersion,
    IntegrationOwner, IntegrationStatus, Metadata, ResolvedService, StreamId, Timestamp,
};
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::integrations::AddIntegration;
use mcp_manager::commands::mcp::{Answer, Caller, CreateLease, GetLease, McpRequest};
use mcp_manager::commands::tokens::{IssueToken, IssuedToken};
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{Ledger, LedgerSetup};
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use std::time::Instant;

/// mimalloc, as in the server: the measurements are of what runs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mcp-manager-bench",
    about = "Measure MCP Manager's append, HTTP and replay throughput on throwaway databases"
)]
pub struct BenchArgs {
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<String>,
    /// The PostgreSQL server on which a throwaway database is created.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Commands per append measurement.
    #[arg(long, default_value_t = 20_000)]
    pub commands: usize,
    /// Concurrent submitters, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub submitters: Vec<usize>,
    /// Events in the generated log for the replay measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Requests per phase of the HTTP load measurement (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub http_requests: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Live leases for the large-population HTTP phases (0 skips them).
    #[arg(long, default_value_t = 100_000)]
    pub population: usize,
    /// The writer's memory between batches, one HTTP measurement each.
    #[arg(long, value_delimiter = ',', default_value = "on,off")]
    pub memory: Vec<String>,
    /// Refused requests (a bad token) per flood measurement, with the flood guard on and off
    /// (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub flood: usize,
    /// Checkpoints signed every second (on) or not during the HTTP runs (off), one measurement
    /// each.
    #[arg(long, value_delimiter = ',', default_value = "on")]
    pub checkpoints: Vec<String>,
    /// Proof requests of each kind through HTTP (0 skips them).
    #[arg(long, default_value_t = 20_000)]
    pub proofs: usize,
    /// Events in the generated log the proofs are asked of.
    #[arg(long, default_value_t = 1_000_000)]
    pub proof_events: usize,
    /// Concurrent HTTP connections asking for proofs.
    #[arg(long, default_value_t = 8)]
    pub proof_connections: usize,
    /// Events in the generated log for the auditors' measurements: `export`, `verify` on the
    /// database and `verify --export` offline (0 skips them).
    #[arg(long, default_value_t = 1_000_000)]
    pub audit_events: usize,
    /// Dashboard page loads (`GET /` of the web console) through HTTP (0 skips them).
    #[arg(long, default_value_t = 4_000)]
    pub dashboard_requests: usize,
    /// People whose dashboards are loaded, each signed in with a session of their own.
    #[arg(long, default_value_t = 10)]
    pub dashboard_people: usize,
    /// Active leases of each of those people.
    #[arg(long, default_value_t = 100)]
    pub dashboard_leases: usize,
    /// Concurrent HTTP connections loading dashboards.
    #[arg(long, default_value_t = 4)]
    pub dashboard_connections: usize,
}

/// A database that exists for one measurement.
struct Throwaway {
    url: String,
    _dir: Option<tempfile::TempDir>,
    drop_on: Option<(String, String)>,
}

impl Throwaway {
    async fn new(backend: Backend, postgres_url: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(Self {
                    url,
                    _dir: Some(dir),
                    drop_on: None,
                })
            }
            Backend::Postgres => {
                let name = format!(
                    "mcp_bench_{}_{}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_micros()
                );
                admin(postgres_url, &format!("create database {name}")).await?;
                let base = postgres_url
                    .rsplit_once('/')
                    .map_or(postgres_url, |(b, _)| b);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    drop_on: Some((postgres_url.to_owned(), name)),
                })
            }
        }
    }

    async fn remove(self) -> anyhow::Result<()> {
        if let Some((admin_url, name)) = &self.drop_on {
            admin(
                admin_url,
                &format!("drop database if exists {name} with (force)"),
            )
            .await?;
        }
        Ok(())
    }
}

async fn admin(url: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", mcp_events::db::redact(url)))?;
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
    conn.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(BenchArgs::parse()).await
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!("{:<10} {:<44} {:>14}", "backend", "measurement", "result");
    for name in &args.backends {
        let backend = match name.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => anyhow::bail!("unknown backend {other:?} (sqlite or postgres)"),
        };
        for &submitters in &args.submitters {
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            let rate = append(&db.url, args.commands, submitters.max(1)).await?;
            println!(
                "{:<10} {:<44} {:>10.0} /s",
                backend.name(),
                format!(
                    "append: {submitters} submitter(s), {} commands",
                    args.commands
                ),
                rate
            );
            db.remove().await?;
        }
        let runs = args
            .memory
            .iter()
            .flat_map(|m| args.checkpoints.iter().map(move |c| (m, c)));
        for (memory, checkpoints) in runs {
            if args.http_requests == 0 {
                break;
            }
            let load = http::Load {
                requests: args.http_requests,
                connections: args.connections,
                population: args.population,
                memory: on_off("--memory", memory)?,
                checkpoints: on_off("--checkpoints", checkpoints)?,
            };
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            for phase in http::run(&db.url, load).await? {
                print_phase(
                    backend,
                    &format!(
                        "http {} (memory {memory}, checkpoints {checkpoints})",
                        phase.name
                    ),
                    &phase,
                );
            }
            db.remove().await?;
        }
        if args.proofs > 0 && args.proof_events > 0 {
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            let phases = proofs::proofs(
                &db.url,
                args.proof_events,
                args.proofs,
                args.proof_connections,
            )
            .await?;

            for phase in phases {
                print_phase(backend, &format!("http {}", phase.name), &phase);
            }
            db.remove().await?;
        }

        if args.dashboard_requests > 0 {
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            let phase = console::dashboard(
                &db.url,
                args.dashboard_people.max(1),
                args.dashboard_leases,
                args.dashboard_requests,
                args.dashboard_connections,
            )
            .await?;
            print_phase(backend, &format!("http {}", phase.name), &phase);
            db.remove().await?;
        }

        if args.flood > 0 {
            for (guard, user_agent) in [(false, 40), (false, 2_000), (true, 40), (true, 2_000)] {
                let db = Throwaway::new(backend, &args.postgres_url).await?;
                let flood =
                    http::flood(&db.url, args.flood, args.connections, guard, user_agent).await?;
                let per_request = flood.bytes as f64 / args.flood as f64;
                // Unguarded, every request costs the same, so the log grows with the rate. Guarded,
                // a flood costs a fixed number of events per minute whatever its rate: the budget's
                // refill plus one record per window (and kind of refusal).
                let per_hour = if guard {
                    let policy = mcp_manager::http::flood::FloodPolicy::default();
                    let events = f64::from(policy.per_minute + 1) * 60.0;
                    events * flood.bytes as f64 / flood.events.max(1) as f64
                } else {
                    per_request * flood.rate * 3600.0
                };
                println!(
                    "{:<10} {:<44} {:>10.0} /s   {} events, {} bytes for {} requests; {:.4} GB/h",
                    backend.name(),
                    format!(
                        "refused flood, guard {}, {user_agent}-char UA",
                        if guard { "on" } else { "off" }
                    ),
                    flood.rate,
                    flood.events,
                    flood.bytes,
                    args.flood,
                    per_hour / 1e9
                );

                db.remove().await?;
            }
        }
        if args.events > 0 {
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            let (decode, fold, check, rebuild) = replay(&db.url, args.events).await?;
            println!(
                "{:<10} {:<44} {:>10.0} /s",
                backend.name(),
                format!("read + decode only: {} events", args.events),
                decode
            );
            println!(
                "{:<10} {:<44} {:>10.0} /s",
                backend.name(),
                format!("read + decode + fold: {} events", args.events),
                fold
            );
            println!(
                "{:<10} {:<44} {:>10.0} /s",
                backend.name(),
                format!("replay --check: {} events", args.events),
                check
            );
            println!(
                "{:<10} {:<44} {:>10.0} /s",
                backend.name(),
                format!("replay (rebuild + swap): {} events", args.events),
                rebuild
            );
            db.remove().await?;
        }
        if args.audit_events > 0 {
            let db = Throwaway::new(backend, &args.postgres_url).await?;
            let figures = audit(&db.url, args.audit_events).await?;
            for (name, rate) in figures {
                println!(
                    "{:<10} {:<44} {:>10.0} /s",
                    backend.name(),
                    format!("{name}: {} events", args.audit_events),
                    rate
                );
            }
            db.remove().await?;
        }
    }
    Ok(())
}

fn on_off(flag: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => anyhow::bail!("{flag} takes on and off, not {other:?}"),
    }
}

fn print_phase(backend: Backend, name: &str, phase: &http::Phase) {
    println!(
        "{:<10} {:<44} {:>10.0} /s   p50 {:.2} ms  p99 {:.2} ms",
        backend.name(),
        name,
        phase.rate,
        phase.p50_ms,
        phase.p99_ms
    );
}

/// Generates a log of `events` events, then times what auditors run on it: signing its first
/// checkpoint (the whole log checked), `export` (to a file), `verify` on the database (chain,
/// tree and the checkpoint's signature) and `verify --export` offline. Events per second of
/// each, by name.
async fn audit(url: &str, events: usize) -> anyhow::Result<Vec<(&'static str, f64)>> {
    use mcp_manager::audit::{export, offline, online};
    let store = EventStore::new(Database::connect(url, &DbOptions::default()).await?);
    mcp_projections::ensure(&store).await?;
    generate(&store, events).await?;
    let total = store.head().await?.0;
    let rate = |started: Instant| total as f64 / started.elapsed().as_secs_f64();
    let mut figures = Vec::new();

    let signer = mcp_tlog::Signer::from_seed(mcp_tlog::DEFAULT_ORIGIN, &[5; 32])?;
    let started = Instant::now();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let signed =
        mcp_events::checkpoints::sign_at_checked(&store, &signer, total as u64, now, true, &[])
            .await?;
    figures.push(("first checkpoint (whole log checked)", rate(started)));

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.jsonl");
    let started = Instant::now();
    let (_, written) = export::write_events(
        &store,
        0,
        total,
        std::fs::File::create(&path)?,
        Box::new(|_, _| {}),
    )
    .await?;
    anyhow::ensure!(
        written as i64 == total,
        "exported {written} of {total} events"
    );
    figures.push(("export (to a file)", rate(started)));

    let verifier = signer.verifier();
    let started = Instant::now();
    match online::verify(&store, Some(&verifier), None).await? {
        Ok(report) => anyhow::ensure!(report.events == total && report.checkpoints == 1),
        Err(finding) => anyhow::bail!("the generated log does not verify: {finding}"),
    }
    figures.push(("verify (database)", rate(started)));

    let checkpoint = mcp_tlog::Checkpoint::open(&signed.note, &verifier)?;
    let started = Instant::now();
    let input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let verified = offline::verify_export(input, &checkpoint, &mut |_| {})?;
    anyhow::ensure!(verified.events == total);
    figures.push(("verify --export (offline)", rate(started)));
    store.database().close().await;
    Ok(figures)
}

fn meta() -> Metadata {
    Metadata::actor("bench")
}

/// A user with a personal integration of each of `services` and a `leases` token: their id and
/// the token.
pub(crate) async fn person(
    ledger: &Ledger,
    email: &str,
    services: &[&str],
) -> anyhow::Result<(i64, IssuedToken)> {
    let user_id = ledger
        .submit(RegisterUser {
            email: email.into(),
            name: "Bench".into(),
            metadata: meta(),
        })
        .await?;
    for service in services {
        ledger
            .submit(AddIntegration {
                service: ServiceName::parse(service).map_err(anyhow::Error::msg)?,
                owner: IntegrationOwner::User { user_id },
                status: IntegrationStatus::Active,
                credentials: serde_json::json!({"access_token": "bench"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                metadata: meta(),
            })
            .await?;
    }
    let token = ledger
        .submit(IssueToken {
            user_id,
            scope: mcp_events::TokenScope::Leases,
            name: "bench".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await?;
    Ok((user_id, token))
}

/// Commands per second for `commands` authenticated lease reads from `submitters` tasks.
async fn append(url: &str, commands: usize, submitters: usize) -> anyhow::Result<f64> {
    let store = EventStore::new(Database::connect(url, &DbOptions::default()).await?);
    let ledger = Ledger::open(store.clone(), LedgerSetup::new(EncryptionKey::generate())).await?;
    let (_, token) = person(&ledger, "bench@example.com", &["todoist"]).await?;
    let caller = Caller {
        token_hash: Some(hash_token(expose(&token.token))),
        ..Caller::default()
    };
    let action = CreateLease {
        services: vec!["todoist".into()],
        ttl: 3600,
        server_id: "bench".into(),
        renewable: true,
        client_info: None,
    };
    let lease_id = match ledger
        .submit(McpRequest {
            caller: caller.clone(),
            action,
        })
        .await?
    {
        Answer::Granted(lease) => lease.lease_id,
        Answer::Refused(refusal) => anyhow::bail!("creating the bench lease failed: {refusal:?}"),
    };

    let started = Instant::now();
    let per_task = commands / submitters;
    let tasks: Vec<_> = (0..submitters)
        .map(|_| {
            let (ledger, caller, lease_id) = (ledger.clone(), caller.clone(), lease_id.clone());
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let action = GetLease {
                        lease_id: lease_id.clone(),
                    };
                    let request = McpRequest {
                        caller: caller.clone(),
                        action,
                    };
                    if let Answer::Refused(refusal) = ledger.submit(request).await? {
                        anyhow::bail!("a bench request was refused: {refusal:?}");
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    store.database().close().await;
    Ok((per_task * submitters) as f64 / elapsed)
}

/// Generates a log of `events` events (token uses and leases that are created, renewed four
/// times and revoked), then times `rebuild`, `check`, reading and decoding alone, and reading,
/// decoding and folding in memory (replay's first pass). Returns events per second of each.
async fn replay(url: &str, events: usize) -> anyhow::Result<(f64, f64, f64, f64)> {
    let store = EventStore::new(Database::connect(url, &DbOptions::default()).await?);
    mcp_projections::ensure(&store).await?;
    generate(&store, events).await?;
    let total = store.head().await?.0;
    let rate = |started: Instant| total as f64 / started.elapsed().as_secs_f64();

    // The log was generated without its projections; the rebuild writes them all.
    let started = Instant::now();
    mcp_projections::rebuild(&store, &mut |_, _| {}).await?;
    let rebuild = rate(started);

    // Now every table matches, so the check compares every row (1M audit records among them).
    let started = Instant::now();
    match mcp_projections::check(&store, &mut |_, _| {}).await? {
        mcp_projections::CheckOutcome::Same(_) => {}
        mcp_projections::CheckOutcome::Differs { table, description } => {
            anyhow::bail!("the rebuilt {table} differs from a check: {description}")
        }
        mcp_projections::CheckOutcome::LogDoesNotVerify(reason) => anyhow::bail!("{reason}"),
    }
    let check = rate(started);

    let started = Instant::now();
    let mut read = 0usize;
    let mut pages = std::pin::pin!(store.read_all(0));
    while let Some(page) = futures::TryStreamExt::try_next(&mut pages).await? {
        read += page.len();
    }
    anyhow::ensure!(read as i64 == total, "read {read} of {total} events");
    let decode = rate(started);
    let started = Instant::now();
    mcp_projections::fold_only(&store, &mut |_, _| {}).await?;
    let fold = rate(started);
    store.database().close().await;
    Ok((decode, fold, check, rebuild))
}

async fn generate(store: &EventStore, events: usize) -> anyhow::Result<()> {
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let meta = Metadata {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
        ..meta()
    };
    let mut tx = store.begin_write().await?;
    let user = DomainEvent::UserRegistered {
        user_id: 1,
        email: "bench@example.com".into(),
        name: "Bench".into(),
    };
    tx.append(
        &StreamId::user(1),
        ExpectedVersion::NoStream,
        &[user],
        &meta,
        now,
    )
    .await?;
    let token = DomainEvent::TokenIssued {
        token_id: 1,
        user_id: 1,
        name: "bench".into(),
        token_hash: hash_token("bench"),
        expires_at: None,
        max_uses: None,
        scope: mcp_events::TokenScope::Leases,
    };
    tx.append(
        &StreamId::token(1),
        ExpectedVersion::NoStream,
        &[token],
        &meta,
        now,
    )
    .await?;
    let mut token_version = 1;
    let mut written = 2usize;
    let mut lease = 0usize;
    while written < events {
        let uses = 400.min(events - written);
        let auth = vec![
            DomainEvent::McpAuthSucceeded {
                token_id: 1,
                user_id: 1,
                at: now
            };
            uses
        ];
        tx.append(
            &StreamId::token(1),
            ExpectedVersion::Exact(token_version),
            &auth,
            &meta,
            now,
        )
        .await?;
        token_version += uses as i64;
        written += uses;
        for _ in 0..100 {
            if written + 6 > events {
                break;
            }
            lease += 1;
            let lease_id = format!("lse_bench{lease:040}");
            let mut stream = vec![DomainEvent::LeaseCreated {
                lease_id: lease_id.clone(),
                user_id: 1,
                server_id: "bench".into(),
                services: vec!["todoist".into()],
                resolved: vec![ResolvedService {
                    service: "todoist".into(),
                    integration_id: 1,
                    secret_version: 1,
                    organization_id: None,
                }],
                missing_services: vec![],
                credential_scope: CredentialScope::Personal,
                ttl: 3600,
                renewable: true,
                max_renewals: 24,
                created_at: now,
                expires_at: now.plus_seconds(3600),
                client_info: None,
            }];
            for renewal in 1..=4 {
                stream.push(DomainEvent::LeaseRenewed {
                    lease_id: lease_id.clone(),
                    user_id: 1,
                    ttl: 3600,
                    renewal_count: renewal,
                    renewed_at: now,
                    expires_at: now.plus_seconds(3600),
                });
            }
            stream.push(DomainEvent::LeaseRevoked {
                lease_id: lease_id.clone(),
                user_id: 1,
                revoked_at: now,
                reason: None,
            });
            tx.append(
                &StreamId::lease(&lease_id),
                ExpectedVersion::NoStream,
                &stream,
                &meta,
                now,
            )
            .await?;
            written += stream.len();
        }
        if written % 50_000 < 1_000 {
            tx.commit().await?;
            tx = store.begin_write().await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

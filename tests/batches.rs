//! The batch contract, checked against its model: a batch is indistinguishable from running its
//! commands one per transaction, in queue order.
//!
//! Random sequences of every kind of command (directory, integrations, tokens, every MCP route
//! with valid, unknown, missing, expired and used-up tokens, expiry, and test commands that fail
//! or panic after appending) run twice on fresh ledgers with the same seed and the same frozen
//! clock: once in forced batches of random sizes (the writer keeps its memory between
//! batches), once one command per transaction with no memory (the obviously correct slow path).
//! Every caller's outcome, every event (to the hash) and every table must come out the same.
//!
//! `PROPTEST_CASES` sets the number of cases (CI runs the default below); `MODEL_DEBUG=1` prints
//! each op of a case with its outcome.

use mcp_events::testing::TestDatabase;
use mcp_events::{
    Backend, DomainEvent, EventStore, ExpectedVersion, IntegrationOwner, IntegrationStatus,
    Metadata, RawEvent, Role, SharedWith, StreamId, Timestamp,
};
use mcp_manager::clock::Clock;
use mcp_manager::commands::directory::*;
use mcp_manager::commands::expiry::ExpireDueLeases;
use mcp_manager::commands::integrations::*;
use mcp_manager::commands::mcp::{
    Answer, Caller, CreateLease, GetLease, McpRequest, Me, RenewLease, RevokeLease,
};
use mcp_manager::commands::tokens::*;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{Command, CommandError, Ctx, IdTable, Ledger, LedgerSetup, Prefetch};
use mcp_manager::random::SeededEntropy;
use mcp_manager::secrets;
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use mcp_projections::rows::*;
use mcp_projections::store::load_all;
use mcp_projections::CheckOutcome;
use proptest::prelude::*;
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

const SERVICES: &[&str] = &["todoist", "jira", "notion"];
const START: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// A clock that moves only when the test says so.
#[derive(Clone)]
struct FrozenClock(Arc<AtomicI64>);

impl Clock for FrozenClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

#[derive(Debug, Clone)]
enum TokenRef {
    /// The n-th token issued so far in this run (modulo how many there are).
    Issued(usize),
    Unknown,
    Missing,
}

#[derive(Debug, Clone)]
enum Route {
    Me,
    Create {
        services: Vec<usize>,
        ttl: i64,
    },
    /// On the n-th lease created so far in this run.
    Renew(usize),
    Get(usize),
    Revoke(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Register(u8),
    Disable(i64),
    CreateOrganization,
    AddMember {
        org: i64,
        user: i64,
        role: u8,
    },
    RemoveMember {
        org: i64,
        user: i64,
    },
    AddIntegration {
        owner: u8,
        service: usize,
        status: u8,
    },
    Rotate(i64),
    SetStatus {
        integration: i64,
        status: u8,
    },
    Issue {
        user: i64,
        expires_in: Option<i64>,
        max_uses: Option<i64>,
        /// An audit-scope token: refused on the lease routes after its use is recorded.
        audit: bool,
    },
    RevokeToken(i64),
    Api {
        token: TokenRef,
        route: Route,
    },
    Expire,
    FailAfterAppend,
    Panic,
}

/// One forced batch: the clock moves first, then the ops are queued together.
#[derive(Debug, Clone)]
struct Chunk {
    advance: i64,
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    let id = || 1i64..=4;
    let token = prop_oneof![
        6 => (0usize..8).prop_map(TokenRef::Issued),
        1 => Just(TokenRef::Unknown),
        1 => Just(TokenRef::Missing),
    ];
    let route = prop_oneof![
        2 => Just(Route::Me),
        4 => (prop::collection::vec(0usize..SERVICES.len(), 1..3), 60i64..600)
            .prop_map(|(services, ttl)| Route::Create { services, ttl }),
        2 => (0usize..8).prop_map(Route::Renew),
        1 => (0usize..8).prop_map(Route::Get),
        1 => (0usize..8).prop_map(Route::Revoke),
    ];
    prop_oneof![
        2 => (0u8..6).prop_map(Op::Register),
        1 => id().prop_map(Op::Disable),
        1 => Just(Op::CreateOrganization),
        2 => (1i64..=3, id(), 0u8..3).prop_map(|(org, user, role)| Op::AddMember { org, user, role }),
        1 => (1i64..=3, id()).prop_map(|(org, user)| Op::RemoveMember { org, user }),
        3 => (0u8..8, 0usize..SERVICES.len(), 0u8..5)
            .prop_map(|(owner, service, status)| Op::AddIntegration { owner, service, status }),
        1 => (1i64..=8).prop_map(Op::Rotate),
        1 => (1i64..=8, 0u8..4).prop_map(|(integration, status)| Op::SetStatus { integration, status }),
        3 => (id(), prop::option::weighted(0.2, 30i64..300), prop::option::weighted(0.3, 1i64..4), prop::bool::weighted(0.2))
            .prop_map(|(user, expires_in, max_uses, audit)| Op::Issue { user, expires_in, max_uses, audit }),
        1 => (1i64..=8).prop_map(Op::RevokeToken),
        12 => (token, route).prop_map(|(token, route)| Op::Api { token, route }),
        1 => Just(Op::Expire),
        2 => Just(Op::FailAfterAppend),
        1 => Just(Op::Panic),
    ]
}

/// The same start for every case, so random ops find users, organizations, integrations and
/// tokens to work on: users 1-3, organizations 1-2 with members, personal and shared
/// integrations, a token for each user.
fn prelude() -> Chunk {
    // `owner % 4` in 1..=3 is that user; 0 and 4 are organizations 1 and 2 (see `Scripted`).
    let owner = |user: u8| user;
    Chunk {
        advance: 0,
        ops: vec![
            Op::Register(0),
            Op::Register(1),
            Op::Register(2),
            Op::CreateOrganization,
            Op::CreateOrganization,
            Op::AddMember {
                org: 1,
                user: 1,
                role: 0,
            },
            Op::AddMember {
                org: 1,
                user: 2,
                role: 2,
            },
            Op::AddMember {
                org: 2,
                user: 3,
                role: 1,
            },
            Op::AddMember {
                org: 2,
                user: 1,
                role: 2,
            },
            Op::AddIntegration {
                owner: owner(1),
                service: 0,
                status: 4,
            },
            Op::AddIntegration {
                owner: owner(2),
                service: 1,
                status: 4,
            },
            Op::AddIntegration {
                owner: 0,
                service: 2,
                status: 4,
            },
            Op::AddIntegration {
                owner: 4,
                service: 1,
                status: 4,
            },
            Op::Issue {
                user: 1,
                expires_in: None,
                max_uses: None,
                audit: false,
            },
            Op::Issue {
                user: 2,
                expires_in: None,
                max_uses: None,
                audit: false,
            },
            Op::Issue {
                user: 3,
                expires_in: None,
                max_uses: None,
                audit: false,
            },
        ],
    }
}

fn chunks() -> impl Strategy<Value = Vec<Chunk>> {
    let chunk = (
        prop_oneof![3 => Just(0i64), 1 => 1i64..400],
        prop::collection::vec(op(), 1..=8),
    )
        .prop_map(|(advance, ops)| Chunk { advance, ops });
    prop::collection::vec(chunk, 1..=10)
}

/// What commands of one run have produced so far, for later commands of the same run to refer
/// to: the tokens issued and the leases granted, in order.
#[derive(Default)]
struct Registry {
    tokens: Mutex<Vec<String>>,
    leases: Mutex<Vec<String>>,
}

impl Registry {
    fn nth(list: &Mutex<Vec<String>>, n: usize) -> Option<String> {
        let list = list.lock().unwrap();
        (!list.is_empty()).then(|| list[n % list.len()].clone())
    }
}

/// Runs one op, resolving its references when it runs (so an op may refer to a token or a lease
/// made earlier in its own batch), and describes the outcome.
struct Scripted {
    op: Op,
    registry: Arc<Registry>,
}

fn meta() -> Metadata {
    Metadata::actor("model")
}

fn status(n: u8) -> IntegrationStatus {
    [
        IntegrationStatus::Active,
        IntegrationStatus::Inactive,
        IntegrationStatus::Expired,
        IntegrationStatus::Error,
    ][usize::from(n % 4)]
}

fn describe<T: std::fmt::Debug>(outcome: &Result<T, CommandError>) -> String {
    format!("{outcome:?}")
}

impl Scripted {
    fn caller(&self, token: &TokenRef) -> Caller {
        let token_hash = match token {
            TokenRef::Issued(n) => Some(
                Registry::nth(&self.registry.tokens, *n)
                    .unwrap_or_else(|| hash_token("mcp_none_yet")),
            ),
            TokenRef::Unknown => Some(hash_token("mcp_unknown_0")),
            TokenRef::Missing => None,
        };
        Caller {
            token_hash,
            request_id: Some("model".into()),
            ip: Some("127.0.0.1".into()),
            user_agent: Some("model".into()),
        }
    }

    fn lease(&self, n: usize) -> String {
        Registry::nth(&self.registry.leases, n).unwrap_or_else(|| "lse_none".into())
    }

    async fn api(&self, ctx: &mut Ctx, token: &TokenRef, route: &Route) -> String {
        let caller = self.caller(token);
        match route {
            Route::Me => {
                let request = McpRequest { caller, action: Me };
                describe(&request.execute(ctx).await)
            }
            Route::Create { services, ttl } => {
                let action = CreateLease {
                    services: services
                        .iter()
                        .map(|s| SERVICES[*s].to_owned())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    ttl: *ttl,
                    server_id: "model".into(),
                    renewable: *ttl % 7 != 0,
                    client_info: Some(json!({"ttl": ttl})),
                };
                let outcome = McpRequest { caller, action }.execute(ctx).await;
                if let Ok(Answer::Granted(lease)) = &outcome {
                    self.registry
                        .leases
                        .lock()
                        .unwrap()
                        .push(lease.lease_id.clone());
                }
                describe(&outcome)
            }
            Route::Renew(n) => {
                let action = RenewLease {
                    lease_id: self.lease(*n),
                    ttl: None,
                };
                describe(&McpRequest { caller, action }.execute(ctx).await)
            }
            Route::Get(n) => {
                let action = GetLease {
                    lease_id: self.lease(*n),
                };
                describe(&McpRequest { caller, action }.execute(ctx).await)
            }
            Route::Revoke(n) => {
                let action = RevokeLease {
                    lease_id: self.lease(*n),
                    reason: Some("model".into()),
                };
                describe(&McpRequest { caller, action }.execute(ctx).await)
            }
        }
    }
}

impl Command for Scripted {
    type Output = String;

    /// What the op would read, as far as the registry knows it when the batch starts (a hint
    /// that may be stale or wrong: it must change nothing but speed).
    fn prefetch(&self, wanted: &mut Prefetch) {
        if let Op::Api { token, route } = &self.op {
            wanted.token_hashes.extend(self.caller(token).token_hash);
            match route {
                Route::Renew(n) | Route::Get(n) | Route::Revoke(n) => {
                    wanted.lease_ids.push(self.lease(*n))
                }
                Route::Me | Route::Create { .. } => {}
            }
        }
    }

    async fn execute(&self, ctx: &mut Ctx) -> Result<String, CommandError> {
        let described = match &self.op {
            Op::Register(n) => {
                let command = RegisterUser {
                    email: format!("user{n}@example.com"),
                    name: format!("User {n}"),
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::Disable(user_id) => {
                let command = DisableUser {
                    user_id: *user_id,
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::CreateOrganization => {
                let command = CreateOrganization {
                    name: "Org".into(),
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::AddMember { org, user, role } => {
                let command = AddMember {
                    organization_id: *org,
                    user_id: *user,
                    role: [Role::Owner, Role::Admin, Role::Member][usize::from(*role % 3)],
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::RemoveMember { org, user } => {
                let command = RemoveMember {
                    organization_id: *org,
                    user_id: *user,
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::AddIntegration {
                owner,
                service,
                status: s,
            } => {
                let owner = match owner % 4 {
                    0 => IntegrationOwner::Organization {
                        organization_id: i64::from(owner % 3) + 1,
                        shared_with: [
                            SharedWith::AllMembers,
                            SharedWith::AdminsOnly,
                            SharedWith::Users(vec![1, 2]),
                        ][usize::from(owner % 3)]
                        .clone(),
                    },
                    n => IntegrationOwner::User {
                        user_id: i64::from(n),
                    },
                };
                let command = AddIntegration {
                    service: ServiceName::parse(SERVICES[*service]).unwrap(),
                    owner,
                    status: if *s >= 4 {
                        IntegrationStatus::Active
                    } else {
                        status(*s)
                    },
                    credentials: json!({"access_token": format!("secret-{service}")})
                        .as_object()
                        .cloned()
                        .unwrap(),
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::Rotate(id) => {
                let command = RotateIntegration {
                    integration_id: *id,
                    credentials: json!({"access_token": format!("rotated-{id}")})
                        .as_object()
                        .cloned()
                        .unwrap(),
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::SetStatus {
                integration,
                status: s,
            } => {
                let command = SetIntegrationStatus {
                    integration_id: *integration,
                    status: status(*s),
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::Issue {
                user,
                expires_in,
                max_uses,
                audit,
            } => {
                let command = IssueToken {
                    user_id: *user,
                    scope: if *audit {
                        mcp_events::TokenScope::Audit
                    } else {
                        mcp_events::TokenScope::Leases
                    },
                    name: "model".into(),
                    expires_in: *expires_in,
                    max_uses: *max_uses,
                    metadata: meta(),
                };
                let outcome = command.execute(ctx).await;
                if let Ok(issued) = &outcome {
                    self.registry
                        .tokens
                        .lock()
                        .unwrap()
                        .push(hash_token(expose(&issued.token)));
                }
                describe(&outcome.map(|issued| issued.id))
            }
            Op::RevokeToken(id) => {
                let command = RevokeToken {
                    token_id: *id,
                    metadata: meta(),
                };
                describe(&command.execute(ctx).await)
            }
            Op::Api { token, route } => self.api(ctx, token, route).await,
            Op::Expire => describe(&ExpireDueLeases { limit: 2 }.execute(ctx).await),
            Op::FailAfterAppend | Op::Panic => {
                // Everything a command can change, then the failure.
                ctx.next_id(IdTable::Users).await?;
                ctx.next_id(IdTable::Tokens).await?;
                let event = DomainEvent::UserDisabled { user_id: 1 };
                ctx.append(&StreamId::user(1), ExpectedVersion::Any, &[event], &meta())
                    .await?;
                if matches!(self.op, Op::Panic) {
                    panic!("the model's panicking command");
                }
                return Err(CommandError::Internal("the model's failing command".into()));
            }
        };
        Ok(described)
    }
}

/// Everything a run leaves: outcomes, the raw log, every table (secrets decrypted).
#[derive(Debug, PartialEq)]
struct Trace {
    outcomes: Vec<String>,
    events: Vec<RawEvent>,
    tables: Vec<String>,
}

async fn trace_of(store: &EventStore, key: &EncryptionKey, outcomes: Vec<String>) -> Trace {
    let events = store.read_raw_page(0, i64::MAX).await.unwrap();
    let mut conn = store.database().pool().acquire().await.unwrap();
    let mut tables = Vec::new();
    macro_rules! table {
        ($($row:ty),*) => {$(
            for row in load_all::<$row>(&mut conn, "").await.unwrap() {
                tables.push(format!("{row:?}"));
            }
        )*};
    }
    table!(
        UserRow,
        OrganizationRow,
        MembershipRow,
        IntegrationRow,
        TokenRow,
        LeaseRow,
        AuditRow
    );
    for secret in load_all::<SecretRow>(&mut conn, "").await.unwrap() {
        let opened = secrets::unseal(key, &secret).unwrap();
        tables.push(format!(
            "secret {} v{} {}: {opened:?}",
            secret.integration_id, secret.version, secret.key_id
        ));
    }
    let mut checkpoints: Vec<(String, i64)> =
        sqlx::query_as("select name, position from projection_checkpoints order by name")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    checkpoints.sort();
    tables.push(format!("{checkpoints:?}"));
    Trace {
        outcomes,
        events,
        tables,
    }
}

async fn run(backend: Backend, chunks: &[Chunk], batched: bool) -> Trace {
    let db = TestDatabase::new(backend).await;
    let key = EncryptionKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    let clock = FrozenClock(Arc::new(AtomicI64::new(START)));
    let setup = LedgerSetup {
        clock: Arc::new(clock.clone()),
        entropy: Arc::new(SeededEntropy::new(7)),
        memory: batched,
        ..LedgerSetup::new(key.clone())
    };
    let store = EventStore::new(db.connect().await);
    let ledger = Ledger::open(store.clone(), setup).await.unwrap();
    let registry = Arc::new(Registry::default());
    let mut outcomes = Vec::new();
    for chunk in std::iter::once(&prelude()).chain(chunks) {
        clock
            .0
            .fetch_add(chunk.advance * 1_000_000, Ordering::SeqCst);
        let scripted = |op: &Op| Scripted {
            op: op.clone(),
            registry: registry.clone(),
        };
        if batched {
            let before = ledger.stats().committed_batches.load(Ordering::SeqCst);
            let lock = db.hold_ledger_lock().await;
            let mut queued = Vec::new();
            for op in &chunk.ops {
                queued.push(ledger.enqueue(scripted(op)).await.unwrap());
            }
            lock.release().await;
            for queued in queued {
                outcomes.push(describe(&queued.outcome().await));
            }
            let after = ledger.stats().committed_batches.load(Ordering::SeqCst);
            assert_eq!(
                after,
                before + 1,
                "a chunk of {} ops ran as one batch",
                chunk.ops.len()
            );
        } else {
            for op in &chunk.ops {
                outcomes.push(describe(&ledger.submit(scripted(op)).await));
            }
        }
    }
    let outcome = mcp_projections::check(&store, &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
    trace_of(&store, &key, outcomes).await
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

fn check(backend: Backend) {
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    proptest!(config, |(chunks in chunks())| {
        let (batched, serial) = runtime.block_on(async {
            (run(backend, &chunks, true).await, run(backend, &chunks, false).await)
        });
        if std::env::var("MODEL_DEBUG").is_ok() {
            let all = std::iter::once(prelude()).chain(chunks.iter().cloned());
            for (chunk, o) in all.flat_map(|c| c.ops).zip(&batched.outcomes) {
                eprintln!("{chunk:?} => {}", &o[..o.len().min(160)]);
            }
        }
        prop_assert_eq!(&batched.outcomes, &serial.outcomes);
        prop_assert_eq!(batched.events.len(), serial.events.len());
        for (b, s) in batched.events.iter().zip(&serial.events) {
            prop_assert_eq!(b, s);
        }
        prop_assert_eq!(&batched.tables, &serial.tables);
    });
}

#[test]
fn batches_equal_one_command_per_transaction_on_sqlite() {
    check(Backend::Sqlite);
}

#[test]
fn batches_equal_one_command_per_transaction_on_postgres() {
    check(Backend::Postgres);
}

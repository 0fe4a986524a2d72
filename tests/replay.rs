//! Replay proves the read side: after a randomized history, a rebuild from the log matches the
//! live projections row for row, on both backends.

use mcp_events::testing::TestDatabase;
use mcp_events::{
    both_backends, Backend, DbOptions, EventStore, IntegrationOwner, IntegrationStatus, Metadata,
    Role, SharedWith,
};
use mcp_manager::clock::ManualClock;
use mcp_manager::commands::directory::*;
use mcp_manager::commands::expiry::ExpireDueLeases;
use mcp_manager::commands::integrations::*;
use mcp_manager::commands::mcp::{
    Answer, Caller, CreateLease, GetLease, McpRequest, Me, RenewLease, RevokeLease,
};
use mcp_manager::commands::tokens::*;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::ledger::{Ledger, LedgerSetup};
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use mcp_projections::rows::*;
use mcp_projections::store::load_all;
use mcp_projections::CheckOutcome;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;

const SERVICES: &[&str] = &["todoist", "jira", "notion", "openai", "sentry"];

async fn dump(store: &EventStore) -> Vec<String> {
    let mut conn = store.database().pool().acquire().await.unwrap();
    let mut out = Vec::new();
    macro_rules! table {
        ($($row:ty),*) => {$(
            for row in load_all::<$row>(&mut conn, "").await.unwrap() {
                out.push(format!("{row:?}"));
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
    out.sort();
    out
}

fn meta() -> Metadata {
    Metadata::actor("test")
}

/// Runs `steps` random commands; refusals are part of a realistic history and are ignored.
async fn random_history(ledger: &Ledger, clock: &ManualClock, rng: &mut StdRng, steps: usize) {
    let mut users = 0i64;
    let mut orgs = 0i64;
    let mut integrations = 0i64;
    let mut tokens: Vec<(i64, String)> = Vec::new();
    let mut leases: Vec<(String, String)> = Vec::new();
    for step in 0..steps {
        let pick = |rng: &mut StdRng, n: i64| rng.gen_range(1..=n.max(1));
        match rng.gen_range(0..14) {
            0 | 1 => {
                users += 1;
                let email = format!("user{users}@example.com");
                ledger
                    .submit(RegisterUser {
                        email,
                        name: format!("User {users}"),
                        metadata: meta(),
                    })
                    .await
                    .unwrap();
            }
            2 => {
                orgs += 1;
                ledger
                    .submit(CreateOrganization {
                        name: format!("Org {orgs}"),
                        metadata: meta(),
                    })
                    .await
                    .unwrap();
            }
            3 => {
                let role = [Role::Owner, Role::Admin, Role::Member][rng.gen_range(0..3)];
                let _ = ledger
                    .submit(AddMember {
                        organization_id: pick(rng, orgs),
                        user_id: pick(rng, users),
                        role,
                        metadata: meta(),
                    })
                    .await;
            }
            4 => {
                let _ = ledger
                    .submit(RemoveMember {
                        organization_id: pick(rng, orgs),
                        user_id: pick(rng, users),
                        metadata: meta(),
                    })
                    .await;
            }
            5 | 6 => {
                let service =
                    ServiceName::parse(SERVICES[rng.gen_range(0..SERVICES.len())]).unwrap();
                let owner = if rng.gen_bool(0.5) || orgs == 0 {
                    IntegrationOwner::User {
                        user_id: pick(rng, users),
                    }
                } else {
                    let shared_with = match rng.gen_range(0..3) {
                        0 => SharedWith::AllMembers,
                        1 => SharedWith::AdminsOnly,
                        _ => SharedWith::Users(vec![pick(rng, users)]),
                    };
                    IntegrationOwner::Organization {
                        organization_id: pick(rng, orgs),
                        shared_with,
                    }
                };
                let credentials = json!({"access_token": format!("secret-{step}")})
                    .as_object()
                    .unwrap()
                    .clone();
                if ledger
                    .submit(AddIntegration {
                        service,
                        owner,
                        status: IntegrationStatus::Active,
                        credentials,
                        metadata: meta(),
                    })
                    .await
                    .is_ok()
                {
                    integrations += 1;
                }
            }
            7 => {
                let credentials = json!({"access_token": format!("rotated-{step}")})
                    .as_object()
                    .unwrap()
                    .clone();
                let _ = ledger
                    .submit(RotateIntegration {
                        integration_id: pick(rng, integrations),
                        credentials,
                        metadata: meta(),
                    })
                    .await;
                let status =
                    [IntegrationStatus::Active, IntegrationStatus::Inactive][rng.gen_range(0..2)];
                let _ = ledger
                    .submit(SetIntegrationStatus {
                        integration_id: pick(rng, integrations),
                        status,
                        metadata: meta(),
                    })
                    .await;
            }
            8 => {
                let max_uses = rng.gen_bool(0.3).then(|| rng.gen_range(1..5));
                let expires_in = rng.gen_bool(0.3).then(|| rng.gen_range(60..600));
                if let Ok(issued) = ledger
                    .submit(IssueToken {
                        user_id: pick(rng, users),
                        scope: mcp_events::TokenScope::Leases,
                        name: "t".into(),
                        expires_in,
                        max_uses,
                        metadata: meta(),
                    })
                    .await
                {
                    tokens.push((issued.id, hash_token(expose(&issued.token))));
                }
            }
            9 => {
                if rng.gen_bool(0.3) {
                    let _ = ledger
                        .submit(RevokeToken {
                            token_id: pick(rng, tokens.len() as i64),
                            metadata: meta(),
                        })
                        .await;
                } else {
                    let _ = ledger
                        .submit(DisableUser {
                            user_id: pick(rng, users),
                            metadata: meta(),
                        })
                        .await;
                }
            }
            10 | 11 if !tokens.is_empty() => {
                let (_, hash) = tokens[rng.gen_range(0..tokens.len())].clone();
                let count = rng.gen_range(1..=3);
                let services = (0..count)
                    .map(|_| SERVICES[rng.gen_range(0..SERVICES.len())].to_owned())
                    .collect::<std::collections::BTreeSet<_>>();
                let action = CreateLease {
                    services: services.into_iter().collect(),
                    ttl: rng.gen_range(60..7200),
                    server_id: format!("server-{step}"),
                    renewable: rng.gen_bool(0.8),
                    client_info: Some(json!({"step": step})),
                };
                let caller = Caller {
                    token_hash: Some(hash.clone()),
                    ip: Some("127.0.0.1".into()),
                    ..Caller::default()
                };
                if let Ok(Answer::Granted(lease)) =
                    ledger.submit(McpRequest { caller, action }).await
                {
                    leases.push((lease.lease_id, hash));
                }
            }
            12 if !leases.is_empty() => {
                let (lease_id, hash) = leases[rng.gen_range(0..leases.len())].clone();
                let caller = Caller {
                    token_hash: Some(hash),
                    ..Caller::default()
                };
                match rng.gen_range(0..3) {
                    0 => {
                        let action = RenewLease {
                            lease_id,
                            ttl: None,
                        };
                        ledger.submit(McpRequest { caller, action }).await.unwrap();
                    }
                    1 => {
                        let action = GetLease { lease_id };
                        ledger.submit(McpRequest { caller, action }).await.unwrap();
                    }
                    _ => {
                        let action = RevokeLease {
                            lease_id,
                            reason: Some("done".into()),
                        };
                        ledger.submit(McpRequest { caller, action }).await.unwrap();
                    }
                };
            }
            _ => {
                clock.advance(rng.gen_range(1..900));
                ledger.submit(ExpireDueLeases { limit: 100 }).await.unwrap();
                let caller = Caller {
                    token_hash: rng.gen_bool(0.5).then(|| hash_token("mcp_bogus_x")),
                    ..Caller::default()
                };
                let _refusal_or_reply = ledger
                    .submit(McpRequest { caller, action: Me })
                    .await
                    .unwrap();
            }
        }
    }
}

async fn open(store: EventStore, clock: &ManualClock) -> Ledger {
    let setup = LedgerSetup {
        clock: Arc::new(clock.clone()),
        ..LedgerSetup::new(EncryptionKey::generate())
    };
    Ledger::open(store, setup).await.unwrap()
}

async fn a_rebuild_matches_the_live_projections_row_for_row(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect_with(&DbOptions::default()).await);
    let clock = ManualClock::default();
    let ledger = open(store.clone(), &clock).await;
    let seed = 0x5eed_0000 + backend as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    random_history(&ledger, &clock, &mut rng, 600).await;

    let (events, _) = store.head().await.unwrap();
    assert!(
        events > 300,
        "the history is too short to prove much: {events} events"
    );
    let live = dump(&store).await;

    match mcp_projections::check(&store, &mut |_, _| {})
        .await
        .unwrap()
    {
        CheckOutcome::Same(report) => assert_eq!(report.events, events),
        CheckOutcome::Differs { table, description } => {
            panic!("seed {seed:#x}: {table} differs: {description}")
        }
        CheckOutcome::LogDoesNotVerify(reason) => panic!("seed {seed:#x}: {reason}"),
    }
    let report = mcp_projections::rebuild(&store, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.events, events);
    let rebuilt = dump(&store).await;
    assert_eq!(live.len(), rebuilt.len());
    for (l, r) in live.iter().zip(&rebuilt) {
        assert_eq!(l, r, "seed {seed:#x}: a rebuilt row differs");
    }
    assert!(matches!(
        store.verify().await.unwrap(),
        mcp_events::VerifyOutcome::Valid { .. }
    ));
}

/// Replicas starting together on a fresh database, then several rebuilds at once (a server
/// starting while an operator runs `replay`): they take turns, and the result is the log's.
async fn concurrent_rebuilds_take_turns(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(EventStore::new(
            db.connect_with(&DbOptions::default()).await,
        ));
    }
    let starts = stores.iter().map(mcp_projections::ensure);
    for started in futures::future::join_all(starts).await {
        started.unwrap();
    }

    let clock = ManualClock::default();
    let ledger = open(stores[0].clone(), &clock).await;
    let mut rng = StdRng::seed_from_u64(0x7a4e + backend as u64);
    random_history(&ledger, &clock, &mut rng, 150).await;
    let live = dump(&stores[0]).await;

    let rebuilds = stores.iter().cloned().map(|store| {
        tokio::spawn(async move { mcp_projections::rebuild(&store, &mut |_, _| {}).await })
    });
    for rebuilt in futures::future::join_all(rebuilds).await {
        rebuilt.unwrap().unwrap();
    }
    assert_eq!(dump(&stores[0]).await, live);
    let outcome = mcp_projections::check(&stores[0], &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
}

/// A CLI command starting while the server writes finds the projections current (it reads the
/// head and the checkpoints in one snapshot) and never rebuilds them.
async fn a_command_starting_under_load_never_rebuilds(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect_with(&DbOptions::default()).await);
    let clock = ManualClock::default();
    let ledger = open(store.clone(), &clock).await;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (ledger, writing) = (ledger.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                let submits = (0..32).map(|i| {
                    ledger.submit(RegisterUser {
                        email: format!("load{n}-{i}@example.com"),
                        name: "Load".into(),
                        metadata: meta(),
                    })
                });
                for registered in futures::future::join_all(submits).await {
                    registered.unwrap();
                }
                n += 1;
            }
            n
        })
    };
    let cli = EventStore::new(db.connect_with(&DbOptions::default()).await);
    while cli.head().await.unwrap().0 < 100 {
        tokio::task::yield_now().await;
    }
    for attempt in 0..300 {
        let current = mcp_projections::schema::current(&cli).await.unwrap();
        assert!(
            current,
            "attempt {attempt}: current projections looked behind"
        );
    }
    for attempt in 0..20 {
        let rebuilt = mcp_projections::ensure(&cli).await.unwrap();
        assert!(
            !rebuilt,
            "attempt {attempt}: current projections were rebuilt"
        );
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0, "the writer wrote meanwhile");
}

/// `replay --check` while the server writes: it compares the live tables with the log as of one
/// read snapshot (it takes no lock and writes nothing), so it finds them identical.
async fn a_check_under_load_compares_one_snapshot(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect_with(&DbOptions::default()).await);
    let clock = ManualClock::default();
    let ledger = open(store.clone(), &clock).await;
    let mut rng = StdRng::seed_from_u64(0xc4ec + backend as u64);
    random_history(&ledger, &clock, &mut rng, 60).await;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (ledger, writing) = (ledger.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                let submits = (0..16).map(|i| {
                    ledger.submit(RegisterUser {
                        email: format!("check{n}-{i}@example.com"),
                        name: "Load".into(),
                        metadata: meta(),
                    })
                });
                for registered in futures::future::join_all(submits).await {
                    registered.unwrap();
                }
                n += 1;
            }
            n
        })
    };
    let reader = EventStore::new(
        mcp_events::Database::connect_existing(&db.url, &DbOptions::default())
            .await
            .unwrap(),
    );
    for attempt in 0..5 {
        let outcome = mcp_projections::check(&reader, &mut |_, _| {})
            .await
            .unwrap();
        assert!(
            matches!(outcome, CheckOutcome::Same(_)),
            "attempt {attempt}: {outcome:?}"
        );
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0, "the writer wrote meanwhile");
}

async fn shadow_tables(store: &EventStore) -> Vec<String> {
    let sql = match store.database().backend() {
        Backend::Sqlite => {
            "select name from sqlite_master where type = 'table' and name like 'replay%' \
             order by name"
        }
        Backend::Postgres => {
            "select tablename::text from pg_tables where schemaname = current_schema() \
             and tablename like 'replay%' order by tablename"
        }
    };
    sqlx::query_scalar(sql)
        .fetch_all(store.database().pool())
        .await
        .unwrap()
}

/// What a replay killed mid-way leaves behind: its shadow tables (and one of an older build).
async fn leave_shadow_tables(store: &EventStore) {
    let mut conn = store.database().pool().acquire().await.unwrap();
    mcp_projections::schema::create_tables(
        &mut conn,
        "replay_",
        TableKind::Shadow { unlogged: false },
    )
    .await
    .unwrap();
    sqlx::query("create table replay_from_a_newer_build (id bigint)")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("insert into replay_users (id, email, name, disabled, created_at) values (9, 'x', 'x', 0, 0)")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        shadow_tables(store).await.len(),
        mcp_projections::schema::TABLES.len() + 1
    );
}

/// The next start (`ensure`, under the rebuild lock) and the next `replay` drop them.
async fn a_killed_replays_shadow_tables_are_dropped_by_the_next_start_or_replay(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = EventStore::new(db.connect_with(&DbOptions::default()).await);
    let clock = ManualClock::default();
    let ledger = open(store.clone(), &clock).await;
    let mut rng = StdRng::seed_from_u64(0x5ad0 + backend as u64);
    random_history(&ledger, &clock, &mut rng, 40).await;
    let live = dump(&store).await;

    leave_shadow_tables(&store).await;
    let rebuilt = mcp_projections::ensure(&store).await.unwrap();
    assert!(!rebuilt, "current projections need no rebuild");
    assert_eq!(shadow_tables(&store).await, Vec::<String>::new());

    leave_shadow_tables(&store).await;
    mcp_projections::rebuild(&store, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(shadow_tables(&store).await, Vec::<String>::new());
    assert_eq!(dump(&store).await, live);
}

both_backends! {
    check_under_load => a_check_under_load_compares_one_snapshot,
    leftover_shadow_tables => a_killed_replays_shadow_tables_are_dropped_by_the_next_start_or_replay,
    starting_under_load => a_command_starting_under_load_never_rebuilds,
    concurrent_rebuilds => concurrent_rebuilds_take_turns,
    randomized_history => a_rebuild_matches_the_live_projections_row_for_row,
}

//! The write entry point: group commit, isolation of failing commands in a batch, callers that
//! vanish, several writers, and a database that fails under the writer.
//!
//! Batches are forced the way they happen in production: while another connection holds the
//! ledger lock, commands queue up; when it lets go, the writer takes them all in one batch.

use mcp_events::testing::TestDatabase;
use mcp_events::{
    both_backends, Backend, DbOptions, DomainEvent, EventStore, ExpectedVersion, IntegrationOwner,
    IntegrationStatus, Metadata, StreamId, VerifyOutcome,
};
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::integrations::{AddIntegration, SetIntegrationStatus};
use mcp_manager::commands::mcp::{
    Answer, Caller, CreateLease, GetLease, McpAction, McpRequest, Me, Refusal, RenewLease,
    RevokeLease,
};
use mcp_manager::commands::tokens::{IssueToken, RevokeToken};
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::domain::{AuthRefusal, DomainError};
use mcp_manager::ledger::{Command, CommandError, Ctx, Ledger, LedgerSetup};
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use mcp_projections::rows::{AuditRow, TokenRow};
use mcp_projections::store::load_all;
use mcp_projections::{queries, CheckOutcome};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn open(db: &TestDatabase) -> Ledger {
    open_with(db, EncryptionKey::generate(), &DbOptions::default()).await
}

async fn open_with(db: &TestDatabase, key: EncryptionKey, options: &DbOptions) -> Ledger {
    let store = EventStore::new(db.connect_with(options).await);
    Ledger::open(store, LedgerSetup::new(key)).await.unwrap()
}

fn meta() -> Metadata {
    Metadata::actor("test")
}

fn register(email: &str) -> RegisterUser {
    RegisterUser {
        email: email.into(),
        name: "Someone".into(),
        metadata: meta(),
    }
}

fn issue(user_id: i64) -> IssueToken {
    IssueToken {
        user_id,
        scope: mcp_events::TokenScope::Leases,
        name: "test".into(),
        expires_in: None,
        max_uses: None,
        metadata: meta(),
    }
}

fn caller(token_hash: Option<&str>) -> Caller {
    Caller {
        token_hash: token_hash.map(str::to_owned),
        ..Caller::default()
    }
}

fn request<A: McpAction>(token_hash: Option<&str>, action: A) -> McpRequest<A> {
    McpRequest {
        caller: caller(token_hash),
        action,
    }
}

fn lease_of(services: &[&str], server_id: &str) -> CreateLease {
    CreateLease {
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        ttl: 3600,
        server_id: server_id.into(),
        renewable: true,
        client_info: None,
    }
}

/// A user with a personal todoist integration and a token; returns (user id, token hash).
async fn user_with_token(ledger: &Ledger, email: &str) -> (i64, String) {
    let user_id = ledger.submit(register(email)).await.unwrap();
    ledger
        .submit(AddIntegration {
            service: ServiceName::parse("todoist").unwrap(),
            owner: IntegrationOwner::User { user_id },
            status: IntegrationStatus::Active,
            credentials: json!({"access_token": email}).as_object().cloned().unwrap(),
            metadata: meta(),
        })
        .await
        .unwrap();
    let issued = ledger.submit(issue(user_id)).await.unwrap();
    (user_id, hash_token(expose(&issued.token)))
}

/// Counts committed batches, so a test can check that what it forced really was one batch.
fn batches(ledger: &Ledger) -> u64 {
    ledger.stats().committed_batches.load(Ordering::SeqCst)
}

async fn audit_actions(ledger: &Ledger) -> Vec<(String, String)> {
    let mut conn = ledger.store().database().pool().acquire().await.unwrap();
    load_all::<AuditRow>(&mut conn, "")
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.action, a.details))
        .collect()
}

async fn token_row(ledger: &Ledger, id: i64) -> TokenRow {
    let mut conn = ledger.store().database().pool().acquire().await.unwrap();
    queries::token(&mut conn, id).await.unwrap().unwrap()
}

async fn assert_consistent(ledger: &Ledger) {
    assert!(matches!(
        ledger.store().verify().await.unwrap(),
        VerifyOutcome::Valid { .. }
    ));
    let outcome = mcp_projections::check(ledger.store(), &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
}

/// Issue 7, first batch: anonymous `/me`, a registration that is refused, anonymous `/me`.
async fn refusals_around_a_failing_command_are_all_recorded(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    ledger.submit(register("taken@x.io")).await.unwrap();
    let before = batches(&ledger);

    let lock = db.hold_ledger_lock().await;
    let first = ledger.enqueue(request(None, Me)).await.unwrap();
    let taken = ledger.enqueue(register("taken@x.io")).await.unwrap();
    let second = ledger.enqueue(request(None, Me)).await.unwrap();
    lock.release().await;

    for anonymous in [first.outcome().await, second.outcome().await] {
        assert!(
            matches!(
                anonymous,
                Ok(Answer::Refused(Refusal::Auth(AuthRefusal::Missing)))
            ),
            "{anonymous:?}"
        );
    }
    assert!(matches!(
        taken.outcome().await,
        Err(CommandError::Domain(DomainError::EmailTaken(_)))
    ));
    assert_eq!(batches(&ledger), before + 1, "the three shared one batch");
    let failures: Vec<_> = audit_actions(&ledger)
        .await
        .into_iter()
        .filter(|(action, _)| action == "mcp_auth_failed")
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].1.contains("Missing bearer token"));
    assert_consistent(&ledger).await;
}

/// Issue 7, second batch: a token used, a failing command, the same token used again.
async fn a_token_used_around_a_failing_command_counts_both_uses(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    let (_, hash) = user_with_token(&ledger, "ada@x.io").await;
    ledger.submit(register("taken@x.io")).await.unwrap();
    let before = batches(&ledger);

    let lock = db.hold_ledger_lock().await;
    let first = ledger.enqueue(request(Some(&hash), Me)).await.unwrap();
    let taken = ledger.enqueue(register("taken@x.io")).await.unwrap();
    let second = ledger.enqueue(request(Some(&hash), Me)).await.unwrap();
    lock.release().await;

    assert!(matches!(first.outcome().await, Ok(Answer::Granted(_))));
    assert!(taken.outcome().await.is_err());
    assert!(matches!(second.outcome().await, Ok(Answer::Granted(_))));
    assert_eq!(batches(&ledger), before + 1);
    assert_eq!(token_row(&ledger, 1).await.usage_count, 2);
    assert_consistent(&ledger).await;
}

/// Issue 7, third batch: two tokens issued for one user.
async fn two_tokens_issued_in_one_batch_get_their_own_ids(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    let user_id = ledger.submit(register("ada@x.io")).await.unwrap();
    let before = batches(&ledger);

    let lock = db.hold_ledger_lock().await;
    let first = ledger.enqueue(issue(user_id)).await.unwrap();
    let second = ledger.enqueue(issue(user_id)).await.unwrap();
    lock.release().await;

    let ids = (
        first.outcome().await.unwrap().id,
        second.outcome().await.unwrap().id,
    );
    assert_eq!(ids, (1, 2));
    assert_eq!(batches(&ledger), before + 1);
    assert_consistent(&ledger).await;
}

/// A test command that appends an event and then fails.
struct AppendThenFail;

impl Command for AppendThenFail {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let event = DomainEvent::UserDisabled { user_id: 999 };
        ctx.append(
            &StreamId::user(999),
            ExpectedVersion::Any,
            &[event],
            &meta(),
        )
        .await?;
        Err(CommandError::Internal("failing on purpose".into()))
    }
}

/// A test command that appends an event and then panics.
struct AppendThenPanic;

impl Command for AppendThenPanic {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let event = DomainEvent::UserDisabled { user_id: 998 };
        ctx.append(
            &StreamId::user(998),
            ExpectedVersion::Any,
            &[event],
            &meta(),
        )
        .await?;
        panic!("panicking on purpose");
    }
}

/// A command that fails or panics after appending leaves no trace, and its batch-mates (and
/// the writer) carry on.
async fn a_failing_or_panicking_command_leaves_no_trace(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    let (_, hash) = user_with_token(&ledger, "ada@x.io").await;
    let head = ledger.store().head().await.unwrap().0;

    let lock = db.hold_ledger_lock().await;
    let before = ledger.enqueue(register("before@x.io")).await.unwrap();
    let failing = ledger.enqueue(AppendThenFail).await.unwrap();
    let panicking = ledger.enqueue(AppendThenPanic).await.unwrap();
    let used = ledger
        .enqueue(request(Some(&hash), lease_of(&["todoist"], "s")))
        .await
        .unwrap();
    let after = ledger.enqueue(register("after@x.io")).await.unwrap();
    lock.release().await;

    assert_eq!(before.outcome().await.unwrap(), 2);
    assert!(matches!(
        failing.outcome().await,
        Err(CommandError::Internal(_))
    ));
    match panicking.outcome().await {
        Err(CommandError::Panicked(message)) => {
            assert!(message.contains("on purpose"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(used.outcome().await, Ok(Answer::Granted(_))));
    assert_eq!(after.outcome().await.unwrap(), 3);
    // register, auth success, lease created, register: nothing of the failed two.
    assert_eq!(ledger.store().head().await.unwrap().0, head + 4);
    let events = audit_actions(&ledger).await;
    assert!(
        events.iter().all(|(a, _)| a != "user_disabled"),
        "{events:?}"
    );
    // The writer lives on.
    assert_eq!(ledger.submit(register("later@x.io")).await.unwrap(), 4);
    assert_consistent(&ledger).await;
}

/// A test command whose data only the database can refuse, at commit: it claims a stream is
/// new when it is not (as a lease id collision would), so the unique constraint refuses it.
struct ClaimExistingStream;

impl Command for ClaimExistingStream {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let event = DomainEvent::UserDisabled { user_id: 1 };
        ctx.append_to_new_stream(&StreamId::user(1), &[event], &meta())
            .await?;
        Ok(())
    }
}

/// When a batch cannot commit because of one command's data, its commands are run again one
/// by one: only that command fails.
async fn a_commit_refused_for_one_command_fails_only_that_command(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    let (_, hash) = user_with_token(&ledger, "ada@x.io").await;
    let retried = ledger.stats().retried_batches.load(Ordering::SeqCst);

    let lock = db.hold_ledger_lock().await;
    let mut creates = Vec::new();
    for i in 0..3 {
        let create = request(Some(&hash), lease_of(&["todoist"], &format!("s{i}")));
        creates.push(ledger.enqueue(create).await.unwrap());
    }
    let culprit = ledger.enqueue(ClaimExistingStream).await.unwrap();
    for i in 3..6 {
        let create = request(Some(&hash), lease_of(&["todoist"], &format!("s{i}")));
        creates.push(ledger.enqueue(create).await.unwrap());
    }
    lock.release().await;

    match culprit.outcome().await {
        Err(CommandError::Conflict(message)) => assert!(message.contains("user-1"), "{message}"),
        other => panic!("{other:?}"),
    }
    for create in creates {
        assert!(matches!(create.outcome().await, Ok(Answer::Granted(_))));
    }
    assert_eq!(
        ledger.stats().retried_batches.load(Ordering::SeqCst),
        retried + 1
    );
    assert_eq!(token_row(&ledger, 1).await.usage_count, 6);
    assert_consistent(&ledger).await;
}

/// Issue 7, the NUL batch: a value PostgreSQL cannot store, sent straight to the command layer
/// (past the HTTP layer's own refusal), fails only its own request.
async fn a_value_the_database_cannot_store_fails_only_its_request(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    let (_, attacker) = user_with_token(&ledger, "mallory@x.io").await;
    let (_, victim) = user_with_token(&ledger, "ada@x.io").await;

    let lock = db.hold_ledger_lock().await;
    let mut creates = Vec::new();
    for i in 0..4 {
        let create = request(Some(&victim), lease_of(&["todoist"], &format!("s{i}")));
        creates.push(ledger.enqueue(create).await.unwrap());
    }
    let nul = request(Some(&attacker), lease_of(&["todoist"], "x\0y"));
    let nul = ledger.enqueue(nul).await.unwrap();
    let reads = ledger
        .enqueue(request(
            Some(&attacker),
            GetLease {
                lease_id: "lse_x\0y".into(),
            },
        ))
        .await
        .unwrap();
    for i in 4..8 {
        let create = request(Some(&victim), lease_of(&["todoist"], &format!("s{i}")));
        creates.push(ledger.enqueue(create).await.unwrap());
    }
    lock.release().await;

    for create in creates {
        let created = create.outcome().await;
        assert!(matches!(created, Ok(Answer::Granted(_))), "{created:?}");
    }
    assert!(matches!(
        reads.outcome().await,
        Ok(Answer::Refused(Refusal::Domain(DomainError::LeaseNotFound)))
    ));
    let nul = nul.outcome().await;
    match backend {
        Backend::Sqlite => assert!(matches!(nul, Ok(Answer::Granted(_))), "{nul:?}"),
        Backend::Postgres => assert!(matches!(nul, Err(CommandError::Store(_))), "{nul:?}"),
    }
    assert_consistent(&ledger).await;
}

async fn concurrent_commands_share_transactions_without_mixing_outcomes(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    // 100 registrations, every fourth one a duplicate of an earlier email.
    let submits = (0..100).map(|i| {
        let ledger = ledger.clone();
        let email = if i % 4 == 3 {
            format!("user{}@x.io", i - 1)
        } else {
            format!("user{i}@x.io")
        };
        tokio::spawn(async move { ledger.submit(register(&email)).await })
    });
    let results: Vec<_> = futures::future::join_all(submits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(CommandError::Domain(DomainError::EmailTaken(_)))))
        .count();
    assert_eq!((created, refused), (75, 25));
    let mut ids: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=75).collect::<Vec<_>>(),
        "ids are unique and gap-free"
    );
    assert_consistent(&ledger).await;
}

async fn a_caller_that_goes_away_leaves_no_open_transaction(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let ledger = open(&db).await;
    for i in 0..20 {
        // Poll the submission once, then drop it: the command is already queued.
        let submission = ledger.submit(register(&format!("gone{i}@x.io")));
        let _ = tokio::time::timeout(Duration::from_micros(1), submission).await;
    }
    let next = tokio::time::timeout(
        Duration::from_secs(30),
        ledger.submit(register("next@x.io")),
    )
    .await
    .expect("the ledger is stalled after callers went away");
    let next_id = next.unwrap();

    // Every abandoned command either ran to the end or never started; none is half-applied.
    let mut conn = ledger.store().database().pool().acquire().await.unwrap();
    let mut users = 0;
    for id in 1..=next_id {
        if queries::user(&mut conn, id).await.unwrap().is_some() {
            users += 1;
        }
    }
    assert_eq!(users, next_id);
    let (events, _) = ledger.store().head().await.unwrap();
    assert_eq!(
        events, next_id,
        "one event per registered user, nothing else"
    );
    assert_consistent(&ledger).await;
}

/// Two writers on one database (two replicas, or the server and the CLI): what one of them
/// remembers between its transactions must never hide what the other wrote.
async fn two_writers_see_each_others_changes(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let key = EncryptionKey::generate();
    let a = open_with(&db, key.clone(), &DbOptions::default()).await;
    let b = open_with(&db, key, &DbOptions::default()).await;
    let user_id = a.submit(register("ada@x.io")).await.unwrap();
    let mut integration_ids = vec![];
    for service in ["todoist", "jira"] {
        let credentials = json!({"token": service}).as_object().cloned().unwrap();
        integration_ids.push(
            a.submit(AddIntegration {
                service: ServiceName::parse(service).unwrap(),
                owner: IntegrationOwner::User { user_id },
                status: IntegrationStatus::Active,
                credentials,
                metadata: meta(),
            })
            .await
            .unwrap(),
        );
    }
    let issued = a.submit(issue(user_id)).await.unwrap();
    let hash = hash_token(expose(&issued.token));

    // Both use the token in turn: each must see the other's appends to the token's stream.
    let mut lease_ids = vec![];
    for round in 0..6 {
        let writer = if round % 2 == 0 { &a } else { &b };
        match writer
            .submit(request(Some(&hash), lease_of(&["todoist"], "replica")))
            .await
            .unwrap()
        {
            Answer::Granted(lease) => lease_ids.push(lease.lease_id),
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert_eq!(token_row(&a, issued.id).await.usage_count, 6);

    // A lease created (and so remembered) by A, revoked by B: A must refuse to renew it.
    let lease_id = lease_ids[0].clone();
    let revoke = RevokeLease {
        lease_id: lease_id.clone(),
        reason: Some("elsewhere".into()),
    };
    assert!(matches!(
        b.submit(request(Some(&hash), revoke)).await.unwrap(),
        Answer::Granted(_)
    ));
    let renew = RenewLease {
        lease_id: lease_id.clone(),
        ttl: None,
    };
    assert!(
        matches!(
            a.submit(request(Some(&hash), renew)).await.unwrap(),
            Answer::Refused(Refusal::Domain(DomainError::LeaseCannotBeRenewed { .. }))
        ),
        "A saw B's revocation"
    );
    match a
        .submit(request(Some(&hash), GetLease { lease_id }))
        .await
        .unwrap()
    {
        Answer::Granted(lease) => assert_eq!(lease.status.as_str(), "revoked"),
        other => panic!("{other:?}"),
    }

    // An integration A resolved before, deactivated by B: A no longer hands it out.
    b.submit(SetIntegrationStatus {
        integration_id: integration_ids[1],
        status: IntegrationStatus::Inactive,
        metadata: meta(),
    })
    .await
    .unwrap();
    assert!(matches!(
        a.submit(request(Some(&hash), lease_of(&["jira"], "replica")))
            .await
            .unwrap(),
        Answer::Refused(Refusal::Domain(DomainError::NoCredentials { .. }))
    ));

    // A token A has cached, revoked by B: A refuses it.
    b.submit(RevokeToken {
        token_id: issued.id,
        metadata: meta(),
    })
    .await
    .unwrap();
    assert!(matches!(
        a.submit(request(Some(&hash), Me)).await.unwrap(),
        Answer::Refused(Refusal::Auth(AuthRefusal::Inactive))
    ));
    assert_consistent(&a).await;
}

both_backends! {
    refusals_around_a_failure => refusals_around_a_failing_command_are_all_recorded,
    token_uses_around_a_failure => a_token_used_around_a_failing_command_counts_both_uses,
    tokens_in_one_batch => two_tokens_issued_in_one_batch_get_their_own_ids,
    failing_and_panicking_commands => a_failing_or_panicking_command_leaves_no_trace,
    refused_commit => a_commit_refused_for_one_command_fails_only_that_command,
    unstorable_values => a_value_the_database_cannot_store_fails_only_its_request,
    two_writers => two_writers_see_each_others_changes,
    group_commit => concurrent_commands_share_transactions_without_mixing_outcomes,
    vanishing_callers => a_caller_that_goes_away_leaves_no_open_transaction,
}

//! The write entry point: group commit, isolation of failing commands, and callers that vanish.

use mcp_events::testing::TestDatabase;
use mcp_events::{
    both_backends, Backend, EventStore, IntegrationOwner, IntegrationStatus, Metadata,
    VerifyOutcome,
};
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::api::{ApiAction, ApiCall, ApiRefusal, ApiReply, Caller, LeaseRequest};
use mcp_manager::commands::directory::RegisterUser;
use mcp_manager::commands::integrations::{AddIntegration, SetIntegrationStatus};
use mcp_manager::commands::tokens::{IssueToken, RevokeToken};
use mcp_manager::commands::CommandError;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::domain::{AuthRefusal, DomainError};
use mcp_manager::ledger::{LeasePolicy, Ledger};
use mcp_manager::tokens::{expose, hash_token};
use mcp_manager::validate::ServiceName;
use mcp_projections::{queries, CheckOutcome};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn open(db: &TestDatabase) -> Ledger {
    open_with_key(db, EncryptionKey::generate()).await
}

async fn open_with_key(db: &TestDatabase, key: EncryptionKey) -> Ledger {
    let store = EventStore::new(db.connect().await);
    Ledger::open(store, Arc::new(SystemClock), key, LeasePolicy::default())
        .await
        .unwrap()
}

fn register(email: &str) -> RegisterUser {
    RegisterUser {
        email: email.into(),
        name: "Someone".into(),
        metadata: Metadata::actor("test"),
    }
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
    assert_eq!(
        ledger.store().verify().await.unwrap(),
        VerifyOutcome::Valid {
            events: 75,
            head: ledger.store().head().await.unwrap().1
        }
    );
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
    assert!(matches!(
        ledger.store().verify().await.unwrap(),
        VerifyOutcome::Valid { .. }
    ));
}

/// One API call as the token's holder.
async fn call(
    ledger: &Ledger,
    token_hash: &str,
    action: ApiAction,
) -> Result<ApiReply, ApiRefusal> {
    let caller = Caller {
        token_hash: Some(token_hash.to_owned()),
        ..Caller::default()
    };
    ledger.submit(ApiCall { caller, action }).await.unwrap()
}

fn lease_request(service: &str) -> ApiAction {
    ApiAction::CreateLease(LeaseRequest {
        services: vec![service.to_owned()],
        ttl: 3600,
        server_id: "replica-test".into(),
        renewable: true,
        client_info: None,
    })
}

/// Two writers on one database (two replicas, or the server and the CLI): what one of them
/// remembers between its transactions must never hide what the other wrote.
async fn two_writers_see_each_others_changes(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let key = EncryptionKey::generate();
    let a = open_with_key(&db, key.clone()).await;
    let b = open_with_key(&db, key).await;
    let meta = || Metadata::actor("test");
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
    let issued = a
        .submit(IssueToken {
            user_id,
            name: "replicas".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await
        .unwrap();
    let hash = hash_token(expose(&issued.token));

    // Both use the token in turn: each must see the other's appends to the token's stream.
    let mut lease_ids = vec![];
    for round in 0..6 {
        let writer = if round % 2 == 0 { &a } else { &b };
        match call(writer, &hash, lease_request("todoist")).await {
            Ok(ApiReply::Created(view)) => lease_ids.push(view.lease_id),
            other => panic!("round {round}: {other:?}"),
        }
    }
    let mut conn = a.store().database().pool().acquire().await.unwrap();
    let token = queries::token(&mut conn, issued.id).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(token.usage_count, 6, "every use counted once");

    // A lease created (and so remembered) by A, revoked by B: A must refuse to renew it.
    let lease_id = lease_ids[0].clone();
    let revoke = ApiAction::RevokeLease {
        lease_id: lease_id.clone(),
        reason: Some("elsewhere".into()),
    };
    assert!(matches!(
        call(&b, &hash, revoke).await,
        Ok(ApiReply::Revoked(_))
    ));
    let renew = ApiAction::RenewLease {
        lease_id: lease_id.clone(),
        ttl: None,
    };
    assert!(
        matches!(
            call(&a, &hash, renew).await,
            Err(ApiRefusal::Domain(DomainError::LeaseCannotBeRenewed { .. }))
        ),
        "A saw B's revocation"
    );
    match call(&a, &hash, ApiAction::GetLease { lease_id }).await {
        Ok(ApiReply::Lease(view)) => assert_eq!(view.status, "revoked"),
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
        call(&a, &hash, lease_request("jira")).await,
        Err(ApiRefusal::Domain(DomainError::NoCredentials { .. }))
    ));

    // A token A has cached, revoked by B: A refuses it.
    b.submit(RevokeToken {
        token_id: issued.id,
        metadata: meta(),
    })
    .await
    .unwrap();
    assert!(matches!(
        call(&a, &hash, ApiAction::Me).await,
        Err(ApiRefusal::Auth(AuthRefusal::Inactive))
    ));

    assert!(matches!(
        a.store().verify().await.unwrap(),
        VerifyOutcome::Valid { .. }
    ));
    let outcome = mcp_projections::check(a.store(), &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
}

both_backends! {
    two_writers => two_writers_see_each_others_changes,
    group_commit => concurrent_commands_share_transactions_without_mixing_outcomes,
    vanishing_callers => a_caller_that_goes_away_leaves_no_open_transaction,
}

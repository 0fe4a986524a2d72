//! Credential leases (the original's CredentialLeaseTest, ported), resolution rules, the
//! concurrency rule, expiry, and the seeded server of the guide.

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use mcp_events::{both_backends, Backend, Role, SharedWith};
use reqwest::Method;
use serde_json::{json, Value};

const LEASES: &str = "/api/mcp/credentials/lease";

fn lease_path(id: &Value) -> String {
    format!("{LEASES}/{}", id.as_str().unwrap())
}

/// Ada with a personal todoist, and an organization (she owns) sharing jira with all members.
async fn ada(app: &TestApp) -> (i64, i64, String) {
    let ada = app.user("ada@example.com").await;
    let org = app.org("Platform").await;
    app.member(org, ada, Role::Owner).await;
    app.personal(ada, "todoist", json!({"access_token": "todo-1"}))
        .await;
    app.shared(
        org,
        "jira",
        SharedWith::AllMembers,
        json!({"url": "https://j", "api_token": "jira-1", "cloud": true}),
    )
    .await;
    let token = app.token(ada).await;
    (ada, org, token)
}

async fn personal_credentials_are_leased(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let (status, body) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["lease_id"].as_str().unwrap().starts_with("lse_"));
    assert!(body["lease_id"].as_str().unwrap().len() >= 44);
    assert_eq!(
        body["credentials"],
        json!({"todoist": {"access_token": "todo-1"}})
    );
    assert_eq!(body["credential_scope"], "personal");
    assert_eq!(body["included_org_credentials"], json!([]));
    assert_eq!(body["missing_services"], json!([]));
    assert_eq!(body["renewable"], true);
    let expires = body["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 27, "{expires}");
}

async fn organization_credentials_are_leased(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, org, token) = ada(&app).await;
    let (status, body) = app.lease(&token, &["jira"]).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["credentials"]["jira"],
        json!({"url": "https://j", "api_token": "jira-1", "cloud": true})
    );
    assert_eq!(body["credential_scope"], "organization");
    assert_eq!(
        body["included_org_credentials"],
        json!([{"organization_id": org, "services": ["jira"]}])
    );
}

async fn mixed_leases_list_what_is_missing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let (status, body) = app.lease(&token, &["todoist", "jira", "notion"]).await;
    assert_eq!(status, 201);
    assert_eq!(body["credential_scope"], "mixed");
    assert_eq!(body["missing_services"], json!(["notion"]));
    assert!(body["credentials"].get("notion").is_none());
}

async fn no_resolvable_service_means_no_lease(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _, token) = ada(&app).await;
    let (status, body) = app.lease(&token, &["notion", "sentry"]).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"message": "No credentials available for requested services", "missing_services": ["notion", "sentry"]})
    );
    assert!(app.audit(Some(ada), "lease_created").await.is_empty());
}

async fn invalid_requests_get_laravel_style_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let cases = [
        (json!({"server_id": "s"}), "services"),
        (json!({"services": [], "server_id": "s"}), "services"),
        (
            json!({"services": ["Bad Name"], "server_id": "s"}),
            "services.0",
        ),
        (
            json!({"services": ["todoist", "todoist"], "server_id": "s"}),
            "services.1",
        ),
        (json!({"services": ["todoist"]}), "server_id"),
        (
            json!({"services": ["todoist"], "server_id": "s", "ttl": 5}),
            "ttl",
        ),
        (
            json!({"services": ["todoist"], "server_id": "s", "ttl": "long"}),
            "ttl",
        ),
        (
            json!({"services": ["todoist"], "server_id": "s", "renewable": "yes"}),
            "renewable",
        ),
    ];
    for (request, field) in cases {
        let (status, body) = app.post(LEASES, &token, request.clone()).await;
        assert_eq!(status, 422, "{request}");
        assert!(body["errors"][field].is_array(), "{request} -> {body}");
        assert!(body["message"].is_string());
    }
}

async fn lease_lifecycle_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _, token) = ada(&app).await;
    let (_, created) = app.lease(&token, &["todoist"]).await;
    let path = lease_path(&created["lease_id"]);

    app.clock.advance(10);
    let (status, renewed) = app.post(&format!("{path}/renew"), &token, json!({})).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["renewal_count"], 1);
    assert_eq!(renewed["lease_id"], created["lease_id"]);
    assert!(renewed["expires_at"].as_str() > created["expires_at"].as_str());

    let response = app
        .request(
            Method::DELETE,
            &path,
            Some(&token),
            Some(json!({"reason": "Server shutdown"})),
        )
        .await;
    let (status, revoked) = crate::helpers::into_parts(response).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["message"], "Lease revoked successfully");
    // Revoking again answers with the original time and records nothing new.
    app.clock.advance(10);
    let again = app.request(Method::DELETE, &path, Some(&token), None).await;
    let (status, again) = crate::helpers::into_parts(again).await;
    assert_eq!(status, 200);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    let id = created["lease_id"].as_str().unwrap();
    for action in ["lease_created", "lease_renewed", "lease_revoked"] {
        let records = app.audit(Some(ada), action).await;
        assert_eq!(records.len(), 1, "{action}");
        assert_eq!(records[0].entity_type, "CredentialLease");
        assert_eq!(records[0].entity_id, id);
    }
    assert!(app.audit(Some(ada), "lease_revoked").await[0]
        .details
        .contains("Server shutdown"));
}

async fn lease_details_show_no_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let (_, created) = app.lease(&token, &["todoist", "jira"]).await;
    let (status, body) = app.get(&lease_path(&created["lease_id"]), &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "active");
    assert_eq!(body["services"], json!(["todoist", "jira"]));
    assert_eq!(body["server_id"], "test-server");
    assert_eq!(body["renewal_count"], 0);
    assert_eq!(body["max_renewals"], 24);
    assert_eq!(body["credential_scope"], "mixed");
    assert_eq!(body["last_renewed_at"], Value::Null);
    assert_eq!(body["revoked_at"], Value::Null);
    assert!(body.get("credentials").is_none());
    assert!(!body.to_string().contains("todo-1"));
}

async fn expired_and_revoked_leases_cannot_be_renewed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let (_, first) = app.lease(&token, &["todoist"]).await;
    let (_, second) = app.lease(&token, &["todoist"]).await;
    app.request(
        Method::DELETE,
        &lease_path(&second["lease_id"]),
        Some(&token),
        None,
    )
    .await;
    let (status, body) = app
        .post(
            &format!("{}/renew", lease_path(&second["lease_id"])),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"message": "Lease cannot be renewed", "error": "Lease has been revoked"})
        )
    );

    app.clock.advance(3600);
    let (_, details) = app.get(&lease_path(&first["lease_id"]), &token).await;
    assert_eq!(details["status"], "expired");
    let (status, body) = app
        .post(
            &format!("{}/renew", lease_path(&first["lease_id"])),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"message": "Lease cannot be renewed", "error": "Lease has expired"})
        )
    );
}

async fn renewals_stop_at_the_maximum(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_renewals = 2).await;
    let (_, _, token) = ada(&app).await;
    let (_, created) = app.lease(&token, &["todoist"]).await;
    let renew = format!("{}/renew", lease_path(&created["lease_id"]));
    assert_eq!(app.post(&renew, &token, json!({"ttl": 120})).await.0, 200);
    assert_eq!(app.post(&renew, &token, json!({})).await.0, 200);
    let (status, body) = app.post(&renew, &token, json!({})).await;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "Maximum renewal count reached");
}

async fn another_users_lease_is_forbidden_and_unknown_ids_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let bob = app.user("bob@example.com").await;
    let bob_token = app.token(bob).await;
    let (_, created) = app.lease(&token, &["todoist"]).await;
    let path = lease_path(&created["lease_id"]);
    let forbidden = json!({"message": "This action is unauthorized."});
    assert_eq!(app.get(&path, &bob_token).await, (403, forbidden.clone()));
    assert_eq!(
        app.post(&format!("{path}/renew"), &bob_token, json!({}))
            .await,
        (403, forbidden.clone())
    );
    let response = app
        .request(Method::DELETE, &path, Some(&bob_token), None)
        .await;
    assert_eq!(crate::helpers::into_parts(response).await, (403, forbidden));
    assert_eq!(
        app.get(&format!("{LEASES}/lse_doesnotexist"), &token)
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&format!("{LEASES}/..%2F..%2Fetc"), &token).await.0,
        404
    );
}

async fn resolution_follows_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner@example.com").await;
    let member = app.user("member@example.com").await;
    let outsider = app.user("outsider@example.com").await;
    let late = app.org("Late").await;
    let early = app.org("Early").await; // a higher id that is created second
    for org in [late, early] {
        app.member(org, owner, Role::Owner).await;
        app.member(org, member, Role::Member).await;
    }
    app.shared(
        early,
        "jira",
        SharedWith::AllMembers,
        json!({"from": "early"}),
    )
    .await;
    app.shared(
        late,
        "jira",
        SharedWith::AllMembers,
        json!({"from": "late"}),
    )
    .await;
    app.shared(
        late,
        "sentry",
        SharedWith::AdminsOnly,
        json!({"from": "admins"}),
    )
    .await;
    app.shared(
        late,
        "notion",
        SharedWith::Users(vec![member]),
        json!({"from": "listed"}),
    )
    .await;
    app.personal(member, "jira", json!({"from": "personal"}))
        .await;

    let owner_token = app.token(owner).await;
    let member_token = app.token(member).await;
    let outsider_token = app.token(outsider).await;

    let (_, body) = app.lease(&owner_token, &["jira", "sentry", "notion"]).await;
    assert_eq!(
        body["credentials"]["jira"]["from"], "late",
        "lowest organization id wins"
    );
    assert_eq!(body["credentials"]["sentry"]["from"], "admins");
    assert_eq!(body["missing_services"], json!(["notion"]));

    let (_, body) = app
        .lease(&member_token, &["jira", "sentry", "notion"])
        .await;
    assert_eq!(
        body["credentials"]["jira"]["from"], "personal",
        "personal beats organization"
    );
    assert_eq!(body["credentials"]["notion"]["from"], "listed");
    assert_eq!(body["missing_services"], json!(["sentry"]));

    assert_eq!(
        app.lease(&outsider_token, &["jira"]).await.0,
        422,
        "non-members get nothing"
    );

    // Membership changes take effect on the next request.
    use mcp_manager::commands::directory::RemoveMember;
    app.ledger
        .submit(RemoveMember {
            organization_id: late,
            user_id: owner,
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let (_, body) = app.lease(&owner_token, &["jira", "sentry"]).await;
    assert_eq!(body["credentials"]["jira"]["from"], "early");
    assert_eq!(body["missing_services"], json!(["sentry"]));
}

async fn forty_simultaneous_renewals_give_exactly_twenty_four(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, token) = ada(&app).await;
    let (_, created) = app.lease(&token, &["todoist"]).await;
    let renew = format!("{}/renew", lease_path(&created["lease_id"]));
    let requests = (0..40).map(|_| app.post(&renew, &token, json!({})));
    let results = futures::future::join_all(requests).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 403 && b["message"] == "Maximum renewal count reached")
        .count();
    assert_eq!((ok, refused), (24, 16));
    let mut counts: Vec<i64> = results
        .iter()
        .filter_map(|(_, b)| b["renewal_count"].as_i64())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=24).collect::<Vec<_>>());
}

async fn the_expirer_records_expired_leases(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _, token) = ada(&app).await;
    let (_, created) = app.lease(&token, &["todoist"]).await;
    app.clock.advance(3601);
    let mut expired = Vec::new();
    for _ in 0..100 {
        expired = app.audit(Some(ada), "lease_expired").await;
        if !expired.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        expired.len(),
        1,
        "the expirer did not record the expired lease"
    );
    assert_eq!(expired[0].entity_id, created["lease_id"].as_str().unwrap());
}

async fn a_seeded_server_answers_like_the_guide(backend: Backend) {
    let app = spawn_app(backend).await;
    let seeded = mcp_manager::seed::seed(&app.ledger).await.unwrap();
    let token = mcp_manager::tokens::expose(&seeded.mcp_token).to_owned();
    assert!(token.starts_with("mcp_dev_"));
    let (status, body) = app.get("/api/mcp/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "user_id": 1,
            "email": "test@mcp-manager.local",
            "name": "Test User",
            "organizations": [
                {"id": 1, "name": "Development Team", "role": "owner"},
                {"id": 2, "name": "Client Projects", "role": "owner"},
            ],
            "available_services": ["todoist", "openai", "jira", "notion", "sentry"],
        })
    );
    // Seeding again creates nothing new but issues fresh tokens.
    let again = mcp_manager::seed::seed(&app.ledger).await.unwrap();
    assert_ne!(mcp_manager::tokens::expose(&again.mcp_token), token);
    assert_eq!(
        app.get("/api/mcp/me", mcp_manager::tokens::expose(&again.mcp_token))
            .await
            .1,
        body
    );
    let leases = app.audit(Some(1), "lease_created").await;
    assert_eq!(leases.len(), 3);
}

both_backends! {
    personal_lease => personal_credentials_are_leased,
    organization_lease => organization_credentials_are_leased,
    mixed_lease => mixed_leases_list_what_is_missing,
    no_credentials => no_resolvable_service_means_no_lease,
    invalid_requests => invalid_requests_get_laravel_style_errors,
    lifecycle => lease_lifecycle_is_audited,
    details => lease_details_show_no_credentials,
    renew_refused => expired_and_revoked_leases_cannot_be_renewed,
    max_renewals => renewals_stop_at_the_maximum,
    ownership => another_users_lease_is_forbidden_and_unknown_ids_are_not_found,
    resolution => resolution_follows_the_contract,
    concurrent_renewals => forty_simultaneous_renewals_give_exactly_twenty_four,
    expirer => the_expirer_records_expired_leases,
    seeded => a_seeded_server_answers_like_the_guide,
}

//! The account API as the web console and people's scripts use it: sign-in with a password, a
//! session cookie and its CSRF token; every route's success and refusals; and that nobody reaches
//! another person's (or another organization's) objects.

use crate::helpers::{into_parts, spawn_app, spawn_app_with, TestApp};
use mcp_events::{both_backends, Backend, Metadata, Role};
use mcp_manager::commands::accounts::SetPassword;
use mcp_manager::commands::tokens::{IssueToken, MAX_EXPIRES_IN};
use mcp_manager::domain::DomainError;
use mcp_manager::ledger::CommandError;
use mcp_projections::CheckOutcome;
use reqwest::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery";

/// A person signed in to the console: their session cookie and its CSRF token.
struct Person {
    user_id: i64,
    cookie: String,
    csrf: String,
}

pub async fn with_password(app: &TestApp, email: &str) -> i64 {
    let user_id = app.user(email).await;
    let phc = mcp_manager::accounts::password::hash(PASSWORD.to_owned().into())
        .await
        .unwrap();
    app.ledger
        .submit(SetPassword {
            user_id,
            phc,
            metadata: Metadata::actor("test"),
        })
        .await
        .unwrap();
    user_id
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/account/login", app.base))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp, email: &str) -> Person {
    let response = login(app, email, PASSWORD).await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let (status, body) = into_parts(response).await;
    assert_eq!(status, 200, "{body}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Person {
        user_id: body["user_id"].as_i64().unwrap(),
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn person(app: &TestApp, email: &str) -> Person {
    with_password(app, email).await;
    sign_in(app, email).await
}

/// A request as the console sends it: the cookie, and the CSRF token unless `csrf` is false.
async fn call(
    app: &TestApp,
    who: &Person,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_with(app, who, method, path, body, true).await
}

async fn call_with(
    app: &TestApp,
    who: &Person,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .header(COOKIE, &who.cookie);
    if csrf {
        request = request.header("x-csrf-token", &who.csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

/// Every stored event's payload and metadata, as one text.
pub async fn whole_log(app: &TestApp) -> String {
    let mut conn = app
        .ledger
        .store()
        .database()
        .pool()
        .acquire()
        .await
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("select payload, metadata from events order by position")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(p, m)| format!("{p}\n{m}\n"))
        .collect()
}

pub async fn replay_check_is_same(app: &TestApp) {
    let outcome = mcp_projections::check(app.ledger.store(), &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, CheckOutcome::Same(_)), "{outcome:?}");
}

async fn signing_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = with_password(&app, "ada@example.com").await;

    // Wrong password and unknown e-mail: one answer.
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let (status, body) = into_parts(login(&app, email, password).await).await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({ "message": "These credentials do not match our records." })
        );
    }
    let (status, body) = into_parts(
        app.client
            .post(format!("{}/api/account/login", app.base))
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["password"].is_array(), "{body}");

    let response = login(&app, "ADA@example.com", PASSWORD).await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("mcp_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "not configured for HTTPS");
    let (status, body) = into_parts(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["user_id"], user_id);
    assert_eq!(body["email"], "ada@example.com");
    let who = Person {
        user_id,
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };

    let (status, me) = call(&app, &who, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], user_id);
    assert_eq!(me["csrf_token"], who.csrf.as_str());
    assert_eq!(me["organizations"], json!([]));

    // An MCP token is not a session.
    let token = app.token(user_id).await;
    let (status, body) = app.get("/api/account/me", &token).await;
    assert_eq!(
        (status, body),
        (401, json!({ "message": "Unauthenticated" }))
    );

    // Signing out needs the CSRF token, then ends the session for good.
    let (status, body) =
        call_with(&app, &who, Method::POST, "/api/account/logout", None, false).await;
    assert_eq!(
        (status, body),
        (419, json!({ "message": "CSRF token mismatch." }))
    );
    let (status, _) = call(&app, &who, Method::POST, "/api/account/logout", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, &who, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 401);

    // The log has the facts, and neither the password nor the cookie.
    assert_eq!(app.audit(None, "account_sign_in_failed").await.len(), 2);
    assert_eq!(
        app.audit(Some(user_id), "account_session_started")
            .await
            .len(),
        1
    );
    assert_eq!(
        app.audit(Some(user_id), "account_session_ended")
            .await
            .len(),
        1
    );
    let log = whole_log(&app).await;
    let cookie_value = who.cookie.trim_start_matches("mcp_session=");
    for secret in [PASSWORD, cookie_value, who.csrf.as_str(), "$argon2id"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    replay_check_is_same(&app).await;
}

async fn failed_sign_ins_are_throttled(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.sign_in_failures_per_account = 3;
        settings.sign_in_failures_per_address = 5;
    })
    .await;
    with_password(&app, "ada@example.com").await;
    with_password(&app, "bob@example.com").await;
    for _ in 0..3 {
        let response = login(&app, "ada@example.com", "wrong password").await;
        assert_eq!(response.status(), 401);
    }
    // Throttled now, even with the right password; the answer says when to come back.
    let response = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Another account from the same address still signs in (the address has 2 failures left)…
    sign_in(&app, "bob@example.com").await;
    for _ in 0..2 {
        login(&app, "carol@example.com", "wrong password").await;
    }
    // …until the address has used its failures too.
    let response = login(&app, "bob@example.com", PASSWORD).await;
    assert_eq!(response.status(), 429);
    // Turned-away attempts are not recorded one by one.
    assert_eq!(app.audit(None, "account_sign_in_failed").await.len(), 5);
}

async fn sessions_end_when_idle_or_too_old(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.session_idle_timeout = 600;
        settings.session_lifetime = 1_000;
    })
    .await;
    let who = person(&app, "ada@example.com").await;
    // Activity keeps it alive (recorded at most every 150 s here)…
    for _ in 0..4 {
        app.clock.advance(200);
        let (status, _) = call(&app, &who, Method::GET, "/api/account/me", None).await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        app.audit(Some(who.user_id), "account_session_refreshed")
            .await
            .len(),
        4
    );
    // …but not past its lifetime.
    app.clock.advance(200);
    let (status, _) = call(&app, &who, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 401);

    let idle = sign_in(&app, "ada@example.com").await;
    app.clock.advance(601);
    let (status, _) = call(&app, &idle, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 401);
}

async fn a_disabled_user_cannot_sign_in_or_stay_signed_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let who = person(&app, "ada@example.com").await;
    app.ledger
        .submit(mcp_manager::commands::directory::DisableUser {
            user_id: who.user_id,
            metadata: Metadata::actor("test"),
        })
        .await
        .unwrap();
    let (status, _) = call(&app, &who, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 401);
    let (status, body) = into_parts(login(&app, "ada@example.com", PASSWORD).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "These credentials do not match our records."
    );
}

async fn personal_integrations(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let path = "/api/account/integrations";

    let (status, body) = call_with(
        &app,
        &ada,
        Method::POST,
        path,
        Some(json!({"service": "todoist", "credentials": {"access_token": "tok-1"}})),
        false,
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (419, json!("CSRF token mismatch."))
    );
    let (status, body) = call(
        &app,
        &ada,
        Method::POST,
        path,
        Some(json!({"service": "todoist"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["credentials"].is_array(), "{body}");

    let (status, added) = call(
        &app,
        &ada,
        Method::POST,
        path,
        Some(json!({"service": "todoist", "credentials": {"access_token": "tok-1"}})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["secret_version"], 1);
    assert_eq!(added["status"], "active");
    let fingerprint = added["fingerprint"].as_str().unwrap().to_owned();

    let item = format!("{path}/{id}");
    let rotate = format!("{item}/rotate");
    let (status, rotated) = call(
        &app,
        &ada,
        Method::POST,
        &rotate,
        Some(json!({"credentials": {"access_token": "tok-2"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rotated["secret_version"], 2);
    assert_ne!(rotated["fingerprint"], fingerprint.as_str());
    let (status, changed) = call(
        &app,
        &ada,
        Method::PATCH,
        &item,
        Some(json!({"status": "inactive"})),
    )
    .await;
    assert_eq!(
        (status, changed["status"].clone()),
        (200, json!("inactive"))
    );
    let (status, _) = call(
        &app,
        &ada,
        Method::PATCH,
        &item,
        Some(json!({"status": "gone"})),
    )
    .await;
    assert_eq!(status, 422);

    // Bob sees nothing of it and changes nothing of it: 404, as for an id that does not exist.
    let (_, list) = call(&app, &bob, Method::GET, path, None).await;
    assert_eq!(list, json!([]));
    for (method, path, body) in [
        (
            Method::POST,
            rotate.as_str(),
            Some(json!({"credentials": {"a": "b"}})),
        ),
        (
            Method::PATCH,
            item.as_str(),
            Some(json!({"status": "active"})),
        ),
        (Method::DELETE, item.as_str(), None),
        (Method::DELETE, "/api/account/integrations/999", None),
    ] {
        let (status, body) = call(&app, &bob, method, path, body).await;
        assert_eq!((status, body), (404, json!({ "message": "Not found" })));
    }

    let (_, list) = call(&app, &ada, Method::GET, path, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("tok-"), "{list}");
    let (status, _) = call(&app, &ada, Method::DELETE, &item, None).await;
    assert_eq!(status, 204);
    let (_, list) = call(&app, &ada, Method::GET, path, None).await;
    assert_eq!(list, json!([]));
    let (status, _) = call(&app, &ada, Method::DELETE, &item, None).await;
    assert_eq!(status, 404);
    assert!(!whole_log(&app).await.contains("tok-"));
    replay_check_is_same(&app).await;
}

async fn tokens_and_leases(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    app.personal(
        ada.user_id,
        "todoist",
        json!({"access_token": "secret-todo"}),
    )
    .await;

    let (status, created) = call(
        &app,
        &ada,
        Method::POST,
        "/api/account/tokens",
        Some(json!({"name": "laptop", "max_uses": 10, "expires_in": 3600})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mcp_laptop_"), "{token}");
    assert_eq!(created["scope"], "leases");
    let token_id = created["id"].as_i64().unwrap();
    let (status, _) = call(
        &app,
        &ada,
        Method::POST,
        "/api/account/tokens",
        Some(json!({"name": "x", "scope": "root"})),
    )
    .await;
    assert_eq!(status, 422);

    // The token works where MCP servers use it.
    let (status, lease) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 201, "{lease}");
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();

    let (_, tokens) = call(&app, &ada, Method::GET, "/api/account/tokens", None).await;
    let listed = &tokens.as_array().unwrap()[0];
    assert_eq!(listed["usage_count"], 1);
    assert!(listed.get("token").is_none(), "shown once only: {listed}");

    let (_, leases) = call(&app, &ada, Method::GET, "/api/account/leases", None).await;
    assert_eq!(leases[0]["lease_id"], lease_id.as_str());
    assert_eq!(leases[0]["status"], "active");
    assert!(!leases.to_string().contains("secret-todo"));
    let (status, _) = call(
        &app,
        &ada,
        Method::GET,
        "/api/account/leases?status=nope",
        None,
    )
    .await;
    assert_eq!(status, 422);

    // Bob can touch neither.
    let (_, bobs) = call(&app, &bob, Method::GET, "/api/account/leases", None).await;
    assert_eq!(bobs, json!([]));
    let (_, bobs) = call(&app, &bob, Method::GET, "/api/account/tokens", None).await;
    assert_eq!(bobs, json!([]));
    let lease_path = format!("/api/account/leases/{lease_id}");
    let token_path = format!("/api/account/tokens/{token_id}");
    for path in [&lease_path, &token_path] {
        let (status, _) = call(&app, &bob, Method::DELETE, path, None).await;
        assert_eq!(status, 404, "{path}");
    }

    let (status, _) = call(&app, &ada, Method::DELETE, &lease_path, None).await;
    assert_eq!(status, 204);
    let (_, revoked) = call(
        &app,
        &ada,
        Method::GET,
        "/api/account/leases?status=revoked",
        None,
    )
    .await;
    assert_eq!(revoked[0]["lease_id"], lease_id.as_str());
    let (status, _) = call(&app, &ada, Method::DELETE, &token_path, None).await;
    assert_eq!(status, 204);
    let (status, _) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 401);

    // Activity: Ada's own records, newest first; none of Bob's.
    let (_, activity) = call(
        &app,
        &ada,
        Method::GET,
        "/api/account/activity?limit=100",
        None,
    )
    .await;
    let actions: Vec<&str> = activity
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    // The refused request with the revoked token is the newest.
    assert_eq!(actions[..2], ["mcp_auth_failed", "token_revoked"]);

    assert!(actions.contains(&"lease_created") && actions.contains(&"account_session_started"));
    let (_, bobs) = call(&app, &bob, Method::GET, "/api/account/activity", None).await;
    assert!(bobs
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action"] != "lease_created"));
    let (status, _) = call(
        &app,
        &ada,
        Method::GET,
        "/api/account/activity?limit=0",
        None,
    )
    .await;
    assert_eq!(status, 422);
    replay_check_is_same(&app).await;
}

async fn organizations(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = person(&app, "owner@example.com").await;
    let admin = person(&app, "admin@example.com").await;
    let member = person(&app, "member@example.com").await;
    let outsider = person(&app, "outsider@example.com").await;
    let org = app.org("Team").await;
    let other = app.org("Other").await;
    app.member(org, owner.user_id, Role::Owner).await;
    app.member(org, admin.user_id, Role::Admin).await;
    app.member(org, member.user_id, Role::Member).await;
    app.member(other, outsider.user_id, Role::Owner).await;
    let elsewhere = app
        .shared(
            other,
            "jira",
            mcp_events::SharedWith::AllMembers,
            json!({"api_token": "other-secret"}),
        )
        .await;
    let members = format!("/api/account/organizations/{org}/members");
    let integrations = format!("/api/account/organizations/{org}/integrations");

    let (status, me) = call(&app, &member, Method::GET, "/api/account/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me["organizations"],
        json!([{"id": org, "name": "Team", "role": "member"}])
    );

    // Outside the organization: 404 for everything.
    for (method, path, body) in [
        (Method::GET, members.clone(), None),
        (Method::GET, integrations.clone(), None),
        (
            Method::POST,
            members.clone(),
            Some(json!({"email": "outsider@example.com", "role": "member"})),
        ),
        (
            Method::DELETE,
            format!("{members}/{}", member.user_id),
            None,
        ),
    ] {
        let (status, body) = call(&app, &outsider, method, &path, body).await;
        assert_eq!(
            (status, body),
            (404, json!({ "message": "Not found" })),
            "{path}"
        );
    }

    // Members read; they do not manage.
    let (status, list) = call(&app, &member, Method::GET, &members, None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let refused = json!({ "message": "This action is unauthorized." });
    let add_outsider = json!({"email": "outsider@example.com", "role": "member"});
    let (status, body) = call(
        &app,
        &member,
        Method::POST,
        &members,
        Some(add_outsider.clone()),
    )
    .await;
    assert_eq!((status, body), (403, refused.clone()));

    // Admins add and remove members, but make no owners and change no roles.
    let (status, added) = call(
        &app,
        &admin,
        Method::POST,
        &members,
        Some(add_outsider.clone()),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let (status, _) = call(&app, &admin, Method::POST, &members, Some(add_outsider)).await;
    assert_eq!(status, 422, "already a member");
    let outsider_path = format!("{members}/{}", outsider.user_id);
    let (status, _) = call(
        &app,
        &admin,
        Method::PATCH,
        &outsider_path,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        &owner,
        Method::PATCH,
        &outsider_path,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let own = format!("{members}/{}", owner.user_id);
    let (status, _) = call(&app, &owner, Method::DELETE, &own, None).await;
    assert_eq!(status, 422, "nobody removes themselves");
    let (status, _) = call(&app, &admin, Method::DELETE, &own, None).await;
    assert_eq!(status, 403, "admins do not remove owners");
    let (status, _) = call(&app, &admin, Method::DELETE, &outsider_path, None).await;
    assert_eq!(status, 204);

    // Organization integrations: members see them (never the credentials), admins manage.
    let body = json!({"service": "notion", "credentials": {"access_token": "team-secret"}, "shared_with": "admins_only"});
    let (status, _) = call(
        &app,
        &member,
        Method::POST,
        &integrations,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, added) = call(&app, &admin, Method::POST, &integrations, Some(body)).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["shared_with"], "admins_only");
    let iid = added["id"].as_i64().unwrap();
    let (_, list) = call(&app, &member, Method::GET, &integrations, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("team-secret"));
    let rotate = format!("{integrations}/{iid}/rotate");
    let new = json!({"credentials": {"access_token": "team-secret-2"}});
    let (status, _) = call(&app, &member, Method::POST, &rotate, Some(new.clone())).await;
    assert_eq!(status, 403);
    let (status, rotated) = call(&app, &admin, Method::POST, &rotate, Some(new.clone())).await;
    assert_eq!((status, rotated["secret_version"].clone()), (200, json!(2)));
    let (status, _) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("{integrations}/{iid}"),
        Some(json!({"status": "inactive"})),
    )
    .await;
    assert_eq!(status, 200);
    // Another organization's integration through this organization's path: 404.
    let (status, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("{integrations}/{elsewhere}/rotate"),
        Some(new),
    )
    .await;
    assert_eq!(status, 404);
    replay_check_is_same(&app).await;
}

/// Found while describing the API for Schemathesis: an id that is not an integer (or a lease id
/// that is not UTF-8) was axum's plain-text 400; and found by Schemathesis: a token whose
/// `expires_in` overflows a timestamp was a 500.
async fn malformed_ids_and_endless_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = person(&app, "ada@example.com").await;

    // An id that cannot be one names nothing: 404, in JSON, as for a missing object.
    for (method, path) in [
        (Method::DELETE, "/api/account/tokens/abc"),
        (Method::DELETE, "/api/account/tokens/99999999999999999999"),
        (Method::PATCH, "/api/account/integrations/1.5"),
        (Method::POST, "/api/account/integrations/%20/rotate"),
        (Method::GET, "/api/account/organizations/x/members"),
        (Method::DELETE, "/api/account/organizations/1/members/-"),
        (Method::DELETE, "/api/account/leases/%FF"),
    ] {
        let (status, body) = call(&app, &ada, method.clone(), path, Some(json!({}))).await;
        assert_eq!(
            (status, &body),
            (404, &json!({"message": "Not found"})),
            "{method} {path}"
        );
    }

    // A token lives at most 100 years: past that, a field error, not a failure.
    for expires_in in [json!(i64::MAX - 1), json!(MAX_EXPIRES_IN + 1)] {
        let (status, body) = call(
            &app,
            &ada,
            Method::POST,
            "/api/account/tokens",
            Some(json!({"name": "forever", "expires_in": expires_in})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body["errors"]["expires_in"].is_array(), "{body}");
    }
    let (status, body) = call(
        &app,
        &ada,
        Method::POST,
        "/api/account/tokens",
        Some(json!({"name": "century", "expires_in": MAX_EXPIRES_IN})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let expires_at = body["expires_at"].as_str().unwrap();
    assert!(
        expires_at.len() == 27 && expires_at.starts_with("21"),
        "{expires_at}"
    );
    // The command itself refuses it, whoever asks (the CLI's `token create` too).
    let refused = app
        .ledger
        .submit(IssueToken {
            user_id: ada.user_id,
            scope: Default::default(),
            name: "cli".into(),
            expires_in: Some(i64::MAX),
            max_uses: None,
            metadata: Metadata::actor("test"),
        })
        .await;
    assert!(
        matches!(refused, Err(CommandError::Domain(DomainError::Invalid(_)))),
        "{:?}",
        refused.map(|issued| issued.id)
    );
    replay_check_is_same(&app).await;
}

both_backends!(
    signing_in_and_out_records_the_facts_and_no_secret => signing_in_and_out,
    failed_sign_ins_are_throttled_per_account_and_address => failed_sign_ins_are_throttled,
    sessions_end_when_idle_or_past_their_lifetime => sessions_end_when_idle_or_too_old,
    disabled_users_are_signed_out => a_disabled_user_cannot_sign_in_or_stay_signed_in,
    personal_integrations_are_their_owners_alone => personal_integrations,
    tokens_and_leases_are_their_owners_alone => tokens_and_leases,
    organizations_members_read_and_managers_manage => organizations,
    malformed_ids_are_not_found_and_tokens_live_at_most_a_century => malformed_ids_and_endless_tokens,
);

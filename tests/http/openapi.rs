//! The OpenAPI document at `/api/openapi.json`: OpenAPI 3.1, describing exactly the routes the
//! server serves (`mcp_manager::http::openapi::ROUTES`), and real answers of the server, success
//! and refusal alike, conform to it: a documented status, a documented content type, and a body
//! the documented JSON schema accepts.

use crate::account::{with_password, PASSWORD};
use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use mcp_events::{both_backends, Backend, IntegrationOwner, Role, SharedWith, TokenScope};
use mcp_manager::commands::tokens::MAX_EXPIRES_IN;
use mcp_manager::http::openapi::{ACCOUNT_SESSION, AUDIT_TOKEN, LEASES_TOKEN, ROUTES};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

async fn document(app: &TestApp) -> Value {
    let response = reqwest::get(format!("{}/api/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    response.json().await.unwrap()
}

/// The document's operations, as `(METHOD, path template)`.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

/// A concrete path for a template: a lease id no lease has, a tile the log may not have yet,
/// ids no account object has.
fn concrete(template: &str) -> String {
    let template = if template.starts_with("/api/account/") {
        template
            .replace("{id}", "999")
            .replace("{iid}", "999")
            .replace("{user_id}", "999")
    } else {
        template.to_owned()
    };
    template
        .replace("{id}", "lse_nosuchlease")
        .replace("{lease_id}", "lse_nosuchlease")
        .replace("{path}", "0/000")
}

async fn the_document_describes_every_route_the_server_serves(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let leases = app.token(user).await;
    let audit = app.token_scoped(user, TokenScope::Audit, None, None).await;

    let document = document(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    // Fetching it authenticates nobody and records nothing.
    assert!(app.audit(None, "mcp_auth_failed").await.is_empty());
    assert!(app.audit(None, "mcp_auth_success").await.is_empty());

    // Exactly the route table: a route without a description, or a description without its
    // route, is a difference here.
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route listed twice");
    assert_eq!(operations(&document), listed);
    // The TTL bounds are this server's.
    for body in ["LeaseRequestBody", "RenewRequestBody"] {
        let ttl = &document["components"]["schemas"][body]["properties"]["ttl"];
        assert_eq!(
            (&ttl["minimum"], &ttl["maximum"]),
            (&json!(60), &json!(86400)),
            "{body}"
        );
    }
    let services = &document["components"]["schemas"]["LeaseRequestBody"]["properties"]["services"];
    assert_eq!(services["uniqueItems"], true, "{services}");
    let expires_in = &document["components"]["schemas"]["TokenRequest"]["properties"]["expires_in"];
    assert_eq!(expires_in["maximum"], MAX_EXPIRES_IN, "{expires_in}");

    // And the router serves each of them: no answer from its fallbacks (404 `Not Found`, 405).
    for (method, template) in ROUTES {
        let token = if template.starts_with("/api/audit/") {
            &audit
        } else {
            &leases
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{}{}", app.base, concrete(template));
        let response = app
            .client
            .request(method.clone(), url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {template}");
        if status == 404 {
            let body: Value = response.json().await.unwrap();
            assert_ne!(
                body["message"], "Not Found",
                "{method} {template} is not routed"
            );
        }
    }

    // Every operation with a token names a defined scheme; a leases token's routes and an
    // audit token's routes are told apart, and /me takes either.
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for name in [LEASES_TOKEN, AUDIT_TOKEN] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    let session = &schemes[ACCOUNT_SESSION];
    assert_eq!(
        (&session["type"], &session["in"], &session["name"]),
        (&json!("apiKey"), &json!("cookie"), &json!("mcp_session")),
        "{session}"
    );
    let operation_ids: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    for (method, template) in ROUTES {
        let operation = &document["paths"][template][method.to_lowercase()];
        let names: BTreeSet<&str> = operation["security"]
            .as_array()
            .map(|requirements| {
                requirements
                    .iter()
                    .flat_map(|r| r.as_object().unwrap().keys())
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeSet<&str> = if *template == "/api/mcp/me" {
            [LEASES_TOKEN, AUDIT_TOKEN].into()
        } else if *template == "/api/account/login" {
            BTreeSet::new()
        } else if template.starts_with("/api/account/") {
            [ACCOUNT_SESSION].into()
        } else if template.starts_with("/api/audit/") {
            [AUDIT_TOKEN].into()
        } else if template.starts_with("/api/mcp/") {
            [LEASES_TOKEN].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(names, expected, "{method} {template}");
        if template.starts_with("/api/account/") {
            // A session's routes answer 401 without one, and its changes 419 without the
            // session's CSRF token, which they take as a header; sign-in documents its throttle.
            let changes = *method != "GET";
            let csrf = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "X-CSRF-Token");
            if *template == "/api/account/login" {
                assert!(csrf.is_none());
                assert!(operation["responses"]["429"]["headers"]
                    .get("Retry-After")
                    .is_some());
            } else {
                assert!(operation["responses"].get("401").is_some(), "{template}");
                assert_eq!(
                    operation["responses"].get("419").is_some(),
                    changes,
                    "{method} {template}"
                );
                let csrf = csrf.map(|p| (p["in"].as_str(), p["required"].as_bool()));
                let expected = changes.then_some((Some("header"), Some(true)));
                assert_eq!(csrf, expected, "{method} {template}");
            }
        } else if !expected.is_empty() {
            for status in ["401", "429", "503"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {template} documents no {status}"
                );
            }
            assert!(
                operation["responses"]["429"]["headers"]
                    .get("Retry-After")
                    .is_some(),
                "{method} {template}"
            );
        }
        // Links lead to operations that exist.
        for response in operation["responses"].as_object().unwrap().values() {
            if let Some(links) = response["links"].as_object() {
                for link in links.values() {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(operation_ids.contains(target), "{target}");
                }
            }
        }
    }
}

/// With `/metrics` on an address of its own, the API's document does not list it.
async fn metrics_on_their_own_address_are_not_in_the_document(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let operations = operations(&document(&app).await);
    assert!(!operations.contains(&("GET".to_owned(), "/metrics".to_owned())));
    assert_eq!(operations.len(), ROUTES.len() - 1);
}

/// Checks real answers against the document.
struct Conformance {
    document: Value,
    checked: usize,
}

impl Conformance {
    /// Sends the request and checks its answer against the operation `method template`; returns
    /// the status and the body (JSON, or the text as a JSON string).
    async fn check(
        &mut self,
        request: RequestBuilder,
        method: &str,
        template: &str,
    ) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let operation = &self.document["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let documented = &operation["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template}: {status} is not documented ({text})"
        );
        assert!(headers.contains_key("x-request-id"));
        // Every documented header is sent (`Retry-After` of a 429, `Set-Cookie` of a sign-in).
        for (name, _) in documented["headers"].as_object().into_iter().flatten() {
            assert!(
                headers.contains_key(name.as_str()),
                "{method} {template} {status}: no {name}"
            );
        }
        if documented.get("content").is_none() {
            // No body (a 204).
            assert!(text.is_empty(), "{method} {template} {status}: {text}");
            assert!(!headers.contains_key(CONTENT_TYPE), "{method} {template}");
            self.checked += 1;
            return (status, Value::Null);
        }
        let content_type = headers[CONTENT_TYPE].to_str().unwrap();
        let media = &documented["content"][content_type];
        assert!(
            media.is_object(),
            "{method} {template} {status}: {content_type} is not documented: {}",
            documented["content"]
        );
        let body = if content_type.starts_with("application/json") {
            serde_json::from_str(&text).unwrap()
        } else if content_type.starts_with("text/") {
            Value::String(text)
        } else {
            // Bytes (a tile): no JSON to check.
            self.checked += 1;
            return (status, Value::Null);
        };
        let pointer = format!(
            "#/paths/{}/{}/responses/{status}/content/{}/schema",
            escape(template),
            method.to_lowercase(),
            escape(content_type)
        );
        let mut root = self.document.clone();
        root["$ref"] = Value::String(pointer);
        let validator = jsonschema::draft202012::new(&root).unwrap();
        // The schema says something: every documented body is an object or a string.
        assert!(
            !validator.is_valid(&Value::Null),
            "{method} {template} {status}"
        );
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {body} does not conform: {errors:?}"
        );
        self.checked += 1;
        (status, body)
    }
}

/// A JSON pointer token (RFC 6901), percent-encoded for a URI fragment (`{id}`, `; `).
fn escape(token: &str) -> String {
    let mut escaped = String::new();
    for c in token.replace('~', "~0").replace('/', "~1").chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            escaped.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                escaped.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    escaped
}

async fn real_answers_conform_to_the_document(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.checkpoint_interval = Duration::from_millis(200);
        settings.auth_failure_burst = 3;
    })
    .await;
    let ada = app.user("ada@example.com").await;
    let org = app.org("Development Team").await;
    app.member(org, ada, Role::Owner).await;
    app.personal(ada, "todoist", json!({"access_token": "t"}))
        .await;
    app.integration(
        "jira",
        IntegrationOwner::Organization {
            organization_id: org,
            shared_with: SharedWith::AllMembers,
        },
        json!({"url": "https://jira.example.com", "api_token": "j"}),
    )
    .await;
    let leases = app.token(ada).await;
    let audit = app.token_scoped(ada, TokenScope::Audit, None, None).await;
    let bob = app.user("bob@example.com").await;
    let bobs = app.token(bob).await;
    let mut conformance = Conformance {
        document: document(&app).await,
        checked: 0,
    };
    let c = &app.client;
    let url = |path: &str| format!("{}{path}", app.base);
    let lease_path = "/api/mcp/credentials/lease";

    // The MCP API: success and every refusal.
    for token in [&leases, &audit] {
        let me = c.get(url("/api/mcp/me")).bearer_auth(token);
        assert_eq!(conformance.check(me, "GET", "/api/mcp/me").await.0, 200);
    }
    let create = |token: &str, body: Value| c.post(url(lease_path)).bearer_auth(token).json(&body);
    let (status, lease) = conformance
        .check(
            create(
                &leases,
                json!({"services": ["todoist", "jira", "notion"], "server_id": "s", "client_info": {"v": 1}}),
            ),
            "POST",
            lease_path,
        )
        .await;
    assert_eq!(status, 201, "{lease}");
    assert_eq!(lease["credential_scope"], "mixed");
    let id = lease["lease_id"].as_str().unwrap().to_owned();
    for (token, body, expected) in [
        (&leases, json!({"services": []}), 422),
        (
            &leases,
            json!({"services": ["notion"], "server_id": "s"}),
            422,
        ),
        (
            &audit,
            json!({"services": ["todoist"], "server_id": "s"}),
            403,
        ),
    ] {
        let answer = conformance
            .check(create(token, body), "POST", lease_path)
            .await;
        assert_eq!(answer.0, expected, "{}", answer.1);
    }
    let not_json = c
        .post(url(lease_path))
        .bearer_auth(&leases)
        .header(CONTENT_TYPE, "application/json")
        .body("{");
    assert_eq!(conformance.check(not_json, "POST", lease_path).await.0, 400);
    let not_typed = c.post(url(lease_path)).bearer_auth(&leases).body("{}");
    assert_eq!(
        conformance.check(not_typed, "POST", lease_path).await.0,
        415
    );
    let anonymous = c.post(url(lease_path)).json(&json!({}));
    assert_eq!(
        conformance.check(anonymous, "POST", lease_path).await.0,
        401
    );

    let one = "/api/mcp/credentials/lease/{id}";
    let at = |suffix: &str| url(&format!("{lease_path}/{id}{suffix}"));
    let (status, shown) = conformance
        .check(c.get(at("")).bearer_auth(&leases), "GET", one)
        .await;
    assert_eq!(status, 200);
    assert!(shown["last_renewed_at"].is_null() && shown["revoked_at"].is_null());
    let others = c.get(at("")).bearer_auth(&bobs);
    assert_eq!(conformance.check(others, "GET", one).await.0, 403);
    let unknown = c
        .get(url(&format!("{lease_path}/lse_nosuchlease")))
        .bearer_auth(&leases);
    assert_eq!(conformance.check(unknown, "GET", one).await.0, 404);

    let renew = "/api/mcp/credentials/lease/{id}/renew";
    let renewed = c.post(at("/renew")).bearer_auth(&leases);
    assert_eq!(conformance.check(renewed, "POST", renew).await.0, 200);
    let bad_ttl = c
        .post(at("/renew"))
        .bearer_auth(&leases)
        .json(&json!({"ttl": 1}));
    assert_eq!(conformance.check(bad_ttl, "POST", renew).await.0, 422);

    let receipt = "/api/mcp/credentials/lease/{id}/receipt";
    let (status, body) = conformance
        .check(c.get(at("/receipt")).bearer_auth(&leases), "GET", receipt)
        .await;
    assert_eq!(status, 200, "{body}");

    let revoked = c
        .delete(at(""))
        .bearer_auth(&leases)
        .json(&json!({"reason": "done"}));
    assert_eq!(conformance.check(revoked, "DELETE", one).await.0, 200);
    let (_, shown) = conformance
        .check(c.get(at("")).bearer_auth(&leases), "GET", one)
        .await;
    assert_eq!(shown["status"], "revoked");
    assert!(shown["revoked_at"].is_string() && shown["last_renewed_at"].is_string());
    let refused = c.post(at("/renew")).bearer_auth(&leases);
    assert_eq!(conformance.check(refused, "POST", renew).await.0, 403);

    // The auditors' API.
    tokio::time::sleep(Duration::from_millis(500)).await; // a checkpoint covers the lease
    for (path, expected) in [
        ("/api/audit/events?limit=5", 200),
        ("/api/audit/events?limit=0", 422),
        ("/api/audit/key", 200),
        ("/api/audit/checkpoint", 200),
        ("/api/audit/tlog/checkpoint", 200),
        ("/api/audit/proof/inclusion?position=1", 200),
        ("/api/audit/proof/inclusion", 422),
        ("/api/audit/proof/consistency?from=1", 200),
        ("/api/audit/tlog/tile/0/000.p/1", 200),
        ("/api/audit/tlog/tile/9/999", 404),
    ] {
        let template = match path.split_once('?').map_or(path, |(p, _)| p) {
            p if p.starts_with("/api/audit/tlog/tile/") => "/api/audit/tlog/tile/{path}",
            p => p,
        };
        let request = c.get(url(path)).bearer_auth(&audit);
        let (status, body) = conformance.check(request, "GET", template).await;
        assert_eq!(status, expected, "{path}: {body}");
        let wrong_scope = c.get(url(path)).bearer_auth(&leases);
        assert_eq!(conformance.check(wrong_scope, "GET", template).await.0, 403);
    }
    let stream = "/api/audit/events/stream";
    let bad_last_id = c
        .get(url(stream))
        .bearer_auth(&audit)
        .header("last-event-id", "x");
    assert_eq!(conformance.check(bad_last_id, "GET", stream).await.0, 422);
    let live = c.get(url(stream)).bearer_auth(&audit).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()[CONTENT_TYPE], "text/event-stream");
    drop(live);

    // The operator's routes.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            conformance.check(c.get(url(path)), "GET", path).await.0,
            200
        );
    }

    // A flood of refusals: 429 with Retry-After, as documented.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let request = c
            .get(url("/api/mcp/me"))
            .header(AUTHORIZATION, "Bearer mcp_nobody_0000");
        statuses.push(conformance.check(request, "GET", "/api/mcp/me").await.0);
    }
    assert!(
        statuses.contains(&401) && statuses.contains(&429),
        "{statuses:?}"
    );
    assert!(conformance.checked >= 40, "{}", conformance.checked);
}

/// A person signed in: their `Cookie` header value and their session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, email: &str) -> Session {
    let response = app
        .client
        .post(format!("{}/api/account/login", app.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// The account API: each route's success and its refusals (no session, a bearer token instead,
/// no CSRF token, another person's object, a member without the role, invalid fields, a body
/// that is not JSON, ids that are not ids, the sign-in throttle) conform to the document.
async fn account_answers_conform_to_the_document(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.sign_in_failures_per_account = 2;
    })
    .await;
    let ada_id = with_password(&app, "ada@example.com").await;
    let bob_id = with_password(&app, "bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let org = app.org("Development Team").await;
    app.member(org, ada_id, Role::Owner).await;
    app.member(org, bob_id, Role::Member).await;
    let jira = app
        .integration(
            "jira",
            IntegrationOwner::Organization {
                organization_id: org,
                shared_with: SharedWith::AllMembers,
            },
            json!({"api_token": "j"}),
        )
        .await;
    let bobs_todoist = app.personal(bob_id, "todoist", json!({"t": "b"})).await;
    app.personal(ada_id, "notion", json!({"t": "n"})).await;
    let leases = app.token(ada_id).await;
    let (status, lease) = app.lease(&leases, &["notion"]).await;
    assert_eq!(status, 201, "{lease}");
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();
    let mut conformance = Conformance {
        document: document(&app).await,
        checked: 0,
    };
    let c = &app.client;
    let url = |path: &str| format!("{}{path}", app.base);

    // Signing in.
    let login = "/api/account/login";
    let sign_in_with = |body: Value| c.post(url(login)).json(&body);
    for (body, expected) in [
        (
            json!({"email": "ada@example.com", "password": PASSWORD}),
            200,
        ),
        (
            json!({"email": "ada@example.com", "password": "wrong"}),
            401,
        ),
        (json!({"email": "ada@example.com"}), 422),
        (json!({"email": "nobody@example.com", "password": "x"}), 401),
        (json!({"email": "nobody@example.com", "password": "x"}), 401),
        (json!({"email": "nobody@example.com", "password": "x"}), 429),
    ] {
        let (status, answer) = conformance
            .check(sign_in_with(body.clone()), "POST", login)
            .await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let not_json = c
        .post(url(login))
        .header(CONTENT_TYPE, "application/json")
        .body("{");
    assert_eq!(conformance.check(not_json, "POST", login).await.0, 400);
    let not_typed = c.post(url(login)).body("email=ada");
    assert_eq!(conformance.check(not_typed, "POST", login).await.0, 415);

    let ada = sign_in(&app, "ada@example.com").await;
    let bob = sign_in(&app, "bob@example.com").await;
    // A request of a signed-in person: the cookie, and the CSRF token unless `csrf` is false.
    let call = |who: &Session, method: Method, path: &str, csrf: bool| {
        let request = c.request(method, url(path)).header(COOKIE, &who.cookie);
        if csrf {
            request.header("x-csrf-token", &who.csrf)
        } else {
            request
        }
    };
    let get = |who: &Session, path: &str| call(who, Method::GET, path, false);

    // No session, or a bearer token instead of one.
    let me = "/api/account/me";
    assert_eq!(conformance.check(c.get(url(me)), "GET", me).await.0, 401);
    let bearer = c.get(url(me)).bearer_auth(&leases);
    assert_eq!(conformance.check(bearer, "GET", me).await.0, 401);
    let (status, profile) = conformance.check(get(&ada, me), "GET", me).await;
    assert_eq!(status, 200);
    assert_eq!(profile["organizations"][0]["role"], "owner");

    // Personal integrations.
    let mine = "/api/account/integrations";
    assert_eq!(conformance.check(get(&ada, mine), "GET", mine).await.0, 200);
    let add = |csrf: bool, body: Value| call(&ada, Method::POST, mine, csrf).json(&body);
    let good = json!({"service": "todoist", "credentials": {"access_token": "a"}});
    assert_eq!(
        conformance
            .check(add(false, good.clone()), "POST", mine)
            .await
            .0,
        419
    );
    let (status, added) = conformance.check(add(true, good), "POST", mine).await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_i64().unwrap();
    for body in [
        json!({"service": "Not A Service"}),
        json!({"credentials": []}),
    ] {
        assert_eq!(
            conformance.check(add(true, body), "POST", mine).await.0,
            422
        );
    }
    let malformed = call(&ada, Method::POST, mine, true)
        .header(CONTENT_TYPE, "application/json")
        .body("[1]");
    assert_eq!(conformance.check(malformed, "POST", mine).await.0, 400);

    let rotate = "/api/account/integrations/{id}/rotate";
    let one = "/api/account/integrations/{id}";
    let at = |id: &str, suffix: &str| format!("{mine}/{id}{suffix}");
    let credentials = json!({"credentials": {"access_token": "b"}});
    for (id, expected) in [(id.to_string(), 200), (bobs_todoist.to_string(), 404)] {
        let request = call(&ada, Method::POST, &at(&id, "/rotate"), true).json(&credentials);
        assert_eq!(conformance.check(request, "POST", rotate).await.0, expected);
    }
    for expected in [200, 422] {
        let request = call(&ada, Method::PATCH, &at(&id.to_string(), ""), true)
            .json(&json!({"status": "inactive"}));
        assert_eq!(conformance.check(request, "PATCH", one).await.0, expected);
    }
    for (id, expected) in [
        (id.to_string(), 204),
        (id.to_string(), 404),
        ("abc".to_owned(), 404),
        ("99999999999999999999".to_owned(), 404),
    ] {
        let request = call(&ada, Method::DELETE, &at(&id, ""), true);
        assert_eq!(
            conformance.check(request, "DELETE", one).await.0,
            expected,
            "{id}"
        );
    }

    // Tokens.
    let tokens = "/api/account/tokens";
    assert_eq!(
        conformance.check(get(&ada, tokens), "GET", tokens).await.0,
        200
    );
    let create = |body: Value| call(&ada, Method::POST, tokens, true).json(&body);
    let body = json!({"name": "laptop", "scope": "audit", "expires_in": 3600, "max_uses": 5});
    let (status, token) = conformance.check(create(body), "POST", tokens).await;
    assert_eq!(status, 201, "{token}");
    for body in [
        json!({}),
        json!({"name": "x", "expires_in": 0}),
        json!({"name": "x", "scope": "all"}),
    ] {
        assert_eq!(conformance.check(create(body), "POST", tokens).await.0, 422);
    }
    let token = format!("{tokens}/{}", token["id"]);
    for expected in [204, 422] {
        let request = call(&ada, Method::DELETE, &token, true);
        let answer = conformance
            .check(request, "DELETE", "/api/account/tokens/{id}")
            .await;
        assert_eq!(answer.0, expected, "{}", answer.1);
    }

    // Leases and activity.
    let own = "/api/account/leases";
    for (query, expected) in [("", 200), ("?status=active", 200), ("?status=gone", 422)] {
        let request = get(&ada, &format!("{own}{query}"));
        assert_eq!(conformance.check(request, "GET", own).await.0, expected);
    }
    let one_lease = "/api/account/leases/{lease_id}";
    for (id, expected) in [
        (lease_id.as_str(), 204),
        ("lse_nosuchlease", 404),
        ("%FF", 404),
    ] {
        let request = call(&ada, Method::DELETE, &format!("{own}/{id}"), true);
        assert_eq!(
            conformance.check(request, "DELETE", one_lease).await.0,
            expected,
            "{id}"
        );
    }
    let activity = "/api/account/activity";
    for (query, expected) in [("?limit=5", 200), ("?limit=0", 422)] {
        let request = get(&ada, &format!("{activity}{query}"));
        assert_eq!(
            conformance.check(request, "GET", activity).await.0,
            expected
        );
    }

    // Organizations: members, and the organization's integrations.
    let members = "/api/account/organizations/{id}/members";
    let members_of = |org: i64| format!("/api/account/organizations/{org}/members");
    for (org, expected) in [(org, 200), (999, 404)] {
        let request = get(&ada, &members_of(org));
        assert_eq!(conformance.check(request, "GET", members).await.0, expected);
    }
    for (who, body, expected) in [
        (
            &bob,
            json!({"email": "carol@example.com", "role": "member"}),
            403,
        ),
        (
            &ada,
            json!({"email": "nobody@example.com", "role": "member"}),
            422,
        ),
        (
            &ada,
            json!({"email": "carol@example.com", "role": "boss"}),
            422,
        ),
        (
            &ada,
            json!({"email": "carol@example.com", "role": "member"}),
            201,
        ),
    ] {
        let request = call(who, Method::POST, &members_of(org), true).json(&body);
        let answer = conformance.check(request, "POST", members).await;
        assert_eq!(answer.0, expected, "{body}: {}", answer.1);
    }
    let member = "/api/account/organizations/{id}/members/{user_id}";
    let member_at = |user: i64| format!("{}/{user}", members_of(org));
    for (who, user, expected) in [(&bob, carol, 403), (&ada, ada_id, 422), (&ada, carol, 200)] {
        let request =
            call(who, Method::PATCH, &member_at(user), true).json(&json!({"role": "admin"}));
        assert_eq!(
            conformance.check(request, "PATCH", member).await.0,
            expected
        );
    }
    for (user, expected) in [(ada_id, 422), (carol, 204), (carol, 404)] {
        let request = call(&ada, Method::DELETE, &member_at(user), true);
        assert_eq!(
            conformance.check(request, "DELETE", member).await.0,
            expected
        );
    }

    let shared = "/api/account/organizations/{id}/integrations";
    let shared_at = format!("/api/account/organizations/{org}/integrations");
    assert_eq!(
        conformance
            .check(get(&bob, &shared_at), "GET", shared)
            .await
            .0,
        200
    );
    let body = json!({"service": "sentry", "credentials": {"dsn": "d"}, "shared_with": [ada_id]});
    for (who, expected) in [(&bob, 403), (&ada, 201)] {
        let request = call(who, Method::POST, &shared_at, true).json(&body);
        assert_eq!(conformance.check(request, "POST", shared).await.0, expected);
    }
    let rotate_shared = "/api/account/organizations/{id}/integrations/{iid}/rotate";
    for (who, iid, expected) in [(&bob, jira, 403), (&ada, jira, 200), (&ada, 999, 404)] {
        let request = call(
            who,
            Method::POST,
            &format!("{shared_at}/{iid}/rotate"),
            true,
        )
        .json(&credentials);
        assert_eq!(
            conformance.check(request, "POST", rotate_shared).await.0,
            expected
        );
    }
    let shared_one = "/api/account/organizations/{id}/integrations/{iid}";
    let status = json!({"status": "expired"});
    for (who, expected) in [(&bob, 403), (&ada, 200)] {
        let request = call(who, Method::PATCH, &format!("{shared_at}/{jira}"), true).json(&status);
        assert_eq!(
            conformance.check(request, "PATCH", shared_one).await.0,
            expected
        );
    }

    // Signing out: the CSRF token is needed; afterwards the session is gone.
    let logout = "/api/account/logout";
    for (csrf, expected) in [(false, 419), (true, 204), (true, 401)] {
        let request = call(&bob, Method::POST, logout, csrf);
        assert_eq!(conformance.check(request, "POST", logout).await.0, expected);
    }
    assert!(conformance.checked >= 60, "{}", conformance.checked);
}

both_backends! {
    every_route => the_document_describes_every_route_the_server_serves,
    metrics_elsewhere => metrics_on_their_own_address_are_not_in_the_document,
    conformance => real_answers_conform_to_the_document,
    account_conformance => account_answers_conform_to_the_document,
}

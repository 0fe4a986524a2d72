//! The web console as a browser without JavaScript uses it: pages that need a session, forms
//! with the session's CSRF token, post/redirect/get, refusals shown beside their forms, and the
//! account API's rules (nobody reaches another person's objects). The real browser's walk is
//! `ci/browser`.

use crate::account::{replay_check_is_same, whole_log, with_password, PASSWORD};
use crate::helpers::{spawn_app, TestApp};
use mcp_events::{both_backends, Backend, Role};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

/// A browser's session with the console: its cookie, and the CSRF token its pages carry.
struct Browser {
    client: Client,
    base: String,
    cookie: Option<String>,
}

/// What a request answered: its status, where it redirects, and its page.
struct Page {
    status: StatusCode,
    location: Option<String>,
    html: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            base: app.base.clone(),
            cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        if status.is_success() || status.is_client_error() {
            let kind = response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(kind.starts_with("text/html"), "{status}: {kind}");
        }
        let html = response.text().await.unwrap();
        assert!(!html.contains("panicked"), "{html}");
        Page {
            status,
            location,
            html,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts a form; `_token` is added from the last page unless the fields carry one.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: &str) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if !fields.iter().any(|(name, _)| *name == "_token") {
            form.push(("_token", csrf));
        }
        let request = self.client.post(format!("{}{path}", self.base)).form(&form);
        self.send(request).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let fields = [("email", email), ("password", password)];
        let request = self
            .client
            .post(format!("{}/sign-in", self.base))
            .form(&fields);
        self.send(request).await
    }

    /// The CSRF token of the signed-in session, as the dashboard's forms carry it.
    async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        hidden_token(&page.html)
    }
}

fn hidden_token(html: &str) -> String {
    let at = html
        .find(r#"name="_token" value=""#)
        .expect("a form with _token")
        + 21;
    html[at..at + 64].to_owned()
}

async fn pages_need_a_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    for path in [
        "/",
        "/integrations",
        "/tokens",
        "/leases",
        "/organizations",
        "/organizations/1/members",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/sign-in"), "{path}");
    }
    let page = browser.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(r#"type="password""#));
    let css = reqwest::get(format!("{}/assets/console.css", app.base))
        .await
        .unwrap();
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    // A form posted without a session goes to the sign-in page, and changes nothing.
    let page = browser.post("/tokens", &[("name", "sneaky")], "0").await;
    assert_eq!(page.location.as_deref(), Some("/sign-in"));
}

async fn signing_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    with_password(&app, "ada@example.com").await;
    let mut browser = Browser::new(&app);

    for (email, password) in [
        ("ada@example.com", "wrong"),
        ("nobody@example.com", PASSWORD),
    ] {
        let page = browser.sign_in(email, password).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page
            .html
            .contains("These credentials do not match our records."));
        assert!(browser.cookie.is_none());
    }
    // A sign-in form posted from another site is refused, whatever the password.
    let forged = browser
        .client
        .post(format!("{}/sign-in", browser.base))
        .header("origin", "https://evil.example")
        .form(&[("email", "ada@example.com"), ("password", PASSWORD)]);
    let page = browser.send(forged).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(browser.cookie.is_none());
    let same = browser
        .client
        .post(format!("{}/sign-in", browser.base))
        .header("origin", browser.base.clone())
        .form(&[("email", "ada@example.com"), ("password", PASSWORD)]);
    let page = browser.send(same).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/"));
    let cookie = browser.cookie.clone().expect("a session cookie");
    let dashboard = browser.get("/").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard.html.contains("ada"), "{}", dashboard.html);
    assert!(
        !dashboard.html.contains(&cookie[13..]),
        "the cookie is never in a page"
    );
    let csrf = hidden_token(&dashboard.html);

    // Signing out needs the form's token.
    let page = browser.post("/sign-out", &[("_token", "nope")], "").await;
    assert_eq!(page.status.as_u16(), 419);
    let page = browser.post("/sign-out", &[], &csrf).await;
    assert_eq!(page.location.as_deref(), Some("/sign-in"));
    assert!(browser.cookie.is_none(), "the cookie is cleared");
    browser.cookie = Some(cookie);
    let page = browser.get("/").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/sign-in"),
        "the session ended"
    );
    replay_check_is_same(&app).await;
}

async fn a_person_connects_a_service_and_leases_it(backend: Backend) {
    let app = spawn_app(backend).await;
    with_password(&app, "ada@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ada@example.com", PASSWORD).await;
    let csrf = browser.csrf().await;

    // A refused form is shown again with its message, and nothing is added.
    let page = browser
        .post(
            "/integrations",
            &[
                ("service", "not a service!"),
                ("field_1", "access_token"),
                ("secret_1", "s3cret-value"),
            ],
            &csrf,
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains(r#"role="alert""#), "{}", page.html);
    assert!(
        !page.html.contains("s3cret-value"),
        "a secret is never sent back"
    );

    let page = browser
        .post(
            "/integrations",
            &[
                ("service", "todoist"),
                ("field_1", "access_token"),
                ("secret_1", "s3cret-value"),
            ],
            &csrf,
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(
        page.location.as_deref(),
        Some("/integrations?done=integration-added")
    );
    let list = browser.get("/integrations?done=integration-added").await;
    assert!(list.html.contains("Integration added."));
    assert!(list.html.contains("todoist"));
    assert!(!list.html.contains("s3cret-value"));

    // A token, shown once.
    let page = browser
        .post("/tokens", &[("name", "laptop"), ("scope", "leases")], &csrf)
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.html);
    let at = page.html.find(r#"id="new-token""#).unwrap();
    let value_at = page.html[at..].find("value=\"").unwrap() + at + 7;
    let end = page.html[value_at..].find('"').unwrap() + value_at;
    let token = page.html[value_at..end].to_owned();
    let again = browser.get("/tokens").await;
    assert!(again.html.contains("laptop"));
    assert!(!again.html.contains(&token), "the token is shown once");

    // The MCP server leases with it; the dashboard shows the lease, and revokes it.
    let (status, lease) = app.lease(&token, &["todoist"]).await;
    assert_eq!(status, 201, "{lease}");
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();
    let dashboard = browser.get("/").await;
    assert!(dashboard.html.contains(&lease_id));
    let page = browser
        .post(
            &format!("/leases/{lease_id}/revoke"),
            &[("back", "/")],
            &csrf,
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/?done=lease-revoked"));
    let (_, shown) = app
        .get(&format!("/api/mcp/credentials/lease/{lease_id}"), &token)
        .await;
    assert_eq!(shown["status"], "revoked", "{shown}");
    let revoked = browser.get("/leases?status=revoked").await;
    assert!(revoked.html.contains(&lease_id));

    // A redirect target outside the console is not followed.
    let (_, second) = app.lease(&token, &["todoist"]).await;
    let second = second["lease_id"].as_str().unwrap();
    let page = browser
        .post(
            &format!("/leases/{second}/revoke"),
            &[("back", "https://evil.example/")],
            &csrf,
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/leases?done=lease-revoked"));

    // A CSRF mismatch changes nothing.
    let page = browser
        .post("/tokens", &[("name", "forged"), ("_token", "x")], "")
        .await;
    assert_eq!(page.status.as_u16(), 419);
    assert!(!browser.get("/tokens").await.html.contains("forged"));

    assert!(!whole_log(&app).await.contains("s3cret-value"));
    replay_check_is_same(&app).await;
}

async fn nobody_reaches_another_persons_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = with_password(&app, "ada@example.com").await;
    with_password(&app, "bob@example.com").await;
    let integration = app
        .personal(
            ada,
            "todoist",
            serde_json::json!({"access_token": "ada-secret"}),
        )
        .await;
    let token = app.token(ada).await;
    let (_, lease) = app.lease(&token, &["todoist"]).await;
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();
    let organization = app.org("Ada's team").await;
    app.member(organization, ada, Role::Owner).await;

    let mut bob = Browser::new(&app);
    bob.sign_in("bob@example.com", PASSWORD).await;
    let csrf = bob.csrf().await;
    let attempts = [
        (
            format!("/integrations/{integration}/rotate"),
            vec![("field_1", "access_token"), ("secret_1", "bob")],
        ),
        (
            format!("/integrations/{integration}/status"),
            vec![("status", "inactive")],
        ),
        (format!("/integrations/{integration}/remove"), vec![]),
        (format!("/leases/{lease_id}/revoke"), vec![]),
        (
            format!("/organizations/{organization}/members"),
            vec![("email", "bob@example.com"), ("role", "owner")],
        ),
        (
            format!("/organizations/{organization}/integrations"),
            vec![
                ("service", "jira"),
                ("field_1", "api_token"),
                ("secret_1", "x"),
            ],
        ),
    ];
    for (path, fields) in attempts {
        let page = bob.post(&path, &fields, &csrf).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.html);
    }
    // An id that cannot be an id names nothing.
    for path in [
        "/tokens/abc/revoke",
        "/integrations/1e9/remove",
        "/organizations/x/members",
    ] {
        let page = bob.post(path, &[], &csrf).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    let page = bob
        .get(&format!("/organizations/{organization}/members"))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.html.contains("ada@example.com"));
    for path in ["/", "/integrations", "/leases", "/tokens"] {
        let page = bob.get(path).await;
        assert!(!page.html.contains(&lease_id), "{path}");
        assert!(
            !page.html.contains("todoist") || path == "/integrations",
            "{path}"
        );
    }
    let (_, shown) = app
        .get(&format!("/api/mcp/credentials/lease/{lease_id}"), &token)
        .await;
    assert_eq!(shown["status"], "active");
    replay_check_is_same(&app).await;
}

async fn owners_manage_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = with_password(&app, "ada@example.com").await;
    let bob = with_password(&app, "bob@example.com").await;
    let organization = app.org("Team").await;
    app.member(organization, ada, Role::Owner).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ada@example.com", PASSWORD).await;
    let csrf = browser.csrf().await;
    let members = format!("/organizations/{organization}/members");

    let page = browser
        .post(
            &members,
            &[("email", "nobody@example.com"), ("role", "member")],
            &csrf,
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    let page = browser
        .post(
            &members,
            &[("email", "bob@example.com"), ("role", "member")],
            &csrf,
        )
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some(format!("{members}?done=member-added").as_str())
    );
    let list = browser.get(&members).await;
    assert!(list.html.contains("bob@example.com"));
    let page = browser
        .post(
            &format!("{members}/{bob}/role"),
            &[("role", "admin")],
            &csrf,
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = browser
        .post(&format!("{members}/{bob}/remove"), &[], &csrf)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert!(!browser.get(&members).await.html.contains("bob@example.com"));
    replay_check_is_same(&app).await;
}

both_backends!(
    console_pages_need_a_session => pages_need_a_session,
    console_sign_in_and_out => signing_in_and_out,
    console_a_person_connects_a_service_and_leases_it => a_person_connects_a_service_and_leases_it,
    console_nobody_reaches_another_persons_objects => nobody_reaches_another_persons_objects,
    console_owners_manage_members => owners_manage_members,
);

//! Spawns the real server for one test and offers the arrange steps the tests share.

use mcp_events::testing::TestDatabase;
use mcp_events::{Backend, IntegrationOwner, IntegrationStatus, Metadata, Role, SharedWith};
use mcp_manager::app::Application;
use mcp_manager::clock::ManualClock;
use mcp_manager::commands::directory::*;
use mcp_manager::commands::integrations::*;
use mcp_manager::commands::tokens::*;
use mcp_manager::config::Settings;
use mcp_manager::ledger::Ledger;
use mcp_manager::tokens::expose;
use mcp_manager::validate::ServiceName;
use mcp_projections::rows::{AuditRow, TokenRow};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use std::sync::Arc;

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub ledger: Ledger,
    pub clock: ManualClock,
    _db: TestDatabase,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A fresh log signing key for one test's server.
pub fn signing_key() -> secrecy::SecretString {
    let (private, _) = mcp_manager::signing::generate(mcp_tlog::DEFAULT_ORIGIN).unwrap();
    private.to_string().into()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new(backend).await;
    let mut settings = Settings::for_database(db.url.clone());
    settings.encryption_key = Some(mcp_manager::crypto::EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(signing_key());
    settings.expiry_interval_seconds = 1;
    configure(&mut settings);
    let clock = ManualClock::default();
    let app = Application::build(
        settings,
        Arc::new(clock.clone()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("the application starts");
    let base = format!("http://{}", app.local_addr());
    let ledger = app.ledger().clone();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stop.await;
    }));
    TestApp {
        base,
        client: Client::new(),
        ledger,
        clock,
        _db: db,
        _shutdown: shutdown,
    }
}

fn meta() -> Metadata {
    Metadata::actor("test")
}

impl TestApp {
    pub async fn user(&self, email: &str) -> i64 {
        self.ledger
            .submit(RegisterUser {
                email: email.into(),
                name: format!("User {email}"),
                metadata: meta(),
            })
            .await
            .unwrap()
    }

    pub async fn token(&self, user_id: i64) -> String {
        self.token_with(user_id, None, None).await
    }

    pub async fn token_with(
        &self,
        user_id: i64,
        expires_in: Option<i64>,
        max_uses: Option<i64>,
    ) -> String {
        self.token_scoped(
            user_id,
            mcp_events::TokenScope::Leases,
            expires_in,
            max_uses,
        )
        .await
    }

    pub async fn token_scoped(
        &self,
        user_id: i64,
        scope: mcp_events::TokenScope,
        expires_in: Option<i64>,
        max_uses: Option<i64>,
    ) -> String {
        let issued = self
            .ledger
            .submit(IssueToken {
                user_id,
                scope,
                name: "test".into(),
                expires_in,
                max_uses,
                metadata: meta(),
            })
            .await
            .unwrap();
        expose(&issued.token).to_owned()
    }

    pub async fn org(&self, name: &str) -> i64 {
        self.ledger
            .submit(CreateOrganization {
                name: name.into(),
                metadata: meta(),
            })
            .await
            .unwrap()
    }

    pub async fn member(&self, organization_id: i64, user_id: i64, role: Role) {
        self.ledger
            .submit(AddMember {
                organization_id,
                user_id,
                role,
                metadata: meta(),
            })
            .await
            .unwrap();
    }

    pub async fn integration(
        &self,
        service: &str,
        owner: IntegrationOwner,
        credentials: Value,
    ) -> i64 {
        self.ledger
            .submit(AddIntegration {
                service: ServiceName::parse(service).unwrap(),
                owner,
                status: IntegrationStatus::Active,
                credentials: credentials.as_object().unwrap().clone(),
                metadata: meta(),
            })
            .await
            .unwrap()
    }

    pub async fn personal(&self, user_id: i64, service: &str, credentials: Value) -> i64 {
        self.integration(service, IntegrationOwner::User { user_id }, credentials)
            .await
    }

    pub async fn shared(
        &self,
        organization_id: i64,
        service: &str,
        shared_with: SharedWith,
        credentials: Value,
    ) -> i64 {
        self.integration(
            service,
            IntegrationOwner::Organization {
                organization_id,
                shared_with,
            },
            credentials,
        )
        .await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        into_parts(self.request(Method::GET, path, Some(token), None).await).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        into_parts(
            self.request(Method::POST, path, Some(token), Some(body))
                .await,
        )
        .await
    }

    pub async fn lease(&self, token: &str, services: &[&str]) -> (u16, Value) {
        self.post(
            "/api/mcp/credentials/lease",
            token,
            serde_json::json!({ "services": services, "server_id": "test-server" }),
        )
        .await
    }

    pub async fn audit(&self, user_id: Option<i64>, action: &str) -> Vec<AuditRow> {
        let mut conn = self
            .ledger
            .store()
            .database()
            .pool()
            .acquire()
            .await
            .unwrap();
        mcp_projections::queries::audit(&mut conn, user_id, Some(action), 1000)
            .await
            .unwrap()
    }

    pub async fn token_row(&self, token_id: i64) -> TokenRow {
        let mut conn = self
            .ledger
            .store()
            .database()
            .pool()
            .acquire()
            .await
            .unwrap();
        mcp_projections::queries::token(&mut conn, token_id)
            .await
            .unwrap()
            .unwrap()
    }
}

pub async fn into_parts(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

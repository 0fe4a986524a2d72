//! The web console's figure: dashboard page loads for people with `leases` active leases each.
//!
//! The real server on a loopback port; `people` users, each with a password, a personal
//! integration and `leases` active leases (made through the MCP API with their own token); each
//! signs in through the account API, then `connections` clients load their dashboards (`GET /`:
//! the session checked, the services they can lease, their active leases with the time left,
//! their recent activity, rendered to HTML).

use crate::http::{phase, Phase};
use mcp_events::{IntegrationOwner, IntegrationStatus, Metadata};
use mcp_manager::app::Application;
use mcp_manager::clock::SystemClock;
use mcp_manager::commands::accounts::SetPassword;
use mcp_manager::commands::integrations::AddIntegration;
use mcp_manager::config::Settings;
use mcp_manager::crypto::EncryptionKey;
use mcp_manager::tokens::expose;
use mcp_manager::validate::ServiceName;
use serde_json::{json, Value};
use std::sync::Arc;

const PASSWORD: &str = "bench password";

/// `requests` dashboard loads over `connections` clients, for `people` users with `leases`
/// active leases each.
pub async fn dashboard(
    url: &str,
    people: usize,
    leases: usize,
    requests: usize,
    connections: usize,
) -> anyhow::Result<Phase> {
    let mut settings = Settings::for_database(url);
    settings.encryption_key = Some(EncryptionKey::generate_base64().into());
    settings.log_signing_key = Some(crate::http::signing_key());
    let app = Application::build(settings, Arc::new(SystemClock), "127.0.0.1:0".parse()?).await?;
    let base: Arc<str> = format!("http://{}", app.local_addr()).into();
    let ledger = app.ledger().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let meta = || Metadata::actor("bench");
    let phc = mcp_manager::accounts::password::hash(PASSWORD.to_owned().into()).await?;

    let mut cookies = Vec::with_capacity(people);
    for person in 0..people {
        let email = format!("person{person}@example.com");
        let (user_id, issued) = crate::person(&ledger, &email, &["todoist"]).await?;
        ledger
            .submit(SetPassword {
                user_id,
                phc: phc.clone(),
                metadata: meta(),
            })
            .await?;
        ledger
            .submit(AddIntegration {
                service: ServiceName::parse("todoist").map_err(anyhow::Error::msg)?,
                owner: IntegrationOwner::User { user_id },
                status: IntegrationStatus::Active,
                credentials: json!({"access_token": "bench"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                metadata: meta(),
            })
            .await?;
        let token = expose(&issued.token);
        for n in 0..leases {
            let response = client
                .post(format!("{base}/api/mcp/credentials/lease"))
                .bearer_auth(token)
                .json(&json!({"services": ["todoist"], "server_id": format!("bench-{n}")}))
                .send()
                .await?;
            anyhow::ensure!(response.status() == 201, "lease: {}", response.status());
        }
        let login = client
            .post(format!("{base}/api/account/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(login.status() == 200, "sign-in: {}", login.status());
        let cookie = login.headers()[reqwest::header::SET_COOKIE].to_str()?;
        cookies.push(cookie.split(';').next().unwrap_or_default().to_owned());
    }

    let cookies: Arc<Vec<String>> = Arc::new(cookies);
    let workers = connections.max(1);
    let per_worker = (requests / workers).max(1);
    let label = format!("dashboard, {people} people x {leases} leases");
    let (figures, _) = phase(&label, workers, per_worker, move |worker, n| {
        let (client, base, cookies) = (client.clone(), base.clone(), cookies.clone());
        async move {
            let cookie = &cookies[(worker + n) % cookies.len()];
            let response = client
                .get(format!("{base}/"))
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "GET / answered {}",
                response.status()
            );
            let page = response.text().await?;
            let rows = page.matches("/revoke\"").count();
            anyhow::ensure!(rows >= leases, "the dashboard lists {rows} leases");
            Ok(Value::Null)
        }
    })
    .await?;

    let _ = stop.send(());
    server.await??;
    ledger.store().database().close().await;
    Ok(figures)
}

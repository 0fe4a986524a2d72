//! A flood of refused requests cannot grow the log at will: past a small budget per client
//! address and token, certain refusals are turned away with 429 and recorded as one event per
//! window with their count; accepted requests are never limited.

use crate::helpers::{into_parts, spawn_app_with, TestApp};
use mcp_events::{both_backends, Backend};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

async fn flooded_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |settings| {
        settings.auth_failure_burst = 20;
        settings.auth_failures_per_minute = 10;
        settings.auth_failure_window_seconds = 1;
    })
    .await
}

/// Sends `total` GET /me from `workers` tasks, with the token `token(i)`; counts the statuses.
async fn flood(
    app: &TestApp,
    total: usize,
    token: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
) -> (usize, usize) {
    let token = std::sync::Arc::new(token);
    let workers = 32;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (client, url, token) = (
                app.client.clone(),
                format!("{}/api/mcp/me", app.base),
                token.clone(),
            );
            tokio::spawn(async move {
                let (mut refused, mut limited) = (0, 0);
                for n in (w..total).step_by(workers) {
                    let mut request = client.get(&url);
                    if let Some(token) = token(n) {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.unwrap();
                    match response.status() {
                        StatusCode::UNAUTHORIZED => refused += 1,
                        StatusCode::TOO_MANY_REQUESTS => {
                            let wait = response.headers()["retry-after"].to_str().unwrap();
                            assert!(wait.parse::<u64>().unwrap() >= 1);
                            let body: Value = response.json().await.unwrap();
                            assert_eq!(body["error"], "too_many_attempts");
                            limited += 1;
                        }
                        other => panic!("a refused request got {other}"),
                    }
                }
                (refused, limited)
            })
        })
        .collect();
    let mut totals = (0, 0);
    for task in tasks {
        let (refused, limited) = task.await.unwrap();
        totals.0 += refused;
        totals.1 += limited;
    }
    totals
}

/// Every refusal is accounted for in the audit: one record each, or one per kind and window
/// with its count. Waits for the window's record.
async fn recorded_refusals(app: &TestApp, expected: u64) -> (u64, usize) {
    for _ in 0..100 {
        let records = app.audit(None, "mcp_auth_failed").await;
        let counted: u64 = records
            .iter()
            .map(|r| {
                let details: Value = serde_json::from_str(&r.details).unwrap();
                details["count"].as_u64().unwrap_or(1)
            })
            .sum();
        if counted >= expected {
            return (counted, records.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the refusals turned away were never recorded");
}

async fn a_flood_with_a_bad_token_writes_a_few_events(backend: Backend) {
    let app = flooded_app(backend).await;
    let user = app.user("ada@example.com").await;
    let good = app.token(user).await;
    let head = app.ledger.store().head().await.unwrap().0;

    // The flood, and a client with a good token from the same address meanwhile.
    let good_requests = {
        let (client, url, good) = (
            app.client.clone(),
            format!("{}/api/mcp/me", app.base),
            good.clone(),
        );
        tokio::spawn(async move {
            for _ in 0..200 {
                let (status, _) =
                    into_parts(client.get(&url).bearer_auth(&good).send().await.unwrap()).await;
                assert_eq!(status, 200, "an accepted request was limited");
            }
        })
    };
    let (refused, limited) = flood(&app, 20_000, |_| Some("mcp_attacker_0000".to_owned())).await;
    good_requests.await.unwrap();
    assert_eq!(refused + limited, 20_000);
    assert!(limited >= 19_000, "only {limited} turned away");

    let (counted, records) = recorded_refusals(&app, 20_000).await;
    assert_eq!(counted, 20_000, "every refusal is counted once");
    assert!(records <= 300, "{records} audit records for one flood");
    let events = app.ledger.store().head().await.unwrap().0 - head;
    // 200 good uses, and the refusals' few records.
    assert!(events <= 200 + 300, "{events} events");
    assert_eq!(app.token_row(1).await.usage_count, 200);
}

async fn rotating_tokens_and_missing_headers_are_bounded_too(backend: Backend) {
    let app = flooded_app(backend).await;
    let head = app.ledger.store().head().await.unwrap().0;
    let (refused, limited) = flood(&app, 4_000, |n| match n % 2 {
        0 => None,
        _ => Some(format!("mcp_random_{n:064}")),
    })
    .await;
    assert!(
        limited >= 3_500,
        "only {limited} of {} turned away",
        refused + limited
    );
    let (counted, records) = recorded_refusals(&app, 4_000).await;
    assert_eq!(counted, 4_000);
    assert!(records <= 300, "{records}");
    assert!(app.ledger.store().head().await.unwrap().0 - head <= 300);
}

async fn a_revoked_tokens_flood_is_recorded_against_its_token(backend: Backend) {
    let app = flooded_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    app.ledger
        .submit(mcp_manager::commands::tokens::RevokeToken {
            token_id: 1,
            metadata: mcp_events::Metadata::actor("test"),
        })
        .await
        .unwrap();
    let (_, limited) = flood(&app, 2_000, move |_| Some(token.clone())).await;
    assert!(limited >= 1_900);
    recorded_refusals(&app, 2_000).await;
    let summaries: Vec<_> = app
        .audit(Some(user), "mcp_auth_failed")
        .await
        .into_iter()
        .filter(|r| r.details.contains("\"count\""))
        .collect();
    assert!(
        !summaries.is_empty(),
        "the count is recorded against the token's owner"
    );
    assert!(summaries
        .iter()
        .all(|r| r.entity_id == "1" && r.details.contains("Token is inactive")));
}

both_backends! {
    bad_token_flood => a_flood_with_a_bad_token_writes_a_few_events,
    rotating_tokens => rotating_tokens_and_missing_headers_are_bounded_too,
    revoked_token_flood => a_revoked_tokens_flood_is_recorded_against_its_token,
}

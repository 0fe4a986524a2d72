//! The server as a process: killed with SIGKILL while clients create leases, it loses no
//! acknowledged lease, and the log still verifies and replays; SIGTERM lets in-flight requests
//! finish.

mod support;

use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend};
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{cli_succeeds, free_port, seed, start};

async fn acknowledged_leases_survive_sigkill(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let token = seed(&db.url);
    let port = free_port();
    let mut server = start(&db.url, port).await;
    let url = format!("http://127.0.0.1:{port}/api/mcp/credentials/lease");

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (url, token, acknowledged) = (url.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for n in 0..10_000 {
                    let body =
                        json!({"services": ["todoist", "jira"], "server_id": format!("c{i}-{n}")});
                    let Ok(response) = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != 201 {
                        return;
                    }
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(body["lease_id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 50);

    let mut server = start(&db.url, port).await;
    let client = reqwest::Client::new();
    for lease_id in &acknowledged {
        let response = client
            .get(format!("{url}/{lease_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged lease {lease_id} was lost"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    cli_succeeds(&db.url, &["verify"]);
    cli_succeeds(&db.url, &["replay", "--check"]);
}

async fn sigterm_lets_in_flight_requests_finish(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let token = seed(&db.url);
    let port = free_port();
    let server = start(&db.url, port).await;
    let url = format!("http://127.0.0.1:{port}/api/mcp/credentials/lease");
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let body = json!({"services": ["todoist"], "server_id": format!("t{i}")});
                reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let terminated = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    for request in requests {
        // A request either completed or was never accepted: none is cut off half-way.
        if let Ok(response) = request.await.unwrap() {
            assert_eq!(response.status(), 201);
        }
    }
    let status = wait_for_exit(server).await;
    assert!(
        status.success(),
        "the server did not exit cleanly on SIGTERM: {status:?}"
    );
    cli_succeeds(&db.url, &["verify"]);
    cli_succeeds(&db.url, &["replay", "--check"]);
}

async fn wait_for_exit(mut child: Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("the server did not stop within 10 s of SIGTERM");
}

both_backends! {
    sigkill => acknowledged_leases_survive_sigkill,
    sigterm => sigterm_lets_in_flight_requests_finish,
}

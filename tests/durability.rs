//! The server as a process: killed with SIGKILL while clients create leases, it loses no
//! acknowledged lease, and the log still verifies and replays; SIGTERM lets in-flight requests
//! finish.

use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const BIN: &str = env!("CARGO_BIN_EXE_mcp-manager");

fn command(db: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("MCP_ENCRYPTION_KEY", KEY)
        .env("RUST_LOG", "warn");
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(db: &TestDatabase, port: u16) -> Child {
    let bind = format!("127.0.0.1:{port}");
    let mut child = command(db, &["serve", "--bind", &bind])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://{bind}/api/mcp/me"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not start on {bind}");
}

fn seed(db: &TestDatabase) -> String {
    let output = command(db, &["seed"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("MCP_TOKEN="))
        .expect("seed prints MCP_TOKEN")
        .to_owned()
}

fn cli_succeeds(db: &TestDatabase, args: &[&str]) {
    let output = command(db, args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn acknowledged_leases_survive_sigkill(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let token = seed(&db);
    let port = free_port();
    let mut server = start(&db, port).await;
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

    let mut server = start(&db, port).await;
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
    cli_succeeds(&db, &["verify"]);
    cli_succeeds(&db, &["replay", "--check"]);
}

async fn sigterm_lets_in_flight_requests_finish(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let token = seed(&db);
    let port = free_port();
    let server = start(&db, port).await;
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
    cli_succeeds(&db, &["verify"]);
    cli_succeeds(&db, &["replay", "--check"]);
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

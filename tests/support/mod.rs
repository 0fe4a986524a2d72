//! Running the real binary as a server process, for tests that treat it as operators do.
#![allow(dead_code)] // each test crate uses its own part

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// A fixed log signing key (`log-key generate`); real deployments generate their own.
pub const SIGNING_KEY: &str =
    "PRIVATE+KEY+mcp-manager.local/ledger+a51bc5e6+AScXcDa48yRxs22Xbsbdg/kILv12g9ESREU7au3zy9TC";
pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-manager");

pub fn command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("MCP_ENCRYPTION_KEY", KEY)
        .env("MCP_LOG_SIGNING_KEY", SIGNING_KEY)
        .env("RUST_LOG", "warn");
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start(url: &str, port: u16) -> Child {
    start_with(url, port, &[]).await
}

/// `start`, with `env` over the defaults (another encryption key, say).
pub async fn start_with(url: &str, port: u16, env: &[(&str, &str)]) -> Child {
    let bind = format!("127.0.0.1:{port}");
    let mut child = command(url, &["serve", "--bind", &bind])
        .envs(env.iter().copied())
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

pub fn seed(url: &str) -> String {
    let output = command(url, &["seed"]).output().unwrap();
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

pub fn cli_succeeds(url: &str, args: &[&str]) {
    let output = command(url, args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

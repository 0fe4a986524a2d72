//! Runs the real `mcp-manager` binary against a fresh database, and a real server beside it.
#![allow(dead_code)] // each test module uses its own part

use mcp_events::testing::TestDatabase;
use mcp_events::Backend;
use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fixed test key (base64 of 32 bytes); real deployments generate their own.
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another key, for rotations and wrong-key refusals.
pub const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
/// A fixed log signing key (`log-key generate`); real deployments generate their own.
pub const SIGNING_KEY: &str =
    "PRIVATE+KEY+mcp-manager.local/ledger+a51bc5e6+AScXcDa48yRxs22Xbsbdg/kILv12g9ESREU7au3zy9TC";
pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-manager");

/// Settings a test must never inherit from the environment it runs in.
const SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "MCP_ENCRYPTION_KEY",
    "MCP_ENCRYPTION_KEY_OLD",
    "MCP_LOG_SIGNING_KEY",
    "MCP_LOG_ORIGIN",
    "MCP_CHECKPOINT_INTERVAL",
    "MCP_LEASE_DEFAULT_TTL",
    "MCP_LEASE_MIN_TTL",
    "MCP_LEASE_MAX_TTL",
    "MCP_MAX_RENEWALS",
    "MCP_EXPIRY_INTERVAL",
    "MCP_WRITER_MEMORY",
    "RUST_LOG",
];

pub fn key_id(key: &str) -> String {
    mcp_manager::crypto::EncryptionKey::from_base64(key)
        .unwrap()
        .key_id()
        .to_owned()
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", self.stdout))
    }

    /// A refusal: non-zero exit, exactly one line on stderr, nothing on stdout.
    pub fn refusal(&self) -> &str {
        assert_ne!(self.code, 0, "expected a failure, got: {}", self.stdout);
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "stderr: {:?}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self.stderr.trim_end()
    }

    /// A refusal with this exit code.
    pub fn refused_with(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "stderr: {}", self.stderr);
        self.refusal()
    }
}

/// The binary with none of the settings of the surrounding environment, in `dir`.
pub fn command(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for name in SETTINGS {
        command.env_remove(name);
    }
    command
}

pub fn output(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with no database configured, in a directory of its own.
pub fn bare(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    output(command(dir.path(), args), None)
}

pub struct Cli {
    pub db: TestDatabase,
    dir: tempfile::TempDir,
}

impl Cli {
    pub async fn new(backend: Backend) -> Self {
        Self {
            db: TestDatabase::new(backend).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The binary on this test's database with `KEY` and `env` set (an empty value unsets).
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = command(self.dir.path(), args);
        command
            .env("DATABASE_URL", &self.db.url)
            .env("MCP_ENCRYPTION_KEY", KEY)
            .env("MCP_LOG_SIGNING_KEY", SIGNING_KEY);
        for (name, value) in env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        command
    }

    /// A file in this test's working directory (where relative paths of commands land).
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], None)
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        output(self.command(args, env), stdin)
    }

    pub fn ok(&self, args: &[&str]) -> Value {
        self.run(args).json()
    }

    pub async fn event_count(&self) -> i64 {
        self.scalar("select count(*) from events").await
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let db = self.db.connect().await;
        let value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.close().await;
        value
    }

    pub async fn all_event_text(&self) -> String {
        let db = self.db.connect().await;
        let rows: Vec<(String, String)> =
            sqlx::query_as("select payload, metadata from events order by position")
                .fetch_all(db.pool())
                .await
                .unwrap();
        db.close().await;
        rows.into_iter()
            .map(|(p, m)| format!("{p}\n{m}\n"))
            .collect()
    }

    /// The server on a free port, with `env` over this test's settings; it is stopped when the
    /// returned value is dropped.
    pub async fn serve(&self, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        // The log goes to a file: a pipe nobody reads would stall a chatty server.
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = self
            .command(&["serve", "--bind", &bind], env)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap();
        let base = format!("http://{bind}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!("the server exited ({status}): {stderr}");
            }
            if client
                .get(format!("{base}/api/mcp/me"))
                .send()
                .await
                .is_ok()
            {
                return Server {
                    child,
                    base,
                    client,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not start on {bind}");
    }

    /// `serve`, expected to refuse to start: its output once it exits.
    pub fn serve_refused(&self, env: &[(&str, &str)]) -> Output {
        let mut child = self
            .command(&["serve", "--bind", "127.0.0.1:0"], env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server started although it should have refused");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A running server process.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Server {
    /// `POST /api/mcp/credentials/lease`: status and body.
    pub async fn lease(&self, token: &str, services: &[&str], server_id: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/mcp/credentials/lease", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({ "services": services, "server_id": server_id }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn renew(&self, token: &str, lease_id: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!(
                "{}/api/mcp/credentials/lease/{lease_id}/renew",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The verifier key of `SIGNING_KEY`, as `/api/audit/key` serves it.
pub fn vkey() -> String {
    mcp_tlog::Signer::from_private_key(SIGNING_KEY)
        .unwrap()
        .verifier()
        .vkey()
}

/// The Python interpreter of a venv holding `cryptography` (made by tools/venv.sh), for
/// tools/verify_ledger.py.
pub fn verifier_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/venv.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script} (bash is needed): {e}"));
    assert!(
        output.status.success(),
        "the auditors' Python verifier needs `cryptography`, and {script} could not provide it \
         (python3 with venv, and PyPI, are needed):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `python3 tools/verify_ledger.py ARGS`: exit code and its one line (stdout or stderr).
pub fn python_verify(args: &[&str]) -> (i32, String) {
    let output = Command::new(verifier_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/verify_ledger.py"
        ))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text.trim().to_owned())
}

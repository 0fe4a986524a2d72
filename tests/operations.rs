//! The server as an operator runs it (the real binary): its metrics read by a real Prometheus
//! parser, metrics on their own address, log formats, an invalid `RUST_LOG`, bind failures and
//! host names, the projections' first build logged as news, not as a warning, and no secret of
//! a person's session in any log line or event.

mod support;

use mcp_events::testing::TestDatabase;
use mcp_events::{both_backends, Backend};
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{command, free_port, seed};

/// A running `mcp-manager serve`, its stderr going to a file.
struct Server {
    child: Child,
    base: String,
    stderr: tempfile::NamedTempFile,
}

impl Server {
    /// Starts `serve` on a free port with extra arguments and environment, and waits until it
    /// answers `/healthz`.
    async fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut all = vec!["serve", "--bind", &bind];
        all.extend_from_slice(args);
        let mut serve = command(url, &all);
        for (name, value) in env {
            serve.env(name, value);
        }
        let child = serve
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            base: format!("http://{bind}"),
            stderr,
        };
        server
            .wait_until_up(&format!("{}/healthz", server.base))
            .await;
        server
    }

    async fn wait_until_up(&mut self, url: &str) {
        for _ in 0..200 {
            if reqwest::get(url).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited ({status}): {}", self.stderr_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not answer {url}: {}", self.stderr_text());
    }

    fn stderr_text(&self) -> String {
        let mut text = String::new();
        self.stderr
            .reopen()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// SIGTERM, wait for the exit, and return what it logged.
    async fn stop(mut self) -> String {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        for _ in 0..200 {
            if self.child.try_wait().unwrap().is_some() {
                return self.stderr_text();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        panic!("the server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter of a venv holding `prometheus_client` (made by ci/metrics/venv.sh).
fn prometheus_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/ci/metrics/venv.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {script} (bash is needed to check the metrics format): {e}")
        });
    assert!(
        output.status.success(),
        "the metrics format is checked with Python's prometheus_client, and {script} could \
         not provide it (python3 with venv, and PyPI, are needed):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Parses Prometheus text with `prometheus_client.parser.text_string_to_metric_families`.
fn parse_with_prometheus(text: &str) -> Vec<Value> {
    use std::io::Write;
    let mut parser = Command::new(prometheus_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/metrics/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = parser.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no metric family {name}"))
}

/// The value of the first sample named `name` whose labels include `labels`.
fn sample(families: &[Value], name: &str, labels: Value) -> f64 {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .find(|s| {
            s["name"] == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s["labels"][k] == v)
        })
        .unwrap_or_else(|| panic!("no sample {name} with {labels}"))["value"]
        .as_f64()
        .unwrap()
}

/// `/metrics` of the real binary, parsed by the official Prometheus Python parser: every
/// family this server documents, with the right type and plausible values.
async fn metrics_parse_with_the_prometheus_parser(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    // A new database: the server builds the projections first (and times it).
    let server = Server::start(&db.url, &[], &[]).await;
    let token = seed(&db.url);
    let client = reqwest::Client::new();
    let lease = client
        .post(format!("{}/api/mcp/credentials/lease", server.base))
        .bearer_auth(&token)
        .json(&json!({"services": ["todoist"], "server_id": "metrics"}))
        .send()
        .await
        .unwrap();
    assert_eq!(lease.status(), 201);
    let refused = client
        .get(format!("{}/api/mcp/me", server.base))
        .bearer_auth("mcp_wrong_token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = parse_with_prometheus(&text);
    for (name, kind) in [
        ("mcp_build_info", "gauge"),
        ("mcp_http_requests", "counter"),
        ("mcp_http_request_duration_seconds", "histogram"),
        ("mcp_http_connections_open", "gauge"),
        ("mcp_writer_batches", "counter"),
        ("mcp_writer_batch_size", "histogram"),
        ("mcp_writer_commit_duration_seconds", "histogram"),
        ("mcp_events_appended", "counter"),
        ("mcp_leases_active", "gauge"),
        ("mcp_auth_failures", "counter"),
        ("mcp_expirer_runs", "counter"),
        ("mcp_expirer_lag_seconds", "gauge"),
        ("mcp_projections_rebuild_duration_seconds", "histogram"),
    ] {
        assert_eq!(family(&families, name)["type"], kind, "{name}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&families, "mcp_build_info", json!({"version": version})),
        1.0
    );
    let created = json!({"method": "POST", "route": "/api/mcp/credentials/lease", "status": "201"});
    assert_eq!(
        sample(&families, "mcp_http_requests_total", created.clone()),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "mcp_http_request_duration_seconds_count",
            created
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "mcp_auth_failures_total",
            json!({"reason": "invalid"})
        ),
        1.0
    );
    assert!(
        sample(
            &families,
            "mcp_events_appended_total",
            json!({"type": "lease_created"})
        ) >= 1.0
    );
    assert!(
        sample(
            &families,
            "mcp_writer_batches_total",
            json!({"outcome": "committed"})
        ) >= 1.0
    );
    // The seed's three leases and this one.
    assert_eq!(sample(&families, "mcp_leases_active", json!({})), 4.0);
    assert_eq!(sample(&families, "mcp_expirer_lag_seconds", json!({})), 0.0);
    assert!(
        sample(
            &families,
            "mcp_expirer_runs_total",
            json!({"outcome": "ok"})
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &families,
            "mcp_projections_rebuild_duration_seconds_count",
            json!({})
        ),
        1.0
    );
    server.stop().await;
}

/// With `--metrics-bind`, `/metrics` is served there and only there.
async fn metrics_on_their_own_address(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let metrics_port = free_port();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let mut server = Server::start(&db.url, &[], &[("MCP_METRICS_BIND", &metrics_bind)]).await;
    let metrics_url = format!("http://{metrics_bind}/metrics");
    server.wait_until_up(&metrics_url).await;
    let response = reqwest::get(&metrics_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("mcp_build_info"));
    let api = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    let other = reqwest::get(format!("http://{metrics_bind}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    server.stop().await;
}

/// `--log-format json`: every line is a JSON object; a request's line has its status, its
/// latency in whole microseconds and its request id.
async fn json_logs_are_one_object_per_line(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let server = Server::start(&db.url, &["--log-format", "json"], &[("RUST_LOG", "info")]).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/mcp/me", server.base))
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let logs = server.stop().await;
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
        })
        .collect();
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["span"]["request_id"] == "trace-me-1")
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["status"], 401);
    assert!(finished["latency_us"].is_u64(), "{finished}");
    assert!(lines
        .iter()
        .any(|l| l["message"] == "MCP Manager listening"));
}

/// Text logs (the default) carry no colour codes when stderr is not a terminal, and latencies
/// are whole microseconds.
async fn text_logs_have_no_colour_codes_off_a_terminal(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let server = Server::start(&db.url, &[], &[("RUST_LOG", "info")]).await;
    reqwest::get(format!("{}/api/mcp/me", server.base))
        .await
        .unwrap();
    let logs = server.stop().await;
    assert!(!logs.contains('\u{1b}'), "{logs:?}");
    let line = logs
        .lines()
        .find(|l| l.contains("request finished"))
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    let latency = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("latency_us="))
        .unwrap_or_else(|| panic!("no latency in {line}"));
    assert!(latency.parse::<u64>().is_ok(), "{line}");
}

/// An invalid `RUST_LOG` is reported once, and the default filter used.
async fn an_invalid_rust_log_is_reported(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let output = command(
        &db.url,
        &["user", "add", "--email", "a@b.io", "--name", "A"],
    )
    .env("RUST_LOG", "mcp_manager=loud")
    .output()
    .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("RUST_LOG is invalid"))
        .collect();
    assert_eq!(reports.len(), 1, "{stderr}");
    assert!(reports[0].contains("WARN"), "{stderr}");
}

/// The projections' first build on a new database is news (info), not a warning.
async fn the_first_build_of_the_projections_is_not_a_warning(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let run = |email: &str| {
        let output = command(&db.url, &["user", "add", "--email", email, "--name", "A"])
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        String::from_utf8(output.stderr).unwrap()
    };
    let first = run("a@b.io");
    assert!(
        first.contains("building the projections for the first time on this database"),
        "{first}"
    );
    assert!(!first.contains("WARN"), "{first}");
    let second = run("c@d.io");
    assert!(!second.contains("building the projections"), "{second}");
}

/// A port already taken: one line naming the address and the operating system's reason.
#[tokio::test]
async fn a_bind_failure_says_why() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut child = command(&db.url, &["serve", "--bind", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("serve did not fail on a port in use");
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");

    let output = command(&db.url, &["serve", "--bind", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("is not host:port"), "{stderr}");
}

/// `--bind localhost:PORT` resolves the name.
#[tokio::test]
async fn a_host_name_binds() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let port = free_port();
    let bind = format!("localhost:{port}");
    let mut child = command(&db.url, &["serve", "--bind", &bind])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answered = false;
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("http://{bind}/healthz")).await {
            answered = response.status() == 200;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "nothing answered on {bind}");
}

/// Signing in (to the API and the console), adding credentials, creating a token and leasing
/// with it, at the most verbose level of our own code: no password, session cookie, CSRF token,
/// bearer token or credential value reaches a log line, or any event of the exported log.
async fn no_secret_reaches_a_log_line_or_an_event(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let seed_token = seed(&db.url);
    let password = "Correct-Horse-Log-Probe-42";
    let wrong = "Wrong-Password-Probe-17";
    let mut set = command(
        &db.url,
        &["user", "set-password", "--id", "1", "--password-stdin"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    use std::io::Write;
    writeln!(set.stdin.take().unwrap(), "{password}").unwrap();
    assert!(set.wait().unwrap().success());
    let server = Server::start(&db.url, &[], &[("RUST_LOG", "debug,mcp_manager=trace")]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = &server.base;
    let email = "test@mcp-manager.local";
    let mut secrets = vec![
        password.to_owned(),
        wrong.to_owned(),
        seed_token.clone(),
        "api-credential-probe-9".to_owned(),
        "console-credential-probe-5".to_owned(),
    ];

    let refused = client
        .post(format!("{base}/api/account/login"))
        .json(&json!({"email": email, "password": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let login = client
        .post(format!("{base}/api/account/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.extend([cookie["mcp_session=".len()..].to_owned(), csrf.clone()]);
    let account = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
    };
    let added = account(reqwest::Method::POST, "/api/account/integrations")
        .json(&json!({"service": "probe", "credentials": {"api_key": "api-credential-probe-9"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let token: Value = account(reqwest::Method::POST, "/api/account/tokens")
        .json(&json!({"name": "probe"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let lease = client
        .post(format!("{base}/api/mcp/credentials/lease"))
        .bearer_auth(&token)
        .json(&json!({"services": ["probe"], "server_id": "probe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(lease.status(), 201);
    let lease_text = lease.text().await.unwrap();
    assert!(
        lease_text.contains("api-credential-probe-9"),
        "{lease_text}"
    );

    // The console: a form sign-in, and credentials typed into its form.
    let signed_in = client
        .post(format!("{base}/sign-in"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let console = signed_in.headers()["set-cookie"].to_str().unwrap();
    let console = console.split(';').next().unwrap().to_owned();
    let console_csrf = {
        let page = client
            .get(format!("{base}/"))
            .header("cookie", &console)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page.find(r#"name="_token" value=""#).unwrap() + 21;
        page[at..at + 64].to_owned()
    };
    secrets.extend([
        console["mcp_session=".len()..].to_owned(),
        console_csrf.clone(),
    ]);
    let added = client
        .post(format!("{base}/integrations"))
        .header("cookie", &console)
        .form(&[
            ("_token", console_csrf.as_str()),
            ("service", "console-probe"),
            ("field_1", "access_token"),
            ("secret_1", "console-credential-probe-5"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 303);
    let out = account(reqwest::Method::POST, "/api/account/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);

    let logs = server.stop().await;
    assert!(
        logs.contains("request finished"),
        "the log was written: {logs}"
    );
    let export = tempfile::NamedTempFile::new().unwrap();
    let exported = command(
        &db.url,
        &["export", "--out", export.path().to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let events = std::fs::read_to_string(export.path()).unwrap();
    assert!(events.contains("session_started"), "{events}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a log line holds {secret}");
        assert!(!events.contains(secret.as_str()), "an event holds {secret}");
    }
}

both_backends! {
    prometheus_format => metrics_parse_with_the_prometheus_parser,
    metrics_bind => metrics_on_their_own_address,
    json_logs => json_logs_are_one_object_per_line,
    text_logs => text_logs_have_no_colour_codes_off_a_terminal,
    invalid_rust_log => an_invalid_rust_log_is_reported,
    first_build_info => the_first_build_of_the_projections_is_not_a_warning,
    no_secret_in_logs => no_secret_reaches_a_log_line_or_an_event,
}

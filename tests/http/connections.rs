//! Connection limits: clients too slow with their headers or bodies, idle keep-alive
//! connections, the connection cap, bodies declared too large, and the HTTP stack's own errors
//! (bad paths, bad request lines, oversized headers) answered as JSON with a request id.

use crate::helpers::{spawn_app, spawn_app_with};
use crate::raw::*;
use mcp_events::{both_backends, Backend};
use std::time::Duration;

const ME: &str = "/api/mcp/me";

/// A slowloris client (connects, sends part of a header, never finishes) is disconnected after
/// the header read timeout, while other clients are served.
async fn slow_headers_are_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut slow = connect(&app.base).await;
    send(&mut slow, b"GET /healthz HTTP/1.1\r\nhost: te").await;
    let mut silent = connect(&app.base).await;

    let mut prompt = connect(&app.base).await;
    send(&mut prompt, &get("/healthz")).await;
    assert_eq!(read_response(&mut prompt).await.status, 200);

    assert_closed_by_server(&mut slow, "a half-sent request").await;
    assert_closed_by_server(&mut silent, "a connection that never sent a byte").await;
}

/// A body that never finishes is answered 408 (JSON, request id) after the request timeout,
/// and its connection closed.
async fn a_body_that_never_finishes_times_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.request_timeout = Duration::from_millis(300);
    })
    .await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    let mut stream = connect(&app.base).await;
    let head = format!(
        "POST /api/mcp/credentials/lease HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"services\""
    );
    send(&mut stream, head.as_bytes()).await;
    let response = read_response(&mut stream).await;
    let body = response.assert_json_error(408);
    assert_eq!(body["error"], "request_timeout", "{body}");
    assert_eq!(response.headers.get("connection").unwrap(), "close");
    assert_closed_by_server(&mut stream, "a timed-out request's connection").await;
}

/// An idle keep-alive connection is closed after the idle timeout, even though the header
/// timeout is far longer.
async fn idle_keep_alive_connections_are_closed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idle_timeout = Duration::from_millis(300);
        s.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&app.base).await;
    send(&mut stream, &get("/healthz")).await;
    assert_eq!(read_response(&mut stream).await.status, 200);
    assert_closed_by_server(&mut stream, "an idle keep-alive connection").await;
}

/// The header timeout does not cut idle connections short (hyper's own header timeout would:
/// it runs from the end of the previous response): a connection idle for longer than the
/// header timeout, but not the idle timeout, still carries the next request.
async fn the_header_timeout_does_not_cut_idle_connections(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.header_read_timeout = Duration::from_millis(200);
        s.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&app.base).await;
    send(&mut stream, &get("/healthz")).await;
    assert_eq!(read_response(&mut stream).await.status, 200);
    // Idle for several header timeouts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    send(&mut stream, &get("/healthz")).await;
    assert_eq!(read_response(&mut stream).await.status, 200);
}

/// With the cap at 8, a 9th connection is answered 503 JSON at once and closed, while the 8
/// keep working; once one of them closes, a new connection is served again.
async fn connections_past_the_cap_are_refused_with_503(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.max_connections = Some(8);
    })
    .await;
    let mut live = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&app.base).await;
        send(&mut stream, &get("/healthz")).await;
        assert_eq!(read_response(&mut stream).await.status, 200);
        live.push(stream);
    }
    let mut ninth = connect(&app.base).await;
    let refused = read_response(&mut ninth).await;
    let body = refused.assert_json_error(503);
    assert_eq!(body["error"], "unavailable", "{body}");
    assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
    assert_closed_by_server(&mut ninth, "a connection past the cap").await;

    for stream in &mut live {
        send(stream, &get("/healthz")).await;
        assert_eq!(read_response(stream).await.status, 200);
    }
    drop(live.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut stream = connect(&app.base).await;
        send(&mut stream, &get("/healthz")).await;
        if read_response(&mut stream).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed slot was never used again");
}

/// A declared Content-Length over 64 KiB is answered 413 at once: the body is never sent.
async fn a_declared_body_over_the_limit_is_refused_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = connect(&app.base).await;
    send(
        &mut stream,
        b"POST /api/mcp/credentials/lease HTTP/1.1\r\nhost: test\r\nauthorization: Bearer x\r\n\
          content-type: application/json\r\ncontent-length: 10485760\r\n\r\n",
    )
    .await;
    let response = read_response(&mut stream).await;
    let body = response.assert_json_error(413);
    assert_eq!(body["error"], "payload_too_large", "{body}");
    // Refused before authentication: nothing was recorded.
    assert!(app.audit(None, "mcp_auth_failed").await.is_empty());
}

/// A path segment that is not UTF-8 once decoded (`%FF`) is a JSON 400 with a request id, on
/// every route with a path parameter (the receipt and the tiles answered axum's `text/plain`
/// 400 until they read their parameter as the lease routes do).
async fn a_path_that_is_not_utf8_is_a_json_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("ada@example.com").await;
    let token = app.token(user).await;
    for path in [
        "/api/mcp/credentials/lease/%FF",
        "/api/mcp/credentials/lease/%FF/renew",
        "/api/mcp/credentials/lease/%FF/receipt",
        "/api/audit/tlog/tile/0/%FF",
    ] {
        let mut stream = connect(&app.base).await;
        let method = if path.ends_with("renew") {
            "POST"
        } else {
            "GET"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\r\n"
        );
        send(&mut stream, request.as_bytes()).await;
        let body = read_response(&mut stream).await.assert_json_error(400);
        assert_eq!(body["error"], "invalid_path", "{path}: {body}");
    }
}

/// What hyper answers before any handler runs (a request line it cannot parse, headers over
/// the limit) is JSON with a request id too.
async fn the_http_stacks_own_errors_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = connect(&app.base).await;
    send(&mut stream, b"NOT A REQUEST\r\n\r\n").await;
    let body = read_response(&mut stream).await.assert_json_error(400);
    assert_eq!(body["error"], "bad_request", "{body}");

    let mut stream = connect(&app.base).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nhost: test\r\nx-filler: {}\r\n\r\n",
        "a".repeat(80 * 1024)
    );
    send(&mut stream, huge.as_bytes()).await;
    let body = read_response(&mut stream).await.assert_json_error(431);
    assert_eq!(body["error"], "headers_too_large", "{body}");

    // Ordinary answers on a kept-alive connection are untouched, whatever their status.
    let mut stream = connect(&app.base).await;
    for _ in 0..3 {
        send(&mut stream, &get(ME)).await;
        let response = read_response(&mut stream).await;
        assert_eq!(response.json()["error"], "Missing bearer token");
        send(&mut stream, &get("/nowhere")).await;
        assert_eq!(
            read_response(&mut stream).await.json()["message"],
            "Not Found"
        );
    }
}

both_backends! {
    slow_headers => slow_headers_are_cut_off,
    slow_body => a_body_that_never_finishes_times_out,
    idle_closed => idle_keep_alive_connections_are_closed,
    idle_outlives_header_timeout => the_header_timeout_does_not_cut_idle_connections,
    connection_cap => connections_past_the_cap_are_refused_with_503,
    declared_length => a_declared_body_over_the_limit_is_refused_at_once,
    invalid_utf8_path => a_path_that_is_not_utf8_is_a_json_400,
    stack_errors_json => the_http_stacks_own_errors_are_json,
}

//! A bare HTTP/1.1 client over a TCP stream, for what reqwest will not do: half-sent headers,
//! bodies that never finish, declared lengths without a body, oversized headers.

use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bounds: how long a test waits for something the server must do by itself.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct RawResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// A JSON error of ours: `application/json`, a request id and a `message`.
    pub fn assert_json_error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{:?}",
            self.headers
        );
        assert!(
            self.headers.contains_key("x-request-id"),
            "{:?}",
            self.headers
        );
        let body = self.json();
        assert!(body["message"].is_string(), "{body}");
        body
    }
}

pub fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

pub async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(address(base)).await.unwrap()
}

pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
}

/// Reads one response (headers, then a `content-length` body).
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    tokio::time::timeout(PATIENCE, read_response_now(stream))
        .await
        .expect("no response in time")
}

async fn read_response_now(stream: &mut TcpStream) -> RawResponse {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "the connection closed before a response: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    RawResponse {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// Waits until the server closes the connection (reads end or fail); panics if it stays open.
pub async fn assert_closed_by_server(stream: &mut TcpStream, what: &str) {
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept {what} open");
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").into_bytes()
}

//! Configuration: one typed struct, from flags and environment (and `.env`), read once at start-up.

use crate::ledger::LeasePolicy;
use crate::validate::{non_negative, positive, positive_u64};
use clap::{Args, ValueEnum};
use secrecy::SecretString;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Settings every command shares (shown apart, under their own heading, in every `--help`,
/// each with its environment variable). `--help` never shows the environment's values: the
/// database URL and the keys are secrets.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global settings")]
pub struct Settings {
    /// Where the ledger lives: `sqlite://FILE` or `postgres://USER@HOST/DATABASE`.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "URL",
        default_value = "sqlite://mcp-manager.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// The key that encrypts stored credentials: base64 of 32 bytes (`openssl rand -base64
    /// 32`). Required for PostgreSQL; with SQLite, when unset, the key file `<database>.key`
    /// beside the database is used (created for a database that holds no credentials yet).
    #[arg(
        long,
        env = "MCP_ENCRYPTION_KEY",
        value_name = "BASE64",
        global = true,
        hide_env_values = true
    )]
    pub encryption_key: Option<SecretString>,

    /// The previous key, while keys are rotated: credentials still sealed with it open too
    /// (see `key rotate`).
    #[arg(
        long,
        env = "MCP_ENCRYPTION_KEY_OLD",
        value_name = "BASE64",
        global = true,
        hide_env_values = true
    )]
    pub encryption_key_old: Option<SecretString>,

    /// The log's Ed25519 signing key in signed-note syntax (`PRIVATE+KEY+<origin>+…`, from
    /// `log-key generate`). Required for PostgreSQL; for SQLite a `<database>.signing-key` file
    /// beside the database is used (created for a log with no checkpoints yet).
    #[arg(
        long,
        env = "MCP_LOG_SIGNING_KEY",
        value_name = "PRIVATE+KEY",
        global = true,
        hide_env_values = true
    )]
    pub log_signing_key: Option<SecretString>,

    /// The log's origin: the first line of its checkpoints and its signing key's name.
    #[arg(
        long,
        env = "MCP_LOG_ORIGIN",
        default_value = mcp_tlog::DEFAULT_ORIGIN,
        global = true
    )]
    pub log_origin: String,

    /// Seconds between checkpoints while the log grows (fractions allowed).
    #[arg(
        long = "checkpoint-interval",
        env = "MCP_CHECKPOINT_INTERVAL",
        value_name = "SECONDS",
        default_value = "1",
        value_parser = parse_seconds,
        global = true
    )]
    pub checkpoint_interval: Duration,

    /// Lease time-to-live when a request names none, in seconds.
    #[arg(
        long,
        env = "MCP_LEASE_DEFAULT_TTL",
        value_name = "SECONDS",
        default_value_t = 3600,
        value_parser = positive,
        allow_negative_numbers = true,
        global = true,
        hide_env_values = true
    )]
    pub lease_default_ttl: i64,

    /// Shortest lease time-to-live a request may ask for, in seconds.
    #[arg(
        long,
        env = "MCP_LEASE_MIN_TTL",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = positive,
        allow_negative_numbers = true,
        global = true,
        hide_env_values = true
    )]
    pub lease_min_ttl: i64,

    /// Longest lease time-to-live a request may ask for, in seconds.
    #[arg(
        long,
        env = "MCP_LEASE_MAX_TTL",
        value_name = "SECONDS",
        default_value_t = 86_400,
        value_parser = positive,
        allow_negative_numbers = true,
        global = true,
        hide_env_values = true
    )]
    pub lease_max_ttl: i64,

    /// How many times one lease may be renewed.
    #[arg(
        long,
        env = "MCP_MAX_RENEWALS",
        value_name = "N",
        default_value_t = 24,
        value_parser = non_negative,
        allow_negative_numbers = true,
        global = true,
        hide_env_values = true
    )]
    pub max_renewals: i64,

    /// How often the expirer looks for leases past their expiry, in seconds.
    #[arg(
        long,
        env = "MCP_EXPIRY_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = positive_u64,
        allow_negative_numbers = true,
        global = true,
        hide_env_values = true
    )]
    pub expiry_interval_seconds: u64,

    /// Whether the writer keeps what it has read from one batch to the next (while no other
    /// process appends). See README "Benchmarks" for what it is worth.
    #[arg(
        long,
        env = "MCP_WRITER_MEMORY",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true,
        hide_env_values = true
    )]
    pub writer_memory: bool,

    /// Refused requests a client address or a token may have at once before more refusals are
    /// turned away with 429 (and recorded as one event per window); 0 turns this off.
    #[arg(
        long,
        env = "MCP_AUTH_FAILURE_BURST",
        default_value_t = 20,
        global = true
    )]
    pub auth_failure_burst: u32,

    /// Refused requests per minute a client address or a token regains.
    #[arg(
        long,
        env = "MCP_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 10,
        global = true
    )]
    pub auth_failures_per_minute: u32,

    /// Seconds between the records of refusals turned away (one event per kind of refusal).
    #[arg(
        long,
        env = "MCP_AUTH_FAILURE_WINDOW",
        default_value_t = 60,
        global = true
    )]
    pub auth_failure_window_seconds: u64,
    /// How log lines are written to stderr: `text` (for people; no colours unless stderr is a
    /// terminal) or `json` (one object per line, for log collectors).
    #[arg(
        long,
        env = "MCP_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,

    /// Serve `GET /metrics` on this address (host:port) only, instead of on the API's.
    #[arg(long, env = "MCP_METRICS_BIND", global = true)]
    pub metrics_bind: Option<BindAddress>,

    /// Seconds a client has to send a request's headers, from its connection or its first byte.
    #[arg(
        long = "header-read-timeout",
        env = "MCP_HEADER_READ_TIMEOUT",
        value_name = "SECONDS",
        default_value = "10",
        value_parser = parse_seconds,
        global = true
    )]
    pub header_read_timeout: Duration,

    /// Seconds a client has to send a request's body, from the end of its headers (408 after).
    #[arg(
        long = "request-timeout",
        env = "MCP_REQUEST_TIMEOUT",
        value_name = "SECONDS",
        default_value = "30",
        value_parser = parse_seconds,
        global = true
    )]
    pub request_timeout: Duration,

    /// Seconds an idle keep-alive connection is kept open, waiting for its next request.
    #[arg(
        long = "idle-timeout",
        env = "MCP_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value = "60",
        value_parser = parse_seconds,
        global = true
    )]
    pub idle_timeout: Duration,

    /// Concurrent connections served; past it a new connection is answered 503 and closed.
    /// Default: the open-file limit less 128, at most 4096.
    #[arg(long, env = "MCP_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: Option<u32>,

    /// Seconds a signed-in session lasts without activity.
    #[arg(
        long = "session-idle-timeout",
        env = "MCP_SESSION_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 7_200,
        value_parser = positive,
        allow_negative_numbers = true,
        global = true,
        help_heading = "Accounts"
    )]
    pub session_idle_timeout: i64,

    /// Seconds a signed-in session lasts at most, whatever the activity.
    #[arg(
        long = "session-lifetime",
        env = "MCP_SESSION_LIFETIME",
        value_name = "SECONDS",
        default_value_t = 43_200,
        value_parser = positive,
        allow_negative_numbers = true,
        global = true,
        help_heading = "Accounts"
    )]
    pub session_lifetime: i64,

    /// Mark the session cookie `Secure` (sent over HTTPS only): set it when a TLS proxy serves
    /// the console.
    #[arg(
        long = "secure-cookies",
        env = "MCP_SECURE_COOKIES",
        global = true,
        help_heading = "Accounts"
    )]
    pub secure_cookies: bool,

    /// Failed sign-ins per account (e-mail) within the window before sign-ins to it get 429.
    #[arg(
        long,
        env = "MCP_SIGN_IN_FAILURES_PER_ACCOUNT",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true,
        help_heading = "Accounts"
    )]
    pub sign_in_failures_per_account: u32,

    /// Failed sign-ins per client address within the window before its sign-ins get 429.
    #[arg(
        long,
        env = "MCP_SIGN_IN_FAILURES_PER_ADDRESS",
        value_name = "N",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true,
        help_heading = "Accounts"
    )]
    pub sign_in_failures_per_address: u32,

    /// Seconds over which failed sign-ins are counted.
    #[arg(
        long,
        env = "MCP_SIGN_IN_WINDOW",
        value_name = "SECONDS",
        default_value = "900",
        value_parser = parse_seconds,
        global = true,
        help_heading = "Accounts"
    )]
    pub sign_in_window: Duration,
}

/// The log line format (`--log-format`, `MCP_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A `host:port` to listen on; the host may be a name (`localhost:3978`), resolved when the
/// server binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddress {
    host: String,
    port: u16,
}

impl BindAddress {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<std::net::SocketAddr> for BindAddress {
    fn from(address: std::net::SocketAddr) -> Self {
        Self {
            host: address.ip().to_string(),
            port: address.port(),
        }
    }
}

impl FromStr for BindAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("{text:?} is not host:port (e.g. 127.0.0.1:3978 or localhost:3978)");
        let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        // `[::1]:3978`: the brackets only delimit an IPv6 address.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400 (e.g. 10 or 0.5)"
        )),
    }
}

impl Settings {
    /// Settings for a database URL with every other value at its default.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            encryption_key: None,
            encryption_key_old: None,
            log_signing_key: None,
            log_origin: mcp_tlog::DEFAULT_ORIGIN.to_owned(),
            checkpoint_interval: Duration::from_secs(1),
            lease_default_ttl: 3600,
            lease_min_ttl: 60,
            lease_max_ttl: 86_400,
            max_renewals: 24,
            expiry_interval_seconds: 30,
            writer_memory: true,
            auth_failure_burst: 20,
            auth_failures_per_minute: 10,
            auth_failure_window_seconds: 60,
            log_format: LogFormat::Text,
            metrics_bind: None,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            session_idle_timeout: 7_200,
            session_lifetime: 43_200,
            secure_cookies: false,
            sign_in_failures_per_account: 5,
            sign_in_failures_per_address: 20,
            sign_in_window: Duration::from_secs(900),
        }
    }

    pub fn sign_in_throttle(&self) -> crate::accounts::throttle::ThrottlePolicy {
        crate::accounts::throttle::ThrottlePolicy {
            per_account: self.sign_in_failures_per_account as usize,
            per_address: self.sign_in_failures_per_address as usize,
            window: self.sign_in_window,
        }
    }

    pub fn policy(&self) -> Result<LeasePolicy, String> {
        let policy = LeasePolicy {
            default_ttl: self.lease_default_ttl,
            min_ttl: self.lease_min_ttl,
            max_ttl: self.lease_max_ttl,
            max_renewals: self.max_renewals,
        };
        if policy.min_ttl < 1
            || policy.min_ttl > policy.max_ttl
            || !(policy.min_ttl..=policy.max_ttl).contains(&policy.default_ttl)
        {
            return Err(format!(
                "lease TTLs must satisfy 1 <= MCP_LEASE_MIN_TTL ({}) <= MCP_LEASE_DEFAULT_TTL ({}) \
                 <= MCP_LEASE_MAX_TTL ({})",
                policy.min_ttl, policy.default_ttl, policy.max_ttl
            ));
        }
        if policy.max_renewals < 0 {
            return Err("MCP_MAX_RENEWALS must be 0 or more".into());
        }
        Ok(policy)
    }

    pub fn flood_policy(&self) -> crate::http::flood::FloodPolicy {
        crate::http::flood::FloodPolicy {
            burst: self.auth_failure_burst,
            per_minute: self.auth_failures_per_minute,
            window: Duration::from_secs(self.auth_failure_window_seconds.max(1)),
        }
    }

    pub fn expiry_interval(&self) -> Duration {
        Duration::from_secs(self.expiry_interval_seconds.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_take_names_ips_and_bracketed_ipv6() {
        let named: BindAddress = "localhost:3978".parse().unwrap();
        assert_eq!((named.host(), named.port()), ("localhost", 3978));
        let v6: BindAddress = "[::1]:80".parse().unwrap();
        assert_eq!((v6.host(), v6.to_string().as_str()), ("::1", "[::1]:80"));
        assert_eq!(
            BindAddress::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).to_string(),
            "127.0.0.1:0"
        );
        for bad in ["localhost", ":3978", "host:", "host:99999", "a b:1"] {
            assert!(bad.parse::<BindAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_positive_seconds_with_fractions() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "ten", "", "1e9", "NaN"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}

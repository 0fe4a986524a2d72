//! Configuration: one typed struct, from flags and environment (and `.env`), read once at start-up.

use crate::ledger::LeasePolicy;
use clap::Args;
use secrecy::SecretString;
use std::time::Duration;

/// Settings every command shares.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// `sqlite://FILE` (the default, created on first use) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://mcp-manager.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Base64 of 32 bytes. Required for PostgreSQL; for SQLite a key file beside the database is
    /// created when unset.
    #[arg(
        long,
        env = "MCP_ENCRYPTION_KEY",
        global = true,
        hide_env_values = true
    )]
    pub encryption_key: Option<SecretString>,

    /// Lease time-to-live when a request names none, in seconds.
    #[arg(
        long,
        env = "MCP_LEASE_DEFAULT_TTL",
        default_value_t = 3600,
        global = true
    )]
    pub lease_default_ttl: i64,

    #[arg(long, env = "MCP_LEASE_MIN_TTL", default_value_t = 60, global = true)]
    pub lease_min_ttl: i64,

    #[arg(
        long,
        env = "MCP_LEASE_MAX_TTL",
        default_value_t = 86_400,
        global = true
    )]
    pub lease_max_ttl: i64,

    /// How many times one lease may be renewed.
    #[arg(long, env = "MCP_MAX_RENEWALS", default_value_t = 24, global = true)]
    pub max_renewals: i64,

    /// How often the expirer looks for leases past their expiry, in seconds.
    #[arg(long, env = "MCP_EXPIRY_INTERVAL", default_value_t = 30, global = true)]
    pub expiry_interval_seconds: u64,

    /// Whether the writer keeps what it has read from one batch to the next (while no other
    /// process appends). See README "Benchmarks" for what it is worth.
    #[arg(
        long,
        env = "MCP_WRITER_MEMORY",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
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
}

impl Settings {
    /// Settings for a database URL with every other value at its default.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            encryption_key: None,
            lease_default_ttl: 3600,
            lease_min_ttl: 60,
            lease_max_ttl: 86_400,
            max_renewals: 24,
            expiry_interval_seconds: 30,
            writer_memory: true,
            auth_failure_burst: 20,
            auth_failures_per_minute: 10,
            auth_failure_window_seconds: 60,
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

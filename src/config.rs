//! Configuration: one typed struct, from flags and environment (and `.env`), read once at start-up.

use crate::ledger::LeasePolicy;
use crate::validate::{non_negative, positive, positive_u64};
use clap::Args;
use secrecy::SecretString;
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
}

impl Settings {
    /// Settings for a database URL with every other value at its default.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            encryption_key: None,
            encryption_key_old: None,
            lease_default_ttl: 3600,
            lease_min_ttl: 60,
            lease_max_ttl: 86_400,
            max_renewals: 24,
            expiry_interval_seconds: 30,
            writer_memory: true,
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

    pub fn expiry_interval(&self) -> Duration {
        Duration::from_secs(self.expiry_interval_seconds.max(1))
    }
}

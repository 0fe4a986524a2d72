//! MCP Manager: time-limited credential leases for MCP servers on an immutable event ledger.
//!
//! `main.rs` only parses the command line; everything it runs lives here so tests can start the
//! real server (`app::Application`) on port 0 against a fresh database.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod checkpointer;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod keyring;
pub mod ledger;
pub mod metrics;
pub mod open;
pub mod private_file;
pub mod random;
pub mod secrets;
pub mod seed;
pub mod serve;
pub mod signing;
pub mod telemetry;
pub mod tokens;
pub mod validate;

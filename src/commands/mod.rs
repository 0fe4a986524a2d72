//! Commands: each one loads what it needs through the unit of work, asks an aggregate to decide,
//! and appends the resulting events. Handlers and the CLI only ever submit these.

pub mod accounts;
pub mod directory;

pub mod expiry;
pub mod integrations;
pub mod keys;
pub mod leases;
pub mod mcp;
pub mod refusals;
pub mod tokens;

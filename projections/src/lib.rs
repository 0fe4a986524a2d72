//! The read side of MCP Manager: projections folded from the event log, their checkpoints, and
//! the replay engine that rebuilds them and proves the live tables match the log.
//!
//! Projections are deterministic functions of the events: no clock, no randomness. This crate
//! knows nothing about HTTP or commands; it reads the log through `mcp_events`.

pub mod fold;
pub mod queries;
pub mod replay;
mod replay_lock;
pub mod rows;
pub mod schema;
pub mod store;

pub use replay::{
    check, fold_only, rebuild, rebuild_checked, CheckOutcome, ReplayError, ReplayReport,
};
pub use schema::{ensure, ensure_checked, set_checkpoints};

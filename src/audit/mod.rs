//! What auditors run against the ledger, outside the HTTP API:
//!
//! - `export`: the log as JSON lines of event objects (exactly the audit API's), streamed in
//!   constant memory, and the signed checkpoint of its size;
//! - `online`: the log in the database checked against the tree of its events' hashes and
//!   against every signed checkpoint (stored, or one an auditor kept);
//! - `offline`: an export checked against a signed checkpoint with no database at all.
//!
//! Every check here recomputes from the events themselves (`mcp_events::chain`): nothing read
//! from the database or a file is trusted because of where it was read. Nothing here writes to
//! the database except `export` signing a checkpoint the log does not have yet.

pub mod export;
pub mod offline;
pub mod online;

/// A progress callback: `(done, total)` in events or bytes.
pub type Progress = dyn FnMut(u64, u64) + Send;

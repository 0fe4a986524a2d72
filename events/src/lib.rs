//! The event side of MCP Manager: the vocabulary of facts and the store that keeps them.
//!
//! This crate knows nothing about HTTP, commands or projections. It owns the `events` table: an
//! append-only, hash-chained log with gap-free positions in commit order, on SQLite or PostgreSQL.
//! Nothing in here may ever write a token or a credential into the log.

pub mod chain;
pub mod checkpoints;
pub mod db;
pub mod envelope;
pub mod hash;
pub mod reader;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod tree;
pub mod upcast;
pub mod vocabulary;
pub mod write;

pub use chain::{ChainBreak, ChainCheck, LinkedEvent};
pub use db::{is_data_error, is_unavailable, Access, Backend, Database, DbOptions, Opened};
pub use envelope::{ExpectedVersion, Metadata, RawEvent, RawEventRef, RecordedEvent, StreamId};
pub use store::{AppendError, EventStore, StoreError, VerifyOutcome};
pub use time::Timestamp;
pub use vocabulary::*;
pub use write::{is_stream_version_conflict, Mark, WriteTx};

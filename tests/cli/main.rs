//! The command line end to end, as an operator types it: the real binary on a fresh database
//! per test, on SQLite and PostgreSQL.

mod arguments;
mod auditors;
mod helpers;
mod keys;
mod listings;
mod operator;
mod read_only;
mod tampering;

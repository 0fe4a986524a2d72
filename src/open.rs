//! Opening the database and the ledger for what a command does.
//!
//! Read-only commands (`verify`, the listings, `replay --check`) open an existing ledger
//! read-only and create nothing: no database, schema, table or key file. Write commands need an
//! existing ledger, except those whose point is to start one (`serve`, `seed`, `user add`,
//! `org add`), which create it and say so once. A process that seals or opens credentials loads
//! its keys and checks them against the stored secrets before it writes anything, so a wrong
//! key is refused at start, and a SQLite key file is never created for a database that already
//! holds secrets.
//!
//! Nothing here prints: what an operator must be told comes back as notices, which the CLI
//! prints as plain lines and the server logs.

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{self, EncryptionKey, KeyError, KeyOrigin};
use crate::keyring::{self, Keyring};
use crate::ledger::{Ledger, LedgerSetup};
use anyhow::Context;
use mcp_events::db::{backend_of, redact, sqlite_path};
use mcp_events::{Access, Backend, Database, DbOptions, EventStore};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// What a write command may do on opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// Create the ledger (and the SQLite file) if there is none.
    pub create: bool,
    /// Load the keys and check them against the stored secrets (the command seals or opens
    /// credentials).
    pub keys: bool,
}

impl Write {
    /// The server: creates a ledger on first start, and serves credentials.
    pub const SERVE: Write = Write {
        create: true,
        keys: true,
    };
}

/// A ledger just opened, and what the operator must be told about it (one line each).
pub struct OpenedLedger {
    pub ledger: Ledger,
    pub notices: Vec<Notice>,
}

/// What an operator is told once when a ledger opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The database (or the ledger in it) was just created: as intended, worth a line.
    Created(String),
    /// A new key file was made: it needs a backup, so the server logs it as a warning.
    KeyFileCreated(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Created(text) | Notice::KeyFileCreated(text) => f.write_str(text),
        }
    }
}

/// Opens an existing ledger for reading, creating and changing nothing. Fails with one line
/// if there is no database, no ledger in it, or an older schema.
pub async fn read_only(settings: &Settings) -> anyhow::Result<EventStore> {
    let database = Database::connect_existing(&settings.database_url, &DbOptions::default())
        .await
        .map_err(anyhow::Error::new)?;
    Ok(EventStore::new(database))
}

/// Opens the ledger for a write command (or the server).
pub async fn ledger(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    write: Write,
) -> anyhow::Result<OpenedLedger> {
    let policy = settings.policy().map_err(anyhow::Error::msg)?;
    let backend = backend_of(&settings.database_url)?;
    // Keys given in the environment are checked before anything is opened or created.
    let env_key = match &settings.encryption_key {
        Some(text) if write.keys => Some(EncryptionKey::from_base64(text.expose_secret())?),
        _ => None,
    };
    let old_key = match &settings.encryption_key_old {
        Some(text) if write.keys => Some(EncryptionKey::from_base64_named(
            text.expose_secret(),
            "MCP_ENCRYPTION_KEY_OLD",
        )?),
        _ => None,
    };
    if write.keys && env_key.is_none() && backend == Backend::Postgres {
        return Err(KeyError::MissingForPostgres.into());
    }

    let access = if write.create {
        Access::Create
    } else {
        Access::Existing
    };
    let opened = Database::open(&settings.database_url, &DbOptions::default(), access).await?;
    let database = opened.database;
    let mut notices = Vec::new();
    if opened.created {
        notices.push(Notice::Created(match database.sqlite_path() {
            Some(path) => format!("created the database {}", path.display()),
            None => format!(
                "created the ledger in the database {}",
                redact(&settings.database_url)
            ),
        }));
    }

    let keys = if write.keys {
        let stored = keyring::stored_key_ids(&database)
            .await
            .context("reading the key ids of the stored credentials")?;
        let current = match env_key {
            Some(key) => crypto::LoadedKey {
                key,
                origin: KeyOrigin::Environment("MCP_ENCRYPTION_KEY"),
            },
            None => crypto::load_key(
                None,
                sqlite_path(&settings.database_url).as_deref(),
                &stored,
            )?,
        };
        notices.extend(current.notice().map(Notice::KeyFileCreated));
        let keys = Keyring::new(current.key, current.origin, old_key);
        keys.check(&stored)?;
        Some(keys)
    } else {
        None
    };

    // A key that cannot be read is reported by the commands that sign; here it only checks.
    let log_key = crate::signing::configured_verifier(
        settings.log_signing_key.as_ref(),
        database.sqlite_path().as_deref(),
    )
    .ok()
    .flatten();
    let setup = LedgerSetup {
        policy,
        clock,
        memory: settings.writer_memory,
        log_key,
        ..LedgerSetup::with_keys(keys)
    };
    let ledger = Ledger::open(EventStore::new(database), setup)
        .await
        .context("opening the ledger")?;
    Ok(OpenedLedger { ledger, notices })
}

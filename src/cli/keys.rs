//! `mcp-manager key rotate`: re-encrypt every stored credential under a new key.
//!
//! Runs in batches (each a transaction holding the ledger lock briefly), records one
//! `integration_secret_resealed` event per secret (key ids only), and resumes where it stopped
//! when run again. It reads key files but never writes or removes one: where the new key lives
//! afterwards is the operator's decision (README "Key rotation").

use super::refusal::Failure;
use super::{admin, print};
use crate::commands::keys::ResealSecrets;
use crate::config::Settings;
use crate::crypto::{read_key_file_at, EncryptionKey};
use crate::keyring::stored_key_ids;
use crate::ledger::Ledger;
use secrecy::ExposeSecret;
use serde_json::json;
use std::path::Path;

pub struct Rotation<'a> {
    pub new_key_file: Option<&'a Path>,
    pub old_key_file: Option<&'a Path>,
    pub batch: i64,
    pub limit: Option<i64>,
}

/// The keys of a rotation, from flags or the environment; refused before anything is opened.
pub fn keys(
    settings: &Settings,
    rotation: &Rotation,
) -> Result<(EncryptionKey, EncryptionKey), Failure> {
    let new = match (rotation.new_key_file, &settings.encryption_key) {
        (Some(path), _) => read_key_file_at(path)?,
        (None, Some(text)) => EncryptionKey::from_base64(text.expose_secret())?,
        (None, None) => {
            return Err(Failure::usage(
                "key rotate needs the new key: set MCP_ENCRYPTION_KEY or give --new-key-file",
            ))
        }
    };
    let old =
        match (rotation.old_key_file, &settings.encryption_key_old) {
            (Some(path), _) => read_key_file_at(path)?,
            (None, Some(text)) => {
                EncryptionKey::from_base64_named(text.expose_secret(), "MCP_ENCRYPTION_KEY_OLD")?
            }
            (None, None) => return Err(Failure::usage(
                "key rotate needs the old key: set MCP_ENCRYPTION_KEY_OLD or give --old-key-file",
            )),
        };
    if old.key_id() == new.key_id() {
        return Err(Failure::usage(format!(
            "the old and the new key are the same key ({})",
            old.key_id()
        )));
    }
    Ok((old, new))
}

pub async fn rotate(
    ledger: &Ledger,
    old: EncryptionKey,
    new: EncryptionKey,
    rotation: &Rotation<'_>,
) -> Result<(), Failure> {
    let database = ledger.store().database();
    let foreign: Vec<String> = stored_key_ids(database)
        .await?
        .into_iter()
        .filter(|id| id != old.key_id() && id != new.key_id())
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "the database holds credentials encrypted with key {}, which is neither the old key \
             ({}) nor the new one ({}): give the key they were encrypted with as the old key",
            foreign.join(" and "),
            old.key_id(),
            new.key_id()
        )
        .into());
    }
    let mut resealed = 0;
    loop {
        let room = rotation.limit.map_or(rotation.batch, |limit| {
            (limit - resealed).min(rotation.batch)
        });
        if room <= 0 {
            break;
        }
        let done = ledger
            .submit(ResealSecrets {
                from: old.clone(),
                to: new.clone(),
                limit: room,
                metadata: admin::metadata(),
            })
            .await?;
        if done.is_empty() {
            break;
        }
        resealed += done.len() as i64;
    }
    let remaining: i64 =
        sqlx::query_scalar("select count(*) from integration_secrets where key_id = $1")
            .bind(old.key_id())
            .fetch_one(database.pool())
            .await?;
    let next = if remaining == 0 {
        format!(
            "every credential is encrypted with key {}: configure it as MCP_ENCRYPTION_KEY (or \
             as the SQLite key file) and remove MCP_ENCRYPTION_KEY_OLD",
            new.key_id()
        )
    } else {
        "run `mcp-manager key rotate` again to re-encrypt the rest".to_owned()
    };
    print(json!({
        "from_key_id": old.key_id(),
        "to_key_id": new.key_id(),
        "resealed": resealed,
        "remaining": remaining,
        "complete": remaining == 0,
        "next": next,
    }));
    Ok(())
}

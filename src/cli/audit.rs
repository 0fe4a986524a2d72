//! The auditors' commands: `export` (the log as JSON lines and the checkpoint of its size) and
//! `verify` (the log in the database, optionally against a checkpoint an auditor kept; or an
//! export offline, opening no database). Each prints one JSON value; a log that does not verify
//! is a refusal naming the first position or tree size that disagrees (exit 1).

use super::args::{ExportArgs, VerifyArgs};
use super::print;
use super::refusal::Failure;
use crate::audit::{export, offline, online};
use crate::clock::Clock;
use crate::config::Settings;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_events::checkpoints::{self, StoredCheckpoint};
use mcp_events::db::sqlite_path;
use mcp_events::{Access, Database, DbOptions, EventStore};
use mcp_tlog::{Checkpoint, Verifier};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A checkpoint file is a few lines; anything much larger is not one.
const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024;

pub async fn verify(settings: &Settings, args: VerifyArgs) -> Result<ExitCode, Failure> {
    if let Some(export) = &args.export {
        // clap requires both with --export.
        let (Some(checkpoint), Some(vkey)) = (&args.checkpoint, &args.vkey) else {
            return Err(Failure::usage(
                "--export needs --checkpoint FILE and --vkey VKEY",
            ));
        };
        return verify_offline(export, checkpoint, vkey);
    }
    let key = match &args.vkey {
        Some(vkey) => Some(vkey.clone()),
        None => crate::signing::configured_verifier(
            settings.log_signing_key.as_ref(),
            sqlite_path(&settings.database_url).as_deref(),
        )?,
    };
    let kept = match &args.checkpoint {
        Some(path) => {
            let key = key.as_ref().ok_or(online::OnlineError::NoKey)?;
            Some(online::Kept {
                checkpoint: open_checkpoint(path, key)?,
                source: path.display().to_string(),
            })
        }
        None => None,
    };
    let store = crate::open::read_only(settings).await?;
    let outcome = online::verify(&store, key.as_ref(), kept.as_ref()).await;
    store.database().close().await;
    match outcome? {
        Ok(report) => {
            let mut answer = json!({
                "valid": true,
                "events": report.events,
                "head": report.head,
                "root": BASE64.encode(report.root),
                "checkpoints": report.checkpoints,
            });
            if let Some(kept) = &kept {
                answer["checkpoint"] = json!({
                    "tree_size": kept.checkpoint.size,
                    "root": BASE64.encode(kept.checkpoint.root),
                });
            }
            print(answer);
            Ok(ExitCode::SUCCESS)
        }
        Err(finding) => {
            print(match &finding {
                online::Finding::Position { position, reason } => {
                    json!({ "valid": false, "position": position, "reason": reason })
                }
                online::Finding::Size { size, reason } => {
                    json!({ "valid": false, "tree_size": size, "reason": reason })
                }
            });
            Err(finding.into())
        }
    }
}

fn verify_offline(export: &Path, checkpoint: &Path, key: &Verifier) -> Result<ExitCode, Failure> {
    let checkpoint = open_checkpoint(checkpoint, key)?;
    let file = std::fs::File::open(export)
        .map_err(|e| format!("cannot read the export {}: {e}", export.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut progress = super::progress_line("verifying", "bytes");
    let input = std::io::BufReader::with_capacity(1 << 20, file);
    match offline::verify_export(input, &checkpoint, &mut |read| progress(read, total)) {
        Ok(verified) => {
            print(json!({
                "valid": true,
                "events": verified.events,
                "head": verified.head,
                "tree_size": verified.tree_size,
                "root": BASE64.encode(verified.root),
            }));
            Ok(ExitCode::SUCCESS)
        }
        Err(refused) => {
            print(match &refused {
                offline::Refused::Line { line, position, .. } => {
                    json!({ "valid": false, "line": line, "position": position, "reason": refused.to_string() })
                }
                offline::Refused::Position { position, .. } => {
                    json!({ "valid": false, "position": position, "reason": refused.to_string() })
                }
                offline::Refused::Size { size, .. } => {
                    json!({ "valid": false, "tree_size": size, "reason": refused.to_string() })
                }
                offline::Refused::Io(_) => json!({ "valid": false, "reason": refused.to_string() }),
            });
            Err(format!("the export does not verify: {refused}").into())
        }
    }
}

/// Reads a checkpoint note from `path` and opens it with `key` (signature, origin, syntax).
fn open_checkpoint(path: &Path, key: &Verifier) -> Result<Checkpoint, Failure> {
    let name = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read the checkpoint {name}: {e}"))?;
    if metadata.len() > MAX_CHECKPOINT_BYTES {
        return Err(format!("{name} is not a checkpoint (larger than 64 KiB)").into());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the checkpoint {name}: {e}"))?;
    Checkpoint::open(&text, key).map_err(|e| {
        format!(
            "the checkpoint {name} does not verify with the log's key {}: {e}",
            key.vkey()
        )
        .into()
    })
}

pub async fn export(
    settings: &Settings,
    args: ExportArgs,
    clock: &dyn Clock,
) -> Result<ExitCode, Failure> {
    if args.to.is_some_and(|to| args.after > to) {
        return Err(Failure::usage(format!(
            "--after {} is past --to {}",
            args.after,
            args.to.unwrap_or_default()
        )));
    }
    let store = crate::open::read_only(settings).await?;
    let outcome = export_from(settings, &store, &args, clock).await;
    store.database().close().await;
    outcome
}

async fn export_from(
    settings: &Settings,
    store: &EventStore,
    args: &ExportArgs,
    clock: &dyn Clock,
) -> Result<ExitCode, Failure> {
    let (head, _) = store.head().await?;
    let to = args.to.unwrap_or(head);
    if to > head {
        return Err(
            format!("--to {to} is past the log's head: the log holds {head} events").into(),
        );
    }
    if args.after > to {
        return Err(format!(
            "--after {} is past the log's head ({head} events)",
            args.after
        )
        .into());
    }
    // The checkpoint first: a log that cannot be signed fails before a long export.
    let checkpoint = match &args.checkpoint_out {
        Some(_) if to == 0 => {
            return Err("the log is empty: there is no checkpoint to write".into());
        }
        Some(_) => Some(checkpoint_of_size(settings, store, to as u64, clock).await?),
        None => None,
    };

    let partial = partial_path(&args.out);
    let file = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let progress = super::progress_line("exporting", "events");
    let written = export::write_events(store, args.after, to, file, progress).await;
    let (file, events) = match written {
        Ok(written) => written,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error.into());
        }
    };
    let finished = file
        .sync_all()
        .and_then(|()| std::fs::rename(&partial, &args.out));
    if let Err(error) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("cannot write {}: {error}", args.out.display()).into());
    }
    let mut answer = json!({
        "events": events,
        "after": args.after,
        "to": to,
        "out": args.out.display().to_string(),
    });
    if let (Some(path), Some(checkpoint)) = (&args.checkpoint_out, &checkpoint) {
        std::fs::write(path, &checkpoint.note)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        answer["checkpoint"] = json!({
            "tree_size": checkpoint.tree_size,
            "root": BASE64.encode(checkpoint.root),
            "out": path.display().to_string(),
        });
    }
    print(answer);
    Ok(ExitCode::SUCCESS)
}

/// `FILE.partial` beside `FILE`: the export is written there and renamed once complete.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The signed checkpoint of exactly `size`: the stored one, or one signed now, after checking
/// the log up to that size from position 1 and against the checkpoints below and above it.
/// Signing is the one write an export makes, on a connection of its own.
async fn checkpoint_of_size(
    settings: &Settings,
    store: &EventStore,
    size: u64,
    clock: &dyn Clock,
) -> Result<StoredCheckpoint, Failure> {
    let mut conn = store.database().pool().acquire().await?;
    if let Some(stored) = checkpoints::at_size(&mut conn, size).await? {
        return Ok(stored);
    }
    let stored_keys = checkpoints::key_ids(&mut conn).await?;
    drop(conn);
    let loaded = crate::signing::load(
        settings.log_signing_key.as_ref(),
        &settings.log_origin,
        store.database().sqlite_path().as_deref(),
        &stored_keys,
    )?;
    if let Some(notice) = &loaded.notice {
        super::notice(notice);
    }
    let writable = Database::open(
        &settings.database_url,
        &DbOptions::default(),
        Access::Existing,
    )
    .await?
    .database;
    let signer = EventStore::new(writable);
    let signed =
        checkpoints::sign_at_checked(&signer, &loaded.signer, size, clock.now(), true, &[]).await;
    signer.database().close().await;
    Ok(signed?)
}

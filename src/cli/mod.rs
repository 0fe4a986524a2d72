//! The command line of MCP Manager. Admin commands print one JSON value on stdout; a refusal
//! prints one plain line on stderr and exits 1 (2 for malformed arguments).
//!
//! - `args`: every command and flag, with its help;
//! - `refusal`: how a failure is printed (one line, never a secret);
//! - `listings`: the read-only commands, which never create or change anything;
//! - `admin`: the write commands; `keys`: key rotation; `credentials`: where credentials come
//!   from;
//! - `audit`: `export` and `verify`, the auditors' commands.

mod admin;
mod args;
mod audit;
mod credentials;
mod keys;
mod listings;
mod refusal;

pub use args::{Cli, CliCommand};
pub use refusal::{argument_line, Failure};

use crate::clock::{Clock, SystemClock};
use args::{KeyCommand, LogKeyCommand};
use clap::Parser;
use serde_json::Value;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => return refusal::argument_error(error, &args),
    };
    crate::telemetry::init(
        matches!(cli.command, CliCommand::Serve { .. }),
        cli.settings.log_format,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(failure) => refusal::report(&failure),
    }
}

/// Prints an admin command's answer: one JSON value on stdout.
fn print(value: Value) {
    println!("{value}");
}

/// A plain line on stderr for the operator (a database or key file created), once.
fn notice(line: &str) {
    eprintln!("{line}");
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = cli.settings;
    let mut progress = progress_reporter();
    match cli.command {
        CliCommand::Serve { bind, seed } => {
            crate::serve::serve(settings, clock, bind, seed).await?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::LogKey(LogKeyCommand::Generate { origin }) => {
            let origin = origin.unwrap_or_else(|| settings.log_origin.clone());
            let (private_key, vkey) = crate::signing::generate(&origin)?;
            println!(
                "{}",
                serde_json::json!({ "private_key": private_key.as_str(), "vkey": vkey })
            );
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Checkpoint => {
            let write = crate::open::Write {
                create: false,
                keys: false,
            };
            let opened = crate::open::ledger(&settings, clock.clone(), write).await?;
            let ledger = opened.ledger;
            let outcome = async {
                let signer = crate::app::load_signer(&settings, &ledger).await?;
                let log = crate::checkpointer::SignedLog::new(signer);
                log.sign_if_grown(ledger.store(), clock.now()).await?;
                let mut conn = ledger.store().database().pool().acquire().await?;
                match mcp_events::checkpoints::latest(&mut conn).await? {
                    // Exactly as signed: an auditor's file must verify byte for byte.
                    Some(checkpoint) => print!("{}", checkpoint.note),
                    None => {
                        return Err(Failure::from("the log is empty: there is nothing to sign"))
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            .await;
            ledger.store().database().close().await;
            outcome
        }
        CliCommand::Verify(args) => audit::verify(&settings, args).await,
        CliCommand::Export(args) => audit::export(&settings, args, clock.as_ref()).await,
        command if listings::is_read_only(&command) => {
            listings::run(&settings, command, &mut progress).await
        }
        CliCommand::Key(KeyCommand::Rotate {
            new_key_file,
            old_key_file,
            batch,
            limit,
        }) => {
            let rotation = keys::Rotation {
                new_key_file: new_key_file.as_deref(),
                old_key_file: old_key_file.as_deref(),
                batch,
                limit,
            };
            let (old, new) = keys::keys(&settings, &rotation)?;
            let write = crate::open::Write {
                create: false,
                keys: false,
            };
            let opened = crate::open::ledger(&settings, clock, write).await?;
            opened
                .notices
                .iter()
                .for_each(|line| notice(&line.to_string()));
            let outcome = keys::rotate(&opened.ledger, old, new, &rotation).await;
            opened.ledger.store().database().close().await;
            outcome.map(|()| ExitCode::SUCCESS)
        }
        command => {
            let credentials = admin::credentials_of(&command)?;
            let opened = crate::open::ledger(&settings, clock, admin::access(&command)).await?;
            opened
                .notices
                .iter()
                .for_each(|line| notice(&line.to_string()));
            let outcome = admin::run(&opened.ledger, command, credentials, &mut progress).await;
            opened.ledger.store().database().close().await;
            outcome
        }
    }
}

/// A long command's progress on a terminal, as `<label>: done/total <unit> (percent)`, at
/// most once a percent; nothing when stderr is not a terminal or the total is small.
fn progress_line(label: &'static str, unit: &'static str) -> Box<crate::audit::Progress> {
    let on_terminal = std::io::stderr().is_terminal();
    let mut last_percent = u64::MAX;
    let small = if unit == "bytes" { 1 << 24 } else { 10_000 };
    Box::new(move |done, total| {
        if !on_terminal || total < small {
            return;
        }
        let percent = (done * 100 / total.max(1)).min(100);
        if percent != last_percent {
            last_percent = percent;
            eprint!("\r{label}: {done}/{total} {unit} ({percent}%)");
            if done >= total {
                eprintln!();
            }
        }
    })
}

/// Replay's progress on a terminal (large logs only); nothing when stderr is not a terminal.
fn progress_reporter() -> impl FnMut(i64, i64) + Send {
    let on_terminal = std::io::stderr().is_terminal();
    let mut last_percent = -1;
    move |done, total| {
        if !on_terminal || total < 10_000 {
            return;
        }
        let percent = done * 100 / total.max(1);
        if percent != last_percent {
            last_percent = percent;
            eprint!("\rreplaying: {done}/{total} events ({percent}%)");
            if done >= total {
                eprintln!();
            }
        }
    }
}

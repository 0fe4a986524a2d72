//! Credentials as an operator hands them over: `--credentials`, `--credentials-file` or
//! `--credentials-stdin`. A refusal names the source and what is wrong (serde_json's messages
//! give line and column, never the text); the credentials themselves are never printed.

use super::args::CredentialsArgs;
use super::refusal::Failure;
use crate::validate::parse_credentials;
use secrecy::zeroize::Zeroizing;
use serde_json::{Map, Value};
use std::io::Read;

/// The credentials from whichever source was given (clap makes sure it is exactly one).
pub fn read(args: &CredentialsArgs) -> Result<Map<String, Value>, Failure> {
    let (source, text) = match args {
        CredentialsArgs {
            credentials: Some(text),
            ..
        } => ("--credentials".to_owned(), Zeroizing::new(text.clone())),
        CredentialsArgs {
            credentials_file: Some(path),
            ..
        } => {
            let source = format!("--credentials-file {}", path.display());
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {source}: {e}")))?;
            (source, Zeroizing::new(text))
        }
        CredentialsArgs {
            credentials_stdin: true,
            ..
        } => {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("cannot read --credentials-stdin: {e}")))?;
            ("--credentials-stdin".to_owned(), text)
        }
        _ => {
            return Err(Failure::usage(
                "give --credentials, --credentials-file or --credentials-stdin",
            ))
        }
    };
    parse_credentials(&text).map_err(|problem| Failure::usage(format!("{source}: {problem}")))
}

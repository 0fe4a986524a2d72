//! How the command line fails: one plain line on stderr (no colour, nothing echoed that could be
//! a secret) and an exit code: 2 for malformed arguments, 1 for everything else.

use super::args::Cli;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;
use std::ffi::OsString;
use std::process::ExitCode;

/// What a failed command prints: one line, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A malformed argument that clap could not see (it was read after parsing).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            // The alternate form shows an `anyhow` error's whole chain on the line.
            message: format!("{error:#}"),
            code: 1,
        }
    }
}

/// Prints a failure: `error: ` and one line.
pub fn report(failure: &Failure) -> ExitCode {
    eprintln!("error: {}", one_line(&failure.message));
    ExitCode::from(failure.code)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a refused command line prints. Help and the version go to stdout (exit 0); a bare
/// command group prints its help with its subcommands on stderr (exit 2); any other problem is
/// one line naming the argument (and the environment variable, when the value came from one).
pub fn argument_error(error: clap::Error, args: &[OsString]) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            eprintln!("{}", argument_line(&error, args));
            ExitCode::from(2)
        }
    }
}

/// clap's message on one line: its lines up to the usage, joined (clap puts what is missing
/// or allowed on lines of their own), and the environment variable a bad value came from.
pub fn argument_line(error: &clap::Error, args: &[OsString]) -> String {
    let rendered = error.render().to_string(); // plain text: `Display` drops the styles
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.to_owned());
        }
    }
    let mut line = one_line(&parts.join(" "));
    if line.is_empty() {
        line = "error: invalid arguments".to_owned();
    }
    if let Some(variable) = environment_source(error, args) {
        line.push_str(&format!(
            " (the value comes from the environment variable {variable})"
        ));
    }
    line
}

/// The environment variable a refused value was read from: the argument has one, it is set,
/// and the flag is not on the command line.
fn environment_source(error: &clap::Error, args: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(argument)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = argument.split_whitespace().next()?.strip_prefix("--")?;
    let variable = env_of(&Cli::command(), long)?;
    std::env::var_os(&variable)?;
    let flag = format!("--{long}");
    let on_command_line = args.iter().any(|arg| {
        arg.to_str()
            .is_some_and(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    });
    (!on_command_line).then_some(variable)
}

/// The environment variable of the flag `--long`, wherever in the command tree it is defined.
fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|sub| env_of(sub, long)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn refuse(args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let error = Cli::try_parse_from(&args).unwrap_err();
        argument_line(&error, &args)
    }

    #[test]
    fn a_missing_argument_is_named() {
        let line = refuse(&["mcp-manager", "user", "add", "--name", "Ada"]);
        assert!(line.contains("--email"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_malformed_number_names_its_flag() {
        for bad in ["abc", "0", "-3"] {
            let line = refuse(&["mcp-manager", "user", "disable", "--id", bad]);
            assert!(line.contains("--id"), "{line}");
            assert!(line.contains("1 or more"), "{line}");
        }
    }

    #[test]
    fn an_unknown_role_lists_the_roles() {
        let line = refuse(&[
            "mcp-manager",
            "org",
            "add-member",
            "--org",
            "1",
            "--user",
            "1",
            "--role",
            "boss",
        ]);
        assert!(line.contains("owner, admin, member"), "{line}");
    }

    #[test]
    fn errors_are_single_lines() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}

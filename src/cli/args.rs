//! What the command line accepts: every command, flag and value, with its help. Values are
//! parsed here (clap reports a malformed one with its flag, exit 2), except credentials, which
//! are read later so that no error can ever echo them.

use crate::config::{BindAddress, Settings};
use crate::validate::{non_negative, positive, ServiceName};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mcp_events::{IntegrationStatus, Role, SharedWith, EVENT_TYPES};
use mcp_tlog::Verifier;
use std::path::PathBuf;

/// Rows a listing returns when `--limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows one listing returns.
pub const MAX_LIMIT: i64 = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-manager",
    version,
    about = "Credential leases for MCP servers on a hash-chained ledger",
    after_help = "Admin commands print one JSON value on stdout. A refused command prints one line \
                  on stderr and exits 1 (2 for malformed arguments). Read-only commands (verify, \
                  replay --check, every list) never create or change anything."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the HTTP API (creates the ledger on first start).
    Serve {
        /// host:port to listen on; a name (localhost:3978) binds the first address it resolves to.
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:3978")]
        bind: BindAddress,
        /// Seed development data first if the ledger is empty, and print its tokens.
        #[arg(long)]
        seed: bool,
    },
    /// Create the development data (idempotent) and print fresh tokens (creates the ledger if
    /// there is none).
    Seed,
    /// Rebuild every projection from the event log.
    Replay {
        /// Only compare a rebuild (in memory) with the live tables; exit 1 on any difference.
        /// Read-only.
        #[arg(long)]
        check: bool,
    },
    /// Check the event log: its hash chain, and every stored checkpoint's signature and root
    /// against the tree of the events' hashes; with --checkpoint, that the log today extends a
    /// checkpoint an auditor kept; with --export, an exported log offline, without any
    /// database. Exit 1 naming the first position or tree size that disagrees. Read-only.
    Verify(VerifyArgs),
    /// Write the log (or the part after --after, up to --to) as JSON lines, one event object
    /// per line as the audit API serves it, and the signed checkpoint of exactly that size
    /// (signing one if none is stored). Reads the database only, except to sign.
    Export(ExportArgs),
    /// Users: add, disable, list.
    #[command(subcommand)]
    User(UserCommand),
    /// Organizations and their members.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Integrations: a service's credentials, owned by a user or an organization.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Bearer tokens of the MCP API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Credential leases: list them, revoke them (break-glass).
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The encryption key of stored credentials.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The log's signing key (Ed25519, signed-note syntax).
    #[command(subcommand)]
    LogKey(LogKeyCommand),
    /// Print the latest signed checkpoint (the note text, exactly as signed), signing one for
    /// the log's head first if the log has grown.
    Checkpoint,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A signed checkpoint (its note text, as `checkpoint`, `export --checkpoint-out` or the
    /// audit API gave it): the log must extend it. With --export, the export's checkpoint.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Verify this export (JSON lines of event objects from position 1) offline, against
    /// --checkpoint and --vkey; no database is opened.
    #[arg(long, value_name = "FILE", requires_all = ["checkpoint", "vkey"])]
    pub export: Option<PathBuf>,
    /// The log's verifier key (`<origin>+<key id>+<key>`), or @FILE (or a file's path) holding
    /// it, bare or as the JSON of /api/audit/key [default: derived from the configured signing
    /// key].
    #[arg(long, value_name = "VKEY", value_parser = parse_vkey)]
    pub vkey: Option<Verifier>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only the events after this position (0: from the first).
    #[arg(long, value_name = "P", default_value_t = 0, value_parser = non_negative, allow_negative_numbers = true)]
    pub after: i64,
    /// The last position exported, and the size of the checkpoint [default: the log's head].
    #[arg(long, value_name = "N", value_parser = positive, allow_negative_numbers = true)]
    pub to: Option<i64>,
    /// The file to write (replaced only once the export is complete).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write the signed checkpoint of the export's last position here (the note text,
    /// exactly as signed).
    #[arg(long, value_name = "FILE")]
    pub checkpoint_out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user (creates the ledger if there is none); prints {"id": …}.
    Add {
        /// E-mail address, unique (compared case-insensitively).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Read the user's web-console password from standard input (one line; at least 8
        /// characters). Without it the user cannot sign in until `user set-password`.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's web-console password, read from standard input (one line; at least 8
    /// characters). Only an Argon2id hash is kept; the log records that it changed.
    SetPassword {
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        id: i64,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user: their tokens stop working.
    Disable {
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        id: i64,
    },
    /// Every user, by id. Read-only.
    List,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization (creates the ledger if there is none); prints {"id": …}.
    Add {
        /// The organization's name.
        #[arg(long)]
        name: String,
    },
    /// Add a user to an organization, or change the role of a member.
    AddMember {
        /// The organization's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        org: i64,
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: i64,
        /// The member's role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Remove a member from an organization.
    RemoveMember {
        /// The organization's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        org: i64,
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: i64,
    },
    /// Every organization with its members. Read-only.
    List,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Add an integration with its credentials (encrypted at rest); prints {"id": …}.
    Add {
        /// The service: lowercase letters, digits, '_', '.', '-' (at most 64).
        #[arg(long, value_parser = ServiceName::parse)]
        service: ServiceName,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Who in the organization may use it: all_members, admins_only, or a comma-separated
        /// list of user ids such as 3,4 [default: all_members].
        #[arg(long, value_name = "WHO", requires = "org", value_parser = parse_shared_with)]
        shared_with: Option<SharedWith>,
        #[command(flatten)]
        credentials: CredentialsArgs,
        /// The integration's status.
        #[arg(long, value_enum, default_value = "active")]
        status: StatusArg,
    },
    /// Change an integration's status.
    SetStatus {
        /// The integration's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        id: i64,
        /// The new status.
        #[arg(long, value_enum)]
        status: StatusArg,
    },
    /// Store new credentials for an integration (a new secret version); prints
    /// {"id": …, "secret_version": …}.
    Rotate {
        /// The integration's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        id: i64,
        #[command(flatten)]
        credentials: CredentialsArgs,
    },
    /// Integrations, by id, never their credentials. Read-only.
    List {
        /// Only the personal integrations of this user.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true, conflicts_with = "org")]
        user: Option<i64>,
        /// Only the integrations of this organization.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        org: Option<i64>,
    },
}

/// Whose integration it is: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct OwnerArgs {
    /// A personal integration of this user.
    #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
    pub user: Option<i64>,
    /// An integration of this organization.
    #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
    pub org: Option<i64>,
}

/// Where the credentials come from: exactly one of the three. They are never printed, not even
/// when they are refused.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CredentialsArgs {
    /// The credentials, a JSON object. Other users of the machine can see command lines:
    /// prefer --credentials-file or --credentials-stdin.
    #[arg(long, value_name = "JSON")]
    pub credentials: Option<String>,
    /// Read the credentials (a JSON object) from this file.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Read the credentials (a JSON object) from standard input.
    #[arg(long)]
    pub credentials_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a user; prints {"id": …, "token": "mcp_…"}, the token shown this once.
    Create {
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: i64,
        /// A label: the token reads mcp_<name>_… (lowercase letters and digits).
        #[arg(long, default_value = "cli")]
        name: String,
        /// Seconds until the token expires [default: never].
        #[arg(long, value_name = "SECONDS", value_parser = positive, allow_negative_numbers = true)]
        expires_in: Option<i64>,
        /// How many requests the token may make [default: no limit].
        #[arg(long, value_name = "N", value_parser = positive, allow_negative_numbers = true)]
        max_uses: Option<i64>,
        /// What the token may call: the MCP lease routes, or the auditors' read-only API
        /// (/api/audit/*). Both may call GET /api/mcp/me.
        #[arg(long, value_enum, default_value_t = ScopeArg::Leases)]
        scope: ScopeArg,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        id: i64,
    },
    /// A user's tokens with their usage, never the tokens themselves. Read-only.
    List {
        /// The user's id.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Leases, newest first, never their credentials. Read-only.
    List {
        /// Only this user's leases.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: Option<i64>,
        /// Only the leases this token created.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        token: Option<i64>,
        /// Only the leases of this MCP server (its server_id).
        #[arg(long, value_name = "SERVER_ID")]
        server: Option<String>,
        /// Only leases with this status now.
        #[arg(long, value_enum)]
        status: Option<LeaseStatusArg>,
        /// At most this many (1 to 10000).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT, value_parser = parse_limit, allow_negative_numbers = true)]
        limit: i64,
    },
    /// Revoke one lease, or every active lease of a user, a token or a server; prints the count
    /// and the ids. Revoke the token (or disable the user) first so no new lease appears.
    Revoke {
        #[command(flatten)]
        target: RevokeTarget,
        /// Why, kept with each revocation.
        #[arg(long)]
        reason: Option<String>,
        /// Leases revoked per transaction (each holds the ledger lock briefly).
        #[arg(long, value_name = "N", default_value_t = 200, value_parser = parse_limit, allow_negative_numbers = true)]
        batch: i64,
    },
}

/// Which leases to revoke: exactly one of the four.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeTarget {
    /// This lease.
    #[arg(long, value_name = "LEASE_ID")]
    pub id: Option<String>,
    /// Every active lease of this user.
    #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
    pub user: Option<i64>,
    /// Every active lease this token created.
    #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
    pub token: Option<i64>,
    /// Every active lease of this MCP server (its server_id).
    #[arg(long, value_name = "SERVER_ID")]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records (one per event), newest first. Read-only.
    List {
        /// Only records about this user.
        #[arg(long, value_name = "ID", value_parser = positive, allow_negative_numbers = true)]
        user: Option<i64>,
        /// Only records of this action.
        #[arg(long, value_parser = PossibleValuesParser::new(EVENT_TYPES))]
        action: Option<String>,
        /// At most this many (1 to 10000).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT, value_parser = parse_limit, allow_negative_numbers = true)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Re-encrypt every stored credential under a new key, in batches; resumable (run it again
    /// after an interruption). The new key comes from MCP_ENCRYPTION_KEY or --new-key-file, the
    /// old one from MCP_ENCRYPTION_KEY_OLD or --old-key-file. Key files are read, never written.
    Rotate {
        /// A file holding the new key (base64 of 32 bytes, mode 0600); instead of
        /// MCP_ENCRYPTION_KEY.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// A file holding the old key (for SQLite, typically the `<database>.key` file);
        /// instead of MCP_ENCRYPTION_KEY_OLD.
        #[arg(long, value_name = "FILE")]
        old_key_file: Option<PathBuf>,
        /// Credentials re-encrypted per transaction (each holds the ledger lock briefly).
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_limit, allow_negative_numbers = true)]
        batch: i64,
        /// Stop after re-encrypting this many (the rest stays under the old key until the next
        /// run) [default: all].
        #[arg(long, value_name = "N", value_parser = positive, allow_negative_numbers = true)]
        limit: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogKeyCommand {
    /// Print a new signing key pair as JSON: {"private_key": "PRIVATE+KEY+…", "vkey": "…"}. Keep
    /// the private key in the secret store (MCP_LOG_SIGNING_KEY); give the vkey to auditors.
    Generate {
        /// The log's origin, which names the key [default: MCP_LOG_ORIGIN, or
        /// mcp-manager.local/ledger].
        #[arg(long)]
        origin: Option<String>,
    },
}

/// A token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// The MCP lease routes (today's MCP servers).
    Leases,
    /// The auditors' read-only API: events, the live stream, checkpoints, proofs, tiles.
    Audit,
}

impl From<ScopeArg> for mcp_events::TokenScope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Leases => mcp_events::TokenScope::Leases,
            ScopeArg::Audit => mcp_events::TokenScope::Audit,
        }
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Owner,
    Admin,
    Member,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Owner => Role::Owner,
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
        }
    }
}

/// An integration's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Active,
    Inactive,
    Expired,
    Error,
}

impl From<StatusArg> for IntegrationStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Active => IntegrationStatus::Active,
            StatusArg::Inactive => IntegrationStatus::Inactive,
            StatusArg::Expired => IntegrationStatus::Expired,
            StatusArg::Error => IntegrationStatus::Error,
        }
    }
}

/// A lease's status at the time of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LeaseStatusArg {
    Active,
    Expired,
    Revoked,
}

fn parse_shared_with(text: &str) -> Result<SharedWith, String> {
    SharedWith::parse(text).ok_or_else(|| {
        "must be all_members, admins_only or a list of user ids such as 3,4".to_owned()
    })
}

/// A verifier key given on the command line: the key itself, `@FILE`, or the path of a file
/// holding it (bare, or the JSON of `/api/audit/key` or `log-key generate`), as the Python
/// verifier reads it.
fn parse_vkey(text: &str) -> Result<Verifier, String> {
    let from_file = |path: &str| -> Result<Verifier, String> {
        let contents = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the verifier key file {path}: {e}"))?;
        let contents = contents.trim();
        let vkey = if contents.starts_with('{') {
            let json: serde_json::Value =
                serde_json::from_str(contents).map_err(|_| format!("{path} is not valid JSON"))?;
            json.get("vkey")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("{path} has no \"vkey\" member"))?
        } else {
            contents.to_owned()
        };
        Verifier::parse(&vkey).map_err(|e| format!("{path} holds no verifier key: {e}"))
    };
    if let Some(path) = text.strip_prefix('@') {
        return from_file(path);
    }
    if std::path::Path::new(text).is_file() {
        return from_file(text);
    }
    Verifier::parse(text.trim()).map_err(|e| format!("not a verifier key ({e})"))
}

fn parse_limit(text: &str) -> Result<i64, String> {
    positive(text)
        .ok()
        .filter(|n| *n <= MAX_LIMIT)
        .ok_or_else(|| format!("must be a whole number from 1 to {MAX_LIMIT}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no help");
            }
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no help",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "mcp-manager");
    }
}

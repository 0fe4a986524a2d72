//! The command line of CONTRACT.md. Admin commands print one JSON value on stdout; failures print
//! one line on stderr and exit non-zero.

use crate::clock::{Clock, SystemClock};
use crate::commands::directory::*;
use crate::commands::integrations::*;
use crate::commands::tokens::*;
use crate::config::{BindAddress, Settings};
use crate::ledger::CommandError;
use crate::ledger::Ledger;
use crate::tokens::expose;
use crate::validate::{parse_credentials, ServiceName};
use clap::{Parser, Subcommand};
use mcp_events::{IntegrationOwner, IntegrationStatus, Metadata, Role, SharedWith, Timestamp};
use mcp_projections::queries;
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-manager",
    version,
    about = "Credential leases for MCP servers on a hash-chained ledger"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the HTTP API.
    Serve {
        /// host:port to listen on; a name (localhost:3978) binds the first address it resolves to.
        #[arg(long, default_value = "127.0.0.1:3978")]
        bind: BindAddress,
        /// Seed development data first if the ledger is empty, and print its tokens.
        #[arg(long)]
        seed: bool,
    },
    /// Create the development data (idempotent) and print fresh tokens.
    Seed,
    /// Rebuild every projection from the event log.
    Replay {
        /// Compare a rebuild with the live tables instead; exit 1 on any difference.
        #[arg(long)]
        check: bool,
    },
    /// Check the event log's hash chain; exit 1 naming the first bad position.
    Verify,
    #[command(subcommand)]
    User(UserCommand),
    #[command(subcommand)]
    Org(OrgCommand),
    #[command(subcommand)]
    Integration(IntegrationCommand),
    #[command(subcommand)]
    Token(TokenCommand),
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    Disable {
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    Add {
        #[arg(long)]
        name: String,
    },
    AddMember {
        #[arg(long)]
        org: i64,
        #[arg(long)]
        user: i64,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    RemoveMember {
        #[arg(long)]
        org: i64,
        #[arg(long)]
        user: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    Add {
        #[arg(long, value_parser = ServiceName::parse)]
        service: ServiceName,
        #[arg(long, conflicts_with = "org", required_unless_present = "org")]
        user: Option<i64>,
        #[arg(long)]
        org: Option<i64>,
        #[arg(long, requires = "org", value_parser = parse_shared_with)]
        shared_with: Option<SharedWith>,
        #[arg(long, value_parser = parse_credentials)]
        credentials: Map<String, Value>,
        #[arg(long, value_parser = parse_status, default_value = "active")]
        status: IntegrationStatus,
    },
    SetStatus {
        #[arg(long)]
        id: i64,
        #[arg(long, value_parser = parse_status)]
        status: IntegrationStatus,
    },
    Rotate {
        #[arg(long)]
        id: i64,
        #[arg(long, value_parser = parse_credentials)]
        credentials: Map<String, Value>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    Create {
        #[arg(long)]
        user: i64,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Seconds until the token expires (default: never).
        #[arg(long)]
        expires_in: Option<i64>,
        #[arg(long)]
        max_uses: Option<i64>,
    },
    Revoke {
        #[arg(long)]
        id: i64,
    },
    List {
        #[arg(long)]
        user: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records, newest first.
    List {
        #[arg(long)]
        user: Option<i64>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?} (owner, admin or member)"))
}

fn parse_status(text: &str) -> Result<IntegrationStatus, String> {
    IntegrationStatus::parse(text)
        .ok_or_else(|| format!("unknown status {text:?} (active, inactive, expired or error)"))
}

fn parse_shared_with(text: &str) -> Result<SharedWith, String> {
    SharedWith::parse(text).ok_or_else(|| {
        format!("{text:?} is not all_members, admins_only or a list of user ids like 3,4")
    })
}

/// What a failed command prints: one line, and the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            message: error.to_string(),
            code: 1,
        }
    }
}

pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the argument and the problem.
            let rendered = error.render().to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
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
        Err(failure) => {
            let line = failure.message.replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::from(failure.code)
        }
    }
}

fn metadata() -> Metadata {
    Metadata::actor("cli")
}

fn print(value: Value) {
    println!("{value}");
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = cli.settings;
    match cli.command {
        CliCommand::Serve { bind, seed } => {
            crate::serve::serve(settings, clock, bind, seed).await?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Verify => verify(&settings).await,
        command => {
            let ledger = crate::app::open_ledger(&settings, clock).await?;
            let code = admin(&ledger, command).await?;
            ledger.store().database().close().await;
            Ok(code)
        }
    }
}

async fn verify(settings: &Settings) -> Result<ExitCode, Failure> {
    use mcp_events::{Database, DbOptions, EventStore, VerifyOutcome};
    let database = Database::connect(&settings.database_url, &DbOptions::default()).await?;
    let outcome = EventStore::new(database).verify().await?;
    match outcome {
        VerifyOutcome::Valid { events, head } => {
            print(json!({ "valid": true, "events": events, "head": head }));
            Ok(ExitCode::SUCCESS)
        }
        VerifyOutcome::Broken { position, reason } => {
            print(json!({ "valid": false, "position": position, "reason": reason }));
            eprintln!("error: the event log is broken at position {position}: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}

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

async fn admin(ledger: &Ledger, command: CliCommand) -> Result<ExitCode, Failure> {
    match command {
        CliCommand::Seed => {
            let seeded = crate::seed::seed(ledger).await?;
            seeded.print();
        }
        CliCommand::Replay { check } => {
            let mut progress = progress_reporter();
            if check {
                match mcp_projections::check(ledger.store(), &mut progress).await? {
                    mcp_projections::CheckOutcome::Same(report) => {
                        print(json!({ "identical": true, "events": report.events }))
                    }
                    mcp_projections::CheckOutcome::Differs { table, description } => {
                        print(
                            json!({ "identical": false, "table": table, "difference": description }),
                        );
                        eprintln!("error: projection {table} differs from the log: {description}");
                        return Ok(ExitCode::from(1));
                    }
                }
            } else {
                let report = mcp_projections::rebuild(ledger.store(), &mut progress).await?;
                print(json!({ "rebuilt": true, "events": report.events }));
            }
        }
        CliCommand::User(UserCommand::Add { email, name }) => {
            let id = ledger
                .submit(RegisterUser {
                    email,
                    name,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id }));
        }
        CliCommand::User(UserCommand::Disable { id }) => {
            ledger
                .submit(DisableUser {
                    user_id: id,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "disabled": true }));
        }
        CliCommand::Org(OrgCommand::Add { name }) => {
            let id = ledger
                .submit(CreateOrganization {
                    name,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id }));
        }
        CliCommand::Org(OrgCommand::AddMember { org, user, role }) => {
            ledger
                .submit(AddMember {
                    organization_id: org,
                    user_id: user,
                    role,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "organization_id": org, "user_id": user, "role": role.as_str() }));
        }
        CliCommand::Org(OrgCommand::RemoveMember { org, user }) => {
            ledger
                .submit(RemoveMember {
                    organization_id: org,
                    user_id: user,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "organization_id": org, "user_id": user, "removed": true }));
        }
        CliCommand::Integration(IntegrationCommand::Add {
            service,
            user,
            org,
            shared_with,
            credentials,
            status,
        }) => {
            let owner = match (user, org) {
                (Some(user_id), _) => IntegrationOwner::User { user_id },
                (None, Some(organization_id)) => IntegrationOwner::Organization {
                    organization_id,
                    shared_with: shared_with.unwrap_or(SharedWith::AllMembers),
                },
                (None, None) => return Err("give --user or --org".into()),
            };
            let id = ledger
                .submit(AddIntegration {
                    service,
                    owner,
                    status,
                    credentials,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id }));
        }
        CliCommand::Integration(IntegrationCommand::SetStatus { id, status }) => {
            ledger
                .submit(SetIntegrationStatus {
                    integration_id: id,
                    status,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "status": status.as_str() }));
        }
        CliCommand::Integration(IntegrationCommand::Rotate { id, credentials }) => {
            let version = ledger
                .submit(RotateIntegration {
                    integration_id: id,
                    credentials,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "secret_version": version }));
        }
        CliCommand::Token(TokenCommand::Create {
            user,
            name,
            expires_in,
            max_uses,
        }) => {
            let issued = ledger
                .submit(IssueToken {
                    user_id: user,
                    name,
                    expires_in,
                    max_uses,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": issued.id, "token": expose(&issued.token) }));
        }
        CliCommand::Token(TokenCommand::Revoke { id }) => {
            ledger
                .submit(RevokeToken {
                    token_id: id,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "revoked": true }));
        }
        CliCommand::Token(TokenCommand::List { user }) => {
            let mut conn = ledger.store().database().pool().acquire().await?;
            if queries::user(&mut conn, user).await?.is_none() {
                return Err(
                    CommandError::from(crate::domain::DomainError::UserNotFound(user)).into(),
                );
            }
            let now = ledger.now();
            let tokens: Vec<Value> = queries::tokens_of_user(&mut conn, user)
                .await?
                .into_iter()
                .map(|t| {
                    let expired = t.expires_at.is_some_and(|at| now.as_micros() >= at);
                    let status = if t.revoked {
                        "revoked"
                    } else if expired {
                        "expired"
                    } else {
                        "active"
                    };
                    json!({
                        "id": t.id,
                        "name": t.name,
                        "status": status,
                        "expires_at": t.expires_at.map(Timestamp::from_micros),
                        "max_uses": t.max_uses,
                        "usage_count": t.usage_count,
                        "last_used_at": t.last_used_at.map(Timestamp::from_micros),
                        "created_at": Timestamp::from_micros(t.created_at),
                    })
                })
                .collect();
            print(Value::Array(tokens));
        }
        CliCommand::Audit(AuditCommand::List {
            user,
            action,
            limit,
        }) => {
            if !(1..=10_000).contains(&limit) {
                return Err("--limit must be between 1 and 10000".into());
            }
            let mut conn = ledger.store().database().pool().acquire().await?;
            let records: Vec<Value> = queries::audit(&mut conn, user, action.as_deref(), limit)
                .await?
                .into_iter()
                .map(|a| {
                    json!({
                        "id": a.position,
                        "user_id": a.user_id,
                        "action": a.action,
                        "entity_type": a.entity_type,
                        "entity_id": a.entity_id,
                        "ip": a.ip,
                        "user_agent": a.user_agent,
                        "details": serde_json::from_str::<Value>(&a.details).unwrap_or(Value::Null),
                        "created_at": Timestamp::from_micros(a.created_at),
                    })
                })
                .collect();
            print(Value::Array(records));
        }
        CliCommand::Serve { .. } | CliCommand::Verify => {
            unreachable!("handled before the ledger opens")
        }
    }
    Ok(ExitCode::SUCCESS)
}

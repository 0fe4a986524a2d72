//! The write commands: each opens the ledger as its purpose allows (only `seed`, `user add` and
//! `org add` may create one; only commands that seal credentials load the keys), submits
//! commands, and prints one JSON value.

use super::args::{
    CliCommand, IntegrationCommand, LeaseCommand, OrgCommand, OwnerArgs, RevokeTarget,
    TokenCommand, UserCommand,
};
use super::refusal::Failure;
use super::{credentials, print};
use crate::commands::accounts::SetPassword;
use crate::commands::directory::*;
use crate::commands::integrations::*;
use crate::commands::leases::RevokeLeases;
use crate::commands::tokens::*;
use crate::ledger::Ledger;
use crate::open::Write;
use crate::tokens::expose;
use mcp_events::{IntegrationOwner, Metadata, Role, SharedWith};
use mcp_projections::queries::{self, LeaseFilter, LeaseState};
use serde_json::{json, Map, Value};
use std::process::ExitCode;

/// What a write command may do on opening the ledger.
pub fn access(command: &CliCommand) -> Write {
    let create = matches!(
        command,
        CliCommand::Seed
            | CliCommand::User(UserCommand::Add { .. })
            | CliCommand::Org(OrgCommand::Add { .. })
    );
    let keys = matches!(
        command,
        CliCommand::Seed
            | CliCommand::Integration(
                IntegrationCommand::Add { .. } | IntegrationCommand::Rotate { .. }
            )
    );
    Write { create, keys }
}

/// Credentials a command carries, read (from the flag, a file or stdin) and checked before
/// anything is opened, so a malformed value changes nothing.
pub fn credentials_of(command: &CliCommand) -> Result<Option<Map<String, Value>>, Failure> {
    match command {
        CliCommand::Integration(
            IntegrationCommand::Add { credentials, .. }
            | IntegrationCommand::Rotate { credentials, .. },
        ) => credentials::read(credentials).map(Some),
        _ => Ok(None),
    }
}

pub fn metadata() -> Metadata {
    Metadata::actor("cli")
}

/// Runs a write command; `credentials` are what [`credentials_of`] read for it.
pub async fn run(
    ledger: &Ledger,
    command: CliCommand,
    credentials: Option<Map<String, Value>>,
    progress: &mut mcp_projections::replay::Progress<'_>,
) -> Result<ExitCode, Failure> {
    let credentials = || credentials.ok_or_else(|| Failure::usage("no credentials were given"));
    match command {
        CliCommand::Seed => {
            let seeded = crate::seed::seed(ledger).await?;
            seeded.print();
        }
        CliCommand::Replay { .. } => {
            // The rebuild checks the log against its latest signed checkpoint, signature
            // included: without the key a forged checkpoint row could vouch for a forged log.
            let key = ledger.log_key();
            if key.is_none() && has_checkpoints(ledger).await? {
                return Err(
                    "replay checks the log against its latest signed checkpoint, whose signature \
                     needs the log's key: set MCP_LOG_SIGNING_KEY (or restore the SQLite \
                     signing key file beside the database)"
                        .into(),
                );
            }
            let report = mcp_projections::rebuild_checked(ledger.store(), progress, key).await?;
            print(json!({ "rebuilt": true, "events": report.events }));
        }
        CliCommand::User(UserCommand::Add {
            email,
            name,
            password_stdin,
        }) => {
            // The password is read and checked first, so a bad one registers nobody.
            let phc = match password_stdin {
                true => Some(hash_password(read_password()?).await?),
                false => None,
            };
            let id = ledger
                .submit(RegisterUser {
                    email,
                    name,
                    metadata: metadata(),
                })
                .await?;
            if let Some(phc) = phc {
                ledger
                    .submit(SetPassword {
                        user_id: id,
                        phc,
                        metadata: metadata(),
                    })
                    .await?;
            }
            print(json!({ "id": id }));
        }
        CliCommand::User(UserCommand::SetPassword { id, .. }) => {
            let phc = hash_password(read_password()?).await?;
            ledger
                .submit(SetPassword {
                    user_id: id,
                    phc,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "password_set": true }));
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
            let role = Role::from(role);
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
            owner: OwnerArgs { user, org },
            shared_with,
            status,
            ..
        }) => {
            let owner = match (user, org) {
                (Some(user_id), _) => IntegrationOwner::User { user_id },
                (None, Some(organization_id)) => IntegrationOwner::Organization {
                    organization_id,
                    shared_with: shared_with.unwrap_or(SharedWith::AllMembers),
                },
                (None, None) => return Err(Failure::usage("give --user or --org")),
            };
            let credentials = credentials()?;
            let id = ledger
                .submit(AddIntegration {
                    service,
                    owner,
                    status: status.into(),
                    credentials,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id }));
        }
        CliCommand::Integration(IntegrationCommand::SetStatus { id, status }) => {
            let status = mcp_events::IntegrationStatus::from(status);
            ledger
                .submit(SetIntegrationStatus {
                    integration_id: id,
                    status,
                    metadata: metadata(),
                })
                .await?;
            print(json!({ "id": id, "status": status.as_str() }));
        }
        CliCommand::Integration(IntegrationCommand::Rotate { id, .. }) => {
            let credentials = credentials()?;
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
            scope,
        }) => {
            let issued = ledger
                .submit(IssueToken {
                    user_id: user,
                    scope: scope.into(),
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
        CliCommand::Lease(LeaseCommand::Revoke {
            target,
            reason,
            batch,
        }) => {
            revoke_leases(ledger, target, reason, batch).await?;
        }
        other => unreachable!("{other:?} is not a write command"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease revoke`: one lease by id, or every lease of a user, token or server that is active
/// when the command starts, `batch` per transaction so one command never holds the ledger lock
/// for long.
async fn revoke_leases(
    ledger: &Ledger,
    target: RevokeTarget,
    reason: Option<String>,
    batch: i64,
) -> Result<(), Failure> {
    if let Some(reason) = &reason {
        crate::validate::text_field("reason", reason, 255)
            .map_err(|e| Failure::usage(format!("--reason: {e}")))?;
    }
    if let Some(server) = &target.server {
        crate::validate::text_field("server id", server, 255)
            .map_err(|e| Failure::usage(format!("--server: {e}")))?;
    }
    let revoke = |lease_ids: Vec<String>| RevokeLeases {
        lease_ids,
        reason: reason.clone(),
        metadata: metadata(),
    };
    if let Some(id) = target.id {
        let outcome = ledger.submit(revoke(vec![id.clone()])).await?;
        if !outcome.unknown.is_empty() {
            return Err(format!("lease {id} does not exist").into());
        }
        print(json!({
            "revoked": outcome.revoked.len(),
            "lease_ids": outcome.revoked,
            "already_revoked": outcome.already_revoked,
        }));
        return Ok(());
    }
    let filter = LeaseFilter {
        user_id: target.user,
        token_id: target.token,
        server_id: target.server,
        state: Some(LeaseState::Active),
        created_until: Some(ledger.now().as_micros()),
    };
    let mut revoked = Vec::new();
    loop {
        let found = {
            let mut conn = ledger.store().database().pool().acquire().await?;
            queries::leases(&mut conn, &filter, ledger.now().as_micros(), batch).await?
        };
        if found.is_empty() {
            break;
        }
        let ids = found.into_iter().map(|lease| lease.id).collect();
        let outcome = ledger.submit(revoke(ids)).await?;
        if outcome.revoked.is_empty() && outcome.already_revoked.is_empty() {
            // Only possible if the leases found vanished; never loop on a batch that changes
            // nothing. (Leases revoked meanwhile by their owners are not found again.)
            break;
        }
        revoked.extend(outcome.revoked);
    }
    print(json!({ "revoked": revoked.len(), "lease_ids": revoked }));
    Ok(())
}

/// One line of standard input: the password (its line ending is not part of it).
fn read_password() -> Result<secrecy::SecretString, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read --password-stdin: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    crate::accounts::password::check(&password)
        .map_err(|why| Failure::usage(format!("--password-stdin: {why}")))?;
    Ok(password.into())
}

async fn hash_password(password: secrecy::SecretString) -> Result<String, Failure> {
    crate::accounts::password::hash(password)
        .await
        .map_err(|why| Failure::usage(format!("--password-stdin: {why}")))
}

async fn has_checkpoints(ledger: &Ledger) -> Result<bool, Failure> {
    let mut conn = ledger.store().database().pool().acquire().await?;
    Ok(mcp_events::checkpoints::latest(&mut conn).await?.is_some())
}

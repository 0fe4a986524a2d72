//! The read-only commands: `replay --check` and every listing (`verify` is with the auditors'
//! commands). They open an existing
//! ledger read-only and never create or change anything (no database, schema, table or key
//! file); each prints one JSON value. Listings never show a secret: tokens appear by id,
//! credentials by integration, version and key id.

use super::args::{
    AuditCommand, CliCommand, IntegrationCommand, LeaseCommand, LeaseStatusArg, OrgCommand,
    TokenCommand, UserCommand,
};
use super::print;
use super::refusal::Failure;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::http::views::{lease_json, token_json};
use mcp_events::{EventStore, Timestamp};
use mcp_projections::queries::{self, LeaseFilter, LeaseState};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Whether a command only reads (and so is run here).
pub fn is_read_only(command: &CliCommand) -> bool {
    matches!(
        command,
        CliCommand::Replay { check: true }
            | CliCommand::User(UserCommand::List)
            | CliCommand::Org(OrgCommand::List)
            | CliCommand::Integration(IntegrationCommand::List { .. })
            | CliCommand::Token(TokenCommand::List { .. })
            | CliCommand::Lease(LeaseCommand::List { .. })
            | CliCommand::Audit(AuditCommand::List { .. })
    )
}

pub async fn run(
    settings: &Settings,
    command: CliCommand,
    progress: &mut mcp_projections::replay::Progress<'_>,
) -> Result<ExitCode, Failure> {
    let store = crate::open::read_only(settings).await?;
    let outcome = read(&store, command, progress).await;
    store.database().close().await;
    outcome
}

async fn read(
    store: &EventStore,
    command: CliCommand,
    progress: &mut mcp_projections::replay::Progress<'_>,
) -> Result<ExitCode, Failure> {
    if let CliCommand::Replay { .. } = command {
        return check(store, progress).await;
    }
    // Listings read the projections, which only a writer brings up to date.
    if !mcp_projections::schema::current(store)
        .await
        .unwrap_or(false)
    {
        return Err(
            "the projections are not current (this build changed them, or they are behind the \
             log): start the server once, or run `mcp-manager replay`, as the schema's owner"
                .into(),
        );
    }
    let mut conn = store.database().pool().acquire().await?;
    let now = SystemClock.now();
    let listing = match command {
        CliCommand::User(UserCommand::List) => users(&mut conn).await?,
        CliCommand::Org(OrgCommand::List) => organizations(&mut conn).await?,
        CliCommand::Integration(IntegrationCommand::List { user, org }) => {
            integrations(&mut conn, user, org).await?
        }
        CliCommand::Token(TokenCommand::List { user }) => tokens(&mut conn, user, now).await?,
        CliCommand::Lease(LeaseCommand::List {
            user,
            token,
            server,
            status,
            limit,
        }) => {
            let filter = LeaseFilter {
                user_id: user,
                token_id: token,
                server_id: server,
                state: status.map(|status| match status {
                    LeaseStatusArg::Active => LeaseState::Active,
                    LeaseStatusArg::Expired => LeaseState::Expired,
                    LeaseStatusArg::Revoked => LeaseState::Revoked,
                }),
                created_until: None,
            };
            let leases = queries::leases(&mut conn, &filter, now.as_micros(), limit).await?;
            Value::Array(leases.iter().map(|l| lease_json(l, now)).collect())
        }
        CliCommand::Audit(AuditCommand::List {
            user,
            action,
            limit,
        }) => audit(&mut conn, user, action.as_deref(), limit).await?,
        other => unreachable!("{other:?} is not a listing"),
    };
    print(listing);
    Ok(ExitCode::SUCCESS)
}

async fn check(
    store: &EventStore,
    progress: &mut mcp_projections::replay::Progress<'_>,
) -> Result<ExitCode, Failure> {
    match mcp_projections::check(store, progress).await? {
        mcp_projections::CheckOutcome::Same(report) => {
            print(json!({ "identical": true, "events": report.events }));
            Ok(ExitCode::SUCCESS)
        }
        mcp_projections::CheckOutcome::Differs { table, description } => {
            print(json!({ "identical": false, "table": table, "difference": description }));
            Err(format!("projection {table} differs from the log: {description}").into())
        }
        mcp_projections::CheckOutcome::LogDoesNotVerify(reason) => {
            print(json!({ "identical": false, "log": reason }));
            Err(format!(
                "the log does not verify, so projections cannot be checked against it: {reason}"
            )
            .into())
        }
    }
}

type Conn = sqlx::pool::PoolConnection<sqlx::Any>;

async fn users(conn: &mut Conn) -> Result<Value, Failure> {
    let users = queries::users(conn).await?;
    Ok(users
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id,
                "email": u.email,
                "name": u.name,
                "disabled": u.disabled,
                "created_at": Timestamp::from_micros(u.created_at),
            })
        })
        .collect())
}

async fn organizations(conn: &mut Conn) -> Result<Value, Failure> {
    let mut members: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for m in queries::memberships(conn).await? {
        members.entry(m.organization_id).or_default().push(json!({
            "user_id": m.user_id,
            "role": m.role,
            "created_at": Timestamp::from_micros(m.created_at),
        }));
    }
    let organizations = queries::organizations(conn).await?;
    Ok(organizations
        .into_iter()
        .map(|o| {
            json!({
                "id": o.id,
                "name": o.name,
                "created_at": Timestamp::from_micros(o.created_at),
                "members": members.remove(&o.id).unwrap_or_default(),
            })
        })
        .collect())
}

async fn integrations(
    conn: &mut Conn,
    user: Option<i64>,
    org: Option<i64>,
) -> Result<Value, Failure> {
    let integrations = queries::integrations_with_key_ids(conn, user, org).await?;
    Ok(integrations
        .into_iter()
        .map(|(i, key_id)| {
            json!({
                "id": i.id,
                "service": i.service,
                "user_id": i.user_id,
                "organization_id": i.organization_id,
                "shared_with": i.shared_with,
                "status": i.status,
                "secret_version": i.secret_version,
                "key_id": key_id,
                "created_at": Timestamp::from_micros(i.created_at),
                "updated_at": Timestamp::from_micros(i.updated_at),
            })
        })
        .collect())
}

async fn tokens(conn: &mut Conn, user: i64, now: Timestamp) -> Result<Value, Failure> {
    if queries::user(conn, user).await?.is_none() {
        return Err(crate::domain::DomainError::UserNotFound(user).into());
    }
    let tokens = queries::tokens_of_user(conn, user).await?;
    Ok(tokens.iter().map(|t| token_json(t, now)).collect())
}

async fn audit(
    conn: &mut Conn,
    user: Option<i64>,
    action: Option<&str>,
    limit: i64,
) -> Result<Value, Failure> {
    let records = queries::audit(conn, user, action, limit).await?;
    Ok(records
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
        .collect())
}

//! Development data (CONTRACT.md "Development data"), created through real commands so the log
//! holds every event. Idempotent: a second run only issues fresh tokens.

use crate::commands::accounts::SetPassword;
use crate::commands::directory::*;
use crate::commands::integrations::AddIntegration;
use crate::commands::mcp::{Answer, Caller, CreateLease, McpRequest, RenewLease};
use crate::commands::tokens::{IssueToken, RevokeToken};
use crate::ledger::{CommandError, Ledger};
use crate::tokens::{expose, hash_token};
use crate::validate::ServiceName;
use mcp_events::{IntegrationOwner, IntegrationStatus, Metadata, Role, SharedWith};
use mcp_projections::queries;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

pub const TEST_USER_EMAIL: &str = "test@mcp-manager.local";
/// The test user's web-console password, as the guide gives it (development data only).
pub const TEST_USER_PASSWORD: &str = "password";
pub const SERVER_USER_EMAIL: &str = "mcp-server@system.local";

/// The tokens a seed run issued; printed once, never logged.
pub struct Seeded {
    pub mcp_token: SecretString,
    pub server_token: SecretString,
}

impl Seeded {
    pub fn print(&self) {
        println!("MCP_TOKEN={}", self.mcp_token.expose_secret());
        println!("MCP_SERVER_TOKEN={}", self.server_token.expose_secret());
    }
}

fn meta() -> Metadata {
    Metadata::actor("seed")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("seed credentials are objects"),
    }
}

/// The development credentials of each seeded integration (the guide's sample values); the
/// tests prove none of them ever reaches the log.
pub fn development_credentials() -> Vec<(&'static str, Value)> {
    vec![
        (
            "jira",
            json!({"url": "https://dev-team.atlassian.net", "email": "jira@dev-team.local", "api_token": "dev-jira-api-token", "cloud": true}),
        ),
        (
            "notion",
            json!({"access_token": "dev-notion-access-token", "database_id": "dev-notion-database"}),
        ),
        (
            "sentry",
            json!({"auth_token": "dev-sentry-auth-token", "org_slug": "client-projects"}),
        ),
        (
            "todoist",
            json!({"access_token": "dev-todoist-access-token"}),
        ),
        ("openai", json!({"access_token": "dev-openai-access-token"})),
        ("gmail", json!({"access_token": "dev-gmail-access-token"})),
    ]
}

fn credentials_of(service: &str) -> Value {
    development_credentials()
        .into_iter()
        .find_map(|(name, credentials)| (name == service).then_some(credentials))
        .expect("every seeded integration has development credentials")
}

fn service(name: &str) -> ServiceName {
    ServiceName::parse(name).expect("seed service names are valid")
}

/// Whether the ledger holds no event at all.
pub async fn ledger_is_empty(ledger: &Ledger) -> Result<bool, CommandError> {
    Ok(ledger.store().head().await?.0 == 0)
}

pub async fn seed(ledger: &Ledger) -> Result<Seeded, CommandError> {
    let existing = {
        let mut conn = ledger
            .store()
            .database()
            .pool()
            .acquire()
            .await
            .map_err(CommandError::from)?;
        let test = queries::user_by_email(&mut conn, TEST_USER_EMAIL).await?;
        let server = queries::user_by_email(&mut conn, SERVER_USER_EMAIL).await?;
        test.zip(server).map(|(t, s)| (t.id, s.id))
    };
    let (test_user, server_user) = match existing {
        Some(ids) => ids,
        None => create_data(ledger).await?,
    };
    let mcp_token = ledger
        .submit(IssueToken {
            user_id: test_user,
            scope: mcp_events::TokenScope::Leases,
            name: "dev".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await?
        .token;
    let server_token = ledger
        .submit(IssueToken {
            user_id: server_user,
            scope: mcp_events::TokenScope::Leases,
            name: "server".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await?
        .token;
    Ok(Seeded {
        mcp_token,
        server_token,
    })
}

async fn create_data(ledger: &Ledger) -> Result<(i64, i64), CommandError> {
    let user = |email: &str, name: &str| RegisterUser {
        email: email.into(),
        name: name.into(),
        metadata: meta(),
    };
    let test_user = ledger.submit(user(TEST_USER_EMAIL, "Test User")).await?;
    let server_user = ledger.submit(user(SERVER_USER_EMAIL, "MCP Server")).await?;
    // The guide's development password, for the web console.
    let phc = crate::accounts::password::hash(TEST_USER_PASSWORD.to_owned().into())
        .await
        .map_err(|why| CommandError::Internal(why.to_string()))?;
    ledger
        .submit(SetPassword {
            user_id: test_user,
            phc,
            metadata: meta(),
        })
        .await?;

    let dev_team = ledger
        .submit(CreateOrganization {
            name: "Development Team".into(),
            metadata: meta(),
        })
        .await?;
    let clients = ledger
        .submit(CreateOrganization {
            name: "Client Projects".into(),
            metadata: meta(),
        })
        .await?;
    for organization_id in [dev_team, clients] {
        ledger
            .submit(AddMember {
                organization_id,
                user_id: test_user,
                role: Role::Owner,
                metadata: meta(),
            })
            .await?;
    }

    let integrations = [
        (
            "jira",
            IntegrationOwner::Organization {
                organization_id: dev_team,
                shared_with: SharedWith::AllMembers,
            },
            IntegrationStatus::Active,
            credentials_of("jira"),
        ),
        (
            "notion",
            IntegrationOwner::Organization {
                organization_id: dev_team,
                shared_with: SharedWith::AllMembers,
            },
            IntegrationStatus::Active,
            credentials_of("notion"),
        ),
        (
            "sentry",
            IntegrationOwner::Organization {
                organization_id: clients,
                shared_with: SharedWith::AdminsOnly,
            },
            IntegrationStatus::Active,
            credentials_of("sentry"),
        ),
        (
            "todoist",
            IntegrationOwner::User { user_id: test_user },
            IntegrationStatus::Active,
            credentials_of("todoist"),
        ),
        (
            "openai",
            IntegrationOwner::User { user_id: test_user },
            IntegrationStatus::Active,
            credentials_of("openai"),
        ),
        (
            "gmail",
            IntegrationOwner::User { user_id: test_user },
            IntegrationStatus::Expired,
            credentials_of("gmail"),
        ),
    ];
    for (name, owner, status, credentials) in integrations {
        ledger
            .submit(AddIntegration {
                service: service(name),
                owner,
                status,
                credentials: object(credentials),
                metadata: meta(),
            })
            .await?;
    }

    // The leases are made through the API's own command with a short-lived seeding token, so
    // the log holds exactly what a real MCP server's calls would leave.
    let seeding = ledger
        .submit(IssueToken {
            user_id: test_user,
            scope: mcp_events::TokenScope::Leases,
            name: "seed".into(),
            expires_in: None,
            max_uses: None,
            metadata: meta(),
        })
        .await?;
    let caller = Caller {
        token_hash: Some(hash_token(expose(&seeding.token))),
        request_id: None,
        ip: None,
        user_agent: Some("mcp-manager seed".into()),
    };
    let policy = ledger.policy();
    let short_ttl = 300.clamp(policy.min_ttl, policy.max_ttl);
    let hour = 3600.clamp(policy.min_ttl, policy.max_ttl);
    let leases = [
        (vec!["todoist", "openai"], "mcp-server-dev-1", hour, 0),
        (vec!["jira", "notion"], "mcp-server-dev-1", hour, 2),
        (vec!["sentry"], "mcp-server-dev-2", short_ttl, 0),
    ];
    for (services, server_id, ttl, renewals) in leases {
        let action = CreateLease {
            services: services.into_iter().map(String::from).collect(),
            ttl,
            server_id: server_id.into(),
            renewable: true,
            client_info: None,
        };
        let created = ledger
            .submit(McpRequest {
                caller: caller.clone(),
                action,
            })
            .await?;
        let lease_id = match created {
            Answer::Granted(lease) => lease.lease_id,
            Answer::Refused(refusal) => {
                return Err(CommandError::Internal(format!(
                    "seeding a lease failed: {refusal:?}"
                )))
            }
        };
        for _ in 0..renewals {
            let action = RenewLease {
                lease_id: lease_id.clone(),
                ttl: None,
            };
            let renewed = ledger
                .submit(McpRequest {
                    caller: caller.clone(),
                    action,
                })
                .await?;
            if let Answer::Refused(refusal) = renewed {
                return Err(CommandError::Internal(format!(
                    "seeding a renewal failed: {refusal:?}"
                )));
            }
        }
    }
    ledger
        .submit(RevokeToken {
            token_id: seeding.id,
            metadata: meta(),
        })
        .await?;
    Ok((test_user, server_user))
}

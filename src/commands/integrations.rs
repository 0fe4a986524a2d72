//! Integrations: added with credentials, rotated to new credentials, switched on and off.
//! The event names the secret version; the credentials go, encrypted, to the secret table.

use crate::domain::integration::{Integration, IntegrationCommand};
use crate::domain::DomainError;
use crate::ledger::{Command, CommandError};
use crate::ledger::{Ctx, IdTable};
use crate::validate::ServiceName;
use mcp_events::{IntegrationOwner, IntegrationStatus, Metadata, SharedWith, StreamId};
use mcp_projections::rows::{Cell, OrganizationRow};
use serde_json::{Map, Value};

pub struct AddIntegration {
    pub service: ServiceName,
    pub owner: IntegrationOwner,
    pub status: IntegrationStatus,
    pub credentials: Map<String, Value>,
    pub metadata: Metadata,
}

impl Command for AddIntegration {
    type Output = i64;

    async fn execute(&self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        match &self.owner {
            IntegrationOwner::User { user_id } => {
                if ctx.user(*user_id).await?.is_none() {
                    return Err(DomainError::UserNotFound(*user_id).into());
                }
            }
            IntegrationOwner::Organization {
                organization_id,
                shared_with,
            } => {
                let organization = ctx
                    .row::<OrganizationRow>(Cell::Int(Some(*organization_id)))
                    .await?;
                if organization.is_none() {
                    return Err(DomainError::OrganizationNotFound(*organization_id).into());
                }
                if let SharedWith::Users(ids) = shared_with {
                    for id in ids {
                        if ctx.user(*id).await?.is_none() {
                            return Err(DomainError::UserNotFound(*id).into());
                        }
                    }
                }
            }
        }
        let integration_id = ctx.next_id(IdTable::Integrations).await?;
        let (service, owner, status) = (
            self.service.as_str().to_owned(),
            self.owner.clone(),
            self.status,
        );
        let before = ctx
            .decide(
                &StreamId::integration(integration_id),
                &self.metadata,
                |integration: &Integration| {
                    integration.decide(IntegrationCommand::Add {
                        integration_id,
                        service,
                        owner,
                        status,
                    })
                },
            )
            .await?;
        ctx.store_secret(
            integration_id,
            before.next_secret_version(),
            &self.credentials,
        )?;
        Ok(integration_id)
    }
}

pub struct RotateIntegration {
    pub integration_id: i64,
    pub credentials: Map<String, Value>,
    pub metadata: Metadata,
}

impl Command for RotateIntegration {
    /// The new secret version.
    type Output = i64;

    async fn execute(&self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let before = on_existing(
            ctx,
            self.integration_id,
            &self.metadata,
            IntegrationCommand::Rotate,
        )
        .await?;
        let secret_version = before.next_secret_version();
        ctx.store_secret(self.integration_id, secret_version, &self.credentials)?;
        Ok(secret_version)
    }
}

pub struct SetIntegrationStatus {
    pub integration_id: i64,
    pub status: IntegrationStatus,
    pub metadata: Metadata,
}

impl Command for SetIntegrationStatus {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let command = IntegrationCommand::SetStatus(self.status);
        on_existing(ctx, self.integration_id, &self.metadata, command).await?;
        Ok(())
    }
}

/// Removes an integration: leases stop resolving to it; its events and sealed versions stay.
pub struct RemoveIntegration {
    pub integration_id: i64,
    pub metadata: Metadata,
}

impl Command for RemoveIntegration {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let command = IntegrationCommand::Remove;
        on_existing(ctx, self.integration_id, &self.metadata, command).await?;
        Ok(())
    }
}

/// Runs a command on an integration that must exist; returns its state before the command.
async fn on_existing(
    ctx: &mut Ctx,
    integration_id: i64,
    metadata: &Metadata,
    command: IntegrationCommand,
) -> Result<Integration, CommandError> {
    ctx.decide(
        &StreamId::integration(integration_id),
        metadata,
        |integration: &Integration| {
            if integration.id.is_none() || integration.removed {
                return Err(DomainError::IntegrationNotFound(integration_id));
            }
            integration.decide(command)
        },
    )
    .await
}

//! Integrations: added with credentials, rotated to new credentials, switched on and off.
//! The event names the secret version; the credentials go, encrypted, to the secret table.

use super::{Command, CommandError};
use crate::domain::integration::{Integration, IntegrationCommand};
use crate::domain::DomainError;
use crate::ledger::{Ctx, IdTable};
use crate::validate::ServiceName;
use mcp_events::{
    ExpectedVersion, IntegrationOwner, IntegrationStatus, Metadata, SharedWith, StreamId,
};
use mcp_projections::queries;
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

    async fn execute(self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        match &self.owner {
            IntegrationOwner::User { user_id } => {
                if queries::user(ctx.conn(), *user_id).await?.is_none() {
                    return Err(DomainError::UserNotFound(*user_id).into());
                }
            }
            IntegrationOwner::Organization {
                organization_id,
                shared_with,
            } => {
                if queries::organization(ctx.conn(), *organization_id)
                    .await?
                    .is_none()
                {
                    return Err(DomainError::OrganizationNotFound(*organization_id).into());
                }
                if let SharedWith::Users(ids) = shared_with {
                    for id in ids {
                        if queries::user(ctx.conn(), *id).await?.is_none() {
                            return Err(DomainError::UserNotFound(*id).into());
                        }
                    }
                }
            }
        }
        let integration_id = ctx.next_id(IdTable::Integrations).await?;
        let stream = StreamId::integration(integration_id);
        let (integration, version) = ctx.load::<Integration>(&stream).await?;
        let events = integration.decide(IntegrationCommand::Add {
            integration_id,
            service: self.service.into_inner(),
            owner: self.owner,
            status: self.status,
        })?;
        let secret_version = integration.next_secret_version();
        ctx.store_secret(integration_id, secret_version, &self.credentials)
            .await?;
        ctx.append(
            &stream,
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
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

    async fn execute(self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let (integration, version) = load_existing(ctx, self.integration_id).await?;
        let events = integration.decide(IntegrationCommand::Rotate)?;
        let secret_version = integration.next_secret_version();
        ctx.store_secret(self.integration_id, secret_version, &self.credentials)
            .await?;
        ctx.append(
            &StreamId::integration(self.integration_id),
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
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

    async fn execute(self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let (integration, version) = load_existing(ctx, self.integration_id).await?;
        let events = integration.decide(IntegrationCommand::SetStatus(self.status))?;
        ctx.append(
            &StreamId::integration(self.integration_id),
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

async fn load_existing(
    ctx: &mut Ctx,
    integration_id: i64,
) -> Result<(Integration, i64), CommandError> {
    let (integration, version) = ctx
        .load::<Integration>(&StreamId::integration(integration_id))
        .await?;
    if integration.id.is_none() || integration.removed {
        return Err(DomainError::IntegrationNotFound(integration_id).into());
    }
    Ok((integration, version))
}

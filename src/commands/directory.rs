//! Users, organizations and memberships.

use super::{Command, CommandError};
use crate::domain::organization::{Organization, OrganizationCommand};
use crate::domain::user::{User, UserCommand};
use crate::domain::DomainError;
use crate::ledger::{Ctx, IdTable};
use mcp_events::{ExpectedVersion, Metadata, Role, StreamId};
use mcp_projections::queries;

pub struct RegisterUser {
    pub email: String,
    pub name: String,
    pub metadata: Metadata,
}

impl Command for RegisterUser {
    type Output = i64;

    async fn execute(self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let email = self.email.trim().to_owned();
        if !email.contains('@') || email.len() > 255 {
            return Err(DomainError::Invalid(format!("{email:?} is not an email address")).into());
        }
        if self.name.trim().is_empty() {
            return Err(DomainError::Invalid("a user needs a name".into()).into());
        }
        if queries::user_by_email(ctx.conn(), &email).await?.is_some() {
            return Err(DomainError::EmailTaken(email).into());
        }
        let user_id = ctx.next_id(IdTable::Users).await?;
        let stream = StreamId::user(user_id);
        let (user, version) = ctx.load::<User>(&stream).await?;
        let events = user.decide(UserCommand::Register {
            user_id,
            email,
            name: self.name.trim().to_owned(),
        })?;
        ctx.append(
            &stream,
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(user_id)
    }
}

pub struct DisableUser {
    pub user_id: i64,
    pub metadata: Metadata,
}

impl Command for DisableUser {
    type Output = ();

    async fn execute(self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let stream = StreamId::user(self.user_id);
        let (user, version) = ctx.load::<User>(&stream).await?;
        let events = user.decide(UserCommand::Disable {
            user_id: self.user_id,
        })?;
        ctx.append(
            &stream,
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

pub struct CreateOrganization {
    pub name: String,
    pub metadata: Metadata,
}

impl Command for CreateOrganization {
    type Output = i64;

    async fn execute(self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > 255 {
            return Err(DomainError::Invalid(
                "an organization needs a name (1-255 characters)".into(),
            )
            .into());
        }
        let organization_id = ctx.next_id(IdTable::Organizations).await?;
        let stream = StreamId::organization(organization_id);
        let (organization, version) = ctx.load::<Organization>(&stream).await?;
        let events = organization.decide(OrganizationCommand::Create {
            organization_id,
            name,
        })?;
        ctx.append(
            &stream,
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(organization_id)
    }
}

/// Adds a user to an organization, or changes their role there.
pub struct AddMember {
    pub organization_id: i64,
    pub user_id: i64,
    pub role: Role,
    pub metadata: Metadata,
}

impl Command for AddMember {
    type Output = ();

    async fn execute(self, ctx: &mut Ctx) -> Result<(), CommandError> {
        if queries::user(ctx.conn(), self.user_id).await?.is_none() {
            return Err(DomainError::UserNotFound(self.user_id).into());
        }
        let stream = StreamId::organization(self.organization_id);
        let (organization, version) = load_existing(ctx, &stream, self.organization_id).await?;
        let events = organization.decide(OrganizationCommand::AddMember {
            user_id: self.user_id,
            role: self.role,
        })?;
        ctx.append(
            &stream,
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

pub struct RemoveMember {
    pub organization_id: i64,
    pub user_id: i64,
    pub metadata: Metadata,
}

impl Command for RemoveMember {
    type Output = ();

    async fn execute(self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let stream = StreamId::organization(self.organization_id);
        let (organization, version) = load_existing(ctx, &stream, self.organization_id).await?;
        let events = organization.decide(OrganizationCommand::RemoveMember {
            user_id: self.user_id,
        })?;
        ctx.append(
            &stream,
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
    stream: &StreamId,
    organization_id: i64,
) -> Result<(Organization, i64), CommandError> {
    let (organization, version) = ctx.load::<Organization>(stream).await?;
    if organization.id.is_none() {
        return Err(DomainError::OrganizationNotFound(organization_id).into());
    }
    Ok((organization, version))
}

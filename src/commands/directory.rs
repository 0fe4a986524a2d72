//! Users, organizations and memberships.

use crate::domain::organization::{Organization, OrganizationCommand};
use crate::domain::user::{User, UserCommand};
use crate::domain::DomainError;
use crate::ledger::{Command, CommandError};
use crate::ledger::{Ctx, IdTable};
use crate::validate::text_field;
use mcp_events::{Metadata, Role, StreamId};

pub struct RegisterUser {
    pub email: String,
    pub name: String,
    pub metadata: Metadata,
}

impl Command for RegisterUser {
    type Output = i64;

    async fn execute(&self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let email = text_field("email", &self.email, 255)?;
        let name = text_field("name", &self.name, 255)?;
        if !email.contains('@') {
            return Err(DomainError::Invalid(format!("{email:?} is not an email address")).into());
        }
        if ctx.user_by_email(&email).await?.is_some() {
            return Err(DomainError::EmailTaken(email).into());
        }
        let user_id = ctx.next_id(IdTable::Users).await?;
        ctx.decide(&StreamId::user(user_id), &self.metadata, |user: &User| {
            user.decide(UserCommand::Register {
                user_id,
                email,
                name,
            })
        })
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

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let user_id = self.user_id;
        ctx.decide(&StreamId::user(user_id), &self.metadata, |user: &User| {
            user.decide(UserCommand::Disable { user_id })
        })
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

    async fn execute(&self, ctx: &mut Ctx) -> Result<i64, CommandError> {
        let name = text_field("name", &self.name, 255)?;
        let organization_id = ctx.next_id(IdTable::Organizations).await?;
        ctx.decide(
            &StreamId::organization(organization_id),
            &self.metadata,
            |organization: &Organization| {
                organization.decide(OrganizationCommand::Create {
                    organization_id,
                    name,
                })
            },
        )
        .await?;
        Ok(organization_id)
    }
}

/// Runs a membership command on an organization that must exist.
async fn on_existing(
    ctx: &mut Ctx,
    organization_id: i64,
    metadata: &Metadata,
    command: OrganizationCommand,
) -> Result<(), CommandError> {
    ctx.decide(
        &StreamId::organization(organization_id),
        metadata,
        |organization: &Organization| match organization.id {
            None => Err(DomainError::OrganizationNotFound(organization_id)),
            Some(_) => organization.decide(command),
        },
    )
    .await?;
    Ok(())
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

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        if ctx.user(self.user_id).await?.is_none() {
            return Err(DomainError::UserNotFound(self.user_id).into());
        }
        let command = OrganizationCommand::AddMember {
            user_id: self.user_id,
            role: self.role,
        };
        on_existing(ctx, self.organization_id, &self.metadata, command).await
    }
}

pub struct RemoveMember {
    pub organization_id: i64,
    pub user_id: i64,
    pub metadata: Metadata,
}

impl Command for RemoveMember {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let command = OrganizationCommand::RemoveMember {
            user_id: self.user_id,
        };
        on_existing(ctx, self.organization_id, &self.metadata, command).await
    }
}

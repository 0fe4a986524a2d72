//! People's accounts: passwords, sessions, refused sign-ins, and `AsUser`, which runs any other
//! command on a signed-in person's behalf only if the object is theirs (or their organization's,
//! with the role it needs). The check runs under the ledger lock, in the same unit of work as the
//! command, so a role removed a moment earlier is already seen.

use crate::domain::user::User;
use crate::domain::DomainError;
use crate::ledger::{Command, CommandError, Ctx, Prefetch};
use mcp_events::{DomainEvent, ExpectedVersion, Metadata, Role, StreamId};
use mcp_projections::rows::{
    Cell, IntegrationRow, LeaseRow, MembershipRow, PasswordRow, SessionRow, TokenRow,
};

/// Sets (or replaces) a user's password; `phc` is its Argon2id hash, computed before submitting
/// (hashing is slow and must not hold the ledger lock).
pub struct SetPassword {
    pub user_id: i64,
    pub phc: String,
    pub metadata: Metadata,
}

impl Command for SetPassword {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let user_id = self.user_id;
        ctx.decide(
            &StreamId::user(user_id),
            &self.metadata,
            |user: &User| match user.id {
                None => Err(DomainError::UserNotFound(user_id)),
                Some(_) => Ok(vec![DomainEvent::UserPasswordSet { user_id }]),
            },
        )
        .await?;
        ctx.put_password(PasswordRow {
            user_id,
            phc: self.phc.clone(),
            set_at: ctx.now().as_micros(),
        });
        Ok(())
    }
}

/// Starts a session for a user whose password was just verified (and who must still be
/// enabled when the session is recorded).
pub struct StartSession {
    pub user_id: i64,
    pub session_hash: String,
    /// Seconds until the session ends whatever the activity.
    pub lifetime: i64,
    pub metadata: Metadata,
}

impl Command for StartSession {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        match ctx.user(self.user_id).await? {
            Some(user) if !user.disabled => {}
            _ => return Err(DomainError::SessionEnded.into()),
        }
        let started = DomainEvent::AccountSessionStarted {
            session_hash: self.session_hash.clone(),
            user_id: self.user_id,
            expires_at: ctx.now().plus_seconds(self.lifetime),
        };
        ctx.append_to_new_stream(
            &StreamId::session(&self.session_hash),
            &[started],
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

/// Records activity on a session that has not ended.
pub struct RefreshSession {
    pub session_hash: String,
    pub metadata: Metadata,
}

impl Command for RefreshSession {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let session = live_session(ctx, &self.session_hash).await?;
        let refreshed = DomainEvent::AccountSessionRefreshed {
            session_hash: session.id.clone(),
            user_id: session.user_id,
        };
        ctx.append(
            &StreamId::session(&session.id),
            ExpectedVersion::Exact(session.version),
            &[refreshed],
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

/// Ends a session (signing out). Ending one that already ended changes nothing.
pub struct EndSession {
    pub session_hash: String,
    pub reason: &'static str,
    pub metadata: Metadata,
}

impl Command for EndSession {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let session = match live_session(ctx, &self.session_hash).await {
            Ok(session) => session,
            Err(CommandError::Domain(DomainError::SessionEnded)) => return Ok(()),
            Err(other) => return Err(other),
        };
        let ended = DomainEvent::AccountSessionEnded {
            session_hash: session.id.clone(),
            user_id: session.user_id,
            reason: self.reason.to_owned(),
        };
        ctx.append(
            &StreamId::session(&session.id),
            ExpectedVersion::Exact(session.version),
            &[ended],
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

async fn live_session(ctx: &mut Ctx, session_hash: &str) -> Result<SessionRow, CommandError> {
    match ctx
        .row::<SessionRow>(Cell::Text(Some(session_hash.to_owned())))
        .await?
    {
        Some(session) if session.ended_at.is_none() => Ok(session),
        _ => Err(DomainError::SessionEnded.into()),
    }
}

/// Records a refused sign-in: the user when the e-mail is theirs, and why. Never the e-mail or
/// the password tried.
pub struct RecordSignInFailure {
    pub user_id: Option<i64>,
    pub reason: &'static str,
    pub metadata: Metadata,
}

impl Command for RecordSignInFailure {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let failed = DomainEvent::AccountSignInFailed {
            user_id: self.user_id,
            reason: self.reason.to_owned(),
        };
        ctx.append(
            &StreamId::sign_in(self.user_id),
            ExpectedVersion::Any,
            &[failed],
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

/// What a signed-in person needs for a command to run on their behalf.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Nothing beyond being signed in (the command acts on their own account only).
    Own,
    /// Their personal integration.
    Integration(i64),
    /// Their token.
    Token(i64),
    /// Their lease.
    Lease(String),
    /// Membership of the organization.
    Member(i64),
    /// Owner or admin of the organization.
    Manager(i64),
    /// Owner of the organization.
    Owner(i64),
    /// An integration of the organization, managed by one of its owners or admins.
    OrganizationIntegration {
        organization_id: i64,
        integration_id: i64,
    },
}

/// Runs `command` for `user_id` if `grant` holds; otherwise `NotYours` (404: nothing confirms
/// that another user's object exists) or `NotPermitted` (403: a member without the role).
pub struct AsUser<C> {
    pub user_id: i64,
    pub grant: Grant,
    pub command: C,
}

impl<C: Command> Command for AsUser<C> {
    type Output = C::Output;

    fn prefetch(&self, wanted: &mut Prefetch) {
        self.command.prefetch(wanted)
    }

    async fn execute(&self, ctx: &mut Ctx) -> Result<C::Output, CommandError> {
        check(ctx, self.user_id, &self.grant).await?;
        self.command.execute(ctx).await
    }
}

/// The user's role in an organization, or `NotYours` when they are not in it.
pub async fn role_in(
    ctx: &mut Ctx,
    user_id: i64,
    organization_id: i64,
) -> Result<Role, CommandError> {
    let key = vec![Cell::Int(Some(organization_id)), Cell::Int(Some(user_id))];
    let membership = ctx.row_by_key::<MembershipRow>(key).await?;
    membership
        .and_then(|m| Role::parse(&m.role))
        .ok_or_else(|| DomainError::NotYours.into())
}

async fn check(ctx: &mut Ctx, user_id: i64, grant: &Grant) -> Result<(), CommandError> {
    let not_yours = || CommandError::from(DomainError::NotYours);
    match grant {
        Grant::Own => Ok(()),
        Grant::Integration(id) => {
            let row = ctx.row::<IntegrationRow>(Cell::Int(Some(*id))).await?;
            match row {
                Some(row) if row.user_id == Some(user_id) && row.status != "removed" => Ok(()),
                _ => Err(not_yours()),
            }
        }
        Grant::Token(id) => match ctx.row::<TokenRow>(Cell::Int(Some(*id))).await? {
            Some(row) if row.user_id == user_id => Ok(()),
            _ => Err(not_yours()),
        },
        Grant::Lease(id) => match ctx.row::<LeaseRow>(Cell::Text(Some(id.clone()))).await? {
            Some(row) if row.user_id == user_id => Ok(()),
            _ => Err(not_yours()),
        },
        Grant::Member(organization_id) => role_in(ctx, user_id, *organization_id).await.map(drop),
        Grant::Manager(organization_id) => {
            if role_in(ctx, user_id, *organization_id).await?.is_admin() {
                Ok(())
            } else {
                Err(DomainError::NotPermitted.into())
            }
        }
        Grant::Owner(organization_id) => {
            if role_in(ctx, user_id, *organization_id).await? == Role::Owner {
                Ok(())
            } else {
                Err(DomainError::NotPermitted.into())
            }
        }
        Grant::OrganizationIntegration {
            organization_id,
            integration_id,
        } => {
            let role = role_in(ctx, user_id, *organization_id).await?;
            let row = ctx
                .row::<IntegrationRow>(Cell::Int(Some(*integration_id)))
                .await?;
            match row {
                Some(row)
                    if row.organization_id == Some(*organization_id) && row.status != "removed" => {
                }
                _ => return Err(not_yours()),
            }
            if role.is_admin() {
                Ok(())
            } else {
                Err(DomainError::NotPermitted.into())
            }
        }
    }
}

/// What an owner or admin does to an organization's membership from the account API.
#[derive(Debug, Clone, Copy)]
pub enum MemberChange {
    /// Adds someone who is not a member yet.
    Add(Role),
    /// Changes a member's role (owners only).
    SetRole(Role),
    Remove,
}

/// Changes a membership on `actor`'s behalf, with the rules the console promises: owners and
/// admins add and remove members, only owners make owners, change roles or remove owners, and
/// nobody changes or removes their own membership (so an organization keeps the owner who
/// manages it; the operator's CLI is the way out).
pub struct ManageMember {
    pub actor: i64,
    pub organization_id: i64,
    pub user_id: i64,
    pub change: MemberChange,
    pub metadata: Metadata,
}

impl Command for ManageMember {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let org = self.organization_id;
        let actor = role_in(ctx, self.actor, org).await?;
        if !actor.is_admin() {
            return Err(DomainError::NotPermitted.into());
        }
        let key = vec![Cell::Int(Some(org)), Cell::Int(Some(self.user_id))];
        let target = ctx
            .row_by_key::<MembershipRow>(key)
            .await?
            .and_then(|m| Role::parse(&m.role));
        if self.user_id == self.actor && !matches!(self.change, MemberChange::Add(_)) {
            return Err(DomainError::Invalid(
                "you cannot change or remove your own membership".into(),
            )
            .into());
        }
        let owner_needed = match self.change {
            MemberChange::Add(role) => role == Role::Owner,
            MemberChange::SetRole(_) => true,
            MemberChange::Remove => target == Some(Role::Owner),
        };
        if owner_needed && actor != Role::Owner {
            return Err(DomainError::NotPermitted.into());
        }
        let metadata = self.metadata.clone();
        match (self.change, target) {
            (MemberChange::Add(_), Some(role)) => Err(DomainError::AlreadyMember {
                organization_id: org,
                user_id: self.user_id,
                role: role.as_str(),
            }
            .into()),
            (MemberChange::Add(role) | MemberChange::SetRole(role), _) => {
                if matches!(self.change, MemberChange::SetRole(_)) && target.is_none() {
                    return Err(DomainError::NotYours.into());
                }
                let add = crate::commands::directory::AddMember {
                    organization_id: org,
                    user_id: self.user_id,
                    role,
                    metadata,
                };
                add.execute(ctx).await
            }
            (MemberChange::Remove, None) => Err(DomainError::NotYours.into()),
            (MemberChange::Remove, Some(_)) => {
                let remove = crate::commands::directory::RemoveMember {
                    organization_id: org,
                    user_id: self.user_id,
                    metadata,
                };
                remove.execute(ctx).await
            }
        }
    }
}

//! Bearer tokens: issued (shown once, stored as a SHA-256 hash) and revoked.

use crate::domain::token::{Token, TokenCommand};
use crate::domain::DomainError;
use crate::ledger::{Command, CommandError};
use crate::ledger::{Ctx, IdTable};
use crate::tokens::token_state;
use crate::validate::text_field;
use mcp_events::{ExpectedVersion, Metadata, StreamId, TokenScope};
use mcp_projections::rows::{Cell, TokenRow};
use secrecy::SecretString;

/// The longest a token may be issued for: 100 years (of 365 days). Past that a timestamp has
/// no four-digit year, and far enough past it the arithmetic overflows; a token meant never to
/// expire is issued without an expiry.
pub const MAX_EXPIRES_IN: i64 = 100 * 365 * 86_400;

pub struct IssueToken {
    pub user_id: i64,
    /// What the token may call (`leases`: the MCP lease routes; `audit`: the auditors' API).
    pub scope: TokenScope,
    pub name: String,
    pub expires_in: Option<i64>,
    pub max_uses: Option<i64>,
    pub metadata: Metadata,
}

pub struct IssuedToken {
    pub id: i64,
    /// The token itself: returned once, never stored.
    pub token: SecretString,
}

impl Command for IssueToken {
    type Output = IssuedToken;

    async fn execute(&self, ctx: &mut Ctx) -> Result<IssuedToken, CommandError> {
        match ctx.user(self.user_id).await? {
            None => return Err(DomainError::UserNotFound(self.user_id).into()),
            Some(user) if user.disabled => {
                return Err(
                    DomainError::Invalid(format!("user {} is disabled", self.user_id)).into(),
                )
            }
            Some(_) => {}
        }
        if self.expires_in.is_some_and(|s| s <= 0) || self.max_uses.is_some_and(|n| n <= 0) {
            return Err(DomainError::Invalid(
                "--expires-in and --max-uses must be positive".into(),
            )
            .into());
        }
        if self.expires_in.is_some_and(|s| s > MAX_EXPIRES_IN) {
            return Err(DomainError::Invalid(format!(
                "--expires-in must be at most {MAX_EXPIRES_IN} seconds (100 years)"
            ))
            .into());
        }
        let name = text_field("name", &self.name, 255)?;
        let new = ctx.new_token(&name);
        let token_id = ctx.next_id(IdTable::Tokens).await?;
        let events = Token::default().decide(
            TokenCommand::Issue {
                token_id,
                user_id: self.user_id,
                name,
                token_hash: new.hash.clone(),
                expires_at: self.expires_in.map(|s| ctx.now().plus_seconds(s)),
                max_uses: self.max_uses,
                scope: self.scope,
            },
            ctx.now(),
        )?;
        ctx.append(
            &StreamId::token(token_id),
            ExpectedVersion::NoStream,
            &events,
            &self.metadata,
        )
        .await?;
        Ok(IssuedToken {
            id: token_id,
            token: new.token,
        })
    }
}

pub struct RevokeToken {
    pub token_id: i64,
    pub metadata: Metadata,
}

impl Command for RevokeToken {
    type Output = ();

    async fn execute(&self, ctx: &mut Ctx) -> Result<(), CommandError> {
        let row = ctx
            .row::<TokenRow>(Cell::Int(Some(self.token_id)))
            .await?
            .ok_or(DomainError::TokenNotFound(self.token_id))?;
        let version = row.version;
        let events = token_state(&row).decide(TokenCommand::Revoke, ctx.now())?;
        ctx.append(
            &StreamId::token(self.token_id),
            ExpectedVersion::Exact(version),
            &events,
            &self.metadata,
        )
        .await?;
        Ok(())
    }
}

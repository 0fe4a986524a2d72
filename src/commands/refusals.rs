//! Refused requests turned away before the ledger during a flood (see `http::flood`), recorded
//! afterwards as one `mcp_auth_failed` per kind of refusal and window, with their count.

use crate::domain::AuthRefusal;
use crate::ledger::{Command, CommandError, Ctx};
use mcp_events::{DomainEvent, ExpectedVersion, Metadata, Repeated, StreamId};

/// Identical refusals: same reason, same address, same token (by hash; never recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedRefusal {
    pub token_hash: Option<String>,
    pub reason: AuthRefusal,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub repeated: Repeated,
}

pub struct RecordRepeatedRefusals(pub Vec<RepeatedRefusal>);

impl Command for RecordRepeatedRefusals {
    /// How many events were appended.
    type Output = usize;

    async fn execute(&self, ctx: &mut Ctx) -> Result<usize, CommandError> {
        for refusal in &self.0 {
            let token = match &refusal.token_hash {
                Some(hash) => ctx.token_by_hash(hash).await?,
                None => None,
            };
            let metadata = Metadata {
                actor: Some(match &token {
                    Some(token) => format!("user:{}", token.user_id),
                    None => "anonymous".to_owned(),
                }),
                token_id: token.as_ref().map(|t| t.id),
                request_id: None,
                ip: refusal.ip.clone(),
                user_agent: refusal.user_agent.clone(),
            };
            let event = DomainEvent::McpAuthFailed {
                token_id: token.as_ref().map(|t| t.id),
                user_id: token.as_ref().map(|t| t.user_id),
                reason: refusal.reason.to_string(),
                repeated: Some(refusal.repeated),
            };
            let (stream, expected) = match &token {
                Some(token) => (
                    StreamId::token(token.id),
                    ExpectedVersion::Exact(token.version),
                ),
                None => (StreamId::anonymous_auth(), ExpectedVersion::Any),
            };
            ctx.append(&stream, expected, &[event], &metadata).await?;
        }
        Ok(self.0.len())
    }
}

//! A bearer token: issued, used, possibly revoked; refused when expired, inactive or used up.
//!
//! The token's stream grows by one event per use, so the command layer loads this state from the
//! token projection (kept exact in the append transaction) instead of folding the whole stream.

use super::{Aggregate, AuthRefusal, DomainError};
use mcp_events::{DomainEvent, Timestamp, TokenScope};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: Option<i64>,
    pub user_id: i64,
    pub scope: TokenScope,
    pub revoked: bool,
    pub expires_at: Option<Timestamp>,
    pub max_uses: Option<i64>,
    pub usage_count: i64,
}

#[derive(Debug, Clone)]
pub enum TokenCommand {
    Issue {
        token_id: i64,
        user_id: i64,
        name: String,
        token_hash: String,
        expires_at: Option<Timestamp>,
        max_uses: Option<i64>,
        scope: TokenScope,
    },
    Revoke,
    /// One request presenting this token; `user_disabled` is the owner's state.
    Authenticate {
        user_disabled: bool,
    },
}

impl Aggregate for Token {
    fn apply(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::TokenIssued {
                token_id,
                user_id,
                expires_at,
                max_uses,
                scope,
                ..
            } => {
                self = Token {
                    id: Some(*token_id),
                    user_id: *user_id,
                    scope: *scope,
                    revoked: false,
                    expires_at: *expires_at,
                    max_uses: *max_uses,
                    usage_count: 0,
                }
            }
            DomainEvent::TokenRevoked { .. } => self.revoked = true,
            DomainEvent::McpAuthSucceeded { .. } => self.usage_count += 1,
            _ => {}
        }
        self
    }
}

impl Token {
    /// Why this token may not be used at `now`, if it may not.
    pub fn refusal(&self, now: Timestamp, user_disabled: bool) -> Option<AuthRefusal> {
        if self.id.is_none() {
            Some(AuthRefusal::Invalid)
        } else if self.expires_at.is_some_and(|at| now >= at) {
            Some(AuthRefusal::Expired)
        } else if self.revoked || user_disabled {
            Some(AuthRefusal::Inactive)
        } else if self.max_uses.is_some_and(|max| self.usage_count >= max) {
            Some(AuthRefusal::UsageLimitExceeded)
        } else {
            None
        }
    }

    /// Authentication always records a fact: a use, or a refusal with its reason.
    pub fn authenticate(
        &self,
        now: Timestamp,
        user_disabled: bool,
    ) -> (DomainEvent, Option<AuthRefusal>) {
        let token_id = self.id;
        match self.refusal(now, user_disabled) {
            None => (
                DomainEvent::McpAuthSucceeded {
                    token_id: token_id.expect("a recognised token has an id"),
                    user_id: self.user_id,
                    at: now,
                },
                None,
            ),
            Some(refusal) => (
                DomainEvent::McpAuthFailed {
                    token_id,
                    user_id: token_id.map(|_| self.user_id),
                    reason: refusal.to_string(),
                    repeated: None,
                },
                Some(refusal),
            ),
        }
    }

    pub fn decide(
        &self,
        command: TokenCommand,
        now: Timestamp,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            TokenCommand::Issue {
                token_id,
                user_id,
                name,
                token_hash,
                expires_at,
                max_uses,
                scope,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::Invalid(format!(
                        "token {token_id} already exists"
                    )));
                }
                Ok(vec![DomainEvent::TokenIssued {
                    token_id,
                    user_id,
                    name,
                    token_hash,
                    expires_at,
                    max_uses,
                    scope,
                }])
            }
            TokenCommand::Revoke => match self.id {
                None => Err(DomainError::Invalid("token does not exist".into())),
                Some(id) if self.revoked => Err(DomainError::TokenAlreadyRevoked(id)),
                Some(token_id) => Ok(vec![DomainEvent::TokenRevoked {
                    token_id,
                    user_id: self.user_id,
                }]),
            },
            TokenCommand::Authenticate { user_disabled } => {
                Ok(vec![self.authenticate(now, user_disabled).0])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(seconds * 1_000_000)
    }

    fn issued(expires_at: Option<Timestamp>, max_uses: Option<i64>) -> Token {
        Token::default()
            .decide(
                TokenCommand::Issue {
                    token_id: 3,
                    user_id: 1,
                    name: "dev".into(),
                    token_hash: "ab".into(),
                    expires_at,
                    max_uses,
                    scope: TokenScope::Leases,
                },
                at(0),
            )
            .map(|events| Token::fold(&events))
            .unwrap()
    }

    #[test]
    fn a_valid_token_records_a_use() {
        let token = issued(None, None);
        let (event, refusal) = token.authenticate(at(10), false);
        assert_eq!(refusal, None);
        assert_eq!(
            event,
            DomainEvent::McpAuthSucceeded {
                token_id: 3,
                user_id: 1,
                at: at(10)
            }
        );
        assert_eq!(token.apply(&event).usage_count, 1);
    }

    #[test]
    fn an_expired_token_is_refused_from_its_expiry_on() {
        let token = issued(Some(at(100)), None);
        assert_eq!(token.refusal(at(99), false), None);
        assert_eq!(token.refusal(at(100), false), Some(AuthRefusal::Expired));
        let (event, _) = token.authenticate(at(100), false);
        assert_eq!(
            event,
            DomainEvent::McpAuthFailed {
                token_id: Some(3),
                user_id: Some(1),
                reason: "Token has expired".into(),
                repeated: None,
            }
        );
    }

    #[test]
    fn revoked_tokens_and_disabled_users_are_inactive() {
        let revoked = issued(None, None).apply(&DomainEvent::TokenRevoked {
            token_id: 3,
            user_id: 1,
        });
        assert_eq!(revoked.refusal(at(1), false), Some(AuthRefusal::Inactive));
        assert_eq!(
            issued(None, None).refusal(at(1), true),
            Some(AuthRefusal::Inactive)
        );
    }

    #[test]
    fn a_usage_limit_allows_exactly_max_uses() {
        let mut token = issued(None, Some(2));
        for _ in 0..2 {
            let (event, refusal) = token.authenticate(at(1), false);
            assert_eq!(refusal, None);
            token = token.apply(&event);
        }
        assert_eq!(
            token.authenticate(at(1), false).1,
            Some(AuthRefusal::UsageLimitExceeded)
        );
    }

    #[test]
    fn an_unknown_token_is_invalid_and_names_nobody() {
        let (event, refusal) = Token::default().authenticate(at(1), false);
        assert_eq!(refusal, Some(AuthRefusal::Invalid));
        assert_eq!(
            event,
            DomainEvent::McpAuthFailed {
                token_id: None,
                user_id: None,
                reason: "Invalid token".into(),
                repeated: None,
            }
        );
    }

    #[test]
    fn revoking_twice_is_refused() {
        let token = issued(None, None);
        let events = token.decide(TokenCommand::Revoke, at(1)).unwrap();
        assert_eq!(
            token.apply(&events[0]).decide(TokenCommand::Revoke, at(2)),
            Err(DomainError::TokenAlreadyRevoked(3))
        );
    }
}

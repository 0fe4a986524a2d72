//! A credential lease: created for some services, renewed while its server runs, revoked or
//! expired at the end. `status` is always computed from the clock.

use super::{Aggregate, DomainError};
use mcp_events::{CredentialScope, DomainEvent, ResolvedService, Timestamp};
use mcp_projections::rows::LeaseRow;
use serde_json::Value;

/// `expired` once now ≥ `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    Active,
    Expired,
    Revoked,
}

impl LeaseStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lease {
    pub id: Option<String>,
    pub user_id: i64,
    pub ttl: i64,
    pub renewable: bool,
    pub max_renewals: i64,
    pub renewal_count: i64,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub expired_recorded: bool,
}

/// Everything a new lease needs, already validated and resolved by the command layer.
#[derive(Debug, Clone)]
pub struct NewLease {
    pub lease_id: String,
    pub user_id: i64,
    pub server_id: String,
    pub services: Vec<String>,
    pub resolved: Vec<ResolvedService>,
    pub missing_services: Vec<String>,
    pub ttl: i64,
    pub renewable: bool,
    pub max_renewals: i64,
    pub client_info: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum LeaseCommand {
    Create(NewLease),
    /// `requester` is the authenticated user; `ttl` overrides the lease's own for this renewal.
    Renew {
        requester: i64,
        ttl: Option<i64>,
    },
    Revoke {
        requester: i64,
        reason: Option<String>,
    },
    /// An operator's revocation (`mcp-manager lease revoke`): any user's lease.
    RevokeByOperator {
        reason: Option<String>,
    },
    /// The background expirer's command.
    Expire,
}

impl Aggregate for Lease {
    fn apply(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::LeaseCreated {
                lease_id,
                user_id,
                ttl,
                renewable,
                max_renewals,
                expires_at,
                ..
            } => {
                self = Lease {
                    id: Some(lease_id.clone()),
                    user_id: *user_id,
                    ttl: *ttl,
                    renewable: *renewable,
                    max_renewals: *max_renewals,
                    expires_at: Some(*expires_at),
                    ..Lease::default()
                }
            }
            DomainEvent::LeaseRenewed {
                renewal_count,
                expires_at,
                ..
            } => {
                self.renewal_count = *renewal_count;
                self.expires_at = Some(*expires_at);
            }
            DomainEvent::LeaseRevoked { revoked_at, .. } => self.revoked_at = Some(*revoked_at),
            DomainEvent::LeaseExpired { .. } => self.expired_recorded = true,
            _ => {}
        }
        self
    }
}

/// Which credential scope a set of resolved services has.
pub fn credential_scope(resolved: &[ResolvedService]) -> CredentialScope {
    let organization = resolved
        .iter()
        .filter(|r| r.organization_id.is_some())
        .count();
    match organization {
        0 => CredentialScope::Personal,
        n if n == resolved.len() => CredentialScope::Organization,
        _ => CredentialScope::Mixed,
    }
}

impl Lease {
    /// The state from the lease's projection row, which the fold keeps exact inline (so a
    /// command on a lease needs no read of its stream).
    pub fn from_row(row: &LeaseRow) -> Self {
        Lease {
            id: Some(row.id.clone()),
            user_id: row.user_id,
            ttl: row.ttl,
            renewable: row.renewable,
            max_renewals: row.max_renewals,
            renewal_count: row.renewal_count,
            expires_at: Some(Timestamp::from_micros(row.expires_at)),
            revoked_at: row.revoked_at.map(Timestamp::from_micros),
            expired_recorded: row.expired_at.is_some(),
        }
    }

    pub fn status(&self, now: Timestamp) -> LeaseStatus {
        if self.revoked_at.is_some() {
            LeaseStatus::Revoked
        } else if self.expired_recorded || self.expires_at.is_some_and(|at| now >= at) {
            LeaseStatus::Expired
        } else {
            LeaseStatus::Active
        }
    }

    fn owned_by(&self, requester: i64) -> Result<&str, DomainError> {
        let id = self.id.as_deref().ok_or(DomainError::LeaseNotFound)?;
        if self.user_id != requester {
            return Err(DomainError::LeaseNotOwned);
        }
        Ok(id)
    }

    pub fn decide(
        &self,
        command: LeaseCommand,
        now: Timestamp,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            LeaseCommand::Create(new) => {
                if self.id.is_some() {
                    return Err(DomainError::Invalid("lease already exists".into()));
                }
                if new.resolved.is_empty() {
                    return Err(DomainError::NoCredentials {
                        missing_services: new.missing_services,
                    });
                }
                Ok(vec![DomainEvent::LeaseCreated {
                    credential_scope: credential_scope(&new.resolved),
                    lease_id: new.lease_id,
                    user_id: new.user_id,
                    server_id: new.server_id,
                    services: new.services,
                    resolved: new.resolved,
                    missing_services: new.missing_services,
                    ttl: new.ttl,
                    renewable: new.renewable,
                    max_renewals: new.max_renewals,
                    created_at: now,
                    expires_at: now.plus_seconds(new.ttl),
                    client_info: new.client_info,
                }])
            }
            LeaseCommand::Renew { requester, ttl } => {
                let lease_id = self.owned_by(requester)?.to_owned();
                let refusal = match self.status(now) {
                    LeaseStatus::Revoked => Some("Lease has been revoked"),
                    LeaseStatus::Expired => Some("Lease has expired"),
                    LeaseStatus::Active if !self.renewable => Some("Lease is not renewable"),
                    LeaseStatus::Active => None,
                };
                if let Some(reason) = refusal {
                    return Err(DomainError::LeaseCannotBeRenewed { reason });
                }
                if self.renewal_count >= self.max_renewals {
                    return Err(DomainError::MaxRenewalsReached);
                }
                let ttl = ttl.unwrap_or(self.ttl);
                Ok(vec![DomainEvent::LeaseRenewed {
                    lease_id,
                    user_id: self.user_id,
                    ttl,
                    renewal_count: self.renewal_count + 1,
                    renewed_at: now,
                    expires_at: now.plus_seconds(ttl),
                }])
            }
            LeaseCommand::Revoke { requester, reason } => {
                self.owned_by(requester)?;
                self.decide(LeaseCommand::RevokeByOperator { reason }, now)
            }
            LeaseCommand::RevokeByOperator { reason } => {
                let lease_id = self.id.clone().ok_or(DomainError::LeaseNotFound)?;
                if self.revoked_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::LeaseRevoked {
                    lease_id,
                    user_id: self.user_id,
                    revoked_at: now,
                    reason,
                }])
            }
            LeaseCommand::Expire => {
                let lease_id = self.id.clone().ok_or(DomainError::LeaseNotFound)?;
                let due = self.revoked_at.is_none()
                    && !self.expired_recorded
                    && self.expires_at.is_some_and(|at| now >= at);
                Ok(if due {
                    vec![DomainEvent::LeaseExpired {
                        lease_id,
                        user_id: self.user_id,
                        expired_at: now,
                    }]
                } else {
                    vec![]
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + seconds * 1_000_000)
    }

    fn resolved(service: &str, organization_id: Option<i64>) -> ResolvedService {
        ResolvedService {
            service: service.into(),
            integration_id: 1,
            secret_version: 1,
            organization_id,
        }
    }

    fn new_lease(renewable: bool, max_renewals: i64) -> NewLease {
        NewLease {
            lease_id: "lse_x".into(),
            user_id: 1,
            server_id: "srv".into(),
            services: vec!["todoist".into(), "jira".into()],
            resolved: vec![resolved("todoist", None), resolved("jira", Some(1))],
            missing_services: vec![],
            ttl: 3600,
            renewable,
            max_renewals,
            client_info: None,
        }
    }

    fn created(renewable: bool, max_renewals: i64) -> Lease {
        let events = Lease::default()
            .decide(
                LeaseCommand::Create(new_lease(renewable, max_renewals)),
                at(0),
            )
            .unwrap();
        Lease::fold(&events)
    }

    fn step(lease: Lease, command: LeaseCommand, now: Timestamp) -> Result<Lease, DomainError> {
        let events = lease.decide(command, now)?;
        Ok(events.iter().fold(lease, |l, e| l.apply(e)))
    }

    #[test]
    fn creation_sets_expiry_and_scope() {
        let events = Lease::default()
            .decide(LeaseCommand::Create(new_lease(true, 24)), at(0))
            .unwrap();
        match &events[0] {
            DomainEvent::LeaseCreated {
                expires_at,
                credential_scope,
                ..
            } => {
                assert_eq!(*expires_at, at(3600));
                assert_eq!(*credential_scope, CredentialScope::Mixed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scopes_follow_where_services_came_from() {
        assert_eq!(
            credential_scope(&[resolved("a", None)]),
            CredentialScope::Personal
        );
        assert_eq!(
            credential_scope(&[resolved("a", Some(2))]),
            CredentialScope::Organization
        );
    }

    #[test]
    fn nothing_resolved_means_no_lease() {
        let mut new = new_lease(true, 24);
        new.resolved.clear();
        new.missing_services = vec!["x".into()];
        assert_eq!(
            Lease::default().decide(LeaseCommand::Create(new), at(0)),
            Err(DomainError::NoCredentials {
                missing_services: vec!["x".into()]
            })
        );
    }

    #[test]
    fn renewal_extends_from_now_by_the_original_or_given_ttl() {
        let lease = step(
            created(true, 24),
            LeaseCommand::Renew {
                requester: 1,
                ttl: None,
            },
            at(100),
        )
        .unwrap();
        assert_eq!(lease.expires_at, Some(at(3700)));
        assert_eq!(lease.renewal_count, 1);
        let lease = step(
            lease,
            LeaseCommand::Renew {
                requester: 1,
                ttl: Some(60),
            },
            at(200),
        )
        .unwrap();
        assert_eq!(lease.expires_at, Some(at(260)));
    }

    #[test]
    fn renewals_stop_at_the_maximum() {
        let mut lease = created(true, 2);
        for _ in 0..2 {
            lease = step(
                lease,
                LeaseCommand::Renew {
                    requester: 1,
                    ttl: None,
                },
                at(1),
            )
            .unwrap();
        }
        assert_eq!(
            lease.decide(
                LeaseCommand::Renew {
                    requester: 1,
                    ttl: None
                },
                at(1)
            ),
            Err(DomainError::MaxRenewalsReached)
        );
    }

    #[test]
    fn expired_revoked_and_unrenewable_leases_cannot_be_renewed() {
        let renew = LeaseCommand::Renew {
            requester: 1,
            ttl: None,
        };
        assert_eq!(
            created(true, 24).decide(renew.clone(), at(3600)),
            Err(DomainError::LeaseCannotBeRenewed {
                reason: "Lease has expired"
            })
        );
        let revoked = step(
            created(true, 24),
            LeaseCommand::Revoke {
                requester: 1,
                reason: None,
            },
            at(1),
        )
        .unwrap();
        assert_eq!(
            revoked.decide(renew.clone(), at(2)),
            Err(DomainError::LeaseCannotBeRenewed {
                reason: "Lease has been revoked"
            })
        );
        assert_eq!(
            created(false, 24).decide(renew, at(2)),
            Err(DomainError::LeaseCannotBeRenewed {
                reason: "Lease is not renewable"
            })
        );
    }

    #[test]
    fn another_users_lease_is_not_theirs_to_touch() {
        let lease = created(true, 24);
        assert_eq!(
            lease.decide(
                LeaseCommand::Renew {
                    requester: 2,
                    ttl: None
                },
                at(1)
            ),
            Err(DomainError::LeaseNotOwned)
        );
        assert_eq!(
            lease.decide(
                LeaseCommand::Revoke {
                    requester: 2,
                    reason: None
                },
                at(1)
            ),
            Err(DomainError::LeaseNotOwned)
        );
        assert_eq!(
            Lease::default().decide(
                LeaseCommand::Revoke {
                    requester: 1,
                    reason: None
                },
                at(1)
            ),
            Err(DomainError::LeaseNotFound)
        );
    }

    #[test]
    fn revoking_twice_records_nothing_new() {
        let revoked = step(
            created(true, 24),
            LeaseCommand::Revoke {
                requester: 1,
                reason: Some("bye".into()),
            },
            at(5),
        )
        .unwrap();
        assert_eq!(revoked.revoked_at, Some(at(5)));
        assert_eq!(
            revoked.decide(
                LeaseCommand::Revoke {
                    requester: 1,
                    reason: None
                },
                at(9)
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn an_operator_revokes_any_users_lease_once() {
        let lease = created(true, 24);
        let events = lease
            .decide(
                LeaseCommand::RevokeByOperator {
                    reason: Some("leaked".into()),
                },
                at(5),
            )
            .unwrap();
        assert!(matches!(
            &events[..],
            [DomainEvent::LeaseRevoked { user_id: 1, reason: Some(r), .. }] if r == "leaked"
        ));
        let revoked = events.iter().fold(lease, |l, e| l.apply(e));
        assert_eq!(
            revoked.decide(LeaseCommand::RevokeByOperator { reason: None }, at(9)),
            Ok(vec![])
        );
        assert_eq!(
            Lease::default().decide(LeaseCommand::RevokeByOperator { reason: None }, at(9)),
            Err(DomainError::LeaseNotFound)
        );
    }

    #[test]
    fn expiry_is_recorded_once_and_only_when_due() {
        let lease = created(true, 24);
        assert_eq!(lease.decide(LeaseCommand::Expire, at(3599)), Ok(vec![]));
        assert_eq!(lease.status(at(3599)), LeaseStatus::Active);
        assert_eq!(lease.status(at(3600)), LeaseStatus::Expired);
        let expired = step(lease, LeaseCommand::Expire, at(3600)).unwrap();
        assert!(expired.expired_recorded);
        assert_eq!(expired.decide(LeaseCommand::Expire, at(4000)), Ok(vec![]));
    }
}

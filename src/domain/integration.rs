//! An integration: a service's credentials owned by a user or an organization.
//! The credentials themselves never pass through here; only their version does.

use super::{Aggregate, DomainError};
use mcp_events::{DomainEvent, IntegrationOwner, IntegrationStatus};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Integration {
    pub id: Option<i64>,
    pub status: Option<IntegrationStatus>,
    pub secret_version: i64,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub enum IntegrationCommand {
    Add {
        integration_id: i64,
        service: String,
        owner: IntegrationOwner,
        status: IntegrationStatus,
    },
    /// New credentials: the command layer stores them as `secret_version + 1`.
    Rotate,
    SetStatus(IntegrationStatus),
    Remove,
}

impl Aggregate for Integration {
    fn apply(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::IntegrationAdded {
                integration_id,
                status,
                secret_version,
                ..
            } => {
                self.id = Some(*integration_id);
                self.status = Some(*status);
                self.secret_version = *secret_version;
            }
            DomainEvent::IntegrationRotated { secret_version, .. } => {
                self.secret_version = *secret_version
            }
            DomainEvent::IntegrationStatusChanged { status, .. } => self.status = Some(*status),
            DomainEvent::IntegrationRemoved { .. } => self.removed = true,
            _ => {}
        }
        self
    }
}

impl Integration {
    /// The secret version the next `Rotate` (or `Add`) stores.
    pub fn next_secret_version(&self) -> i64 {
        self.secret_version + 1
    }

    pub fn decide(&self, command: IntegrationCommand) -> Result<Vec<DomainEvent>, DomainError> {
        if let IntegrationCommand::Add {
            integration_id,
            service,
            owner,
            status,
        } = command
        {
            if self.id.is_some() {
                return Err(DomainError::Invalid(format!(
                    "integration {integration_id} already exists"
                )));
            }
            return Ok(vec![DomainEvent::IntegrationAdded {
                integration_id,
                service,
                owner,
                status,
                secret_version: 1,
            }]);
        }
        let integration_id = match self.id {
            Some(id) if !self.removed => id,
            _ => return Err(DomainError::Invalid("integration does not exist".into())),
        };
        match command {
            IntegrationCommand::Add { .. } => unreachable!("handled above"),
            IntegrationCommand::Rotate => Ok(vec![DomainEvent::IntegrationRotated {
                integration_id,
                secret_version: self.next_secret_version(),
            }]),
            IntegrationCommand::SetStatus(status) => {
                if self.status == Some(status) {
                    return Err(DomainError::IntegrationStatusUnchanged {
                        id: integration_id,
                        status: status.as_str(),
                    });
                }
                Ok(vec![DomainEvent::IntegrationStatusChanged {
                    integration_id,
                    status,
                }])
            }
            IntegrationCommand::Remove => {
                Ok(vec![DomainEvent::IntegrationRemoved { integration_id }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added() -> Integration {
        let events = Integration::default()
            .decide(IntegrationCommand::Add {
                integration_id: 4,
                service: "jira".into(),
                owner: IntegrationOwner::User { user_id: 1 },
                status: IntegrationStatus::Active,
            })
            .unwrap();
        Integration::fold(&events)
    }

    #[test]
    fn a_new_integration_starts_at_secret_version_one() {
        let integration = added();
        assert_eq!(integration.id, Some(4));
        assert_eq!(integration.secret_version, 1);
    }

    #[test]
    fn rotating_moves_to_the_next_secret_version() {
        let events = added().decide(IntegrationCommand::Rotate).unwrap();
        assert_eq!(
            events,
            vec![DomainEvent::IntegrationRotated {
                integration_id: 4,
                secret_version: 2
            }]
        );
        assert_eq!(added().apply(&events[0]).secret_version, 2);
    }

    #[test]
    fn setting_the_same_status_is_refused() {
        assert!(added()
            .decide(IntegrationCommand::SetStatus(IntegrationStatus::Active))
            .is_err());
        let events = added()
            .decide(IntegrationCommand::SetStatus(IntegrationStatus::Expired))
            .unwrap();
        assert_eq!(
            added().apply(&events[0]).status,
            Some(IntegrationStatus::Expired)
        );
    }

    #[test]
    fn a_removed_or_unknown_integration_refuses_everything() {
        let removed = added().apply(&DomainEvent::IntegrationRemoved { integration_id: 4 });
        assert!(removed.decide(IntegrationCommand::Rotate).is_err());
        assert!(Integration::default()
            .decide(IntegrationCommand::Remove)
            .is_err());
        assert!(added()
            .decide(IntegrationCommand::Add {
                integration_id: 4,
                service: "x".into(),
                owner: IntegrationOwner::User { user_id: 1 },
                status: IntegrationStatus::Active,
            })
            .is_err());
    }
}

//! An organization and its memberships (owner, admin, member).

use super::{Aggregate, DomainError};
use mcp_events::{DomainEvent, Role};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Option<i64>,
    pub members: BTreeMap<i64, Role>,
}

#[derive(Debug, Clone)]
pub enum OrganizationCommand {
    Create {
        organization_id: i64,
        name: String,
    },
    /// Adds a member, or changes the role of an existing one.
    AddMember {
        user_id: i64,
        role: Role,
    },
    RemoveMember {
        user_id: i64,
    },
}

impl Aggregate for Organization {
    fn apply(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::OrganizationCreated {
                organization_id, ..
            } => self.id = Some(*organization_id),
            DomainEvent::MembershipAdded { user_id, role, .. }
            | DomainEvent::MembershipRoleChanged { user_id, role, .. } => {
                self.members.insert(*user_id, *role);
            }
            DomainEvent::MembershipRemoved { user_id, .. } => {
                self.members.remove(user_id);
            }
            _ => {}
        }
        self
    }
}

impl Organization {
    pub fn decide(&self, command: OrganizationCommand) -> Result<Vec<DomainEvent>, DomainError> {
        let organization_id = match (&command, self.id) {
            (
                OrganizationCommand::Create {
                    organization_id, ..
                },
                None,
            ) => *organization_id,
            (
                OrganizationCommand::Create {
                    organization_id, ..
                },
                Some(_),
            ) => {
                return Err(DomainError::Invalid(format!(
                    "organization {organization_id} already exists"
                )))
            }
            (_, Some(id)) => id,
            (_, None) => return Err(DomainError::Invalid("organization does not exist".into())),
        };
        match command {
            OrganizationCommand::Create { name, .. } => {
                Ok(vec![DomainEvent::OrganizationCreated {
                    organization_id,
                    name,
                }])
            }
            OrganizationCommand::AddMember { user_id, role } => match self.members.get(&user_id) {
                None => Ok(vec![DomainEvent::MembershipAdded {
                    organization_id,
                    user_id,
                    role,
                }]),
                Some(current) if *current == role => Err(DomainError::AlreadyMember {
                    organization_id,
                    user_id,
                    role: role.as_str(),
                }),
                Some(_) => Ok(vec![DomainEvent::MembershipRoleChanged {
                    organization_id,
                    user_id,
                    role,
                }]),
            },
            OrganizationCommand::RemoveMember { user_id } => {
                if !self.members.contains_key(&user_id) {
                    return Err(DomainError::NotAMember {
                        organization_id,
                        user_id,
                    });
                }
                Ok(vec![DomainEvent::MembershipRemoved {
                    organization_id,
                    user_id,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> Organization {
        Organization::fold(&[DomainEvent::OrganizationCreated {
            organization_id: 1,
            name: "Dev".into(),
        }])
    }

    fn run(org: Organization, command: OrganizationCommand) -> Organization {
        let events = org.decide(command).unwrap();
        events.iter().fold(org, |o, e| o.apply(e))
    }

    #[test]
    fn members_are_added_with_a_role_and_can_change_it() {
        let org = run(
            created(),
            OrganizationCommand::AddMember {
                user_id: 2,
                role: Role::Member,
            },
        );
        assert_eq!(org.members.get(&2), Some(&Role::Member));
        let events = org
            .decide(OrganizationCommand::AddMember {
                user_id: 2,
                role: Role::Admin,
            })
            .unwrap();
        assert!(matches!(
            events[0],
            DomainEvent::MembershipRoleChanged {
                role: Role::Admin,
                ..
            }
        ));
    }

    #[test]
    fn adding_a_member_twice_with_the_same_role_is_refused() {
        let org = run(
            created(),
            OrganizationCommand::AddMember {
                user_id: 2,
                role: Role::Owner,
            },
        );
        assert!(matches!(
            org.decide(OrganizationCommand::AddMember {
                user_id: 2,
                role: Role::Owner
            }),
            Err(DomainError::AlreadyMember { .. })
        ));
    }

    #[test]
    fn removing_a_non_member_is_refused() {
        assert_eq!(
            created().decide(OrganizationCommand::RemoveMember { user_id: 5 }),
            Err(DomainError::NotAMember {
                organization_id: 1,
                user_id: 5
            })
        );
        let org = run(
            created(),
            OrganizationCommand::AddMember {
                user_id: 5,
                role: Role::Member,
            },
        );
        let org = run(org, OrganizationCommand::RemoveMember { user_id: 5 });
        assert!(org.members.is_empty());
    }

    #[test]
    fn an_organization_is_created_once() {
        assert!(created()
            .decide(OrganizationCommand::Create {
                organization_id: 1,
                name: "x".into()
            })
            .is_err());
        assert!(Organization::default()
            .decide(OrganizationCommand::AddMember {
                user_id: 1,
                role: Role::Member
            })
            .is_err());
    }
}

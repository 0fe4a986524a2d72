//! A user: registered once, possibly disabled (which makes every token of theirs inactive).

use super::{Aggregate, DomainError};
use mcp_events::DomainEvent;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Option<i64>,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub enum UserCommand {
    Register {
        user_id: i64,
        email: String,
        name: String,
    },
    Disable {
        user_id: i64,
    },
}

impl Aggregate for User {
    fn apply(self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::UserRegistered { user_id, .. } => User {
                id: Some(*user_id),
                disabled: false,
            },
            DomainEvent::UserDisabled { .. } => User {
                disabled: true,
                ..self
            },
            _ => self,
        }
    }
}

impl User {
    pub fn decide(&self, command: UserCommand) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                name,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::EmailTaken(email));
                }
                Ok(vec![DomainEvent::UserRegistered {
                    user_id,
                    email,
                    name,
                }])
            }
            UserCommand::Disable { user_id } => match (self.id, self.disabled) {
                (None, _) => Err(DomainError::UserNotFound(user_id)),
                (Some(_), true) => Err(DomainError::UserAlreadyDisabled(user_id)),
                (Some(_), false) => Ok(vec![DomainEvent::UserDisabled { user_id }]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> User {
        User::fold(&[DomainEvent::UserRegistered {
            user_id: 1,
            email: "a@b.c".into(),
            name: "A".into(),
        }])
    }

    #[test]
    fn registering_a_new_user_records_it() {
        let events = User::default()
            .decide(UserCommand::Register {
                user_id: 1,
                email: "a@b.c".into(),
                name: "A".into(),
            })
            .unwrap();
        assert_eq!(User::fold(&events), registered());
    }

    #[test]
    fn a_stream_cannot_be_registered_twice() {
        let refused = registered().decide(UserCommand::Register {
            user_id: 1,
            email: "a@b.c".into(),
            name: "A".into(),
        });
        assert_eq!(refused, Err(DomainError::EmailTaken("a@b.c".into())));
    }

    #[test]
    fn disabling_is_recorded_once() {
        let events = registered()
            .decide(UserCommand::Disable { user_id: 1 })
            .unwrap();
        assert_eq!(events, vec![DomainEvent::UserDisabled { user_id: 1 }]);
        let disabled = registered().apply(&events[0]);
        assert!(disabled.disabled);
        assert_eq!(
            disabled.decide(UserCommand::Disable { user_id: 1 }),
            Err(DomainError::UserAlreadyDisabled(1))
        );
    }

    #[test]
    fn an_unknown_user_cannot_be_disabled() {
        assert_eq!(
            User::default().decide(UserCommand::Disable { user_id: 7 }),
            Err(DomainError::UserNotFound(7))
        );
    }
}

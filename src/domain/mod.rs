//! The aggregates: pure `apply` folds and pure `decide` functions, one file each.
//!
//! Nothing in here does I/O or reads a clock: `now` is passed in, state is passed in, and the
//! result is either the events to append or a refusal. The command layer does the rest.

pub mod error;
pub mod integration;
pub mod lease;
pub mod organization;
pub mod resolve;
pub mod token;
pub mod user;

pub use error::{AuthRefusal, DomainError};

use mcp_events::DomainEvent;

/// A state folded from one stream's events.
pub trait Aggregate: Default {
    fn apply(self, event: &DomainEvent) -> Self;

    fn fold<'a>(events: impl IntoIterator<Item = &'a DomainEvent>) -> Self {
        events.into_iter().fold(Self::default(), Self::apply)
    }
}

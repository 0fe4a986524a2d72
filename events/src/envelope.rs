//! What travels with an event: its stream, its expected version, its metadata, its place in the log.

use crate::time::Timestamp;
use crate::vocabulary::DomainEvent;
use serde::{Deserialize, Serialize};

/// The name of one stream (`user-1`, `lease-lse_…`); one aggregate instance per stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    pub fn new(kind: &str, id: impl std::fmt::Display) -> Self {
        Self(format!("{kind}-{id}"))
    }

    pub fn user(id: i64) -> Self {
        Self::new("user", id)
    }
    pub fn organization(id: i64) -> Self {
        Self::new("organization", id)
    }
    pub fn integration(id: i64) -> Self {
        Self::new("integration", id)
    }
    pub fn token(id: i64) -> Self {
        Self::new("token", id)
    }
    pub fn lease(id: &str) -> Self {
        Self::new("lease", id)
    }
    /// One signed-in session, named by the hash of its cookie.
    pub fn session(session_hash: &str) -> Self {
        Self::new("session", session_hash)
    }
    /// Refused sign-ins: one stream per user, and one for e-mails that belong to nobody.
    pub fn sign_in(user_id: Option<i64>) -> Self {
        match user_id {
            Some(id) => Self::new("sign-in", id),
            None => Self("sign-in-unknown".to_owned()),
        }
    }
    /// Refused authentications whose token nobody owns land here.
    pub fn anonymous_auth() -> Self {
        Self("auth-anonymous".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version a writer expects a stream to be at, checked inside the append transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (used for facts that refuse nothing, like a failed login).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(i64),
}

impl ExpectedVersion {
    pub fn admits(&self, current: i64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::Exact(v) => *v == current,
        }
    }
}

/// Who caused an event and through what; never a token or a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Metadata {
    pub fn actor(actor: impl Into<String>) -> Self {
        Self {
            actor: Some(actor.into()),
            ..Self::default()
        }
    }
}

/// An event as the log holds it, decoded (and upcast) into the current vocabulary.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: StreamId,
    pub stream_version: i64,
    pub event: DomainEvent,
    pub metadata: Metadata,
    pub recorded_at: Timestamp,
}

/// An event row exactly as stored, for the hash chain and for auditors. Serialized, it is the
/// auditors' event object: every column, `payload` and `metadata` as the stored JSON strings (so
/// hashes can be recomputed byte for byte).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RawEvent {
    /// The event's place in the log, from 1 without gaps (leaf `position - 1` of the tree).
    #[schema(minimum = 1)]
    pub position: i64,
    pub stream_id: String,
    #[schema(minimum = 1)]
    pub stream_version: i64,
    pub event_type: String,
    #[schema(minimum = 1)]
    pub event_version: i64,
    /// The payload's JSON text as stored (hashed byte for byte).
    pub payload: String,
    /// The metadata's JSON text as stored (hashed byte for byte).
    pub metadata: String,
    pub recorded_at: String,
    /// The previous event's `hash` (64 zeros before the first).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the other columns, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

/// A [`RawEvent`] borrowed from where it was read (a row): it serializes to exactly the same
/// event object, without copying the columns first (`export`'s hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RawEventRef<'a> {
    pub position: i64,
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub event_type: &'a str,
    pub event_version: i64,
    pub payload: &'a str,
    pub metadata: &'a str,
    pub recorded_at: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl RawEvent {
    pub fn as_ref(&self) -> RawEventRef<'_> {
        RawEventRef {
            position: self.position,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            event_version: self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at: &self.recorded_at,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_event_is_the_same_event_object() {
        let event = RawEvent {
            position: 3,
            stream_id: "lease-lse_a".into(),
            stream_version: 2,
            event_type: "lease_renewed".into(),
            event_version: 1,
            payload: "{\"a\":\"\\u00e9\"}".into(),
            metadata: "{}".into(),
            recorded_at: "2025-11-08T23:39:56.000000Z".into(),
            prev_hash: "0".repeat(64),
            hash: "a".repeat(64),
        };
        assert_eq!(
            serde_json::to_string(&event.as_ref()).unwrap(),
            serde_json::to_string(&event).unwrap()
        );
    }
}

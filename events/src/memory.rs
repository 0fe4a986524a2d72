//! What a writer remembers of streams from one write transaction to the next.
//!
//! Inside a transaction that holds the ledger lock nobody else can move a stream, so its version
//! and events need not be read twice. Across transactions the same holds as long as nobody else
//! appended in between: the memory is tied to the head position it was left at, and a writer
//! that finds the head anywhere else (another process appended) starts again from nothing.

use crate::envelope::RecordedEvent;
use std::collections::HashMap;

/// Above this many remembered streams the memory is dropped after a commit (bounded memory).
const MAX_STREAMS: usize = 20_000;
/// Streams longer than this are not kept as events (a token's stream grows with every use).
const MAX_EVENTS_PER_STREAM: usize = 32;

/// Where a writer's memory is valid: the head position its last commit left, and only until the
/// next transaction starts (a transaction that fails to commit leaves it unset).
#[derive(Debug, Default, Clone, Copy)]
pub struct ValidAt(Option<i64>);

impl ValidAt {
    /// Starts a transaction at `head`; `false` means the memory must be dropped.
    pub fn resume_at(&mut self, head: i64) -> bool {
        self.0.take() == Some(head)
    }

    pub fn committed_at(&mut self, head: i64) {
        self.0 = Some(head);
    }
}

#[derive(Debug, Default)]
pub struct StreamMemory {
    valid_at: ValidAt,
    versions: HashMap<String, i64>,
    events: HashMap<String, Vec<RecordedEvent>>,
}

impl StreamMemory {
    /// Keeps the memory only if it was left at `head`.
    pub(crate) fn resume_at(&mut self, head: i64) {
        if !self.valid_at.resume_at(head) {
            self.forget();
        }
    }

    /// Marks the memory valid at `head`, just after a commit that left the log there.
    pub(crate) fn committed_at(&mut self, head: i64) {
        if self.versions.len() > MAX_STREAMS {
            self.forget();
        }
        self.valid_at.committed_at(head);
    }

    pub fn forget(&mut self) {
        self.valid_at = ValidAt::default();
        self.versions.clear();
        self.events.clear();
    }

    pub(crate) fn version(&self, stream: &str) -> Option<i64> {
        self.versions.get(stream).copied()
    }

    pub(crate) fn events(&self, stream: &str) -> Option<&[RecordedEvent]> {
        self.events.get(stream).map(Vec::as_slice)
    }

    /// Records a stream as read in full.
    pub(crate) fn read(&mut self, stream: &str, events: &[RecordedEvent]) {
        let version = events.last().map_or(0, |e| e.stream_version);
        self.versions.insert(stream.to_owned(), version);
        if events.len() <= MAX_EVENTS_PER_STREAM {
            self.events.insert(stream.to_owned(), events.to_vec());
        }
    }

    /// Records a stream's version, its events unknown.
    pub(crate) fn set_version(&mut self, stream: &str, version: i64) {
        self.versions.insert(stream.to_owned(), version);
    }

    /// Records events appended to a stream.
    pub(crate) fn appended(&mut self, stream: &str, recorded: &[RecordedEvent]) {
        if let Some(last) = recorded.last() {
            self.versions.insert(stream.to_owned(), last.stream_version);
        }
        if let Some(events) = self.events.get_mut(stream) {
            if events.len() + recorded.len() <= MAX_EVENTS_PER_STREAM {
                events.extend_from_slice(recorded);
            } else {
                self.events.remove(stream);
            }
        }
    }

    /// Records a stream that cannot exist yet (its id was just drawn at random).
    pub(crate) fn new_stream(&mut self, stream: &str) {
        self.versions.insert(stream.to_owned(), 0);
        self.events.insert(stream.to_owned(), Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Metadata, StreamId};
    use crate::time::Timestamp;
    use crate::vocabulary::DomainEvent;

    fn event(version: i64) -> RecordedEvent {
        RecordedEvent {
            position: version,
            stream_id: StreamId::user(1),
            stream_version: version,
            event: DomainEvent::UserDisabled { user_id: 1 },
            metadata: Metadata::actor("test"),
            recorded_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn memory_survives_only_at_the_head_it_was_left_at() {
        let mut memory = StreamMemory::default();
        memory.read("user-1", &[event(1)]);
        memory.committed_at(7);
        memory.resume_at(7);
        assert_eq!(memory.version("user-1"), Some(1));
        assert_eq!(memory.events("user-1").map(<[_]>::len), Some(1));
        // Not committed since: the next transaction cannot trust it.
        memory.resume_at(7);
        assert_eq!(memory.version("user-1"), None);

        memory.read("user-1", &[event(1)]);
        memory.committed_at(7);
        memory.resume_at(8);
        assert_eq!(memory.version("user-1"), None, "someone else appended");
    }

    #[test]
    fn long_streams_keep_their_version_but_not_their_events() {
        let mut memory = StreamMemory::default();
        memory.new_stream("user-1");
        let events: Vec<_> = (1..=MAX_EVENTS_PER_STREAM as i64).map(event).collect();
        memory.appended("user-1", &events);
        assert_eq!(memory.events("user-1").map(<[_]>::len), Some(events.len()));
        let next = MAX_EVENTS_PER_STREAM as i64 + 1;
        memory.appended("user-1", &[event(next)]);
        assert_eq!(memory.version("user-1"), Some(next));
        assert!(memory.events("user-1").is_none());
    }
}

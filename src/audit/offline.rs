//! An export checked with no database at all: every event's hash recomputed from its columns,
//! the chain from position 1, and the RFC 6962 root of the first N events' hashes against a
//! checkpoint of size N whose signature the caller has verified with the log's key.
//!
//! The same checks as `tools/verify_ledger.py --export`, which auditors may run instead. The
//! export is read a line at a time (O(log n) memory).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_events::chain::{ChainCheck, LinkedEvent};
use mcp_events::hash::ChainFields;
use mcp_tlog::merkle::Hash;
use mcp_tlog::Checkpoint;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::BufRead;

/// What a valid export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events in the export (the last one's position).
    pub events: i64,
    /// The last event's hash.
    pub head: String,
    /// The checkpoint's size and root, which the export's first `tree_size` events give.
    pub tree_size: u64,
    pub root: Hash,
}

/// Why an export does not verify: one line naming the first position or tree size that
/// disagrees (or the line that cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("line {line} (position {position}): {reason}")]
    Line {
        line: u64,
        position: i64,
        reason: String,
    },
    #[error("position {position}: {reason}")]
    Position { position: i64, reason: String },
    #[error("tree size {size}: {reason}")]
    Size { size: u64, reason: String },
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
}

/// An event object as a line of the export holds it; strings borrowed where they have no
/// escapes. Members other than these are ignored (no hash covers them).
#[derive(Deserialize)]
struct Line<'a> {
    position: i64,
    #[serde(borrow)]
    stream_id: Cow<'a, str>,
    stream_version: i64,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    event_version: i64,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow)]
    metadata: Cow<'a, str>,
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

impl Line<'_> {
    fn linked(&self) -> LinkedEvent<'_> {
        LinkedEvent {
            fields: ChainFields {
                position: self.position,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                event_type: &self.event_type,
                event_version: self.event_version,
                payload: &self.payload,
                metadata: &self.metadata,
                recorded_at: &self.recorded_at,
            },
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// Verifies the export read from `input` against `checkpoint` (already opened with the log's
/// key). `progress` is told the bytes read so far.
pub fn verify_export(
    input: impl BufRead,
    checkpoint: &Checkpoint,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, Refused> {
    let size = checkpoint.size;
    let mut chain = ChainCheck::new();
    chain.keep_root_at(size);
    let check_root = |chain: &ChainCheck| -> Result<(), Refused> {
        match chain.root_at(size) {
            Some(root) if root != checkpoint.root => Err(Refused::Size {
                size,
                reason: format!(
                    "root mismatch (the export's events 1..{size} give {}, the checkpoint says \
                     {})",
                    BASE64.encode(root),
                    BASE64.encode(checkpoint.root)
                ),
            }),
            _ => Ok(()),
        }
    };
    check_root(&chain)?;
    let mut lines = LineReader::new(input);
    let mut read = 0u64;
    while let Some((number, line)) = lines.next_line()? {
        read += line.len() as u64;
        let expected = chain.events() + 1;
        let event: Line<'_> = parse(line).map_err(|reason| Refused::Line {
            line: number,
            position: expected,
            reason,
        })?;
        if expected == 1 && event.position > 1 {
            return Err(Refused::Position {
                position: 1,
                reason: format!(
                    "the export starts at position {}; the checkpoint's root covers every event \
                     from position 1, so export the whole log (without --after)",
                    event.position
                ),
            });
        }
        chain
            .push(&event.linked())
            .map_err(|broken| Refused::Position {
                position: broken.position,
                reason: broken.reason,
            })?;
        if chain.events() as u64 == size {
            check_root(&chain)?;
        }
        if number % 65_536 == 0 {
            progress(read);
        }
    }
    progress(read);
    if (chain.events() as u64) < size {
        return Err(Refused::Size {
            size,
            reason: format!(
                "the checkpoint covers {size} events but the export holds {}",
                match chain.events() {
                    0 => "none (it is empty)".to_owned(),
                    n => format!("only {n} (it ends at position {n})"),
                }
            ),
        });
    }
    Ok(Verified {
        events: chain.events(),
        head: chain.head().to_owned(),
        tree_size: size,
        root: checkpoint.root,
    })
}

fn parse(line: &[u8]) -> Result<Line<'_>, String> {
    serde_json::from_slice(line).map_err(|e| {
        let what = if std::str::from_utf8(line).is_err() {
            "not UTF-8".to_owned()
        } else {
            // serde's message names the member (missing, wrong type), never a value.
            format!("not an event object ({e})")
        };
        what
    })
}

/// Lines of the input, numbered from 1, without their line ending; a last line without one
/// counts, an empty input has none.
struct LineReader<R> {
    input: R,
    buffer: Vec<u8>,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::with_capacity(4096),
            number: 0,
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        self.buffer.clear();
        if self.input.read_until(b'\n', &mut self.buffer)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let mut line = self.buffer.as_slice();
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        Ok(Some((self.number, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_events::hash::{chain_hash, GENESIS};
    use mcp_events::RawEvent;
    use mcp_tlog::{merkle, Signer};

    fn events(n: i64) -> Vec<RawEvent> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|position| {
                let mut event = RawEvent {
                    position,
                    stream_id: format!("user-{position}"),
                    stream_version: 1,
                    event_type: "user_registered".into(),
                    event_version: 1,
                    payload: format!(
                        "{{\"email\":\"u{position}@example.com\",\"name\":\"\\u00e9\"}}"
                    ),
                    metadata: "{\"actor\":\"cli\"}".into(),
                    recorded_at: "2025-11-08T23:39:56.000000Z".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                event.hash = chain_hash(&prev, &event.linked().fields);
                prev = event.hash.clone();
                event
            })
            .collect()
    }

    fn export(events: &[RawEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            serde_json::to_writer(&mut out, event).unwrap();
            out.push(b'\n');
        }
        out
    }

    fn checkpoint(events: &[RawEvent], size: usize) -> Checkpoint {
        let leaves: Vec<[u8; 32]> = events[..size]
            .iter()
            .map(|e| merkle::leaf_data_from_event_hash(&e.hash).unwrap())
            .collect();
        let signer = Signer::from_seed(mcp_tlog::DEFAULT_ORIGIN, &[3; 32]).unwrap();
        let note = Checkpoint {
            origin: mcp_tlog::DEFAULT_ORIGIN.into(),
            size: size as u64,
            root: merkle::root(&leaves),
        }
        .sign(&signer)
        .unwrap();
        Checkpoint::open(&note, &signer.verifier()).unwrap()
    }

    fn verify(export: &[u8], checkpoint: &Checkpoint) -> Result<Verified, Refused> {
        verify_export(export, checkpoint, &mut |_| {})
    }

    #[test]
    fn an_export_verifies_against_the_checkpoint_of_any_size_it_covers() {
        let log = events(300);
        let file = export(&log);
        for size in [0, 1, 2, 255, 256, 257, 300] {
            let verified = verify(&file, &checkpoint(&log, size)).unwrap();
            assert_eq!(verified.events, 300);
            assert_eq!(verified.tree_size, size as u64);
            assert_eq!(verified.head, log[299].hash);
        }
    }

    #[test]
    fn each_kind_of_damage_is_named_by_position_or_size() {
        let log = events(20);
        let signed = checkpoint(&log, 20);

        // Truncated: fewer events than the checkpoint covers.
        let refused = verify(&export(&log[..15]), &signed).unwrap_err();
        assert!(
            refused.to_string().starts_with("tree size 20: ")
                && refused.to_string().contains("only 15"),
            "{refused}"
        );

        // A payload changed: its hash no longer matches.
        let mut edited = log.clone();
        edited[6].payload = edited[6].payload.replace("u7@", "mallory@");
        let refused = verify(&export(&edited), &signed).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("position 7: hash does not match"),
            "{refused}"
        );

        // The tail rewritten and re-chained: the chain holds, the root does not.
        let mut rewritten = log.clone();
        let mut prev = rewritten[11].hash.clone();
        for event in &mut rewritten[12..] {
            event.metadata = "{\"actor\":\"mallory\"}".into();
            event.prev_hash = prev.clone();
            event.hash = chain_hash(&prev, &event.linked().fields);
            prev = event.hash.clone();
        }
        let refused = verify(&export(&rewritten), &signed).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("tree size 20: root mismatch"),
            "{refused}"
        );

        // A line missing, and an export made with --after.
        let mut gap = log.clone();
        gap.remove(4);
        let refused = verify(&export(&gap), &signed).unwrap_err();
        assert!(refused.to_string().starts_with("position 5: "), "{refused}");
        let refused = verify(&export(&log[3..]), &signed).unwrap_err();
        assert!(refused.to_string().contains("--after"), "{refused}");

        // Not an event object.
        let mut file = export(&log[..2]);
        file.extend_from_slice(b"{\"position\":3}\n");
        let refused = verify(&file, &signed).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("line 3 (position 3): not an event object"),
            "{refused}"
        );
    }

    #[test]
    fn a_last_line_without_a_newline_and_crlf_endings_are_read() {
        let log = events(3);
        let mut file = String::from_utf8(export(&log))
            .unwrap()
            .replace('\n', "\r\n");
        file.truncate(file.len() - 2);
        assert_eq!(
            verify(file.as_bytes(), &checkpoint(&log, 3))
                .unwrap()
                .events,
            3
        );
    }
}

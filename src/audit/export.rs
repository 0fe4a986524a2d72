//! The log as JSON lines: one event object per line, exactly as the audit API serves it (every
//! column as stored, `payload` and `metadata` as the stored JSON strings), in position order.
//!
//! Streamed: pages are read on one task while the previous ones are serialized and written on
//! a thread of their own, so memory stays at a few pages whatever the log's length. The export
//! is a faithful copy: it never checks or mends what it copies (verifiers do that).

use super::Progress;
use mcp_events::reader::raw_ref_of;
use mcp_events::{EventStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::io::Write;

/// Events read per page.
const PAGE: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the events at positions `after + 1 ..= to` into `out`, one JSON object per line.
/// Returns `out` (flushed) and the number of events written; `progress` is told after each
/// page, with `to - after` as the total.
pub async fn write_events<W: Write + Send + 'static>(
    store: &EventStore,
    after: i64,
    to: i64,
    out: W,
    mut progress: Box<Progress>,
) -> Result<(W, u64), ExportError> {
    // Rows go to the writer as read: it serializes each straight from the row's columns.
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<AnyRow>>(2);
    let total = (to - after).max(0) as u64;
    let writer = tokio::task::spawn_blocking(move || -> Result<(W, u64), ExportError> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        let mut written = 0u64;
        while let Some(page) = received.blocking_recv() {
            for row in &page {
                let event = raw_ref_of(row).map_err(StoreError::from)?;
                if event.position > to {
                    break;
                }
                serde_json::to_writer(&mut out, &event).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                written += 1;
            }
            progress(written, total);
        }
        let mut out = out.into_inner().map_err(|e| e.into_error())?;
        out.flush()?;
        Ok((out, written))
    });
    let read = async {
        // Owned here, so that the writer sees the end once the last page is sent.
        let pages = pages;
        let mut position = after;
        while position < to {
            let page = store
                .read_raw_rows(position, PAGE.min(to - position))
                .await?;
            // A log with a gap has fewer rows than positions: the page may reach past `to`
            // (the writer stops there).
            let Some(last) = page.last() else { break };
            position = last.try_get(0).map_err(StoreError::from)?;
            if pages.send(page).await.is_err() {
                break; // the writer failed: its error is the one reported
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let written = writer.await.map_err(|e| {
        ExportError::Io(std::io::Error::other(format!(
            "the export's writer stopped: {e}"
        )))
    })??;
    read?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use mcp_events::RawEvent;

    /// The export's line is the audit API's event object: `RawEvent`'s serialization, whose
    /// member names and order CONTRACT.md pins.
    #[test]
    fn an_event_line_has_every_column_in_the_contracts_order() {
        let event = RawEvent {
            position: 7,
            stream_id: "lease-lse_x".into(),
            stream_version: 2,
            event_type: "lease_renewed".into(),
            event_version: 1,
            payload: "{\"a\":\"b\"}".into(),
            metadata: "{}".into(),
            recorded_at: "2025-11-08T23:39:56.000000Z".into(),
            prev_hash: "0".repeat(64),
            hash: "f".repeat(64),
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            format!(
                "{{\"position\":7,\"stream_id\":\"lease-lse_x\",\"stream_version\":2,\
                 \"event_type\":\"lease_renewed\",\"event_version\":1,\
                 \"payload\":\"{{\\\"a\\\":\\\"b\\\"}}\",\"metadata\":\"{{}}\",\
                 \"recorded_at\":\"2025-11-08T23:39:56.000000Z\",\"prev_hash\":\"{}\",\
                 \"hash\":\"{}\"}}",
                "0".repeat(64),
                "f".repeat(64)
            )
        );
    }
}

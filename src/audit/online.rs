//! The log in the database checked as an auditor would check it, trusting nothing stored: the
//! hash chain walked from position 1 (`mcp_events::chain`), and every stored checkpoint's
//! signature and root — and a checkpoint an auditor kept — against the tree of the events'
//! hashes at its size. Also: projections that have seen more events than the log holds (a
//! truncated log), and a stored Merkle tree that disagrees with the events at the head.
//!
//! Read-only, in constant memory: events and checkpoints are read a page at a time, each
//! checkpoint checked as the walk passes its size.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_events::checkpoints::{self, StoredCheckpoint};
use mcp_events::{tree, ChainCheck, EventStore, StoreError};
use mcp_tlog::merkle::Hash;
use mcp_tlog::{Checkpoint, Verifier};
use sqlx::AnyConnection;
use std::collections::BTreeMap;

/// Events checked per page.
const PAGE: i64 = 5_000;
/// Stored checkpoints read per query.
const CHECKPOINT_PAGE: i64 = 1_000;

/// A checkpoint an auditor kept, opened with the log's key.
pub struct Kept {
    pub checkpoint: Checkpoint,
    /// Where it came from, for messages (a file name).
    pub source: String,
}

/// What a valid log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub events: i64,
    pub head: String,
    /// The root of the tree of every event's hash.
    pub root: Hash,
    /// Stored checkpoints whose signature and root were checked.
    pub checkpoints: u64,
}

/// The first thing that disagrees: a position, or a tree size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error("the event log is broken at position {position}: {reason}")]
    Position { position: i64, reason: String },
    #[error("the event log disagrees at tree size {size}: {reason}")]
    Size { size: u64, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the log has signed checkpoints, and checking their signatures needs the log's key: \
         give --vkey VKEY (the log's verifier key, as /api/audit/key serves it), or configure \
         the signing key (MCP_LOG_SIGNING_KEY, or the SQLite key file beside the database)"
    )]
    NoKey,
}

impl From<sqlx::Error> for OnlineError {
    fn from(error: sqlx::Error) -> Self {
        OnlineError::Store(StoreError::Database(error))
    }
}

impl From<mcp_projections::ReplayError> for OnlineError {
    fn from(error: mcp_projections::ReplayError) -> Self {
        match error {
            mcp_projections::ReplayError::Store(store) => OnlineError::Store(store),
            other => OnlineError::Store(StoreError::Tree(other.to_string())),
        }
    }
}

/// A root the walk must give at a size, or why it cannot be trusted.
struct Anchor {
    expected: Result<Hash, String>,
    /// The auditor's checkpoint, or a stored one.
    kept: Option<String>,
}

/// Checks the log (see the module's doc). `key` verifies the stored checkpoints' signatures
/// (needed when there are any); `kept`, already opened with it, must be extended by the log.
pub async fn verify(
    store: &EventStore,
    key: Option<&Verifier>,
    kept: Option<&Kept>,
) -> Result<Result<Report, Finding>, OnlineError> {
    if let Some(finding) = projections_ahead(store).await? {
        return Ok(Err(finding));
    }
    let mut conn = store.database().pool().acquire().await?;
    if key.is_none() && checkpoints::latest(&mut conn).await?.is_some() {
        return Err(OnlineError::NoKey);
    }
    let mut chain = ChainCheck::new();
    let mut pending: BTreeMap<u64, Vec<Anchor>> = BTreeMap::new();
    if let Some(kept) = kept {
        chain.keep_root_at(kept.checkpoint.size);
        pending
            .entry(kept.checkpoint.size)
            .or_default()
            .push(Anchor {
                expected: Ok(kept.checkpoint.root),
                kept: Some(kept.source.clone()),
            });
    }
    let mut loaded_through = 0u64;
    let mut checked = 0u64;
    loop {
        let horizon = chain.events() as u64 + PAGE as u64;
        load_stored(
            &mut conn,
            key,
            &mut loaded_through,
            horizon,
            &mut chain,
            &mut pending,
        )
        .await?;
        let read = match store.check_page(&mut chain, PAGE).await? {
            Ok(read) => read,
            Err(broken) => {
                return Ok(Err(Finding::Position {
                    position: broken.position,
                    reason: broken.reason,
                }))
            }
        };
        if let Err(finding) = check_reached(&mut chain, &mut pending, &mut checked) {
            return Ok(Err(finding));
        }
        if read > 0 {
            continue;
        }
        // The head is read after the walk: a writer that appended meanwhile moved it past the
        // walk, which then goes on; a head behind the log or off its chain is broken.
        let (head, head_hash) = store.head().await?;
        let events = chain.events();
        if head > events && has_event_after(&mut conn, events).await? {
            continue;
        }
        if head != events || head_hash != chain.head() {
            return Ok(Err(Finding::Position {
                position: head.max(events),
                reason: format!(
                    "ledger head says {head} events ending in {head_hash}, the log holds \
                     {events} ending in {}",
                    chain.head()
                ),
            }));
        }
        break;
    }
    let events = chain.events() as u64;
    if let Some(finding) = beyond_the_log(&mut conn, events, &pending).await? {
        return Ok(Err(finding));
    }
    if tree::holds_size(&mut conn, events)
        .await
        .map_err(StoreError::from)?
    {
        let stored = tree::root(&mut conn, events)
            .await
            .map_err(StoreError::from)?;
        if stored != chain.root() {
            return Ok(Err(Finding::Size {
                size: events,
                reason: "the stored Merkle tree's root is not the root of the events' hashes \
                         (proofs served from it would not verify)"
                    .to_owned(),
            }));
        }
    }
    Ok(Ok(Report {
        events: chain.events(),
        head: chain.head().to_owned(),
        root: chain.root(),
        checkpoints: checked,
    }))
}

/// Projections checkpointed past the log's head have seen events the log no longer holds.
async fn projections_ahead(store: &EventStore) -> Result<Option<Finding>, OnlineError> {
    let checkpoints = mcp_projections::schema::checkpoints(store).await?;
    Ok(checkpoints
        .iter()
        .filter(|c| c.position > c.head)
        .max_by_key(|c| c.position)
        .map(|ahead| Finding::Position {
            position: ahead.head + 1,
            reason: format!(
                "the {} projection was built from {} events, but the log's head is at \
                 position {}: events were removed from the log (truncation)",
                ahead.name, ahead.position, ahead.head
            ),
        }))
}

async fn has_event_after(conn: &mut AnyConnection, position: i64) -> Result<bool, sqlx::Error> {
    let next: Option<i64> =
        sqlx::query_scalar("select position from events where position > $1 limit 1")
            .bind(position)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(next.is_some())
}

/// Reads the stored checkpoints of sizes up to `horizon` not read yet, checks their
/// signatures, and asks the walk for the roots at their sizes.
async fn load_stored(
    conn: &mut AnyConnection,
    key: Option<&Verifier>,
    loaded_through: &mut u64,
    horizon: u64,
    chain: &mut ChainCheck,
    pending: &mut BTreeMap<u64, Vec<Anchor>>,
) -> Result<(), OnlineError> {
    loop {
        let page = checkpoints::between(conn, *loaded_through, horizon, CHECKPOINT_PAGE).await?;
        for stored in &page {
            chain.keep_root_at(stored.tree_size);
            pending.entry(stored.tree_size).or_default().push(Anchor {
                expected: signed_root(stored, key),
                kept: None,
            });
            *loaded_through = stored.tree_size;
        }
        if (page.len() as i64) < CHECKPOINT_PAGE {
            *loaded_through = (*loaded_through).max(horizon);
            return Ok(());
        }
    }
}

/// The root a stored checkpoint signed, once its note is found to state what is stored beside
/// it and its signature verifies with the log's key.
fn signed_root(stored: &StoredCheckpoint, key: Option<&Verifier>) -> Result<Hash, String> {
    let stated = stored.stated()?;
    let Some(key) = key else {
        return Err("no key to check its signature with".to_owned());
    };
    Checkpoint::open(&stored.note, key).map_err(|error| {
        format!(
            "the stored checkpoint of this size does not verify with the log's key {}: {error}",
            key.vkey()
        )
    })?;
    Ok(stated.root)
}

/// Checks the checkpoints whose size the walk has reached.
fn check_reached(
    chain: &mut ChainCheck,
    pending: &mut BTreeMap<u64, Vec<Anchor>>,
    checked: &mut u64,
) -> Result<(), Finding> {
    while let Some(entry) = pending.first_entry() {
        let size = *entry.key();
        if size > chain.events() as u64 {
            return Ok(());
        }
        let anchors = entry.remove();
        let root = chain
            .take_root(size)
            .expect("a root asked for before the walk reached its size");
        for anchor in anchors {
            let signed = anchor
                .expected
                .map_err(|reason| Finding::Size { size, reason })?;
            if signed != root {
                return Err(Finding::Size {
                    size,
                    reason: match &anchor.kept {
                        Some(source) => format!(
                            "the log today does not extend the checkpoint in {source} (its \
                             events 1..{size} give the root {}, the checkpoint says {})",
                            BASE64.encode(root),
                            BASE64.encode(signed)
                        ),
                        None => format!(
                            "the events 1..{size} give the root {}, not the one the stored \
                             checkpoint of that size signed ({}): the log was changed",
                            BASE64.encode(root),
                            BASE64.encode(signed)
                        ),
                    },
                });
            }
            if anchor.kept.is_none() {
                *checked += 1;
            }
        }
    }
    Ok(())
}

/// The first checkpoint (kept or stored) of a size beyond the log's `events`.
async fn beyond_the_log(
    conn: &mut AnyConnection,
    events: u64,
    pending: &BTreeMap<u64, Vec<Anchor>>,
) -> Result<Option<Finding>, OnlineError> {
    let stored = checkpoints::between(conn, events, u64::MAX >> 1, 1).await?;
    let first_stored = stored.first().map(|c| c.tree_size);
    let first_pending = pending.keys().next().copied();
    let Some(size) = first_stored.into_iter().chain(first_pending).min() else {
        return Ok(None);
    };
    let kept = pending
        .get(&size)
        .and_then(|anchors| anchors.iter().find_map(|a| a.kept.clone()));
    let covered = match kept {
        Some(source) => format!("the checkpoint in {source}"),
        None => "the signed checkpoint of that size".to_owned(),
    };
    Ok(Some(Finding::Size {
        size,
        reason: format!(
            "{covered} covers {size} events, but the log holds only {events}: events were \
             removed from the log (truncation)"
        ),
    }))
}

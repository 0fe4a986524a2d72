//! The auditors' read-only API (`/api/audit/*`, `audit` tokens): the log page by page and live,
//! signed checkpoints, inclusion and consistency proofs, the verifier key, and the
//! `c2sp.org/tlog-tiles` paths under `/api/audit/tlog`.
//!
//! Every request is authenticated, counted and recorded like any (one ledger command); what it
//! reads is read afterwards on the pool, never through the writer. Proofs and tiles are only
//! served for trees a signed checkpoint covers, so what an auditor checks against is signed.

use super::error::{ApiError, ErrorBody, Forbidden, ValidationErrors};
use super::openapi::{Binary, Refusals};
use super::path::PathParam;
use super::request::{perform, RequestCaller};
use super::AppState;
use crate::commands::mcp::{AuditAccess, Caller};
use crate::ledger::CommandError;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mcp_events::checkpoints::{self, StoredCheckpoint};
use mcp_events::{tree, RawEvent};
use mcp_tlog::merkle;
use mcp_tlog::tile::{self, TilePath};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

type Errors = BTreeMap<String, Vec<String>>;

/// Authenticates an `audit` token (recorded as a use), or the refusal.
async fn authorize(state: &AppState, caller: Caller) -> Result<(), ApiError> {
    perform(state, caller, AuditAccess).await.map(drop)
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Failed(CommandError::Internal(error.to_string()))
}

/// The query's values by name (the last one wins).
fn query_values(query: Option<&str>) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// An integer query value within `min..=max`, or `default` when absent.
fn integer(
    values: &BTreeMap<String, String>,
    field: &str,
    default: Option<i64>,
    min: i64,
    max: i64,
    errors: &mut Errors,
) -> Option<i64> {
    let Some(text) = values.get(field) else {
        return default;
    };
    match text.parse::<i64>() {
        Ok(value) if (min..=max).contains(&value) => Some(value),
        Ok(_) => {
            errors.entry(field.to_owned()).or_default().push(format!(
                "The {field} field must be between {min} and {max}."
            ));
            None
        }
        Err(_) => {
            errors
                .entry(field.to_owned())
                .or_default()
                .push(format!("The {field} field must be an integer."));
            None
        }
    }
}

/// A proof's two numbers: `lower` (required, from 1 to the size) and `size` (by default, and at
/// most, the latest checkpoint's size); or the 422 naming each one that is wrong.
fn proof_bounds(
    values: &BTreeMap<String, String>,
    latest: i64,
    lower: &str,
    size: &str,
) -> Result<(i64, i64), ApiError> {
    let mut errors = Errors::new();
    let upper = integer(values, size, Some(latest), 1, latest.max(1), &mut errors);
    let upper_bound = upper.unwrap_or(latest).max(1);
    let low = integer(values, lower, None, 1, upper_bound, &mut errors);
    if low.is_none() && !values.contains_key(lower) {
        required(lower, &mut errors);
    }
    if latest == 0 {
        errors
            .entry(size.to_owned())
            .or_default()
            .push("The log is empty: no event has been checkpointed yet.".to_owned());
    }
    match (low, upper, errors.is_empty()) {
        (Some(low), Some(upper), true) => Ok((low, upper)),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// A connection of the pool, for reads.
async fn connection(state: &AppState) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, ApiError> {
    state
        .ledger
        .store()
        .database()
        .pool()
        .acquire()
        .await
        .map_err(internal)
}

fn required(field: &str, errors: &mut Errors) {
    errors
        .entry(field.to_owned())
        .or_default()
        .push(format!("The {field} field is required."));
}

/// The latest signed checkpoint; for a log that has none yet, one is signed now.
pub async fn latest_checkpoint(state: &AppState) -> Result<StoredCheckpoint, ApiError> {
    let store = state.ledger.store();
    let mut conn = store.database().pool().acquire().await.map_err(internal)?;
    if let Some(latest) = checkpoints::latest(&mut conn).await.map_err(internal)? {
        return Ok(latest);
    }
    drop(conn);
    let (head, _) = store.head().await.map_err(internal)?;
    checkpoints::sign_at(store, state.log.signer(), head as u64, state.ledger.now())
        .await
        .map_err(internal)
}

/// A page of the log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events after `after`, in order.
    pub events: Vec<RawEvent>,
    /// The `after` of the next page (the last position here, or `after` if none).
    pub next_after: i64,
    /// The log's head position when the page was read.
    pub head: i64,
}

/// `GET /api/audit/events?after=P&limit=L`: the events after `P` in order, at most `L`.
#[utoipa::path(
    get,
    path = "/api/audit/events",
    tag = "audit",
    operation_id = "audit_events",
    security(("audit_token" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0,
            description = "Events with a position after this one (default 0)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000,
            description = "At most this many events (default 100)."),
    ),
    responses(
        (status = 200, description = "A page of events, as stored.", body = EventsPage),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 422, description = "`after` or `limit` out of range or not an integer.",
            body = ValidationErrors),
        Refusals,
    )
)]
pub async fn events(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<EventsPage>, ApiError> {
    authorize(&state, caller).await?;
    let values = query_values(query.as_deref());
    let mut errors = Errors::new();
    let after = integer(&values, "after", Some(0), 0, i64::MAX, &mut errors);
    let limit = integer(&values, "limit", Some(100), 1, 1000, &mut errors);
    let (Some(after), Some(limit)) = (after, limit) else {
        return Err(ApiError::Invalid(errors));
    };
    let store = state.ledger.store();
    let (head, _) = store.head().await.map_err(internal)?;
    let events = store.read_raw_page(after, limit).await.map_err(internal)?;
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(Json(EventsPage {
        events,
        next_after,
        head,
    }))
}

fn checkpoint_text(checkpoint: &StoredCheckpoint) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        checkpoint.note.clone(),
    )
        .into_response()
}

/// `GET /api/audit/checkpoint`: the latest signed checkpoint.
#[utoipa::path(
    get,
    path = "/api/audit/checkpoint",
    tag = "audit",
    operation_id = "audit_checkpoint",
    security(("audit_token" = [])),
    responses(
        (status = 200, description = "The latest signed checkpoint (`c2sp.org/tlog-checkpoint` \
            note text); one is signed first if the log has none.", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        Refusals,
    )
)]
pub async fn checkpoint(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Response, ApiError> {
    authorize(&state, caller).await?;
    Ok(checkpoint_text(&latest_checkpoint(&state).await?))
}

/// `GET /api/audit/tlog/checkpoint`: the same, at its `c2sp.org/tlog-tiles` path.
#[utoipa::path(
    get,
    path = "/api/audit/tlog/checkpoint",
    tag = "audit",
    operation_id = "tlog_checkpoint",
    security(("audit_token" = [])),
    responses(
        (status = 200, description = "The latest signed checkpoint (note text).", body = String,
            content_type = "text/plain; charset=utf-8"),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        Refusals,
    )
)]
pub async fn tlog_checkpoint(
    state: State<AppState>,
    caller: RequestCaller,
) -> Result<Response, ApiError> {
    checkpoint(state, caller).await
}

/// The log's verifier key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The log's origin, the key's name (`MCP_LOG_ORIGIN`).
    pub origin: String,
    /// `<origin>+<key id hex>+<base64(0x01 || Ed25519 public key)>`.
    pub vkey: String,
}

/// `GET /api/audit/key`: the log's origin and verifier key.
#[utoipa::path(
    get,
    path = "/api/audit/key",
    tag = "audit",
    operation_id = "audit_key",
    security(("audit_token" = [])),
    responses(
        (status = 200, description = "The verifier key.", body = KeyView),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        Refusals,
    )
)]
pub async fn key(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Json<KeyView>, ApiError> {
    authorize(&state, caller).await?;
    Ok(Json(KeyView {
        origin: state.log.origin().to_owned(),
        vkey: state.log.vkey(),
    }))
}

/// An RFC 6962 inclusion proof; hashes in base64.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InclusionView {
    pub position: i64,
    pub leaf_index: i64,
    pub tree_size: i64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
}

fn base64_all(hashes: &[merkle::Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64.encode(h)).collect()
}

/// `GET /api/audit/proof/inclusion?position=P&tree_size=N`: the event at `P` is in the tree of
/// size `N` (at most, and by default, the latest checkpoint's size).
#[utoipa::path(
    get,
    path = "/api/audit/proof/inclusion",
    tag = "audit",
    operation_id = "inclusion_proof",
    security(("audit_token" = [])),
    params(
        ("position" = i64, Query, minimum = 1, example = 1,
            description = "The event's position, at most `tree_size`."),
        ("tree_size" = Option<i64>, Query, minimum = 1,
            description = "The tree's size: at most, and by default, the latest checkpoint's."),
    ),
    responses(
        (status = 200, description = "The proof (RFC 6962 §2.1.1).", body = InclusionView),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 422, description = "A missing `position`, values out of range or not \
            integers, or a log with no checkpointed event yet.", body = ValidationErrors),
        Refusals,
    )
)]
pub async fn inclusion(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<InclusionView>, ApiError> {
    authorize(&state, caller).await?;
    let latest = latest_checkpoint(&state).await?.tree_size as i64;
    let values = query_values(query.as_deref());
    let (position, size) = proof_bounds(&values, latest, "position", "tree_size")?;
    let mut conn = connection(&state).await?;
    let index = (position - 1) as u64;
    let hashes = tree::inclusion_proof(&mut conn, index, size as u64)
        .await
        .map_err(internal)?;
    let leaf = tree::read_hashes(&mut conn, &[merkle::stored_hash_index(0, index)])
        .await
        .map_err(internal)?;
    Ok(Json(InclusionView {
        position,
        leaf_index: position - 1,
        tree_size: size,
        leaf_hash: BASE64.encode(leaf[0]),
        hashes: base64_all(&hashes),
    }))
}

/// An RFC 6962 consistency proof; hashes in base64.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsistencyView {
    pub from: i64,
    pub to: i64,
    pub hashes: Vec<String>,
}

/// `GET /api/audit/proof/consistency?from=M&to=N`: the tree of size `N` extends the tree of
/// size `M`; `0 < M <= N <=` the latest checkpoint's size (`N` by default that size).
#[utoipa::path(
    get,
    path = "/api/audit/proof/consistency",
    tag = "audit",
    operation_id = "consistency_proof",
    security(("audit_token" = [])),
    params(
        ("from" = i64, Query, minimum = 1, example = 1, description = "The older tree's size, at most `to`."),
        ("to" = Option<i64>, Query, minimum = 1,
            description = "The newer tree's size: at most, and by default, the latest \
                checkpoint's."),
    ),
    responses(
        (status = 200, description = "The proof (RFC 6962 §2.1.2).", body = ConsistencyView),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 422, description = "A missing `from`, values out of range or not integers, \
            or a log with no checkpointed event yet.", body = ValidationErrors),
        Refusals,
    )
)]
pub async fn consistency(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<ConsistencyView>, ApiError> {
    authorize(&state, caller).await?;
    let latest = latest_checkpoint(&state).await?.tree_size as i64;
    let values = query_values(query.as_deref());
    let (from, to) = proof_bounds(&values, latest, "from", "to")?;
    let mut conn = connection(&state).await?;
    let hashes = tree::consistency_proof(&mut conn, from as u64, to as u64)
        .await
        .map_err(internal)?;
    Ok(Json(ConsistencyView {
        from,
        to,
        hashes: base64_all(&hashes),
    }))
}

/// `GET /api/audit/tlog/tile/…`: a hash tile or an entry bundle of the tree the latest
/// checkpoint signs (`c2sp.org/tlog-tiles`); an entry is an event's 32-byte hash.
#[utoipa::path(
    get,
    path = "/api/audit/tlog/tile/{path}",
    tag = "audit",
    operation_id = "tlog_tile",
    security(("audit_token" = [])),
    params(
        ("path" = String, Path, min_length = 1, example = "0/000.p/1", description = "The rest of the tile's path, \
            slashes included: `<L>/<N>[.p/<W>]` for a hash tile, `entries/<N>[.p/<W>]` for an \
            entry bundle (`c2sp.org/tlog-tiles`; `N` in groups of three digits, `x001/234`)."),
    ),
    responses(
        (status = 200, description = "The tile's bytes. A full tile is immutable and cached for \
            a year; a partial one is `no-cache`.", body = Binary,
            content_type = "application/octet-stream"),
        (status = 400, description = "The path is not UTF-8 once percent-decoded \
            (`invalid_path`).", body = ErrorBody),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 404, description = "No such tile in the signed tree (`not_found`).",
            body = ErrorBody),
        Refusals,
    )
)]
pub async fn tile(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    PathParam(path): PathParam,
) -> Result<Response, ApiError> {
    authorize(&state, caller).await?;
    let not_found = || ApiError::NotFound("No such tile in the signed tree.");
    let parsed = tile::parse_path(&format!("tile/{path}")).map_err(|_| not_found())?;
    let size = latest_checkpoint(&state).await?.tree_size;
    let store = state.ledger.store();
    let (data, partial) = match parsed {
        TilePath::Hashes(tile) => {
            if !tile.is_in_tree(size) {
                return Err(not_found());
            }
            let mut conn = store.database().pool().acquire().await.map_err(internal)?;
            let data = tree::tile_data(&mut conn, &tile).await.map_err(internal)?;
            (data, tile.is_partial())
        }
        TilePath::Entries(bundle) => {
            let leaves = bundle.leaf_range();
            if leaves.end > size {
                return Err(not_found());
            }
            let events = store
                .read_raw_page(leaves.start as i64, (leaves.end - leaves.start) as i64)
                .await
                .map_err(internal)?;
            let entries = events
                .iter()
                .map(|e| merkle::leaf_data_from_event_hash(&e.hash))
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            let data = tile::encode_entry_bundle(&entries).map_err(internal)?;
            (data, bundle.is_partial())
        }
    };
    // A full tile never changes; a partial one is replaced by a wider one as the log grows.
    let cache = if partial {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/octet-stream"),
            (CACHE_CONTROL, cache),
        ],
        data,
    )
        .into_response())
}

/// `GET /api/audit/events/stream?after=P` (or `Last-Event-ID: P`): every event after `P`, then
/// each new one as it commits, and each new checkpoint; a comment line at least every 15 s.
#[utoipa::path(
    get,
    path = "/api/audit/events/stream",
    tag = "audit",
    operation_id = "audit_event_stream",
    security(("audit_token" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0,
            description = "Stream the events after this position (default 0)."),
        ("Last-Event-ID" = Option<String>, Header,
            description = "An event position (a reconnecting `EventSource` sends it); it \
                overrides `after`."),
    ),
    responses(
        (status = 200, description = "A `text/event-stream` that does not end: for each event \
            `id: <position>`, `event: ledger_event`, `data: <event object>`; for each new \
            checkpoint `event: checkpoint`, `data: {\"tree_size\": N, \"checkpoint\": \
            \"<note text>\"}`; a comment line at least every 15 s; `event: error` before the \
            server closes it.", body = String, content_type = "text/event-stream"),
        (status = 403, description = "A token of the `leases` scope (`insufficient_scope`).",
            body = Forbidden),
        (status = 422, description = "`after` or `Last-Event-ID` is not an event position.",
            body = ValidationErrors),
        Refusals,
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    authorize(&state, caller).await?;
    let values = query_values(query.as_deref());
    let mut errors = Errors::new();
    let mut after = integer(&values, "after", Some(0), 0, i64::MAX, &mut errors);
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        match last.trim().parse::<i64>() {
            Ok(position) if position >= 0 => after = Some(position),
            _ => errors
                .entry("Last-Event-ID".to_owned())
                .or_default()
                .push("The Last-Event-ID header must be an event position.".to_owned()),
        }
    }
    let (Some(after), true) = (after, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let follower = Follower {
        state: state.clone(),
        feed: state.ledger.feed(),
        checkpoints: state.log.subscribe(),
        sent: after,
        known_head: i64::MAX,
        checkpoint_sent: 0,
        queue: VecDeque::new(),
        poll: tokio::time::interval(Duration::from_secs(1)),
        ended: false,
    };
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|event| (Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One subscriber of the live stream. It never slows the writer: committed batches come on a
/// broadcast channel that drops what a slow reader has not taken, and whatever it missed (or
/// another process appended) it reads from the log.
struct Follower {
    state: AppState,
    feed: tokio::sync::broadcast::Receiver<std::sync::Arc<[RawEvent]>>,
    checkpoints: tokio::sync::watch::Receiver<Option<StoredCheckpoint>>,
    /// The last position sent.
    sent: i64,
    /// The log's head as last seen (`i64::MAX`: not yet known, so read).
    known_head: i64,
    checkpoint_sent: u64,
    queue: VecDeque<Event>,
    poll: tokio::time::Interval,
    ended: bool,
}

impl Follower {
    fn push_event(&mut self, event: &RawEvent) {
        if event.position != self.sent + 1 {
            return;
        }
        if let Ok(data) = serde_json::to_string(event) {
            self.queue.push_back(
                Event::default()
                    .id(event.position.to_string())
                    .event("ledger_event")
                    .data(data),
            );
            self.sent = event.position;
        }
    }

    fn push_checkpoint(&mut self, checkpoint: &StoredCheckpoint) {
        if checkpoint.tree_size <= self.checkpoint_sent {
            return;
        }
        let data = serde_json::json!({
            "tree_size": checkpoint.tree_size,
            "checkpoint": checkpoint.note,
        });
        self.queue
            .push_back(Event::default().event("checkpoint").data(data.to_string()));
        self.checkpoint_sent = checkpoint.tree_size;
    }

    /// The next message, or `None` when the stream must end (it then ends with a final one).
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.known_head > self.sent {
                let store = self.state.ledger.store();
                match store.read_raw_page(self.sent, 500).await {
                    Ok(page) if page.is_empty() => self.known_head = self.sent,
                    Ok(page) => page.iter().for_each(|e| self.push_event(e)),
                    Err(error) => {
                        tracing::warn!(%error, "the audit stream cannot read the log");
                        return self.last_words(
                            "the log cannot be read now; reconnect with Last-Event-ID",
                        );
                    }
                }
                continue;
            }
            tokio::select! {
                batch = self.feed.recv() => match batch {
                    Ok(batch) => {
                        if batch.first().is_some_and(|e| e.position == self.sent + 1) {
                            batch.iter().for_each(|e| self.push_event(e));
                        } else if batch.last().is_some_and(|e| e.position > self.sent) {
                            self.known_head = batch.last().map_or(self.sent, |e| e.position);
                        }
                    }
                    // Fell behind: what was dropped is in the log.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.known_head = i64::MAX;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return self.last_words("the server is shutting down; reconnect with Last-Event-ID");
                    }
                },
                changed = self.checkpoints.changed() => {
                    if changed.is_err() {
                        return self.last_words("the server is shutting down; reconnect with Last-Event-ID");
                    }
                    let latest = self.checkpoints.borrow_and_update().clone();
                    if let Some(checkpoint) = latest {
                        self.push_checkpoint(&checkpoint);
                    }
                }
                // Another process may have appended, or signed: look.
                _ = self.poll.tick() => {
                    self.known_head = i64::MAX;
                    if let Ok(mut conn) = self.state.ledger.store().database().pool().acquire().await {
                        if let Ok(Some(checkpoint)) = checkpoints::latest(&mut conn).await {
                            self.push_checkpoint(&checkpoint);
                        }
                    }
                }
            }
        }
    }

    /// A final message before the stream ends.
    fn last_words(&mut self, message: &str) -> Option<Event> {
        self.ended = true;
        let data = serde_json::json!({ "message": message, "last_event_id": self.sent });
        Some(Event::default().event("error").data(data.to_string()))
    }
}

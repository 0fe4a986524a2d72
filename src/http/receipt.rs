//! `GET /api/mcp/credentials/lease/{id}/receipt`: a lease's events, each with a
//! `c2sp.org/tlog-proof@v1` inclusion proof against one signed checkpoint that covers them all,
//! and that checkpoint: everything a lease holder needs to show offline, with the log's vkey,
//! that the log recorded what happened to their lease.

use super::audit::latest_checkpoint;
use super::error::{ApiError, ErrorBody, Forbidden};
use super::openapi::Refusals;
use super::path::PathParam;
use super::request::{perform, RequestCaller};
use super::AppState;
use crate::commands::mcp::LeaseReceipt;
use crate::ledger::CommandError;
use axum::extract::State;
use axum::Json;
use mcp_events::{tree, RawEvent, StreamId};
use mcp_tlog::TlogProof;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceiptEvent {
    pub event: RawEvent,
    /// A `c2sp.org/tlog-proof@v1` inclusion proof of the event against `checkpoint`; its
    /// `extra` line is the base64 of the lease id.
    pub proof: String,
}

/// Everything a lease holder needs to show offline, with the log's verifier key, that the log
/// recorded what happened to their lease.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceiptView {
    pub lease_id: String,
    /// The log's verifier key (signed-note syntax).
    pub vkey: String,
    /// The signed checkpoint (note text) every proof is against.
    pub checkpoint: String,
    /// Every event of the lease's stream, in order.
    pub events: Vec<ReceiptEvent>,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Failed(CommandError::Internal(error.to_string()))
}

/// The lease's events with inclusion proofs against one signed checkpoint (the lease's owner).
#[utoipa::path(
    get,
    path = "/api/mcp/credentials/lease/{id}/receipt",
    tag = "leases",
    operation_id = "lease_receipt",
    security(("leases_token" = [])),
    params(
        ("id" = String, Path, description = "The lease's id (`lse_…`).", min_length = 1),
    ),
    responses(
        (status = 200, description = "The receipt.", body = ReceiptView),
        (status = 400, description = "The path is not UTF-8 once percent-decoded \
            (`invalid_path`).", body = ErrorBody),
        (status = 403, description = "Another user's lease (no `error`), or a token of the \
            `audit` scope (`insufficient_scope`).", body = Forbidden),
        (status = 404, description = "No lease has this id (`not_found`).", body = ErrorBody),
        Refusals,
    )
)]
#[tracing::instrument(skip_all, fields(lease_id = %id))]
pub async fn receipt(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    RequestCaller(caller): RequestCaller,
) -> Result<Json<ReceiptView>, ApiError> {
    let lease = perform(&state, caller, LeaseReceipt { lease_id: id }).await?;
    let store = state.ledger.store();
    let events = store
        .read_raw_stream(&StreamId::lease(&lease.id))
        .await
        .map_err(internal)?;
    let last = events.last().map_or(0, |e| e.position) as u64;
    let mut checkpoint = latest_checkpoint(&state).await?;
    if checkpoint.tree_size < last {
        // Not yet covered: sign the log's head now rather than make the holder wait.
        state
            .log
            .sign_if_grown(store, state.ledger.now())
            .await
            .map_err(internal)?;
        checkpoint = latest_checkpoint(&state).await?;
    }
    let mut conn = store.database().pool().acquire().await.map_err(internal)?;
    let mut proved = Vec::with_capacity(events.len());
    for event in events {
        let index = (event.position - 1) as u64;
        let hashes = tree::inclusion_proof(&mut conn, index, checkpoint.tree_size)
            .await
            .map_err(internal)?;
        let proof = TlogProof {
            extra: Some(lease.id.as_bytes().to_vec()),
            index,
            hashes,
            checkpoint: checkpoint.note.clone(),
        };
        proved.push(ReceiptEvent {
            event,
            proof: proof.to_text(),
        });
    }
    Ok(Json(ReceiptView {
        lease_id: lease.id,
        vkey: state.log.vkey(),
        checkpoint: checkpoint.note,
        events: proved,
    }))
}

//! `GET /api/mcp/credentials/lease/{id}/receipt`: a lease's events, each with a
//! `c2sp.org/tlog-proof@v1` inclusion proof against one signed checkpoint that covers them all,
//! and that checkpoint: everything a lease holder needs to show offline, with the log's vkey,
//! that the log recorded what happened to their lease.

use super::audit::latest_checkpoint;
use super::error::ApiError;
use super::request::{perform, RequestCaller};
use super::AppState;
use crate::commands::mcp::LeaseReceipt;
use crate::ledger::CommandError;
use axum::extract::{Path, State};
use axum::Json;
use mcp_events::{tree, RawEvent, StreamId};
use mcp_tlog::TlogProof;
use serde::Serialize;

#[derive(Serialize)]
pub struct ReceiptEvent {
    pub event: RawEvent,
    pub proof: String,
}

#[derive(Serialize)]
pub struct ReceiptView {
    pub lease_id: String,
    pub vkey: String,
    pub checkpoint: String,
    pub events: Vec<ReceiptEvent>,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Failed(CommandError::Internal(error.to_string()))
}

#[tracing::instrument(skip_all, fields(lease_id = %id))]
pub async fn receipt(
    State(state): State<AppState>,
    Path(id): Path<String>,
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

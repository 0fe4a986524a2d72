//! Transparency-log formats for the MCP Manager ledger, as pinned by CONTRACT.md ("Auditors").
//!
//! Pure formats and math, no I/O: leaf `i` is the event at position `i + 1`, its leaf data the
//! 32 bytes of the event hash.
//!
//! - [`merkle`] — RFC 6962 hashes, roots and proofs over a store of stored hashes, and the
//!   RFC 9162 verifiers.
//! - [`tile`] — the `c2sp.org/tlog-tiles` layout (tiles of height 8, paths, entry bundles).
//! - [`note`] — `c2sp.org/signed-note` with Ed25519 keys.
//! - [`checkpoint`] — `c2sp.org/tlog-checkpoint`.
//! - [`proof`] — `c2sp.org/tlog-proof@v1`.
//!
//! ```
//! use mcp_tlog::{merkle, Checkpoint, Signer, TlogProof};
//!
//! // The log: stored hashes grow by about two per event.
//! let event_hashes = ["11".repeat(32), "22".repeat(32), "33".repeat(32)];
//! let mut store = merkle::MemoryHashStore::new();
//! for h in &event_hashes {
//!     let data = merkle::leaf_data_from_event_hash(h)?;
//!     store.append_leaves(&[data])?;
//! }
//!
//! // A signed checkpoint.
//! let signer = Signer::from_seed(mcp_tlog::DEFAULT_ORIGIN, &[42; 32])?;
//! let checkpoint = Checkpoint { origin: mcp_tlog::DEFAULT_ORIGIN.into(), size: 3, root: store.root()? };
//! let signed = checkpoint.sign(&signer)?;
//!
//! // A receipt for event 2 (leaf 1), checked offline with the vkey.
//! let proof = TlogProof {
//!     extra: Some(b"lease id".to_vec()),
//!     index: 1,
//!     hashes: merkle::inclusion_proof(1, 3, &store)?,
//!     checkpoint: signed,
//! };
//! let text = proof.to_text();
//! let vkey = signer.verifier().vkey();
//! let verifier = mcp_tlog::Verifier::parse(&vkey)?;
//! let leaf = merkle::leaf_data_from_event_hash(&event_hashes[1])?;
//! assert_eq!(TlogProof::parse(&text)?.verify(&leaf, &verifier)?.size, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod tile;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use merkle::{Hash, HashReader, TreeError, VerifyError};
pub use note::{NoteError, Signer, Verifier};
pub use proof::{ProofError, TlogProof};
pub use tile::{EntryBundle, Tile, TileError, TilePath};

/// The default log origin (and key name).
pub const DEFAULT_ORIGIN: &str = "mcp-manager.local/ledger";

//! `c2sp.org/tlog-proof@v1`: an offline proof that a leaf is in a signed checkpoint.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 extra data>        (optional; lease receipts put the lease id here)
//! index <leaf index>
//! <base64 proof hash>              (zero or more, leaf sibling first)
//!
//! <signed checkpoint, verbatim>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{self, Hash, VerifyError};
use crate::note::{self, NoteError, Verifier};

/// First line of a proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most proof hashes a proof may carry (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_HASHES: usize = 64;

/// Errors of tlog proofs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Text that is not a tlog-proof@v1.
    #[error("malformed tlog proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint inside does not verify or parse.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not bind the leaf to the checkpoint.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] VerifyError),
}

impl From<NoteError> for ProofError {
    fn from(e: NoteError) -> Self {
        ProofError::Checkpoint(CheckpointError::Note(e))
    }
}

/// A parsed tlog proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data (the `extra` line), if any.
    pub extra: Option<Vec<u8>>,
    /// Zero-based leaf index.
    pub index: u64,
    /// Inclusion proof hashes, RFC 6962 §2.1.1 order.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The proof text.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(64 + 45 * self.hashes.len() + self.checkpoint.len());
        out.push_str(PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&B64.encode(extra));
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses proof text. The checkpoint is checked to be a syntactically valid signed note
    /// (not verified: see [`TlogProof::verify`]).
    pub fn parse(text: &str) -> Result<Self, ProofError> {
        use ProofError::Malformed as M;
        let mut rest = text;
        let mut next_line = || -> Result<&str, ProofError> {
            let (line, tail) = rest.split_once('\n').ok_or(M("unexpected end of proof"))?;
            rest = tail;
            Ok(line)
        };
        if next_line()? != PROOF_HEADER {
            return Err(M("first line must be c2sp.org/tlog-proof@v1"));
        }
        let mut line = next_line()?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(b64).map_err(|_| M("extra is not base64"))?);
            line = next_line()?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(M("expected an index line"))?;
        if index.is_empty()
            || !index.bytes().all(|b| b.is_ascii_digit())
            || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(M("index must be a decimal without leading zeros"));
        }
        let index: u64 = index.parse().map_err(|_| M("index too large"))?;
        let mut hashes = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(M("too many proof hashes"));
            }
            let h: Hash = B64
                .decode(line)
                .map_err(|_| M("proof hash is not base64"))?
                .try_into()
                .map_err(|_| M("proof hash must be 32 bytes"))?;
            hashes.push(h);
        }
        if rest.is_empty() {
            return Err(M("missing checkpoint"));
        }
        note::parse(rest)?;
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: rest.to_owned(),
        })
    }

    /// Verifies the proof for a leaf with `leaf_data`: the checkpoint is signed by `verifier`
    /// (origin = key name) and the inclusion proof binds the leaf at `index` to its root.
    /// Returns the checkpoint.
    pub fn verify(&self, leaf_data: &[u8], verifier: &Verifier) -> Result<Checkpoint, ProofError> {
        self.verify_leaf_hash(&merkle::leaf_hash(leaf_data), verifier)
    }

    /// As [`TlogProof::verify`], given the leaf hash instead of the leaf data.
    pub fn verify_leaf_hash(
        &self,
        leaf_hash: &Hash,
        verifier: &Verifier,
    ) -> Result<Checkpoint, ProofError> {
        let cp = Checkpoint::open(&self.checkpoint, verifier)?;
        merkle::verify_inclusion(leaf_hash, self.index, cp.size, &self.hashes, &cp.root)?;
        Ok(cp)
    }
}

impl std::fmt::Display for TlogProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

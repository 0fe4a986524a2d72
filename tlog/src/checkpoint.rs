//! `c2sp.org/tlog-checkpoint`: the signed tree head `<origin>\n<size>\n<base64 root>\n`.
//!
//! Our checkpoints carry no extension lines and are signed by the log key whose name is the
//! origin (CONTRACT.md, "Auditors"). [`Checkpoint::parse`] is strict: it accepts exactly the
//! text [`Checkpoint::to_text`] writes, so a parsed checkpoint formats back to the signed bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::Hash;
use crate::note::{self, NoteError, Signer, Verifier};

/// Errors of checkpoint text and signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Checkpoint text that is not `<origin>\n<size>\n<base64 root>\n`.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The origin does not match the key that must sign it.
    #[error("checkpoint origin {origin:?} does not match key name {key_name:?}")]
    OriginMismatch { origin: String, key_name: String },
    /// The signed note around the checkpoint is bad.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A tree head: the log's origin, its size and the root hash at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log identity (also the key name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash at `size`.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses checkpoint note text (three lines, no extension lines).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        use CheckpointError::Malformed as M;
        let body = text
            .strip_suffix('\n')
            .ok_or(M("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(M("needs origin, size and root lines"));
        };
        if lines.next().is_some() {
            return Err(M("extension lines are not used by this log"));
        }
        if origin.is_empty() {
            return Err(M("empty origin"));
        }
        if origin.chars().any(char::is_control) {
            return Err(M("control character in origin"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(M("size must be a decimal without leading zeros"));
        }
        let size: u64 = size.parse().map_err(|_| M("size too large"))?;
        let root = B64
            .decode(root)
            .map_err(|_| M("root is not base64"))?
            .try_into()
            .map_err(|_| M("root must be 32 bytes"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The signed checkpoint note. The signer's name must be the origin.
    pub fn sign(&self, signer: &Signer) -> Result<String, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: signer.name().to_owned(),
            });
        }
        // Catches origins that the parser would reject (e.g. a newline in the origin).
        let text = self.to_text();
        if Checkpoint::parse(&text)? != *self {
            return Err(CheckpointError::Malformed("origin does not round-trip"));
        }
        Ok(note::sign(&text, &[signer])?)
    }

    /// Verifies a signed checkpoint with the log's key and parses it. The origin must be the
    /// key's name; other signatures (witnesses) are ignored.
    pub fn open(signed_note: &str, verifier: &Verifier) -> Result<Self, CheckpointError> {
        let opened = note::open(signed_note, std::slice::from_ref(verifier))?;
        let cp = Checkpoint::parse(&opened.text)?;
        if cp.origin != verifier.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: cp.origin,
                key_name: verifier.name().to_owned(),
            });
        }
        Ok(cp)
    }
}

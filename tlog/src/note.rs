//! `c2sp.org/signed-note` with Ed25519 keys: key strings, signing and opening notes.
//!
//! A signed note is a text ending in a newline, a blank line, then lines
//! `— <key name> <base64(key id || signature)>`. A key is named by its name and a 4-byte key id,
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. Keys travel as strings:
//!
//! - verifier key: `<name>+<key id hex>+<base64(0x01 || public key)>`
//! - private key: `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>`
//!
//! Errors never include key material: a private key string that fails to parse is reported by
//! what is wrong with it, never echoed.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 keys.
pub const ALG_ED25519: u8 = 0x01;

/// Most signature lines [`parse`] accepts (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Errors of keys and notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name that is empty or contains spaces, `+` or control characters.
    #[error("invalid key name")]
    InvalidName,
    /// A verifier key string that does not parse.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A private key string that does not parse (its content is never shown).
    #[error("malformed private key: {0}")]
    MalformedPrivateKey(&'static str),
    /// The key id in a key string does not match the key.
    #[error("key id does not match the key")]
    KeyIdMismatch,
    /// A key of a signature type other than Ed25519.
    #[error("unsupported signature type {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// Text that cannot be signed: empty, not ending in a newline, or with control characters.
    #[error("invalid note text: {0}")]
    InvalidText(&'static str),
    /// A signed note that does not follow the syntax.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A signature line from a known key (same name and id) that does not verify.
    #[error("invalid signature by {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    /// No signature of the note is from a known key.
    #[error("note has no signature from a known key")]
    UnverifiedNote,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id (the first 4 bytes of the base64 payload).
    pub key_id: u32,
    /// The signature itself (the payload after the key id).
    pub signature: Vec<u8>,
    /// Whether [`open`] verified it with a known key (always false from [`parse`]).
    pub verified: bool,
}

/// A signed note split into its text and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Whether `name` can be a key name: non-empty, no Unicode space, no `+`, no control character.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '+')
}

/// The key id of an Ed25519 key: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses 8 lowercase hex digits.
fn parse_key_id_hex(s: &str) -> Option<u32> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_typed_key(s: &str) -> Result<[u8; 32], Option<u8>> {
    let raw = B64.decode(s).map_err(|_| None)?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        Some((&ALG_ED25519, _)) | None => Err(None),
        Some((&alg, _)) => Err(Some(alg)),
    }
}

fn encode_typed_key(key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(ALG_ED25519);
    raw.extend_from_slice(key);
    B64.encode(raw)
}

/// A signing key with its name.
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The Ed25519 key with this 32-byte seed (RFC 8032 private key), named `name`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidName);
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Signer {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`.
    pub fn from_private_key(s: &str) -> Result<Self, NoteError> {
        use NoteError::MalformedPrivateKey as M;
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(M("must start with PRIVATE+KEY+"))?;
        // Names have no `+`, but base64 may: the key is everything after the second `+`.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(M("expected PRIVATE+KEY+<name>+<key id>+<key>"));
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidName);
        }
        let id = parse_key_id_hex(id_hex).ok_or(M("key id must be 8 lowercase hex digits"))?;
        let seed = decode_typed_key(key_b64).map_err(|alg| match alg {
            Some(a) => NoteError::UnsupportedAlgorithm(a),
            None => M("key must be base64 of 0x01 and a 32-byte seed"),
        })?;
        let signer = Signer::from_seed(name, &seed)?;
        if signer.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(signer)
    }

    /// The private key string `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`.
    /// It is secret: do not log it.
    pub fn private_key(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_typed_key(&self.key.to_bytes())
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line `— <name> <base64(key id || signature)>\n` for `text` (checked as
    /// by [`sign`]).
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut payload = Vec::with_capacity(68);
        payload.extend_from_slice(&self.key_id.to_be_bytes());
        payload.extend_from_slice(&sig.to_bytes());
        Ok(format!("\u{2014} {} {}\n", self.name, B64.encode(payload)))
    }
}

/// A verifier key with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

impl std::str::FromStr for Verifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verifier::parse(s)
    }
}

impl Verifier {
    /// Parses `<name>+<key id hex>+<base64(0x01 || public key)>`, checking the key id.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        use NoteError::MalformedVerifierKey as M;
        // Names have no `+`, but base64 may: the key is everything after the second `+`.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(M("expected <name>+<key id>+<key>"));
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidName);
        }
        let id = parse_key_id_hex(id_hex).ok_or(M("key id must be 8 lowercase hex digits"))?;
        let public = decode_typed_key(key_b64).map_err(|alg| match alg {
            Some(a) => NoteError::UnsupportedAlgorithm(a),
            None => M("key must be base64 of 0x01 and a 32-byte public key"),
        })?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| M("not an Ed25519 public key"))?;
        if key_id(name, &public) != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(Verifier {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_typed_key(self.key.as_bytes())
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` (without the key id) is this key's signature of `text`.
    pub fn verify(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        // Strict verification rejects malleable signatures and weak keys; honest signers are
        // unaffected.
        self.key.verify_strict(text.as_bytes(), &sig).is_ok()
    }

    /// Whether this key signed with this name and id.
    fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }
}

/// A new key pair from 32 random bytes: `(private key string, verifier key string)`.
pub fn generate_key(name: &str, seed: &[u8; 32]) -> Result<(String, String), NoteError> {
    let signer = Signer::from_seed(name, seed)?;
    Ok((signer.private_key(), signer.verifier().vkey()))
}

fn check_note_chars(s: &str) -> bool {
    !s.chars().any(|c| c < ' ' && c != '\n')
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::InvalidText("must end with a newline"));
    }
    if !check_note_chars(text) {
        return Err(NoteError::InvalidText(
            "must not contain control characters other than newline",
        ));
    }
    Ok(())
}

/// Signs `text` (non-empty, ending in a newline, no control characters but newlines) with each
/// signer, returning the signed note.
pub fn sign(text: &str, signers: &[&Signer]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::InvalidText("a note needs at least one signer"));
    }
    let mut out = String::with_capacity(text.len() + 1 + signers.len() * 120);
    out.push_str(text);
    out.push('\n');
    for s in signers {
        out.push_str(&s.signature_line(text)?);
    }
    Ok(out)
}

/// Splits a signed note into text and signatures, checking only the syntax.
pub fn parse(note: &str) -> Result<Note, NoteError> {
    use NoteError::Malformed as M;
    if !check_note_chars(note) {
        return Err(M("control character"));
    }
    // The text ends at the last blank line.
    let split = note
        .rfind("\n\n")
        .ok_or(M("no blank line before signatures"))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or(M("signatures must end with a newline"))?;
    let mut signatures = Vec::new();
    for line in sigs.split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(M("too many signatures"));
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(M("signature line must start with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(M("signature line must be name, space, signature"))?;
        if !is_valid_key_name(name) {
            return Err(M("invalid key name in signature line"));
        }
        let raw = B64.decode(b64).map_err(|_| M("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(M("signature too short"));
        }
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature: raw[4..].to_vec(),
            verified: false,
        });
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// Parses and verifies a signed note against known keys.
///
/// Signatures from unknown keys (a different name or id) are ignored; every signature from a
/// known key must verify, and at least one must be present. The returned note marks which
/// signatures were verified.
pub fn open(note: &str, verifiers: &[Verifier]) -> Result<Note, NoteError> {
    let mut parsed = parse(note)?;
    let mut any = false;
    for sig in &mut parsed.signatures {
        if let Some(v) = verifiers.iter().find(|v| v.matches(sig)) {
            if !v.verify(&parsed.text, &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            sig.verified = true;
            any = true;
        }
    }
    if !any {
        return Err(NoteError::UnverifiedNote);
    }
    Ok(parsed)
}

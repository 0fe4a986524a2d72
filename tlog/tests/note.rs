//! Signed notes: key strings for a fixed seed, the spec's example, signing and opening.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use mcp_tlog::note::{self, generate_key, key_id, open, parse, sign, NoteError, Signer, Verifier};
use sha2::{Digest, Sha256};

/// RFC 8032 §7.1 TEST 1 secret key, whose public key is known.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const NAME: &str = "mcp-manager.local/ledger";
// Computed independently (Python hashlib/base64) from the definitions in signed-note.md.
const VKEY: &str = "mcp-manager.local/ledger+1842e73a+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";
const PRIVATE: &str =
    "PRIVATE+KEY+mcp-manager.local/ledger+1842e73a+AZ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g";

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    hex::decode_to_slice(SEED, &mut s).unwrap();
    s
}

fn signer() -> Signer {
    Signer::from_seed(NAME, &seed()).unwrap()
}

#[test]
fn fixed_seed_gives_fixed_key_strings() {
    let s = signer();
    let v = s.verifier();
    assert_eq!(hex::encode(v.public_key()), PUBLIC);
    // Key id recomputed from its definition: SHA-256(name || 0x0A || 0x01 || public key)[:4].
    let mut h = Sha256::new();
    h.update(NAME.as_bytes());
    h.update([0x0a, 0x01]);
    h.update(v.public_key());
    let d = h.finalize();
    let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(id, 0x1842e73a);
    assert_eq!(s.key_id(), id);
    assert_eq!(v.key_id(), id);
    assert_eq!(key_id(NAME, &v.public_key()), id);
    assert_eq!(v.vkey(), VKEY);
    assert_eq!(v.to_string(), VKEY);
    assert_eq!(s.private_key(), PRIVATE);
    // The base64 parts are 0x01 followed by the key.
    let raw = B64.decode(VKEY.splitn(3, '+').nth(2).unwrap()).unwrap();
    assert_eq!(raw[0], 0x01);
    assert_eq!(hex::encode(&raw[1..]), PUBLIC);
    let raw = B64.decode(PRIVATE.splitn(5, '+').nth(4).unwrap()).unwrap();
    assert_eq!(raw[0], 0x01);
    assert_eq!(hex::encode(&raw[1..]), SEED);

    assert_eq!(
        generate_key(NAME, &seed()).unwrap(),
        (PRIVATE.to_string(), VKEY.to_string())
    );
    let parsed = Signer::from_private_key(PRIVATE).unwrap();
    assert_eq!(parsed.private_key(), PRIVATE);
    assert_eq!(parsed.verifier(), v);
    assert_eq!(Verifier::parse(VKEY).unwrap(), v);
    assert_eq!(VKEY.parse::<Verifier>().unwrap(), v);
}

#[test]
fn spec_example_note_verifies() {
    // From signed-note.md, "Example".
    let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let msg = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let v = Verifier::parse(vkey).unwrap();
    assert_eq!(v.name(), "example.com/foo");
    assert_eq!(v.key_id(), 0x530d903a);
    let n = open(msg, std::slice::from_ref(&v)).unwrap();
    assert_eq!(n.text, "This is an example message.\n");
    assert_eq!(n.signatures.len(), 1);
    assert!(n.signatures[0].verified);
    // One changed character in the text: rejected.
    let bad = msg.replace("example message", "example massage");
    assert!(matches!(
        open(&bad, &[v]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn quasimodo_example_parses_and_is_unverified_without_its_key() {
    let msg = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n\u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    let n = parse(msg).unwrap();
    // The text keeps its inner empty line: the split is at the last one.
    assert_eq!(
        n.text,
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    );
    assert_eq!(n.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(n.signatures[0].signature.len(), 64);
    assert_eq!(
        open(msg, &[signer().verifier()]),
        Err(NoteError::UnverifiedNote)
    );
}

#[test]
fn go_sumdb_note_vector() {
    // golang.org/x/mod/sumdb/note's test key and signed text.
    let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let want = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let s = Signer::from_private_key(skey).unwrap();
    assert_eq!(s.verifier().vkey(), vkey);
    assert_eq!(sign(text, &[&s]).unwrap(), want);
    open(want, &[Verifier::parse(vkey).unwrap()]).unwrap();
}

#[test]
fn sign_and_open_round_trip() {
    let s = signer();
    let text = "hello\n\nworld\n";
    let signed = sign(text, &[&s]).unwrap();
    assert!(signed.starts_with("hello\n\nworld\n\n\u{2014} mcp-manager.local/ledger "));
    assert!(signed.ends_with('\n'));
    let n = open(&signed, &[s.verifier()]).unwrap();
    assert_eq!(n.text, text);
    assert_eq!(
        s.signature_line(text).unwrap(),
        signed[text.len() + 1..].to_string()
    );
}

#[test]
fn flipped_bytes_fail() {
    let s = signer();
    let signed = sign("some text\n", &[&s]).unwrap();
    let v = [s.verifier()];
    // A byte of the text.
    let bad = signed.replacen("some", "same", 1);
    assert!(matches!(
        open(&bad, &v),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A byte of the signature (after the key id).
    let n = parse(&signed).unwrap();
    let mut payload = n.signatures[0].key_id.to_be_bytes().to_vec();
    let mut sig = n.signatures[0].signature.clone();
    sig[10] ^= 0x01;
    payload.extend_from_slice(&sig);
    let bad = format!("some text\n\n\u{2014} {NAME} {}\n", B64.encode(&payload));
    assert!(matches!(
        open(&bad, &v),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A truncated signature from a known key.
    let bad = format!(
        "some text\n\n\u{2014} {NAME} {}\n",
        B64.encode(&payload[..40])
    );
    assert!(matches!(
        open(&bad, &v),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn other_key_with_same_name_is_not_trusted() {
    let ours = signer();
    let theirs = Signer::from_seed(NAME, &[7u8; 32]).unwrap();
    assert_ne!(ours.key_id(), theirs.key_id());
    let signed = sign("checkpoint\n", &[&theirs]).unwrap();
    assert_eq!(
        open(&signed, &[ours.verifier()]),
        Err(NoteError::UnverifiedNote)
    );
    // Same key id, other name: unknown too.
    let renamed = signed.replace(NAME, "other.example/log");
    assert_eq!(
        open(&renamed, &[theirs.verifier()]),
        Err(NoteError::UnverifiedNote)
    );
    // A forged line with our name and id but their signature: a failed known signature.
    let n = parse(&signed).unwrap();
    let mut payload = ours.key_id().to_be_bytes().to_vec();
    payload.extend_from_slice(&n.signatures[0].signature);
    let forged = format!("checkpoint\n\n\u{2014} {NAME} {}\n", B64.encode(&payload));
    assert!(matches!(
        open(&forged, &[ours.verifier()]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn unknown_cosignatures_are_ignored() {
    let ours = signer();
    let witness = Signer::from_seed("witness.example", &[9u8; 32]).unwrap();
    let signed = sign("tree\n", &[&ours, &witness]).unwrap();
    let n = open(&signed, &[ours.verifier()]).unwrap();
    assert_eq!(n.signatures.len(), 2);
    assert!(n.signatures[0].verified);
    assert!(!n.signatures[1].verified);
    let n = open(&signed, &[ours.verifier(), witness.verifier()]).unwrap();
    assert!(n.signatures.iter().all(|s| s.verified));
}

#[test]
fn malformed_notes_are_rejected() {
    let s = signer();
    let good = sign("text\n", &[&s]).unwrap();
    let line = &good["text\n\n".len()..];
    let cases = vec![
        ("no blank line".to_string(), format!("text\n{line}")),
        (
            "no trailing newline".to_string(),
            good.trim_end().to_string(),
        ),
        (
            "hyphen instead of em dash".to_string(),
            good.replace('\u{2014}', "-"),
        ),
        (
            "no space after dash".to_string(),
            good.replace("\u{2014} ", "\u{2014}"),
        ),
        ("control char".to_string(), good.replace("text", "te\rxt")),
        ("tab".to_string(), good.replace("text", "te\txt")),
        (
            "bad base64".to_string(),
            format!("text\n\n\u{2014} {NAME} !!!!\n"),
        ),
        (
            "short signature".to_string(),
            format!("text\n\n\u{2014} {NAME} {}\n", B64.encode([1, 2, 3, 4])),
        ),
        (
            "empty name".to_string(),
            format!("text\n\n\u{2014}  {}\n", B64.encode([0u8; 68])),
        ),
        (
            "name with plus".to_string(),
            format!("text\n\n\u{2014} a+b {}\n", B64.encode([0u8; 68])),
        ),
        (
            "unpadded base64".to_string(),
            format!(
                "text\n\n\u{2014} {NAME} {}\n",
                B64.encode([0u8; 68]).trim_end_matches('=')
            ),
        ),
        ("empty signature block".to_string(), "text\n\n".to_string()),
        (
            "too many signatures".to_string(),
            format!("text\n\n{}", line.repeat(note::MAX_SIGNATURES + 1)),
        ),
    ];
    for (what, msg) in cases {
        assert!(
            matches!(parse(&msg), Err(NoteError::Malformed(_))),
            "{what}: {:?}",
            parse(&msg)
        );
        assert!(open(&msg, &[s.verifier()]).is_err(), "{what}");
    }
    // Sixteen signatures are fine.
    let many = format!("text\n\n{}", line.repeat(16));
    assert_eq!(open(&many, &[s.verifier()]).unwrap().signatures.len(), 16);
}

#[test]
fn texts_that_cannot_be_signed() {
    let s = signer();
    for text in ["", "no newline", "tab\there\n", "nul\0\n"] {
        assert!(
            matches!(sign(text, &[&s]), Err(NoteError::InvalidText(_))),
            "{text:?}"
        );
    }
    assert!(sign("ok\n", &[]).is_err());
}

#[test]
fn malformed_verifier_keys() {
    let good = VKEY;
    let (name, rest) = good.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    assert!(
        key.contains('+'),
        "this key's base64 has a plus, which must not split it"
    );
    let cases = vec![
        "".to_string(),
        name.to_string(),
        format!("{name}+{id}"),
        format!("{name}+{id}+{key}+extra"),
        format!("+{id}+{key}"),
        format!("bad name+{id}+{key}"),
        format!("{name}+{}+{key}", id.to_uppercase()),
        format!("{name}+{}+{key}", &id[..7]),
        format!("{name}+0{id}+{key}"),
        format!("{name}+{id}+{}", &key[..key.len() - 4]),
        format!("{name}+{id}+not-base64"),
        format!("{name}+1842e73b+{key}"),    // key id off by one
        format!("other.example+{id}+{key}"), // key id of another name
    ];
    for c in cases {
        assert!(Verifier::parse(&c).is_err(), "{c:?}");
    }
    // Another signature type.
    let mut raw = B64.decode(key).unwrap();
    raw[0] = 0x02;
    let other_alg = format!("{name}+{id}+{}", B64.encode(&raw));
    assert_eq!(
        Verifier::parse(&other_alg),
        Err(NoteError::UnsupportedAlgorithm(2))
    );
    assert_eq!(
        Verifier::parse(&format!("{name}+1842e73b+{key}")),
        Err(NoteError::KeyIdMismatch)
    );
}

#[test]
fn malformed_private_keys_never_echo_the_key() {
    let secret = PRIVATE.splitn(5, '+').nth(4).unwrap();
    let cases = vec![
        PRIVATE.replace("PRIVATE+KEY+", "PRIVATE+"),
        PRIVATE.replace("1842e73a", "1842e73b"),
        PRIVATE.replace("1842e73a", "1842E73A"),
        format!("{PRIVATE}+x"),
        PRIVATE.replace(NAME, "other.example"),
        PRIVATE.replace(secret, &secret[..secret.len() - 1]),
        PRIVATE.replace("AZ1h", "Ap1h"),
        VKEY.to_string(),
    ];
    for c in cases {
        let err = Signer::from_private_key(&c).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&secret[4..20]),
            "error leaks the key: {shown}"
        );
    }
    let dbg = format!("{:?}", signer());
    assert!(!dbg.contains(&secret[4..20]));
    assert!(!dbg.contains(&SEED[..16]));
    assert!(dbg.contains("1842e73a"));
}

#[test]
fn key_names_are_checked() {
    for bad in [
        "",
        "has space",
        "a+b",
        "tab\tname",
        "nbsp\u{a0}name",
        "new\nline",
    ] {
        assert_eq!(
            Signer::from_seed(bad, &seed()).unwrap_err(),
            NoteError::InvalidName,
            "{bad:?}"
        );
    }
    assert!(Signer::from_seed("ünïcode.example/log", &seed()).is_ok());
}

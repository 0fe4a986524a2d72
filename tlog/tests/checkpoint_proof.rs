//! Checkpoints and tlog-proof@v1, with exact texts computed independently (Python hashlib,
//! base64 and the `cryptography` package's Ed25519) for a fixed key and a five-leaf log.

use mcp_tlog::checkpoint::{Checkpoint, CheckpointError};
use mcp_tlog::merkle::{empty_root, inclusion_proof, MemoryHashStore, VerifyError};
use mcp_tlog::note::{self, NoteError, Signer};
use mcp_tlog::proof::{ProofError, TlogProof};
use sha2::{Digest, Sha256};

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const ORIGIN: &str = mcp_tlog::DEFAULT_ORIGIN;

const SIGNED_CHECKPOINT: &str = "mcp-manager.local/ledger\n5\nIz79QhIc9P3w0Pd9fBRmZmvk+ggt9HpBLCjO1mV8n34=\n\n\u{2014} mcp-manager.local/ledger GELnOrpBU2K7jlnj0EgVRXOcXhIRkPaPTY986SXOIgnJBun8Az3Pkm+NtCAbwNyFmjM7Qgoamw2xd4Jv/4neNxE1CQo=\n";

const PROOF: &str = "c2sp.org/tlog-proof@v1
extra bGVhc2UtMDAwMQ==
index 2
WjA/VAz5QisVRGqUXHx40nJCAC6ZdLmfbMOTS6caZOY=
fRyF4sWA+DEawiyg0/UpTTjmwDMbLK29zf9uGMwRwWs=
8KlYLzj/9YcpLzhQzlv7FF7wx6P/HP2SiqfmcbIpJlc=

mcp-manager.local/ledger
5
Iz79QhIc9P3w0Pd9fBRmZmvk+ggt9HpBLCjO1mV8n34=

\u{2014} mcp-manager.local/ledger GELnOrpBU2K7jlnj0EgVRXOcXhIRkPaPTY986SXOIgnJBun8Az3Pkm+NtCAbwNyFmjM7Qgoamw2xd4Jv/4neNxE1CQo=
";

fn signer() -> Signer {
    let mut s = [0u8; 32];
    hex::decode_to_slice(SEED, &mut s).unwrap();
    Signer::from_seed(ORIGIN, &s).unwrap()
}

/// Leaf data of the example log: SHA-256("event 1") .. SHA-256("event 5"), standing in for
/// event hashes.
fn leaf_data() -> Vec<[u8; 32]> {
    (1..=5)
        .map(|i| Sha256::digest(format!("event {i}")).into())
        .collect()
}

fn store() -> MemoryHashStore {
    let mut s = MemoryHashStore::new();
    s.append_leaves(&leaf_data()).unwrap();
    s
}

#[test]
fn signed_checkpoint_has_the_exact_expected_text() {
    let store = store();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 5,
        root: store.root().unwrap(),
    };
    assert_eq!(
        cp.to_text(),
        "mcp-manager.local/ledger\n5\nIz79QhIc9P3w0Pd9fBRmZmvk+ggt9HpBLCjO1mV8n34=\n"
    );
    assert_eq!(cp.sign(&signer()).unwrap(), SIGNED_CHECKPOINT);
    assert_eq!(
        Checkpoint::open(SIGNED_CHECKPOINT, &signer().verifier()).unwrap(),
        cp
    );
}

#[test]
fn empty_log_checkpoint() {
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: empty_root(),
    };
    assert_eq!(
        cp.to_text(),
        "mcp-manager.local/ledger\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    );
    let signed = cp.sign(&signer()).unwrap();
    assert_eq!(Checkpoint::open(&signed, &signer().verifier()).unwrap(), cp);
}

#[test]
fn spec_example_checkpoint_text_parses() {
    let cp = Checkpoint::parse(
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    )
    .unwrap();
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20852163);
    assert_eq!(cp.root[0], 0x0a);
}

#[test]
fn malformed_checkpoints() {
    let root = "Iz79QhIc9P3w0Pd9fBRmZmvk+ggt9HpBLCjO1mV8n34=";
    let cases = vec![
        format!("{ORIGIN}\n5\n{root}"),    // no final newline
        format!("{ORIGIN}\n5\n"),          // no root
        format!("{ORIGIN}\n"),             // no size
        format!("\n5\n{root}\n"),          // empty origin
        format!("{ORIGIN}\n05\n{root}\n"), // leading zero
        format!("{ORIGIN}\n+5\n{root}\n"),
        format!("{ORIGIN}\n-5\n{root}\n"),
        format!("{ORIGIN}\n 5\n{root}\n"),
        format!("{ORIGIN}\n\n{root}\n"),
        format!("{ORIGIN}\n18446744073709551616\n{root}\n"), // u64 overflow
        format!("{ORIGIN}\n5\n{}\n", &root[..40]),           // not 32 bytes
        format!("{ORIGIN}\n5\n{}\n", root.trim_end_matches('=')), // unpadded
        format!("{ORIGIN}\n5\nAAAA\n"),
        format!("{ORIGIN}\n5\n{root}\nextension\n"), // extension lines not used
        format!("{ORIGIN}\n5\n{root}\n\n"),
        format!("{ORIGIN}\r\n5\n{root}\n"),
    ];
    for c in cases {
        assert!(
            matches!(Checkpoint::parse(&c), Err(CheckpointError::Malformed(_))),
            "{c:?}: {:?}",
            Checkpoint::parse(&c)
        );
    }
    assert_eq!(
        Checkpoint::parse(&format!("{ORIGIN}\n0\n{root}\n"))
            .unwrap()
            .size,
        0
    );
}

#[test]
fn checkpoint_signing_and_opening_checks_keys() {
    let s = signer();
    let cp = Checkpoint {
        origin: "other.example/log".into(),
        size: 1,
        root: [0; 32],
    };
    assert!(matches!(
        cp.sign(&s),
        Err(CheckpointError::OriginMismatch { .. })
    ));
    let bad_origin = Checkpoint {
        origin: format!("{ORIGIN}\n7"),
        size: 1,
        root: [0; 32],
    };
    assert!(bad_origin.sign(&s).is_err());

    // Signed by a key named like our origin but with another seed.
    let other = Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 1,
        root: [0; 32],
    };
    let signed = cp.sign(&other).unwrap();
    assert_eq!(
        Checkpoint::open(&signed, &s.verifier()),
        Err(CheckpointError::Note(NoteError::UnverifiedNote))
    );
    // A correctly signed note whose origin is not the key's name.
    let text = "someone.else/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let signed = note::sign(text, &[&s]).unwrap();
    assert!(matches!(
        Checkpoint::open(&signed, &s.verifier()),
        Err(CheckpointError::OriginMismatch { .. })
    ));
    // Flipped byte of the signed checkpoint.
    let flipped = SIGNED_CHECKPOINT.replacen("\n5\n", "\n6\n", 1);
    assert!(matches!(
        Checkpoint::open(&flipped, &s.verifier()),
        Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
    ));
}

fn example_proof() -> TlogProof {
    TlogProof {
        extra: Some(b"lease-0001".to_vec()),
        index: 2,
        hashes: inclusion_proof(2, 5, &store()).unwrap(),
        checkpoint: SIGNED_CHECKPOINT.into(),
    }
}

#[test]
fn proof_has_the_exact_expected_text_and_round_trips() {
    let p = example_proof();
    assert_eq!(p.to_text(), PROOF);
    assert_eq!(p.to_string(), PROOF);
    assert_eq!(TlogProof::parse(PROOF).unwrap(), p);

    let no_extra = TlogProof {
        extra: None,
        ..example_proof()
    };
    let text = no_extra.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 2\n"));
    assert_eq!(TlogProof::parse(&text).unwrap(), no_extra);

    let no_hashes = TlogProof {
        extra: None,
        index: 0,
        hashes: vec![],
        checkpoint: SIGNED_CHECKPOINT.into(),
    };
    let text = no_hashes.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\nmcp-manager.local/ledger\n"));
    assert_eq!(TlogProof::parse(&text).unwrap(), no_hashes);
}

#[test]
fn proof_verifies_for_its_leaf_only() {
    let v = signer().verifier();
    let data = leaf_data();
    let p = TlogProof::parse(PROOF).unwrap();
    let cp = p.verify(&data[2], &v).unwrap();
    assert_eq!(cp.size, 5);

    // Every leaf of the log has a proof that verifies.
    for (i, d) in data.iter().enumerate() {
        let p = TlogProof {
            extra: None,
            index: i as u64,
            hashes: inclusion_proof(i as u64, 5, &store()).unwrap(),
            checkpoint: SIGNED_CHECKPOINT.into(),
        };
        p.verify(d, &v).unwrap();
    }

    // Wrong leaf data.
    assert_eq!(
        p.verify(&data[3], &v),
        Err(ProofError::Inclusion(VerifyError::RootMismatch))
    );
    // Wrong index.
    let wrong_index = TlogProof {
        index: 3,
        ..p.clone()
    };
    assert!(matches!(
        wrong_index.verify(&data[2], &v),
        Err(ProofError::Inclusion(_))
    ));
    let outside = TlogProof {
        index: 5,
        ..p.clone()
    };
    assert!(matches!(
        outside.verify(&data[2], &v),
        Err(ProofError::Inclusion(VerifyError::IndexOutOfRange { .. }))
    ));
    // Tampered proof hash.
    let mut tampered = p.clone();
    tampered.hashes[1][7] ^= 0x40;
    assert!(tampered.verify(&data[2], &v).is_err());
    // Missing proof hash.
    let mut short = p.clone();
    short.hashes.pop();
    assert!(short.verify(&data[2], &v).is_err());
    // Another key.
    let other = Signer::from_seed(ORIGIN, &[3; 32]).unwrap().verifier();
    assert!(matches!(
        p.verify(&data[2], &other),
        Err(ProofError::Checkpoint(_))
    ));
    // Tampered checkpoint.
    let bad_cp = TlogProof {
        checkpoint: SIGNED_CHECKPOINT.replacen("\n5\n", "\n6\n", 1),
        ..p.clone()
    };
    assert!(matches!(
        bad_cp.verify(&data[2], &v),
        Err(ProofError::Checkpoint(_))
    ));
}

#[test]
fn malformed_proofs() {
    let lines: Vec<&str> = PROOF.split('\n').collect();
    let cases = vec![
        ("empty", String::new()),
        ("wrong header", PROOF.replacen("@v1", "@v2", 1)),
        ("header only", "c2sp.org/tlog-proof@v1\n".to_string()),
        ("no index", PROOF.replacen("index 2\n", "", 1)),
        (
            "index leading zero",
            PROOF.replacen("index 2", "index 02", 1),
        ),
        ("index negative", PROOF.replacen("index 2", "index -2", 1)),
        ("index missing", PROOF.replacen("index 2", "index ", 1)),
        ("index no space", PROOF.replacen("index 2", "index2", 1)),
        ("extra after index", {
            let mut l = lines.clone();
            l.swap(1, 2);
            l.join("\n")
        }),
        (
            "bad extra",
            PROOF.replacen("bGVhc2UtMDAwMQ==", "bGVhc2UtMDAwMQ", 1),
        ),
        (
            "short hash",
            PROOF.replacen(
                "WjA/VAz5QisVRGqUXHx40nJCAC6ZdLmfbMOTS6caZOY=",
                "WjA/VAz5",
                1,
            ),
        ),
        (
            "bad hash",
            PROOF.replacen(
                "WjA/VAz5QisVRGqUXHx40nJCAC6ZdLmfbMOTS6caZOY=",
                "not base64!",
                1,
            ),
        ),
        ("no checkpoint", lines[..7].join("\n") + "\n"),
        ("no empty line", {
            let mut l = lines.clone();
            l.remove(6);
            l.join("\n")
        }),
        (
            "checkpoint not a note",
            lines[..7].join("\n") + "\nnot a note\n",
        ),
        (
            "too many hashes",
            PROOF.replacen(
                "index 2\n",
                &format!(
                    "index 2\n{}",
                    "WjA/VAz5QisVRGqUXHx40nJCAC6ZdLmfbMOTS6caZOY=\n".repeat(64)
                ),
                1,
            ),
        ),
    ];
    for (what, text) in cases {
        assert!(
            TlogProof::parse(&text).is_err(),
            "{what}: {:?}",
            TlogProof::parse(&text)
        );
    }
}

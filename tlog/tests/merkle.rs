//! Merkle tree math: known RFC 6962 / Certificate Transparency vectors, and the stored-hash
//! algorithms against the RFC's recursive definitions.

mod common;

use std::cell::RefCell;

use common::{leaves, mth, path, proof, unhex};
use mcp_tlog::merkle::{
    self, append_from_hashes, append_indexes, append_stored_hashes, consistency_proof,
    consistency_proof_from_hashes, consistency_proof_indexes, empty_root, inclusion_proof,
    inclusion_proof_from_hashes, inclusion_proof_indexes, leaf_data_from_event_hash, leaf_hash,
    split_stored_hash_index, stored_hash_count, stored_hash_index, stored_hashes_for_record_hash,
    tree_hash, tree_hash_from_hashes, tree_hash_indexes, verify_consistency, verify_inclusion,
    Hash, HashReader, MemoryHashStore, TreeError, VerifyError,
};
use proptest::prelude::*;

/// The leaves of certificate-transparency-go's merkle tree tests.
fn ct_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        (0x50..=0x57).collect(),
        (0x60..=0x6f).collect(),
    ]
}

const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn ct_store() -> MemoryHashStore {
    let mut store = MemoryHashStore::new();
    store.append_leaves(&ct_leaves()).unwrap();
    store
}

fn hexes(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| unhex(s)).collect()
}

fn store_of(n: usize) -> (Vec<Hash>, MemoryHashStore) {
    let l = leaves(n);
    let mut store = MemoryHashStore::new();
    store.append_leaf_hashes(&l).unwrap();
    (l, store)
}

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    let want = unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(empty_root(), want);
    assert_eq!(merkle::root::<&[u8]>(&[]), want);
    assert_eq!(tree_hash(0, &MemoryHashStore::new()).unwrap(), want);
}

#[test]
fn ct_roots_for_sizes_1_to_8() {
    let data = ct_leaves();
    let store = ct_store();
    for (i, want) in CT_ROOTS.iter().enumerate() {
        let size = i + 1;
        assert_eq!(
            merkle::root(&data[..size]),
            unhex(want),
            "root() size {size}"
        );
        assert_eq!(
            tree_hash(size as u64, &store).unwrap(),
            unhex(want),
            "tree_hash size {size}"
        );
    }
}

#[test]
fn ct_inclusion_proofs() {
    let store = ct_store();
    // (0-based index, size, proof)
    let cases: Vec<(u64, u64, Vec<Hash>)> = vec![
        (0, 1, vec![]),
        (
            0,
            8,
            hexes(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            5,
            8,
            hexes(&[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            3,
            hexes(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        ),
        (
            1,
            5,
            hexes(&[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ];
    let data = ct_leaves();
    for (index, size, want) in cases {
        let got = inclusion_proof(index, size, &store).unwrap();
        assert_eq!(got, want, "inclusion {index} in {size}");
        let root = unhex(CT_ROOTS[size as usize - 1]);
        verify_inclusion(&leaf_hash(&data[index as usize]), index, size, &got, &root).unwrap();
    }
}

#[test]
fn ct_consistency_proofs() {
    let store = ct_store();
    let cases: Vec<(u64, u64, Vec<Hash>)> = vec![
        (1, 1, vec![]),
        (
            1,
            8,
            hexes(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            6,
            8,
            hexes(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            5,
            hexes(&[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ];
    for (m, n, want) in cases {
        let got = consistency_proof(m, n, &store).unwrap();
        assert_eq!(got, want, "consistency {m} -> {n}");
        let (rm, rn) = (
            unhex(CT_ROOTS[m as usize - 1]),
            unhex(CT_ROOTS[n as usize - 1]),
        );
        verify_consistency(m, n, &rm, &rn, &got).unwrap();
    }
}

#[test]
fn stored_hash_numbering_small_values() {
    // Append order: L0, L1, N(1,0), L2, L3, N(1,1), N(2,0), L4, ...
    let want = [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (0, 2, 3),
        (0, 3, 4),
        (1, 1, 5),
        (2, 0, 6),
        (0, 4, 7),
        (0, 5, 8),
        (1, 2, 9),
        (0, 6, 10),
        (0, 7, 11),
        (1, 3, 12),
        (2, 1, 13),
        (3, 0, 14),
    ];
    for (level, n, index) in want {
        assert_eq!(stored_hash_index(level, n), index, "({level}, {n})");
        assert_eq!(split_stored_hash_index(index), (level, n), "{index}");
    }
    for (size, count) in [(0, 0), (1, 1), (2, 3), (3, 4), (4, 7), (5, 8), (8, 15)] {
        assert_eq!(stored_hash_count(size), count, "count {size}");
    }
}

#[test]
fn split_inverts_index_for_all_small_indexes() {
    for index in 0..200_000u64 {
        let (level, n) = split_stored_hash_index(index);
        assert_eq!(stored_hash_index(level, n), index);
    }
    // And far away from zero.
    for index in [1u64 << 40, (1 << 50) + 12345, (1 << 61) - 7] {
        let (level, n) = split_stored_hash_index(index);
        assert_eq!(stored_hash_index(level, n), index);
    }
}

#[test]
fn store_holds_exactly_the_complete_subtree_hashes_in_order() {
    let l = leaves(300);
    let mut store = MemoryHashStore::new();
    for (i, h) in l.iter().enumerate() {
        store.append_leaf_hashes(&[*h]).unwrap();
        assert_eq!(store.hashes().len() as u64, stored_hash_count(i as u64 + 1));
    }
    // Each stored hash is the MTH of its subtree.
    for (index, h) in store.hashes().iter().enumerate() {
        let (level, n) = split_stored_hash_index(index as u64);
        let lo = (n << level) as usize;
        let hi = ((n + 1) << level) as usize;
        assert_eq!(*h, mth(&l[lo..hi]), "stored hash {index}");
    }
}

#[test]
fn tree_hash_matches_naive_mth_for_every_size() {
    let (l, store) = store_of(1100);
    let data: Vec<[u8; 8]> = (0..1100u64).map(|i| i.to_be_bytes()).collect();
    let mut data_store = MemoryHashStore::new();
    for size in 0..=1100usize {
        let want = mth(&l[..size]);
        assert_eq!(tree_hash(size as u64, &store).unwrap(), want, "size {size}");
        if size > 0 {
            data_store.append_leaves(&data[size - 1..size]).unwrap();
        }
        assert_eq!(
            data_store.root().unwrap(),
            merkle::root(&data[..size]),
            "root() vs incremental store, size {size}"
        );
    }
}

#[test]
fn a_frontier_gives_the_root_at_every_size_as_it_grows() {
    let (l, store) = store_of(1100);
    let mut frontier = merkle::Frontier::new();
    assert_eq!(frontier.root(), empty_root());
    for (i, leaf) in l.iter().enumerate() {
        frontier.push_leaf_hash(*leaf);
        let size = i as u64 + 1;
        assert_eq!(frontier.size(), size);
        assert_eq!(
            frontier.root(),
            tree_hash(size, &store).unwrap(),
            "size {size}"
        );
    }
}

#[test]
fn every_proof_in_small_trees_matches_the_rfc_definition() {
    let (l, store) = store_of(70);
    for n in 1..=70usize {
        let root = mth(&l[..n]);
        for i in 0..n {
            let p = inclusion_proof(i as u64, n as u64, &store).unwrap();
            assert_eq!(p, path(i, &l[..n]), "inclusion {i} in {n}");
            verify_inclusion(&l[i], i as u64, n as u64, &p, &root).unwrap();
        }
        for m in 1..=n {
            let p = consistency_proof(m as u64, n as u64, &store).unwrap();
            assert_eq!(p, proof(m, &l[..n]), "consistency {m} -> {n}");
            verify_consistency(m as u64, n as u64, &mth(&l[..m]), &root, &p).unwrap();
        }
    }
}

/// A reader that records what it was asked for.
struct CountingReader<'a> {
    inner: &'a MemoryHashStore,
    calls: RefCell<Vec<usize>>,
}

impl HashReader for CountingReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.calls.borrow_mut().push(indexes.len());
        self.inner.read_hashes(indexes)
    }
}

#[test]
fn proofs_read_logarithmically_many_hashes_in_one_batch() {
    let (_, store) = store_of(5000);
    let reader = CountingReader {
        inner: &store,
        calls: RefCell::new(Vec::new()),
    };
    let bound = |n: u64| 2 * (64 - n.leading_zeros() as usize) + 1;
    for (i, n) in [
        (0u64, 5000u64),
        (4999, 5000),
        (1234, 4097),
        (3, 4),
        (2047, 2049),
    ] {
        reader.calls.borrow_mut().clear();
        inclusion_proof(i, n, &reader).unwrap();
        let calls = reader.calls.borrow().clone();
        assert_eq!(calls.len(), 1, "one batch for inclusion {i} in {n}");
        assert!(calls[0] <= bound(n), "{} hashes for {i} in {n}", calls[0]);
    }
    for (m, n) in [
        (1u64, 5000u64),
        (4999, 5000),
        (1234, 4097),
        (3, 4),
        (2047, 2049),
    ] {
        reader.calls.borrow_mut().clear();
        consistency_proof(m, n, &reader).unwrap();
        let calls = reader.calls.borrow().clone();
        assert_eq!(calls.len(), 1, "one batch for consistency {m} -> {n}");
        assert!(calls[0] <= bound(n), "{} hashes for {m} -> {n}", calls[0]);
    }
    reader.calls.borrow_mut().clear();
    tree_hash(4999, &reader).unwrap();
    assert_eq!(*reader.calls.borrow(), vec![4999u64.count_ones() as usize]);
    // Appending reads at most the old frontier.
    reader.calls.borrow_mut().clear();
    append_stored_hashes(4095, &leaves(3), &reader).unwrap();
    assert_eq!(*reader.calls.borrow(), vec![12]);
}

#[test]
fn two_step_api_matches_reader_api() {
    let (_, store) = store_of(777);
    let read = |idx: &[u64]| store.read_hashes(idx).unwrap();
    assert_eq!(
        tree_hash_from_hashes(500, &read(&tree_hash_indexes(500).unwrap())).unwrap(),
        tree_hash(500, &store).unwrap()
    );
    assert_eq!(
        inclusion_proof_from_hashes(321, 777, &read(&inclusion_proof_indexes(321, 777).unwrap()))
            .unwrap(),
        inclusion_proof(321, 777, &store).unwrap()
    );
    assert_eq!(
        consistency_proof_from_hashes(
            300,
            777,
            &read(&consistency_proof_indexes(300, 777).unwrap())
        )
        .unwrap(),
        consistency_proof(300, 777, &store).unwrap()
    );
    // Wrong number of hashes is an error, not a panic.
    assert!(matches!(
        tree_hash_from_hashes(500, &[]),
        Err(TreeError::ReaderMismatch { .. })
    ));
    let new = leaves(778)[777];
    let old = read(&append_indexes(777, 778).unwrap());
    assert_eq!(
        append_from_hashes(777, &[new], &old).unwrap(),
        stored_hashes_for_record_hash(777, new, &store).unwrap()
    );
}

#[test]
fn builder_errors() {
    let (_, store) = store_of(10);
    assert!(matches!(
        inclusion_proof(10, 10, &store),
        Err(TreeError::IndexOutOfRange {
            index: 10,
            size: 10
        })
    ));
    assert!(matches!(
        consistency_proof(5, 4, &store),
        Err(TreeError::InvalidSizes(_))
    ));
    // Beyond what the store holds.
    assert!(matches!(
        tree_hash(11, &store),
        Err(TreeError::MissingHash { .. })
    ));
    assert!(matches!(
        tree_hash(u64::MAX, &store),
        Err(TreeError::TooLarge(_))
    ));
    assert_eq!(
        consistency_proof(0, 10, &store).unwrap(),
        Vec::<Hash>::new()
    );
}

#[test]
fn verifier_rejections() {
    let (l, store) = store_of(13);
    let root = mth(&l);
    let p = inclusion_proof(6, 13, &store).unwrap();
    verify_inclusion(&l[6], 6, 13, &p, &root).unwrap();
    assert_eq!(
        verify_inclusion(&l[6], 13, 13, &p, &root),
        Err(VerifyError::IndexOutOfRange {
            index: 13,
            size: 13
        })
    );
    assert_eq!(
        verify_inclusion(&l[6], 0, 0, &[], &root),
        Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
    );
    let mut longer = p.clone();
    longer.push(root);
    assert_eq!(
        verify_inclusion(&l[6], 6, 13, &longer, &root),
        Err(VerifyError::WrongLength)
    );
    assert_eq!(
        verify_inclusion(&l[6], 6, 13, &p[..p.len() - 1], &root),
        Err(VerifyError::WrongLength)
    );
    assert_eq!(
        verify_inclusion(&l[7], 6, 13, &p, &root),
        Err(VerifyError::RootMismatch)
    );

    let c = consistency_proof(5, 13, &store).unwrap();
    let r5 = mth(&l[..5]);
    verify_consistency(5, 13, &r5, &root, &c).unwrap();
    assert_eq!(
        verify_consistency(5, 13, &root, &root, &c),
        Err(VerifyError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(5, 13, &r5, &root, &[]),
        Err(VerifyError::WrongLength)
    );
    assert!(verify_consistency(13, 5, &root, &r5, &c).is_err());
    assert_eq!(
        verify_consistency(13, 13, &root, &root, &c),
        Err(VerifyError::WrongLength)
    );
    verify_consistency(13, 13, &root, &root, &[]).unwrap();
    assert_eq!(
        verify_consistency(13, 13, &root, &r5, &[]),
        Err(VerifyError::RootMismatch)
    );
    verify_consistency(0, 13, &empty_root(), &root, &[]).unwrap();
    assert!(verify_consistency(0, 13, &empty_root(), &root, &c).is_err());
}

#[test]
fn event_hash_to_leaf_data() {
    let hex = "00ff".repeat(16);
    let data = leaf_data_from_event_hash(&hex).unwrap();
    assert_eq!(data[0], 0x00);
    assert_eq!(data[1], 0xff);
    assert!(leaf_data_from_event_hash("00ff").is_err());
    assert!(leaf_data_from_event_hash(&"zz".repeat(32)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn proofs_from_stored_hashes_match_rfc_and_verify(
        n in 1usize..3000,
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let (l, store) = store_of(n);
        let i = (a % n as u64) as usize;
        let m = 1 + (b % n as u64) as usize;
        let root = mth(&l);
        prop_assert_eq!(tree_hash(n as u64, &store).unwrap(), root);

        let p = inclusion_proof(i as u64, n as u64, &store).unwrap();
        prop_assert_eq!(&p, &path(i, &l));
        prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &root).is_ok());

        let root_m = mth(&l[..m]);
        let c = consistency_proof(m as u64, n as u64, &store).unwrap();
        prop_assert_eq!(&c, &proof(m, &l));
        prop_assert!(verify_consistency(m as u64, n as u64, &root_m, &root, &c).is_ok());

        // Wrong leaf, wrong index, wrong size: rejected.
        let other = (i + 1) % n;
        if other != i {
            prop_assert!(verify_inclusion(&l[other], i as u64, n as u64, &p, &root).is_err());
            prop_assert!(verify_inclusion(&l[i], other as u64, n as u64, &p, &root).is_err());
        }
        // A size only shows in the proof's shape, and the shape of some neighbouring sizes is
        // the same (leaf 0 of 3 and of 4); in a tree twice as large every leaf is deeper.
        prop_assert_eq!(
            verify_inclusion(&l[i], i as u64, 2 * n as u64, &p, &root),
            Err(VerifyError::WrongLength)
        );
        if m < n {
            // Another tree's roots, old or new.
            let mut other_m = root_m;
            other_m[0] ^= 1;
            let mut other_n = root;
            other_n[31] ^= 0x80;
            prop_assert!(verify_consistency(m as u64, n as u64, &other_m, &root, &c).is_err());
            prop_assert!(verify_consistency(m as u64, n as u64, &root_m, &other_n, &c).is_err());
            prop_assert!(verify_consistency(m as u64, n as u64, &root, &root_m, &c).is_err());
        }
    }

    #[test]
    fn tampered_proofs_fail(
        n in 2usize..2000,
        a in any::<u64>(),
        b in any::<u64>(),
        which in any::<usize>(),
        byte in 0usize..32,
    ) {
        let (l, store) = store_of(n);
        let i = (a % n as u64) as usize;
        let root = mth(&l);
        let mut p = inclusion_proof(i as u64, n as u64, &store).unwrap();
        let k = which % p.len();
        p[k][byte] ^= 1;
        prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &root).is_err());

        let m = 1 + (b % (n as u64 - 1)) as usize; // m < n: proof is never empty
        let mut c = consistency_proof(m as u64, n as u64, &store).unwrap();
        let k = which % c.len();
        c[k][byte] ^= 1;
        prop_assert!(verify_consistency(m as u64, n as u64, &mth(&l[..m]), &root, &c).is_err());
    }

    #[test]
    fn batched_appends_store_the_same_hashes(
        batches in proptest::collection::vec(0usize..300, 1..12),
    ) {
        let total: usize = batches.iter().sum();
        let l = leaves(total);
        let mut batched = MemoryHashStore::new();
        let mut at = 0;
        for b in &batches {
            batched.append_leaf_hashes(&l[at..at + b]).unwrap();
            at += b;
            prop_assert_eq!(batched.root().unwrap(), mth(&l[..at]));
        }
        let mut one_by_one = MemoryHashStore::new();
        for h in &l {
            let new = stored_hashes_for_record_hash(one_by_one.size(), *h, &one_by_one).unwrap();
            prop_assert!(!new.is_empty());
            one_by_one.append_leaf_hashes(&[*h]).unwrap();
        }
        prop_assert_eq!(batched.hashes(), one_by_one.hashes());
        prop_assert_eq!(batched.hashes().len() as u64, stored_hash_count(total as u64));
    }
}

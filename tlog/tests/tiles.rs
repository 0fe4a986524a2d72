//! tlog-tiles: paths, which tiles exist, tile data, and proofs read through tiles.

mod common;

use common::{leaves, mth};
use mcp_tlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, stored_hash_count, tree_hash, HashReader,
    MemoryHashStore,
};
use std::cell::RefCell;

use mcp_tlog::tile::{
    append_tiles, decode_entry_bundle, encode_entry_bundle, hash_from_tile, new_tiles, parse_path,
    partial_tiles, read_tile_data, tile_for_stored_index, tiles_for_indexes, EntryBundle,
    MemoryTileStore, Tile, TileError, TileHashReader, TilePath, TileReader,
};
use proptest::prelude::*;

fn tile(level: u8, n: u64, width: u16) -> Tile {
    Tile::new(level, n, width).unwrap()
}

#[test]
fn paths_use_three_digit_groups() {
    assert_eq!(tile(0, 1234067, 256).path(), "tile/0/x001/x234/067");
    assert_eq!(tile(0, 0, 256).path(), "tile/0/000");
    assert_eq!(tile(1, 5, 256).path(), "tile/1/005");
    assert_eq!(tile(2, 999, 256).path(), "tile/2/999");
    assert_eq!(tile(2, 1000, 256).path(), "tile/2/x001/000");
    assert_eq!(tile(0, 1234, 17).path(), "tile/0/x001/234.p/17");
    assert_eq!(tile(3, 0, 1).path(), "tile/3/000.p/1");
    assert_eq!(tile(0, 7, 255).path(), "tile/0/007.p/255");
    assert_eq!(
        EntryBundle::new(1234067, 256).unwrap().path(),
        "tile/entries/x001/x234/067"
    );
    assert_eq!(
        EntryBundle::new(2, 112).unwrap().path(),
        "tile/entries/002.p/112"
    );
    assert_eq!(
        tile(0, u64::MAX, 256).path(),
        "tile/0/x018/x446/x744/x073/x709/x551/615"
    );
}

#[test]
fn paths_parse_back() {
    let cases = [
        tile(0, 1234067, 256),
        tile(0, 0, 1),
        tile(63, 42, 200),
        tile(7, u64::MAX, 255),
        tile(1, 1000, 256),
    ];
    for t in cases {
        assert_eq!(parse_path(&t.path()).unwrap(), TilePath::Hashes(t), "{t}");
    }
    let b = EntryBundle::new(1234, 17).unwrap();
    assert_eq!(parse_path(&b.path()).unwrap(), TilePath::Entries(b));
    assert_eq!(
        parse_path("tile/entries/x001/x234/067").unwrap(),
        TilePath::Entries(EntryBundle::new(1234067, 256).unwrap())
    );
}

#[test]
fn malformed_paths_are_rejected() {
    let bad = [
        "",
        "tile",
        "tile/0",
        "tile/0/",
        "tiles/0/000",
        "/tile/0/000",
        "tile/0/000/",
        "tile/0/0",         // not 3 digits
        "tile/0/0000",      // not 3 digits
        "tile/0/1234",      // must be x001/234
        "tile/0/001/234",   // all but the last element need an x
        "tile/0/x001/x234", // the last element has no x
        "tile/0/x000/005",  // leading zero group
        "tile/0/x01/234",
        "tile/0/xabc/234",
        "tile/0/00a",
        "tile/00/000", // level with leading zero
        "tile/64/000", // level above 63
        "tile/-1/000",
        "tile/+1/000",
        "tile/x/000",
        "tile/0/000.p/0",   // width 0
        "tile/0/000.p/256", // a full tile has no .p
        "tile/0/000.p/300",
        "tile/0/000.p/017", // width with leading zero
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/1/2",
        "tile/0/.p/5",
        "tile/0/x001.p/5",
        "tile/entries/000.p/0",
        "tile/entries/0",
        "tile/entries",
        "tile/0/x018/x446/x744/x073/x709/x551/616", // u64 overflow
        "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        "tile/0/ 000",
        "tile/0/000 ",
    ];
    for p in bad {
        assert!(
            matches!(parse_path(p), Err(TileError::BadPath(_))),
            "{p:?} should be rejected, got {:?}",
            parse_path(p)
        );
    }
}

#[test]
fn tile_constructor_checks_ranges() {
    assert!(Tile::new(64, 0, 1).is_err());
    assert!(Tile::new(0, 0, 0).is_err());
    assert!(Tile::new(0, 0, 257).is_err());
    assert!(EntryBundle::new(0, 0).is_err());
    assert!(Tile::new(63, 0, 256).is_ok());
}

#[test]
fn spec_example_tree_of_70000() {
    // "273 full level 0 tiles, one partial level 0 tile of width 112, one full level 1 tile,
    // one partial level 1 tile of width 17, and one partial level 2 tile of width 1."
    let tiles = new_tiles(0, 70_000);
    let full0 = tiles
        .iter()
        .filter(|t| t.level() == 0 && !t.is_partial())
        .count();
    assert_eq!(full0, 273);
    let rest: Vec<Tile> = tiles
        .iter()
        .copied()
        .filter(|t| t.level() > 0 || t.is_partial())
        .collect();
    assert_eq!(
        rest,
        vec![
            tile(0, 273, 112),
            tile(1, 0, 256),
            tile(1, 1, 17),
            tile(2, 0, 1)
        ]
    );
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    // tile of width 1."
    assert_eq!(new_tiles(0, 256), vec![tile(0, 0, 256), tile(1, 0, 1)]);
    assert_eq!(Tile::for_tree_size(0, 273, 70_000), Some(tile(0, 273, 112)));
    assert_eq!(Tile::for_tree_size(0, 272, 70_000), Some(tile(0, 272, 256)));
    assert_eq!(Tile::for_tree_size(0, 274, 70_000), None);
    assert_eq!(Tile::for_tree_size(2, 0, 70_000), Some(tile(2, 0, 1)));
    assert_eq!(Tile::for_tree_size(3, 0, 70_000), None);
    assert_eq!(Tile::for_tree_size(63, 0, u64::MAX), None);
    assert_eq!(
        EntryBundle::for_tree_size(273, 70_000),
        Some(EntryBundle::new(273, 112).unwrap())
    );
    assert!(tile(0, 273, 100).is_in_tree(70_000));
    assert!(!tile(0, 273, 113).is_in_tree(70_000));
}

#[test]
fn new_tiles_lists_what_changed() {
    assert_eq!(new_tiles(5, 5), vec![]);
    assert_eq!(new_tiles(0, 1), vec![tile(0, 0, 1)]);
    assert_eq!(new_tiles(1, 3), vec![tile(0, 0, 3)]);
    assert_eq!(
        new_tiles(250, 600),
        vec![
            tile(0, 0, 256),
            tile(0, 1, 256),
            tile(0, 2, 88),
            tile(1, 0, 2)
        ]
    );
    // Growth inside one level-0 tile does not touch level 1.
    assert_eq!(new_tiles(300, 400), vec![tile(0, 1, 144)]);
}

/// The tiles of a log built by appending in batches, kept as a server would: after each
/// append, every new or wider tile is written from the stored hashes.
fn tiled_log(batches: &[usize]) -> (Vec<mcp_tlog::Hash>, MemoryHashStore, MemoryTileStore) {
    let total: usize = batches.iter().sum();
    let l = leaves(total);
    let mut store = MemoryHashStore::new();
    let mut tiles = MemoryTileStore::new();
    let mut at = 0;
    for b in batches {
        let old = store.size();
        store.append_leaf_hashes(&l[at..at + b]).unwrap();
        at += b;
        for t in new_tiles(old, store.size()) {
            tiles.put(&t, read_tile_data(&t, &store).unwrap()).unwrap();
        }
    }
    (l, store, tiles)
}

#[test]
fn level_zero_tile_data_is_the_leaf_hashes() {
    let (l, store, tiles) = tiled_log(&[700]);
    let t = tile(0, 1, 256);
    assert_eq!(read_tile_data(&t, &store).unwrap(), l[256..512].concat());
    assert_eq!(tiles.get(&t).unwrap(), l[256..512].concat().as_slice());
    let p = tile(0, 2, 188);
    assert_eq!(tiles.get(&p).unwrap(), l[512..700].concat().as_slice());
    // A narrower partial tile is a prefix of the stored one.
    assert_eq!(
        tiles.get(&tile(0, 2, 10)).unwrap(),
        l[512..522].concat().as_slice()
    );
    // Level 1 hashes are the roots of full level-0 tiles.
    let t1 = tiles.get(&tile(1, 0, 2)).unwrap();
    assert_eq!(&t1[..32], &mth(&l[..256]));
    assert_eq!(&t1[32..], &mth(&l[256..512]));
}

#[test]
fn every_stored_hash_is_read_back_from_tiles() {
    let (_, store, tiles) = tiled_log(&[1, 254, 3, 4000, 9000, 1, 300]);
    let size = store.size();
    let reader = TileHashReader::new(size, &tiles);
    let all: Vec<u64> = (0..stored_hash_count(size)).collect();
    for chunk in all.chunks(500) {
        assert_eq!(
            reader.read_hashes(chunk).unwrap(),
            store.read_hashes(chunk).unwrap()
        );
    }
    // Beyond the tree: an error.
    assert!(reader.read_hashes(&[stored_hash_count(size)]).is_err());
}

#[test]
fn tile_for_stored_index_and_hash_from_tile() {
    let (_, store, tiles) = tiled_log(&[70_000]);
    for index in (0..stored_hash_count(70_000)).step_by(7) {
        let t = tile_for_stored_index(index);
        let data = tiles.get(&t).expect("tile wide enough");
        assert_eq!(
            hash_from_tile(&t, data, index).unwrap(),
            store.read_hashes(&[index]).unwrap()[0],
            "{index} from {t}"
        );
    }
    // The smallest tile holding a hash: the root of the first full level-0 tile (tree level
    // 8) is the first hash of level-1 tile 0.
    let idx = mcp_tlog::merkle::stored_hash_index(8, 0);
    assert_eq!(tile_for_stored_index(idx), tile(1, 0, 1));
    // Tree level 3 node 5 is hashed from leaves 40..48 of level-0 tile 0.
    let idx = mcp_tlog::merkle::stored_hash_index(3, 5);
    assert_eq!(tile_for_stored_index(idx), tile(0, 0, 48));
    // Wrong tile, short data, too narrow: errors.
    let t0 = tile(0, 0, 48);
    let d = tiles.get(&t0).unwrap();
    assert!(hash_from_tile(&tile(0, 1, 48), d, idx).is_err());
    assert!(hash_from_tile(&t0, &d[..100], idx).is_err());
    assert!(hash_from_tile(&tile(0, 0, 40), &d[..40 * 32], idx).is_err());
}

#[test]
fn tiles_for_indexes_uses_the_tree_sized_tile_once() {
    let store_size = 1000;
    let idx: Vec<u64> = (0..20).collect();
    assert_eq!(
        tiles_for_indexes(store_size, &idx).unwrap(),
        vec![tile(0, 0, 256)]
    );
    assert_eq!(
        tiles_for_indexes(10, &[0, 1, 2]).unwrap(),
        vec![tile(0, 0, 10)]
    );
    assert!(tiles_for_indexes(10, &[stored_hash_count(10)]).is_err());
}

#[test]
fn entry_bundles_round_trip_and_match_level_zero_tiles() {
    let data: Vec<[u8; 32]> = (0..300u32)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            d
        })
        .collect();
    let bundle = encode_entry_bundle(&data[..256]).unwrap();
    assert_eq!(bundle.len(), 256 * 34);
    assert_eq!(&bundle[..2], &[0x00, 0x20]);
    let back = decode_entry_bundle(&bundle).unwrap();
    assert_eq!(back.len(), 256);
    assert_eq!(back[5], data[5].to_vec());

    // Each entry hashes to the matching hash of the level-0 tile.
    let mut store = MemoryHashStore::new();
    store.append_leaves(&data).unwrap();
    let t = EntryBundle::new(1, 44).unwrap();
    assert_eq!(t.leaf_range(), 256..300);
    let tile_data = read_tile_data(&t.tile(), &store).unwrap();
    let entries = decode_entry_bundle(&encode_entry_bundle(&data[256..300]).unwrap()).unwrap();
    let hashes: Vec<u8> = entries.iter().flat_map(|e| leaf_hash(e)).collect();
    assert_eq!(hashes, tile_data);

    // Other lengths work too (the format is generic).
    let mixed = encode_entry_bundle(&[&b""[..], b"abc"]).unwrap();
    assert_eq!(mixed, vec![0, 0, 0, 3, b'a', b'b', b'c']);
    assert_eq!(
        decode_entry_bundle(&mixed).unwrap(),
        vec![vec![], b"abc".to_vec()]
    );

    assert!(decode_entry_bundle(&[]).is_err());
    assert!(decode_entry_bundle(&[0]).is_err());
    assert!(decode_entry_bundle(&[0, 5, 1, 2]).is_err());
    assert!(encode_entry_bundle::<&[u8]>(&[]).is_err());
    assert!(encode_entry_bundle(&[vec![0u8; 70_000]]).is_err());
    assert!(encode_entry_bundle(&data[..257]).is_err());
    let too_many = encode_entry_bundle(&data[..256]).unwrap();
    let mut more = too_many.clone();
    more.extend_from_slice(&[0, 0]);
    assert!(decode_entry_bundle(&more).is_err());
}

#[test]
fn partial_tiles_of_a_size() {
    assert_eq!(
        partial_tiles(70_000),
        vec![tile(0, 273, 112), tile(1, 1, 17), tile(2, 0, 1)]
    );
    assert_eq!(partial_tiles(256), vec![tile(1, 0, 1)]);
    assert_eq!(partial_tiles(65_536), vec![tile(2, 0, 1)]);
    assert_eq!(partial_tiles(0), vec![]);
    assert_eq!(partial_tiles(3), vec![tile(0, 0, 3)]);
}

/// A tile store that records which tiles were read.
struct Recording<'a> {
    inner: &'a MemoryTileStore,
    read: RefCell<Vec<Tile>>,
}

impl TileReader for Recording<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, mcp_tlog::TreeError> {
        self.read.borrow_mut().extend_from_slice(tiles);
        self.inner.read_tiles(tiles)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn appending_through_tiles_builds_the_same_tiles(
        batches in proptest::collection::vec(0usize..600, 1..10),
    ) {
        let (l, store, want) = tiled_log(&batches);
        let mut tiles = MemoryTileStore::new();
        let mut size = 0u64;
        for b in &batches {
            let rec = Recording { inner: &tiles, read: RefCell::new(Vec::new()) };
            let changed = append_tiles(size, &l[size as usize..size as usize + b], &rec).unwrap();
            // Only the old partial tiles are read.
            let allowed = partial_tiles(size);
            for t in rec.read.borrow().iter() {
                prop_assert!(allowed.contains(t), "read {} beyond {:?}", t, allowed);
            }
            prop_assert_eq!(
                changed.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
                new_tiles(size, size + *b as u64)
            );
            for (t, data) in changed {
                tiles.put(&t, data).unwrap();
            }
            size += *b as u64;
        }
        prop_assert_eq!(size, store.size());
        for t in new_tiles(0, size) {
            prop_assert_eq!(tiles.get(&t), want.get(&t), "{}", t);
        }
        let reader = TileHashReader::new(size, &tiles);
        prop_assert_eq!(tree_hash(size, &reader).unwrap(), mth(&l));
    }

    #[test]
    fn proofs_through_tiles_equal_proofs_from_stored_hashes(
        batches in proptest::collection::vec(1usize..700, 1..8),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let (l, store, tiles) = tiled_log(&batches);
        let n = store.size();
        let reader = TileHashReader::new(n, &tiles);
        prop_assert_eq!(tree_hash(n, &reader).unwrap(), mth(&l));
        let i = a % n;
        prop_assert_eq!(
            inclusion_proof(i, n, &reader).unwrap(),
            inclusion_proof(i, n, &store).unwrap()
        );
        let m = 1 + b % n;
        prop_assert_eq!(
            consistency_proof(m, n, &reader).unwrap(),
            consistency_proof(m, n, &store).unwrap()
        );
        // Earlier tree sizes are served from the same (wider) tiles.
        let earlier = TileHashReader::new(m, &tiles);
        prop_assert_eq!(tree_hash(m, &earlier).unwrap(), mth(&l[..m as usize]));
    }
}

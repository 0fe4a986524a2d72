//! The `c2sp.org/tlog-tiles` layout: tiles of height 8, their paths, their data, entry bundles.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level `8 * L`; the hashes of
//! the 7 tree levels in between are recomputed from the tile. Tile data is the concatenation of
//! the 32-byte hashes. This module maps tiles to and from paths (`tile/1/x001/234.p/17`,
//! `tile/entries/067`), says which tiles change when the log grows ([`new_tiles`]), builds tile
//! data from stored hashes ([`read_tile_data`]) and reads stored hashes out of tiles
//! ([`TileHashReader`]), so the proofs of [`crate::merkle`] work over a tile store too.
//!
//! The tile hash reader trusts its tiles: it is meant for the log's own store. A client that
//! reads tiles from elsewhere gets roots and proofs that it must check against a signed
//! checkpoint, which is what detects bad tiles.

use std::collections::HashMap;
use std::fmt;

use crate::merkle::{
    node_hash, split_stored_hash_index, stored_hash_count, stored_hash_index, Hash, HashReader,
    TreeError, HASH_SIZE, MAX_TREE_SIZE,
};

/// Tile height: each tile spans 8 tree levels.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 256;
/// Largest tile level the path syntax allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Errors of tile paths and entry bundles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not a tile or entry bundle path in canonical form.
    #[error("malformed tile path: {0}")]
    BadPath(String),
    /// Tile fields out of range (level above 63, width 0 or above 256).
    #[error("invalid tile: {0}")]
    Invalid(String),
    /// An entry bundle that cannot be decoded, or an entry too long to encode.
    #[error("bad entry bundle: {0}")]
    BadBundle(String),
}

/// A Merkle tree tile: the `n`-th tile at `level`, `width` hashes wide (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    level: u8,
    n: u64,
    width: u16,
}

/// An entry bundle: the entries of the leaves of the `n`-th level-0 tile, `width` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryBundle {
    n: u64,
    width: u16,
}

/// What a `tile/...` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Hashes(Tile),
    /// `tile/entries/<N>[.p/<W>]`
    Entries(EntryBundle),
}

fn check_width(width: u16) -> Result<(), TileError> {
    if width == 0 || width > TILE_WIDTH {
        return Err(TileError::Invalid(format!(
            "width must be 1..={TILE_WIDTH}, got {width}"
        )));
    }
    Ok(())
}

impl Tile {
    /// A tile; `level <= 63`, `1 <= width <= 256`.
    pub fn new(level: u8, n: u64, width: u16) -> Result<Self, TileError> {
        if level > MAX_TILE_LEVEL {
            return Err(TileError::Invalid(format!(
                "level must be 0..={MAX_TILE_LEVEL}, got {level}"
            )));
        }
        check_width(width)?;
        Ok(Tile { level, n, width })
    }

    /// The tile level (tree level `8 * level`).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The tile's index within its level.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of hashes in the tile.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile has fewer than 256 hashes.
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The same tile at another width.
    pub fn with_width(&self, width: u16) -> Result<Self, TileError> {
        Tile::new(self.level, self.n, width)
    }

    /// The path of the tile: `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, index_path(self.n, self.width))
    }

    /// The tile `(level, n)` as it is in a tree of `size` leaves: full, partial, or `None` when
    /// the tree has no hash in it.
    pub fn for_tree_size(level: u8, n: u64, size: u64) -> Option<Tile> {
        let width = level_width(level, n, size);
        if width == 0 {
            None
        } else {
            Some(Tile { level, n, width })
        }
    }

    /// Whether a tree of `size` leaves has all of this tile's hashes (a partial tile of width
    /// `w` is in every tree whose tile at that place is at least `w` wide).
    pub fn is_in_tree(&self, size: u64) -> bool {
        level_width(self.level, self.n, size) >= self.width
    }

    /// The stored hash indexes of the tile's hashes, in tile order.
    pub fn stored_indexes(&self) -> Result<Vec<u64>, TreeError> {
        let tree_level = u32::from(self.level) * TILE_HEIGHT;
        // The tile's last hash must lie inside a tree of at most MAX_TREE_SIZE leaves.
        let first = self
            .n
            .checked_mul(u64::from(TILE_WIDTH))
            .filter(|&f| {
                tree_level < 63
                    && f.saturating_add(u64::from(self.width)) <= MAX_TREE_SIZE >> tree_level
            })
            .ok_or_else(|| TreeError::BadTile(format!("{} is beyond the tree", self.path())))?;
        Ok((0..u64::from(self.width))
            .map(|i| stored_hash_index(tree_level, first + i))
            .collect())
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl EntryBundle {
    /// An entry bundle; `1 <= width <= 256`.
    pub fn new(n: u64, width: u16) -> Result<Self, TileError> {
        check_width(width)?;
        Ok(EntryBundle { n, width })
    }

    /// The bundle's index (the index of its level-0 tile).
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of entries in the bundle.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the bundle has fewer than 256 entries.
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The bundle `n` as it is in a tree of `size` leaves, or `None` if it would be empty.
    pub fn for_tree_size(n: u64, size: u64) -> Option<EntryBundle> {
        let width = level_width(0, n, size);
        if width == 0 {
            None
        } else {
            Some(EntryBundle { n, width })
        }
    }

    /// The leaf indexes of the bundle's entries.
    pub fn leaf_range(&self) -> std::ops::Range<u64> {
        let start = self.n.saturating_mul(u64::from(TILE_WIDTH));
        start..start.saturating_add(u64::from(self.width))
    }

    /// The level-0 tile with the leaf hashes of these entries.
    pub fn tile(&self) -> Tile {
        Tile {
            level: 0,
            n: self.n,
            width: self.width,
        }
    }

    /// The path of the bundle: `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}", index_path(self.n, self.width))
    }
}

impl fmt::Display for EntryBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl TilePath {
    /// The path string.
    pub fn path(&self) -> String {
        match self {
            TilePath::Hashes(t) => t.path(),
            TilePath::Entries(b) => b.path(),
        }
    }
}

/// How many hashes of level-`level` tile `n` a tree of `size` leaves has (0..=256).
fn level_width(level: u8, n: u64, size: u64) -> u16 {
    let tree_level = u32::from(level) * TILE_HEIGHT;
    let hashes = size.checked_shr(tree_level).unwrap_or(0);
    let start = match n.checked_mul(u64::from(TILE_WIDTH)) {
        Some(s) => s,
        None => return 0,
    };
    // Bounded by TILE_WIDTH, so the cast is lossless.
    hashes.saturating_sub(start).min(u64::from(TILE_WIDTH)) as u16
}

/// `<N>[.p/<W>]`: N in 3-digit groups, all but the last prefixed with `x`.
fn index_path(n: u64, width: u16) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    let mut s = groups.join("/");
    if width < TILE_WIDTH {
        s.push_str(&format!(".p/{width}"));
    }
    s
}

fn bad(path: &str, why: &str) -> TileError {
    // Paths come from URLs: keep the echo short.
    let shown: String = path.chars().take(80).collect();
    TileError::BadPath(format!("{why}: {shown:?}"))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal with no leading zeros (except `0` itself).
fn parse_canonical_decimal(s: &str) -> Option<u64> {
    if !all_digits(s) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Parses a tile or entry bundle path (`tile/...`, relative to the log prefix). Only the
/// canonical encoding is accepted: the one [`Tile::path`] and [`EntryBundle::path`] write.
pub fn parse_path(path: &str) -> Result<TilePath, TileError> {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 3 || parts[0] != "tile" {
        return Err(bad(path, "expected tile/<L>/<N> or tile/entries/<N>"));
    }
    // `.p/<W>` ends the path: the element before W carries the `.p`.
    let mut width = TILE_WIDTH;
    if parts.len() >= 4 {
        if let Some(stripped) = parts[parts.len() - 2].strip_suffix(".p") {
            let w = parts[parts.len() - 1];
            let w = parse_canonical_decimal(w)
                .filter(|&w| (1..u64::from(TILE_WIDTH)).contains(&w))
                .ok_or_else(|| bad(path, "partial width must be 1..=255 without leading zeros"))?;
            width = w as u16;
            let len = parts.len();
            parts[len - 2] = stripped;
            parts.truncate(len - 1);
        }
    }
    let groups = &parts[2..];
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i == groups.len() - 1;
        let digits = if last {
            *g
        } else {
            g.strip_prefix('x')
                .ok_or_else(|| bad(path, "all but the last index element must start with x"))?
        };
        if digits.len() != 3 || !all_digits(digits) {
            return Err(bad(path, "index elements must be 3 digits"));
        }
        let v: u64 = digits
            .parse()
            .map_err(|_| bad(path, "index elements must be 3 digits"))?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .ok_or_else(|| bad(path, "tile index too large"))?;
    }
    // Canonical form: no leading x000 groups.
    if groups.len() > 1 && groups[0] == "x000" {
        return Err(bad(path, "tile index has leading zero groups"));
    }
    if parts[1] == "entries" {
        return Ok(TilePath::Entries(EntryBundle { n, width }));
    }
    let level = parse_canonical_decimal(parts[1])
        .filter(|&l| l <= u64::from(MAX_TILE_LEVEL))
        .ok_or_else(|| bad(path, "level must be 0..=63 without leading zeros"))?;
    Ok(TilePath::Hashes(Tile {
        level: level as u8,
        n,
        width,
    }))
}

/// The smallest tile holding stored hash `index` (of a tree of at most
/// [`MAX_TREE_SIZE`] leaves): the tile of its tree level, wide enough to include the hashes it
/// is computed from.
pub fn tile_for_stored_index(index: u64) -> Tile {
    let (level, n) = split_stored_hash_index(index);
    let tile_level = level / TILE_HEIGHT;
    let sub = level % TILE_HEIGHT;
    // Index, at the tile's bottom level, of the first hash under this node.
    let first = n << sub;
    let tile_n = first >> TILE_HEIGHT;
    let end = first + (1u64 << sub) - (tile_n << TILE_HEIGHT);
    Tile {
        level: tile_level as u8,
        n: tile_n,
        width: end as u16,
    }
}

/// The stored hash `index` computed from the data of `tile`, which must contain it (the hashes
/// of the tree levels inside a tile are recomputed here).
pub fn hash_from_tile(tile: &Tile, data: &[u8], index: u64) -> Result<Hash, TreeError> {
    if data.len() != usize::from(tile.width) * HASH_SIZE {
        return Err(TreeError::BadTile(format!(
            "{} must be {} bytes, got {}",
            tile.path(),
            usize::from(tile.width) * HASH_SIZE,
            data.len()
        )));
    }
    if index >= stored_hash_count(MAX_TREE_SIZE) {
        return Err(TreeError::TooLarge(index));
    }
    let (level, n) = split_stored_hash_index(index);
    let sub = level % TILE_HEIGHT;
    let first = n << sub;
    if level / TILE_HEIGHT != u32::from(tile.level) || first >> TILE_HEIGHT != tile.n {
        return Err(TreeError::BadTile(format!(
            "stored hash {index} is not in {}",
            tile.path()
        )));
    }
    let start = (first - (tile.n << TILE_HEIGHT)) as usize;
    let end = start + (1usize << sub);
    if end > usize::from(tile.width) {
        return Err(TreeError::BadTile(format!(
            "stored hash {index} needs a wider tile than {}",
            tile.path()
        )));
    }
    let mut hashes: Vec<Hash> = data[start * HASH_SIZE..end * HASH_SIZE]
        .chunks_exact(HASH_SIZE)
        .map(|c| {
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(c);
            h
        })
        .collect();
    // A complete subtree of 2^sub tile hashes: hash pairs level by level.
    while hashes.len() > 1 {
        hashes = hashes
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    hashes
        .pop()
        .ok_or_else(|| TreeError::BadTile("empty tile range".into()))
}

/// The tiles that are new or wider when the tree grows from `old_size` to `new_size` leaves,
/// level by level: full tiles that were completed, then the rightmost partial tile if any.
pub fn new_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for level in 0..=MAX_TILE_LEVEL {
        let shift = u32::from(level) * TILE_HEIGHT;
        let new_n = match new_size.checked_shr(shift) {
            Some(v) if v > 0 => v,
            _ => break,
        };
        let old_n = old_size.checked_shr(shift).unwrap_or(0);
        if old_n >= new_n {
            continue;
        }
        for n in (old_n >> TILE_HEIGHT)..(new_n >> TILE_HEIGHT) {
            tiles.push(Tile {
                level,
                n,
                width: TILE_WIDTH,
            });
        }
        let n = new_n >> TILE_HEIGHT;
        let w = new_n - (n << TILE_HEIGHT);
        if w > 0 {
            tiles.push(Tile {
                level,
                n,
                width: w as u16,
            });
        }
    }
    tiles
}

/// The data of `tile` (its hashes, concatenated) from a stored-hash reader.
pub fn read_tile_data(tile: &Tile, reader: &dyn HashReader) -> Result<Vec<u8>, TreeError> {
    let indexes = tile.stored_indexes()?;
    let hashes = reader.read_hashes(&indexes)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ReaderMismatch {
            want: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes.concat())
}

/// The partial tiles of a tree of `size` leaves, one per level where the tree does not end on
/// a tile boundary. These are the tiles a log must keep serving for a checkpoint of that size,
/// and the only tiles [`append_tiles`] reads.
pub fn partial_tiles(size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for level in 0..=MAX_TILE_LEVEL {
        let hashes = match size.checked_shr(u32::from(level) * TILE_HEIGHT) {
            Some(h) if h > 0 => h,
            _ => break,
        };
        let width = (hashes % u64::from(TILE_WIDTH)) as u16;
        if width > 0 {
            tiles.push(Tile {
                level,
                n: hashes >> TILE_HEIGHT,
                width,
            });
        }
    }
    tiles
}

/// Old stored hashes from one reader, new ones (from `start` on) from memory.
struct Overlay<'a> {
    old: &'a dyn HashReader,
    start: u64,
    new: &'a [Hash],
}

impl HashReader for Overlay<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let old: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|&i| i < self.start)
            .collect();
        let mut old = if old.is_empty() {
            Vec::new()
        } else {
            self.old.read_hashes(&old)?
        }
        .into_iter();
        indexes
            .iter()
            .map(|&i| {
                if i < self.start {
                    old.next().ok_or(TreeError::ReaderMismatch {
                        want: indexes.len(),
                        got: 0,
                    })
                } else {
                    usize::try_from(i - self.start)
                        .ok()
                        .and_then(|k| self.new.get(k).copied())
                        .ok_or(TreeError::MissingHash {
                            index: i,
                            available: self.start + self.new.len() as u64,
                        })
                }
            })
            .collect()
    }
}

/// For a log that stores tiles (not single hashes): appends `leaf_hashes` to a tree of
/// `old_size` leaves whose tiles are in `tiles`, and returns every tile that is new or wider,
/// with its data, to be written (a wider partial tile replaces the narrower one; the narrower
/// one stays a prefix of it). Reads only [`partial_tiles`]`(old_size)`.
pub fn append_tiles(
    old_size: u64,
    leaf_hashes: &[Hash],
    tiles: &dyn TileReader,
) -> Result<Vec<(Tile, Vec<u8>)>, TreeError> {
    let new_size = old_size
        .checked_add(leaf_hashes.len() as u64)
        .filter(|&n| n <= MAX_TREE_SIZE)
        .ok_or(TreeError::TooLarge(u64::MAX))?;
    let old = TileHashReader::new(old_size, tiles);
    let new = crate::merkle::append_stored_hashes(old_size, leaf_hashes, &old)?;
    let overlay = Overlay {
        old: &old,
        start: stored_hash_count(old_size),
        new: &new,
    };
    new_tiles(old_size, new_size)
        .into_iter()
        .map(|t| Ok((t, read_tile_data(&t, &overlay)?)))
        .collect()
}

/// Something that holds tiles.
pub trait TileReader {
    /// Reads the data of `tiles` (each exactly `width * 32` bytes), in the order asked. A partial
    /// tile is the prefix of any wider version of it, so a store may keep only the widest one.
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TreeError>;
}

/// The tiles a [`TileHashReader`] for a tree of `size` leaves reads to get stored hashes
/// `indexes`, without duplicates: for callers that fetch tiles asynchronously first.
pub fn tiles_for_indexes(size: u64, indexes: &[u64]) -> Result<Vec<Tile>, TreeError> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TooLarge(size));
    }
    let available = stored_hash_count(size);
    let mut tiles: Vec<Tile> = Vec::new();
    for &index in indexes {
        if index >= available {
            return Err(TreeError::MissingHash { index, available });
        }
        let t = tile_for_stored_index(index);
        // Read the tile as it is at this size, so every index in it uses the same tile.
        let t = Tile::for_tree_size(t.level, t.n, size)
            .ok_or(TreeError::MissingHash { index, available })?;
        if !tiles.contains(&t) {
            tiles.push(t);
        }
    }
    Ok(tiles)
}

/// A [`HashReader`] over a tile store, for a tree of `size` leaves.
pub struct TileHashReader<'a> {
    size: u64,
    tiles: &'a dyn TileReader,
}

impl<'a> TileHashReader<'a> {
    /// Reads stored hashes of the tree of `size` leaves out of `tiles`.
    pub fn new(size: u64, tiles: &'a dyn TileReader) -> Self {
        TileHashReader { size, tiles }
    }
}

impl HashReader for TileHashReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let tiles = tiles_for_indexes(self.size, indexes)?;
        let data = self.tiles.read_tiles(&tiles)?;
        if data.len() != tiles.len() {
            return Err(TreeError::BadTile(format!(
                "tile reader returned {} tiles for {}",
                data.len(),
                tiles.len()
            )));
        }
        let by_key: HashMap<(u8, u64), (&Tile, &Vec<u8>)> = tiles
            .iter()
            .zip(data.iter())
            .map(|(t, d)| ((t.level, t.n), (t, d)))
            .collect();
        indexes
            .iter()
            .map(|&index| {
                let t = tile_for_stored_index(index);
                let (tile, data) = by_key.get(&(t.level, t.n)).ok_or_else(|| {
                    TreeError::BadTile(format!("no tile read for stored hash {index}"))
                })?;
                hash_from_tile(tile, data, index)
            })
            .collect()
    }
}

/// Tiles in memory, keeping the widest version of each: for tests and prefetched tiles.
#[derive(Debug, Clone, Default)]
pub struct MemoryTileStore {
    tiles: HashMap<(u8, u64), Vec<u8>>,
}

impl MemoryTileStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a tile's data (replacing a narrower version of it).
    pub fn put(&mut self, tile: &Tile, data: Vec<u8>) -> Result<(), TreeError> {
        if data.len() != usize::from(tile.width) * HASH_SIZE {
            return Err(TreeError::BadTile(format!(
                "{} must be {} bytes, got {}",
                tile.path(),
                usize::from(tile.width) * HASH_SIZE,
                data.len()
            )));
        }
        let slot = self.tiles.entry((tile.level, tile.n)).or_default();
        if data.len() >= slot.len() {
            *slot = data;
        }
        Ok(())
    }

    /// The data of `tile` at its width, if the store has it that wide.
    pub fn get(&self, tile: &Tile) -> Option<&[u8]> {
        let want = usize::from(tile.width) * HASH_SIZE;
        self.tiles
            .get(&(tile.level, tile.n))
            .filter(|d| d.len() >= want)
            .map(|d| &d[..want])
    }
}

impl TileReader for MemoryTileStore {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TreeError> {
        tiles
            .iter()
            .map(|t| {
                self.get(t)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| TreeError::BadTile(format!("{} is not stored", t.path())))
            })
            .collect()
    }
}

/// Encodes entries as an entry bundle: each a big-endian `u16` length, then the bytes.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    if entries.is_empty() || entries.len() > usize::from(TILE_WIDTH) {
        return Err(TileError::BadBundle(format!(
            "a bundle holds 1..={TILE_WIDTH} entries, got {}",
            entries.len()
        )));
    }
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len())
            .map_err(|_| TileError::BadBundle(format!("entry of {} bytes is too long", e.len())))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle into its entries.
pub fn decode_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TileError::BadBundle("truncated length prefix".into()));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        if rest.len() < len {
            return Err(TileError::BadBundle(format!(
                "entry {} claims {len} bytes, {} left",
                entries.len(),
                rest.len()
            )));
        }
        entries.push(rest[..len].to_vec());
        rest = &rest[len..];
        if entries.len() > usize::from(TILE_WIDTH) {
            return Err(TileError::BadBundle("more than 256 entries".into()));
        }
    }
    if entries.is_empty() {
        return Err(TileError::BadBundle("empty bundle".into()));
    }
    Ok(entries)
}

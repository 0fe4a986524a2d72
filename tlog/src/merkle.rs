//! RFC 6962 / RFC 9162 Merkle tree math over a store of "stored hashes".
//!
//! A log of `n` leaves keeps, in append order, every hash of a *complete* subtree: the leaf hash of
//! leaf `i`, then the hashes of the subtrees that leaf `i` completes. That is the numbering of Go's
//! `golang.org/x/mod/sumdb/tlog` ("stored hash index"), and it has three properties we rely on:
//!
//! - appending a leaf adds about two hashes and never changes an existing one, so the append path
//!   only inserts rows ([`append_stored_hashes`]);
//! - the root of any tree size `n` is a right fold of the `popcount(n)` complete subtrees that
//!   make up `[0, n)` ([`tree_hash`]);
//! - every hash in an inclusion or consistency proof is the hash of a range made of at most
//!   `log2(n)` complete subtrees, and at most one such range is not itself complete, so a proof
//!   needs O(log n) stored hashes, read in one batch ([`inclusion_proof`], [`consistency_proof`]).
//!
//! Every reader-based function has a two-step twin (`*_indexes` then `*_from_hashes`) for callers
//! that fetch hashes asynchronously, e.g. from a database: ask which stored hashes are needed,
//! fetch them, then compute. The verifiers ([`verify_inclusion`], [`verify_consistency`]) need no
//! store and follow RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Size of a [`Hash`](type@Hash) in bytes.
pub const HASH_SIZE: usize = 32;

/// Largest tree size the stored-hash functions accept. Stored hash indexes are about twice the
/// tree size, so this keeps every index inside `u64`.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Errors of the tree math and of hash stores.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A leaf index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Tree sizes are not in the order the operation needs (e.g. consistency from 8 to 5).
    #[error("invalid tree sizes: {0}")]
    InvalidSizes(String),
    /// A tree size (or stored hash index) beyond a tree of [`MAX_TREE_SIZE`] leaves.
    #[error("{0} is beyond the largest supported tree")]
    TooLarge(u64),
    /// A stored hash was asked for that the store does not hold (yet).
    #[error("stored hash {index} is not available (the store holds {available})")]
    MissingHash { index: u64, available: u64 },
    /// A hash reader answered with the wrong number of hashes.
    #[error("hash reader returned {got} hashes for {want} indexes")]
    ReaderMismatch { want: usize, got: usize },
    /// Tile data that does not fit its tile (wrong length, hash outside the tile).
    #[error("bad tile data: {0}")]
    BadTile(String),
    /// Leaf data that is not what the log stores.
    #[error("bad leaf data: {0}")]
    BadLeaf(String),
    /// The underlying store failed.
    #[error("hash store: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Errors of proof verification. Each variant says why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Sizes not allowed for a consistency proof.
    #[error("invalid tree sizes: {0}")]
    InvalidSizes(String),
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The proof hashes do not lead to the expected root(s).
    #[error("proof does not match the root hash")]
    RootMismatch,
}

/// Something that holds stored hashes, addressed by stored hash index (see [`stored_hash_index`]).
///
/// `read_hashes` must return exactly one hash per index, in the order asked. The functions of this
/// crate ask for all the hashes they need in one call.
pub trait HashReader {
    /// Reads the stored hashes at `indexes`.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError>;
}

/// `SHA-256(0x00 || data)`, the RFC 6962 leaf hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`, the RFC 6962 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf data of a ledger event: the 32 raw bytes of its 64-hex-digit `hash`.
pub fn leaf_data_from_event_hash(event_hash_hex: &str) -> Result<[u8; 32], TreeError> {
    if event_hash_hex.len() != 64 {
        return Err(TreeError::BadLeaf(format!(
            "event hash must be 64 hex digits, got {} characters",
            event_hash_hex.len()
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(event_hash_hex, &mut out)
        .map_err(|e| TreeError::BadLeaf(format!("event hash is not hex: {e}")))?;
    Ok(out)
}

/// The Merkle Tree Hash (RFC 6962 §2.1) of `leaves` (leaf *data*, hashed here), computed in
/// O(n) time and O(log n) memory without a store.
pub fn root<D: AsRef<[u8]>>(leaves: &[D]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        frontier.push_leaf_hash(leaf_hash(leaf.as_ref()));
    }
    frontier.root()
}

/// The right edge of a tree that grows one leaf at a time: the roots of its complete subtrees,
/// largest first (one per bit of the size). Enough to compute the root of the leaves so far, in
/// O(log n) memory, so a verifier can stream a whole log through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf by its leaf hash (`leaf_hash(data)`).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a complete subtree the new leaf completes.
        let mut completed = self.size;
        while completed & 1 == 1 {
            let left = self
                .subtrees
                .pop()
                .expect("one subtree per bit of the size");
            hash = node_hash(&left, &hash);
            completed >>= 1;
        }
        self.subtrees.push(hash);
        self.size += 1;
    }

    /// The Merkle Tree Hash of the leaves so far (the empty tree's for none).
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.subtrees)
    }
}

// ---------------------------------------------------------------------------------------------
// Stored hash numbering.

/// The index, in append order, of the stored hash of the complete subtree at `level` (0 = leaves)
/// whose leftmost leaf is `n << level`.
///
/// # Panics
/// If the subtree reaches past [`MAX_TREE_SIZE`] leaves (callers check sizes first).
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    assert!(
        level < 63 && n < (MAX_TREE_SIZE >> level),
        "subtree ({level}, {n}) is beyond the largest supported tree"
    );
    // The hash is stored right after the subtree's last leaf and its lower ancestors. Before
    // leaf x come 2x - popcount(x) stored hashes (x leaves plus x - popcount(x) complete nodes).
    let last = ((n + 1) << level) - 1;
    2 * last - u64::from(last.count_ones()) + u64::from(level)
}

/// The inverse of [`stored_hash_index`]: `(level, n)` of the subtree stored at `index`
/// (any index of a tree of at most [`MAX_TREE_SIZE`] leaves).
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // Leaf x is stored at 2x - popcount(x) <= index, so x >= index / 2 is a lower bound that is
    // at most log2(index) leaves away from the answer.
    let mut x = index / 2;
    let mut leaf_index = leaf_stored_index(x);
    loop {
        // After leaf x come trailing_ones(x) node hashes, then leaf x + 1.
        let next = leaf_index + 1 + u64::from(x.trailing_ones());
        if next > index {
            break;
        }
        x += 1;
        leaf_index = next;
    }
    let level = (index - leaf_index) as u32;
    (level, x >> level)
}

fn leaf_stored_index(x: u64) -> u64 {
    2 * x - u64::from(x.count_ones())
}

/// How many hashes a log of `size` leaves stores: `2 * size - popcount(size)`.
pub fn stored_hash_count(size: u64) -> u64 {
    2 * size - u64::from(size.count_ones())
}

/// The complete subtrees `(level, n)` that make up the range `[lo, hi)`, left to right.
///
/// The ranges this module uses are RFC 6962 split ranges: `lo` is a multiple of a power of two at
/// least `hi - lo`, so the greedy largest-aligned decomposition is exactly the RFC's split.
fn range_subtrees(mut lo: u64, hi: u64, out: &mut Vec<(u32, u64)>) {
    while lo < hi {
        let mut level = 63 - (hi - lo).leading_zeros();
        if lo != 0 {
            level = level.min(lo.trailing_zeros());
        }
        out.push((level, lo >> level));
        lo += 1 << level;
    }
}

/// Hashes a range from the hashes of its subtrees (right fold, as MTH splits left-heavy).
fn fold_subtrees(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |acc, left| node_hash(left, &acc)),
    }
}

fn check_size(size: u64) -> Result<(), TreeError> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TooLarge(size));
    }
    Ok(())
}

fn read_exact(reader: &dyn HashReader, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ReaderMismatch {
            want: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes)
}

fn check_hash_count(hashes: &[Hash], want: usize) -> Result<(), TreeError> {
    if hashes.len() != want {
        return Err(TreeError::ReaderMismatch {
            want,
            got: hashes.len(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Appending.

/// The old subtrees an append from `old_size` to `new_size` leaves combines with: the complete
/// subtrees of `old_size`'s frontier whose parent becomes complete.
pub fn append_indexes(old_size: u64, new_size: u64) -> Result<Vec<u64>, TreeError> {
    check_size(new_size)?;
    if new_size < old_size {
        return Err(TreeError::InvalidSizes(format!(
            "cannot append from {old_size} down to {new_size}"
        )));
    }
    let mut subtrees = Vec::new();
    range_subtrees(0, old_size, &mut subtrees);
    Ok(subtrees
        .into_iter()
        // Frontier subtrees are left children (n even); the parent is complete once the right
        // sibling is, i.e. when new_size reaches (n + 2) << level.
        .filter(|&(level, n)| (n + 2) << level <= new_size)
        .map(|(level, n)| stored_hash_index(level, n))
        .collect())
}

/// The hashes to store after appending leaves with hashes `leaf_hashes` to a log of `old_size`
/// leaves; they go at stored indexes `stored_hash_count(old_size)..` in order.
///
/// `old_hashes` are the stored hashes at [`append_indexes`]`(old_size, new_size)`, in that order.
pub fn append_from_hashes(
    old_size: u64,
    leaf_hashes: &[Hash],
    old_hashes: &[Hash],
) -> Result<Vec<Hash>, TreeError> {
    let new_size = old_size
        .checked_add(leaf_hashes.len() as u64)
        .ok_or(TreeError::TooLarge(u64::MAX))?;
    let indexes = append_indexes(old_size, new_size)?;
    check_hash_count(old_hashes, indexes.len())?;
    let base = stored_hash_count(old_size);
    let mut out: Vec<Hash> = Vec::with_capacity(2 * leaf_hashes.len() + 1);
    for (i, leaf) in (old_size..new_size).zip(leaf_hashes) {
        let mut h = *leaf;
        out.push(h);
        // Leaf i completes one subtree per trailing one bit: its left siblings are
        // (l, (i >> l) - 1) for l below that count.
        for level in 0..i.trailing_ones() {
            let idx = stored_hash_index(level, (i >> level) - 1);
            let left = if idx >= base {
                out.get((idx - base) as usize).copied()
            } else {
                indexes
                    .iter()
                    .position(|&x| x == idx)
                    .map(|p| old_hashes[p])
            };
            let left = left.ok_or(TreeError::MissingHash {
                index: idx,
                available: base + out.len() as u64,
            })?;
            h = node_hash(&left, &h);
            out.push(h);
        }
    }
    Ok(out)
}

/// The hashes to store after appending `leaf_hashes` to a log of `old_size` leaves (see
/// [`append_from_hashes`]); reads at most `log2(old_size)` old hashes, in one batch.
pub fn append_stored_hashes(
    old_size: u64,
    leaf_hashes: &[Hash],
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, TreeError> {
    let new_size = old_size
        .checked_add(leaf_hashes.len() as u64)
        .ok_or(TreeError::TooLarge(u64::MAX))?;
    let old = read_exact(reader, &append_indexes(old_size, new_size)?)?;
    append_from_hashes(old_size, leaf_hashes, &old)
}

/// Go's `StoredHashesForRecordHash`: the hashes to store when leaf `n` (0-based) with hash
/// `leaf_hash` is appended to a log of `n` leaves.
pub fn stored_hashes_for_record_hash(
    n: u64,
    leaf_hash: Hash,
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, TreeError> {
    append_stored_hashes(n, &[leaf_hash], reader)
}

// ---------------------------------------------------------------------------------------------
// Tree hash.

/// The stored hashes [`tree_hash_from_hashes`] needs for a tree of `size` leaves.
pub fn tree_hash_indexes(size: u64) -> Result<Vec<u64>, TreeError> {
    check_size(size)?;
    let mut subtrees = Vec::new();
    range_subtrees(0, size, &mut subtrees);
    Ok(subtrees
        .into_iter()
        .map(|(l, n)| stored_hash_index(l, n))
        .collect())
}

/// The root of the tree of `size` leaves from the hashes at [`tree_hash_indexes`]`(size)`.
pub fn tree_hash_from_hashes(size: u64, hashes: &[Hash]) -> Result<Hash, TreeError> {
    let want = tree_hash_indexes(size)?.len();
    check_hash_count(hashes, want)?;
    Ok(fold_subtrees(hashes))
}

/// The root of the tree of `size` leaves (any size the store covers), from `popcount(size)`
/// stored hashes.
pub fn tree_hash(size: u64, reader: &dyn HashReader) -> Result<Hash, TreeError> {
    let hashes = read_exact(reader, &tree_hash_indexes(size)?)?;
    tree_hash_from_hashes(size, &hashes)
}

// ---------------------------------------------------------------------------------------------
// Proof plans: a proof is a list of range hashes; each range is a few complete subtrees.

/// The ranges whose hashes form a proof, each as the subtrees that compose it.
struct ProofPlan {
    /// For each proof hash, how many subtrees of `subtrees` it folds.
    counts: Vec<usize>,
    subtrees: Vec<(u32, u64)>,
}

impl ProofPlan {
    fn from_ranges(ranges: &[(u64, u64)]) -> Self {
        let mut subtrees = Vec::new();
        let mut counts = Vec::with_capacity(ranges.len());
        for &(lo, hi) in ranges {
            let before = subtrees.len();
            range_subtrees(lo, hi, &mut subtrees);
            counts.push(subtrees.len() - before);
        }
        ProofPlan { counts, subtrees }
    }

    fn indexes(&self) -> Vec<u64> {
        self.subtrees
            .iter()
            .map(|&(l, n)| stored_hash_index(l, n))
            .collect()
    }

    fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, TreeError> {
        check_hash_count(hashes, self.subtrees.len())?;
        let mut out = Vec::with_capacity(self.counts.len());
        let mut at = 0;
        for &c in &self.counts {
            out.push(fold_subtrees(&hashes[at..at + c]));
            at += c;
        }
        Ok(out)
    }
}

/// RFC 6962 PATH(index, D[lo:hi]) as the list of sibling ranges, leaf sibling first.
fn inclusion_ranges(index: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = largest_power_of_two_below(hi - lo);
    if index < lo + k {
        inclusion_ranges(index, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(index, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// RFC 6962 SUBPROOF(m, D[lo:hi], b) as a list of ranges; `m` counts leaves from `lo`.
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    if m == hi - lo {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = largest_power_of_two_below(hi - lo);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// The largest power of two strictly below `n` (n >= 2).
fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, TreeError> {
    check_size(size)?;
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    Ok(ProofPlan::from_ranges(&ranges))
}

fn consistency_plan(m: u64, n: u64) -> Result<ProofPlan, TreeError> {
    check_size(n)?;
    if m > n {
        return Err(TreeError::InvalidSizes(format!(
            "consistency from size {m} to smaller size {n}"
        )));
    }
    let mut ranges = Vec::new();
    // Size 0 is consistent with every tree and the proof is empty (as RFC 9162 verifiers
    // expect); RFC 6962 only defines 0 < m.
    if m > 0 {
        consistency_ranges(m, 0, n, true, &mut ranges);
    }
    Ok(ProofPlan::from_ranges(&ranges))
}

/// The stored hashes [`inclusion_proof_from_hashes`] needs.
pub fn inclusion_proof_indexes(index: u64, size: u64) -> Result<Vec<u64>, TreeError> {
    Ok(inclusion_plan(index, size)?.indexes())
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from the hashes at
/// [`inclusion_proof_indexes`]`(index, size)`.
pub fn inclusion_proof_from_hashes(
    index: u64,
    size: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, TreeError> {
    inclusion_plan(index, size)?.assemble(hashes)
}

/// The RFC 6962 §2.1.1 inclusion proof (leaf sibling first) of leaf `index` in the tree of
/// `size` leaves.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, TreeError> {
    let plan = inclusion_plan(index, size)?;
    plan.assemble(&read_exact(reader, &plan.indexes())?)
}

/// The stored hashes [`consistency_proof_from_hashes`] needs.
pub fn consistency_proof_indexes(m: u64, n: u64) -> Result<Vec<u64>, TreeError> {
    Ok(consistency_plan(m, n)?.indexes())
}

/// The consistency proof from size `m` to size `n`, from the hashes at
/// [`consistency_proof_indexes`]`(m, n)`.
pub fn consistency_proof_from_hashes(
    m: u64,
    n: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, TreeError> {
    consistency_plan(m, n)?.assemble(hashes)
}

/// The RFC 6962 §2.1.2 consistency proof that the tree of `m` leaves is a prefix of the tree of
/// `n` leaves (`m <= n`; empty when `m == n` or `m == 0`).
pub fn consistency_proof(m: u64, n: u64, reader: &dyn HashReader) -> Result<Vec<Hash>, TreeError> {
    let plan = consistency_plan(m, n)?;
    plan.assemble(&read_exact(reader, &plan.indexes())?)
}

// ---------------------------------------------------------------------------------------------
// Verification (RFC 9162).

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that the leaf with hash `leaf_hash` is at
/// `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(VerifyError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyError::WrongLength);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `m` leaves with root
/// `root_m` is a prefix of the tree of `n` leaves with root `root_n`.
///
/// `m == n` needs an empty proof and equal roots; `m == 0` needs an empty proof (the empty tree
/// is a prefix of every tree).
pub fn verify_consistency(
    m: u64,
    n: u64,
    root_m: &Hash,
    root_n: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if m > n {
        return Err(VerifyError::InvalidSizes(format!(
            "consistency from size {m} to smaller size {n}"
        )));
    }
    if m == n {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength);
        }
        return if root_m == root_n {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    if m == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(VerifyError::WrongLength);
    }
    // Step 2: when m is a power of two, the old root is itself the first node of the path.
    let (first, rest) = if m.is_power_of_two() {
        (*root_m, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let mut f = m - 1;
    let mut s = n - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = first;
    let mut sr = first;
    for c in rest {
        if s == 0 {
            return Err(VerifyError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(VerifyError::WrongLength);
    }
    if fr != *root_m || sr != *root_n {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In-memory store.

/// All stored hashes of a log, in memory: for tests and for offline checks (e.g. recomputing
/// the roots of an exported ledger).
#[derive(Debug, Clone, Default)]
pub struct MemoryHashStore {
    hashes: Vec<Hash>,
    size: u64,
}

impl MemoryHashStore {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All stored hashes, in stored-index order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends leaves by their leaf hashes.
    pub fn append_leaf_hashes(&mut self, leaf_hashes: &[Hash]) -> Result<(), TreeError> {
        let new = append_stored_hashes(self.size, leaf_hashes, self)?;
        self.hashes.extend(new);
        self.size += leaf_hashes.len() as u64;
        Ok(())
    }

    /// Appends leaves by their data.
    pub fn append_leaves<D: AsRef<[u8]>>(&mut self, leaves: &[D]) -> Result<(), TreeError> {
        let hashes: Vec<Hash> = leaves.iter().map(|d| leaf_hash(d.as_ref())).collect();
        self.append_leaf_hashes(&hashes)
    }

    /// The root at the current size.
    pub fn root(&self) -> Result<Hash, TreeError> {
        tree_hash(self.size, self)
    }
}

impl HashReader for MemoryHashStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.hashes.get(i).copied())
                    .ok_or(TreeError::MissingHash {
                        index: i,
                        available: self.hashes.len() as u64,
                    })
            })
            .collect()
    }
}

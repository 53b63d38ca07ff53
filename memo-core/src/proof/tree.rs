//! blake3's own tree over a shard: leaf proofs whose root is the shard id.
//!
//! blake3 splits its input into 1 KiB chunks (the leaves here) and builds a left-complete binary
//! tree: a node of `c > 1` chunks has a left child of the largest power of two below `c` chunks
//! and a right child of the rest. Chunks and inner nodes yield 32-byte chaining values; the top
//! node is finalized with the ROOT flag and is `blake3(shard)`, i.e. the [`ShardId`]. A proof of
//! leaf `i` is the leaf's bytes plus the chaining values of the siblings along the path from the
//! leaf to the root. The verifier derives the tree's shape from the committed shard length, so a
//! proof cannot pretend to sit in a tree of another shape; the chunk counter in each leaf's
//! chaining value binds the leaf to its position.
//!
//! Sizes: a leaf proof is at most `1024 + 32·⌈log2(leaves)⌉` bytes of payload, e.g. 1 280 bytes
//! for a 256 KiB shard (8 path nodes) and 1 504 bytes for a 32 MiB shard (15 nodes).

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use blake3::{CHUNK_LEN, Hasher};
use serde::{Deserialize, Serialize};

use super::error::{ProofError, ProveError};
use crate::id::ShardId;
use crate::wire;

/// Bytes per leaf: blake3's chunk length (1 KiB). The last leaf of a shard may be shorter.
pub const LEAF_LEN: usize = CHUNK_LEN;
const LEAF: u64 = LEAF_LEN as u64;

/// Largest path a well-formed proof can carry (a tree of 2^64 bytes has 54 levels).
pub const MAX_PATH_NODES: usize = 64;

/// Default tree-cache granularity: one chaining value per 16 leaves (16 KiB of shard).
///
/// Measured on a 256 KiB shard (`benches/proofs.rs`, loaded machine): 16 KiB groups build a
/// proof in 11–19 µs against 19–28 µs for 64 KiB groups (a quarter of the bytes to read and hash)
/// for 0.2 % extra storage; 4 KiB groups are similar in time at 0.8 %, and 1 KiB groups are
/// slower (hundreds of merges per proof) at 3 %.
pub const DEFAULT_CACHE_GROUP_LOG2: u8 = 4;
/// Largest tree-cache group: 2^20 leaves (1 GiB of shard per chaining value).
pub const MAX_CACHE_GROUP_LOG2: u8 = 20;

/// Number of leaves (blake3 chunks) in a shard of `shard_len` bytes. An empty shard is one
/// empty leaf, as in blake3.
pub fn leaf_count(shard_len: u64) -> u64 {
    shard_len.div_ceil(LEAF).max(1)
}

/// Length of leaf `index` in a shard of `shard_len` bytes, or `None` if there is no such leaf.
pub fn leaf_len(shard_len: u64, index: u64) -> Option<usize> {
    if index >= leaf_count(shard_len) {
        return None;
    }
    let start = index * LEAF;
    Some((shard_len - start).min(LEAF) as usize)
}

/// Number of path nodes in the proof of leaf `index` of a shard of `shard_len` bytes.
pub fn path_len(shard_len: u64, index: u64) -> Option<usize> {
    if index >= leaf_count(shard_len) {
        return None;
    }
    Some(shape(leaf_count(shard_len), index).1)
}

/// The largest power of two strictly below `count` (`count >= 2`): blake3's left-subtree size
/// in chunks.
fn left_children(count: u64) -> u64 {
    debug_assert!(count >= 2);
    1 << (63 - (count - 1).leading_zeros())
}

/// The path from the root to leaf `index` in a tree of `leaves` leaves: bit `d` of the mask is
/// set when the path goes left at depth `d` (0 = root); the second value is the depth.
fn shape(leaves: u64, index: u64) -> (u64, usize) {
    let (mut start, mut count) = (0u64, leaves);
    let (mut mask, mut depth) = (0u64, 0usize);
    while count > 1 {
        let left = left_children(count);
        if index < start + left {
            mask |= 1 << depth;
            count = left;
        } else {
            start += left;
            count -= left;
        }
        depth += 1;
    }
    (mask, depth)
}

/// The chaining value of leaf `index` holding `bytes` (non-empty, at most one chunk).
fn leaf_cv(index: u64, bytes: &[u8]) -> ChainingValue {
    Hasher::new()
        .set_input_offset(index * LEAF)
        .update(bytes)
        .finalize_non_root()
}

/// Recomputes the root from leaf `index`'s bytes and its path (siblings, leaf level first).
///
/// The shape comes from `shard_len`, never from the proof. Returns the root hash, or the first
/// reason the proof is not even well-shaped.
pub(crate) fn root_from_path(
    shard: ShardId,
    shard_len: u64,
    index: u64,
    leaf: &[u8],
    path: &[ChainingValue],
) -> Result<[u8; 32], ProofError> {
    let leaves = leaf_count(shard_len);
    let expected_len = leaf_len(shard_len, index).ok_or(ProofError::LeafOutOfRange {
        shard,
        index,
        leaves,
    })?;
    if leaf.len() != expected_len {
        return Err(ProofError::LeafLength {
            shard,
            index,
            expected: expected_len,
            found: leaf.len(),
        });
    }
    let (mask, depth) = shape(leaves, index);
    if path.len() != depth {
        return Err(ProofError::PathLength {
            shard,
            index,
            expected: depth,
            found: path.len(),
        });
    }
    if depth == 0 {
        // A single-chunk shard: the root is the chunk itself, finalized as root.
        return Ok(*blake3::hash(leaf).as_bytes());
    }
    let mut cv = leaf_cv(index, leaf);
    for (j, sibling) in path.iter().enumerate() {
        let level = depth - 1 - j;
        let went_left = mask & (1 << level) != 0;
        let (l, r) = if went_left {
            (&cv, sibling)
        } else {
            (sibling, &cv)
        };
        if level == 0 {
            return Ok(*merge_subtrees_root(l, r, Mode::Hash).as_bytes());
        }
        cv = merge_subtrees_non_root(l, r, Mode::Hash);
    }
    // depth > 0 means the loop returned at level 0.
    Err(ProofError::PathMismatch { shard, index })
}

/// One leaf's proof: its bytes and the sibling chaining values from the leaf up to the root.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafProof {
    /// The leaf index (0-based, 1 KiB leaves).
    pub index: u64,
    /// The leaf's bytes: 1 KiB, or less for the last leaf.
    pub data: Vec<u8>,
    /// Sibling chaining values, the leaf's sibling first, the root's child last. Empty for a
    /// single-leaf shard.
    pub path: Vec<ChainingValue>,
}

impl std::fmt::Debug for LeafProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LeafProof(leaf {}, {} bytes, {} nodes)",
            self.index,
            self.data.len(),
            self.path.len()
        )
    }
}

/// Random access to a stored shard, for building proofs without holding the shard in memory.
pub trait ShardReader {
    /// Fills `buf` with the shard's bytes starting at `offset`; all of `buf` or an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl ShardReader for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let beyond = || {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("range beyond the {} stored bytes", self.len()),
            )
        };
        let start = usize::try_from(offset).map_err(|_| beyond())?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(beyond)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl<R: ShardReader + ?Sized> ShardReader for &mut R {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// A [`ShardReader`] from a closure `(offset, buf) -> std::io::Result<()>`.
pub struct ReadFn<F>(pub F);

impl<F: FnMut(u64, &mut [u8]) -> std::io::Result<()>> ShardReader for ReadFn<F> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (self.0)(offset, buf)
    }
}

/// Bytes read per call while hashing a subtree from a reader.
const READ_PIECE: usize = 64 * 1024;

/// Computes chaining values of subtrees and reads leaves, from a reader and an optional cache.
struct Prover<'a, R: ShardReader> {
    reader: R,
    shard_len: u64,
    leaves: u64,
    cache: Option<&'a TreeCache>,
    buf: Vec<u8>,
}

impl<R: ShardReader> Prover<'_, R> {
    fn read(&mut self, offset: u64, len: usize) -> Result<(), ProveError> {
        self.buf.resize(len, 0);
        self.reader
            .read_at(offset, &mut self.buf[..len])
            .map_err(|e| ProveError::Read {
                offset,
                len,
                reason: e.to_string(),
            })
    }

    /// The chaining value of the subtree of `count` leaves starting at leaf `start`.
    fn subtree_cv(&mut self, start: u64, count: u64) -> Result<ChainingValue, ProveError> {
        if let Some(cache) = self.cache.filter(|c| !c.cvs.is_empty()) {
            let group = 1u64 << cache.group_log2;
            if count > group {
                // Subtrees wider than a group start on a group boundary: merge cached groups.
                let left = left_children(count);
                let l = self.subtree_cv(start, left)?;
                let r = self.subtree_cv(start + left, count - left)?;
                return Ok(merge_subtrees_non_root(&l, &r, Mode::Hash));
            }
            if start.is_multiple_of(group) && (count == group || start + count == self.leaves) {
                let g = (start / group) as usize;
                return cache
                    .cvs
                    .get(g)
                    .copied()
                    .ok_or_else(|| ProveError::BadCache {
                        shard: cache.shard,
                        reason: format!("no chaining value for group {g}"),
                    });
            }
        }
        let from = start * LEAF;
        let to = ((start + count) * LEAF).min(self.shard_len);
        let mut hasher = Hasher::new();
        hasher.set_input_offset(from);
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(READ_PIECE);
            self.read(at, n)?;
            hasher.update(&self.buf[..n]);
            at += n as u64;
        }
        Ok(hasher.finalize_non_root())
    }

    fn prove_leaf(&mut self, index: u64) -> Result<LeafProof, ProveError> {
        let len = leaf_len(self.shard_len, index).ok_or(ProveError::LeafOutOfRange {
            index,
            leaves: self.leaves,
        })?;
        self.read(index * LEAF, len)?;
        let data = self.buf[..len].to_vec();
        let mut path = Vec::new();
        let (mut start, mut count) = (0u64, self.leaves);
        while count > 1 {
            let left = left_children(count);
            if index < start + left {
                path.push(self.subtree_cv(start + left, count - left)?);
                count = left;
            } else {
                path.push(self.subtree_cv(start, left)?);
                start += left;
                count -= left;
            }
        }
        path.reverse();
        Ok(LeafProof { index, data, path })
    }
}

/// Builds the proofs of `leaves` from a shard held in memory.
///
/// Hashes every sibling subtree, i.e. about the whole shard per call; a provider that answers
/// many challenges should keep a [`TreeCache`] and use [`prove_leaves_from_reader`].
pub fn prove_leaves(shard: &[u8], leaves: &[u64]) -> Result<Vec<LeafProof>, ProveError> {
    prove_leaves_from_reader(shard, shard.len() as u64, None, leaves)
}

/// Builds the proofs of `leaves` of a `shard_len`-byte shard read through `reader`.
///
/// With a `cache` (built once when the shard was stored) it reads only each sampled leaf and the
/// rest of that leaf's cache group (16 KiB by default) and hashes that; without one it reads and
/// hashes the whole shard per leaf. The proof is not checked here: a provider that wants to know
/// whether its copy is still good calls [`verify`](super::verify) on the result.
pub fn prove_leaves_from_reader<R: ShardReader>(
    reader: R,
    shard_len: u64,
    cache: Option<&TreeCache>,
    leaves: &[u64],
) -> Result<Vec<LeafProof>, ProveError> {
    if let Some(c) = cache
        && c.shard_len != shard_len
    {
        return Err(ProveError::WrongLength {
            expected: shard_len,
            found: c.shard_len,
        });
    }
    let mut prover = Prover {
        reader,
        shard_len,
        leaves: leaf_count(shard_len),
        cache,
        buf: Vec::new(),
    };
    leaves.iter().map(|&i| prover.prove_leaf(i)).collect()
}

/// Chaining values of a shard's aligned leaf groups: what a provider keeps beside a shard so
/// that a proof reads one group instead of the whole shard (like bao's outboard, coarser).
///
/// With groups of 2^g leaves it holds `32·⌈leaves / 2^g⌉` bytes: 512 bytes for a 256 KiB shard
/// at the default 16 KiB groups (0.2 % of the shard). A shard of one group or less needs no
/// cache (the cache is then empty and proofs read the whole, small, shard).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCache {
    shard: ShardId,
    shard_len: u64,
    group_log2: u8,
    cvs: Vec<ChainingValue>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TreeCache({:?}, {} bytes, {} groups)",
            self.shard,
            self.shard_len,
            self.cvs.len()
        )
    }
}

/// Format version of [`TreeCache::to_bytes`].
pub const TREE_CACHE_VERSION: u8 = 1;

impl TreeCache {
    /// Builds the cache of an in-memory shard with the default 16 KiB groups.
    pub fn build(shard: &[u8]) -> Self {
        let mut cvs = Vec::new();
        let group = (LEAF as usize) << DEFAULT_CACHE_GROUP_LOG2;
        if shard.len() > group {
            cvs = shard
                .chunks(group)
                .enumerate()
                .map(|(g, bytes)| {
                    Hasher::new()
                        .set_input_offset((g * group) as u64)
                        .update(bytes)
                        .finalize_non_root()
                })
                .collect();
        }
        Self {
            shard: ShardId::of(shard),
            shard_len: shard.len() as u64,
            group_log2: DEFAULT_CACHE_GROUP_LOG2,
            cvs,
        }
    }

    /// Builds the cache by reading a `shard_len`-byte shard through `reader`, with groups of
    /// 2^`group_log2` leaves. Also yields the shard id, so a store can check a received shard
    /// and build its cache in one pass.
    pub fn build_from_reader<R: ShardReader>(
        reader: R,
        shard_len: u64,
        group_log2: u8,
    ) -> Result<Self, ProveError> {
        if group_log2 > MAX_CACHE_GROUP_LOG2 {
            return Err(ProveError::GroupSize {
                log2: group_log2,
                max: MAX_CACHE_GROUP_LOG2,
            });
        }
        let leaves = leaf_count(shard_len);
        let group = 1u64 << group_log2;
        let mut prover = Prover {
            reader,
            shard_len,
            leaves,
            cache: None,
            buf: Vec::new(),
        };
        if leaves <= group {
            // One group: hash the shard as a whole.
            let mut hasher = Hasher::new();
            let mut at = 0;
            while at < shard_len {
                let n = ((shard_len - at) as usize).min(READ_PIECE);
                prover.read(at, n)?;
                hasher.update(&prover.buf[..n]);
                at += n as u64;
            }
            let shard = ShardId(*hasher.finalize().as_bytes());
            return Ok(Self {
                shard,
                shard_len,
                group_log2,
                cvs: Vec::new(),
            });
        }
        let mut cvs = Vec::with_capacity(leaves.div_ceil(group) as usize);
        let mut start = 0;
        while start < leaves {
            let count = group.min(leaves - start);
            cvs.push(prover.subtree_cv(start, count)?);
            start += count;
        }
        let mut cache = Self {
            shard: ShardId([0; 32]),
            shard_len,
            group_log2,
            cvs,
        };
        cache.shard = ShardId(cache.root()?);
        Ok(cache)
    }

    /// The shard this cache describes.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The shard's length in bytes.
    pub fn shard_len(&self) -> u64 {
        self.shard_len
    }

    /// Leaves per cached chaining value, as a power of two.
    pub fn group_log2(&self) -> u8 {
        self.group_log2
    }

    /// Number of cached chaining values.
    pub fn groups(&self) -> usize {
        self.cvs.len()
    }

    /// The root recomputed from the cached chaining values alone.
    fn root(&self) -> Result<[u8; 32], ProveError> {
        let leaves = leaf_count(self.shard_len);
        let left = left_children(leaves);
        let reader: &[u8] = &[];
        let mut prover = Prover {
            reader,
            shard_len: self.shard_len,
            leaves,
            cache: Some(self),
            buf: Vec::new(),
        };
        let l = prover.subtree_cv(0, left)?;
        let r = prover.subtree_cv(left, leaves - left)?;
        Ok(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
    }

    /// Canonical, versioned encoding for storing beside the shard.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(TREE_CACHE_VERSION, self)
    }

    /// Decodes a stored cache and checks it: it must describe `shard`, have the shape of its
    /// length and group size, and its chaining values must hash to the shard id.
    pub fn from_bytes(bytes: &[u8], shard: &ShardId) -> Result<Self, ProveError> {
        // Bounded: a cache for the largest shard memo makes (32 MiB) at 1 KiB groups is 1 MiB.
        let cache: Self = wire::decode_versioned(bytes, TREE_CACHE_VERSION, 2 << 20, "tree cache")?;
        if cache.shard != *shard {
            return Err(ProveError::WrongShard {
                expected: *shard,
                found: cache.shard,
            });
        }
        if cache.group_log2 > MAX_CACHE_GROUP_LOG2 {
            return Err(ProveError::GroupSize {
                log2: cache.group_log2,
                max: MAX_CACHE_GROUP_LOG2,
            });
        }
        let bad = |reason: String| ProveError::BadCache {
            shard: *shard,
            reason,
        };
        let leaves = leaf_count(cache.shard_len);
        let group = 1u64 << cache.group_log2;
        let expected = if leaves <= group {
            0
        } else {
            leaves.div_ceil(group)
        };
        if cache.cvs.len() as u64 != expected {
            return Err(bad(format!(
                "{} chaining values, the shape needs {expected}",
                cache.cvs.len()
            )));
        }
        // Without groups there is nothing to check against the id: the cache is unused.
        if expected > 0 && cache.root()? != shard.0 {
            return Err(bad("chaining values do not hash to the shard id".into()));
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::random_bytes;

    fn check_all(data: &[u8]) {
        let id = ShardId::of(data);
        let len = data.len() as u64;
        let leaves = leaf_count(len);
        let all: Vec<u64> = (0..leaves).collect();
        let proofs = prove_leaves(data, &all).unwrap();
        let cache = TreeCache::build(data);
        let small = TreeCache::build_from_reader(data, len, 1).unwrap();
        assert_eq!(small.shard(), id);
        let cached = prove_leaves_from_reader(data, len, Some(&cache), &all).unwrap();
        let cached_small = prove_leaves_from_reader(data, len, Some(&small), &all).unwrap();
        assert_eq!(proofs, cached);
        assert_eq!(proofs, cached_small);
        for p in &proofs {
            assert_eq!(p.path.len(), path_len(len, p.index).unwrap());
            let root = root_from_path(id, len, p.index, &p.data, &p.path).unwrap();
            assert_eq!(root, id.0, "len {len} leaf {}", p.index);
        }
    }

    #[test]
    fn every_leaf_of_boundary_lengths_hashes_to_the_shard_id() {
        for len in [
            0,
            1,
            1023,
            1024,
            1025,
            2047,
            2048,
            2049,
            3072,
            4095,
            4096,
            4097,
            5000,
            7 * 1024 + 3,
        ] {
            check_all(&random_bytes(len, len as u8));
        }
        for kib in [63usize, 64, 65, 127, 128, 129, 200] {
            for delta in [-1i64, 0, 1] {
                check_all(&random_bytes(
                    (kib as i64 * 1024 + delta) as usize,
                    kib as u8,
                ));
            }
        }
    }

    #[test]
    fn tree_shape_matches_blake3() {
        // left-complete: 3 leaves = ((0,1),2); leaf 2's path has one node.
        assert_eq!(path_len(3 * 1024, 0), Some(2));
        assert_eq!(path_len(3 * 1024, 2), Some(1));
        assert_eq!(path_len(256 * 1024, 17), Some(8));
        assert_eq!(path_len(1024, 0), Some(0));
        assert_eq!(path_len(1024, 1), None);
        assert_eq!(leaf_count(0), 1);
        assert_eq!(leaf_len(2049, 2), Some(1));
        assert_eq!(left_children(2), 1);
        assert_eq!(left_children(3), 2);
        assert_eq!(left_children(5), 4);
        assert_eq!(left_children(8), 4);
    }

    #[test]
    fn cache_round_trip_and_rejects_tampering() {
        let data = random_bytes(300 * 1024 + 5, 9);
        let id = ShardId::of(&data);
        let cache = TreeCache::build(&data);
        assert_eq!(cache.groups(), 19); // 301 leaves in groups of 16
        let enc = cache.to_bytes();
        assert_eq!(TreeCache::from_bytes(&enc, &id).unwrap(), cache);
        let other = ShardId::of(b"other");
        assert!(matches!(
            TreeCache::from_bytes(&enc, &other),
            Err(ProveError::WrongShard { .. })
        ));
        let mut bad = cache.clone();
        bad.cvs[2][0] ^= 1;
        assert!(matches!(
            TreeCache::from_bytes(&bad.to_bytes(), &id),
            Err(ProveError::BadCache { .. })
        ));
        let mut short = cache.clone();
        short.cvs.pop();
        assert!(matches!(
            TreeCache::from_bytes(&short.to_bytes(), &id),
            Err(ProveError::BadCache { .. })
        ));
        assert!(matches!(
            TreeCache::build_from_reader(&data[..], data.len() as u64, 21),
            Err(ProveError::GroupSize { .. })
        ));
    }

    #[test]
    fn reader_errors_are_reported() {
        let data = random_bytes(10 * 1024, 1);
        let err =
            prove_leaves_from_reader(&data[..5000], data.len() as u64, None, &[9]).unwrap_err();
        assert!(matches!(err, ProveError::Read { .. }));
        let err = prove_leaves(&data, &[10]).unwrap_err();
        assert_eq!(
            err,
            ProveError::LeafOutOfRange {
                index: 10,
                leaves: 10
            }
        );
        let cache = TreeCache::build(&data);
        let err = prove_leaves_from_reader(&data[..], 9 * 1024, Some(&cache), &[0]).unwrap_err();
        assert!(matches!(err, ProveError::WrongLength { .. }));
    }
}

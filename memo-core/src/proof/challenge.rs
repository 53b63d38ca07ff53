//! Challenges derived from ledger randomness, the proof wire types, and verification.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{ChallengeError, ProofError, ProveError};
use super::tree::{
    LeafProof, MAX_PATH_NODES, ShardReader, TreeCache, leaf_count, prove_leaves_from_reader,
    root_from_path,
};
use crate::id::{AccountId, ShardId};
use crate::identity::Signable;
use crate::wire;

/// Domain-separation context of challenge seeds.
const SEED_CONTEXT: &str = "memo 2025 proof-of-storage challenge seed v1";

/// Largest `shards_per_epoch` a challenge may ask for.
pub const MAX_SHARDS_PER_CHALLENGE: u32 = 64;
/// Largest `leaves_per_shard` a challenge may ask for.
pub const MAX_LEAVES_PER_SHARD: u32 = 8;

/// How much a challenge asks for.
///
/// The defaults (8 shards, 1 leaf each) keep a response near 8 × 1.3 KiB for 256 KiB shards.
/// The chance to catch a provider missing a fraction `x` of one shard's leaves in one epoch in
/// which that shard is challenged is `1 − C((1−x)·n, s) / C(n, s)` for `n` leaves and `s` sampled
/// leaves (≈ `1 − (1−x)^s`); with `s = 1` and `x = 10 %` that is 10 % per epoch, so 44 epochs
/// catch it with probability `1 − 0.9^44 ≈ 99.0 %` (see the statistical test).
/// A provider holding `N > shards_per_epoch` shards has each shard challenged with
/// probability `shards_per_epoch / N` per epoch, which multiplies the per-epoch catch chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeParams {
    /// Shards challenged per provider and epoch (all of them if it holds fewer). 1..=64.
    pub shards_per_epoch: u32,
    /// Distinct leaves sampled in each challenged shard (all of them if it has fewer). 1..=8.
    pub leaves_per_shard: u32,
}

impl Default for ChallengeParams {
    fn default() -> Self {
        Self {
            shards_per_epoch: 8,
            leaves_per_shard: 1,
        }
    }
}

impl ChallengeParams {
    /// Checks both fields are in range.
    pub fn validate(&self) -> Result<(), ChallengeError> {
        let check = |name, value: u32, max| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(ChallengeError::Param { name, value, max })
            }
        };
        check(
            "shards_per_epoch",
            self.shards_per_epoch,
            MAX_SHARDS_PER_CHALLENGE,
        )?;
        check(
            "leaves_per_shard",
            self.leaves_per_shard,
            MAX_LEAVES_PER_SHARD,
        )
    }
}

/// A shard a provider is committed to hold: its id (the Merkle root) and its length (which fixes
/// the tree's shape). Both come from the ledger's placement records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommittedShard {
    /// The shard id.
    pub shard: ShardId,
    /// The shard's length in bytes.
    pub shard_len: u64,
}

/// One challenged shard: the provider must return the listed leaves with their paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeItem {
    /// The shard id, as committed on the ledger.
    pub shard: ShardId,
    /// The committed shard length.
    pub shard_len: u64,
    /// Leaf indices to prove, ascending and distinct.
    pub leaves: Vec<u64>,
}

/// What a provider must prove in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The epoch.
    pub epoch: u64,
    /// The challenged provider.
    pub provider: AccountId,
    /// The challenged shards, in ascending shard-id order.
    pub items: Vec<ChallengeItem>,
}

/// The challenge seed: `blake3` in derive-key mode (context "memo 2025 proof-of-storage challenge
/// seed v1") over the epoch's block hash, the provider and the epoch (little-endian).
///
/// Nobody can predict it before the block that fixes `block_hash` exists, and each provider's
/// seed is different, so a provider cannot learn its challenge from another's.
///
/// The one party that could bias it is whoever produces that block, by trying many blocks
/// (grinding); with the local chain's single sequencing keeper, that keeper must not collude with
/// providers (a VRF or commit-reveal beacon would remove this trust later).
pub fn challenge_seed(block_hash: &[u8; 32], provider: &AccountId, epoch: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(SEED_CONTEXT);
    h.update(block_hash)
        .update(provider.as_bytes())
        .update(&epoch.to_le_bytes());
    *h.finalize().as_bytes()
}

/// A deterministic stream of random numbers from a 32-byte seed and a label (blake3 XOF).
pub(crate) struct SeedStream(blake3::OutputReader);

impl SeedStream {
    pub(crate) fn new(seed: &[u8; 32], label: &[u8]) -> Self {
        Self(blake3::Hasher::new_keyed(seed).update(label).finalize_xof())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (rejection sampling).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let reject = (u64::MAX % n + 1) % n; // 2^64 mod n
        loop {
            let x = self.next_u64();
            if x <= u64::MAX - reject {
                return x % n;
            }
        }
    }

    /// `k` distinct values of `0..n` (`k <= n`), ascending (Floyd's algorithm).
    pub(crate) fn distinct(&mut self, k: u64, n: u64) -> BTreeSet<u64> {
        let mut set = BTreeSet::new();
        for j in n - k..n {
            let t = self.below(j + 1);
            if !set.insert(t) {
                set.insert(j);
            }
        }
        set
    }
}

impl Challenge {
    /// Derives `provider`'s challenge for `epoch` from the epoch's block hash.
    ///
    /// `committed` is the provider's list of committed shards in any order (sorted by shard id
    /// and deduplicated here, so every party derives the same challenge). The seed
    /// ([`challenge_seed`]) picks `min(shards_per_epoch, N)` distinct shards uniformly, then, for
    /// each picked shard, `min(leaves_per_shard, leaves)` distinct leaves from a stream keyed by
    /// the seed and the shard id. An empty list gives an empty challenge.
    pub fn derive(
        block_hash: &[u8; 32],
        provider: AccountId,
        epoch: u64,
        committed: &[CommittedShard],
        params: &ChallengeParams,
    ) -> Result<Self, ChallengeError> {
        params.validate()?;
        let mut list = committed.to_vec();
        list.sort();
        list.dedup();
        if let Some(w) = list.windows(2).find(|w| w[0].shard == w[1].shard) {
            return Err(ChallengeError::ConflictingLength {
                shard: w[0].shard,
                a: w[0].shard_len,
                b: w[1].shard_len,
            });
        }
        let seed = challenge_seed(block_hash, &provider, epoch);
        let n = list.len() as u64;
        let picked =
            SeedStream::new(&seed, b"shards").distinct(n.min(params.shards_per_epoch.into()), n);
        let items = picked
            .into_iter()
            .map(|i| {
                let c = list[i as usize];
                let leaves = leaf_count(c.shard_len);
                let mut label = b"leaves".to_vec();
                label.extend_from_slice(c.shard.as_bytes());
                let chosen = SeedStream::new(&seed, &label)
                    .distinct(leaves.min(params.leaves_per_shard.into()), leaves);
                ChallengeItem {
                    shard: c.shard,
                    shard_len: c.shard_len,
                    leaves: chosen.into_iter().collect(),
                }
            })
            .collect();
        Ok(Self {
            epoch,
            provider,
            items,
        })
    }
}

/// Format version of [`StorageProof`] and [`ProofResponse`] encodings.
pub const PROOF_FORMAT_VERSION: u8 = 1;

/// Largest encoding of one leaf proof: the leaf, a full path, and varint overhead.
const MAX_LEAF_PROOF_BYTES: usize = 1024 + 32 * MAX_PATH_NODES + 32;
/// Largest accepted encoding of a [`StorageProof`].
pub const MAX_STORAGE_PROOF_BYTES: usize =
    64 + MAX_LEAVES_PER_SHARD as usize * MAX_LEAF_PROOF_BYTES;
/// Largest accepted encoding of a [`ProofResponse`].
pub const MAX_RESPONSE_BYTES: usize =
    64 + MAX_SHARDS_PER_CHALLENGE as usize * MAX_STORAGE_PROOF_BYTES;

/// A provider's proof for one challenged shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    /// The shard proved.
    pub shard: ShardId,
    /// Its length, as the prover believes it is committed.
    pub shard_len: u64,
    /// One proof per challenged leaf, in the challenge's order.
    pub leaves: Vec<LeafProof>,
}

impl StorageProof {
    /// Answers `item` from a shard held in memory (hashes the shard; see [`TreeCache`]).
    pub fn prove(item: &ChallengeItem, shard: &[u8]) -> Result<Self, ProveError> {
        if shard.len() as u64 != item.shard_len {
            return Err(ProveError::WrongLength {
                expected: item.shard_len,
                found: shard.len() as u64,
            });
        }
        Self::prove_from_reader(item, shard, None)
    }

    /// Answers `item` by reading the shard through `reader`, using `cache` if given so only the
    /// sampled leaves' cache groups are read and hashed.
    pub fn prove_from_reader<R: ShardReader>(
        item: &ChallengeItem,
        reader: R,
        cache: Option<&TreeCache>,
    ) -> Result<Self, ProveError> {
        if let Some(c) = cache
            && c.shard() != item.shard
        {
            return Err(ProveError::WrongShard {
                expected: item.shard,
                found: c.shard(),
            });
        }
        let leaves = prove_leaves_from_reader(reader, item.shard_len, cache, &item.leaves)?;
        Ok(Self {
            shard: item.shard,
            shard_len: item.shard_len,
            leaves,
        })
    }

    /// Canonical, versioned encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(PROOF_FORMAT_VERSION, self)
    }

    /// Decodes, refusing inputs over [`MAX_STORAGE_PROOF_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        Ok(wire::decode_versioned(
            bytes,
            PROOF_FORMAT_VERSION,
            MAX_STORAGE_PROOF_BYTES,
            "storage proof",
        )?)
    }
}

/// A provider's answer to one epoch's [`Challenge`]: one [`StorageProof`] per item, in order.
///
/// It names the epoch and provider, so an old response resubmitted in a later epoch fails with
/// [`ProofError::WrongEpoch`]; rewriting the epoch does not help, because the new epoch's seed
/// selects other leaves ([`ProofError::WrongLeafIndex`]) unless the provider still holds them.
/// It is [`Signable`], so a provider signs it and anyone can relay it to the ledger.
/// The ledger should accept one response per provider and epoch (the first that verifies, or a
/// miss at the deadline); the proofs themselves carry no nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofResponse {
    /// The challenged epoch.
    pub epoch: u64,
    /// The challenged provider.
    pub provider: AccountId,
    /// One proof per challenge item, in the challenge's order.
    pub proofs: Vec<StorageProof>,
}

impl Signable for ProofResponse {
    const CONTEXT: &'static str = "memo proof response v1";
    const MAX_BYTES: usize = MAX_RESPONSE_BYTES;
}

impl ProofResponse {
    /// Answers a whole challenge; `store` returns, for a shard, a reader and its tree cache.
    pub fn prove<R, F>(challenge: &Challenge, mut store: F) -> Result<Self, ProveError>
    where
        R: ShardReader,
        F: FnMut(&ChallengeItem) -> Result<(R, Option<TreeCache>), ProveError>,
    {
        let proofs = challenge
            .items
            .iter()
            .map(|item| {
                let (reader, cache) = store(item)?;
                StorageProof::prove_from_reader(item, reader, cache.as_ref())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            epoch: challenge.epoch,
            provider: challenge.provider,
            proofs,
        })
    }

    /// Canonical, versioned encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(PROOF_FORMAT_VERSION, self)
    }

    /// Decodes, refusing inputs over [`MAX_RESPONSE_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        Ok(wire::decode_versioned(
            bytes,
            PROOF_FORMAT_VERSION,
            MAX_RESPONSE_BYTES,
            "proof response",
        )?)
    }
}

/// Verifies one shard's proof against its challenge item. Pure: no state, no I/O.
///
/// Checks, in order: the shard id and length match the item; the proof has one leaf proof per
/// challenged leaf with the challenged index; each leaf has the length its position implies in a
/// shard of the committed length; each path has the depth blake3's tree gives that leaf; and the
/// leaf and path hash (with blake3's chunk counters and parent/root flags) to the shard id.
pub fn verify(item: &ChallengeItem, proof: &StorageProof) -> Result<(), ProofError> {
    let shard = item.shard;
    if proof.shard != shard {
        return Err(ProofError::WrongShard {
            expected: shard,
            found: proof.shard,
        });
    }
    if proof.shard_len != item.shard_len {
        return Err(ProofError::WrongLength {
            shard,
            expected: item.shard_len,
            found: proof.shard_len,
        });
    }
    if proof.leaves.len() != item.leaves.len() {
        return Err(ProofError::LeafCount {
            shard,
            expected: item.leaves.len(),
            found: proof.leaves.len(),
        });
    }
    for (&index, leaf) in item.leaves.iter().zip(&proof.leaves) {
        if leaf.index != index {
            return Err(ProofError::WrongLeafIndex {
                shard,
                expected: index,
                found: leaf.index,
            });
        }
        let root = root_from_path(shard, item.shard_len, index, &leaf.data, &leaf.path)?;
        if root != shard.0 {
            return Err(ProofError::PathMismatch { shard, index });
        }
    }
    Ok(())
}

/// Verifies a response's envelope (epoch, provider, one proof per item) and returns each item's
/// verdict, in the challenge's order, so a contract can pay for the shards proved and penalise
/// only those that failed.
pub fn verify_response_items(
    challenge: &Challenge,
    response: &ProofResponse,
) -> Result<Vec<Result<(), ProofError>>, ProofError> {
    if response.epoch != challenge.epoch {
        return Err(ProofError::WrongEpoch {
            expected: challenge.epoch,
            found: response.epoch,
        });
    }
    if response.provider != challenge.provider {
        return Err(ProofError::WrongProvider {
            expected: challenge.provider,
            found: response.provider,
        });
    }
    if response.proofs.len() != challenge.items.len() {
        return Err(ProofError::ItemCount {
            expected: challenge.items.len(),
            found: response.proofs.len(),
        });
    }
    Ok(challenge
        .items
        .iter()
        .zip(&response.proofs)
        .map(|(i, p)| verify(i, p))
        .collect())
}

/// Verifies a whole response: `Ok` only if every challenged shard is proved.
pub fn verify_response(challenge: &Challenge, response: &ProofResponse) -> Result<(), ProofError> {
    verify_response_items(challenge, response)?
        .into_iter()
        .collect()
}

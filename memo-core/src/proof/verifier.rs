//! The contract's proof verifier: an order's per-epoch challenge answered with blake3-tree
//! leaf proofs, checked inside the ledger's transaction.
//!
//! The contract ([`crate::contract`]) derives one [`contract::Challenge`] per live, committed
//! order and epoch: a seed from the epoch's beacon, the provider, the epoch and the order, and
//! the committed shard that seed picked. This module turns that challenge into the leaves to
//! prove ([`order_item`]: `leaves` distinct 1 KiB leaves drawn from the seed), builds the
//! provider's answer ([`prove_order`], [`prove_order_from_reader`]) and checks it
//! ([`MerkleVerifier`], the [`ProofVerifier`] every ledger node plugs into its contract).
//!
//! The proof bytes of a `SubmitProof` transaction are a versioned [`StorageProof`] encoding. A
//! proof for another shard, another leaf, another epoch's leaves, or data that no longer
//! hashes to the committed shard id fails; so does anything that does not decode.
//!
//! Every ledger node must use the same number of leaves per challenge (it is consensus: a node
//! with another number would judge proofs differently); [`ORDER_LEAVES`] is the network's.

use super::challenge::{ChallengeItem, MAX_LEAVES_PER_SHARD, SeedStream, StorageProof, verify};
use super::error::{ChallengeError, ProofError, ProveError};
use super::tree::{ShardReader, TreeCache, leaf_count};
use crate::contract::{self, ProofVerifier};

/// Leaves sampled per challenged order and epoch on memo networks.
///
/// One leaf keeps a proof near 1.3 KiB for a 256 KiB shard (target ≤ 2 KiB). A provider
/// missing a fraction `x` of a shard's leaves is caught with probability `x` in each epoch
/// that challenges that shard (see [`ChallengeParams`](super::ChallengeParams) for the
/// epochs needed); losing a whole shard is caught the first time it is challenged.
pub const ORDER_LEAVES: u32 = 1;

/// Domain label of the leaf stream drawn from an order challenge's seed.
const LEAF_LABEL: &[u8] = b"memo order challenge leaves v1";

/// The leaves an order's provider must prove for `challenge`: `min(leaves, leaf count)`
/// distinct leaf indices of the committed shard, drawn from the challenge's seed (ascending).
pub fn order_item(challenge: &contract::Challenge, leaves: u32) -> ChallengeItem {
    let n = leaf_count(challenge.shard_len);
    let mut label = LEAF_LABEL.to_vec();
    label.extend_from_slice(challenge.shard.as_bytes());
    let chosen = SeedStream::new(&challenge.seed, &label).distinct(n.min(leaves.into()), n);
    ChallengeItem {
        shard: challenge.shard,
        shard_len: challenge.shard_len,
        leaves: chosen.into_iter().collect(),
    }
}

/// Answers an order challenge from the shard held in memory: the encoded [`StorageProof`] to
/// put in a `SubmitProof` transaction. Fails if `shard` is not as long as committed.
pub fn prove_order(
    challenge: &contract::Challenge,
    leaves: u32,
    shard: &[u8],
) -> Result<Vec<u8>, ProveError> {
    let item = order_item(challenge, leaves);
    Ok(StorageProof::prove(&item, shard)?.to_bytes())
}

/// Answers an order challenge by reading the shard through `reader` (with its tree cache, if
/// kept, so only the sampled leaves' groups are read).
pub fn prove_order_from_reader<R: ShardReader>(
    challenge: &contract::Challenge,
    leaves: u32,
    reader: R,
    cache: Option<&TreeCache>,
) -> Result<Vec<u8>, ProveError> {
    let item = order_item(challenge, leaves);
    Ok(StorageProof::prove_from_reader(&item, reader, cache)?.to_bytes())
}

/// The blake3-Merkle [`ProofVerifier`] for the contract. Pure and deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MerkleVerifier {
    leaves: u32,
}

impl Default for MerkleVerifier {
    fn default() -> Self {
        Self {
            leaves: ORDER_LEAVES,
        }
    }
}

impl MerkleVerifier {
    /// The verifier with [`ORDER_LEAVES`] leaves per challenge.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier sampling `leaves` leaves per challenge (1..=8), for networks that want a
    /// faster catch rate at a larger proof.
    pub fn with_leaves(leaves: u32) -> Result<Self, ChallengeError> {
        if !(1..=MAX_LEAVES_PER_SHARD).contains(&leaves) {
            return Err(ChallengeError::Param {
                name: "leaves_per_shard",
                value: leaves,
                max: MAX_LEAVES_PER_SHARD,
            });
        }
        Ok(Self { leaves })
    }

    /// Leaves sampled per challenge.
    pub fn leaves(&self) -> u32 {
        self.leaves
    }

    /// Builds the proof for `challenge` from the shard's bytes, with this verifier's sampling.
    pub fn prove(
        &self,
        challenge: &contract::Challenge,
        shard: &[u8],
    ) -> Result<Vec<u8>, ProveError> {
        prove_order(challenge, self.leaves, shard)
    }
}

impl ProofVerifier for MerkleVerifier {
    fn verify(&self, challenge: &contract::Challenge, proof: &[u8]) -> Result<(), ProofError> {
        let proof = StorageProof::from_bytes(proof)?;
        verify(&order_item(challenge, self.leaves), &proof)
    }
}

#[cfg(test)]
mod tests;

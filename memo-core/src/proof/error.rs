//! Errors of proof verification, proof generation, challenge derivation and placement.

use crate::id::{AccountId, ShardId};
use crate::wire::WireError;

/// A storage proof (or a response carrying proofs) does not check out against its challenge.
///
/// Every variant means "the provider did not prove the challenged data"; the variants say why,
/// so a contract can tell a malformed submission from a provider that answered for the wrong
/// shard, leaf or epoch, or whose data no longer hashes to the committed shard id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The proof is for a different shard than the one challenged.
    #[error("proof is for shard {found:?}, challenge is for {expected:?}")]
    WrongShard {
        /// The challenged shard.
        expected: ShardId,
        /// The shard the proof names.
        found: ShardId,
    },
    /// The proof states a different shard length than the committed one.
    #[error("shard {shard:?}: proof states length {found}, committed length is {expected}")]
    WrongLength {
        /// The shard.
        shard: ShardId,
        /// The committed length.
        expected: u64,
        /// The length the proof states.
        found: u64,
    },
    /// The proof carries a different number of leaves than were challenged.
    #[error("shard {shard:?}: {found} leaves proved, {expected} challenged")]
    LeafCount {
        /// The shard.
        shard: ShardId,
        /// Leaves challenged.
        expected: usize,
        /// Leaves in the proof.
        found: usize,
    },
    /// A leaf proof is for another leaf than the one challenged at that position.
    #[error("shard {shard:?}: proof for leaf {found}, challenge asks for leaf {expected}")]
    WrongLeafIndex {
        /// The shard.
        shard: ShardId,
        /// The challenged leaf index.
        expected: u64,
        /// The leaf index in the proof.
        found: u64,
    },
    /// A leaf's bytes are not as long as that leaf is in a shard of the committed length.
    #[error("shard {shard:?} leaf {index}: {found} bytes, the leaf has {expected}")]
    LeafLength {
        /// The shard.
        shard: ShardId,
        /// The leaf index.
        index: u64,
        /// The leaf's length in a shard of the committed length.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A leaf's path has the wrong number of nodes for its position in the tree.
    #[error("shard {shard:?} leaf {index}: path of {found} nodes, the tree needs {expected}")]
    PathLength {
        /// The shard.
        shard: ShardId,
        /// The leaf index.
        index: u64,
        /// Nodes the tree shape requires.
        expected: usize,
        /// Nodes given.
        found: usize,
    },
    /// The leaf and its path do not hash to the shard id: the data or the path is wrong.
    #[error("shard {shard:?} leaf {index}: leaf and path do not hash to the shard id")]
    PathMismatch {
        /// The shard.
        shard: ShardId,
        /// The leaf index.
        index: u64,
    },
    /// A challenged leaf index lies outside the shard (a malformed challenge).
    #[error("shard {shard:?}: leaf {index} is outside a shard of {leaves} leaves")]
    LeafOutOfRange {
        /// The shard.
        shard: ShardId,
        /// The leaf index.
        index: u64,
        /// Leaves in the shard.
        leaves: u64,
    },
    /// The response answers another epoch's challenge (e.g. a replayed old response).
    #[error("response is for epoch {found}, challenge is for epoch {expected}")]
    WrongEpoch {
        /// The challenged epoch.
        expected: u64,
        /// The epoch the response names.
        found: u64,
    },
    /// The response is from or for another provider.
    #[error("response names provider {found:?}, challenge is for {expected:?}")]
    WrongProvider {
        /// The challenged provider.
        expected: AccountId,
        /// The provider the response names.
        found: AccountId,
    },
    /// The response carries a different number of shard proofs than were challenged.
    #[error("{found} shard proofs in the response, {expected} challenged")]
    ItemCount {
        /// Shards challenged.
        expected: usize,
        /// Shard proofs given.
        found: usize,
    },
    /// The bytes are not a valid encoding of a proof or response.
    #[error(transparent)]
    Malformed(#[from] WireError),
}

/// A provider could not build a proof from its store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// A requested leaf lies outside the shard.
    #[error("leaf {index} is outside a shard of {leaves} leaves")]
    LeafOutOfRange {
        /// The leaf index.
        index: u64,
        /// Leaves in the shard.
        leaves: u64,
    },
    /// The stored shard (or tree cache) has another length than the challenge states.
    #[error("stored shard has {found} bytes, the challenge states {expected}")]
    WrongLength {
        /// The length the challenge states.
        expected: u64,
        /// The stored length.
        found: u64,
    },
    /// The tree cache belongs to another shard.
    #[error("tree cache is for shard {found:?}, not {expected:?}")]
    WrongShard {
        /// The shard asked for.
        expected: ShardId,
        /// The shard the cache describes.
        found: ShardId,
    },
    /// Reading the shard from the store failed.
    #[error("reading {len} bytes at offset {offset}: {reason}")]
    Read {
        /// Offset of the failed read.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The store's message.
        reason: String,
    },
    /// A tree cache does not hash to the shard id it claims, or its shape does not fit.
    #[error("tree cache does not match shard {shard:?}: {reason}")]
    BadCache {
        /// The shard.
        shard: ShardId,
        /// What is wrong.
        reason: String,
    },
    /// The cache's group size is outside the supported range.
    #[error("tree cache group of 2^{log2} leaves is outside 2^0..=2^{max}")]
    GroupSize {
        /// The requested log2 of leaves per group.
        log2: u8,
        /// The largest supported log2.
        max: u8,
    },
    /// Tree cache bytes are not a valid encoding.
    #[error(transparent)]
    Malformed(#[from] WireError),
}

/// Challenge parameters or a provider's commitment list are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// A parameter is out of its range.
    #[error("challenge parameter {name} = {value} is outside 1..={max}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: u32,
        /// The largest allowed value.
        max: u32,
    },
    /// The same shard is committed twice with different lengths.
    #[error("shard {shard:?} is committed with two lengths ({a} and {b})")]
    ConflictingLength {
        /// The shard.
        shard: ShardId,
        /// One length.
        a: u64,
        /// The other.
        b: u64,
    },
}

/// Providers could not be chosen for a chunk's shards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Fewer eligible providers than shards: a chunk never puts two shards on one provider.
    #[error("{needed} shards need {needed} distinct providers, only {eligible} are eligible")]
    NotEnoughProviders {
        /// Shards to place.
        needed: usize,
        /// Eligible providers.
        eligible: usize,
    },
}

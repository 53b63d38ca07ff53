//! Proofs of storage: a provider proves each epoch that it still holds the shards it is paid for.
//!
//! * **Commitment.** None beyond the shard id: `ShardId = blake3(shard)` is already the root of
//!   blake3's Merkle tree over the shard's 1 KiB chunks ([`tree`]), so the ledger checks proofs
//!   against the ids it records in placements, and no extra tree root is stored anywhere.
//! * **Challenge.** [`Challenge::derive`] turns the epoch's block hash, the provider and the
//!   epoch into a seed ([`challenge_seed`]) that picks some of the provider's committed shards and
//!   leaves inside each; nobody knows them before the block exists.
//! * **Proof.** For each sampled leaf: its bytes and the sibling chaining values up to the root
//!   ([`StorageProof`], grouped per epoch in a [`ProofResponse`]); about 1.3 KiB per leaf of a
//!   256 KiB shard. A provider builds them from its store ([`ShardReader`]) and a small
//!   [`TreeCache`] so it reads 16 KiB per proof instead of the whole shard.
//! * **Verification.** [`verify`] / [`verify_response`] are pure functions with typed
//!   errors ([`ProofError`]); a contract calls them inside its transaction.
//! * **On the ledger.** [`MerkleVerifier`] is the contract's
//!   [`ProofVerifier`](crate::contract::ProofVerifier): each live, committed order is challenged
//!   once per epoch ([`order_item`] draws its leaves from the contract's seed), the provider
//!   answers with [`prove_order`] in a `SubmitProof` transaction, and the ledger checks it.
//! * **Reputation and placement.** [`Reputation`] scores providers from their proof outcomes;
//!   [`place`] picks distinct providers for a chunk's shards, weighted by score.
//!
//! ```
//! use memo_core::proof::{Challenge, ChallengeParams, CommittedShard, ProofResponse, verify_response};
//! use memo_core::{AccountId, ShardId};
//! let shard = vec![7u8; 10_000];
//! let committed = [CommittedShard { shard: ShardId::of(&shard), shard_len: shard.len() as u64 }];
//! let provider = AccountId([1; 32]);
//! let ch = Challenge::derive(&[42; 32], provider, 5, &committed, &ChallengeParams::default())?;
//! let resp = ProofResponse::prove(&ch, |_item| Ok((&shard[..], None)))?;
//! verify_response(&ch, &resp)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod challenge;
mod error;
mod reputation;
pub mod tree;
mod verifier;

pub use challenge::{
    Challenge, ChallengeItem, ChallengeParams, CommittedShard, MAX_LEAVES_PER_SHARD,
    MAX_RESPONSE_BYTES, MAX_SHARDS_PER_CHALLENGE, MAX_STORAGE_PROOF_BYTES, PROOF_FORMAT_VERSION,
    ProofResponse, StorageProof, challenge_seed, verify, verify_response, verify_response_items,
};
pub use error::{ChallengeError, PlacementError, ProofError, ProveError};
pub use reputation::{
    DEFAULT_DECAY_PPM, Outcome, PPM, ProviderRecord, Reputation, ReputationParams, Score, place,
};
pub use tree::{LEAF_LEN, LeafProof, ReadFn, ShardReader, TreeCache};
pub use verifier::{
    MerkleVerifier, ORDER_LEAVES, order_item, prove_order, prove_order_from_reader,
};

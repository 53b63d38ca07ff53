//! Errors of the object codec.

use crate::id::ChunkId;
use crate::wire::WireError;

/// Why encoding or decoding an object failed. Every variant names its cause; none of them
/// is ever raised after wrong bytes were written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The erasure-coding or chunking parameters are out of range.
    #[error("invalid codec parameters: {0}")]
    InvalidParams(String),
    /// The input had no bytes: memo stores no empty objects.
    #[error("nothing to store: the input is empty")]
    EmptyObject,
    /// A chunk reference (from a manifest or an object reference) is inconsistent.
    #[error("invalid chunk reference {chunk:?}: {reason}")]
    InvalidChunkRef {
        /// The chunk.
        chunk: ChunkId,
        /// What is wrong.
        reason: String,
    },
    /// Fewer than k shards of a chunk could be found that match their ids.
    #[error(
        "chunk {chunk:?}: only {good} good shards of the {needed} needed ({rejected} rejected as corrupt or foreign, {missing} missing)"
    )]
    NotEnoughShards {
        /// The chunk.
        chunk: ChunkId,
        /// k.
        needed: usize,
        /// Shards that matched their ids.
        good: usize,
        /// Shards whose bytes did not match their ids.
        rejected: usize,
        /// Shards that could not be fetched.
        missing: usize,
    },
    /// The rebuilt ciphertext does not hash to the chunk id.
    #[error("chunk {0:?}: rebuilt bytes do not match the chunk id")]
    ChunkMismatch(ChunkId),
    /// Authenticated decryption failed: the key is wrong or the data was altered.
    #[error("chunk {0:?}: decryption failed (wrong key or altered data)")]
    Decrypt(ChunkId),
    /// The manifest decrypted but is not a valid manifest.
    #[error("manifest is malformed: {0}")]
    Manifest(#[from] WireError),
    /// The manifest decoded but contradicts itself or the object reference.
    #[error("manifest is inconsistent: {0}")]
    ManifestInconsistent(String),
    /// An object reference string could not be parsed.
    #[error("bad object reference: {0}")]
    BadObjectRef(String),
    /// Reading the input, writing the output, or a shard sink or source failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

//! The messages nodes exchange over a [`Transport`](crate::transport::Transport).
//!
//! Every message is a [`Request`] or a [`Response`], encoded canonically behind a one-byte
//! protocol version ([`PROTOCOL_VERSION`]); a peer speaking another version gets a typed
//! error, never a misread message. Sizes are bounded by the transport before decoding.

use crate::codec::MAX_SHARDS;
use crate::id::{AccountId, ChunkId, ObjectId, ShardId};
use crate::ownership::ChunkInfo;
use crate::transport::MAX_MESSAGE;
use crate::wire::{self, WireError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version of the node protocol.
pub const PROTOCOL_VERSION: u8 = 1;
/// Most chunks one placement or location request may name.
pub const MAX_CHUNKS_PER_REQUEST: usize = 4096;

/// Where one chunk's shards live: `holders[i]` holds shard `i` (if anyone does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlacement {
    /// The chunk.
    pub chunk: ChunkId,
    /// The holder of each shard index.
    pub holders: Vec<Option<AccountId>>,
}

/// An object in a user's index, as a keeper lists it. The name and the read handle are sealed
/// with a key only the user has; the keeper sees ids and sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// The object.
    pub id: ObjectId,
    /// Its size in bytes.
    pub size: u64,
    /// How many times this user stored it (its reference count on the manifest chunk).
    pub refs: u64,
    /// The user's sealed name and object reference.
    pub sealed: Vec<u8>,
}

/// The health of one chunk, for `stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkStatus {
    /// The chunk.
    pub chunk: ChunkId,
    /// k.
    pub needed: u8,
    /// k + m.
    pub total: u8,
    /// Shards believed held.
    pub healthy: u8,
    /// Holder of each shard index.
    pub holders: Vec<Option<AccountId>>,
}

/// A user's account as a keeper reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    /// The user.
    pub user: AccountId,
    /// Ledger balance.
    pub balance: u64,
    /// Bytes charged (reference-weighted stored bytes).
    pub stored_bytes: u64,
    /// Most bytes the user may store.
    pub quota: u64,
    /// Objects in the user's index.
    pub objects: u64,
}

/// A request to a provider or a keeper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Provider: store a shard (the provider checks it hashes to `shard`).
    PutShard {
        /// The shard id.
        shard: ShardId,
        /// Its bytes.
        bytes: Bytes,
    },
    /// Provider: return a shard's bytes.
    GetShard {
        /// The shard id.
        shard: ShardId,
    },
    /// Provider: delete shards (keepers only).
    DeleteShards {
        /// The shards.
        shards: Vec<ShardId>,
    },
    /// Provider: report capacity and usage.
    ProviderStatus,
    /// Provider: answer a storage challenge for the given epoch (keepers only). The body is a
    /// canonical challenge as the proofs module defines it.
    Prove {
        /// The encoded challenge.
        challenge: Vec<u8>,
    },
    /// Keeper: choose holders for chunks a put introduces; known chunks come back as known.
    Place {
        /// The chunks, with their shard ids.
        chunks: Vec<ChunkInfo>,
    },
    /// Keeper: where each chunk's shards are.
    Locate {
        /// The chunks.
        chunks: Vec<ChunkId>,
    },
    /// Keeper: relay a signed ledger transaction (canonical bytes) and wait until it is in a
    /// block.
    Submit {
        /// The encoded signed transaction.
        tx: Vec<u8>,
    },
    /// Keeper: the caller's objects.
    ListObjects,
    /// Keeper: one of the caller's objects with its chunks' health.
    StatObject {
        /// The object.
        id: ObjectId,
    },
    /// Keeper: the caller's account.
    Account,
    /// Keeper: shards the caller could not read (missing or altered); the keeper checks each
    /// before believing it. Answered with [`Response::Done`].
    ReportShards {
        /// At most [`crate::repair::MAX_REPORTS`] reports.
        reports: Vec<crate::repair::ShardReport>,
    },
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Done,
    /// A shard's bytes, or `None` if not held.
    Shard(Option<Bytes>),
    /// A shard was stored (`true`) or already held (`false`).
    Stored(bool),
    /// How many shards were deleted.
    Deleted(u64),
    /// Provider capacity and usage.
    ProviderStatus {
        /// Bytes offered.
        capacity: u64,
        /// Bytes used.
        used: u64,
        /// Shards held.
        shards: u64,
    },
    /// An encoded storage proof.
    Proof(Vec<u8>),
    /// Placement for the chunks of a [`Request::Place`], in order: `None` for a chunk already
    /// stored (no data moves).
    Placed(Vec<Option<ChunkPlacement>>),
    /// Locations for a [`Request::Locate`], in order: `None` for an unknown chunk.
    Located(Vec<Option<ChunkPlacement>>),
    /// The outcome of a submitted transaction: its hash and height, or why it was refused.
    Submitted {
        /// Transaction digest.
        tx: [u8; 32],
        /// The block it landed in.
        height: u64,
    },
    /// The caller's objects.
    Objects(Vec<ObjectEntry>),
    /// One object with its chunks.
    Object {
        /// The object.
        entry: ObjectEntry,
        /// Its chunks' health, manifest chunk last.
        chunks: Vec<ChunkStatus>,
    },
    /// The caller's account.
    Account(AccountStatus),
    /// The request was refused or failed.
    Error(RemoteError),
}

/// Why a node refused a request. `code` lets callers act without parsing `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct RemoteError {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Kinds of [`RemoteError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The sender may not make this request (e.g. delete shards without being a keeper).
    Forbidden,
    /// The request names something that does not exist.
    NotFound,
    /// The request is malformed or inconsistent.
    BadRequest,
    /// The ownership rules refused it (not an owner, quota exceeded, ...).
    Refused,
    /// The ledger rejected the transaction.
    Rejected,
    /// The node lacks space or providers.
    Unavailable,
    /// Something failed inside the node.
    Internal,
}

impl RemoteError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl Request {
    /// Canonical bytes behind the protocol version.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(PROTOCOL_VERSION, self)
    }
    /// Decodes and bounds-checks a request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Request = wire::decode_versioned(bytes, PROTOCOL_VERSION, MAX_MESSAGE, "request")?;
        let too_many = |n: usize, max: usize| n > max;
        let bad = match &r {
            Request::DeleteShards { shards } => {
                too_many(shards.len(), MAX_CHUNKS_PER_REQUEST * MAX_SHARDS)
            }
            Request::Place { chunks } => {
                too_many(chunks.len(), MAX_CHUNKS_PER_REQUEST)
                    || chunks.iter().any(|c| c.shards.len() > MAX_SHARDS)
            }
            Request::Locate { chunks } => too_many(chunks.len(), MAX_CHUNKS_PER_REQUEST),
            Request::ReportShards { reports } => {
                too_many(reports.len(), crate::repair::MAX_REPORTS)
            }
            _ => false,
        };
        if bad {
            return Err(WireError::Malformed {
                what: "request",
                reason: "too many items".into(),
            });
        }
        Ok(r)
    }
}

impl Response {
    /// Canonical bytes behind the protocol version.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(PROTOCOL_VERSION, self)
    }
    /// Decodes a response.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_versioned(bytes, PROTOCOL_VERSION, MAX_MESSAGE, "response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_version_check() {
        let r = Request::PutShard {
            shard: ShardId([1; 32]),
            bytes: Bytes::from_static(b"abc"),
        };
        let b = r.to_bytes();
        assert_eq!(Request::from_bytes(&b).unwrap(), r);
        let mut v2 = b.clone();
        v2[0] = 2;
        assert!(matches!(
            Request::from_bytes(&v2),
            Err(WireError::Version { .. })
        ));
        let resp = Response::Error(RemoteError::new(ErrorCode::Refused, "not an owner"));
        assert_eq!(Response::from_bytes(&resp.to_bytes()).unwrap(), resp);
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::from_bytes(&bytes);
            let _ = Response::from_bytes(&bytes);
        }
    }
}

//! The messages nodes exchange over a [`Transport`](crate::transport::Transport).
//!
//! Every message is a [`Request`] or a [`Response`], encoded canonically behind a one-byte
//! protocol version ([`PROTOCOL_VERSION`]); a peer speaking another version gets a typed
//! error, never a misread message. Sizes are bounded by the transport before decoding.

use crate::codec::MAX_SHARDS;
use crate::id::{AccountId, ChunkId, ObjectId, ShardId};
use crate::identity::Signed;
use crate::ownership::ChunkInfo;
use crate::ticket::{Receipt, Ticket};
use crate::transport::MAX_MESSAGE;
use crate::wire::{self, WireError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version of the node protocol.
pub const PROTOCOL_VERSION: u8 = 2;
/// Most chunks one placement or location request may name.
pub const MAX_CHUNKS_PER_REQUEST: usize = 4096;
/// Most log entries or blocks one read request may ask for (and one response may carry).
pub const MAX_ENTRIES_PER_READ: u32 = 4096;
/// Most transactions in one [`Request::LedgerSubmitAll`].
pub const MAX_TXS_PER_SUBMIT: usize = 1024;

/// Where one chunk's shards live: `holders[i]` holds shard `i` (if anyone does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlacement {
    /// The chunk.
    pub chunk: ChunkId,
    /// The holder of each shard index.
    pub holders: Vec<Option<AccountId>>,
}

/// A keeper's placement of a new chunk with its ticket, which lets the user upload shard `i`
/// to `placement.holders[i]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Where each shard goes.
    pub placement: ChunkPlacement,
    /// The keeper's ticket for the chunk.
    pub ticket: Signed<Ticket>,
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
    /// The user's sealed names and object reference: one per reference, oldest first (a put
    /// adds one, a delete removes one).
    pub sealed: Vec<Vec<u8>>,
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
    /// Health of each shard index (meaningful where a holder is set).
    pub health: Vec<crate::ownership::ShardHealth>,
    /// Why the answering keeper could not repair it yet, if it tried and failed.
    pub why: Option<String>,
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
    /// Storage orders of the user that lapsed recently because its balance could not renew
    /// them (filled in by a client with a ledger; the data they paid for is unpaid now).
    pub lapsed_orders: u64,
}

/// A request to a provider or a keeper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Provider: store a shard (the provider checks it hashes to `shard`). A user's put needs
    /// a keeper's ticket for this shard, uploader and provider; a keeper's needs none. The
    /// answer is [`Response::Stored`] with the provider's receipt.
    PutShard {
        /// The shard id.
        shard: ShardId,
        /// The keeper's ticket ([`crate::ticket`]).
        ticket: Option<Signed<Ticket>>,
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
        /// Providers not to choose (they refused this client's shards: full or gone).
        exclude: Vec<AccountId>,
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
    /// Op-log sequencer: append a signed object operation (canonical bytes of a
    /// `Signed<ObjectOp>`); the answer is [`Response::OpAppended`].
    OpAppend {
        /// The encoded signed operation.
        op: Vec<u8>,
    },
    /// Op log: entries from position `from` on, at most `max` of them; if none exist yet,
    /// the server may hold the request up to `wait_ms` for one to arrive (long poll). The
    /// answer is [`Response::OpEntries`].
    OpRead {
        /// First position wanted.
        from: u64,
        /// Most entries wanted (at most [`MAX_ENTRIES_PER_READ`]).
        max: u32,
        /// Longest wait for a first entry, in milliseconds (the server caps it).
        wait_ms: u32,
    },
    /// Ledger: queue a signed transaction (canonical bytes of a `SignedTx`).
    LedgerSubmit {
        /// The encoded signed transaction.
        tx: Vec<u8>,
    },
    /// Ledger: what became of a submitted transaction.
    LedgerTxStatus {
        /// The transaction hash.
        hash: [u8; 32],
    },
    /// Ledger: read the state (canonical bytes of a contract `Query`).
    LedgerQuery {
        /// The encoded query.
        query: Vec<u8>,
    },
    /// Ledger: the head block.
    LedgerHead,
    /// Ledger: committed blocks from height `from` on, at most `max`.
    LedgerBlocks {
        /// First height wanted.
        from: u64,
        /// Most blocks wanted (at most [`MAX_ENTRIES_PER_READ`]).
        max: u32,
    },
    /// Keeper: shards the caller could not read (missing or altered); the keeper checks each
    /// before believing it. Answered with [`Response::Done`].
    ReportShards {
        /// At most [`crate::repair::MAX_REPORTS`] reports.
        reports: Vec<crate::repair::ShardReport>,
    },
    /// Provider: the ids of the shards it holds, in id order, after `after` (keepers only).
    /// Answered with [`Response::ShardList`].
    ListShards {
        /// Start after this id (`None`: from the first).
        after: Option<ShardId>,
        /// Most ids wanted (at most [`MAX_ENTRIES_PER_READ`]).
        max: u32,
    },
    /// Provider: delete those of `shards` that nobody has stored for `idle_ms` milliseconds
    /// (keepers only; a keeper's sweep of shards no chunk places here). A shard stored (or
    /// stored again) within that time is kept. Answered with [`Response::Deleted`].
    SweepShards {
        /// Shards the keeper found unplaced.
        shards: Vec<ShardId>,
        /// How long a shard must have gone unstored to be deleted.
        idle_ms: u64,
    },
    /// Provider: [`crate::ticket::possession_proof`] of each named shard under its key
    /// (keepers only: a keeper checks a user's proof of possession). Answered with
    /// [`Response::Possession`].
    ProvePossession {
        /// Shards and keys, at most [`MAX_CHUNKS_PER_REQUEST`].
        shards: Vec<(ShardId, [u8; 32])>,
    },
    /// Provider: the caller takes back its uploads of `shards` (its put failed before it was
    /// submitted); each shard no other uploader holds a ticket for, and that no put registered,
    /// is deleted. Answered with [`Response::Deleted`].
    Withdraw {
        /// At most [`MAX_CHUNKS_PER_REQUEST`] shards.
        shards: Vec<ShardId>,
    },
    /// Keeper: which of `shards` the registry places on the caller (a provider reclaiming
    /// shards whose tickets expired). Answered with [`Response::Registered`].
    Registered {
        /// Shards the caller holds, at most [`MAX_CHUNKS_PER_REQUEST`].
        shards: Vec<ShardId>,
    },
    /// Provider: admit one connection on the provider's shard lane, a direct TCP channel for
    /// shard bytes encrypted with keys derived from `secret`. Sent over the authenticated
    /// transport, so the lane's requests count as the sender's. Answered with
    /// [`Response::Lane`].
    OpenLane {
        /// The connection's secret, chosen at random by the caller.
        secret: LaneSecret,
    },
    /// A message of the keepers' consensus group (vote, log replication, snapshot), encoded
    /// by the consensus engine. Only members of the group are heard. Answered with
    /// [`Response::Raft`].
    Raft {
        /// The engine's message.
        rpc: Vec<u8>,
    },
    /// Keeper: how it sees its consensus group. Answered with [`Response::Group`].
    GroupStatus,
    /// Keeper: the nodes it knows and where they are reached, and which node serves the
    /// ledger, so that a client that knows one keeper's address finds the rest. Answered
    /// with [`Response::Directory`].
    Directory,
    /// Ledger: the statuses of transactions (at most [`MAX_TXS_PER_SUBMIT`]), answered with
    /// [`Response::LedgerTxStatuses`] once every one is included or rejected, or after
    /// `within_ms` (the server may wait less), whichever comes first.
    LedgerTxWait {
        /// The transaction hashes.
        hashes: Vec<[u8; 32]>,
        /// The longest wait, in milliseconds.
        within_ms: u32,
    },
    /// Ledger: queue transactions in this order (one sender's consecutive nonces, say), each
    /// in canonical bytes, at most [`MAX_TXS_PER_SUBMIT`]. Answered with
    /// [`Response::LedgerSubmittedAll`].
    LedgerSubmitAll {
        /// The encoded transactions.
        txs: Vec<Vec<u8>>,
    },
}

impl Request {
    /// A short name of a request kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PutShard { .. } => "PutShard",
            Self::GetShard { .. } => "GetShard",
            Self::DeleteShards { .. } => "DeleteShards",
            Self::ProviderStatus => "ProviderStatus",
            Self::Prove { .. } => "Prove",
            Self::Place { .. } => "Place",
            Self::Locate { .. } => "Locate",
            Self::Submit { .. } => "Submit",
            Self::ListObjects => "ListObjects",
            Self::StatObject { .. } => "StatObject",
            Self::Account => "Account",
            Self::OpAppend { .. } => "OpAppend",
            Self::OpRead { .. } => "OpRead",
            Self::LedgerSubmit { .. } => "LedgerSubmit",
            Self::LedgerTxStatus { .. } => "LedgerTxStatus",
            Self::LedgerQuery { .. } => "LedgerQuery",
            Self::LedgerHead => "LedgerHead",
            Self::LedgerBlocks { .. } => "LedgerBlocks",
            Self::ReportShards { .. } => "ReportShards",
            Self::ListShards { .. } => "ListShards",
            Self::SweepShards { .. } => "SweepShards",
            Self::OpenLane { .. } => "OpenLane",
            Self::Raft { .. } => "Raft",
            Self::GroupStatus => "GroupStatus",
            Self::Directory => "Directory",
            Self::ProvePossession { .. } => "ProvePossession",
            Self::Registered { .. } => "Registered",
            Self::Withdraw { .. } => "Withdraw",
            Self::LedgerTxWait { .. } => "LedgerTxWait",
            Self::LedgerSubmitAll { .. } => "LedgerSubmitAll",
        }
    }
}

/// A shard lane connection's secret (see [`Request::OpenLane`]); `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneSecret(pub [u8; 32]);

impl std::fmt::Debug for LaneSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaneSecret(..)")
    }
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Done,
    /// A shard's bytes, or `None` if not held.
    Shard(Option<Bytes>),
    /// A shard was stored (`new`) or already held, with the provider's receipt for a ticketed
    /// put.
    Stored {
        /// Whether the bytes were new here.
        new: bool,
        /// The provider's signed receipt (`None` for a keeper's unticketed put).
        receipt: Option<Signed<Receipt>>,
    },
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
        /// Bytes it can still take: what is left of the capacity, bounded by its disk's free
        /// space. Keepers place nothing on a provider without room for a shard.
        room: u64,
    },
    /// An encoded storage proof.
    Proof(Vec<u8>),
    /// Placement for the chunks of a [`Request::Place`], in order: `None` for a chunk already
    /// stored (no data moves).
    Placed(Vec<Option<Grant>>),
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
    /// The position a [`Request::OpAppend`] got in the log.
    OpAppended(u64),
    /// Entries for a [`Request::OpRead`]: `entries[i]` (canonical bytes of a
    /// `Signed<ObjectOp>`) is at position `from + i`; `len` is the log's length when read.
    OpEntries {
        /// Position of the first entry.
        from: u64,
        /// The encoded entries, in order.
        entries: Vec<Vec<u8>>,
        /// The log's length.
        len: u64,
    },
    /// The hash of a transaction a [`Request::LedgerSubmit`] queued.
    LedgerSubmitted([u8; 32]),
    /// A transaction's status (the ledger's canonical encoding).
    LedgerTxStatus(Vec<u8>),
    /// The answer to a [`Request::LedgerQuery`] (canonical bytes of a contract `Answer`).
    LedgerAnswer(Vec<u8>),
    /// The head (the ledger's canonical encoding).
    LedgerHead(Vec<u8>),
    /// Blocks for a [`Request::LedgerBlocks`], in height order from the height asked (the
    /// ledger's canonical block encoding); fewer than asked at the head or at the size limit.
    LedgerBlocks(Vec<Vec<u8>>),
    /// Shard ids for a [`Request::ListShards`]; fewer than asked at the end.
    ShardList(Vec<ShardId>),
    /// Answers to a [`Request::Registered`], in order: whether the registry places the shard on
    /// the caller.
    Registered(Vec<bool>),
    /// Answers to a [`Request::ProvePossession`], in order: `None` for a shard not held.
    Possession(Vec<Option<[u8; 32]>>),
    /// Where to connect for a [`Request::OpenLane`]: the lane's `host:port`, and the
    /// single-use ticket that opens the connection (valid for a short while).
    Lane {
        /// The lane's address.
        address: String,
        /// The ticket.
        ticket: [u8; 16],
    },
    /// The consensus engine's answer to a [`Request::Raft`].
    Raft(Vec<u8>),
    /// A keeper's view of its consensus group, for [`Request::GroupStatus`].
    Group(GroupInfo),
    /// The nodes a keeper knows, for [`Request::Directory`]. Addresses are hints: a node is
    /// authenticated by its account when it is dialled, so a wrong address only fails.
    Directory {
        /// The nodes, the answering keeper first.
        peers: Vec<PeerEntry>,
        /// The node that serves the ledger (in a keeper group, the answering keeper), if
        /// the network has one.
        ledger: Option<AccountId>,
    },
    /// The hashes of a [`Request::LedgerSubmitAll`]'s transactions, all queued, in order.
    LedgerSubmittedAll(Vec<[u8; 32]>),
    /// The statuses for a [`Request::LedgerTxWait`], in order (the ledger's canonical
    /// encoding).
    LedgerTxStatuses(Vec<Vec<u8>>),
}

/// A node in a keeper's [`Response::Directory`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its name, as its operator configured it.
    pub name: String,
    /// Whether it is a keeper (otherwise a provider).
    pub keeper: bool,
    /// Its account.
    pub account: AccountId,
    /// Where it listens (a multiaddr).
    pub address: String,
}

/// How a keeper sees its consensus group (the keepers' Raft group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// `leader`, `follower`, `candidate`, `learner` or `stopped`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader this keeper knows of.
    pub leader: Option<AccountId>,
    /// The voting members.
    pub members: Vec<AccountId>,
    /// The last index of its Raft log.
    pub last_log_index: Option<u64>,
    /// The last index applied to its state.
    pub applied_index: Option<u64>,
    /// The Raft log index the last snapshot covers.
    pub snapshot_index: Option<u64>,
    /// The Raft log index up to which the log was compacted away: a member further behind
    /// catches up by installing a snapshot.
    pub purged_index: Option<u64>,
    /// Operations in its applied op log.
    pub ops: u64,
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
    /// A keeper cut off from its group's quorum: another keeper may answer.
    NoQuorum,
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

/// Bytes an encoded message takes besides its shard bytes, at most (tag, ids, lengths, and a
/// ticket of up to 8 shards or a receipt); a larger ticket grows the buffer once.
const ENVELOPE: usize = 1024;
/// The first byte of [`Request::PutShard`]'s encoding after the version (its variant index).
const PUT_SHARD_TAG: u8 = 0;
/// The first byte of [`Response::Shard`]'s encoding after the version (its variant index).
const SHARD_TAG: u8 = 1;

/// What follows the version and the variant tag, if `buf` is a message of variant `tag` of
/// this protocol version within [`MAX_MESSAGE`].
fn body_of(buf: &[u8], tag: u8) -> Option<&[u8]> {
    match buf {
        [PROTOCOL_VERSION, t, body @ ..] if *t == tag && buf.len() <= MAX_MESSAGE => Some(body),
        _ => None,
    }
}

impl Request {
    /// Canonical bytes behind the protocol version.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned_sized(PROTOCOL_VERSION, self, self.encoded_len_hint())
    }
    /// Appends [`Request::to_bytes`] to `out` (with [`Request::encoded_len_hint`] reserved, a
    /// shard's bytes are copied once).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        wire::encode_versioned_into(PROTOCOL_VERSION, self, out)
    }
    /// A capacity to encode into: for a shard put, at most 1 KiB more than its encoded length
    /// (at least that length for a ticket of up to 8 shards); for other requests a small start
    /// (the buffer grows as needed).
    pub fn encoded_len_hint(&self) -> usize {
        match self {
            Request::PutShard { bytes, .. } => ENVELOPE + bytes.len(),
            _ => ENVELOPE,
        }
    }
    /// [`Request::from_bytes`] of a shared buffer: a shard put's bytes come back as a slice
    /// of `buf` instead of a copy. Same results as `from_bytes` for every input.
    pub fn from_shared(buf: &Bytes) -> Result<Self, WireError> {
        if let Some(body) = body_of(buf, PUT_SHARD_TAG)
            && let Ok((shard, ticket, bytes)) =
                wire::decode::<(ShardId, Option<Signed<Ticket>>, &[u8])>(body, MAX_MESSAGE, "")
        {
            return Ok(Request::PutShard {
                shard,
                ticket,
                bytes: buf.slice_ref(bytes),
            });
        }
        Self::from_bytes(buf)
    }
    /// Decodes and bounds-checks a request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Request = wire::decode_versioned(bytes, PROTOCOL_VERSION, MAX_MESSAGE, "request")?;
        let too_many = |n: usize, max: usize| n > max;
        let bad = match &r {
            Request::DeleteShards { shards } => {
                too_many(shards.len(), MAX_CHUNKS_PER_REQUEST * MAX_SHARDS)
            }
            Request::Place { chunks, exclude } => {
                too_many(chunks.len(), MAX_CHUNKS_PER_REQUEST)
                    || too_many(exclude.len(), MAX_CHUNKS_PER_REQUEST)
                    || chunks.iter().any(|c| c.shards.len() > MAX_SHARDS)
            }
            Request::Locate { chunks } => too_many(chunks.len(), MAX_CHUNKS_PER_REQUEST),
            Request::OpRead { max, .. }
            | Request::LedgerBlocks { max, .. }
            | Request::ListShards { max, .. } => *max > MAX_ENTRIES_PER_READ,
            Request::SweepShards { shards, .. } => {
                too_many(shards.len(), MAX_CHUNKS_PER_REQUEST * MAX_SHARDS)
            }
            Request::ReportShards { reports } => {
                too_many(reports.len(), crate::repair::MAX_REPORTS)
            }
            Request::ProvePossession { shards } => too_many(shards.len(), MAX_CHUNKS_PER_REQUEST),
            Request::Registered { shards } | Request::Withdraw { shards } => {
                too_many(shards.len(), MAX_CHUNKS_PER_REQUEST)
            }
            Request::LedgerSubmitAll { txs } => too_many(txs.len(), MAX_TXS_PER_SUBMIT),
            Request::LedgerTxWait { hashes, .. } => too_many(hashes.len(), MAX_TXS_PER_SUBMIT),
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
    /// A refusal: [`Response::Error`] with `code` and `message`.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error(RemoteError::new(code, message))
    }

    /// Canonical bytes behind the protocol version.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned_sized(PROTOCOL_VERSION, self, self.encoded_len_hint())
    }
    /// Appends [`Response::to_bytes`] to `out` (see [`Request::encode_into`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        wire::encode_versioned_into(PROTOCOL_VERSION, self, out)
    }
    /// A capacity to encode into, as [`Request::encoded_len_hint`]: exact for a shard.
    pub fn encoded_len_hint(&self) -> usize {
        match self {
            Response::Shard(Some(bytes)) => ENVELOPE + bytes.len(),
            _ => ENVELOPE,
        }
    }
    /// [`Response::from_bytes`] of a shared buffer: a shard's bytes come back as a slice of
    /// `buf` instead of a copy. Same results as `from_bytes` for every input.
    pub fn from_shared(buf: &Bytes) -> Result<Self, WireError> {
        if let Some(body) = body_of(buf, SHARD_TAG)
            && let Ok(bytes) = wire::decode::<Option<&[u8]>>(body, MAX_MESSAGE, "")
        {
            return Ok(Response::Shard(bytes.map(|b| buf.slice_ref(b))));
        }
        Self::from_bytes(buf)
    }
    /// Decodes and bounds-checks a response.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Response = wire::decode_versioned(bytes, PROTOCOL_VERSION, MAX_MESSAGE, "response")?;
        let bad = match &r {
            Response::OpEntries { entries, .. } => entries.len() > MAX_ENTRIES_PER_READ as usize,
            Response::LedgerBlocks(blocks) => blocks.len() > MAX_ENTRIES_PER_READ as usize,
            Response::ShardList(ids) => ids.len() > MAX_ENTRIES_PER_READ as usize,
            Response::Possession(p) => p.len() > MAX_CHUNKS_PER_REQUEST,
            Response::Registered(r) => r.len() > MAX_CHUNKS_PER_REQUEST,
            Response::LedgerSubmittedAll(h) => h.len() > MAX_TXS_PER_SUBMIT,
            Response::LedgerTxStatuses(s) => s.len() > MAX_TXS_PER_SUBMIT,
            _ => false,
        };
        if bad {
            return Err(WireError::Malformed {
                what: "response",
                reason: "too many items".into(),
            });
        }
        Ok(r)
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
            ticket: None,
            bytes: Bytes::from_static(b"abc"),
        };
        let b = r.to_bytes();
        assert_eq!(Request::from_bytes(&b).unwrap(), r);
        let mut v2 = b.clone();
        v2[0] = PROTOCOL_VERSION + 1;
        assert!(matches!(
            Request::from_bytes(&v2),
            Err(WireError::Version { .. })
        ));
        let resp = Response::Error(RemoteError::new(ErrorCode::Refused, "not an owner"));
        assert_eq!(Response::from_bytes(&resp.to_bytes()).unwrap(), resp);
    }

    #[test]
    fn shard_messages_encode_in_one_buffer_of_the_hinted_size() {
        let shard = Bytes::from(vec![7u8; 1 << 20]);
        for (bytes, hint, back) in [
            {
                let r = Request::PutShard {
                    shard: ShardId([u8::MAX; 32]),
                    ticket: None,
                    bytes: shard.clone(),
                };
                let ok = |b: &[u8]| Request::from_bytes(b).unwrap() == r;
                (r.to_bytes(), r.encoded_len_hint(), ok(&r.to_bytes()))
            },
            {
                let r = Response::Shard(Some(shard.clone()));
                let ok = |b: &[u8]| Response::from_bytes(b).unwrap() == r;
                (r.to_bytes(), r.encoded_len_hint(), ok(&r.to_bytes()))
            },
        ] {
            assert!(back, "decodes to what was encoded");
            // The hint holds the whole message: a buffer of that capacity never reallocates.
            assert!(bytes.len() <= hint, "{} bytes, hint {hint}", bytes.len());
            assert!(hint - bytes.len() <= ENVELOPE);
            assert_eq!(bytes.capacity(), hint);
        }
        // `encode_into` appends to what the buffer holds.
        let r = Request::GetShard {
            shard: ShardId([3; 32]),
        };
        let mut out = b"head".to_vec();
        r.encode_into(&mut out);
        assert_eq!(&out[..4], b"head");
        assert_eq!(out[4..], r.to_bytes()[..]);
    }

    #[test]
    fn read_requests_and_responses_are_bounded() {
        let ok = Request::OpRead {
            from: 7,
            max: MAX_ENTRIES_PER_READ,
            wait_ms: 100,
        };
        assert_eq!(Request::from_bytes(&ok.to_bytes()).unwrap(), ok);
        for big in [
            Request::OpRead {
                from: 0,
                max: MAX_ENTRIES_PER_READ + 1,
                wait_ms: 0,
            },
            Request::LedgerBlocks {
                from: 1,
                max: MAX_ENTRIES_PER_READ + 1,
            },
        ] {
            assert!(matches!(
                Request::from_bytes(&big.to_bytes()),
                Err(WireError::Malformed { .. })
            ));
        }
        let many = Response::OpEntries {
            from: 0,
            entries: vec![Vec::new(); MAX_ENTRIES_PER_READ as usize + 1],
            len: 0,
        };
        assert!(Response::from_bytes(&many.to_bytes()).is_err());
        let fine = Response::LedgerBlocks(vec![vec![1, 2, 3]]);
        assert_eq!(Response::from_bytes(&fine.to_bytes()).unwrap(), fine);
    }

    /// `from_shared` decodes as `from_bytes` does, and a shard's bytes share the buffer.
    fn shared_agrees(buf: &[u8]) {
        let shared = Bytes::copy_from_slice(buf);
        let within = |b: &Bytes| {
            let range = shared.as_ptr_range();
            b.is_empty() || (range.contains(&b.as_ptr()) && b.as_ptr_range().end <= range.end)
        };
        let req = Request::from_shared(&shared);
        assert_eq!(req, Request::from_bytes(buf));
        if let Ok(Request::PutShard { bytes, .. }) = &req {
            assert!(within(bytes), "a put's shard is not copied");
        }
        let resp = Response::from_shared(&shared);
        assert_eq!(resp, Response::from_bytes(buf));
        if let Ok(Response::Shard(Some(bytes))) = &resp {
            assert!(within(bytes), "a shard response is not copied");
        }
    }

    #[test]
    fn shared_decoding_slices_shards_and_agrees_on_everything_else() {
        let shard = Bytes::from(vec![9u8; 300_000]);
        let ticket = Signed::sign(
            &crate::Keypair::from_seed("keeper"),
            &Ticket {
                chunk: ChunkId([3; 32]),
                shards: vec![(ShardId([4; 32]), AccountId([2; 32])); 6],
                size: 300_000,
                user: AccountId([1; 32]),
                expires_ms: 5,
            },
        );
        let msgs: Vec<Vec<u8>> = vec![
            Request::PutShard {
                shard: ShardId([4; 32]),
                ticket: Some(ticket),
                bytes: shard.clone(),
            }
            .to_bytes(),
            Request::PutShard {
                shard: ShardId([4; 32]),
                ticket: None,
                bytes: Bytes::new(),
            }
            .to_bytes(),
            Request::GetShard {
                shard: ShardId([4; 32]),
            }
            .to_bytes(),
            Response::Shard(Some(shard.clone())).to_bytes(),
            Response::Shard(None).to_bytes(),
            Response::Stored {
                new: true,
                receipt: None,
            }
            .to_bytes(),
        ];
        for m in &msgs {
            shared_agrees(m);
            // Cut short, with a byte too many, and under another version.
            shared_agrees(&m[..m.len() - 1]);
            shared_agrees(&[&m[..], &[0]].concat());
            shared_agrees(&[&[PROTOCOL_VERSION + 1], &m[1..]].concat());
        }
        let put = Bytes::from(msgs[0].clone());
        match Request::from_shared(&put).unwrap() {
            Request::PutShard { bytes, .. } => assert_eq!(bytes, shard),
            other => panic!("decoded {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::from_bytes(&bytes);
            let _ = Response::from_bytes(&bytes);
            shared_agrees(&bytes);
        }

        #[test]
        fn shard_messages_decode_shared(tag in 0u8..2, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Garbage behind a shard tag exercises the shared path's every exit.
            let mut m = vec![PROTOCOL_VERSION, tag];
            m.extend_from_slice(&body);
            shared_agrees(&m);
        }
    }
}

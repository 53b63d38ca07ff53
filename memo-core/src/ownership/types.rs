//! The records the three personas keep, and their canonical, versioned encodings.

use super::StoreError;
use crate::codec::{ChunkRef, MAX_SHARDS};
use crate::id::{AccountId, ChunkId, ShardId};
use crate::wire;
use serde::{Deserialize, Serialize};

/// Format version of persisted [`Account`] records.
pub const ACCOUNT_VERSION: u8 = 1;
/// Format version of persisted [`ChunkEntry`] records.
pub const CHUNK_ENTRY_VERSION: u8 = 1;
/// Upper bound of an encoded [`ChunkEntry`] (256 shards, each with id, holder and health).
pub const MAX_CHUNK_ENTRY_BYTES: usize = 16 + 10 + MAX_SHARDS * (32 + 33 + 1);
/// Upper bound of an encoded [`Account`].
pub const MAX_ACCOUNT_BYTES: usize = 32;

/// One chunk of an object, as the user's client describes it to the keeper.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// The chunk's id.
    pub id: ChunkId,
    /// Bytes stored for it across all its shards (what the owner is charged for).
    pub stored_bytes: u64,
    /// Its shard ids in shard-index order (data shards first, then parity).
    pub shards: Vec<ShardId>,
}

impl From<&ChunkRef> for ChunkInfo {
    fn from(c: &ChunkRef) -> Self {
        Self {
            id: c.id,
            stored_bytes: c.stored_bytes(),
            shards: c.shards.clone(),
        }
    }
}

/// The chunks of one object (its data chunks and its manifest chunk), in any order.
///
/// A chunk listed twice is referenced twice: putting the object raises the user's reference
/// count by two, deleting it lowers it by two.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ObjectChunks {
    /// The chunks, repeats included.
    pub chunks: Vec<ChunkInfo>,
}

impl ObjectChunks {
    /// An object made of these chunks.
    pub fn new(chunks: Vec<ChunkInfo>) -> Self {
        Self { chunks }
    }

    /// The chunks named by codec references (for example a manifest's chunks plus the
    /// manifest chunk itself).
    pub fn from_refs<'a>(refs: impl IntoIterator<Item = &'a ChunkRef>) -> Self {
        Self {
            chunks: refs.into_iter().map(ChunkInfo::from).collect(),
        }
    }

    /// Number of chunk references (repeats counted).
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True if the object names no chunk.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// A user's account (the MaidManager persona's per-user record).
///
/// The per-chunk reference counts live beside it in the store, keyed by (chunk, user).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Account {
    /// Bytes charged: the sum over the user's chunks of refcount × stored bytes.
    pub usage: u64,
    /// Most bytes the user may be charged for.
    pub quota: u64,
}

impl Account {
    /// Canonical, versioned bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(ACCOUNT_VERSION, self)
    }

    /// Decodes a record written by [`Account::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        wire::decode_versioned(bytes, ACCOUNT_VERSION, MAX_ACCOUNT_BYTES, "account").map_err(|e| {
            StoreError::Corrupt {
                what: "account",
                reason: e.to_string(),
            }
        })
    }
}

/// Health of one placed shard, as challenges and repair see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ShardHealth {
    /// Believed held (placed and not failing).
    Healthy,
    /// Failed a challenge or its holder is unreachable; not yet given up.
    Suspect,
    /// Gone: must be rebuilt and placed elsewhere.
    Lost,
}

/// One shard index of a registered chunk.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ShardSlot {
    /// The shard's id.
    pub id: ShardId,
    /// The provider holding it; `None` until placement is recorded.
    pub holder: Option<AccountId>,
    /// Its health (meaningful once placed).
    pub health: ShardHealth,
}

/// A chunk's registry entry (the DataManager persona's per-chunk record).
///
/// The chunk's owners are not stored here: they are exactly the users with a reference count
/// of at least one, kept in the store keyed by (chunk, user), so the owner set can never
/// disagree with the accounts.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Bytes stored for the chunk across all its shards.
    pub stored_bytes: u64,
    /// The chunk's shards by index, with their placement and health.
    pub shards: Vec<ShardSlot>,
}

impl ChunkEntry {
    /// A new entry for `info`, with no shard placed yet.
    pub fn unplaced(info: &ChunkInfo) -> Self {
        Self {
            stored_bytes: info.stored_bytes,
            shards: info
                .shards
                .iter()
                .map(|&id| ShardSlot {
                    id,
                    holder: None,
                    health: ShardHealth::Healthy,
                })
                .collect(),
        }
    }

    /// True if `info` describes this chunk (same stored size and shard ids).
    pub fn matches(&self, info: &ChunkInfo) -> bool {
        self.stored_bytes == info.stored_bytes
            && self.shards.len() == info.shards.len()
            && self
                .shards
                .iter()
                .zip(&info.shards)
                .all(|(s, id)| s.id == *id)
    }

    /// True if every shard has a holder.
    pub fn is_placed(&self) -> bool {
        self.shards.iter().all(|s| s.holder.is_some())
    }

    /// Shards placed and healthy.
    pub fn healthy_shards(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| s.holder.is_some() && s.health == ShardHealth::Healthy)
            .count()
    }

    /// Every placed shard as (holder, shard id): what a purge must delete.
    pub fn placed(&self) -> Vec<(AccountId, ShardId)> {
        self.shards
            .iter()
            .filter_map(|s| s.holder.map(|h| (h, s.id)))
            .collect()
    }

    /// Canonical, versioned bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(CHUNK_ENTRY_VERSION, self)
    }

    /// Decodes a record written by [`ChunkEntry::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let e: Self = wire::decode_versioned(
            bytes,
            CHUNK_ENTRY_VERSION,
            MAX_CHUNK_ENTRY_BYTES,
            "chunk entry",
        )
        .map_err(|e| StoreError::Corrupt {
            what: "chunk entry",
            reason: e.to_string(),
        })?;
        if e.shards.is_empty() || e.shards.len() > MAX_SHARDS {
            return Err(StoreError::Corrupt {
                what: "chunk entry",
                reason: format!("{} shards", e.shards.len()),
            });
        }
        Ok(e)
    }
}

/// Encodes a reference count as stored by durable backends (8 bytes, little endian).
pub fn refcount_to_bytes(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

/// Decodes a stored reference count; anything but 8 bytes holding a non-zero count is corrupt.
pub fn refcount_from_bytes(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "refcount",
        reason: format!("{} bytes, expected 8", bytes.len()),
    })?;
    match u64::from_le_bytes(arr) {
        0 => Err(StoreError::Corrupt {
            what: "refcount",
            reason: "zero count stored".into(),
        }),
        n => Ok(n),
    }
}

/// The store key of a reference count: chunk id then user id, so one chunk's owners are a
/// contiguous key range.
pub fn ref_key(chunk: &ChunkId, user: &AccountId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(chunk.as_bytes());
    k[32..].copy_from_slice(user.as_bytes());
    k
}

/// What an object's put did, and what must happen next.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PutPlan {
    /// Chunks nobody held: registered with no placement; they need placement and upload,
    /// then [`Ownership::record_placement`](super::Ownership::record_placement).
    pub new: Vec<ChunkInfo>,
    /// Chunks other users hold: the user became an owner, no data moves.
    pub shared: Vec<ChunkId>,
    /// Chunks the user already referenced: the reference count rose, no data moves.
    pub rereferenced: Vec<ChunkId>,
    /// The user's usage after the put.
    pub usage: u64,
}

impl PutPlan {
    /// True if any data must be uploaded.
    pub fn moves_data(&self) -> bool {
        !self.new.is_empty()
    }
}

/// A chunk whose last owner let go: its shards must be deleted from their holders.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Purge {
    /// The chunk, now removed from the registry.
    pub chunk: ChunkId,
    /// Every placed shard as (holder, shard id).
    pub shards: Vec<(AccountId, ShardId)>,
}

/// What an object's delete did, and what must happen next.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DeletePlan {
    /// Chunks the user still references after the delete.
    pub dereferenced: Vec<ChunkId>,
    /// Chunks the user no longer owns while other owners remain: data stays.
    pub released: Vec<ChunkId>,
    /// Chunks left with no owner: removed from the registry, to be purged from their holders.
    pub purged: Vec<Purge>,
    /// The user's usage after the delete.
    pub usage: u64,
}

impl DeletePlan {
    /// Every (holder, shard) that must be deleted.
    pub fn purges(&self) -> Vec<(AccountId, ShardId)> {
        self.purged
            .iter()
            .flat_map(|p| p.shards.iter().copied())
            .collect()
    }
}

//! Object operations: what a user signs to store or delete an object, and the keeper-side
//! state machine that applies them on top of [`Ownership`](crate::ownership::Ownership).
//!
//! An operation is signed by the user, so no keeper can store or delete on a user's behalf;
//! applied in the same order (the ledger's), every keeper reaches the same state.

use crate::id::{AccountId, ChunkId, ObjectId};
use crate::identity::Signable;
use crate::ownership::{
    ChunkInfo, DeletePlan, MetaStore, ObjectChunks, Ownership, OwnershipError, Placement, PutPlan,
    ShardHealth,
};
use crate::protocol::{ChunkPlacement, ChunkStatus, ObjectEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest encoded operation accepted.
pub const MAX_OP_BYTES: usize = 8 * 1024 * 1024;

/// A user's request to change its objects. Signed by the user ([`Signable`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOp {
    /// Store an object (again): every chunk gains one reference from the user.
    Put {
        /// The object id (the manifest chunk's id).
        object: ObjectId,
        /// Object size in bytes.
        size: u64,
        /// k of every chunk.
        needed: u8,
        /// The user's sealed name and read handle (opaque to keepers).
        sealed: Vec<u8>,
        /// Every chunk, manifest chunk last, repeats included.
        chunks: Vec<ChunkInfo>,
        /// Where the shards of chunks that were new at placement time were uploaded.
        placements: Vec<ChunkPlacement>,
    },
    /// Drop one of the user's references to an object.
    Delete {
        /// The object.
        object: ObjectId,
    },
}

impl Signable for ObjectOp {
    const CONTEXT: &'static str = "memo/object-op/v1";
    const MAX_BYTES: usize = MAX_OP_BYTES;
}

/// Why an operation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// The user holds no reference to the object.
    #[error("not an owner: {user} holds no reference to object {object}")]
    NotOwner {
        /// The user.
        user: AccountId,
        /// The object.
        object: ObjectId,
    },
    /// The operation is inconsistent (e.g. a new chunk without a complete placement).
    #[error("invalid operation: {0}")]
    Invalid(String),
    /// The ownership rules refused it.
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
}

/// What applying an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A put: which chunks were new, shared or re-referenced.
    Put(PutPlan),
    /// A delete: which chunks were dereferenced, released or purged (with their holders).
    Delete(DeletePlan),
}

#[derive(Debug, Clone)]
struct ObjectRecord {
    entry: ObjectEntry,
    needed: u8,
    chunks: Vec<ChunkInfo>,
}

/// The keeper's view: ownership (accounts and chunk registry) plus each user's object index.
#[derive(Debug)]
pub struct Objects<S> {
    ownership: Ownership<S>,
    index: BTreeMap<(AccountId, ObjectId), ObjectRecord>,
}

impl<S: MetaStore> Objects<S> {
    /// A view over a metadata store.
    pub fn new(store: S) -> Self {
        Self {
            ownership: Ownership::new(store),
            index: BTreeMap::new(),
        }
    }

    /// The ownership state machine.
    pub fn ownership(&self) -> &Ownership<S> {
        &self.ownership
    }

    /// Opens an account (idempotent: an existing account keeps its usage and gets `quota`).
    pub fn ensure_account(&self, user: AccountId, quota: u64) -> Result<(), ObjectError> {
        match self.ownership.open_account(user, quota) {
            Ok(()) => Ok(()),
            Err(OwnershipError::AccountExists { .. }) => {
                Ok(self.ownership.set_quota(user, quota)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a verified operation by `user`. Refused operations change nothing.
    pub fn apply(&mut self, user: AccountId, op: &ObjectOp) -> Result<Applied, ObjectError> {
        match op {
            ObjectOp::Put {
                object,
                size,
                needed,
                sealed,
                chunks,
                placements,
            } => {
                if chunks.last().map(|c| c.id.0) != Some(object.0) {
                    return Err(ObjectError::Invalid(
                        "the manifest chunk must come last".into(),
                    ));
                }
                let placed: BTreeMap<ChunkId, &ChunkPlacement> =
                    placements.iter().map(|p| (p.chunk, p)).collect();
                // Every chunk that is unknown now must come with a full placement.
                let mut records: Vec<(ChunkId, Vec<Placement>)> = Vec::new();
                for c in chunks {
                    if self.ownership.chunk(&c.id)?.is_some()
                        || records.iter().any(|(id, _)| *id == c.id)
                    {
                        continue;
                    }
                    let p = placed.get(&c.id).ok_or_else(|| {
                        ObjectError::Invalid(format!("new chunk {} has no placement", c.id.short()))
                    })?;
                    let mut holders = std::collections::BTreeSet::new();
                    let mut list = Vec::new();
                    for (i, h) in p.holders.iter().enumerate() {
                        let (Some(h), Some(shard)) = (h, c.shards.get(i)) else {
                            return Err(ObjectError::Invalid(format!(
                                "chunk {} shard {i} has no holder",
                                c.id.short()
                            )));
                        };
                        if !holders.insert(*h) {
                            return Err(ObjectError::Invalid(format!(
                                "chunk {} places two shards on one provider",
                                c.id.short()
                            )));
                        }
                        list.push(Placement {
                            index: i,
                            shard: *shard,
                            holder: *h,
                        });
                    }
                    if list.len() != c.shards.len() {
                        return Err(ObjectError::Invalid(format!(
                            "chunk {} placement is incomplete",
                            c.id.short()
                        )));
                    }
                    records.push((c.id, list));
                }
                let plan = self
                    .ownership
                    .put_object(user, &ObjectChunks::new(chunks.clone()))?;
                for (id, list) in records {
                    self.ownership.record_placement(id, &list)?;
                }
                let rec = self
                    .index
                    .entry((user, *object))
                    .or_insert_with(|| ObjectRecord {
                        entry: ObjectEntry {
                            id: *object,
                            size: *size,
                            refs: 0,
                            sealed: sealed.clone(),
                        },
                        needed: *needed,
                        chunks: chunks.clone(),
                    });
                rec.entry.refs += 1;
                Ok(Applied::Put(plan))
            }
            ObjectOp::Delete { object } => {
                let rec = self
                    .index
                    .get(&(user, *object))
                    .ok_or(ObjectError::NotOwner {
                        user,
                        object: *object,
                    })?;
                let plan = self
                    .ownership
                    .delete_object(user, &ObjectChunks::new(rec.chunks.clone()))?;
                let key = (user, *object);
                if let Some(rec) = self.index.get_mut(&key) {
                    rec.entry.refs -= 1;
                    if rec.entry.refs == 0 {
                        self.index.remove(&key);
                    }
                }
                Ok(Applied::Delete(plan))
            }
        }
    }

    /// The user's objects.
    pub fn list(&self, user: &AccountId) -> Vec<ObjectEntry> {
        self.index
            .range((*user, ObjectId([0; 32]))..=(*user, ObjectId([0xff; 32])))
            .map(|(_, r)| r.entry.clone())
            .collect()
    }

    /// One object of the user's with each chunk's health.
    pub fn stat(
        &self,
        user: &AccountId,
        object: &ObjectId,
    ) -> Result<Option<(ObjectEntry, Vec<ChunkStatus>)>, ObjectError> {
        let Some(rec) = self.index.get(&(*user, *object)) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(rec.chunks.len());
        for c in &rec.chunks {
            let entry = self.ownership.chunk(&c.id)?;
            let (holders, healthy) = match &entry {
                Some(e) => (
                    e.shards.iter().map(|s| s.holder).collect::<Vec<_>>(),
                    e.shards
                        .iter()
                        .filter(|s| s.holder.is_some() && s.health == ShardHealth::Healthy)
                        .count(),
                ),
                None => (vec![None; c.shards.len()], 0),
            };
            out.push(ChunkStatus {
                chunk: c.id,
                needed: rec.needed,
                total: c.shards.len() as u8,
                healthy: healthy as u8,
                holders,
            });
        }
        Ok(Some((rec.entry.clone(), out)))
    }

    /// Where a chunk's shards are, if it is registered.
    pub fn locate(&self, chunk: &ChunkId) -> Result<Option<ChunkPlacement>, ObjectError> {
        Ok(self.ownership.chunk(chunk)?.map(|e| ChunkPlacement {
            chunk: *chunk,
            holders: e.shards.iter().map(|s| s.holder).collect(),
        }))
    }

    /// How many objects the user has.
    pub fn count(&self, user: &AccountId) -> u64 {
        self.list(user).len() as u64
    }
}

//! Reference-counted chunk ownership: the account, chunk registry and holder personas.
//!
//! The exact rules (DESIGN.md, "Ownership rules"):
//!
//! 1. U stores C: if U already references C, refcount(U,C) += 1 and nothing else. If others
//!    hold C, U becomes an owner with refcount 1 and no data moves. If C is unknown, it is
//!    registered, needs placement and upload, and owners = {U}.
//! 2. U deletes C: if U has no reference the delete is refused ("not an owner") and nothing
//!    changes. Else refcount − 1; at 0 U is no longer an owner; when C has no owner left it is
//!    purged: removed from the registry, and every holder must delete its shard.
//! 3. owners(C) = {U | refcount(U,C) ≥ 1} holds by construction: owners are not stored apart
//!    from the reference counts. An object's put or delete is one transaction over all its
//!    chunks: refused whole (typed error, nothing changed) or applied whole.
//!
//! Usage is charged per reference: usage(U) = Σ_C refcount(U,C) × stored_bytes(C), so a delete
//! returns exactly what the matching put charged. A put that would take usage over the quota is
//! refused before anything changes.
//!
//! [`Ownership`] is the deterministic state machine; it runs on any [`MetaStore`] (memory here,
//! redb in memo-sdk). Every step is a fixed number of key-value lookups per chunk, so its cost
//! does not grow with the registry. [`Holder`] is the provider side over a [`ShardStore`].

mod holder;
mod store;
mod types;

pub use holder::{
    DISK_RESERVE, Holder, HolderError, MemoryShardStore, ShardStore, ShardStoreError, Verified,
};
pub use store::{MemoryMeta, MetaRead, MetaStore, MetaTxn, StoreError};
pub use types::{
    ACCOUNT_VERSION, Account, CHUNK_ENTRY_VERSION, ChunkEntry, ChunkInfo, DeletePlan,
    MAX_ACCOUNT_BYTES, MAX_CHUNK_ENTRY_BYTES, ObjectChunks, Purge, PutPlan, ShardHealth, ShardSlot,
    ref_key, refcount_from_bytes, refcount_to_bytes,
};

use crate::codec::MAX_SHARDS;
use crate::id::{AccountId, ChunkId, ShardId};
use std::collections::BTreeMap;

/// An ownership operation was refused or failed. In every case nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// The user has no account.
    #[error("unknown user {user}")]
    UnknownUser {
        /// The user.
        user: AccountId,
    },
    /// An account already exists for this user.
    #[error("account {user} already exists")]
    AccountExists {
        /// The user.
        user: AccountId,
    },
    /// The chunk is not registered.
    #[error("unknown chunk {chunk}")]
    UnknownChunk {
        /// The chunk.
        chunk: ChunkId,
    },
    /// The user does not hold the references the delete would remove.
    #[error(
        "not an owner: {user} holds {held} references to chunk {chunk}, the delete needs {needed}"
    )]
    NotOwner {
        /// The user.
        user: AccountId,
        /// The chunk.
        chunk: ChunkId,
        /// References the user holds.
        held: u64,
        /// References the object names.
        needed: u64,
    },
    /// The put would take the user's usage over the quota.
    #[error("quota exceeded for {user}: usage {usage} + {needed} bytes > quota {quota}")]
    QuotaExceeded {
        /// The user.
        user: AccountId,
        /// Usage before the put.
        usage: u64,
        /// Bytes the put would add.
        needed: u64,
        /// The quota.
        quota: u64,
    },
    /// The chunk is registered with a different size or different shards.
    #[error("chunk {chunk} is registered with a different size or shard list")]
    ChunkMismatch {
        /// The chunk.
        chunk: ChunkId,
    },
    /// The object description is malformed.
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A placement or health update does not fit the chunk's entry.
    #[error("invalid placement for chunk {chunk}: {reason}")]
    InvalidPlacement {
        /// The chunk.
        chunk: ChunkId,
        /// Why.
        reason: String,
    },
    /// The metadata store failed or holds a corrupt record.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One shard's placement, as recorded after upload: (shard index, shard id, holder).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Placement {
    /// Index of the shard within its chunk.
    pub index: usize,
    /// The shard's id (checked against the registry).
    pub shard: ShardId,
    /// The provider holding it.
    pub holder: AccountId,
}

/// One object's put or delete, for [`Ownership::apply_batch`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ObjectOp {
    /// `user` stores `object`.
    Put {
        /// The user.
        user: AccountId,
        /// The object's chunks.
        object: ObjectChunks,
    },
    /// `user` deletes `object`.
    Delete {
        /// The user.
        user: AccountId,
        /// The object's chunks.
        object: ObjectChunks,
    },
}

/// What an applied [`ObjectOp`] did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A put's plan.
    Put(PutPlan),
    /// A delete's plan.
    Delete(DeletePlan),
}

/// The ownership state machine (accounts and chunk registry) over a metadata store; it
/// serializes to its store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Ownership<S> {
    store: S,
}

/// The distinct chunks of an object with how often each is named.
fn group(
    object: &ObjectChunks,
    check_info: bool,
) -> Result<BTreeMap<ChunkId, (&ChunkInfo, u64)>, OwnershipError> {
    if object.is_empty() {
        return Err(OwnershipError::InvalidObject(
            "an object names at least one chunk".into(),
        ));
    }
    let mut out: BTreeMap<ChunkId, (&ChunkInfo, u64)> = BTreeMap::new();
    for c in &object.chunks {
        if check_info {
            if c.shards.is_empty() || c.shards.len() > MAX_SHARDS {
                return Err(OwnershipError::InvalidObject(format!(
                    "chunk {} has {} shards (1..={MAX_SHARDS})",
                    c.id,
                    c.shards.len()
                )));
            }
            if c.stored_bytes == 0 {
                return Err(OwnershipError::InvalidObject(format!(
                    "chunk {} stores 0 bytes",
                    c.id
                )));
            }
        }
        let e = out.entry(c.id).or_insert((c, 0));
        if check_info && e.0 != c {
            return Err(OwnershipError::InvalidObject(format!(
                "chunk {} is described twice with different sizes or shards",
                c.id
            )));
        }
        e.1 += 1;
    }
    Ok(out)
}

impl<S: MetaStore> Ownership<S> {
    /// The state machine over `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Opens an account with a quota in bytes.
    pub fn open_account(&self, user: AccountId, quota: u64) -> Result<(), OwnershipError> {
        self.store.write(|t| {
            if t.account(&user)?.is_some() {
                return Err(OwnershipError::AccountExists { user });
            }
            t.put_account(&user, &Account { usage: 0, quota })?;
            Ok(())
        })
    }

    /// Changes a user's quota. A quota below current usage only refuses future puts.
    pub fn set_quota(&self, user: AccountId, quota: u64) -> Result<(), OwnershipError> {
        self.store.write(|t| {
            let mut a = t
                .account(&user)?
                .ok_or(OwnershipError::UnknownUser { user })?;
            a.quota = quota;
            t.put_account(&user, &a)?;
            Ok(())
        })
    }

    /// A user's account.
    pub fn account(&self, user: &AccountId) -> Result<Option<Account>, OwnershipError> {
        self.store.read(|r| Ok(r.account(user)?))
    }

    /// How many times `user` references `chunk`.
    pub fn refcount(&self, user: &AccountId, chunk: &ChunkId) -> Result<u64, OwnershipError> {
        self.store.read(|r| Ok(r.refcount(chunk, user)?))
    }

    /// A chunk's owners with their reference counts.
    pub fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, OwnershipError> {
        self.store.read(|r| Ok(r.owners(chunk)?))
    }

    /// A chunk's registry entry.
    pub fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, OwnershipError> {
        self.store.read(|r| Ok(r.chunk(chunk)?))
    }

    /// Stores an object for `user`: one transaction over all its chunks (rule 1 per reference).
    /// Refused whole on an unknown user, a malformed object, a chunk registered with other
    /// shards, or a quota overrun.
    pub fn put_object(
        &self,
        user: AccountId,
        object: &ObjectChunks,
    ) -> Result<PutPlan, OwnershipError> {
        let grouped = group(object, true)?;
        self.store.write(|t| put_in(t, user, &grouped))
    }

    /// Deletes an object for `user`: one transaction over all its chunks (rule 2 per
    /// reference). Only the chunk ids of `object` are used. Refused whole if the user is
    /// unknown, a chunk is unknown, or the user holds fewer references to a chunk than the
    /// object names.
    pub fn delete_object(
        &self,
        user: AccountId,
        object: &ObjectChunks,
    ) -> Result<DeletePlan, OwnershipError> {
        let grouped = group(object, false)?;
        self.store.write(|t| delete_in(t, user, &grouped))
    }

    /// Group commit: applies many objects' puts and deletes, in order, in ONE store
    /// transaction (one durable commit for all of them). Each object is still all-or-nothing:
    /// a refused object gets its typed error in the result list and changes nothing, the others
    /// apply as if run one by one. Only a store failure fails the whole batch (outer `Err`), in
    /// which case nothing of it is applied. A keeper uses this to amortise the disk's sync
    /// latency over concurrent requests.
    pub fn apply_batch(
        &self,
        ops: &[ObjectOp],
    ) -> Result<Vec<Result<Outcome, OwnershipError>>, OwnershipError> {
        self.store.write(|t| {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                let r = match op {
                    ObjectOp::Put { user, object } => group(object, true)
                        .and_then(|g| put_in(t, *user, &g))
                        .map(Outcome::Put),
                    ObjectOp::Delete { user, object } => group(object, false)
                        .and_then(|g| delete_in(t, *user, &g))
                        .map(Outcome::Delete),
                };
                // put_in/delete_in refuse before their first write; only a store error can
                // come after one, and it aborts the whole transaction.
                if let Err(OwnershipError::Store(e)) = r {
                    return Err(OwnershipError::Store(e));
                }
                out.push(r);
            }
            Ok(out)
        })
    }

    /// Records where shards of a registered chunk were placed (after upload or repair). Each
    /// placement sets the shard's holder and marks it healthy. Refused whole if the chunk is
    /// unknown, an index is out of range or a shard id does not match the registry.
    pub fn record_placement(
        &self,
        chunk: ChunkId,
        placements: &[Placement],
    ) -> Result<(), OwnershipError> {
        self.store.write(|t| {
            let mut entry = t
                .chunk(&chunk)?
                .ok_or(OwnershipError::UnknownChunk { chunk })?;
            for p in placements {
                let n = entry.shards.len();
                let slot = entry.shards.get_mut(p.index).ok_or_else(|| {
                    OwnershipError::InvalidPlacement {
                        chunk,
                        reason: format!("shard index {} of {n}", p.index),
                    }
                })?;
                if slot.id != p.shard {
                    return Err(OwnershipError::InvalidPlacement {
                        chunk,
                        reason: format!("shard {} is not shard {} of the chunk", p.shard, p.index),
                    });
                }
                slot.holder = Some(p.holder);
                slot.health = ShardHealth::Healthy;
            }
            t.put_chunk(&chunk, &entry)?;
            Ok(())
        })
    }

    /// Marks a placed shard's health (from challenges or liveness) and returns how many of the
    /// chunk's shards remain placed and healthy, which repair compares to its threshold.
    pub fn mark_health(
        &self,
        chunk: ChunkId,
        index: usize,
        health: ShardHealth,
    ) -> Result<usize, OwnershipError> {
        self.store.write(|t| {
            let mut entry = t
                .chunk(&chunk)?
                .ok_or(OwnershipError::UnknownChunk { chunk })?;
            let slot = entry
                .shards
                .get_mut(index)
                .filter(|s| s.holder.is_some())
                .ok_or_else(|| OwnershipError::InvalidPlacement {
                    chunk,
                    reason: format!("shard {index} is not placed"),
                })?;
            slot.health = health;
            t.put_chunk(&chunk, &entry)?;
            Ok(entry.healthy_shards())
        })
    }
}

type Grouped<'a> = BTreeMap<ChunkId, (&'a ChunkInfo, u64)>;

/// Rule 1 for one object inside a transaction. Every refusal happens before the first write.
fn put_in(
    t: &mut dyn MetaTxn,
    user: AccountId,
    grouped: &Grouped<'_>,
) -> Result<PutPlan, OwnershipError> {
    let mut account = t
        .account(&user)?
        .ok_or(OwnershipError::UnknownUser { user })?;
    // Check everything first; write only once the whole object is accepted.
    let mut needed = 0u64;
    let mut steps = Vec::with_capacity(grouped.len());
    for (id, (info, count)) in grouped {
        let known = match t.chunk(id)? {
            Some(entry) if !entry.matches(info) => {
                return Err(OwnershipError::ChunkMismatch { chunk: *id });
            }
            Some(_) => true,
            None => false,
        };
        let held = t.refcount(id, &user)?;
        let n = held
            .checked_add(*count)
            .ok_or_else(|| StoreError::Inconsistent(format!("refcount overflow on {id}")))?;
        let bytes = info.stored_bytes.checked_mul(*count);
        needed = bytes
            .and_then(|b| needed.checked_add(b))
            .unwrap_or(u64::MAX);
        steps.push((*info, n, known, held));
    }
    let after = account
        .usage
        .checked_add(needed)
        .filter(|&u| u <= account.quota);
    let Some(after) = after else {
        return Err(OwnershipError::QuotaExceeded {
            user,
            usage: account.usage,
            needed,
            quota: account.quota,
        });
    };
    let mut plan = PutPlan::default();
    for (info, n, known, held) in steps {
        if !known {
            t.put_chunk(&info.id, &ChunkEntry::unplaced(info))?;
            plan.new.push(info.clone());
        } else if held == 0 {
            plan.shared.push(info.id);
        } else {
            plan.rereferenced.push(info.id);
        }
        t.set_refcount(&info.id, &user, n)?;
    }
    account.usage = after;
    t.put_account(&user, &account)?;
    plan.usage = after;
    Ok(plan)
}

/// Rule 2 for one object inside a transaction. Every refusal happens before the first write.
fn delete_in(
    t: &mut dyn MetaTxn,
    user: AccountId,
    grouped: &Grouped<'_>,
) -> Result<DeletePlan, OwnershipError> {
    let mut account = t
        .account(&user)?
        .ok_or(OwnershipError::UnknownUser { user })?;
    let mut steps = Vec::with_capacity(grouped.len());
    let mut freed = 0u64;
    for (id, (_, count)) in grouped {
        let entry = t
            .chunk(id)?
            .ok_or(OwnershipError::UnknownChunk { chunk: *id })?;
        let held = t.refcount(id, &user)?;
        if held < *count {
            return Err(OwnershipError::NotOwner {
                user,
                chunk: *id,
                held,
                needed: *count,
            });
        }
        freed = entry
            .stored_bytes
            .checked_mul(*count)
            .and_then(|b| freed.checked_add(b))
            .ok_or_else(|| StoreError::Inconsistent("usage overflow".into()))?;
        steps.push((*id, *count, held, entry));
    }
    account.usage = account.usage.checked_sub(freed).ok_or_else(|| {
        StoreError::Inconsistent(format!(
            "usage {} of {user} is below the {freed} bytes its references hold",
            account.usage
        ))
    })?;
    let mut plan = DeletePlan::default();
    for (id, count, held, entry) in steps {
        let left = held - count;
        t.set_refcount(&id, &user, left)?;
        if left > 0 {
            plan.dereferenced.push(id);
        } else if t.has_owners(&id)? {
            plan.released.push(id);
        } else {
            t.remove_chunk(&id)?;
            plan.purged.push(Purge {
                chunk: id,
                shards: entry.placed(),
            });
        }
    }
    t.put_account(&user, &account)?;
    plan.usage = account.usage;
    Ok(plan)
}

#[cfg(test)]
mod tests;

//! Object operations: what a user signs to store or delete an object, and the keeper-side
//! state machine that applies them on top of [`Ownership`].
//!
//! An operation is signed by the user, so no keeper can store or delete on a user's behalf;
//! applied in the same order (the ledger's), every keeper reaches the same state.

use crate::id::{AccountId, ChunkId, ObjectId};
use crate::identity::Signable;
use crate::ownership::{
    ChunkInfo, DeletePlan, MetaStore, ObjectChunks, Ownership, OwnershipError, Placement, PutPlan,
    ShardHealth, ShardSlot,
};
use crate::protocol::{ChunkPlacement, ChunkStatus, ObjectEntry};
use crate::repair::{KeeperOp, Move, check_op};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

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
    /// Drop one of the user's references to an object: the one stored last.
    Delete {
        /// The object.
        object: ObjectId,
    },
    /// A keeper's health or placement change ([`crate::repair`]); only keepers may sign it.
    Keeper(KeeperOp),
    /// Drop the user's reference to an object that was stored with this sealed name (one of
    /// the [`ObjectEntry::sealed`] the keeper lists); refused if the entry has no such name.
    DeleteNamed {
        /// The object.
        object: ObjectId,
        /// The sealed name, byte for byte as listed.
        sealed: Vec<u8>,
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
    /// A keeper operation signed by an account that is not a keeper.
    #[error("{signer} is not a keeper: only keepers may change health or placement")]
    NotKeeper {
        /// The signer.
        signer: AccountId,
    },
    /// A keeper operation about a placement that changed since it was made (another keeper
    /// repaired the shard first, or the finding is about a former holder).
    #[error("stale: {0}")]
    Stale(String),
}

/// What applying an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A put: which chunks were new, shared or re-referenced.
    Put(PutPlan),
    /// A delete: which chunks were dereferenced, released or purged (with their holders).
    Delete(DeletePlan),
    /// A keeper operation.
    Keeper(KeeperApplied),
}

/// What a keeper operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperApplied {
    /// Health marks: how many shard slots changed health.
    Health {
        /// Slots changed.
        changed: usize,
    },
    /// Shards moved to new holders (each now Healthy); the former holders may delete theirs.
    Replaced {
        /// The chunk.
        chunk: ChunkId,
        /// The moves.
        moves: Vec<Move>,
    },
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
    /// Accounts allowed to sign [`ObjectOp::Keeper`].
    keepers: BTreeSet<AccountId>,
    /// k of every registered chunk (from the put that registered it).
    chunk_k: BTreeMap<ChunkId, u8>,
    /// Chunks each provider holds a shard of (at most one shard per chunk).
    holdings: BTreeMap<AccountId, BTreeSet<ChunkId>>,
    /// Providers declared Suspect or Lost (absent: Healthy).
    provider_health: BTreeMap<AccountId, ShardHealth>,
    /// Chunks with a shard that is not Healthy.
    degraded: BTreeSet<ChunkId>,
}

impl<S: MetaStore> Objects<S> {
    /// A view over a metadata store.
    pub fn new(store: S) -> Self {
        Self {
            ownership: Ownership::new(store),
            index: BTreeMap::new(),
            keepers: BTreeSet::new(),
            chunk_k: BTreeMap::new(),
            holdings: BTreeMap::new(),
            provider_health: BTreeMap::new(),
            degraded: BTreeSet::new(),
        }
    }

    /// The accounts allowed to sign keeper operations. Set before the first operation is
    /// applied: replaying a log with another keeper set gives another state.
    pub fn with_keepers(mut self, keepers: impl IntoIterator<Item = AccountId>) -> Self {
        self.keepers = keepers.into_iter().collect();
        self
    }

    /// The keeper accounts.
    pub fn keepers(&self) -> &BTreeSet<AccountId> {
        &self.keepers
    }

    /// k of a registered chunk, as its registering put declared it.
    pub fn data_shards(&self, chunk: &ChunkId) -> Option<u8> {
        self.chunk_k.get(chunk).copied()
    }

    /// A provider's declared health (Healthy unless a keeper declared otherwise).
    pub fn provider_health(&self, provider: &AccountId) -> ShardHealth {
        self.provider_health
            .get(provider)
            .copied()
            .unwrap_or(ShardHealth::Healthy)
    }

    /// Chunks that have a shard that is not Healthy, in id order.
    pub fn degraded(&self) -> impl Iterator<Item = &ChunkId> + '_ {
        self.degraded.iter()
    }

    /// Chunks `provider` holds a shard of.
    pub fn held_by(&self, provider: &AccountId) -> impl Iterator<Item = &ChunkId> + '_ {
        self.holdings.get(provider).into_iter().flatten()
    }

    /// Chunks `provider` holds a shard of, in id order starting after `after` and wrapping
    /// round to the start, up to and including `after`.
    pub fn held_by_from(
        &self,
        provider: &AccountId,
        after: &ChunkId,
    ) -> impl Iterator<Item = &ChunkId> + '_ {
        let after = *after;
        self.holdings
            .get(provider)
            .into_iter()
            .flat_map(move |set| {
                set.range((Bound::Excluded(after), Bound::Unbounded))
                    .chain(set.range(..=after))
            })
    }

    /// Every provider holding at least one shard.
    pub fn holders(&self) -> impl Iterator<Item = &AccountId> + '_ {
        self.holdings.keys()
    }

    /// The shards `provider` holds, as (chunk, index, slot): chunks in id order, each chunk's
    /// shards in index order. A chunk whose entry cannot be read yields its error; one no
    /// longer registered yields nothing.
    pub fn shards_on(
        &self,
        provider: &AccountId,
    ) -> impl Iterator<Item = Result<(ChunkId, usize, ShardSlot), ObjectError>> + '_ {
        let p = *provider;
        self.held_by(provider).flat_map(move |c| {
            let (failed, slots) = match self.ownership.chunk(c) {
                Ok(entry) => (None, entry.map(|e| e.shards).unwrap_or_default()),
                Err(e) => (Some(Err(e.into())), Vec::new()),
            };
            failed.into_iter().chain(
                slots
                    .into_iter()
                    .enumerate()
                    .filter(move |(_, s)| s.holder == Some(p))
                    .map(move |(i, s)| Ok((*c, i, s))),
            )
        })
    }

    /// The chunk and index of shard `shard` held by `provider`, if it holds it.
    pub fn find_shard(
        &self,
        provider: &AccountId,
        shard: &crate::id::ShardId,
    ) -> Result<Option<(ChunkId, usize)>, ObjectError> {
        for found in self.shards_on(provider) {
            let (c, i, s) = found?;
            if s.id == *shard {
                return Ok(Some((c, i)));
            }
        }
        Ok(None)
    }

    /// Re-derives whether `chunk` is degraded from its entry.
    fn refresh(&mut self, chunk: ChunkId) -> Result<(), ObjectError> {
        let bad = match self.ownership.chunk(&chunk)? {
            Some(e) => e
                .shards
                .iter()
                .any(|s| s.holder.is_none() || s.health != ShardHealth::Healthy),
            None => false,
        };
        if bad {
            self.degraded.insert(chunk);
        } else {
            self.degraded.remove(&chunk);
        }
        Ok(())
    }

    /// Marks newly placed shards on providers declared unhealthy with the provider's health.
    fn inherit_provider_health(
        &mut self,
        chunk: ChunkId,
        placed: &[(usize, AccountId)],
    ) -> Result<(), ObjectError> {
        for (i, h) in placed {
            let health = self.provider_health(h);
            if health != ShardHealth::Healthy {
                self.ownership.mark_health(chunk, *i, health)?;
            }
        }
        self.refresh(chunk)
    }

    /// Drops one of `user`'s references to `object`: the one stored with `name` (sealed), or
    /// without a name the one stored last. Refused, changing nothing, if `name` is not listed.
    fn delete(
        &mut self,
        user: AccountId,
        object: &ObjectId,
        name: Option<&Vec<u8>>,
    ) -> Result<Applied, ObjectError> {
        let rec = self
            .index
            .get(&(user, *object))
            .ok_or(ObjectError::NotOwner {
                user,
                object: *object,
            })?;
        let slot = match name {
            Some(name) => Some(rec.entry.sealed.iter().position(|s| s == name).ok_or_else(
                || ObjectError::Invalid(format!("object {object} has no reference by that name")),
            )?),
            None => rec.entry.sealed.len().checked_sub(1),
        };
        let plan = self
            .ownership
            .delete_object(user, &ObjectChunks::new(rec.chunks.clone()))?;
        for p in &plan.purged {
            self.chunk_k.remove(&p.chunk);
            self.degraded.remove(&p.chunk);
            for (holder, _) in &p.shards {
                if let Some(set) = self.holdings.get_mut(holder) {
                    set.remove(&p.chunk);
                    if set.is_empty() {
                        self.holdings.remove(holder);
                    }
                }
            }
        }
        let key = (user, *object);
        if let Some(rec) = self.index.get_mut(&key) {
            rec.entry.refs -= 1;
            if let Some(i) = slot {
                rec.entry.sealed.remove(i);
            }
            if rec.entry.refs == 0 {
                self.index.remove(&key);
            }
        }
        Ok(Applied::Delete(plan))
    }

    fn apply_keeper(&mut self, signer: AccountId, op: &KeeperOp) -> Result<Applied, ObjectError> {
        if !self.keepers.contains(&signer) {
            return Err(ObjectError::NotKeeper { signer });
        }
        check_op(op).map_err(|e| ObjectError::Invalid(e.to_string()))?;
        match op {
            KeeperOp::ProviderHealth {
                provider, health, ..
            } => {
                if *health == ShardHealth::Healthy {
                    self.provider_health.remove(provider);
                } else {
                    self.provider_health.insert(*provider, *health);
                }
                let chunks: Vec<ChunkId> = self.held_by(provider).copied().collect();
                let slots: Vec<_> = self.shards_on(provider).collect::<Result<_, _>>()?;
                let mut changed = 0;
                for (c, i, s) in slots {
                    let next = match (s.health, health) {
                        (ShardHealth::Lost, _) => ShardHealth::Lost,
                        (_, ShardHealth::Lost) => ShardHealth::Lost,
                        (_, ShardHealth::Suspect) => ShardHealth::Suspect,
                        (_, ShardHealth::Healthy) => ShardHealth::Healthy,
                    };
                    if next != s.health {
                        self.ownership.mark_health(c, i, next)?;
                        changed += 1;
                    }
                }
                for c in chunks {
                    self.refresh(c)?;
                }
                Ok(Applied::Keeper(KeeperApplied::Health { changed }))
            }
            KeeperOp::MarkShard {
                chunk,
                index,
                holder,
                health,
                ..
            } => {
                let e = self
                    .ownership
                    .chunk(chunk)?
                    .ok_or(OwnershipError::UnknownChunk { chunk: *chunk })?;
                let slot = e.shards.get(*index as usize).ok_or_else(|| {
                    ObjectError::Invalid(format!("chunk {} has no shard {index}", chunk.short()))
                })?;
                if slot.holder != Some(*holder) {
                    return Err(ObjectError::Stale(format!(
                        "shard {index} of chunk {} is not held by {}",
                        chunk.short(),
                        holder.short()
                    )));
                }
                let changed = usize::from(slot.health != *health);
                self.ownership
                    .mark_health(*chunk, *index as usize, *health)?;
                self.refresh(*chunk)?;
                Ok(Applied::Keeper(KeeperApplied::Health { changed }))
            }
            KeeperOp::Replace { chunk, moves } => {
                let e = self
                    .ownership
                    .chunk(chunk)?
                    .ok_or(OwnershipError::UnknownChunk { chunk: *chunk })?;
                let mut holders: Vec<Option<AccountId>> =
                    e.shards.iter().map(|s| s.holder).collect();
                let mut list = Vec::with_capacity(moves.len());
                for m in moves {
                    let i = m.index as usize;
                    let Some(slot) = e.shards.get(i) else {
                        return Err(ObjectError::Invalid(format!(
                            "chunk {} has no shard {i}",
                            chunk.short()
                        )));
                    };
                    if slot.holder != m.from {
                        return Err(ObjectError::Stale(format!(
                            "shard {i} of chunk {} moved meanwhile",
                            chunk.short()
                        )));
                    }
                    holders[i] = Some(m.to);
                    list.push(Placement {
                        index: i,
                        shard: slot.id,
                        holder: m.to,
                    });
                }
                let distinct: BTreeSet<AccountId> = holders.iter().flatten().copied().collect();
                if distinct.len() != holders.iter().flatten().count() {
                    return Err(ObjectError::Invalid(format!(
                        "chunk {} would have two shards on one provider",
                        chunk.short()
                    )));
                }
                self.ownership.record_placement(*chunk, &list)?;
                for m in moves {
                    if let Some(from) = m.from.filter(|f| *f != m.to)
                        && let Some(set) = self.holdings.get_mut(&from)
                    {
                        set.remove(chunk);
                        if set.is_empty() {
                            self.holdings.remove(&from);
                        }
                    }
                    self.holdings.entry(m.to).or_default().insert(*chunk);
                }
                let placed: Vec<(usize, AccountId)> =
                    moves.iter().map(|m| (m.index as usize, m.to)).collect();
                self.inherit_provider_health(*chunk, &placed)?;
                Ok(Applied::Keeper(KeeperApplied::Replaced {
                    chunk: *chunk,
                    moves: moves.clone(),
                }))
            }
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
                    self.chunk_k.insert(id, *needed);
                    for p in &list {
                        self.holdings.entry(p.holder).or_default().insert(id);
                    }
                    let placed: Vec<(usize, AccountId)> =
                        list.iter().map(|p| (p.index, p.holder)).collect();
                    self.inherit_provider_health(id, &placed)?;
                }
                let rec = self
                    .index
                    .entry((user, *object))
                    .or_insert_with(|| ObjectRecord {
                        entry: ObjectEntry {
                            id: *object,
                            size: *size,
                            refs: 0,
                            sealed: Vec::new(),
                        },
                        needed: *needed,
                        chunks: chunks.clone(),
                    });
                rec.entry.refs += 1;
                rec.entry.sealed.push(sealed.clone());
                Ok(Applied::Put(plan))
            }
            ObjectOp::Delete { object } => self.delete(user, object, None),
            ObjectOp::DeleteNamed { object, sealed } => self.delete(user, object, Some(sealed)),
            ObjectOp::Keeper(op) => self.apply_keeper(user, op),
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
            let (holders, health, healthy) = match &entry {
                Some(e) => (
                    e.shards.iter().map(|s| s.holder).collect::<Vec<_>>(),
                    e.shards.iter().map(|s| s.health).collect::<Vec<_>>(),
                    e.shards
                        .iter()
                        .filter(|s| s.holder.is_some() && s.health == ShardHealth::Healthy)
                        .count(),
                ),
                None => (
                    vec![None; c.shards.len()],
                    vec![ShardHealth::Healthy; c.shards.len()],
                    0,
                ),
            };
            out.push(ChunkStatus {
                chunk: c.id,
                needed: rec.needed,
                total: c.shards.len() as u8,
                healthy: healthy as u8,
                holders,
                health,
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

//! Object operations: what a user signs to store or delete an object, and the keeper-side
//! state machine that applies them on top of [`Ownership`].
//!
//! An operation is signed by the user, so no keeper can store or delete on a user's behalf;
//! applied in the same order (the log's), every keeper reaches the same state. Each signed
//! operation ([`OpEnvelope`]) carries a nonce and an expiry: the state remembers every nonce
//! until its operation could no longer be valid, so a replayed, re-submitted or stale
//! operation is refused ([`ObjectError::Replayed`], [`ObjectError::Expired`]).
//! [`Objects::check`] runs every rule that needs no network before an operation enters the
//! log, so a refused operation leaves no trace there.

use crate::id::{AccountId, ChunkId, ObjectId, ShardId};
use crate::identity::{Signable, Signed};
use crate::ownership::{
    ChunkInfo, DeletePlan, MetaStore, ObjectChunks, Ownership, OwnershipError, Placement, PutPlan,
    ShardHealth, ShardSlot,
};
use crate::protocol::{ChunkPlacement, ChunkStatus, ObjectEntry};
use crate::repair::{KeeperOp, Move, check_op};
use crate::ticket::{Possession, Receipt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;

/// Largest encoded operation accepted.
pub const MAX_OP_BYTES: usize = 8 * 1024 * 1024;
/// Longest an operation may be valid, from its signing to its expiry.
pub const MAX_OP_VALIDITY_MS: u64 = 10 * 60 * 1000;
/// How far a keeper's clock may be behind a signer's: an operation may expire up to
/// [`MAX_OP_VALIDITY_MS`] plus this after the keeper's now.
pub const CLOCK_SKEW_MS: u64 = 60 * 1000;

/// A user's request to change its objects, signed inside an [`OpEnvelope`].
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
        /// The holders' receipts for every shard of every chunk in `placements`, in any order.
        receipts: Vec<Signed<Receipt>>,
        /// Proofs that the user holds the content of the chunks it did not own yet and that
        /// were already registered (deduplicated).
        possession: Vec<Possession>,
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

/// What a user or keeper signs: an operation, a nonce the signer never uses twice, and the
/// time after which the operation may no longer enter the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpEnvelope {
    /// The operation.
    pub op: ObjectOp,
    /// Unique per signer (random).
    pub nonce: u64,
    /// Unix milliseconds; at most [`MAX_OP_VALIDITY_MS`] after signing.
    pub expires_ms: u64,
}

impl Signable for OpEnvelope {
    const CONTEXT: &'static str = "memo/object-op/v2";
    const MAX_BYTES: usize = MAX_OP_BYTES;
}

/// A signed operation: what the log holds.
pub type SignedOp = Signed<OpEnvelope>;

impl OpEnvelope {
    /// `op` with `nonce`, valid until `expires_ms`.
    pub fn new(op: ObjectOp, nonce: u64, expires_ms: u64) -> Self {
        Self {
            op,
            nonce,
            expires_ms,
        }
    }

    /// Verifies every receipt a put carries: signed by the account it names (in one batch,
    /// with `sigs`' cached keys), and for a ticket that was still valid at `now_ms`. Other
    /// operations carry none.
    pub fn verify_receipts(
        &self,
        now_ms: u64,
        sigs: &mut crate::contract::SigChecker,
    ) -> Result<(), ObjectError> {
        let ObjectOp::Put { receipts, .. } = &self.op else {
            return Ok(());
        };
        if !sigs.verify_batch(receipts) {
            let bad = sigs.find_invalid(receipts).first().copied().unwrap_or(0);
            return Err(ObjectError::Receipt(format!(
                "receipt {bad} is not validly signed"
            )));
        }
        for (i, r) in receipts.iter().enumerate() {
            let body = r
                .open_unverified()
                .map_err(|e| ObjectError::Receipt(format!("receipt {i}: {e}")))?;
            if body.expires_ms <= now_ms {
                return Err(ObjectError::Receipt(format!(
                    "receipt {i} is for a ticket that expired at {}",
                    body.expires_ms
                )));
            }
        }
        Ok(())
    }
}

/// A chunk whose owner-to-be must show it holds the content: the keeper asks holders of some
/// of `shards` for the proof under `key` and compares with `proofs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PossessionCheck {
    /// The chunk.
    pub chunk: ChunkId,
    /// [`crate::ticket::possession_key`] of the signer, nonce and chunk.
    pub key: [u8; 32],
    /// Each shard with its registered holder, in index order.
    pub shards: Vec<(ShardId, Option<AccountId>)>,
    /// The user's proofs, in index order.
    pub proofs: Vec<[u8; 32]>,
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
    /// The signer already used this nonce: a replayed or re-submitted operation.
    #[error("replayed: {user} already used nonce {nonce}")]
    Replayed {
        /// The signer.
        user: AccountId,
        /// The nonce.
        nonce: u64,
    },
    /// The operation's validity window is over (or lies too far ahead).
    #[error("operation expires at {expires_ms}, outside its window ({window})")]
    Expired {
        /// Its expiry (unix ms).
        expires_ms: u64,
        /// What the window was.
        window: String,
    },
    /// A new chunk's shard lacks its holder's receipt, or a receipt is forged or stale.
    #[error("receipt: {0}")]
    Receipt(String),
    /// A put's uploaded shard is not held by a live storage order of its user on the ledger.
    #[error("unpaid: {0}")]
    Unpaid(String),
    /// The user did not show it holds a chunk it claims.
    #[error("proof of possession: {0}")]
    Possession(String),
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ObjectRecord {
    entry: ObjectEntry,
    needed: u8,
    chunks: Vec<ChunkInfo>,
}

/// Format version of a serialized [`Objects`] (a keeper's checkpoint): bump it when a field of
/// [`Objects`], of the records it holds or of its store changes.
pub const OBJECTS_STATE_VERSION: u8 = 1;

/// The keeper's view: ownership (accounts and chunk registry) plus each user's object index.
///
/// It serializes (with serde) to its whole state, everything [`Objects::apply_signed`]
/// depends on, so that a deserialized copy applies later operations exactly as the original
/// would ([`OBJECTS_STATE_VERSION`]). `==` compares whole states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Nonces used by each signer, while their operations could still be valid.
    nonces: HashSet<(AccountId, u64)>,
    /// The same nonces by expiry, to forget them once expired.
    nonces_by_expiry: BTreeSet<(u64, AccountId, u64)>,
    /// The latest expiry applied: log time is at least this minus [`MAX_OP_VALIDITY_MS`].
    latest_expiry: u64,
}

/// What [`Objects::check`] found a put needs beyond the state: the possession proofs to check
/// with providers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Chunks the user must show it holds.
    pub possession: Vec<PossessionCheck>,
}

/// A put's plan, checked against the state: the new chunks' placements and the chunks the user
/// claims without having uploaded them.
struct PutCheck {
    records: Vec<(ChunkId, Vec<Placement>)>,
    claims: Vec<(ChunkId, Vec<ShardSlot>)>,
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
            nonces: HashSet::new(),
            nonces_by_expiry: BTreeSet::new(),
            latest_expiry: 0,
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

    /// How many chunks are registered.
    pub fn chunk_count(&self) -> usize {
        self.chunk_k.len()
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

    /// `user`'s index record of `object`; [`ObjectError::NotOwner`] if it holds none.
    fn record(&self, user: AccountId, object: &ObjectId) -> Result<&ObjectRecord, ObjectError> {
        self.index
            .get(&(user, *object))
            .ok_or(ObjectError::NotOwner {
                user,
                object: *object,
            })
    }

    /// Drops one of `user`'s references to `object`: the one stored with `name` (sealed), or
    /// without a name the one stored last. Refused, changing nothing, if `name` is not listed.
    fn delete(
        &mut self,
        user: AccountId,
        object: &ObjectId,
        name: Option<&Vec<u8>>,
    ) -> Result<Applied, ObjectError> {
        let rec = self.record(user, object)?;
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
            KeeperOp::Evict { user, object } => {
                // Every reference goes, as that many deletes would: the plans' releases and
                // purges add up (only the last delete of a chunk's last reference purges it).
                // A user without the object is refused by the first delete.
                let mut all: Option<DeletePlan> = None;
                while all.is_none() || self.index.contains_key(&(*user, *object)) {
                    let Applied::Delete(plan) = self.delete(*user, object, None)? else {
                        break;
                    };
                    match &mut all {
                        None => all = Some(plan),
                        Some(all) => {
                            all.released.extend(plan.released);
                            all.purged.extend(plan.purged);
                            all.dereferenced = plan.dereferenced;
                            all.usage = plan.usage;
                        }
                    }
                }
                all.map(Applied::Delete)
                    .ok_or_else(|| ObjectError::Invalid("an eviction deleted nothing".into()))
            }
        }
    }

    /// The chunks of `user`'s `object` (manifest included), if it holds that object.
    pub fn object_chunks(&self, user: &AccountId, object: &ObjectId) -> Option<Vec<ChunkId>> {
        self.index
            .get(&(*user, *object))
            .map(|r| r.chunks.iter().map(|c| c.id).collect())
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

    /// The oldest expiry an operation may have and still be applied: the log's time is at
    /// least the latest applied expiry minus the longest validity.
    fn expiry_floor(&self) -> u64 {
        self.latest_expiry.saturating_sub(MAX_OP_VALIDITY_MS)
    }

    /// Refuses a nonce `user` used before and an expiry the log has passed.
    fn check_stamp(&self, user: &AccountId, env: &OpEnvelope) -> Result<(), ObjectError> {
        let floor = self.expiry_floor();
        if env.expires_ms <= floor {
            return Err(ObjectError::Expired {
                expires_ms: env.expires_ms,
                window: format!("the log has passed {floor}"),
            });
        }
        if self.nonces.contains(&(*user, env.nonce)) {
            return Err(ObjectError::Replayed {
                user: *user,
                nonce: env.nonce,
            });
        }
        Ok(())
    }

    /// Uses up `user`'s nonce and forgets nonces whose operations can no longer be applied.
    fn record_stamp(&mut self, user: AccountId, env: &OpEnvelope) {
        self.nonces.insert((user, env.nonce));
        self.nonces_by_expiry
            .insert((env.expires_ms, user, env.nonce));
        self.latest_expiry = self.latest_expiry.max(env.expires_ms);
        let floor = self.expiry_floor();
        while let Some(first) = self.nonces_by_expiry.first().copied() {
            if first.0 > floor {
                break;
            }
            self.nonces_by_expiry.remove(&first);
            self.nonces.remove(&(first.1, first.2));
        }
    }

    /// Nonces remembered (operations still within their window).
    pub fn remembered_nonces(&self) -> usize {
        self.nonces.len()
    }

    /// Applies a signed operation by `user` (its signature already verified): refuses a nonce
    /// used before ([`ObjectError::Replayed`]) or an expiry the log has passed
    /// ([`ObjectError::Expired`]), then applies [`OpEnvelope::op`]. The nonce is used up
    /// whether or not the operation is accepted; a refused operation changes nothing else.
    pub fn apply_signed(
        &mut self,
        user: AccountId,
        env: &OpEnvelope,
    ) -> Result<Applied, ObjectError> {
        self.check_stamp(&user, env)?;
        self.record_stamp(user, env);
        self.apply(user, &env.op)
    }

    /// Checks a signed operation by `user` before it enters the log, at `now_ms` (the checking
    /// keeper's clock), without changing anything: the validity window, the nonce, who may
    /// sign it, ownership for a delete, and for a put its shape, quota and that every new
    /// shard has its holder's receipt. The receipts' signatures are checked apart, without the
    /// state ([`OpEnvelope::verify_receipts`]); [`Objects::apply_signed`] later only matches
    /// them. What needs providers comes back in the [`Admission`]: the proofs of possession to
    /// check.
    ///
    /// An operation that passes may still be refused when applied, if the state changed in
    /// between (another operation came first).
    pub fn check(
        &self,
        user: AccountId,
        env: &OpEnvelope,
        now_ms: u64,
    ) -> Result<Admission, ObjectError> {
        let latest = now_ms.saturating_add(MAX_OP_VALIDITY_MS + CLOCK_SKEW_MS);
        if env.expires_ms <= now_ms || env.expires_ms > latest {
            return Err(ObjectError::Expired {
                expires_ms: env.expires_ms,
                window: format!("valid from now ({now_ms}) to {latest}"),
            });
        }
        self.check_stamp(&user, env)?;
        match &env.op {
            ObjectOp::Put {
                object,
                chunks,
                placements,
                receipts,
                possession,
                ..
            } => {
                let plan =
                    self.check_put(user, object, chunks, placements, receipts, possession)?;
                self.check_quota(user, chunks)?;
                let possession = plan
                    .claims
                    .into_iter()
                    .filter_map(|(chunk, slots)| {
                        let p = possession.iter().find(|p| p.chunk == chunk)?;
                        Some(PossessionCheck {
                            chunk,
                            key: crate::ticket::possession_key(&user, env.nonce, &chunk),
                            shards: slots.iter().map(|s| (s.id, s.holder)).collect(),
                            proofs: p.proofs.clone(),
                        })
                    })
                    .collect();
                Ok(Admission { possession })
            }
            ObjectOp::Delete { object } | ObjectOp::DeleteNamed { object, .. } => {
                let rec = self.record(user, object)?;
                if let ObjectOp::DeleteNamed { sealed, .. } = &env.op
                    && !rec.entry.sealed.contains(sealed)
                {
                    return Err(ObjectError::Invalid(format!(
                        "object {object} has no reference by that name"
                    )));
                }
                Ok(Admission::default())
            }
            ObjectOp::Keeper(op) => {
                if !self.keepers.contains(&user) {
                    return Err(ObjectError::NotKeeper { signer: user });
                }
                check_op(op).map_err(|e| ObjectError::Invalid(e.to_string()))?;
                Ok(Admission::default())
            }
        }
    }

    /// Refuses a put that would take `user` over its quota (as the ownership rules will).
    fn check_quota(&self, user: AccountId, chunks: &[ChunkInfo]) -> Result<(), ObjectError> {
        let Some(account) = self.ownership.account(&user)? else {
            return Ok(());
        };
        let needed = chunks
            .iter()
            .try_fold(0u64, |n, c| n.checked_add(c.stored_bytes))
            .unwrap_or(u64::MAX);
        if account
            .usage
            .checked_add(needed)
            .is_none_or(|u| u > account.quota)
        {
            return Err(OwnershipError::QuotaExceeded {
                user,
                usage: account.usage,
                needed,
                quota: account.quota,
            }
            .into());
        }
        Ok(())
    }

    /// A put's rules against the state: the manifest comes last; every new chunk comes with a
    /// complete placement on distinct providers and each shard's receipt from its holder,
    /// issued to `user`; every registered chunk `user` holds no reference to comes with that
    /// (the upload's receipts) or with proofs of possession, one per shard.
    fn check_put(
        &self,
        user: AccountId,
        object: &ObjectId,
        chunks: &[ChunkInfo],
        placements: &[ChunkPlacement],
        receipts: &[Signed<Receipt>],
        possession: &[Possession],
    ) -> Result<PutCheck, ObjectError> {
        if chunks.last().map(|c| c.id.0) != Some(object.0) {
            return Err(ObjectError::Invalid(
                "the manifest chunk must come last".into(),
            ));
        }
        let placed: BTreeMap<ChunkId, &ChunkPlacement> =
            placements.iter().map(|p| (p.chunk, p)).collect();
        let mut receipted: BTreeMap<(AccountId, ShardId), Receipt> = BTreeMap::new();
        for (i, r) in receipts.iter().enumerate() {
            let body = r
                .open_unverified()
                .map_err(|e| ObjectError::Receipt(format!("receipt {i}: {e}")))?;
            receipted.insert((r.signer, body.shard), body);
        }
        // Holders of each shard of `c` as placed, each with its receipt to `user`.
        let receipted_placement = |c: &ChunkInfo| -> Result<Vec<Placement>, ObjectError> {
            let p = placed.get(&c.id).ok_or_else(|| {
                ObjectError::Invalid(format!("new chunk {} has no placement", c.id.short()))
            })?;
            let mut holders = BTreeSet::new();
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
                match receipted.get(&(*h, *shard)) {
                    Some(r) if r.user == user => {}
                    Some(_) => {
                        return Err(ObjectError::Receipt(format!(
                            "the receipt for shard {i} of chunk {} was issued to someone else",
                            c.id.short()
                        )));
                    }
                    None => {
                        return Err(ObjectError::Receipt(format!(
                            "shard {i} of chunk {} has no receipt from {}",
                            c.id.short(),
                            h.short()
                        )));
                    }
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
            Ok(list)
        };
        let mut records: Vec<(ChunkId, Vec<Placement>)> = Vec::new();
        let mut claims: Vec<(ChunkId, Vec<ShardSlot>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for c in chunks {
            if !seen.insert(c.id) {
                continue;
            }
            match self.ownership.chunk(&c.id)? {
                None => records.push((c.id, receipted_placement(c)?)),
                Some(entry) => {
                    // A mismatching entry is refused by the ownership rules; a chunk the user
                    // holds already needs nothing more.
                    if !entry.matches(c) || self.ownership.refcount(&user, &c.id)? > 0 {
                        continue;
                    }
                    // Uploaded meanwhile with receipts (a race with another uploader): that
                    // shows possession as well as a proof does.
                    if placed.contains_key(&c.id) && receipted_placement(c).is_ok() {
                        continue;
                    }
                    let proofs = possession.iter().find(|p| p.chunk == c.id).ok_or_else(|| {
                        ObjectError::Possession(format!(
                            "chunk {} is stored already: show you hold its content",
                            c.id.short()
                        ))
                    })?;
                    if proofs.proofs.len() != entry.shards.len() {
                        return Err(ObjectError::Possession(format!(
                            "chunk {} has {} shards, {} proofs given",
                            c.id.short(),
                            entry.shards.len(),
                            proofs.proofs.len()
                        )));
                    }
                    claims.push((c.id, entry.shards));
                }
            }
        }
        Ok(PutCheck { records, claims })
    }

    /// Applies an operation by `user`, its envelope already accepted (see
    /// [`Objects::apply_signed`]). Refused operations change nothing.
    pub fn apply(&mut self, user: AccountId, op: &ObjectOp) -> Result<Applied, ObjectError> {
        match op {
            ObjectOp::Put {
                object,
                size,
                needed,
                sealed,
                chunks,
                placements,
                receipts,
                possession,
            } => {
                let PutCheck { records, .. } =
                    self.check_put(user, object, chunks, placements, receipts, possession)?;
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
                why: None,
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

    /// Every placed shard of `chunk` with its holder: `(holder, shard)`. Empty for a chunk
    /// not registered.
    pub fn held_shards(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, ShardId)>, ObjectError> {
        Ok(self.ownership.chunk(chunk)?.map_or_else(Vec::new, |e| {
            e.shards
                .iter()
                .filter_map(|s| s.holder.map(|h| (h, s.id)))
                .collect()
        }))
    }

    /// How many objects the user has.
    pub fn count(&self, user: &AccountId) -> u64 {
        self.list(user).len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::MemoryMeta;

    fn delete(nonce: u64, expires_ms: u64) -> OpEnvelope {
        OpEnvelope::new(
            ObjectOp::Delete {
                object: ObjectId([9; 32]),
            },
            nonce,
            expires_ms,
        )
    }

    #[test]
    fn a_nonce_is_used_once_and_remembered_only_while_it_could_apply() {
        let mut o = Objects::new(MemoryMeta::new());
        let (alice, bob) = (AccountId([1; 32]), AccountId([2; 32]));
        let t = 1_000_000;
        // Refused by the state rules, yet the nonce is used up.
        assert!(matches!(
            o.apply_signed(alice, &delete(1, t)),
            Err(ObjectError::NotOwner { .. })
        ));
        assert!(matches!(
            o.apply_signed(alice, &delete(1, t)),
            Err(ObjectError::Replayed { .. })
        ));
        assert!(matches!(
            o.check(alice, &delete(1, t), t - 1000),
            Err(ObjectError::Replayed { .. })
        ));
        // Nonces are per signer.
        assert!(matches!(
            o.apply_signed(bob, &delete(1, t)),
            Err(ObjectError::NotOwner { .. })
        ));
        assert_eq!(o.remembered_nonces(), 2);
        // The log moves on by a whole validity: the first operations can no longer apply, so
        // they are forgotten, and a late copy is refused as expired.
        let later = t + MAX_OP_VALIDITY_MS;
        let _ = o.apply_signed(alice, &delete(2, later));
        assert_eq!(o.remembered_nonces(), 1);
        assert!(matches!(
            o.apply_signed(alice, &delete(1, t)),
            Err(ObjectError::Expired { .. })
        ));
        // The checking keeper's own clock bounds the window on both sides.
        for (expires, now) in [(t, t), (t + MAX_OP_VALIDITY_MS + CLOCK_SKEW_MS + 1, t)] {
            assert!(matches!(
                o.check(alice, &delete(3, expires), now),
                Err(ObjectError::Expired { .. })
            ));
        }
    }
}

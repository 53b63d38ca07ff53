//! The holder persona (PmidNode): a provider's shard store and its bookkeeping.

use crate::id::ShardId;
use std::collections::HashMap;
use std::sync::Mutex;

/// A shard store failed or refused a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardStoreError {
    /// The bytes offered do not hash to the shard id; nothing was stored.
    #[error("shard bytes hash to {actual}, not {id}")]
    Mismatch {
        /// The id the bytes were offered under.
        id: ShardId,
        /// What they hash to.
        actual: ShardId,
    },
    /// A stored shard no longer matches its id (bit rot, truncation, tampering).
    #[error("stored shard {id} is corrupt: {reason}")]
    Corrupt {
        /// The shard.
        id: ShardId,
        /// What is wrong.
        reason: String,
    },
    /// The backing storage has no room left (the disk is full); nothing was stored.
    #[error("shard store has no space left: {reason}")]
    NoSpace {
        /// The backend's message.
        reason: String,
    },
    /// The backend failed (I/O, lock).
    #[error("shard store {op} failed: {reason}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// The backend's message.
        reason: String,
    },
}

/// Content-addressed shard bytes. Every shard is stored under `blake3(bytes)`.
///
/// Contract (checked by `testkit::shard_store_conformance`): `put` refuses bytes that do not
/// hash to the id and stores nothing; storing a shard twice keeps one copy and reports it was
/// already there; `get` returns exactly the stored bytes or a [`ShardStoreError::Corrupt`] if
/// they no longer match; `delete` frees the space (`used_bytes` drops by the shard's length).
pub trait ShardStore: Send + Sync {
    /// Stores `bytes` as shard `id`; returns true if newly stored, false if already held.
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError>;
    /// [`ShardStore::put`] for bytes already checked against their id. The default calls
    /// `put`, which checks again; a store that hashes in `put` overrides this to skip it (the
    /// [`Holder`] checks every shard it accepts before storing it).
    fn put_verified(&self, shard: Verified<'_>) -> Result<bool, ShardStoreError> {
        self.put(shard.id(), shard.bytes())
    }
    /// The shard's bytes, verified, or `None` if not held.
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError>;
    /// True if the shard is held.
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError>;
    /// Deletes the shard and frees its space; returns true if it was held.
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError>;
    /// Every shard held, in ascending id order.
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError>;
    /// Bytes of shard data held.
    fn used_bytes(&self) -> Result<u64, ShardStoreError>;
    /// Up to `max` held shards with ids above `after` (from the lowest when `None`), in
    /// ascending order: a page of [`ShardStore::list`]. The default lists them all; a store
    /// that can start partway overrides it, since keepers page through a provider's shards.
    fn list_after(
        &self,
        after: Option<&ShardId>,
        max: usize,
    ) -> Result<Vec<ShardId>, ShardStoreError> {
        let mut ids = self.list()?;
        let start = after.map_or(0, |a| ids.partition_point(|id| id <= a));
        ids.drain(..start);
        ids.truncate(max);
        Ok(ids)
    }
    /// How many shards are held (`list().len()`). The default lists them all; a store that
    /// keeps a count overrides it, since providers answer it on every liveness probe.
    fn shard_count(&self) -> Result<u64, ShardStoreError> {
        Ok(self.list()?.len() as u64)
    }
    /// Bytes the backing storage can still take, if the store can tell (a file system's free
    /// space); `None` when only the holder's configured capacity bounds it (the default).
    fn free_bytes(&self) -> Result<Option<u64>, ShardStoreError> {
        Ok(None)
    }
}

/// A shared store is a store: several owners (a provider and a test, say) use one.
impl<S: ShardStore + ?Sized> ShardStore for std::sync::Arc<S> {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        (**self).put(id, bytes)
    }
    fn put_verified(&self, shard: Verified<'_>) -> Result<bool, ShardStoreError> {
        (**self).put_verified(shard)
    }
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        (**self).get(id)
    }
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        (**self).has(id)
    }
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        (**self).delete(id)
    }
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        (**self).list()
    }
    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        (**self).used_bytes()
    }
    fn list_after(
        &self,
        after: Option<&ShardId>,
        max: usize,
    ) -> Result<Vec<ShardId>, ShardStoreError> {
        (**self).list_after(after, max)
    }
    fn shard_count(&self) -> Result<u64, ShardStoreError> {
        (**self).shard_count()
    }
    fn free_bytes(&self) -> Result<Option<u64>, ShardStoreError> {
        (**self).free_bytes()
    }
}

/// Shard bytes checked to hash to their id; only [`Verified::check`] makes one, so a store
/// handed one ([`ShardStore::put_verified`]) need not hash the bytes again.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    id: ShardId,
    bytes: &'a [u8],
}

impl<'a> Verified<'a> {
    /// Hashes `bytes`: [`ShardStoreError::Mismatch`] unless they are shard `id`.
    pub fn check(id: &ShardId, bytes: &'a [u8]) -> Result<Self, ShardStoreError> {
        let actual = ShardId::of(bytes);
        if actual != *id {
            return Err(ShardStoreError::Mismatch { id: *id, actual });
        }
        Ok(Self { id: *id, bytes })
    }
    /// The shard id.
    pub fn id(&self) -> &ShardId {
        &self.id
    }
    /// The shard's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// In-memory [`ShardStore`].
#[derive(Debug, Default)]
pub struct MemoryShardStore {
    inner: Mutex<HashMap<ShardId, Vec<u8>>>,
}

impl MemoryShardStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<ShardId, Vec<u8>>>, ShardStoreError> {
        self.inner.lock().map_err(|_| ShardStoreError::Backend {
            op: "lock",
            reason: "poisoned".into(),
        })
    }
}

impl ShardStore for MemoryShardStore {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        self.put_verified(Verified::check(id, bytes)?)
    }
    fn put_verified(&self, shard: Verified<'_>) -> Result<bool, ShardStoreError> {
        let mut m = self.lock()?;
        if m.contains_key(shard.id()) {
            return Ok(false);
        }
        m.insert(*shard.id(), shard.bytes().to_vec());
        Ok(true)
    }
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        Ok(self.lock()?.get(id).cloned())
    }
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        Ok(self.lock()?.contains_key(id))
    }
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        Ok(self.lock()?.remove(id).is_some())
    }
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        let mut v: Vec<ShardId> = self.lock()?.keys().copied().collect();
        v.sort_unstable();
        Ok(v)
    }
    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        Ok(self.lock()?.values().map(|b| b.len() as u64).sum())
    }
    fn shard_count(&self) -> Result<u64, ShardStoreError> {
        Ok(self.lock()?.len() as u64)
    }
}

/// A holder refused or failed an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The shard does not fit: in the capacity the provider offers, or on its disk.
    #[error("holder full: a shard of {len} bytes does not fit in the {room} bytes left")]
    Full {
        /// The room left ([`Holder::room`]).
        room: u64,
        /// The shard's length.
        len: u64,
    },
    /// The shard store refused or failed.
    #[error(transparent)]
    Store(#[from] ShardStoreError),
}

/// Free disk space a holder leaves unused (for the store's own files and temporaries).
pub const DISK_RESERVE: u64 = 4 << 20;

/// The holder persona: a provider's shards within the capacity it offers.
#[derive(Debug)]
pub struct Holder<S> {
    store: S,
    capacity: u64,
}

impl<S: ShardStore> Holder<S> {
    /// A holder offering `capacity` bytes over `store`.
    pub fn new(store: S, capacity: u64) -> Self {
        Self { store, capacity }
    }

    /// The shard store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Capacity offered in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Accepts a shard (verified against its id) if it fits; returns true if newly stored.
    pub fn accept(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, HolderError> {
        let shard = Verified::check(id, bytes)?;
        if self.store.has(id)? {
            return Ok(false);
        }
        let room = self.room()?;
        let len = bytes.len() as u64;
        if len > room {
            return Err(HolderError::Full { room, len });
        }
        match self.store.put_verified(shard) {
            Err(ShardStoreError::NoSpace { .. }) => Err(HolderError::Full { room: 0, len }),
            other => Ok(other?),
        }
    }

    /// Bytes this holder can still take: what is left of its capacity, and no more than its
    /// store's free space less [`DISK_RESERVE`].
    pub fn room(&self) -> Result<u64, HolderError> {
        let left = self.capacity.saturating_sub(self.store.used_bytes()?);
        Ok(match self.store.free_bytes()? {
            Some(free) => left.min(free.saturating_sub(DISK_RESERVE)),
            None => left,
        })
    }

    /// Serves a shard, verified.
    pub fn read(&self, id: &ShardId) -> Result<Option<Vec<u8>>, HolderError> {
        Ok(self.store.get(id)?)
    }

    /// Deletes purged shards; returns how many were held.
    pub fn purge(&self, ids: &[ShardId]) -> Result<usize, HolderError> {
        let mut n = 0;
        for id in ids {
            n += usize::from(self.store.delete(id)?);
        }
        Ok(n)
    }
}

//! The metadata storage trait the ownership state machine runs on, and its in-memory backend.
//!
//! The trait is deliberately small: point reads and writes of accounts, reference counts and
//! registry entries, plus one range question per chunk ("does it have any owner?"). Every call is
//! a key-value lookup, so the cost of an operation does not grow with the number of chunks or
//! users. A durable backend maps each write closure onto one transaction that commits whole or
//! not at all.

use super::types::{Account, ChunkEntry};
use crate::id::{AccountId, ChunkId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A metadata store failed or holds something unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored record does not decode (corrupt or truncated). Nothing was changed.
    #[error("corrupt {what} record: {reason}")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Stored records disagree with each other (for example usage below what deletes return).
    #[error("inconsistent metadata: {0}")]
    Inconsistent(String),
    /// The backend failed (I/O, lock, commit). Nothing was changed.
    #[error("metadata store {op} failed: {reason}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// The backend's message.
        reason: String,
    },
}

/// Reads of the ownership metadata.
pub trait MetaRead {
    /// A user's account, if opened.
    fn account(&self, user: &AccountId) -> Result<Option<Account>, StoreError>;
    /// How many times `user` references `chunk` (0: not an owner).
    fn refcount(&self, chunk: &ChunkId, user: &AccountId) -> Result<u64, StoreError>;
    /// True if any user references `chunk` (one seek, whatever the number of owners).
    fn has_owners(&self, chunk: &ChunkId) -> Result<bool, StoreError>;
    /// Every owner of `chunk` with its reference count, ordered by account id.
    fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, StoreError>;
    /// A chunk's registry entry, if registered.
    fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, StoreError>;
}

/// Writes of the ownership metadata, inside one transaction. Reads see earlier writes.
pub trait MetaTxn: MetaRead {
    /// Creates or replaces an account.
    fn put_account(&mut self, user: &AccountId, account: &Account) -> Result<(), StoreError>;
    /// Sets a reference count; 0 removes the reference.
    fn set_refcount(&mut self, chunk: &ChunkId, user: &AccountId, n: u64)
    -> Result<(), StoreError>;
    /// Creates or replaces a registry entry.
    fn put_chunk(&mut self, chunk: &ChunkId, entry: &ChunkEntry) -> Result<(), StoreError>;
    /// Removes a registry entry (no-op if absent).
    fn remove_chunk(&mut self, chunk: &ChunkId) -> Result<(), StoreError>;
}

/// A store of ownership metadata with all-or-nothing write transactions.
pub trait MetaStore {
    /// Runs `f` over a consistent snapshot.
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E>;

    /// Runs `f` in one write transaction: if `f` returns `Ok` every write is committed (durably,
    /// for a durable backend) before this returns; if it returns `Err`, or the commit fails,
    /// none of its writes is visible, now or after a crash.
    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E>;
}

/// A shared reference is a store too: several [`crate::ownership::Ownership`] views (e.g. one
/// per batch of log entries) can work on one backend.
impl<S: MetaStore> MetaStore for &S {
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E> {
        (**self).read(f)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        (**self).write(f)
    }
}

#[derive(Default, Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct MemState {
    accounts: HashMap<AccountId, Account>,
    refs: BTreeMap<(ChunkId, AccountId), u64>,
    chunks: HashMap<ChunkId, ChunkEntry>,
}

enum Undo {
    Account(AccountId, Option<Account>),
    Ref(ChunkId, AccountId, Option<u64>),
    Chunk(ChunkId, Option<ChunkEntry>),
}

/// In-memory [`MetaStore`]: hash maps for accounts and entries, an ordered map for references.
/// A failed transaction is rolled back from an undo log.
///
/// It serializes (with serde) to everything it holds, for a keeper's checkpoint; the hash maps
/// make the bytes order-dependent, so compare stores with `==`, not by their encodings.
#[derive(Default, Debug)]
pub struct MemoryMeta {
    state: Mutex<MemState>,
}

/// A copy of the whole store (a keeper copies its state under its lock and serializes the copy
/// outside it).
impl Clone for MemoryMeta {
    fn clone(&self) -> Self {
        Self {
            state: Mutex::new(self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }
}

impl PartialEq for MemoryMeta {
    fn eq(&self, other: &Self) -> bool {
        if std::ptr::eq(self, other) {
            return true;
        }
        match (self.lock(), other.lock()) {
            (Ok(a), Ok(b)) => *a == *b,
            _ => false,
        }
    }
}

impl serde::Serialize for MemoryMeta {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let guard = self.lock().map_err(serde::ser::Error::custom)?;
        guard.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for MemoryMeta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            state: Mutex::new(MemState::deserialize(d)?),
        })
    }
}

impl MemoryMeta {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemState>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Backend {
            op: "lock",
            reason: "a writer panicked inside a transaction".into(),
        })
    }
}

impl MetaRead for MemState {
    fn account(&self, user: &AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts.get(user).copied())
    }
    fn refcount(&self, chunk: &ChunkId, user: &AccountId) -> Result<u64, StoreError> {
        Ok(self.refs.get(&(*chunk, *user)).copied().unwrap_or(0))
    }
    fn has_owners(&self, chunk: &ChunkId) -> Result<bool, StoreError> {
        let lo = (*chunk, AccountId([0; 32]));
        Ok(self
            .refs
            .range(lo..)
            .next()
            .is_some_and(|((c, _), _)| c == chunk))
    }
    fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, StoreError> {
        let lo = (*chunk, AccountId([0; 32]));
        let hi = (*chunk, AccountId([0xff; 32]));
        Ok(self
            .refs
            .range(lo..=hi)
            .map(|((_, u), n)| (*u, *n))
            .collect())
    }
    fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, StoreError> {
        Ok(self.chunks.get(chunk).cloned())
    }
}

struct MemTxn<'a> {
    state: &'a mut MemState,
    undo: Vec<Undo>,
}

impl MetaRead for MemTxn<'_> {
    fn account(&self, user: &AccountId) -> Result<Option<Account>, StoreError> {
        self.state.account(user)
    }
    fn refcount(&self, chunk: &ChunkId, user: &AccountId) -> Result<u64, StoreError> {
        self.state.refcount(chunk, user)
    }
    fn has_owners(&self, chunk: &ChunkId) -> Result<bool, StoreError> {
        self.state.has_owners(chunk)
    }
    fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, StoreError> {
        self.state.owners(chunk)
    }
    fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, StoreError> {
        self.state.chunk(chunk)
    }
}

impl MetaTxn for MemTxn<'_> {
    fn put_account(&mut self, user: &AccountId, account: &Account) -> Result<(), StoreError> {
        let old = self.state.accounts.insert(*user, *account);
        self.undo.push(Undo::Account(*user, old));
        Ok(())
    }
    fn set_refcount(
        &mut self,
        chunk: &ChunkId,
        user: &AccountId,
        n: u64,
    ) -> Result<(), StoreError> {
        let old = if n == 0 {
            self.state.refs.remove(&(*chunk, *user))
        } else {
            self.state.refs.insert((*chunk, *user), n)
        };
        self.undo.push(Undo::Ref(*chunk, *user, old));
        Ok(())
    }
    fn put_chunk(&mut self, chunk: &ChunkId, entry: &ChunkEntry) -> Result<(), StoreError> {
        let old = self.state.chunks.insert(*chunk, entry.clone());
        self.undo.push(Undo::Chunk(*chunk, old));
        Ok(())
    }
    fn remove_chunk(&mut self, chunk: &ChunkId) -> Result<(), StoreError> {
        let old = self.state.chunks.remove(chunk);
        self.undo.push(Undo::Chunk(*chunk, old));
        Ok(())
    }
}

impl MemTxn<'_> {
    fn rollback(self) {
        for u in self.undo.into_iter().rev() {
            match u {
                Undo::Account(k, Some(v)) => {
                    self.state.accounts.insert(k, v);
                }
                Undo::Account(k, None) => {
                    self.state.accounts.remove(&k);
                }
                Undo::Ref(c, u, Some(v)) => {
                    self.state.refs.insert((c, u), v);
                }
                Undo::Ref(c, u, None) => {
                    self.state.refs.remove(&(c, u));
                }
                Undo::Chunk(k, Some(v)) => {
                    self.state.chunks.insert(k, v);
                }
                Undo::Chunk(k, None) => {
                    self.state.chunks.remove(&k);
                }
            }
        }
    }
}

impl MetaStore for MemoryMeta {
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E> {
        let guard = self.lock()?;
        f(&*guard)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut guard = self.lock()?;
        let mut txn = MemTxn {
            state: &mut guard,
            undo: Vec::new(),
        };
        match f(&mut txn) {
            Ok(r) => Ok(r),
            Err(e) => {
                txn.rollback();
                Err(e)
            }
        }
    }
}

//! [`RedbMeta`]: the ownership metadata in a redb database, one durable transaction per object,
//! or (driven by a durable log) unsynced transactions with periodic durable checkpoints.

use memo_core::ownership::{
    Account, ChunkEntry, MetaRead, MetaStore, MetaTxn, StoreError, refcount_from_bytes,
    refcount_to_bytes,
};
use memo_core::{AccountId, ChunkId};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Format version of the database layout; refused on open if different.
pub const REDB_SCHEMA_VERSION: u64 = 1;

/// user id → [`Account`] record (versioned postcard).
const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("memo.accounts");
/// The chunk registry and the reference counts in one table, so that a chunk's entry and its
/// owners' counts sit next to each other (usually in one B-tree leaf):
/// `chunk id ‖ 0 ‖ 0…0` → [`ChunkEntry`] record (versioned postcard);
/// `chunk id ‖ 1 ‖ user id` → reference count (8 bytes LE). One chunk's owners form one range.
const REGISTRY: TableDefinition<&[u8; 65], &[u8]> = TableDefinition::new("memo.registry");

fn entry_key(chunk: &ChunkId) -> [u8; 65] {
    let mut k = [0u8; 65];
    k[..32].copy_from_slice(chunk.as_bytes());
    k
}

fn ref_key(chunk: &ChunkId, user: &AccountId) -> [u8; 65] {
    let mut k = [0u8; 65];
    k[..32].copy_from_slice(chunk.as_bytes());
    k[32] = 1;
    k[33..].copy_from_slice(user.as_bytes());
    k
}
/// "schema" → layout version; "applied" → log entries applied (see [`RedbMeta::log_at`]).
const META: TableDefinition<&str, u64> = TableDefinition::new("memo.meta");
const APPLIED: &str = "applied";

/// Default number of log entries applied between two durable checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1024;

fn backend<E: std::fmt::Display>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend {
        op,
        reason: e.to_string(),
    }
}

fn storage(op: &'static str) -> impl FnOnce(redb::StorageError) -> StoreError {
    move |e| match e {
        redb::StorageError::Corrupted(reason) => StoreError::Corrupt {
            what: "redb page",
            reason,
        },
        e => StoreError::Backend {
            op,
            reason: e.to_string(),
        },
    }
}

/// Ownership metadata in redb (see [`MetaStore`]).
///
/// Layout: two tables keyed by fixed-width ids (accounts; the registry with each chunk's
/// entry followed by its owners' reference counts), values in memo's canonical versioned
/// encodings, so a record that does not decode (corrupt or truncated) is reported as
/// [`StoreError::Corrupt`] and the transaction that met it changes nothing. Every
/// [`MetaStore::write`] is one redb write transaction committed with
/// [`Durability::Immediate`]: when it returns the object's put or delete is on disk, and a crash
/// at any moment leaves the state before or after it (redb's copy-on-write commit).
///
/// Cost per operation: a put or delete of an object of n chunks is n point reads of the
/// registry and the reference table, n writes, at most n one-seek range probes, and one account
/// read and write, all B-tree lookups, plus one commit. Nothing scans.
///
/// # Driven by a durable log
///
/// A keeper's metadata is a deterministic function of its durable op log, so it need not pay
/// an fsync per object: through [`RedbMeta::log_at`] each batch of log entries is applied in
/// one transaction that also records how many entries are applied, committed without fsync
/// ([`Durability::None`]: atomic and visible at once), and every
/// [`RedbMeta::set_checkpoint_every`] entries one commit is durable. After a crash redb
/// reopens at the last durable commit, a state *between* whole batches with the matching
/// [`RedbMeta::applied`] position, and the owner replays the log from there. The
/// acknowledgement point of an object operation is then its durable append to the log.
pub struct RedbMeta {
    db: Database,
    /// Log entries between durable checkpoints.
    checkpoint_every: AtomicU64,
    /// The `applied` position of the last durable commit.
    durable_at: AtomicU64,
}

impl std::fmt::Debug for RedbMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbMeta")
    }
}

impl RedbMeta {
    /// Opens (or creates) the database at `path` with redb's default cache.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// Opens (or creates) the database at `path`, with a page cache of `cache_bytes` if given.
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<usize>,
    ) -> Result<Self, StoreError> {
        let mut b = Database::builder();
        if let Some(c) = cache_bytes {
            b.set_cache_size(c);
        }
        let db = b.create(path.as_ref()).map_err(backend("open"))?;
        let txn = db.begin_write().map_err(backend("begin write"))?;
        {
            txn.open_table(ACCOUNTS).map_err(backend("open table"))?;
            txn.open_table(REGISTRY).map_err(backend("open table"))?;
            let mut meta = txn.open_table(META).map_err(backend("open table"))?;
            let found = meta
                .get("schema")
                .map_err(storage("read"))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", REDB_SCHEMA_VERSION)
                        .map_err(storage("write"))?;
                }
                Some(REDB_SCHEMA_VERSION) => {}
                Some(v) => {
                    return Err(StoreError::Corrupt {
                        what: "schema",
                        reason: format!(
                            "database layout version {v}; this build reads {REDB_SCHEMA_VERSION}"
                        ),
                    });
                }
            }
        }
        txn.commit().map_err(backend("commit"))?;
        let this = Self {
            db,
            checkpoint_every: AtomicU64::new(DEFAULT_CHECKPOINT_EVERY),
            durable_at: AtomicU64::new(0),
        };
        this.durable_at.store(this.applied()?, Ordering::Relaxed);
        Ok(this)
    }

    /// Log entries whose effects the database holds (0 if never driven by a log). On open after
    /// a crash this is the position of the last durable checkpoint: replay the log from here.
    pub fn applied(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let meta = txn.open_table(META).map_err(backend("open table"))?;
        Ok(meta
            .get(APPLIED)
            .map_err(storage("read"))?
            .map_or(0, |v| v.value()))
    }

    /// Sets how many log entries may be applied between two durable checkpoints (at least 1;
    /// 1 makes every batch durable). More means fewer fsyncs and a longer replay after a crash.
    pub fn set_checkpoint_every(&self, entries: u64) {
        self.checkpoint_every
            .store(entries.max(1), Ordering::Relaxed);
    }

    /// A [`MetaStore`] whose one write transaction applies log entries `first..first + count`:
    /// it refuses to commit unless [`RedbMeta::applied`] is `first` (entries are applied once,
    /// in order), records `first + count` as applied in the same transaction, and is durable
    /// only when a checkpoint is due. Use one per batch, e.g. with
    /// [`memo_core::ownership::Ownership::apply_batch`], whose refused objects still commit the
    /// position (a refusal is a deterministic outcome of the entry).
    pub fn log_at(&self, first: u64, count: u64) -> LogApply<'_> {
        LogApply {
            meta: self,
            first,
            count,
        }
    }

    /// Reads every record once, so that the page cache holds as much of the database as fits
    /// (a keeper's references are spread at random over the registry, so a cold cache costs a
    /// disk read per touched page until it is warm). Returns the records read.
    pub fn warm_cache(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let t = open_read(&txn)?;
        let mut n = 0u64;
        for r in t.accounts.iter().map_err(storage("read"))? {
            r.map_err(storage("read"))?;
            n += 1;
        }
        for r in t.reg.iter().map_err(storage("read"))? {
            r.map_err(storage("read"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Makes everything applied so far durable now (e.g. before a clean shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let at = self.applied()?;
        self.write_with(Durability::Immediate, None, |_| Ok::<_, StoreError>(()))?;
        self.durable_at.store(at, Ordering::Relaxed);
        Ok(())
    }

    fn write_logged<R, E: From<StoreError>>(
        &self,
        first: u64,
        count: u64,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        let end = first
            .checked_add(count)
            .ok_or_else(|| StoreError::Inconsistent("log position overflow".into()))?;
        let durable = end.saturating_sub(self.durable_at.load(Ordering::Relaxed))
            >= self.checkpoint_every.load(Ordering::Relaxed);
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        let r = self.write_with(durability, Some((first, end)), f)?;
        if durable {
            self.durable_at.store(end, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// Like [`MetaStore::write`] but committed without fsync ([`Durability::None`]): atomic and
    /// visible, yet lost on a crash unless a later durable commit follows. For bulk loading.
    pub fn write_unsynced<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_with(Durability::None, None, f)
    }

    /// One write transaction; with `log = Some((first, end))` it also moves the applied
    /// position from `first` (checked) to `end`.
    fn write_with<R, E: From<StoreError>>(
        &self,
        durability: Durability,
        log: Option<(u64, u64)>,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut txn = self.db.begin_write().map_err(backend("begin write"))?;
        txn.set_durability(durability)
            .map_err(backend("set durability"))?;
        let result = (|| {
            if let Some((first, end)) = log {
                let mut meta = txn.open_table(META).map_err(backend("open table"))?;
                let applied = meta
                    .get(APPLIED)
                    .map_err(storage("read"))?
                    .map_or(0, |v| v.value());
                if applied != first {
                    return Err(StoreError::Inconsistent(format!(
                        "log entries from {first} offered, but {applied} are applied"
                    ))
                    .into());
                }
                meta.insert(APPLIED, end).map_err(storage("write"))?;
            }
            let mut tables = open_write(&txn)?;
            f(&mut tables)
        })();
        match result {
            Ok(v) => {
                txn.commit().map_err(backend("commit"))?;
                Ok(v)
            }
            Err(e) => {
                // Dropping would abort too; an abort error cannot un-write anything.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// The underlying database, for tests and maintenance (compaction, integrity checks).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

type WTables<'t> = Tables<
    Table<'t, &'static [u8; 32], &'static [u8]>,
    Table<'t, &'static [u8; 65], &'static [u8]>,
>;

fn open_write(txn: &WriteTransaction) -> Result<WTables<'_>, StoreError> {
    Ok(Tables {
        accounts: txn.open_table(ACCOUNTS).map_err(backend("open table"))?,
        reg: txn.open_table(REGISTRY).map_err(backend("open table"))?,
    })
}

type RTables = Tables<
    redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    redb::ReadOnlyTable<&'static [u8; 65], &'static [u8]>,
>;

fn open_read(txn: &ReadTransaction) -> Result<RTables, StoreError> {
    Ok(Tables {
        accounts: txn.open_table(ACCOUNTS).map_err(backend("open table"))?,
        reg: txn.open_table(REGISTRY).map_err(backend("open table"))?,
    })
}

struct Tables<A, G> {
    accounts: A,
    reg: G,
}

impl<A, G> MetaRead for Tables<A, G>
where
    A: ReadableTable<&'static [u8; 32], &'static [u8]>,
    G: ReadableTable<&'static [u8; 65], &'static [u8]>,
{
    fn account(&self, user: &AccountId) -> Result<Option<Account>, StoreError> {
        match self
            .accounts
            .get(user.as_bytes())
            .map_err(storage("read"))?
        {
            Some(v) => Account::from_bytes(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn refcount(&self, chunk: &ChunkId, user: &AccountId) -> Result<u64, StoreError> {
        match self
            .reg
            .get(&ref_key(chunk, user))
            .map_err(storage("read"))?
        {
            Some(v) => refcount_from_bytes(v.value()),
            None => Ok(0),
        }
    }

    fn has_owners(&self, chunk: &ChunkId) -> Result<bool, StoreError> {
        let lo = ref_key(chunk, &AccountId([0; 32]));
        let hi = ref_key(chunk, &AccountId([0xff; 32]));
        let mut range = self
            .reg
            .range::<&[u8; 65]>(&lo..=&hi)
            .map_err(storage("read"))?;
        match range.next() {
            None => Ok(false),
            Some(r) => r.map(|_| true).map_err(storage("read")),
        }
    }

    fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, StoreError> {
        let lo = ref_key(chunk, &AccountId([0; 32]));
        let hi = ref_key(chunk, &AccountId([0xff; 32]));
        let mut out = Vec::new();
        for item in self
            .reg
            .range::<&[u8; 65]>(&lo..=&hi)
            .map_err(storage("read"))?
        {
            let (k, v) = item.map_err(storage("read"))?;
            let mut user = [0u8; 32];
            user.copy_from_slice(&k.value()[33..]);
            out.push((AccountId(user), refcount_from_bytes(v.value())?));
        }
        Ok(out)
    }

    fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, StoreError> {
        match self.reg.get(&entry_key(chunk)).map_err(storage("read"))? {
            Some(v) => ChunkEntry::from_bytes(v.value()).map(Some),
            None => Ok(None),
        }
    }
}

impl MetaTxn for WTables<'_> {
    fn put_account(&mut self, user: &AccountId, account: &Account) -> Result<(), StoreError> {
        let bytes = account.to_bytes();
        self.accounts
            .insert(user.as_bytes(), bytes.as_slice())
            .map_err(storage("write"))?;
        Ok(())
    }

    fn set_refcount(
        &mut self,
        chunk: &ChunkId,
        user: &AccountId,
        n: u64,
    ) -> Result<(), StoreError> {
        let key = ref_key(chunk, user);
        if n == 0 {
            self.reg.remove(&key).map_err(storage("write"))?;
        } else {
            let v = refcount_to_bytes(n);
            self.reg
                .insert(&key, v.as_slice())
                .map_err(storage("write"))?;
        }
        Ok(())
    }

    fn put_chunk(&mut self, chunk: &ChunkId, entry: &ChunkEntry) -> Result<(), StoreError> {
        let bytes = entry.to_bytes();
        self.reg
            .insert(&entry_key(chunk), bytes.as_slice())
            .map_err(storage("write"))?;
        Ok(())
    }

    fn remove_chunk(&mut self, chunk: &ChunkId) -> Result<(), StoreError> {
        self.reg
            .remove(&entry_key(chunk))
            .map_err(storage("write"))?;
        Ok(())
    }
}

impl MetaStore for RedbMeta {
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let tables = open_read(&txn)?;
        f(&tables)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_with(Durability::Immediate, None, f)
    }
}

/// Applies a batch of log entries to a [`RedbMeta`] (see [`RedbMeta::log_at`]). Reads see the
/// latest state; its one write transaction must be the whole batch.
#[derive(Debug)]
pub struct LogApply<'a> {
    meta: &'a RedbMeta,
    first: u64,
    count: u64,
}

impl MetaStore for LogApply<'_> {
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E> {
        self.meta.read(f)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        self.meta.write_logged(self.first, self.count, f)
    }
}

/// Raw table access for tests that damage records on purpose.
#[doc(hidden)]
pub mod raw {
    use super::*;

    /// Overwrites the raw value of a chunk entry.
    pub fn put_chunk_bytes(m: &RedbMeta, chunk: &ChunkId, bytes: &[u8]) -> Result<(), StoreError> {
        let txn = m.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut t = txn.open_table(REGISTRY).map_err(backend("open table"))?;
            t.insert(&entry_key(chunk), bytes)
                .map_err(storage("write"))?;
        }
        txn.commit().map_err(backend("commit"))
    }

    /// Overwrites the raw value of a reference count.
    pub fn put_ref_bytes(
        m: &RedbMeta,
        chunk: &ChunkId,
        user: &AccountId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let txn = m.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut t = txn.open_table(REGISTRY).map_err(backend("open table"))?;
            t.insert(&ref_key(chunk, user), bytes)
                .map_err(storage("write"))?;
        }
        txn.commit().map_err(backend("commit"))
    }

    /// Overwrites the raw value of an account.
    pub fn put_account_bytes(
        m: &RedbMeta,
        user: &AccountId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let txn = m.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut t = txn.open_table(ACCOUNTS).map_err(backend("open table"))?;
            t.insert(user.as_bytes(), bytes).map_err(storage("write"))?;
        }
        txn.commit().map_err(backend("commit"))
    }

    /// Overwrites the stored layout version.
    pub fn set_schema_version(m: &RedbMeta, version: u64) -> Result<(), StoreError> {
        let txn = m.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut t = txn.open_table(META).map_err(backend("open table"))?;
            t.insert("schema", version).map_err(storage("write"))?;
        }
        txn.commit().map_err(backend("commit"))
    }
}

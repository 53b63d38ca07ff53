//! [`RedbMeta`]: the ownership metadata in redb, log-structured: every change of a chunk's
//! record is appended, an in-memory index points at each chunk's current record, and a cleaner
//! reclaims the replaced ones. One durable transaction per object, or (driven by a durable
//! log) unsynced transactions with periodic durable checkpoints.

use memo_core::ownership::{
    Account, ChunkEntry, MetaRead, MetaStore, MetaTxn, StoreError, refcount_from_bytes,
    refcount_to_bytes,
};
use memo_core::{AccountId, ChunkId};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Format version of the database layout; refused on open if different.
pub const REDB_SCHEMA_VERSION: u64 = 2;

/// user id → [`Account`] record (versioned postcard). Few and small: updated in place.
const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("memo.accounts");
/// The chunk registry and the reference counts, as a log of records: sequence number →
/// `chunk id ‖ 1 ‖ owners ‖ entry` (a chunk's current state) or `chunk id ‖ 0` (the chunk is
/// gone). A chunk's current record is its record with the highest sequence number; older ones
/// are garbage until the cleaner removes them (see [`RedbMeta`]).
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("memo.records");
/// "schema" → layout version; "applied" → log entries applied (see [`RedbMeta::log_at`]).
const META: TableDefinition<&str, u64> = TableDefinition::new("memo.meta");
const APPLIED: &str = "applied";

/// Default number of log entries applied between two durable checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1024;

/// Default size (records) below which the cleaner never runs.
pub const DEFAULT_CLEANING_FLOOR: u64 = 4096;

/// Records the cleaner examines per record a transaction appends, while garbage exceeds live.
const CLEAN_PER_APPEND: u64 = 4;

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

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "chunk record",
        reason: reason.into(),
    }
}

// ---- records ----------------------------------------------------------------------------------

const GONE: u8 = 0;
const LIVE: u8 = 1;
/// The entry-length value of a record without a registry entry.
const NO_ENTRY: u32 = u32::MAX;

/// A reference count as stored: 8 bytes LE holding a non-zero count, or (damaged) anything else
/// ([`refcount_from_bytes`] decides), reported as corrupt when read and kept as it is when other
/// owners of the chunk change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Count {
    Ok(u64),
    Raw(Vec<u8>),
}

impl Count {
    fn from_bytes(b: &[u8]) -> Count {
        match refcount_from_bytes(b) {
            Ok(n) => Count::Ok(n),
            Err(_) => Count::Raw(b.to_vec()),
        }
    }

    fn get(&self) -> Result<u64, StoreError> {
        match self {
            Count::Ok(n) => Ok(*n),
            Count::Raw(b) => refcount_from_bytes(b),
        }
    }
}

/// One chunk's state: its registry entry (encoded; decoded only when read, so a damaged entry
/// is reported by the reads that need it) and its owners, ordered by account id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rec {
    entry: Option<Vec<u8>>,
    owners: Vec<(AccountId, Count)>,
}

impl Rec {
    fn is_empty(&self) -> bool {
        self.entry.is_none() && self.owners.is_empty()
    }

    fn encode(&self, chunk: &ChunkId) -> Vec<u8> {
        let entry_len = self.entry.as_ref().map_or(0, Vec::len);
        let mut v = Vec::with_capacity(41 + self.owners.len() * 41 + entry_len);
        v.extend_from_slice(chunk.as_bytes());
        v.push(LIVE);
        v.extend_from_slice(&(self.owners.len() as u32).to_le_bytes());
        for (user, n) in &self.owners {
            v.extend_from_slice(user.as_bytes());
            match n {
                Count::Ok(n) => {
                    v.push(8);
                    v.extend_from_slice(&refcount_to_bytes(*n));
                }
                Count::Raw(b) => {
                    v.push(b.len().min(255) as u8);
                    v.extend_from_slice(&b[..b.len().min(255)]);
                }
            }
        }
        match &self.entry {
            Some(e) => {
                v.extend_from_slice(&(e.len() as u32).to_le_bytes());
                v.extend_from_slice(e);
            }
            None => v.extend_from_slice(&NO_ENTRY.to_le_bytes()),
        }
        v
    }

    /// Decodes a record of `chunk`: `None` for a tombstone.
    fn decode(bytes: &[u8], chunk: &ChunkId) -> Result<Option<Rec>, StoreError> {
        let (id, tag) = record_head(bytes)?;
        if id != *chunk {
            return Err(corrupt(format!("record of {id} found for chunk {chunk}")));
        }
        if tag == GONE {
            return Ok(None);
        }
        let mut r = Reader(&bytes[33..]);
        let owners = r.u32()? as usize;
        // Every owner takes at least 33 bytes: bound the allocation by what is there.
        if owners > r.0.len() / 33 {
            return Err(corrupt(format!("{owners} owners in {} bytes", r.0.len())));
        }
        let mut rec = Rec {
            entry: None,
            owners: Vec::with_capacity(owners),
        };
        for _ in 0..owners {
            let user = AccountId(r.array()?);
            let len = r.take(1)?[0] as usize;
            let n = Count::from_bytes(r.take(len)?);
            if rec.owners.last().is_some_and(|(last, _)| *last >= user) {
                return Err(corrupt("owners out of order"));
            }
            rec.owners.push((user, n));
        }
        let len = r.u32()?;
        if len != NO_ENTRY {
            rec.entry = Some(r.take(len as usize)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err(corrupt(format!("{} trailing bytes", r.0.len())));
        }
        Ok(Some(rec))
    }
}

fn tombstone(chunk: &ChunkId) -> [u8; 33] {
    let mut v = [GONE; 33];
    v[..32].copy_from_slice(chunk.as_bytes());
    v
}

/// A record's chunk id and tag (live or gone).
fn record_head(bytes: &[u8]) -> Result<(ChunkId, u8), StoreError> {
    match bytes.split_first_chunk::<32>() {
        Some((id, &[tag, ..])) if tag == LIVE || tag == GONE => Ok((ChunkId::from(*id), tag)),
        Some((_, &[tag, ..])) => Err(corrupt(format!("record tag {tag}"))),
        _ => Err(corrupt(format!("{} bytes, too short", bytes.len()))),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let (a, b) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| self.truncated(n))?;
        self.0 = b;
        Ok(a)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let (a, b) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| self.truncated(N))?;
        self.0 = b;
        Ok(*a)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        self.array().map(u32::from_le_bytes)
    }

    fn truncated(&self, n: usize) -> StoreError {
        corrupt(format!(
            "truncated: {n} bytes wanted, {} left",
            self.0.len()
        ))
    }
}

// ---- the in-memory index ----------------------------------------------------------------------

/// Where each chunk's current record is, rebuilt from the records on open.
#[derive(Debug, Default)]
struct Index {
    /// chunk → sequence number of its current (live) record.
    at: HashMap<ChunkId, u64>,
    /// The next sequence number.
    next: u64,
    /// Records in the table, live or garbage.
    records: u64,
}

impl Index {
    fn rebuild(txn: &ReadTransaction) -> Result<Index, StoreError> {
        let t = txn.open_table(RECORDS).map_err(backend("open table"))?;
        let mut ix = Index::default();
        for r in t.iter().map_err(storage("read"))? {
            let (k, v) = r.map_err(storage("read"))?;
            let seq = k.value();
            let (id, tag) = record_head(v.value()).map_err(|e| match e {
                StoreError::Corrupt { what, reason } => StoreError::Corrupt {
                    what,
                    reason: format!("record {seq}: {reason}"),
                },
                e => e,
            })?;
            if tag == LIVE {
                ix.at.insert(id, seq);
            } else {
                ix.at.remove(&id);
            }
            ix.records += 1;
            ix.next = seq + 1;
        }
        Ok(ix)
    }

    fn live(&self) -> u64 {
        self.at.len() as u64
    }
}

/// What a committed write transaction changes in the index.
#[derive(Debug, Default)]
struct IndexChanges {
    at: HashMap<ChunkId, Option<u64>>,
    next: u64,
    records: u64,
}

impl IndexChanges {
    fn apply(self, ix: &mut Index) {
        for (c, at) in self.at {
            match at {
                Some(s) => ix.at.insert(c, s),
                None => ix.at.remove(&c),
            };
        }
        ix.next = self.next;
        ix.records = self.records;
    }
}

// ---- the store --------------------------------------------------------------------------------

/// Ownership metadata in redb (see [`MetaStore`]).
///
/// # Layout: log-structured
///
/// Accounts are a small table updated in place. Everything about a chunk (its registry entry
/// and its owners' reference counts) is one record, and a change to a chunk *appends* its new
/// record under the next sequence number instead of rewriting the old one in place; a chunk
/// that goes away appends a tombstone. An in-memory index (chunk → sequence number, rebuilt by
/// one scan on open) finds each chunk's current record. Why: chunk ids are random, so in a
/// B-tree keyed by chunk id every reference of a large registry dirties its own 4 KiB page,
/// which each commit copies and a checkpoint writes and syncs, and the cost per reference grows
/// with the registry. Appends touch only the table's last pages, whatever its size.
///
/// Replaced records are garbage. While garbage outnumbers live records (and the table holds
/// more than [`RedbMeta::set_cleaning_floor`] records), every write transaction also cleans:
/// for each record it appends it takes up to four of the oldest records, drops them if they are
/// garbage and re-appends them if they are current. So the table stays near twice the live
/// records, the cleaning cost per write is bounded and the same at every size, and it happens
/// inside the transaction, atomically with the write.
///
/// Values use memo's canonical versioned encodings; a record that does not decode (corrupt or
/// truncated) is reported as [`StoreError::Corrupt`] and the transaction that met it changes
/// nothing. A record whose chunk id cannot be read is refused when the database opens.
///
/// Every [`MetaStore::write`] is one redb write transaction committed with
/// [`Durability::Immediate`]: when it returns the object's put or delete is on disk, and a crash
/// at any moment leaves the state before or after it (redb's copy-on-write commit).
///
/// Cost: a put or delete of an object of n chunks is n index lookups and n point reads, n
/// appends (plus at most 4n records cleaned), one account read and write, and one commit.
/// Nothing scans, except opening. Memory: the index, about 60–100 bytes per chunk.
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
    index: RwLock<Index>,
    /// Log entries between durable checkpoints.
    checkpoint_every: AtomicU64,
    /// The `applied` position of the last durable commit.
    durable_at: AtomicU64,
    /// Records below which the cleaner does not run.
    cleaning_floor: AtomicU64,
}

impl std::fmt::Debug for RedbMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbMeta")
    }
}

/// Counts of a [`RedbMeta`]'s chunk records (see its layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStats {
    /// Chunks with a current record.
    pub live: u64,
    /// Records in the table: live plus garbage awaiting the cleaner.
    pub records: u64,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend {
        op: "lock",
        reason: "a writer panicked inside a transaction".into(),
    }
}

impl RedbMeta {
    /// Opens (or creates) the database at `path` with redb's default cache.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// Opens (or creates) the database at `path`, with a page cache of `cache_bytes` if given.
    /// Reads every chunk record once to build the index.
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
            txn.open_table(RECORDS).map_err(backend("open table"))?;
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
        let index = Index::rebuild(&db.begin_read().map_err(backend("begin read"))?)?;
        let this = Self {
            db,
            index: RwLock::new(index),
            checkpoint_every: AtomicU64::new(DEFAULT_CHECKPOINT_EVERY),
            durable_at: AtomicU64::new(0),
            cleaning_floor: AtomicU64::new(DEFAULT_CLEANING_FLOOR),
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

    /// Sets the number of records below which the cleaner never runs (default
    /// [`DEFAULT_CLEANING_FLOOR`]); above it, it runs while garbage outnumbers live records.
    pub fn set_cleaning_floor(&self, records: u64) {
        self.cleaning_floor.store(records, Ordering::Relaxed);
    }

    /// Live chunks and records in the table.
    pub fn record_stats(&self) -> Result<RecordStats, StoreError> {
        let ix = self.index.read().map_err(poisoned)?;
        Ok(RecordStats {
            live: ix.live(),
            records: ix.records,
        })
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

    /// Reads every record once, so that the page cache holds as much of the database as fits.
    /// Returns the records read.
    ///
    /// [`RedbMeta::open`] already reads the whole records table once (to build the index);
    /// this reads it again, and the accounts table.
    pub fn warm_cache(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let mut n = 0u64;
        let accounts = txn.open_table(ACCOUNTS).map_err(backend("open table"))?;
        for r in accounts.iter().map_err(storage("read"))? {
            r.map_err(storage("read"))?;
            n += 1;
        }
        let records = txn.open_table(RECORDS).map_err(backend("open table"))?;
        for r in records.iter().map_err(storage("read"))? {
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
        let r = self.write_with(durability, Some((first, end)), |t| f(t))?;
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
        self.write_with(Durability::None, None, |t| f(t))
    }

    /// One write transaction; with `log = Some((first, end))` it also moves the applied
    /// position from `first` (checked) to `end`. The index changes only once redb committed.
    fn write_with<R, E: From<StoreError>>(
        &self,
        durability: Durability,
        log: Option<(u64, u64)>,
        f: impl FnOnce(&mut WTables<'_, '_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut index = self.index.write().map_err(poisoned)?;
        let mut txn = self.db.begin_write().map_err(backend("begin write"))?;
        txn.set_durability(durability)
            .map_err(backend("set durability"))?;
        let floor = self.cleaning_floor.load(Ordering::Relaxed);
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
            let mut tables = open_write(&txn, &index)?;
            let r = f(&mut tables)?;
            let changes = tables.flush(floor)?;
            Ok((r, changes))
        })();
        match result {
            Ok((v, changes)) => {
                txn.commit().map_err(backend("commit"))?;
                changes.apply(&mut index);
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

// ---- transactions -----------------------------------------------------------------------------

/// The tables of one transaction, the committed index, and (when writing) this transaction's
/// changed records, which reads see first.
struct Tables<'i, A, R> {
    accounts: A,
    records: R,
    index: &'i Index,
    /// Changed records in first-touch order (`None`: the chunk has no record any more).
    pending: Vec<(ChunkId, Option<Rec>)>,
    slot: HashMap<ChunkId, usize>,
    /// Stored records already read by this transaction, decoded.
    cache: std::cell::RefCell<HashMap<ChunkId, Option<Rec>>>,
}

impl<'i, A, R> Tables<'i, A, R> {
    fn new(accounts: A, records: R, index: &'i Index) -> Self {
        Self {
            accounts,
            records,
            index,
            pending: Vec::new(),
            slot: HashMap::new(),
            cache: Default::default(),
        }
    }
}

type WTables<'t, 'i> =
    Tables<'i, Table<'t, &'static [u8; 32], &'static [u8]>, Table<'t, u64, &'static [u8]>>;

fn open_write<'t, 'i>(
    txn: &'t WriteTransaction,
    index: &'i Index,
) -> Result<WTables<'t, 'i>, StoreError> {
    Ok(Tables::new(
        txn.open_table(ACCOUNTS).map_err(backend("open table"))?,
        txn.open_table(RECORDS).map_err(backend("open table"))?,
        index,
    ))
}

type RTables<'i> = Tables<
    'i,
    redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    redb::ReadOnlyTable<u64, &'static [u8]>,
>;

fn open_read<'i>(txn: &ReadTransaction, index: &'i Index) -> Result<RTables<'i>, StoreError> {
    Ok(Tables::new(
        txn.open_table(ACCOUNTS).map_err(backend("open table"))?,
        txn.open_table(RECORDS).map_err(backend("open table"))?,
        index,
    ))
}

impl<A, R> Tables<'_, A, R>
where
    R: ReadableTable<u64, &'static [u8]>,
{
    /// Runs `f` on the chunk's current record: this transaction's, else the stored one.
    fn with_rec<T>(
        &self,
        c: &ChunkId,
        f: impl FnOnce(Option<&Rec>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(&i) = self.slot.get(c) {
            return f(self.pending[i].1.as_ref());
        }
        let mut cache = self.cache.borrow_mut();
        let rec = match cache.entry(*c) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.stored(c)?),
        };
        f(rec.as_ref())
    }

    fn stored(&self, c: &ChunkId) -> Result<Option<Rec>, StoreError> {
        let Some(&seq) = self.index.at.get(c) else {
            return Ok(None);
        };
        let v = self
            .records
            .get(seq)
            .map_err(storage("read"))?
            .ok_or_else(|| {
                StoreError::Inconsistent(format!("record {seq} of chunk {c} is missing"))
            })?;
        match Rec::decode(v.value(), c)? {
            Some(r) => Ok(Some(r)),
            None => Err(StoreError::Inconsistent(format!(
                "chunk {c}'s current record {seq} is a tombstone"
            ))),
        }
    }
}

fn set_owner(rec: &mut Rec, user: AccountId, n: Option<Count>) {
    match (rec.owners.binary_search_by(|(u, _)| u.cmp(&user)), n) {
        (Ok(i), Some(n)) => rec.owners[i].1 = n,
        (Ok(i), None) => {
            rec.owners.remove(i);
        }
        (Err(i), Some(n)) => rec.owners.insert(i, (user, n)),
        (Err(_), None) => {}
    }
}

impl WTables<'_, '_> {
    /// Changes the chunk's record in this transaction (starting from the stored one, or an
    /// empty record); a record left empty means the chunk has none.
    fn update(&mut self, c: &ChunkId, f: impl FnOnce(&mut Rec)) -> Result<(), StoreError> {
        let i = match self.slot.get(c) {
            Some(&i) => i,
            None => {
                // Already decoded by a read of this transaction, or read now.
                let stored = match self.cache.get_mut().remove(c) {
                    Some(r) => r,
                    None => self.stored(c)?,
                };
                self.slot.insert(*c, self.pending.len());
                self.pending.push((*c, stored));
                self.pending.len() - 1
            }
        };
        let slot = &mut self.pending[i].1;
        let mut rec = slot.take().unwrap_or_default();
        f(&mut rec);
        *slot = (!rec.is_empty()).then_some(rec);
        Ok(())
    }

    /// Appends the changed records (a tombstone for a chunk that had a record and has none
    /// now), then cleans if garbage outnumbers live records. Returns the index changes to make
    /// once the transaction has committed.
    fn flush(mut self, floor: u64) -> Result<IndexChanges, StoreError> {
        let ix = self.index;
        let mut ch = IndexChanges {
            at: HashMap::with_capacity(self.pending.len()),
            next: ix.next,
            records: ix.records,
        };
        let mut live = ix.live();
        let mut appended = 0u64;
        for (c, rec) in std::mem::take(&mut self.pending) {
            let had = ix.at.contains_key(&c);
            let bytes = match (&rec, had) {
                (Some(r), _) => r.encode(&c),
                (None, true) => tombstone(&c).to_vec(),
                (None, false) => continue,
            };
            self.records
                .insert(ch.next, bytes.as_slice())
                .map_err(storage("write"))?;
            ch.at.insert(c, rec.is_some().then_some(ch.next));
            match (rec.is_some(), had) {
                (true, false) => live += 1,
                (false, true) => live -= 1,
                _ => {}
            }
            ch.next += 1;
            ch.records += 1;
            appended += 1;
        }
        if ch.records > floor && ch.records - live > live {
            // Records are only appended at `next` and removed from the front, so the
            // `ix.records` records the table held before this transaction are its first ones,
            // all below `ix.next`; what this transaction appends (and re-appends) lies after
            // them, and the cleaner stops before reaching it.
            for _ in 0..(appended * CLEAN_PER_APPEND).min(ix.records) {
                let Some((seq, bytes)) = self
                    .records
                    .pop_first()
                    .map_err(storage("write"))?
                    .map(|(k, v)| (k.value(), v.value().to_vec()))
                else {
                    break;
                };
                debug_assert!(
                    seq < ix.next,
                    "the cleaner reached record {seq} of this transaction"
                );
                let (c, _) = record_head(&bytes)?;
                let current = match ch.at.get(&c) {
                    Some(at) => *at,
                    None => ix.at.get(&c).copied(),
                };
                if current == Some(seq) {
                    self.records
                        .insert(ch.next, bytes.as_slice())
                        .map_err(storage("write"))?;
                    ch.at.insert(c, Some(ch.next));
                    ch.next += 1;
                } else {
                    ch.records -= 1;
                }
            }
        }
        Ok(ch)
    }
}

impl<A, R> MetaRead for Tables<'_, A, R>
where
    A: ReadableTable<&'static [u8; 32], &'static [u8]>,
    R: ReadableTable<u64, &'static [u8]>,
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
        self.with_rec(chunk, |r| {
            match r.and_then(|r| {
                r.owners
                    .binary_search_by(|(u, _)| u.cmp(user))
                    .ok()
                    .map(|i| &r.owners[i].1)
            }) {
                Some(n) => n.get(),
                None => Ok(0),
            }
        })
    }

    fn has_owners(&self, chunk: &ChunkId) -> Result<bool, StoreError> {
        self.with_rec(chunk, |r| Ok(r.is_some_and(|r| !r.owners.is_empty())))
    }

    fn owners(&self, chunk: &ChunkId) -> Result<Vec<(AccountId, u64)>, StoreError> {
        self.with_rec(chunk, |r| {
            r.map_or(Ok(Vec::new()), |r| {
                r.owners.iter().map(|(u, n)| Ok((*u, n.get()?))).collect()
            })
        })
    }

    fn chunk(&self, chunk: &ChunkId) -> Result<Option<ChunkEntry>, StoreError> {
        self.with_rec(chunk, |r| match r.and_then(|r| r.entry.as_ref()) {
            Some(b) => ChunkEntry::from_bytes(b).map(Some),
            None => Ok(None),
        })
    }
}

impl MetaTxn for WTables<'_, '_> {
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
        self.update(chunk, |r| {
            set_owner(r, *user, (n > 0).then_some(Count::Ok(n)))
        })
    }

    fn put_chunk(&mut self, chunk: &ChunkId, entry: &ChunkEntry) -> Result<(), StoreError> {
        let bytes = entry.to_bytes();
        self.update(chunk, |r| r.entry = Some(bytes))
    }

    fn remove_chunk(&mut self, chunk: &ChunkId) -> Result<(), StoreError> {
        self.update(chunk, |r| r.entry = None)
    }
}

impl MetaStore for RedbMeta {
    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn MetaRead) -> Result<R, E>,
    ) -> Result<R, E> {
        let index = self.index.read().map_err(poisoned)?;
        let txn = self.db.begin_read().map_err(backend("begin read"))?;
        let tables = open_read(&txn, &index)?;
        f(&tables)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn MetaTxn) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_with(Durability::Immediate, None, |t| f(t))
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

/// Raw record access for tests that damage records on purpose.
#[doc(hidden)]
pub mod raw {
    use super::*;

    /// Overwrites the raw bytes of a chunk's registry entry (its other fields are kept).
    pub fn put_chunk_bytes(m: &RedbMeta, chunk: &ChunkId, bytes: &[u8]) -> Result<(), StoreError> {
        m.write_with(Durability::Immediate, None, |t| {
            t.update(chunk, |r| r.entry = Some(bytes.to_vec()))
        })
    }

    /// Overwrites the raw bytes of a reference count.
    pub fn put_ref_bytes(
        m: &RedbMeta,
        chunk: &ChunkId,
        user: &AccountId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        m.write_with(Durability::Immediate, None, |t| {
            t.update(chunk, |r| {
                set_owner(r, *user, Some(Count::from_bytes(bytes)))
            })
        })
    }

    /// Appends raw bytes as the newest chunk record, as damage to the table would look
    /// (the index learns of it on the next open).
    pub fn append_record_bytes(m: &RedbMeta, bytes: &[u8]) -> Result<(), StoreError> {
        // Held until committed, so that no writer appends at `next` in between.
        let index = m.index.read().map_err(poisoned)?;
        insert_one(m, RECORDS, index.next, bytes)
    }

    /// Overwrites the raw value of an account.
    pub fn put_account_bytes(
        m: &RedbMeta,
        user: &AccountId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        insert_one(m, ACCOUNTS, user.as_bytes(), bytes)
    }

    /// Overwrites the stored layout version.
    pub fn set_schema_version(m: &RedbMeta, version: u64) -> Result<(), StoreError> {
        insert_one(m, META, "schema", version)
    }

    /// One durable write transaction that inserts `value` under `key` in `table`.
    fn insert_one<'k, 'v, K: redb::Key + 'static, V: redb::Value + 'static>(
        m: &RedbMeta,
        table: TableDefinition<K, V>,
        key: impl std::borrow::Borrow<K::SelfType<'k>>,
        value: impl std::borrow::Borrow<V::SelfType<'v>>,
    ) -> Result<(), StoreError> {
        let txn = m.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut t = txn.open_table(table).map_err(backend("open table"))?;
            t.insert(key, value).map_err(storage("write"))?;
        }
        txn.commit().map_err(backend("commit"))
    }
}

//! The sequencer's op log on disk: redb, one fsync'd commit per batch of appends.

use super::{LogEntry, OpLog, OpLogError, Replica};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use memo_core::objects::{MAX_OP_BYTES, SignedOp};
use memo_core::wire;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, watch};

/// Position -> canonical bytes of a `SignedOp`. Append-only: keys are 0, 1, 2, ...
const OPS: TableDefinition<u64, &[u8]> = TableDefinition::new("ops");
const META: TableDefinition<&str, u64> = TableDefinition::new("oplog_meta");
/// State kept with the entries by whoever feeds the log (the consensus engine's applied
/// position), written in the same transaction as the entries it describes.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("oplog_state");
const APPLIED: &str = "applied";
/// Format of the stored log.
const FORMAT: u64 = 1;
/// Largest stored record: an operation and its signature envelope.
pub(crate) const MAX_ENTRY_BYTES: usize = MAX_OP_BYTES + 256;
/// Entries one follow step reads at a time.
const FOLLOW_BATCH: usize = 256;
/// Bytes one follow step reads at a time (at least one entry is always read).
const FOLLOW_BATCH_BYTES: usize = 4 << 20;

fn storage(e: impl std::fmt::Display) -> OpLogError {
    OpLogError::Storage(e.to_string())
}

/// An op log persisted in redb.
///
/// Appends are group-committed: appends that arrive while a commit is in flight wait for it
/// and then go to disk together in the next commit, in arrival order, so a burst of appends
/// costs one fsync rather than one each. [`OpLog::append`] returns only after the commit that
/// holds the entry is durable. Reopening the same file resumes at the stored length. Cloning
/// shares the log.
#[derive(Clone)]
pub struct DurableOpLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DurableOpLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableOpLog")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    writer: Mutex<Writer>,
    /// Committed length; bumped after each commit.
    len: watch::Sender<u64>,
    /// Commits made (for measurements and tests).
    commits: std::sync::atomic::AtomicU64,
}

struct Writer {
    queue: Vec<Pending>,
    committing: bool,
}

struct Pending {
    entries: Vec<Vec<u8>>,
    /// State to store with the entries, atomically.
    state: Option<Vec<u8>>,
    /// The position the entries must start at (a replica's extend), or anywhere (an append).
    at: Option<u64>,
    reply: oneshot::Sender<Result<u64, OpLogError>>,
}

impl DurableOpLog {
    /// Opens (or creates) the log at `path`.
    ///
    /// Checks the format and that the positions are contiguous, and decodes the last record;
    /// a damaged store is an [`OpLogError`], never a panic.
    pub fn open(path: &Path) -> Result<Self, OpLogError> {
        let db = Database::create(path).map_err(storage)?;
        let w = db.begin_write().map_err(storage)?;
        {
            let mut meta = w.open_table(META).map_err(storage)?;
            let found = meta.get("format").map_err(storage)?.map(|v| v.value());
            match found {
                Some(FORMAT) => {}
                Some(found) => {
                    return Err(OpLogError::Format {
                        found,
                        supported: FORMAT,
                    });
                }
                None => {
                    meta.insert("format", FORMAT).map_err(storage)?;
                }
            }
            w.open_table(OPS).map_err(storage)?;
        }
        w.commit().map_err(storage)?;
        let len = {
            let r = db.begin_read().map_err(storage)?;
            let t = r.open_table(OPS).map_err(storage)?;
            let count = t.len().map_err(storage)?;
            match t.last().map_err(storage)? {
                None => 0,
                Some((k, v)) => {
                    let last = k.value();
                    if last + 1 != count {
                        return Err(OpLogError::Corrupt {
                            position: last,
                            reason: format!("{count} records but the last is at {last}"),
                        });
                    }
                    decode_entry(last, v.value())?;
                    count
                }
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                writer: Mutex::new(Writer {
                    queue: Vec::new(),
                    committing: false,
                }),
                len: watch::channel(len).0,
                commits: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Entries committed.
    pub fn len(&self) -> u64 {
        *self.inner.len.borrow()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `len` entries are committed.
    pub async fn wait_len(&self, len: u64) {
        let _ = self.inner.len.subscribe().wait_for(|&n| n >= len).await;
    }

    /// Commits made since open (each is one fsync); with [`DurableOpLog::len`] this shows how
    /// well appends were grouped.
    pub fn commits(&self) -> u64 {
        self.inner
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Up to `max` committed entries from `from` on, stopping after `max_bytes` of records
    /// (at least one entry if any exists). A record that does not decode is
    /// [`OpLogError::Corrupt`].
    pub fn read(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, OpLogError> {
        self.inner.read(from, max, max_bytes)
    }

    /// Checks every stored record (decoding and signature); returns how many there are.
    pub fn verify_all(&self) -> Result<u64, OpLogError> {
        let mut next = 0;
        loop {
            let batch = self.read(next, FOLLOW_BATCH, FOLLOW_BATCH_BYTES)?;
            if batch.is_empty() {
                return Ok(next);
            }
            for (pos, op) in &batch {
                op.verify()
                    .map_err(|_| OpLogError::BadSignature { position: *pos })?;
            }
            next += batch.len() as u64;
        }
    }

    /// The state last stored with [`DurableOpLog::extend_with_state`], if any.
    pub(crate) fn state(&self) -> Result<Option<Vec<u8>>, OpLogError> {
        let r = self.inner.db.begin_read().map_err(storage)?;
        let t = match r.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        Ok(t.get(APPLIED).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    /// Stores `ops` at positions `from`, `from + 1`, ... (`from` must be the log's length)
    /// together with `state`, in one durable commit: after a crash either both are there or
    /// neither is.
    pub(crate) async fn extend_with_state(
        &self,
        from: u64,
        ops: &[SignedOp],
        state: Vec<u8>,
    ) -> Result<(), OpLogError> {
        let entries = ops.iter().map(wire::encode).collect();
        self.enqueue_with(entries, Some(from), Some(state))
            .await
            .map(|_| ())
    }

    /// Queues entries for the next commit and waits until it is durable.
    async fn enqueue(&self, entries: Vec<Vec<u8>>, at: Option<u64>) -> Result<u64, OpLogError> {
        self.enqueue_with(entries, at, None).await
    }

    async fn enqueue_with(
        &self,
        entries: Vec<Vec<u8>>,
        at: Option<u64>,
        state: Option<Vec<u8>>,
    ) -> Result<u64, OpLogError> {
        if let Some(big) = entries.iter().find(|e| e.len() > MAX_ENTRY_BYTES) {
            return Err(OpLogError::TooLarge(big.len()));
        }
        let (reply, done) = oneshot::channel();
        let start_writer = {
            let mut w = self.inner.lock_writer();
            w.queue.push(Pending {
                entries,
                state,
                at,
                reply,
            });
            !std::mem::replace(&mut w.committing, true)
        };
        if start_writer {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || Inner::commit_loop(inner));
        }
        done.await.map_err(|_| OpLogError::Closed)?
    }
}

fn decode_entry(position: u64, bytes: &[u8]) -> Result<SignedOp, OpLogError> {
    wire::decode(bytes, MAX_ENTRY_BYTES, "op log record").map_err(|e| OpLogError::Corrupt {
        position,
        reason: e.to_string(),
    })
}

impl Inner {
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits queued entries batch by batch until the queue is empty (the group commit: one
    /// writer at a time; whatever queued meanwhile goes in the next batch). The writer lets go
    /// of the log before it answers the last batch, so once every append has returned, no
    /// writer holds the database open.
    fn commit_loop(self: Arc<Self>) {
        let mut batch = match self.take_batch() {
            Some(b) => b,
            None => return,
        };
        loop {
            let start = *self.len.borrow();
            let replies: Vec<Result<u64, OpLogError>> = match self.write_batch(start, &batch) {
                Ok((results, end)) => {
                    self.commits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.len.send_replace(end);
                    results
                }
                Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
            };
            let Some(next) = self.take_batch() else {
                drop(self);
                for (p, r) in batch.into_iter().zip(replies) {
                    let _ = p.reply.send(r);
                }
                return;
            };
            for (p, r) in batch.into_iter().zip(replies) {
                let _ = p.reply.send(r);
            }
            batch = next;
        }
    }

    /// The queued entries, or `None` (and the writer role released) if there are none.
    fn take_batch(&self) -> Option<Vec<Pending>> {
        let mut w = self.lock_writer();
        if w.queue.is_empty() {
            w.committing = false;
            None
        } else {
            Some(std::mem::take(&mut w.queue))
        }
    }

    /// Writes the batch in one transaction; returns each pending's result and the new length.
    /// On error nothing is written.
    #[allow(clippy::type_complexity)]
    fn write_batch(
        &self,
        start: u64,
        batch: &[Pending],
    ) -> Result<(Vec<Result<u64, OpLogError>>, u64), OpLogError> {
        let w = self.db.begin_write().map_err(storage)?;
        let mut next = start;
        let mut results = Vec::with_capacity(batch.len());
        let mut state_written = false;
        {
            let mut t = w.open_table(OPS).map_err(storage)?;
            for p in batch {
                if let Some(at) = p.at
                    && at != next
                {
                    results.push(Err(OpLogError::Gap {
                        expected: next,
                        got: at,
                    }));
                    continue;
                }
                results.push(Ok(next));
                for e in &p.entries {
                    t.insert(next, e.as_slice()).map_err(storage)?;
                    next += 1;
                }
                if let Some(state) = &p.state {
                    let mut st = w.open_table(STATE).map_err(storage)?;
                    st.insert(APPLIED, state.as_slice()).map_err(storage)?;
                    state_written = true;
                }
            }
        }
        if next == start && !state_written {
            w.abort().map_err(storage)?;
        } else {
            w.commit().map_err(storage)?;
        }
        Ok((results, next))
    }

    fn read(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<LogEntry>, OpLogError> {
        let len = *self.len.borrow();
        if from >= len || max == 0 {
            return Ok(Vec::new());
        }
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(OPS).map_err(storage)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in t.range(from..len).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let pos = k.value();
            let expected = from + out.len() as u64;
            if pos != expected {
                return Err(OpLogError::Corrupt {
                    position: expected,
                    reason: "record missing".into(),
                });
            }
            let raw = v.value();
            if !out.is_empty() && bytes + raw.len() > max_bytes {
                break;
            }
            bytes += raw.len();
            out.push((pos, decode_entry(pos, raw)?));
            if out.len() >= max {
                break;
            }
        }
        if out.is_empty() {
            return Err(OpLogError::Corrupt {
                position: from,
                reason: "record missing".into(),
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl OpLog for DurableOpLog {
    async fn append(&self, op: SignedOp) -> Result<u64, OpLogError> {
        self.enqueue(vec![wire::encode(&op)], None).await
    }

    /// Entries from `from` on. If a record turns out corrupt or the store fails, the stream
    /// logs the error and ends there (it never skips an entry).
    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry> {
        let inner = self.inner.clone();
        let rx = self.inner.len.subscribe();
        futures::stream::unfold(
            (from, rx, VecDeque::new()),
            move |(mut next, mut rx, mut buf)| {
                let inner = inner.clone();
                async move {
                    loop {
                        if let Some(e) = buf.pop_front() {
                            return Some((e, (next, rx, buf)));
                        }
                        match inner.read(next, FOLLOW_BATCH, FOLLOW_BATCH_BYTES) {
                            Ok(batch) => {
                                next += batch.len() as u64;
                                buf.extend(batch);
                            }
                            Err(e) => {
                                tracing::error!(position = next, "op log unreadable: {e}");
                                return None;
                            }
                        }
                        if buf.is_empty() && rx.wait_for(|&len| len > next).await.is_err() {
                            return None;
                        }
                    }
                }
            },
        )
        .boxed()
    }

    fn known_len(&self) -> Option<u64> {
        Some(self.len())
    }
}

#[async_trait]
impl Replica for DurableOpLog {
    fn len(&self) -> u64 {
        DurableOpLog::len(self)
    }

    async fn extend(&self, from: u64, ops: Vec<SignedOp>) -> Result<(), OpLogError> {
        if ops.is_empty() {
            return Ok(());
        }
        let entries = ops.iter().map(wire::encode).collect();
        self.enqueue(entries, Some(from)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::Signed;
    use memo_core::id::ObjectId;
    use memo_core::identity::Keypair;
    use memo_core::objects::{ObjectOp, OpEnvelope};

    fn op(i: u8) -> SignedOp {
        Signed::sign(
            &Keypair::from_seed("user"),
            &OpEnvelope::new(
                ObjectOp::Delete {
                    object: ObjectId([i; 32]),
                },
                i.into(),
                u64::MAX,
            ),
        )
    }

    fn raw_put(path: &Path, pos: u64, bytes: Option<&[u8]>) {
        let db = Database::create(path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(OPS).unwrap();
            match bytes {
                Some(b) => {
                    t.insert(pos, b).unwrap();
                }
                None => {
                    t.remove(pos).unwrap();
                }
            }
        }
        w.commit().unwrap();
    }

    #[tokio::test]
    async fn appends_persist_and_reopen_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = DurableOpLog::open(&path).unwrap();
        for i in 0..5 {
            assert_eq!(log.append(op(i)).await.unwrap(), u64::from(i));
        }
        assert_eq!(log.len(), 5);
        drop(log);
        let log = DurableOpLog::open(&path).unwrap();
        assert_eq!(log.len(), 5);
        let all = log.read(0, 100, usize::MAX).unwrap();
        assert_eq!(all.len(), 5);
        for (i, (pos, o)) in all.iter().enumerate() {
            assert_eq!((*pos, o), (i as u64, &op(i as u8)));
        }
        assert_eq!(log.verify_all().unwrap(), 5);
        // Following from the middle yields the stored tail, then new entries as they come.
        let mut f = log.follow(3);
        assert_eq!(f.next().await.unwrap(), (3, op(3)));
        assert_eq!(f.next().await.unwrap(), (4, op(4)));
        assert_eq!(log.append(op(5)).await.unwrap(), 5);
        assert_eq!(f.next().await.unwrap(), (5, op(5)));
        // Reads are bounded by count and bytes, but always return one entry.
        assert_eq!(log.read(1, 2, usize::MAX).unwrap().len(), 2);
        assert_eq!(log.read(1, 10, 1).unwrap().len(), 1);
        assert!(log.read(6, 10, usize::MAX).unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_waiting_during_a_commit_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = DurableOpLog::open(&dir.path().join("log")).unwrap();
        // Pretend a commit is in flight: appends queue up behind it.
        log.inner.lock_writer().committing = true;
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(op(i)).await })
            })
            .collect();
        while log.inner.lock_writer().queue.len() < 10 {
            tokio::task::yield_now().await;
        }
        let inner = log.inner.clone();
        tokio::task::spawn_blocking(move || Inner::commit_loop(inner))
            .await
            .unwrap();
        let mut positions = Vec::new();
        for t in tasks {
            positions.push(t.await.unwrap().unwrap());
        }
        positions.sort_unstable();
        assert_eq!(positions, (0..10).collect::<Vec<_>>());
        assert_eq!(log.commits(), 1);
        assert_eq!(log.len(), 10);
        assert!(!log.inner.lock_writer().committing);
    }

    #[tokio::test]
    async fn extend_only_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = DurableOpLog::open(&dir.path().join("log")).unwrap();
        Replica::extend(&log, 0, vec![op(0), op(1)]).await.unwrap();
        assert_eq!(
            Replica::extend(&log, 5, vec![op(2)]).await,
            Err(OpLogError::Gap {
                expected: 2,
                got: 5
            })
        );
        assert_eq!(
            Replica::extend(&log, 1, vec![op(2)]).await,
            Err(OpLogError::Gap {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(log.len(), 2);
        Replica::extend(&log, 2, vec![op(2)]).await.unwrap();
        assert_eq!(log.read(0, 10, usize::MAX).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn corrupt_or_missing_records_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = DurableOpLog::open(&path).unwrap();
        for i in 0..3 {
            log.append(op(i)).await.unwrap();
        }
        drop(log);

        // A damaged record in the middle: open works, reading it fails, following stops there.
        raw_put(&path, 1, Some(b"garbage"));
        let log = DurableOpLog::open(&path).unwrap();
        assert!(matches!(
            log.read(0, 10, usize::MAX),
            Err(OpLogError::Corrupt { position: 1, .. })
        ));
        assert!(matches!(
            log.verify_all(),
            Err(OpLogError::Corrupt { position: 1, .. })
        ));
        let got: Vec<LogEntry> = log.follow(0).collect().await;
        assert!(got.is_empty(), "no entry of a corrupt batch is served");
        drop(log);

        // A damaged last record, or a missing one: open refuses.
        raw_put(&path, 1, Some(&wire::encode(&op(1))));
        raw_put(&path, 2, Some(&[0xff; 3]));
        assert!(matches!(
            DurableOpLog::open(&path),
            Err(OpLogError::Corrupt { position: 2, .. })
        ));
        raw_put(&path, 2, Some(&wire::encode(&op(2))));
        raw_put(&path, 1, None);
        assert!(matches!(
            DurableOpLog::open(&path),
            Err(OpLogError::Corrupt { position: 2, .. })
        ));
        // A forged record (valid encoding, bad signature) is caught by verify_all.
        let mut forged = op(1);
        forged.signer = Keypair::from_seed("mallory").account();
        raw_put(&path, 1, Some(&wire::encode(&forged)));
        let log = DurableOpLog::open(&path).unwrap();
        assert_eq!(
            log.verify_all(),
            Err(OpLogError::BadSignature { position: 1 })
        );
    }

    #[tokio::test]
    async fn another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        drop(DurableOpLog::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(META).unwrap().insert("format", 99).unwrap();
            w.commit().unwrap();
        }
        assert_eq!(
            DurableOpLog::open(&path).unwrap_err(),
            OpLogError::Format {
                found: 99,
                supported: FORMAT
            }
        );
    }
}

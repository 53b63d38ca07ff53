//! The Raft group's storage: its log in redb, and the state machine, which is the op log of
//! committed object operations ([`DurableOpLog`]).

// openraft's storage traits return its `StorageError` (224 bytes); the helpers here return
// the same type rather than converting at every call.
#![allow(clippy::result_large_err)]

use super::{Proposal, TypeConfig};
use crate::ledger::{Block, LedgerError, LocalChain};
use crate::replication::DurableOpLog;
use crate::replication::durable::MAX_ENTRY_BYTES;
use memo_core::contract::Height;
use memo_core::objects::SignedOp;
use memo_core::wire;
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    Vote,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

type NodeId = u64;
type SErr = StorageError<NodeId>;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";
/// Largest Raft log record: a proposal's operations (at most one operation's limit in all)
/// plus the entry's framing.
const MAX_RECORD: usize = MAX_ENTRY_BYTES + (64 << 10);
/// Largest snapshot accepted from a peer or read back (the op log's whole content).
const MAX_SNAPSHOT: usize = 1 << 32;

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    wire::encode(v)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, String> {
    wire::decode(bytes, max, "raft record").map_err(|e| e.to_string())
}

fn read_err(e: impl ToString) -> SErr {
    StorageIOError::read_logs(&std::io::Error::other(e.to_string())).into()
}

fn write_err(e: impl ToString) -> SErr {
    StorageIOError::write_logs(&std::io::Error::other(e.to_string())).into()
}

fn vote_err(e: impl ToString) -> SErr {
    StorageIOError::write_vote(&std::io::Error::other(e.to_string())).into()
}

fn sm_err(e: impl ToString) -> SErr {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn snap_err(e: impl ToString) -> SErr {
    StorageIOError::read_snapshot(None, &std::io::Error::other(e.to_string())).into()
}

/// The Raft log and vote, in one redb file. Each append, truncation, purge and vote is one
/// durable commit; entries that openraft hands over together share one fsync.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (or creates) the store at `path`, and checks that every log record decodes: a
    /// corrupt record is this call's error, before openraft reads the log in a task of its own
    /// (where the cause would race with the node's stopping). The log is kept short by
    /// snapshots, so the check is cheap.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let db = Database::create(path).map_err(|e| e.to_string())?;
        let w = db.begin_write().map_err(|e| e.to_string())?;
        w.open_table(LOG).map_err(|e| e.to_string())?;
        w.open_table(META).map_err(|e| e.to_string())?;
        w.commit().map_err(|e| e.to_string())?;
        {
            let r = db.begin_read().map_err(|e| e.to_string())?;
            let t = r.open_table(LOG).map_err(|e| e.to_string())?;
            for item in t.iter().map_err(|e| e.to_string())? {
                let (k, v) = item.map_err(|e| e.to_string())?;
                decode::<Entry<TypeConfig>>(v.value(), MAX_RECORD)
                    .map_err(|e| format!("raft log record {} is corrupt: {e}", k.value()))?;
            }
        }
        Ok(Self { db: Arc::new(db) })
    }

    fn meta<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, SErr> {
        let r = self.db.begin_read().map_err(read_err)?;
        let t = r.open_table(META).map_err(read_err)?;
        match t.get(key).map_err(read_err)? {
            None => Ok(None),
            Some(v) => decode(v.value(), MAX_RECORD)
                .map(Some)
                .map_err(|e| read_err(format!("raft {key} record is corrupt: {e}"))),
        }
    }

    /// Runs `f` in one write transaction, then commits (fsync).
    async fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), String>,
    ) -> Result<(), String> {
        let db = self.db.clone();
        crate::env::blocking(move || {
            let w = db.begin_write().map_err(|e| e.to_string())?;
            f(&w)?;
            w.commit().map_err(|e| e.to_string())
        })
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let r = self.db.begin_read().map_err(read_err)?;
        let t = r.open_table(LOG).map_err(read_err)?;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Bound::Included(e),
            Bound::Excluded(&e) => Bound::Excluded(e),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t
            .range::<u64>((Bound::Included(start), end))
            .map_err(read_err)?
        {
            let (k, v) = item.map_err(read_err)?;
            let e: Entry<TypeConfig> = decode(v.value(), MAX_RECORD)
                .map_err(|e| read_err(format!("raft log record {} is corrupt: {e}", k.value())))?;
            if e.log_id.index != k.value() {
                return Err(read_err(format!(
                    "raft log record {} holds entry {}",
                    k.value(),
                    e.log_id.index
                )));
            }
            out.push(e);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        self.entries(range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let purged: Option<LogId<NodeId>> = self.meta(PURGED)?;
        let last = {
            let r = self.db.begin_read().map_err(read_err)?;
            let t = r.open_table(LOG).map_err(read_err)?;
            match t.last().map_err(read_err)? {
                None => None,
                Some((k, v)) => {
                    let e: Entry<TypeConfig> = decode(v.value(), MAX_RECORD).map_err(|e| {
                        read_err(format!("raft log record {} is corrupt: {e}", k.value()))
                    })?;
                    Some(e.log_id)
                }
            }
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let bytes = encode(vote);
        self.write(move |w| {
            let mut t = w.open_table(META).map_err(|e| e.to_string())?;
            t.insert(VOTE, bytes.as_slice())
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .map_err(vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let bytes = encode(&committed);
        self.write(move |w| {
            let mut t = w.open_table(META).map_err(|e| e.to_string())?;
            t.insert(COMMITTED, bytes.as_slice())
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let records: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, encode(&e)))
            .collect();
        let result = self
            .write(move |w| {
                let mut t = w.open_table(LOG).map_err(|e| e.to_string())?;
                for (i, r) in &records {
                    t.insert(*i, r.as_slice()).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.write(move |w| {
            let mut t = w.open_table(LOG).map_err(|e| e.to_string())?;
            t.retain_in::<u64, _>(log_id.index.., |_, _| false)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let bytes = encode(&log_id);
        self.write(move |w| {
            let mut m = w.open_table(META).map_err(|e| e.to_string())?;
            m.insert(PURGED, bytes.as_slice())
                .map_err(|e| e.to_string())?;
            let mut t = w.open_table(LOG).map_err(|e| e.to_string())?;
            t.retain_in::<u64, _>(..=log_id.index, |_, _| false)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .map_err(write_err)
    }
}

/// What the state machine stores with the op log: how far it has applied, and the group's
/// membership as of then.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

/// Imports the blocks of a snapshot that `chain` lacks, after checking that the blocks it has
/// are the snapshot's (its head block is compared; the rest are chained by hashes). Every
/// block imported is verified like any other.
fn install_blocks(chain: &LocalChain, blocks: &[Vec<u8>], snapshot: &str) -> Result<(), SErr> {
    let have = chain.head_now().height;
    if (blocks.len() as u64) < have {
        return Err(snap_err(format!(
            "snapshot {snapshot} holds {} blocks, fewer than the {have} in the chain here",
            blocks.len()
        )));
    }
    let decode_at = |h: u64| {
        Block::decode(&blocks[h as usize - 1])
            .map_err(|e| snap_err(format!("snapshot {snapshot}: block {h}: {e}")))
    };
    if have > 0 && !chain.contains(&decode_at(have)?).map_err(snap_err)? {
        return Err(snap_err(format!(
            "snapshot {snapshot} disagrees with block {have} in the chain here"
        )));
    }
    for h in have + 1..=blocks.len() as u64 {
        chain
            .import_block(decode_at(h)?)
            .map_err(|e| snap_err(format!("snapshot {snapshot}: block {h}: {e}")))?;
    }
    Ok(())
}

/// A snapshot's content: the op log's entries and the chain's blocks up to the snapshot's
/// point, encoded.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    ops: Vec<Vec<u8>>,
    blocks: Vec<Vec<u8>>,
}

/// The state machine: committed operations go, in order, into the keeper's op log, which
/// the [`Keeper`](crate::keeper::Keeper) follows. Positions in the op log count operations
/// only (not Raft's blank and membership entries), so they are the same on every keeper.
pub(crate) struct StateMachine {
    log: DurableOpLog,
    chain: Option<Arc<LocalChain>>,
    applied: Applied,
    snapshot: Arc<Mutex<Option<Built>>>,
}

/// A snapshot built or installed: its meta and encoded body.
type Built = (SnapshotMeta<NodeId, BasicNode>, Arc<Vec<u8>>);

/// Builds a snapshot of the state machine as it was when the builder was made: the first
/// `len` operations and the Raft state that goes with them (the log may have grown since).
pub(crate) struct Builder {
    log: DurableOpLog,
    applied: Applied,
    len: u64,
    chain: Option<(Arc<LocalChain>, Height)>,
    latest: Arc<Mutex<Option<Built>>>,
}

impl StateMachine {
    /// The state machine over `log` (and `chain`, whose blocks ride on the group's log),
    /// resuming where its stored state says it stopped.
    pub(crate) fn open(log: DurableOpLog, chain: Option<Arc<LocalChain>>) -> Result<Self, String> {
        let applied = match log.state().map_err(|e| e.to_string())? {
            None if log.is_empty() => Applied::default(),
            None => {
                return Err(format!(
                    "the op log holds {} entries but no Raft state: it was written by the \
                     single-sequencer deployment",
                    log.len()
                ));
            }
            Some(bytes) => decode(&bytes, MAX_RECORD)
                .map_err(|e| format!("the op log's Raft state is corrupt: {e}"))?,
        };
        Ok(Self {
            log,
            chain,
            applied,
            snapshot: Arc::default(),
        })
    }

    fn builder(&self) -> Builder {
        Builder {
            log: self.log.clone(),
            applied: self.applied.clone(),
            len: self.log.len(),
            chain: self
                .chain
                .as_ref()
                .map(|c| (c.clone(), c.head_now().height)),
            latest: self.snapshot.clone(),
        }
    }

    /// Applies a block entry of `log_id`: returns the block's height, or `u64::MAX` when the
    /// block is refused (the same way on every keeper: it does not decode, was not signed by
    /// the leader of its entry's term, or does not verify against the chain). A block already
    /// in the chain (an entry applied again after a crash) is not applied twice. A failure to
    /// store is the state machine's error.
    fn apply_block(&self, bytes: &[u8], log_id: LogId<NodeId>) -> Result<u64, SErr> {
        let Some(chain) = &self.chain else {
            tracing::warn!(
                index = log_id.index,
                "a block entry, but this keeper keeps no chain"
            );
            return Ok(u64::MAX);
        };
        let block = match Block::decode(bytes) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    index = log_id.index,
                    "refused a block that does not decode: {e}"
                );
                return Ok(u64::MAX);
            }
        };
        if super::node_id(&block.header.sequencer) != log_id.leader_id.node_id {
            tracing::warn!(
                index = log_id.index,
                height = block.header.height,
                "refused a block not signed by the leader of its term"
            );
            return Ok(u64::MAX);
        }
        if chain.contains(&block).map_err(sm_err)? {
            return Ok(block.header.height);
        }
        let height = block.header.height;
        match chain.import_block(block) {
            Ok(()) => Ok(height),
            Err(e @ LedgerError::Storage(_)) => Err(sm_err(e)),
            Err(e) => {
                tracing::warn!(index = log_id.index, height, "refused a block: {e}");
                Ok(u64::MAX)
            }
        }
    }
}

impl Builder {
    fn build(&self) -> Result<Snapshot<TypeConfig>, SErr> {
        let len = self.len;
        let mut ops = Vec::with_capacity(len as usize);
        let mut next = 0;
        while next < len {
            let batch = self
                .log
                .read(next, (len - next).min(1024) as usize, 8 << 20)
                .map_err(|e| snap_err(e.to_string()))?;
            if batch.is_empty() {
                break;
            }
            next += batch.len() as u64;
            ops.extend(batch.iter().map(|(_, op)| wire::encode(op)));
        }
        let mut blocks = Vec::new();
        if let Some((chain, height)) = &self.chain {
            blocks.reserve(*height as usize);
            for h in 1..=*height {
                match chain.block_at(h).map_err(|e| snap_err(e.to_string()))? {
                    Some(b) => blocks.push(b.encode()),
                    None => return Err(snap_err(format!("block {h} is missing from the chain"))),
                }
            }
        }
        let bytes = encode(&SnapshotBody { ops, blocks });
        let last = self.applied.last;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.applied.membership.clone(),
            snapshot_id: match last {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, len),
                None => format!("none-{len}"),
            },
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let snap = self.build()?;
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        // Builders may finish out of order: keep the newest.
        if latest
            .as_ref()
            .is_none_or(|(m, _)| m.last_log_id <= snap.meta.last_log_id)
        {
            *latest = Some((snap.meta.clone(), Arc::new(snap.snapshot.get_ref().clone())));
        }
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<u64>>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let start = self.log.len();
        let mut ops: Vec<SignedOp> = Vec::new();
        let mut replies = Vec::new();
        let mut applied = self.applied.clone();
        for e in entries {
            applied.last = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => replies.push(Vec::new()),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(e.log_id), m);
                    replies.push(Vec::new());
                }
                EntryPayload::Normal(Proposal::Block(bytes)) => {
                    replies.push(vec![self.apply_block(&bytes, e.log_id)?]);
                }
                EntryPayload::Normal(Proposal::Ops(batch)) => {
                    // The proposing keeper checked each operation; one that does not decode
                    // or verify (a corrupt or lying leader) is skipped the same way on every
                    // keeper, so positions stay equal.
                    let mut positions = Vec::with_capacity(batch.len());
                    for bytes in batch {
                        let op: Result<SignedOp, _> =
                            wire::decode(&bytes, MAX_ENTRY_BYTES, "replicated operation");
                        match op {
                            Ok(op) if op.verify().is_ok() => {
                                positions.push(start + ops.len() as u64);
                                ops.push(op);
                            }
                            _ => {
                                tracing::warn!(
                                    index = e.log_id.index,
                                    "skipped an invalid operation"
                                );
                                positions.push(u64::MAX);
                            }
                        }
                    }
                    replies.push(positions);
                }
            }
        }
        self.log
            .extend_with_state(start, &ops, encode(&applied))
            .await
            .map_err(sm_err)?;
        self.applied = applied;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let body: SnapshotBody = decode(&bytes, MAX_SNAPSHOT)
            .map_err(|e| snap_err(format!("snapshot {} is corrupt: {e}", meta.snapshot_id)))?;
        let have = self.log.len();
        let total = body.ops.len() as u64;
        if total < have {
            return Err(snap_err(format!(
                "snapshot {} holds {total} operations, fewer than the {have} applied here",
                meta.snapshot_id
            )));
        }
        // Committed operations never change: what this keeper holds must be the snapshot's
        // prefix. Its last one is compared; the rest is chained by the log's own checks.
        if have > 0 {
            let mine = self
                .log
                .read(have - 1, 1, usize::MAX)
                .map_err(|e| snap_err(e.to_string()))?;
            let same = mine
                .first()
                .is_some_and(|(_, op)| wire::encode(op) == body.ops[have as usize - 1]);
            if !same {
                return Err(snap_err(format!(
                    "snapshot {} disagrees with operation {} applied here",
                    meta.snapshot_id,
                    have - 1
                )));
            }
        }
        let mut ops = Vec::with_capacity((total - have) as usize);
        for (i, raw) in body.ops[have as usize..].iter().enumerate() {
            let op: SignedOp = wire::decode(raw, MAX_ENTRY_BYTES, "snapshot operation")
                .map_err(|e| snap_err(format!("operation {}: {e}", have + i as u64)))?;
            ops.push(op);
        }
        if let Some(chain) = &self.chain {
            install_blocks(chain, &body.blocks, &meta.snapshot_id)?;
        }
        let applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.log
            .extend_with_state(have, &ops, encode(&applied))
            .await
            .map_err(sm_err)?;
        self.applied = applied;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((meta.clone(), Arc::new(bytes)));
        Ok(())
    }

    /// The newest snapshot built or installed. After a restart (snapshots are not kept on
    /// disk: the op log is their content) one is built from the applied state.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let latest = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match latest {
            Some((meta, bytes)) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes.as_ref().clone())),
            })),
            None if self.applied.last.is_none() => Ok(None),
            None => self.builder().build_snapshot().await.map(Some),
        }
    }
}

//! The keepers' op log, replicated by a Raft group on [openraft].
//!
//! Every keeper runs a Raft node. A user's operation, checked by the keeper that took it
//! ([`crate::keeper::Keeper::admit`]), is proposed to the group: by that keeper when it leads,
//! otherwise forwarded to the leader ([`Request::OpAppend`](memo_core::protocol::Request)).
//! Once a majority stored it, every keeper applies it to its state machine, which is the
//! keeper's op log ([`DurableOpLog`]): the [`crate::keeper::Keeper`] follows that log exactly
//! as it followed the single sequencer's, so positions, outcomes and the ownership rules are
//! unchanged.
//!
//! - **Storage.** The Raft log and vote live in `raft.redb`, durable before openraft is told
//!   an entry is stored; entries handed over together share one fsync. The applied operations
//!   and how far they reach live in `oplog.redb`, written in one transaction, so a crash never
//!   applies an entry twice or loses one.
//! - **Snapshots** hold the op log's operations; a lagging or new keeper installs one, and the
//!   Raft log before it is purged.
//! - **Network.** Raft messages travel as [`Request::Raft`](memo_core::protocol::Request) over
//!   memo's authenticated transport; [`RaftService`] hears only members of the group, and only
//!   votes and appends that the sender signs for itself.
//! - **Reads.** [`OpLog::sync_len`] is a read index: the leader confirms it still leads, and
//!   the keeper waits until it applied everything committed before the read. Keepers call it
//!   before answering placement, lookups, listings and stat, so a second owner always sees the
//!   first owner's put.
//!
//! Raft tolerates crashes, not lies: see `docs/security.md`. The log's content is memo's own
//! signed operations, independent of the engine.

mod chain;
mod network;
mod store;

pub use chain::GroupLedger;
pub use network::{RaftService, group_status};

use super::durable::MAX_ENTRY_BYTES;
use super::service::client;
use super::{DurableOpLog, LogEntry, OpLog, OpLogError};
use async_trait::async_trait;
use futures::stream::BoxStream;
use memo_core::objects::SignedOp;
use memo_core::protocol::ErrorCode;
use memo_core::transport::{Transport, TransportError};
use memo_core::{AccountId, wire};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

use crate::transport::rpc::RpcError;

/// The Raft log's file in a keeper's data dir.
pub const RAFT_FILE: &str = "raft.redb";

/// Most operations in one proposal.
const MAX_BATCH: usize = 256;

type WriteError = RaftError<u64, ClientWriteError<u64, BasicNode>>;
type Waiter = tokio::sync::oneshot::Sender<Result<u64, WriteError>>;

/// Proposes queued operations, batched: one proposal at a time, holding every operation that
/// queued while the previous one was in flight. Each waiter gets its operation's position
/// (`u64::MAX` if the group skipped it) or the proposal's error.
async fn propose_batches(
    raft: Raft<TypeConfig>,
    mut queue: tokio::sync::mpsc::Receiver<(Vec<u8>, Waiter)>,
) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(op) => op,
            None => match queue.recv().await {
                Some(op) => op,
                None => return,
            },
        };
        let mut bytes = first.0.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                // One entry stays within one operation's limit, however many it carries.
                Ok(next) if bytes + next.0.len() > MAX_ENTRY_BYTES => {
                    carried = Some(next);
                    break;
                }
                Ok(next) => {
                    bytes += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (ops, waiters): (Vec<Vec<u8>>, Vec<Waiter>) = batch.into_iter().unzip();
        match raft.client_write(Proposal::Ops(ops)).await {
            Ok(r) => {
                for (i, w) in waiters.into_iter().enumerate() {
                    let _ = w.send(Ok(r.data.get(i).copied().unwrap_or(u64::MAX)));
                }
            }
            Err(e) => {
                for w in waiters {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}

/// What one entry of the group's log carries, in memo's own encodings (the log's content does
/// not depend on the engine).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Proposal {
    /// Object operations: the canonical bytes of [`SignedOp`]s. Appends that arrive while
    /// the previous proposal is in flight travel together, so that they share one Raft entry
    /// and one fsync on every keeper.
    Ops(Vec<Vec<u8>>),
    /// A ledger block ([`crate::ledger::Block::encode`]), built and signed by the leader of
    /// the entry's term.
    Block(Vec<u8>),
}

openraft::declare_raft_types!(
    /// memo's Raft types: entries carry signed object operations or ledger blocks; applying one
    /// answers each operation's position in the op log, or the block's height (`u64::MAX` for
    /// an operation or block refused as invalid).
    pub(crate) TypeConfig:
        D = Proposal,
        R = Vec<u64>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// The engine's node id of a keeper: the first 8 bytes of its account. [`RaftOpLog::open`]
/// refuses a group where two members share one.
pub(crate) fn node_id(a: &AccountId) -> u64 {
    let b = a.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn node(a: &AccountId) -> BasicNode {
    BasicNode { addr: a.to_hex() }
}

pub(crate) fn account_of(n: &BasicNode) -> Option<AccountId> {
    n.addr.parse().ok()
}

/// Timing of a keeper group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// How often the leader tells followers it is alive.
    pub heartbeat: Duration,
    /// A follower that heard no leader for a random time in this range stands for election.
    /// Failover takes about the upper bound plus one round of votes.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the Raft log behind the last snapshot, for lagging members; one
    /// further behind installs the snapshot.
    pub logs_kept: u64,
    /// How long an append may wait for a leader (an election) before it fails.
    pub leader_wait: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            snapshot_every: 10_000,
            logs_kept: 1000,
            leader_wait: Duration::from_secs(10),
        }
    }
}

/// How a keeper sees its group, for `status` and health checks (also on the wire, answering
/// [`memo_core::protocol::Request::GroupStatus`]).
pub use memo_core::protocol::GroupInfo as GroupStatus;

/// Read-index rounds of one keeper: how many started, the last one's number and index, and
/// the turn that lets one run at a time.
#[derive(Default)]
struct ReadRounds {
    started: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<(u64, u64)>>,
    turn: tokio::sync::Mutex<()>,
}

/// A keeper's op log as a member of the keepers' Raft group (openraft): operations a majority
/// stored are applied, in the same order on every keeper, to the keeper's [`DurableOpLog`];
/// any member accepts an append and forwards it to the leader; [`OpLog::sync_len`] is a read
/// index. The design is in `docs/architecture.md` ("The keeper group").
pub struct RaftOpLog {
    raft: Raft<TypeConfig>,
    reads: ReadRounds,
    proposals: tokio::sync::mpsc::Sender<(Vec<u8>, Waiter)>,
    account: AccountId,
    seeds: Vec<AccountId>,
    log: DurableOpLog,
    transport: Arc<dyn Transport>,
    config: GroupConfig,
    ledger: Option<Arc<GroupLedger>>,
    producer: Option<tokio::task::JoinHandle<()>>,
}

/// A ledger that rides on the keeper group's log ([`RaftOpLog::open_with_chain`]).
#[derive(Debug, Clone)]
pub struct GroupChain {
    /// This keeper's copy of the chain ([`crate::ledger::LocalChain::open_group`]).
    pub chain: Arc<crate::ledger::LocalChain>,
    /// The clock that stamps the blocks this keeper builds while it leads.
    pub env: crate::env::Env,
    /// A block every this often, from the leader.
    pub block_interval: Duration,
}

impl Drop for RaftOpLog {
    fn drop(&mut self) {
        if let Some(p) = &self.producer {
            p.abort();
        }
    }
}

impl std::fmt::Debug for RaftOpLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftOpLog")
            .field("account", &self.account.short())
            .field("ops", &self.log.len())
            .finish_non_exhaustive()
    }
}

fn storage(e: impl std::fmt::Display) -> OpLogError {
    OpLogError::Storage(e.to_string())
}

impl RaftOpLog {
    /// Opens the keeper `account`'s Raft node from `data_dir` (`raft.redb` and `oplog.redb`),
    /// speaking to the group over `transport`.
    ///
    /// `keepers` are the group's founding members. A founder (one of `keepers`) whose store is
    /// new bootstraps the group with them; every founder may do so with the same list. A
    /// keeper not among them waits to be added by the group ([`RaftOpLog::add_member`]), and
    /// hears the founders meanwhile.
    ///
    /// Errors: the data dir cannot be created, the stores do not open or are corrupt, or two
    /// members share a node id.
    pub async fn open(
        account: AccountId,
        transport: Arc<dyn Transport>,
        data_dir: &Path,
        keepers: &[AccountId],
        config: GroupConfig,
    ) -> Result<Arc<Self>, OpLogError> {
        Self::open_with_chain(account, transport, data_dir, keepers, config, None).await
    }

    /// Like [`RaftOpLog::open`], with the ledger on the same log when `chain` is given: while
    /// this keeper leads it builds a block every `block_interval` and proposes it, and every
    /// keeper imports the committed blocks into its copy of the chain. The ledger is served
    /// through [`RaftOpLog::ledger`].
    pub async fn open_with_chain(
        account: AccountId,
        transport: Arc<dyn Transport>,
        data_dir: &Path,
        keepers: &[AccountId],
        config: GroupConfig,
        chain: Option<GroupChain>,
    ) -> Result<Arc<Self>, OpLogError> {
        let ids: BTreeSet<u64> = keepers.iter().map(node_id).collect();
        if ids.len() != keepers.iter().collect::<BTreeSet<_>>().len() {
            return Err(OpLogError::Storage(
                "two keepers of the group share a node id (the first 8 bytes of their account)"
                    .into(),
            ));
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| OpLogError::Storage(format!("data dir {}: {e}", data_dir.display())))?;
        let log = DurableOpLog::open(&data_dir.join(crate::keeper::node::OPLOG_FILE))?;
        let sm = store::StateMachine::open(log.clone(), chain.as_ref().map(|c| c.chain.clone()))
            .map_err(storage)?;
        let log_store = store::LogStore::open(&data_dir.join(RAFT_FILE)).map_err(storage)?;
        let raft_config = openraft::Config {
            cluster_name: "memo-keepers".into(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            max_payload_entries: 256,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.logs_kept,
            snapshot_max_chunk_size: 4 << 20,
            ..Default::default()
        }
        .validate()
        .map_err(storage)?;
        let network = network::Network::new(transport.clone());
        let raft = Raft::new(
            node_id(&account),
            Arc::new(raft_config),
            network,
            log_store,
            sm,
        )
        .await
        .map_err(storage)?;
        let (proposals, queue) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(propose_batches(raft.clone(), queue));
        let ledger = chain.as_ref().map(|c| {
            GroupLedger::new(
                c.chain.clone(),
                raft.clone(),
                account,
                transport.clone(),
                c.block_interval,
            )
        });
        let producer = chain.map(|c| {
            tokio::spawn(chain::produce_blocks(
                raft.clone(),
                c.chain,
                c.env,
                c.block_interval,
            ))
        });
        let me = Arc::new(Self {
            reads: ReadRounds::default(),
            raft,
            proposals,
            account,
            seeds: keepers.to_vec(),
            log,
            transport,
            config,
            ledger,
            producer,
        });
        if keepers.contains(&account) && !me.raft.is_initialized().await.map_err(storage)? {
            let nodes: BTreeMap<u64, BasicNode> =
                keepers.iter().map(|a| (node_id(a), node(a))).collect();
            match me.raft.initialize(nodes).await {
                Ok(()) => info!(members = keepers.len(), "keeper group bootstrapped"),
                // Another founder's bootstrap reached this keeper first: the same group.
                Err(RaftError::APIError(e)) => info!("keeper group already formed: {e}"),
                Err(e) => return Err(storage(e)),
            }
        }
        Ok(me)
    }

    /// The service answering the group's Raft messages; serve it with the keeper.
    pub fn service(&self) -> Arc<RaftService> {
        RaftService::new(
            self.raft.clone(),
            self.log.clone(),
            self.seeds.iter().copied(),
        )
    }

    /// The ledger on the group's log, when opened with a chain.
    pub fn ledger(&self) -> Option<Arc<GroupLedger>> {
        self.ledger.clone()
    }

    /// The applied op log (the state machine).
    pub fn ops(&self) -> &DurableOpLog {
        &self.log
    }

    /// This keeper's view of the group.
    pub fn status(&self) -> GroupStatus {
        status_of(&self.raft, self.log.len())
    }

    /// Waits up to `timeout` until the group has a leader; returns it.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<AccountId> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .ok()?;
        let id = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&id)
            .and_then(account_of)
    }

    /// Adds `keeper` to the group as a voter (call on the leader): it first catches up as a
    /// learner, from a snapshot if the log was compacted.
    pub async fn add_member(&self, keeper: AccountId) -> Result<(), OpLogError> {
        self.raft
            .add_learner(node_id(&keeper), node(&keeper), true)
            .await
            .map_err(|e| OpLogError::Forward(e.to_string()))?;
        let mut voters: BTreeSet<u64> = self.voters();
        voters.insert(node_id(&keeper));
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| OpLogError::Forward(e.to_string()))?;
        Ok(())
    }

    /// Removes `keeper` from the group (call on the leader).
    pub async fn remove_member(&self, keeper: AccountId) -> Result<(), OpLogError> {
        let mut voters = self.voters();
        voters.remove(&node_id(&keeper));
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| OpLogError::Forward(e.to_string()))?;
        Ok(())
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Stops the Raft node (its tasks end; the stores close when the last handle drops).
    pub async fn shutdown(&self) {
        if let Some(p) = &self.producer {
            p.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    /// A read index for a read that arrived now, from one round at a time: reads that arrive
    /// while a round is in flight share the next round (which starts after they arrived, so its
    /// index covers every write acknowledged before them) instead of each asking the leader.
    async fn shared_read_index(&self) -> Result<u64, OpLogError> {
        let arrived = self.reads.started.load(std::sync::atomic::Ordering::SeqCst);
        let _turn = self.reads.turn.lock().await;
        let last = *self.reads.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((round, index)) = last
            && round > arrived
        {
            return Ok(index);
        }
        let round = self
            .reads
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let index = self.read_index().await?;
        *self.reads.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((round, index));
        Ok(index)
    }

    /// The leader's read index: the Raft log index every write acknowledged before this call
    /// is within. Asked of the leader, which confirms its leadership with a quorum.
    async fn read_index(&self) -> Result<u64, OpLogError> {
        let deadline = self.config.leader_wait;
        tokio::time::timeout(deadline, async {
            loop {
                match self.raft.ensure_linearizable().await {
                    Ok(read) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                    Err(RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(f),
                    )) => {
                        let Some(leader) = f.leader_node.as_ref().and_then(account_of) else {
                            self.wait_leader(deadline).await;
                            continue;
                        };
                        match network::read_index(self.transport.as_ref(), leader).await {
                            Ok(i) => return Ok(i),
                            Err(e) if retryable(&e) => self.wait_new_leader(f.leader_id).await,
                            Err(e) => return Err(OpLogError::Forward(e.to_string())),
                        }
                    }
                    Err(RaftError::APIError(e)) => {
                        // No quorum confirmed the leadership: wait for the group to settle.
                        warn!("read index: {e}");
                        self.wait_new_leader(None).await;
                    }
                    Err(RaftError::Fatal(e)) => return Err(OpLogError::Storage(e.to_string())),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(OpLogError::Forward(format!(
                "the keeper group has no leader with a quorum (waited {deadline:?})"
            )))
        })
    }

    /// Proposes one operation through the batching task.
    async fn propose(&self, op: Vec<u8>) -> Result<Result<u64, WriteError>, OpLogError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopped = || OpLogError::Storage("the keeper's Raft node stopped".into());
        self.proposals.send((op, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Waits (briefly) for a leader other than `old`.
    async fn wait_new_leader(&self, old: Option<u64>) {
        let _ = self
            .raft
            .wait(Some(self.config.election_timeout.1 * 2))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != old,
                "a new leader",
            )
            .await;
    }

    /// Waits until this keeper applied the Raft log up to `index`.
    async fn applied_through(&self, index: u64) -> Result<(), OpLogError> {
        self.raft
            .wait(Some(self.config.leader_wait))
            .metrics(
                |m| m.last_applied.is_some_and(|l| l.index >= index),
                "applied",
            )
            .await
            .map(|_| ())
            .map_err(|e| OpLogError::Forward(format!("catching up with the group: {e}")))
    }
}

/// A Raft node's view of its group, with `ops` operations applied.
fn status_of(raft: &Raft<TypeConfig>, ops: u64) -> GroupStatus {
    let m = raft.metrics().borrow().clone();
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "stopped",
    };
    let members = m
        .membership_config
        .membership()
        .voter_ids()
        .filter_map(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .and_then(account_of)
        })
        .collect();
    let leader = m.current_leader.and_then(|id| {
        m.membership_config
            .membership()
            .get_node(&id)
            .and_then(account_of)
    });
    GroupStatus {
        role: role.into(),
        term: m.current_term,
        leader,
        members,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        ops,
    }
}

/// Whether a forwarding failure means the operation was certainly not appended, so that it
/// may be sent again: the leader could not be reached, or refused before appending.
fn retryable(e: &RpcError) -> bool {
    match e {
        RpcError::Transport(TransportError::Unreachable(_)) => true,
        RpcError::Remote { error, .. } => error.code == ErrorCode::Unavailable,
        _ => false,
    }
}

#[async_trait]
impl OpLog for RaftOpLog {
    /// Proposes `op` to the group (forwarded to the leader when this keeper does not lead)
    /// and returns its position once applied here. An append interrupted by a change of
    /// leader may land twice; the second copy is refused as a replay when applied, and the
    /// keeper answers the first copy's outcome.
    async fn append(&self, op: SignedOp) -> Result<u64, OpLogError> {
        let bytes = wire::encode(&op);
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(OpLogError::TooLarge(bytes.len()));
        }
        let wait = self.config.leader_wait;
        let appended = tokio::time::timeout(wait, async {
            loop {
                match self.propose(bytes.clone()).await? {
                    Ok(u64::MAX) => {
                        return Err(OpLogError::Forward(
                            "the group did not apply the operation".into(),
                        ));
                    }
                    Ok(pos) => return Ok(pos),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        match f.leader_node.as_ref().and_then(account_of) {
                            Some(leader) if leader != self.account => {
                                match client::append(self.transport.as_ref(), leader, &op).await {
                                    Ok(pos) => return Ok(pos),
                                    Err(e) if retryable(&e) => {
                                        self.wait_new_leader(f.leader_id).await
                                    }
                                    Err(e) => return Err(OpLogError::Forward(e.to_string())),
                                }
                            }
                            _ => self.wait_new_leader(None).await,
                        }
                    }
                    Err(RaftError::APIError(e)) => {
                        return Err(OpLogError::Forward(e.to_string()));
                    }
                    Err(RaftError::Fatal(e)) => return Err(OpLogError::Storage(e.to_string())),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(OpLogError::Forward(format!(
                "the keeper group has no leader (waited {wait:?})"
            )))
        })?;
        // A forwarded append returns once the leader applied it; the entry is committed, so
        // this keeper will apply it too.
        self.log.wait_len(appended + 1).await;
        Ok(appended)
    }

    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry> {
        self.log.follow(from)
    }

    fn known_len(&self) -> Option<u64> {
        Some(self.log.len())
    }

    async fn sync_len(&self) -> Result<Option<u64>, OpLogError> {
        let index = self.shared_read_index().await?;
        self.applied_through(index).await?;
        Ok(Some(self.log.len()))
    }
}

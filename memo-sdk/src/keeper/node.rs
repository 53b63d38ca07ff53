//! A whole keeper node for one OS process: the [`Keeper`] service with its shared logs wired
//! for replication, as sequencer or as follower.
//!
//! In the local-chain deployment one keeper *sequences*: it owns the durable op log
//! ([`DurableOpLog`]) and, optionally, the chain ([`LocalChain::open_sequencer`]), and serves
//! both ([`OpLogService`], [`LedgerService`]). Every other keeper *follows*: its op log is a
//! [`RemoteOpLog`] (appends forwarded to the sequencer, entries pulled, verified and kept in a
//! durable replica) and its chain a verifying follower ([`ChainFollower`] over a
//! [`RemoteLedger`]). A user may talk to any keeper; all apply the same operations in the same
//! order and so hold the same state.
//!
//! Or the keepers form a Raft group ([`KeeperNode::group`]): every member holds the
//! replicated log, any member accepts a write and forwards it to the leader, and the group
//! survives the loss of a minority.
//!
//! Files in the data dir: `oplog.redb` (the sequencer's log, the follower's replica, or the
//! group's applied log), `raft.redb` (in a group), `chain.redb` (when a chain is
//! configured) and `keeper.checkpoint` (the keeper's state as of a log position, see
//! [`crate::keeper::checkpoint`]).

use crate::keeper::{Keeper, KeeperConfig};
use crate::ledger::{
    ChainConfig, ChainFollower, Ledger, LedgerError, LedgerService, LocalChain, RemoteLedger,
};
use crate::node::Service;
use crate::replication::{
    DurableOpLog, GroupChain, GroupConfig, OpLog, OpLogError, OpLogService, RaftOpLog, RemoteOpLog,
    RemoteOpLogConfig,
};
use memo_core::contract::{Genesis, ProofVerifier};
use memo_core::transport::Transport;
use memo_core::{AccountId, Keypair};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The op log's file in a keeper's data dir.
pub const OPLOG_FILE: &str = "oplog.redb";
/// The chain's file in a keeper's data dir.
pub const CHAIN_FILE: &str = "chain.redb";

/// Why a keeper node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperNodeError {
    /// The data dir could not be created.
    #[error("data dir {path}: {error}")]
    DataDir {
        /// The path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The op log did not open.
    #[error("op log: {0}")]
    OpLog(#[from] OpLogError),
    /// The chain did not open.
    #[error("chain: {0}")]
    Chain(#[from] LedgerError),
    /// A keeper group's chain rides on the group's log: every member keeps it with its own
    /// key ([`KeeperChain::Produce`]), none follows a producer.
    #[error("a keeper in a group keeps the group's chain: give it KeeperChain::Produce")]
    FollowerInGroup,
}

/// The chain a sequencer keeper produces.
#[derive(Clone)]
pub struct SequencerChain {
    /// The genesis.
    pub genesis: Genesis,
    /// The sequencer's key (the keeper's own), signing every block.
    pub key: Keypair,
    /// Checks storage proofs.
    pub verifier: Arc<dyn ProofVerifier>,
    /// A block every this often.
    pub block_interval: Duration,
}

/// The chain a follower keeper verifies and stores.
#[derive(Clone)]
pub struct FollowerChain {
    /// The genesis and the sequencer's account.
    pub config: ChainConfig,
    /// Checks storage proofs (the same as the sequencer's).
    pub verifier: Arc<dyn ProofVerifier>,
    /// How often the follower polls the sequencer's head.
    pub poll: Duration,
}

/// A running keeper node: serve it with [`KeeperNode::services`] (the keeper, the op log
/// and, if configured, the ledger) through [`crate::node::serve`], or let
/// [`KeeperNode::spawn_serving`] do it.
pub struct KeeperNode {
    /// The keeper service.
    pub keeper: Arc<Keeper>,
    /// The op log the keeper follows.
    pub log: Arc<dyn OpLog>,
    /// The sequencer's log, on the sequencer.
    pub durable: Option<DurableOpLog>,
    /// The log replica, on a follower.
    pub remote: Option<Arc<RemoteOpLog>>,
    /// The keeper's Raft node, in a keeper group.
    pub group: Option<Arc<RaftOpLog>>,
    /// The chain (sequencer, follower or group member), if configured.
    pub chain: Option<Arc<LocalChain>>,
    /// The ledger this keeper uses itself: its own chain on the sequencer, the group's in a
    /// group; `None` on a follower (which sends transactions to the sequencer).
    pub ledger: Option<Arc<dyn Ledger>>,
    /// The chain follower loop, on a follower with a chain.
    pub chain_follower: Option<ChainFollower>,
    transport: Arc<dyn Transport>,
    services: Vec<Arc<dyn Service>>,
    tasks: Vec<JoinHandle<()>>,
    serving: Option<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for KeeperNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperNode")
            .field("account", &self.keeper.account())
            .field("sequencer", &self.durable.is_some())
            .field("group", &self.group.is_some())
            .finish_non_exhaustive()
    }
}

fn data_dir(dir: &Path) -> Result<(), KeeperNodeError> {
    std::fs::create_dir_all(dir).map_err(|error| KeeperNodeError::DataDir {
        path: dir.display().to_string(),
        error,
    })
}

/// The chain a keeper keeps beside its op log: producing the blocks, or verifying and
/// storing the producer's.
#[derive(Clone)]
pub enum KeeperChain {
    /// This keeper produces blocks.
    Produce(SequencerChain),
    /// This keeper follows the producer named in the [`ChainConfig`].
    Follow(FollowerChain),
}

impl KeeperNode {
    /// Starts the sequencing keeper with `key` (its transport's account): opens (or resumes)
    /// `data_dir/oplog.redb` and, with `chain`, `data_dir/chain.redb` with a block producer;
    /// starts applying the log. Only the keepers of `config` may append to or read the log
    /// through the network.
    pub fn sequencer(
        key: Keypair,
        transport: Arc<dyn Transport>,
        data_dir: &Path,
        config: KeeperConfig,
        chain: Option<SequencerChain>,
    ) -> Result<Self, KeeperNodeError> {
        self::data_dir(data_dir)?;
        let durable = DurableOpLog::open(&data_dir.join(OPLOG_FILE))?;
        let mut node = Self::assemble(
            key,
            transport,
            Arc::new(durable.clone()),
            data_dir,
            config,
            chain.map(KeeperChain::Produce),
        )?;
        node.durable = Some(durable);
        Ok(node)
    }

    /// Starts a following keeper with `key`: its log replica in `data_dir/oplog.redb`
    /// (replayed first, then pulled from `sequencer`), its appends forwarded to `sequencer`;
    /// with `chain`, a verifying follower chain in `data_dir/chain.redb` that imports the
    /// sequencer's blocks.
    pub fn follower(
        key: Keypair,
        transport: Arc<dyn Transport>,
        sequencer: AccountId,
        data_dir: &Path,
        config: KeeperConfig,
        chain: Option<FollowerChain>,
    ) -> Result<Self, KeeperNodeError> {
        self::data_dir(data_dir)?;
        let cache = DurableOpLog::open(&data_dir.join(OPLOG_FILE))?;
        let remote = Arc::new(RemoteOpLog::start_with(
            transport.clone(),
            sequencer,
            Some(cache),
            RemoteOpLogConfig::default(),
        ));
        let mut node = Self::assemble(
            key,
            transport,
            remote.clone(),
            data_dir,
            config,
            chain.map(KeeperChain::Follow),
        )?;
        node.remote = Some(remote);
        Ok(node)
    }

    /// Starts a keeper as a member of the keepers' Raft group ([`RaftOpLog`]): its Raft log in
    /// `data_dir/raft.redb`, the applied op log in `data_dir/oplog.redb`. `founders` are the
    /// group's founding members (see [`RaftOpLog::open`]); the keeper accepts users' writes
    /// and forwards them to the leader.
    ///
    /// With `chain` ([`KeeperChain::Produce`] with this keeper's key), the ledger rides on the
    /// group's log ([`RaftOpLog::open_with_chain`]): its copy is `data_dir/chain.redb`, blocks
    /// signed by any founder are accepted, and the leader of the moment builds them. The
    /// node's [`KeeperNode::ledger`] takes transactions on any member.
    pub async fn group(
        key: Keypair,
        transport: Arc<dyn Transport>,
        data_dir: &Path,
        config: KeeperConfig,
        founders: &[AccountId],
        group: GroupConfig,
        chain: Option<KeeperChain>,
    ) -> Result<Self, KeeperNodeError> {
        self::data_dir(data_dir)?;
        let chain = match chain {
            None => None,
            Some(KeeperChain::Follow(_)) => return Err(KeeperNodeError::FollowerInGroup),
            Some(KeeperChain::Produce(c)) => Some(GroupChain {
                chain: Arc::new(LocalChain::open_group(
                    &data_dir.join(CHAIN_FILE),
                    c.genesis,
                    founders.to_vec(),
                    c.key,
                    c.verifier,
                )?),
                env: config.env.clone(),
                block_interval: c.block_interval,
            }),
        };
        let local_chain = chain.as_ref().map(|c| c.chain.clone());
        let raft = RaftOpLog::open_with_chain(
            key.account(),
            transport.clone(),
            data_dir,
            founders,
            group,
            chain,
        )
        .await?;
        let mut node = Self::assemble(key, transport, raft.clone(), data_dir, config, None)?;
        node.services.push(raft.service());
        if let Some(ledger) = raft.ledger() {
            node.services.push(LedgerService::new(ledger.clone()));
            node.ledger = Some(ledger);
        }
        node.chain = local_chain;
        node.group = Some(raft);
        Ok(node)
    }

    /// The keeper over `log`, the op log's service and the chain.
    fn assemble(
        key: Keypair,
        transport: Arc<dyn Transport>,
        log: Arc<dyn OpLog>,
        data_dir: &Path,
        config: KeeperConfig,
        chain: Option<KeeperChain>,
    ) -> Result<Self, KeeperNodeError> {
        let mut services: Vec<Arc<dyn Service>> = Vec::new();
        let mut tasks = Vec::new();
        let members = config.keepers.clone();
        // Open the chain before the keeper starts, so a failure leaves nothing running.
        let chain = match chain {
            Some(KeeperChain::Produce(c)) => Some((
                Arc::new(LocalChain::open_sequencer(
                    &data_dir.join(CHAIN_FILE),
                    c.genesis,
                    c.key,
                    c.verifier,
                )?),
                None,
                c.block_interval,
            )),
            Some(KeeperChain::Follow(c)) => {
                let producer = c.config.sequencer;
                Some((
                    Arc::new(LocalChain::open_follower(
                        &data_dir.join(CHAIN_FILE),
                        c.config,
                        c.verifier,
                    )?),
                    Some(producer),
                    c.poll,
                ))
            }
            None => None,
        };
        let keeper = Keeper::new(key, transport.clone(), log.clone(), config);
        keeper.checkpoint_to(data_dir.join(crate::keeper::checkpoint::CHECKPOINT_FILE));
        tasks.push(keeper.start());
        services.push(keeper.clone());
        services.push(OpLogService::new(log.clone(), members));
        let mut chain_follower = None;
        let mut ledger: Option<Arc<dyn Ledger>> = None;
        let chain = chain.map(|(lc, producer, interval)| {
            match producer {
                None => {
                    tasks.push(lc.spawn_producer(keeper.env().clone(), interval));
                    ledger = Some(lc.clone());
                }
                Some(producer) => {
                    let source = RemoteLedger::new(transport.clone(), producer, interval);
                    chain_follower = Some(ChainFollower::start(lc.clone(), source, interval));
                }
            }
            services.push(LedgerService::new(lc.clone()));
            lc
        });
        Ok(Self {
            keeper,
            log,
            durable: None,
            remote: None,
            group: None,
            chain,
            ledger,
            chain_follower,
            transport,
            services,
            tasks,
            serving: None,
            stop: tokio::sync::watch::channel(false).0,
        })
    }

    /// This keeper's account.
    pub fn account(&self) -> AccountId {
        self.keeper.account()
    }

    /// Adds a service this node answers (call before [`KeeperNode::spawn_serving`]).
    pub fn add_service(&mut self, service: Arc<dyn Service>) {
        self.services.push(service);
    }

    /// The services this node answers: keeper, op log, and ledger if configured.
    pub fn services(&self) -> Vec<Arc<dyn Service>> {
        self.services.clone()
    }

    /// Serves [`KeeperNode::services`] on the node's transport in a background task, each
    /// request in its own task, until the transport closes or [`KeeperNode::shutdown`].
    pub fn spawn_serving(&mut self) {
        if self.serving.is_some() {
            return;
        }
        let t = self.transport.clone();
        let services = Arc::new(self.services());
        let mut stop = self.stop.subscribe();
        self.serving = Some(tokio::spawn(async move {
            let mut requests = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    incoming = t.next_incoming() => match incoming {
                        Some(incoming) => {
                            let services = services.clone();
                            requests.spawn(async move {
                                crate::node::dispatch(&services, incoming).await;
                            });
                        }
                        None => break,
                    },
                    Some(_) = requests.join_next(), if !requests.is_empty() => {}
                    _ = stop.changed() => break,
                }
            }
            // Requests in flight (long polls included) are cancelled and waited for.
            requests.shutdown().await;
        }));
    }

    /// Stops serving (cancelling requests in flight) and every background task of the node,
    /// waits for them, writes the keeper's checkpoint (the state as of every entry it applied,
    /// all of them durable in its op log), then drops the node: its data dir's files are
    /// closed when this returns, so the node can be opened again from them.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(s) = self.serving.take() {
            let _ = s.await;
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.keeper.checkpoint_now().await;
        if let Some(r) = &self.remote {
            r.stop().await;
        }
        if let Some(f) = self.chain_follower.take() {
            f.stop().await;
        }
        if let Some(g) = &self.group {
            g.shutdown().await;
        }
    }
}

impl Drop for KeeperNode {
    fn drop(&mut self) {
        if let Some(s) = &self.serving {
            s.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

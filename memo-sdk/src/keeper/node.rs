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
//! Files in the data dir: `oplog.redb` (the sequencer's log, or the follower's replica) and
//! `chain.redb` (when a chain is configured).

use crate::keeper::{Keeper, KeeperConfig};
use crate::ledger::{
    ChainConfig, ChainFollower, LedgerError, LedgerService, LocalChain, RemoteLedger,
};
use crate::node::Service;
use crate::replication::{
    DurableOpLog, OpLog, OpLogError, OpLogService, RemoteOpLog, RemoteOpLogConfig,
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
    /// The chain (sequencer or follower), if configured.
    pub chain: Option<Arc<LocalChain>>,
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
            .finish_non_exhaustive()
    }
}

fn data_dir(dir: &Path) -> Result<(), KeeperNodeError> {
    std::fs::create_dir_all(dir).map_err(|error| KeeperNodeError::DataDir {
        path: dir.display().to_string(),
        error,
    })
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
        let log: Arc<dyn OpLog> = Arc::new(durable.clone());
        let mut services: Vec<Arc<dyn Service>> = Vec::new();
        let mut tasks = Vec::new();
        let members = config.keepers.clone();
        let keeper = Keeper::new(key, transport.clone(), log.clone(), config);
        tasks.push(keeper.start());
        services.push(keeper.clone());
        services.push(OpLogService::new(log.clone(), members));
        let chain = match chain {
            Some(c) => {
                let lc = Arc::new(LocalChain::open_sequencer(
                    &data_dir.join(CHAIN_FILE),
                    c.genesis,
                    c.key,
                    c.verifier,
                )?);
                tasks.push(lc.spawn_producer(keeper.env().clone(), c.block_interval));
                services.push(LedgerService::new(lc.clone()));
                Some(lc)
            }
            None => None,
        };
        Ok(Self {
            keeper,
            log,
            durable: Some(durable),
            remote: None,
            chain,
            chain_follower: None,
            transport,
            services,
            tasks,
            serving: None,
            stop: tokio::sync::watch::channel(false).0,
        })
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
        let chain = match chain {
            Some(c) => Some((
                Arc::new(LocalChain::open_follower(
                    &data_dir.join(CHAIN_FILE),
                    c.config,
                    c.verifier,
                )?),
                c.poll,
            )),
            None => None,
        };
        let remote = Arc::new(RemoteOpLog::start_with(
            transport.clone(),
            sequencer,
            Some(cache),
            RemoteOpLogConfig::default(),
        ));
        let log: Arc<dyn OpLog> = remote.clone();
        let mut services: Vec<Arc<dyn Service>> = Vec::new();
        let mut tasks = Vec::new();
        let members = config.keepers.clone();
        let keeper = Keeper::new(key, transport.clone(), log.clone(), config);
        tasks.push(keeper.start());
        services.push(keeper.clone());
        services.push(OpLogService::new(log.clone(), members));
        let (chain, chain_follower) = match chain {
            Some((lc, poll)) => {
                let source = RemoteLedger::new(transport.clone(), sequencer, poll);
                let follower = ChainFollower::start(lc.clone(), source, poll);
                services.push(LedgerService::new(lc.clone()));
                (Some(lc), Some(follower))
            }
            None => (None, None),
        };
        Ok(Self {
            keeper,
            log,
            durable: None,
            remote: Some(remote),
            chain,
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
    /// waits for them, then drops the node: its data dir's files are closed when this returns,
    /// so the node can be opened again from them.
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
        if let Some(r) = &self.remote {
            r.stop().await;
        }
        if let Some(f) = self.chain_follower.take() {
            f.stop().await;
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

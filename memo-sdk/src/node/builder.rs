//! [`Node`]: one keeper or provider process, built from a [`NodeConfig`].
//!
//! Everything `memo node` does between reading its config and serving lives here, so an
//! operator's binary, a test and an embedding application start nodes the same way:
//!
//! - the transport (libp2p, with the config's peers' addresses);
//! - a **provider**: the shard store under `DATA_DIR/shards`, the provider service, its prover
//!   and ledger registration when there is a chain, and its shard lane;
//! - a **keeper**: a [`KeeperNode`] that sequences the op log (and the chain) or follows the
//!   keeper that does, the other keepers as co-signers of health and placement changes, a hello
//!   to every known provider (one started earlier has no address for this keeper yet), the
//!   challenger and ledger registration when there is a chain, and detection and repair unless
//!   `[repair] enabled = false`.
//!
//! - with `status` set, the status server (`/`, `/api/status`, `/health`, `/metrics`, see
//!   [`crate::node::status`]), and the metrics it shows: the transport and the shard lane
//!   count every request served.
//!
//! [`Node::start`] returns once the node serves; [`Node::run_until`] serves until a future
//! resolves (a signal, say) and then shuts the node down cleanly.

use crate::config::{BadAccount, ConfigError, NodeConfig, Role, load_or_create_key, write_atomic};
use crate::env::Env;
use crate::keeper::KeeperConfig;
use crate::keeper::challenger::{Challenger, ChallengerConfig};
use crate::keeper::node::{
    FollowerChain, KeeperChain, KeeperNode, KeeperNodeError, SequencerChain,
};
use crate::keeper::repair::Repairer;
use crate::ledger::{ChainConfig, Ledger, RemoteLedger};
use crate::node::directory::DirectoryService;
use crate::node::metrics::{MeteredTransport, NodeMetrics};
use crate::node::status::{self, GroupHook};
use crate::node::{Service, serve};
use crate::provider::Provider;
use crate::provider::prover::Prover;
use crate::store::FsShardStore;
use crate::transport::lane::LaneServer;
use crate::transport::limits::Limiter;
use crate::transport::p2p::{NetError, P2pTransport};
use memo_core::contract::{Answer, Call, Query, RolesCall};
use memo_core::ownership::ShardStoreError;
use memo_core::proof::MerkleVerifier;
use memo_core::protocol::PeerEntry;
use memo_core::protocol::Request;
use memo_core::transport::Transport;
use memo_core::{AccountId, Keypair};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The config, key or genesis file could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A peer's or the sequencer's account id does not parse.
    #[error(transparent)]
    Account(#[from] BadAccount),
    /// The data directory could not be created.
    #[error("creating {path}: {error}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The transport did not start listening.
    #[error("listening on {listen}: {error}")]
    Listen {
        /// The configured address.
        listen: String,
        /// Why.
        error: NetError,
    },
    /// The provider's shard store did not open.
    #[error("opening the shard store: {0}")]
    Store(#[from] ShardStoreError),
    /// The keeper's logs or chain did not open.
    #[error(transparent)]
    Keeper(#[from] KeeperNodeError),
    /// The status server could not listen on its address (in use, say).
    #[error("status server on {address}: {error}")]
    Status {
        /// The configured `status` address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// The config asks for something inconsistent (the message says what).
    #[error("{0}")]
    Inconsistent(String),
}

/// A running keeper or provider.
pub struct Node {
    /// The node's name, from its config.
    pub name: String,
    /// Keeper or provider.
    pub role: Role,
    /// Its account.
    pub account: AccountId,
    /// The address it listens on (the first the transport bound).
    pub listen: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The keeper's parts, on a keeper.
    pub keeper: Option<KeeperNode>,
    /// The repairer, on a keeper that repairs.
    pub repairer: Option<Arc<Repairer>>,
    /// The provider service, on a provider.
    pub provider: Option<Arc<Provider<FsShardStore>>>,
    /// Where the status server listens, when the config turns it on.
    pub status: Option<SocketAddr>,
    /// The node's metrics, recorded while the status server is on.
    pub metrics: Option<Arc<NodeMetrics>>,
    /// The ledger the node uses, when it runs with one.
    ledger: Option<Arc<dyn Ledger>>,
    /// What reports a keeper's Raft group to the status server.
    group: Arc<RwLock<Option<GroupHook>>>,
    transport: Arc<dyn Transport>,
    /// The transport's caps, shared with the shard lane so that one node-wide bound covers both.
    limiter: Arc<Limiter>,
    services: Vec<Arc<dyn Service>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("account", &self.account)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// The file in a node's data dir that keeps the address it listens on: a node configured with
/// port 0 takes the port it got the first time again when it restarts, so peers that know its
/// address reach it.
pub const LISTEN_FILE: &str = "listen.addr";

/// Starts the transport on `cfg.listen`; with port 0, on the address kept in [`LISTEN_FILE`]
/// if there is one (falling back to a new port if that one is taken), and keeps the address
/// it got.
async fn listen(
    keypair: &memo_core::Keypair,
    cfg: &NodeConfig,
) -> Result<(P2pTransport, Vec<crate::transport::p2p::Multiaddr>), NodeError> {
    let file = cfg.data_dir.join(LISTEN_FILE);
    let any_port = cfg.listen.ends_with("/tcp/0");
    let kept = any_port
        .then(|| std::fs::read_to_string(&file).ok())
        .flatten()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    let started = match &kept {
        Some(addr) => match P2pTransport::start(keypair, addr).await {
            Ok(t) => Ok(t),
            Err(e) => {
                warn!(%addr, "the address this node had is not available ({e}); taking a new port");
                P2pTransport::start(keypair, &cfg.listen).await
            }
        },
        None => P2pTransport::start(keypair, &cfg.listen).await,
    };
    let (p2p, addrs) = started.map_err(|error| NodeError::Listen {
        listen: cfg.listen.clone(),
        error,
    })?;
    if any_port
        && let Some(first) = addrs.first()
        && kept.as_deref() != Some(&first.to_string())
        && let Err(e) = write_atomic(&file, first.to_string().as_bytes())
    {
        warn!(path = %file.display(), "could not keep the listen address: {e}");
    }
    Ok((p2p, addrs))
}

/// How long a node keeps retrying its registration on the ledger (whose node may start later).
const REGISTRATION_PATIENCE: Duration = Duration::from_secs(120);

impl Node {
    /// Starts the node `cfg` describes on `env`'s clock and randomness: opens its key (created
    /// if missing), data directory and transport, and wires its services. Call inside a tokio
    /// runtime. Keepers serve from here on; call [`Node::run_until`] to serve a provider.
    ///
    /// Errors: [`NodeError::Config`] for an unusable key or genesis file,
    /// [`NodeError::Status`] when the status address cannot be listened on,
    /// [`NodeError::DataDir`], [`NodeError::Listen`], [`NodeError::Store`] and
    /// [`NodeError::Keeper`] for what could not be opened, and [`NodeError::Inconsistent`]
    /// when a keeper's `sequencer` and its `[chain]` sequencer differ.
    pub async fn start(cfg: &NodeConfig, env: Env) -> Result<Self, NodeError> {
        // First, so that a taken address stops the node before it opens anything.
        let status_listener = match cfg.status_bind() {
            Some(address) => {
                Some(
                    status::bind(address)
                        .await
                        .map_err(|error| NodeError::Status {
                            address: address.to_string(),
                            error,
                        })?,
                )
            }
            None => None,
        };
        let keypair = load_or_create_key(&cfg.key_file)?;
        let metrics = status_listener
            .as_ref()
            .map(|_| NodeMetrics::new(keypair.account(), &cfg.peers));
        std::fs::create_dir_all(&cfg.data_dir).map_err(|error| NodeError::DataDir {
            path: cfg.data_dir.clone(),
            error,
        })?;
        // Logs name nodes by their configured names (`AccountId::label`).
        keypair.account().set_name(&cfg.name);
        for p in &cfg.peers {
            if let Ok(a) = p.account_id() {
                a.set_name(&p.name);
            }
        }
        let (p2p, addrs) = listen(&keypair, cfg).await?;
        for p in cfg.peers.iter().filter(|p| !p.address.is_empty()) {
            if let Err(e) = p2p.try_add_address(p.account_id()?, &p.address) {
                warn!(peer = %p.name, "ignoring address {}: {e}", p.address);
            }
        }
        let limiter = p2p.limiter().clone();
        let mut transport: Arc<dyn Transport> = Arc::new(p2p);
        if let Some(m) = &metrics {
            transport = MeteredTransport::wrap(transport, m.clone());
        }
        let peers_of = |role: Role| -> Vec<AccountId> {
            cfg.peers
                .iter()
                .filter(|p| p.role == role)
                .filter_map(|p| p.account_id().ok())
                .collect()
        };
        let mut node = Self {
            name: cfg.name.clone(),
            role: cfg.role,
            account: keypair.account(),
            listen: addrs.first().map(|a| a.to_string()).unwrap_or_default(),
            data_dir: cfg.data_dir.clone(),
            keeper: None,
            repairer: None,
            provider: None,
            status: None,
            metrics,
            ledger: None,
            group: Arc::default(),
            transport,
            limiter,
            services: Vec::new(),
            tasks: Vec::new(),
        };
        let chain = match &cfg.chain {
            Some(c) => Some(ChainSetup {
                genesis: c.load_genesis()?,
                sequencer: c.sequencer_id()?,
                keepers: peers_of(Role::Keeper),
                block_interval: c.block_interval(),
                stake: c.stake,
                price: c.price,
            }),
            None => None,
        };
        match cfg.role {
            Role::Provider => {
                node.start_provider(cfg, &env, &keypair, peers_of(Role::Keeper), chain.as_ref())
                    .await?
            }
            Role::Keeper => {
                node.start_keeper(
                    cfg,
                    &env,
                    &keypair,
                    peers_of(Role::Keeper),
                    peers_of(Role::Provider),
                    chain.as_ref(),
                )
                .await?
            }
        }
        if let Some(ledger) = node.ledger.clone() {
            node.tasks.push(crate::node::directory::spawn_address_book(
                env.clone(),
                node.transport.clone(),
                ledger,
                peers_of(Role::Keeper),
                cfg.peers
                    .iter()
                    .filter(|p| !p.address.is_empty())
                    .filter_map(|p| Some((p.account_id().ok()?, p.address.clone())))
                    .collect(),
            ));
        }
        if let Some(listener) = status_listener {
            node.start_status(listener);
        }
        info!(name = %node.name, account = %node.account.label(), listen = %node.listen, "serving");
        Ok(node)
    }

    /// Serves the status server on `listener`, reading this node's parts.
    fn start_status(&mut self, listener: tokio::net::TcpListener) {
        let Some(metrics) = self.metrics.clone() else {
            return;
        };
        let keeper = self.keeper.as_ref();
        // A keeper in a Raft group reports it (held weakly: shutting the node down closes
        // the group's files whatever the status server still holds).
        if let Some(raft) = keeper.and_then(|k| k.group.as_ref()) {
            let raft = Arc::downgrade(raft);
            self.set_group_status(Arc::new(move || raft.upgrade().map(|r| r.status())));
        }
        let sources = status::Sources {
            name: self.name.clone(),
            role: self.role,
            account: self.account,
            listen: self.listen.clone(),
            metrics,
            provider: self.provider.clone(),
            keeper: keeper.map(|k| k.keeper.clone()),
            repairer: self.repairer.clone(),
            ledger: self.ledger.clone(),
            local_chain: keeper
                .and_then(|k| k.chain_follower.as_ref())
                .map(|f| f.chain().clone()),
            keeper_role: keeper.map(|k| {
                if k.remote.is_some() {
                    "follower"
                } else {
                    "sequencer"
                }
            }),
            group: self.group.clone(),
            started: std::time::Instant::now(),
        };
        self.status = listener.local_addr().ok();
        if let Some(a) = self.status {
            info!(url = %format!("http://{a}/"), "status page");
        }
        self.tasks.push(status::spawn(listener, Arc::new(sources)));
    }

    /// Connects a keeper's Raft group to the status server: `hook` is asked on every status
    /// request and fills `group` in `/api/status` and the keeper's role in `/health`.
    pub fn set_group_status(&self, hook: GroupHook) {
        *self.group.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    async fn start_provider(
        &mut self,
        cfg: &NodeConfig,
        env: &Env,
        keypair: &Keypair,
        keepers: Vec<AccountId>,
        chain: Option<&ChainSetup>,
    ) -> Result<(), NodeError> {
        let store = FsShardStore::open(cfg.data_dir.join("shards"))?.with_sync(cfg.sync_writes);
        let provider = Provider::new(
            env.clone(),
            keypair.clone(),
            self.transport.clone(),
            store,
            cfg.capacity,
            keepers,
        );
        if let Some(m) = &self.metrics {
            provider.set_metrics(m.clone());
        }
        if let Some(secs) = cfg.reclaim_grace_secs {
            provider.set_reclaim_grace(Duration::from_secs(secs));
        }
        if let Some(c) = chain {
            let ledger = c.remote(&self.transport);
            self.ledger = Some(ledger.clone());
            provider.set_prover(Prover::new(keypair.clone(), ledger.clone()));
            self.tasks.push(spawn_registration(
                keypair.clone(),
                ledger,
                RolesCall::RegisterProvider {
                    stake: c.stake,
                    capacity: cfg.capacity,
                    price: c.price,
                    address: self.listen.clone(),
                },
                self.listen.clone(),
            ));
        }
        self.services.push(provider.clone());
        self.tasks.push(provider.spawn_reclaimer());
        if let Some(bind) = cfg.lane_bind() {
            match LaneServer::start_limited(
                env.clone(),
                &bind,
                cfg.lane_advertise.clone(),
                provider.clone(),
                self.limiter.clone(),
            )
            .await
            {
                Ok(lane) => {
                    info!(address = lane.address(), "shard lane listening");
                    if let Some(m) = &self.metrics {
                        lane.set_metrics(m.clone());
                    }
                    self.services.push(lane);
                }
                // The transport still carries shards; clients fall back to it.
                Err(e) => warn!(%bind, error = %e, "no shard lane"),
            }
        }
        self.provider = Some(provider);
        Ok(())
    }

    async fn start_keeper(
        &mut self,
        cfg: &NodeConfig,
        env: &Env,
        keypair: &Keypair,
        keepers: Vec<AccountId>,
        providers: Vec<AccountId>,
        chain: Option<&ChainSetup>,
    ) -> Result<(), NodeError> {
        // The keeper that orders the op log: the configured one, or this one.
        let sequencer = match &cfg.sequencer {
            Some(hex) => Some(hex.parse::<AccountId>().map_err(|e| BadAccount {
                what: "sequencer".into(),
                reason: format!("{e}"),
            })?),
            None => None,
        }
        .filter(|s| *s != keypair.account());
        if cfg.group.is_some() && sequencer.is_some() {
            return Err(NodeError::Inconsistent(
                "a keeper in a [group] has no sequencer: remove `sequencer`".into(),
            ));
        }
        if let Some(c) = chain
            && cfg.group.is_none()
            && c.sequencer != sequencer.unwrap_or(keypair.account())
        {
            return Err(NodeError::Inconsistent(
                "[chain] sequencer must be the keeper that sequences the operation log".into(),
            ));
        }
        // Every keeper (the peers and this one) may sign health and placement changes.
        let mut all_keepers = keepers;
        all_keepers.push(keypair.account());
        all_keepers.sort();
        all_keepers.dedup();
        let mut kcfg = KeeperConfig {
            keepers: all_keepers.clone(),
            env: env.clone(),
            ..KeeperConfig::default()
        };
        if let Some(secs) = cfg.ticket_secs {
            kcfg.ticket_ttl = Duration::from_secs(secs);
        }
        if let Some(every) = cfg.checkpoint_every {
            kcfg.checkpoint_every = every;
        }
        let verifier = Arc::new(MerkleVerifier::new());
        // In a group every keeper keeps the chain with its own key (the leader builds the
        // blocks); otherwise the sequencer produces and the others follow.
        let produces =
            chain.is_some_and(|c| cfg.group.is_some() || c.sequencer == keypair.account());
        let keeper_chain = chain.map(|c| {
            if produces {
                KeeperChain::Produce(SequencerChain {
                    genesis: c.genesis.clone(),
                    key: keypair.clone(),
                    verifier: verifier.clone(),
                    block_interval: c.block_interval,
                })
            } else {
                KeeperChain::Follow(FollowerChain {
                    config: ChainConfig {
                        genesis: c.genesis.clone(),
                        sequencer: c.sequencer,
                    },
                    verifier: verifier.clone(),
                    poll: c.block_interval,
                })
            }
        });
        let mut node = match (&cfg.group, sequencer, keeper_chain) {
            (Some(g), _, keeper_chain) => {
                let founders = match g.founder_ids()? {
                    f if f.is_empty() => all_keepers,
                    f => f,
                };
                let group = g
                    .to_config()
                    .map_err(|e| NodeError::Inconsistent(e.to_string()))?;
                KeeperNode::group(
                    keypair.clone(),
                    self.transport.clone(),
                    &cfg.data_dir,
                    kcfg,
                    &founders,
                    group,
                    keeper_chain,
                )
                .await?
            }
            (None, None, keeper_chain) => KeeperNode::sequencer(
                keypair.clone(),
                self.transport.clone(),
                &cfg.data_dir,
                kcfg,
                keeper_chain.and_then(|c| match c {
                    KeeperChain::Produce(c) => Some(c),
                    KeeperChain::Follow(_) => None,
                }),
            )?,
            (None, Some(seq), keeper_chain) => KeeperNode::follower(
                keypair.clone(),
                self.transport.clone(),
                seq,
                &cfg.data_dir,
                kcfg,
                keeper_chain.and_then(|c| match c {
                    KeeperChain::Follow(c) => Some(c),
                    KeeperChain::Produce(_) => None,
                }),
            )?,
        };
        for p in &providers {
            node.keeper.add_provider(*p);
        }
        // Say hello to every provider: one started before this keeper has no address for it,
        // and answers (and registers on the ledger) over this connection.
        let t = self.transport.clone();
        self.tasks.push(tokio::spawn(async move {
            for p in providers {
                let _ = crate::transport::rpc::call(&*t, p, &Request::ProviderStatus).await;
            }
        }));
        if let Some(c) = chain {
            // The producer (or a group member) uses its own chain; the other keepers submit
            // to the producer.
            let ledger: Arc<dyn Ledger> = match &node.ledger {
                Some(own) => own.clone(),
                None => c.remote(&self.transport),
            };
            self.ledger = Some(ledger.clone());
            let challenger = Challenger::new(
                keypair.clone(),
                self.transport.clone(),
                ledger.clone(),
                ChallengerConfig::default(),
            );
            node.keeper.set_challenger(challenger.clone());
            self.tasks
                .push(challenger.spawn(Arc::downgrade(&node.keeper)));
            self.tasks.push(spawn_registration(
                keypair.clone(),
                ledger,
                RolesCall::RegisterKeeper {
                    stake: c.stake,
                    address: self.listen.clone(),
                },
                self.listen.clone(),
            ));
        }
        // The directory: this keeper, then its peers (addresses the config lacks come from
        // the ledger), for clients that know only one keeper.
        let mut peers = vec![PeerEntry {
            name: cfg.name.clone(),
            keeper: true,
            account: keypair.account(),
            address: self.listen.clone(),
        }];
        peers.extend(cfg.peers.iter().filter_map(|p| {
            Some(PeerEntry {
                name: p.name.clone(),
                keeper: p.role == Role::Keeper,
                account: p.account_id().ok()?,
                address: p.address.clone(),
            })
        }));
        let ledger_node = chain.map(|c| {
            if cfg.group.is_some() {
                keypair.account()
            } else {
                c.sequencer
            }
        });
        node.add_service(DirectoryService::new(
            peers,
            self.ledger.clone(),
            ledger_node,
        ));
        node.spawn_serving();
        if cfg.repair.enabled {
            let rc = cfg.repair.to_config();
            info!(
                probe_ms = rc.probe_interval.as_millis() as u64,
                suspect_after = rc.liveness.suspect_after,
                lost_after = rc.liveness.lost_after,
                audit_shards = rc.audit_shards,
                bytes_per_sec = ?rc.bytes_per_sec,
                "repair enabled"
            );
            let (repairer, rounds) = node.keeper.enable_repair(keypair.clone(), rc);
            self.repairer = Some(repairer);
            self.tasks.push(rounds);
        }
        self.keeper = Some(node);
        Ok(())
    }

    /// Serves until `stop` resolves, then stops every task and shuts the keeper's logs down
    /// (flushing what is durable).
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) {
        let services = std::mem::take(&mut self.services);
        let transport = self.transport.clone();
        let serving = async move {
            if services.is_empty() {
                // A keeper serves through its KeeperNode already.
                std::future::pending::<()>().await
            } else {
                serve(transport, services).await
            }
        };
        tokio::select! {
            _ = serving => {}
            _ = stop => info!("shutting down"),
        }
        self.shutdown().await;
    }

    /// Stops every task and shuts the keeper's logs down.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(node) = self.keeper.take() {
            node.shutdown().await;
        }
    }
}

/// A node's view of the chain: its genesis, sequencer and this node's registration terms.
struct ChainSetup {
    genesis: memo_core::contract::Genesis,
    sequencer: AccountId,
    /// The other keepers this node knows: in a group each serves the chain, so a node whose
    /// sequencer is down asks the next.
    keepers: Vec<AccountId>,
    block_interval: Duration,
    stake: memo_core::contract::Amount,
    price: memo_core::contract::Amount,
}

impl ChainSetup {
    /// The ledger through the sequencer first, then the other keepers, polled at the block
    /// interval.
    fn remote(&self, transport: &Arc<dyn Transport>) -> Arc<dyn Ledger> {
        let mut peers = vec![self.sequencer];
        peers.extend(self.keepers.iter().copied());
        RemoteLedger::with_peers(transport.clone(), peers, self.block_interval)
    }
}

/// Registers this node's role on the ledger in the background (the ledger's node may start
/// later), logging the outcome.
fn spawn_registration(
    keypair: Keypair,
    ledger: Arc<dyn Ledger>,
    call: RolesCall,
    address: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let r = crate::ledger::tx::register(
            &keypair,
            ledger.clone(),
            Call::Roles(call),
            Duration::from_millis(500),
            REGISTRATION_PATIENCE,
        )
        .await;
        match r {
            Ok(true) => info!("registered on the ledger"),
            Ok(false) => {
                info!("already registered on the ledger");
                announce_address(&keypair, ledger, &address).await;
            }
            Err(e) => warn!(error = %e, "registration on the ledger failed"),
        }
    })
}

/// Announces `address` on the ledger ([`RolesCall::SetAddress`]) when this node's role
/// records another one: it came back on another address after a restart.
async fn announce_address(keypair: &Keypair, ledger: Arc<dyn Ledger>, address: &str) {
    let Ok(Answer::Role(Some(role))) = ledger.query(Query::Role(keypair.account())).await else {
        return;
    };
    if role.address() == address {
        return;
    }
    let sender = crate::ledger::tx::TxSender::new(keypair.clone(), ledger);
    let call = Call::Roles(RolesCall::SetAddress {
        address: address.to_string(),
    });
    match sender
        .send_and_wait(vec![call], Duration::from_secs(30))
        .await
        .map(|mut r| r.pop())
    {
        Ok(Some(Ok(_))) => info!(
            address,
            was = role.address(),
            "announced this node's new address on the ledger"
        ),
        other => warn!(
            address,
            "announcing this node's new address failed: {other:?}"
        ),
    }
}

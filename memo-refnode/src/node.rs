//! `memo node --config FILE`: one keeper or provider, until SIGINT or SIGTERM.
//!
//! A keeper runs detection, audit and repair ([`memo_sdk::keeper::repair`]) unless its config's
//! `[repair]` table says `enabled = false`, and keeps its repair counters in
//! `DATA_DIR/repair.json`.

use anyhow::{Context, Result};
use memo_core::AccountId;
use memo_core::contract::{Call, RolesCall};
use memo_core::proof::MerkleVerifier;
use memo_core::transport::Transport;
use memo_sdk::config::{NodeConfig, Role, load_or_create_key, write_atomic};
use memo_sdk::keeper::KeeperConfig;
use memo_sdk::keeper::challenger::{Challenger, ChallengerConfig};
use memo_sdk::keeper::node::{FollowerChain, KeeperNode, SequencerChain};
use memo_sdk::ledger::{ChainConfig, Ledger, RemoteLedger};
use memo_sdk::node::{Service, serve};
use memo_sdk::provider::Provider;
use memo_sdk::provider::prover::Prover;
use memo_sdk::store::FsShardStore;
use memo_sdk::transport::lane::LaneServer;
use memo_sdk::transport::p2p::P2pTransport;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// A keeper's repair counters ([`memo_sdk::keeper::repair::RepairStats`] as JSON) in its data dir,
/// rewritten when they change (at most four times a second).
pub const REPAIR_STATS_FILE: &str = "repair.json";

/// Options of `memo node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node's config file.
    #[arg(long, env = "MEMO_NODE_CONFIG")]
    pub config: PathBuf,
}

/// What a running node reports in `DATA_DIR/node.json` once it serves.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct NodeReady {
    /// The node's name.
    pub name: String,
    /// "keeper" or "provider".
    pub role: String,
    /// Its account id.
    pub account: String,
    /// Its process id.
    pub pid: u32,
    /// The address it listens on.
    pub listen: String,
    /// Its data directory.
    pub data_dir: String,
}

/// Runs a node until a shutdown signal.
pub async fn run(args: NodeArgs) -> Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    let env = memo_sdk::Env::real();
    let keypair = load_or_create_key(&cfg.key_file)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let (transport, addrs) = P2pTransport::start(&keypair, &cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    for p in &cfg.peers {
        if p.address.is_empty() {
            continue;
        }
        let account = p.account_id().map_err(anyhow::Error::msg)?;
        if let Err(e) = transport.try_add_address(account, &p.address) {
            warn!(peer = %p.name, "ignoring address {}: {e}", p.address);
        }
    }
    let transport: Arc<dyn Transport> = Arc::new(transport.clone());
    let keepers: Vec<_> = cfg
        .peers
        .iter()
        .filter(|p| p.role == Role::Keeper)
        .filter_map(|p| p.account_id().ok())
        .collect();
    let providers: Vec<_> = cfg
        .peers
        .iter()
        .filter(|p| p.role == Role::Provider)
        .filter_map(|p| p.account_id().ok())
        .collect();
    let listen = addrs.first().map(|a| a.to_string()).unwrap_or_default();
    // The ledger, if configured: its genesis, its sequencer, and how this node reaches it.
    let chain = match &cfg.chain {
        Some(c) => Some((
            c.clone(),
            c.load_genesis()?,
            c.sequencer_id().map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let poll = chain
        .as_ref()
        .map_or(Duration::from_millis(500), |(c, _, _)| c.block_interval());
    let remote_ledger = |seq| RemoteLedger::new(transport.clone(), seq, poll) as Arc<dyn Ledger>;
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut keeper_node: Option<KeeperNode> = None;
    let services: Vec<Arc<dyn Service>> = match cfg.role {
        Role::Provider => {
            let store = FsShardStore::open(cfg.data_dir.join("shards"))?.with_sync(cfg.sync_writes);
            let provider =
                Provider::new(env.clone(), transport.clone(), store, cfg.capacity, keepers);
            if let Some((c, _, seq)) = &chain {
                let ledger = remote_ledger(*seq);
                provider.set_prover(Prover::new(keypair.clone(), ledger.clone()));
                tasks.push(spawn_registration(
                    keypair.clone(),
                    ledger,
                    RolesCall::RegisterProvider {
                        stake: c.stake,
                        capacity: cfg.capacity,
                        price: c.price,
                        address: listen.clone(),
                    },
                ));
            }
            let mut services = vec![provider.clone() as Arc<dyn Service>];
            if let Some(bind) = cfg.lane_bind() {
                match LaneServer::start(env.clone(), &bind, cfg.lane_advertise.clone(), provider)
                    .await
                {
                    Ok(lane) => {
                        info!(address = lane.address(), "shard lane listening");
                        services.push(lane);
                    }
                    // The transport still carries shards; clients fall back to it.
                    Err(e) => warn!(%bind, error = %e, "no shard lane"),
                }
            }
            services
        }
        Role::Keeper => {
            let sequencer = match &cfg.sequencer {
                Some(hex) => Some(
                    hex.parse::<AccountId>()
                        .map_err(|e| anyhow::anyhow!("sequencer: {e}"))?,
                ),
                None => None,
            }
            .filter(|s| *s != keypair.account());
            if let Some((_, _, chain_seq)) = &chain
                && *chain_seq != sequencer.unwrap_or(keypair.account())
            {
                anyhow::bail!(
                    "[chain] sequencer must be the keeper that sequences the operation log"
                );
            }
            // Every keeper (the peers and this one) may sign health and placement changes.
            let mut all_keepers = keepers.clone();
            all_keepers.push(keypair.account());
            all_keepers.sort();
            all_keepers.dedup();
            let kcfg = KeeperConfig {
                keepers: all_keepers,
                env: env.clone(),
                ..KeeperConfig::default()
            };
            let verifier = Arc::new(MerkleVerifier::new());
            let mut node = match sequencer {
                None => KeeperNode::sequencer(
                    transport.clone(),
                    &cfg.data_dir,
                    kcfg.clone(),
                    chain.as_ref().map(|(c, genesis, _)| SequencerChain {
                        genesis: genesis.clone(),
                        key: keypair.clone(),
                        verifier: verifier.clone(),
                        block_interval: c.block_interval(),
                    }),
                    None,
                )?,
                Some(seq) => KeeperNode::follower(
                    transport.clone(),
                    seq,
                    &cfg.data_dir,
                    kcfg.clone(),
                    chain.as_ref().map(|(_, genesis, chain_seq)| FollowerChain {
                        config: ChainConfig {
                            genesis: genesis.clone(),
                            sequencer: *chain_seq,
                        },
                        verifier: verifier.clone(),
                        poll,
                    }),
                )?,
            };
            for p in &providers {
                node.keeper.add_provider(*p);
            }
            // Say hello to every provider: a provider started before this keeper has no
            // address for it, and answers (and registers on the ledger) over this connection.
            let t = transport.clone();
            tasks.push(tokio::spawn(async move {
                for p in providers {
                    let _ = memo_sdk::transport::rpc::call(
                        &*t,
                        p,
                        &memo_core::protocol::Request::ProviderStatus,
                    )
                    .await;
                }
            }));
            if let Some((c, _, seq)) = &chain {
                // The sequencer uses its own chain; followers submit to the sequencer.
                let ledger: Arc<dyn Ledger> = match (&node.durable, &node.chain) {
                    (Some(_), Some(own)) => own.clone(),
                    _ => remote_ledger(*seq),
                };
                let challenger = Challenger::new(
                    keypair.clone(),
                    transport.clone(),
                    ledger.clone(),
                    ChallengerConfig::default(),
                );
                node.keeper.set_challenger(challenger.clone());
                tasks.push(challenger.spawn(Arc::downgrade(&node.keeper)));
                tasks.push(spawn_registration(
                    keypair.clone(),
                    ledger,
                    RolesCall::RegisterKeeper {
                        stake: c.stake,
                        address: listen.clone(),
                    },
                ));
            }
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
                let stats_file = cfg.data_dir.join(REPAIR_STATS_FILE);
                let publish = tokio::spawn(async move {
                    let mut last = None;
                    loop {
                        let now = repairer.stats();
                        if last != Some(now) {
                            match serde_json::to_vec_pretty(&now) {
                                Ok(b) => {
                                    if let Err(e) = write_atomic(&stats_file, &b) {
                                        warn!("writing repair stats: {e}");
                                    }
                                }
                                Err(e) => warn!("encoding repair stats: {e}"),
                            }
                            last = Some(now);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                });
                tasks.extend([rounds, publish]);
            }
            keeper_node = Some(node);
            Vec::new()
        }
    };
    let ready = NodeReady {
        name: cfg.name.clone(),
        role: match cfg.role {
            Role::Keeper => "keeper".into(),
            Role::Provider => "provider".into(),
        },
        account: keypair.account().to_hex(),
        pid: std::process::id(),
        listen: listen.clone(),
        data_dir: cfg.data_dir.display().to_string(),
    };
    write_atomic(
        &cfg.data_dir.join("node.json"),
        serde_json::to_string_pretty(&ready)?.as_bytes(),
    )?;
    info!(name = %cfg.name, account = %keypair.account().short(), %listen, "serving");
    eprintln!("{} {} serving on {listen}", ready.role, cfg.name);
    let serving = async {
        if services.is_empty() {
            std::future::pending::<()>().await
        } else {
            serve(transport, services).await
        }
    };
    tokio::select! {
        _ = serving => {}
        _ = shutdown_signal() => info!("shutting down"),
        _ = parent_gone() => info!("the devnet that started this node is gone; shutting down"),
    }
    for t in &tasks {
        t.abort();
    }
    if let Some(node) = keeper_node {
        node.shutdown().await;
    }
    Ok(())
}

/// Registers this node's role on the ledger in the background (the ledger's node may start
/// later), logging the outcome.
fn spawn_registration(
    keypair: memo_core::Keypair,
    ledger: Arc<dyn Ledger>,
    call: RolesCall,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = memo_sdk::ledger::tx::register(
            &keypair,
            ledger,
            Call::Roles(call),
            Duration::from_millis(500),
            Duration::from_secs(120),
        )
        .await;
        match r {
            Ok(true) => info!("registered on the ledger"),
            Ok(false) => info!("already registered on the ledger"),
            Err(e) => warn!(error = %e, "registration on the ledger failed"),
        }
    })
}

/// Resolves when the process named by `MEMO_PARENT_PID` (set by `memo devnet`) has exited;
/// never otherwise. Keeps devnet nodes from outliving a devnet that was killed.
async fn parent_gone() {
    let Some(pid) = std::env::var("MEMO_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return std::future::pending().await;
    };
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return std::future::pending().await;
    }
    while proc_dir.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

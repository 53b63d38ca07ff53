//! `memo devnet`: a local network with every node in its own OS process.

use crate::node::{NodeReady, shutdown_signal};
use anyhow::{Context, Result, bail};
use memo_core::AccountId;
use memo_core::contract::{Genesis, Params};
use memo_sdk::config::{
    ChainSettings, ClientFile, GroupSettings, NodeConfig, PeerInfo, RepairSettings, Role,
    load_or_create_key, write_atomic,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `memo devnet`.
#[derive(clap::Args, Debug)]
pub struct DevnetArgs {
    /// Directory for keys, configs, data and logs.
    #[arg(long)]
    dir: PathBuf,
    /// Number of providers: at least k + m; more than k + m lets the keepers repair a lost
    /// shard onto a provider that holds none of its chunk.
    #[arg(long, default_value_t = 8)]
    providers: usize,
    /// Number of keepers. They replicate the operation log in a Raft group (any keeper takes
    /// writes; the group survives the loss of a minority), and the ledger rides on its log.
    #[arg(long, default_value_t = 3)]
    keepers: usize,
    /// How keepers replicate the operation log and the ledger: `group` (Raft; the leader
    /// builds the blocks) or `sequencer` (keeper-0 orders both and the others follow, the
    /// earlier design).
    #[arg(long, value_enum, default_value_t = Replication::Group)]
    replication: Replication,
    /// User names (a client config is written for each).
    #[arg(long, value_delimiter = ',', default_value = "alice,bob,carol")]
    users: Vec<String>,
    /// Epoch length in seconds (challenges, settlement, and the keepers' repair thresholds:
    /// probes every quarter epoch, a provider is Lost after missing probes for two epochs).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    epoch_secs: u64,
    /// Data shards per chunk written into the user configs.
    #[arg(short, long, default_value_t = 4)]
    k: u8,
    /// Parity shards per chunk written into the user configs.
    #[arg(short, long, default_value_t = 2)]
    m: u8,
    /// Fsync every shard on the providers (off by default: all providers share one disk here).
    #[arg(long)]
    sync_writes: bool,
    /// Milliseconds between ledger blocks (an epoch is `epoch-secs` of blocks, at least 2).
    #[arg(long, default_value_t = 100)]
    block_ms: u64,
    /// Genesis balance of every node and user.
    #[arg(long, default_value_t = 1 << 50)]
    balance: u64,
    /// Plaintext bytes per chunk written into the user configs (default: the codec's).
    #[arg(long)]
    chunk_size: Option<u32>,
    /// Shard bytes per second each keeper may read for repair; 0 for unbounded (default: the
    /// repairer's, 64 MiB/s).
    #[arg(long)]
    repair_bytes_per_sec: Option<u64>,
    /// Seconds a placement ticket stays valid (default 600): the uploads of a killed put are
    /// reclaimed by the providers this long after it started, plus a grace of half of it (at
    /// most 60 s). A put must finish its uploads within it.
    #[arg(long)]
    ticket_secs: Option<u64>,
    /// Where the devnet's page (every node's health on one page) listens, or `off`. Each node
    /// also serves its own status page on a free loopback port.
    #[arg(long, default_value = "127.0.0.1:0")]
    page: String,
}

/// How a devnet's keepers replicate their log.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// A Raft group of every keeper.
    Group,
    /// keeper-0 sequences; the others follow.
    Sequencer,
}

/// Chain id of devnet ledgers.
const DEVNET_CHAIN: u64 = 7;

#[derive(serde::Serialize)]
struct DevnetFile {
    /// Each node, with its status page in `status`.
    nodes: Vec<NodeReady>,
    /// The devnet's page (`http://HOST:PORT/`), unless `--page off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    users: Vec<UserEntry>,
    epoch_secs: u64,
}

#[derive(serde::Serialize)]
struct UserEntry {
    name: String,
    account: String,
    config: String,
}

struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
        }
        for (_, c) in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn spawn_node(dir: &Path, cfg: &NodeConfig, children: &mut Children) -> Result<NodeReady> {
    let config_path = dir.join("configs").join(format!("{}.toml", cfg.name));
    cfg.save(&config_path)?;
    let _ = std::fs::remove_file(cfg.data_dir.join("node.json"));
    let log = std::fs::File::create(dir.join("logs").join(format!("{}.log", cfg.name)))?;
    let exe = std::env::current_exe().context("finding the memo binary")?;
    let child = Command::new(exe)
        .args(["node", "--config"])
        .arg(&config_path)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .env("MEMO_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", cfg.name))?;
    children.0.push((cfg.name.clone(), child));
    let ready_file = cfg.data_dir.join("node.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file)
            && let Ok(ready) = serde_json::from_str::<NodeReady>(&text)
        {
            return Ok(ready);
        }
        if let Some((name, c)) = children.0.last_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!(
                "{name} exited with {status} before it was ready; see {}/logs/{name}.log",
                dir.display()
            );
        }
        if Instant::now() > deadline {
            bail!("{} was not ready within 30 s", cfg.name);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until every node has registered its role on the ledger that `sequencer` serves.
async fn wait_registered(sequencer: &PeerInfo, nodes: &[NodeReady]) -> Result<()> {
    use memo_core::contract::{Answer, Query};
    use memo_sdk::ledger::{Ledger, RemoteLedger};
    use memo_sdk::transport::p2p::{P2pConfig, P2pTransport};
    let t = P2pTransport::start_with(
        &memo_core::Keypair::from_seed("memo devnet watcher"),
        P2pConfig {
            listen: vec![],
            ..P2pConfig::default()
        },
    )
    .await
    .context("starting the devnet's own transport")?;
    let seq = sequencer.account_id().map_err(anyhow::Error::msg)?;
    t.try_add_address(seq, &sequencer.address)?;
    let ledger = RemoteLedger::new(Arc::new(t), seq, Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in nodes {
        let account: memo_core::AccountId = n.account.parse().map_err(anyhow::Error::msg)?;
        loop {
            if let Ok(Answer::Role(Some(_))) = ledger.query(Query::Role(account)).await {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not register on the ledger within 60 s; see its log",
                    n.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Runs the devnet until SIGINT or SIGTERM.
pub async fn run(args: DevnetArgs, json: bool) -> Result<()> {
    if args.providers < (args.k + args.m) as usize {
        bail!("--providers must be at least k + m = {}", args.k + args.m);
    }
    if args.providers == (args.k + args.m) as usize && !json {
        eprintln!(
            "note: with --providers equal to k + m = {}, a lost shard has nowhere to go: keepers cannot repair",
            args.k + args.m
        );
    }
    let params = memo_core::codec::CodecParams {
        chunk_size: args
            .chunk_size
            .unwrap_or(memo_core::codec::CodecParams::default().chunk_size),
        data_shards: args.k,
        parity_shards: args.m,
    };
    if let Err(e) = params.validate() {
        bail!("codec settings: {e}");
    }
    if args.keepers == 0 {
        bail!("--keepers must be at least 1");
    }
    let dir = std::path::absolute(&args.dir).context("--dir")?;
    for sub in ["keys", "configs", "logs", "nodes", "users"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let key = |name: &str| dir.join("keys").join(format!("{name}.key"));
    let keeper_names: Vec<String> = (0..args.keepers).map(|i| format!("keeper-{i}")).collect();
    let provider_names: Vec<String> = (0..args.providers)
        .map(|i| format!("provider-{i}"))
        .collect();
    // Every account, loaded (or created) once: providers, keepers, then users.
    let accounts = |names: &[String], prefix: &str| -> Result<Vec<AccountId>> {
        names
            .iter()
            .map(|name| Ok(load_or_create_key(&key(&format!("{prefix}{name}")))?.account()))
            .collect()
    };
    let provider_accounts = accounts(&provider_names, "")?;
    let keeper_accounts = accounts(&keeper_names, "")?;
    let user_accounts = accounts(&args.users, "user-")?;
    let mut keeper_peers: Vec<PeerInfo> = keeper_names
        .iter()
        .zip(&keeper_accounts)
        .map(|(name, account)| PeerInfo {
            name: name.clone(),
            role: Role::Keeper,
            account: account.to_hex(),
            address: String::new(),
        })
        .collect();
    // The ledger: every node and user funded at genesis. In a group its blocks ride on the
    // group's log (the leader builds them); with a sequencer keeper-0 produces them. Nodes
    // ask keeper-0 first and the other keepers when it does not answer.
    let genesis_path = dir.join("genesis.toml");
    let mut chain = ChainSettings {
        genesis: genesis_path.clone(),
        sequencer: keeper_peers[0].account.clone(),
        block_ms: args.block_ms,
        stake: ChainSettings::DEFAULT_STAKE,
        price: ChainSettings::DEFAULT_PRICE,
    };
    // The configs carry the interval the nodes use (at least 10 ms).
    chain.block_ms = chain.block_interval().as_millis() as u64;
    let params = Params {
        epoch_blocks: (args.epoch_secs * 1000 / chain.block_ms).max(2),
        keepers_per_user: args.keepers as u32,
        ..Params::default()
    };
    let funded = provider_accounts
        .iter()
        .chain(&keeper_accounts)
        .chain(&user_accounts)
        .map(|a| (*a, args.balance));
    let genesis = Genesis::new(DEVNET_CHAIN, params, funded).context("devnet genesis")?;
    write_atomic(&genesis_path, genesis.to_toml().as_bytes())?;
    let mut children = Children(Vec::new());
    let mut nodes = Vec::new();
    let mut provider_peers = Vec::new();
    let mut provider_configs = Vec::new();
    // Providers first: keepers and users need their addresses.
    for name in &provider_names {
        let cfg = NodeConfig {
            capacity: 64 << 30,
            sync_writes: args.sync_writes,
            peers: keeper_peers.clone(),
            chain: Some(chain.clone()),
            status: Some("127.0.0.1:0".into()),
            reclaim_grace_secs: args.ticket_secs.map(|t| (t / 2).clamp(1, 60)),
            ..NodeConfig::in_dir(Role::Provider, name, &dir)
        };
        let ready = spawn_node(&dir, &cfg, &mut children)?;
        provider_configs.push(cfg);
        provider_peers.push(PeerInfo {
            name: name.clone(),
            role: Role::Provider,
            account: ready.account.clone(),
            address: ready.listen.clone(),
        });
        nodes.push(ready);
    }
    for (i, name) in keeper_names.iter().enumerate() {
        let cfg = NodeConfig {
            capacity: 0,
            sequencer: (args.replication == Replication::Sequencer)
                .then(|| keeper_peers[0].account.clone()),
            group: (args.replication == Replication::Group).then(|| GroupSettings {
                founders: keeper_peers.iter().map(|p| p.account.clone()).collect(),
                ..GroupSettings::default()
            }),
            peers: provider_peers
                .iter()
                .chain(keeper_peers.iter())
                .cloned()
                .collect(),
            chain: Some(chain.clone()),
            repair: RepairSettings {
                bytes_per_sec: args.repair_bytes_per_sec,
                ..RepairSettings::for_epoch(args.epoch_secs)
            },
            status: Some("127.0.0.1:0".into()),
            ticket_secs: args.ticket_secs,
            ..NodeConfig::in_dir(Role::Keeper, name, &dir)
        };
        let ready = spawn_node(&dir, &cfg, &mut children)?;
        keeper_peers[i].address = ready.listen.clone();
        nodes.push(ready);
    }
    // The providers' configs, now with the keepers' addresses: a provider restarted on its
    // own (`memo node --config`) reaches them even when it comes back on another address.
    for mut cfg in provider_configs {
        cfg.peers = keeper_peers.clone();
        cfg.save(&dir.join("configs").join(format!("{}.toml", cfg.name)))?;
    }
    wait_registered(&keeper_peers[0], &nodes).await?;
    let mut users = Vec::new();
    for (name, account) in args.users.iter().zip(&user_accounts) {
        // Every user asks the keepers in order, keeper-0 first (they all share one log).
        let file = ClientFile {
            key_file: PathBuf::from("..")
                .join("keys")
                .join(format!("user-{name}.key")),
            chunk_size: args.chunk_size,
            data_shards: Some(args.k),
            parity_shards: Some(args.m),
            peers: keeper_peers
                .iter()
                .chain(provider_peers.iter())
                .cloned()
                .collect(),
            ledger: Some(chain.sequencer.clone()),
            lanes: None,
        };
        let path = dir.join("users").join(format!("{name}.toml"));
        file.save(&path)?;
        users.push(UserEntry {
            name: name.clone(),
            account: account.to_hex(),
            config: path.display().to_string(),
        });
    }
    let page = if args.page == "off" {
        None
    } else {
        let shown = nodes
            .iter()
            .filter_map(|n| {
                Some(crate::devnet_page::PageNode {
                    name: n.name.clone(),
                    role: n.role.clone(),
                    status: n.status.clone()?,
                })
            })
            .collect();
        let addr = crate::devnet_page::start(&args.page, shown).await?;
        Some(format!("http://{addr}/"))
    };
    let summary = DevnetFile {
        page,
        nodes,
        users,
        epoch_secs: args.epoch_secs,
    };
    write_atomic(
        &dir.join("devnet.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!(
            "devnet: {} keepers and {} providers running; configs for {} in {}/users; Ctrl-C stops it",
            args.keepers,
            args.providers,
            args.users.join(", "),
            dir.display()
        );
        for n in &summary.nodes {
            if let Some(url) = &n.status {
                eprintln!("  {:<12} {url}", n.name);
            }
        }
        if let Some(url) = &summary.page {
            eprintln!("devnet page: {url}");
        }
        eprintln!(
            "try: memo --config {}/users/{}.toml put FILE",
            dir.display(),
            args.users.first().map(String::as_str).unwrap_or("alice")
        );
    }
    // Run until a signal. A node that dies (killed to test faults, or crashed) is reported once
    // and the rest keep running: keepers repair what a lost provider held.
    let mut gone = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (name, c) in &mut children.0 {
                    if let Ok(Some(status)) = c.try_wait()
                        && gone.insert(name.clone())
                    {
                        eprintln!("devnet: {name} exited with {status}; see {}/logs/{name}.log", dir.display());
                    }
                }
                if gone.len() == children.0.len() {
                    bail!("every node exited");
                }
            }
        }
    }
    eprintln!("devnet: stopping");
    drop(children);
    Ok(())
}

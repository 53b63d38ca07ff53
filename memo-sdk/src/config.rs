//! Config files (TOML) for nodes and clients, and key files.
//!
//! ```toml
//! # a provider node
//! role = "provider"
//! name = "provider-0"
//! key_file = "keys/provider-0.key"
//! data_dir = "nodes/provider-0"
//! listen = "/ip4/127.0.0.1/tcp/0"
//! capacity = 17179869184
//! status = "127.0.0.1:9100"         # the status page and /metrics; absent or "off": none
//!
//! [[peers]]
//! name = "keeper-0"
//! role = "keeper"
//! account = "9f1c…"                 # 64 hex digits
//! address = "/ip4/127.0.0.1/tcp/40123"
//! ```
//!
//! A keeper may add a `[repair]` table ([`RepairSettings`]; all keys optional, thresholds
//! derive from `epoch_secs`).
//!
//! A client file has `key_file`, optional codec settings (`chunk_size`, `data_shards`,
//! `parity_shards`), and the same `[[peers]]` list (keepers are tried in order).
//! Relative paths are relative to the config file's directory.

use crate::client::{Client, ClientConfig};
use crate::keeper::repair::RepairConfig;
use crate::transport::p2p::{P2pConfig, P2pTransport};
use memo_core::codec::CodecParams;
use memo_core::transport::Transport;
use memo_core::{AccountId, Keypair};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often a client polls the ledger's head while it waits for a transaction (a put waits
/// for its orders' block).
pub const CLIENT_LEDGER_POLL: Duration = Duration::from_millis(50);

/// A client could not be set up from a [`ClientFile`] ([`ClientFile::connect`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The key file could not be used.
    #[error(transparent)]
    Key(#[from] ConfigError),
    /// The P2P transport did not start.
    #[error("starting the network transport: {0}")]
    Transport(crate::transport::p2p::NetError),
    /// A peer's account or address is malformed (the message names the peer).
    #[error("{0}")]
    Peer(String),
    /// The `ledger` account is malformed.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The client refused its configuration.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
}

/// A config or key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// An account id in a config file does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct BadAccount {
    /// Which account: the peer's name, or the chain's sequencer.
    pub what: String,
    /// Why it does not parse.
    pub reason: String,
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Coordinates users and providers.
    Keeper,
    /// Holds shards.
    Provider,
}

/// Another node this one knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// A label.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its account id (64 hex digits).
    pub account: String,
    /// Where it listens (a multiaddr).
    pub address: String,
}

impl PeerInfo {
    /// The parsed account id.
    pub fn account_id(&self) -> Result<AccountId, BadAccount> {
        self.account.parse().map_err(|e| BadAccount {
            what: format!("peer {}: account", self.name),
            reason: format!("{e}"),
        })
    }
}

/// A keeper or provider node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Keeper or provider.
    pub role: Role,
    /// A label for logs.
    pub name: String,
    /// The node's key file (created on first start if missing).
    pub key_file: PathBuf,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Multiaddr to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Providers: bytes offered.
    #[serde(default = "default_capacity")]
    pub capacity: u64,
    /// Providers: fsync every shard before acknowledging it (see `FsShardStore::with_sync`).
    #[serde(default = "default_true")]
    pub sync_writes: bool,
    /// Keepers: the account of the keeper that sequences the shared operation log (its
    /// address must be among the peers). Absent, or this node's own account: this keeper
    /// sequences.
    #[serde(default)]
    pub sequencer: Option<String>,
    /// Keepers: replicate the operation log in a Raft group of keepers instead of through
    /// one sequencer (the `[group]` table). Exclusive with `sequencer`.
    #[serde(default)]
    pub group: Option<GroupSettings>,
    /// Known peers.
    #[serde(default)]
    pub peers: Vec<PeerInfo>,
    /// The ledger (a local chain): absent, the node runs without one (no roles, orders,
    /// challenges or payments).
    #[serde(default)]
    pub chain: Option<ChainSettings>,
    /// Keepers: detection, audit and repair (the `[repair]` table; defaults if absent).
    #[serde(default)]
    pub repair: RepairSettings,
    /// Providers: where the shard lane listens (`host:port`, see `memo_sdk::transport::lane`), or `"off"`.
    /// Absent: the IP of `listen` with any free port.
    #[serde(default)]
    pub lane: Option<String>,
    /// Providers: the lane address clients are told to connect to, when it differs from the
    /// bound one (needed when the lane listens on a wildcard address such as `0.0.0.0`).
    #[serde(default)]
    pub lane_advertise: Option<String>,
    /// Where the node's status server listens (`host:port`: `/`, `/api/status`, `/health` and
    /// `/metrics`, see `memo_sdk::node::status`), or `"off"`. Absent: off. Metrics are
    /// recorded only while it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Keepers: seconds a placement ticket stays valid (default 600). A killed client's
    /// uploads are reclaimed by the providers once their tickets expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_secs: Option<u64>,
    /// Providers: seconds after a ticket expired before its unregistered uploads are reclaimed
    /// (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_grace_secs: Option<u64>,
    /// Keepers: applied operations between two checkpoints of the keeper's state in its data
    /// dir (default 10000; 0: only at a clean shutdown). A restart loads the checkpoint and
    /// applies only the operations after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
}

/// A `[group]` table whose timing cannot work: the heartbeat must be shorter than the
/// election timeout's lower bound, and that below its upper bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[group] needs heartbeat_ms < election_ms[0] < election_ms[1], got {heartbeat_ms} and {election_ms:?}"
)]
pub struct GroupTimingError {
    /// The heartbeat (at least 10 ms).
    pub heartbeat_ms: u64,
    /// The election timeout range.
    pub election_ms: [u64; 2],
}

impl NodeConfig {
    /// A node `name` laid out as `memo devnet` lays it out under `dir` (key file
    /// `keys/NAME.key`, data in `nodes/NAME`), listening on any loopback port, with every
    /// other setting at its default.
    pub fn in_dir(role: Role, name: &str, dir: &Path) -> Self {
        Self {
            role,
            name: name.into(),
            key_file: dir.join("keys").join(format!("{name}.key")),
            data_dir: dir.join("nodes").join(name),
            listen: default_listen(),
            capacity: default_capacity(),
            sync_writes: true,
            sequencer: None,
            group: None,
            peers: Vec::new(),
            chain: None,
            repair: RepairSettings::default(),
            lane: None,
            lane_advertise: None,
            status: None,
            ticket_secs: None,
            reclaim_grace_secs: None,
            checkpoint_every: None,
        }
    }

    /// Where the status server listens: `status` unless absent or `"off"`.
    pub fn status_bind(&self) -> Option<&str> {
        self.status.as_deref().filter(|s| *s != "off")
    }

    /// Where the provider's shard lane listens: `lane` if set (`None` for `"off"`), else the
    /// IP of `listen` with port 0. `None` too if `listen` has no IP.
    pub fn lane_bind(&self) -> Option<String> {
        match self.lane.as_deref() {
            Some("off") => None,
            Some(bind) => Some(bind.to_string()),
            None => {
                let address: libp2p::Multiaddr = self.listen.parse().ok()?;
                address.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::Ip4(ip) => Some(format!("{ip}:0")),
                    libp2p::multiaddr::Protocol::Ip6(ip) => Some(format!("[{ip}]:0")),
                    _ => None,
                })
            }
        }
    }
}

/// A node's ledger settings (`[chain]`): the local chain that one keeper sequences and the
/// other keepers follow and verify. Keepers and providers register on it at start (retrying
/// until the sequencer answers), keepers challenge providers every epoch and providers prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// The genesis file (TOML, see `memo_core::contract::Genesis`); relative paths are
    /// relative to the config file's directory.
    pub genesis: PathBuf,
    /// The account of the keeper that produces blocks and serves the ledger (64 hex digits).
    /// It must also sequence the operation log.
    pub sequencer: String,
    /// Milliseconds between blocks (used by the sequencer; see [`ChainSettings::block_interval`]).
    #[serde(default = "default_block_ms")]
    pub block_ms: u64,
    /// Stake posted at registration.
    #[serde(default = "default_stake")]
    pub stake: u64,
    /// Providers: asking price per byte per epoch.
    #[serde(default = "default_price")]
    pub price: u64,
}

impl ChainSettings {
    /// The stake posted at registration when `stake` is absent.
    pub const DEFAULT_STAKE: u64 = 100_000;

    /// The asking price when `price` is absent.
    pub const DEFAULT_PRICE: u64 = 1;

    /// The time between blocks: `block_ms`, at least 10 ms. The sequencer produces blocks at
    /// this interval and the other nodes poll the ledger at it.
    pub fn block_interval(&self) -> Duration {
        Duration::from_millis(self.block_ms.max(10))
    }

    /// The parsed sequencer account.
    pub fn sequencer_id(&self) -> Result<AccountId, BadAccount> {
        self.sequencer.parse().map_err(|e| BadAccount {
            what: "chain sequencer".into(),
            reason: format!("{e}"),
        })
    }

    /// Reads and checks the genesis file.
    pub fn load_genesis(&self) -> Result<memo_core::contract::Genesis, ConfigError> {
        let text = read(&self.genesis)?;
        memo_core::contract::Genesis::from_toml(&text).map_err(|e| ConfigError::Invalid {
            path: self.genesis.clone(),
            message: e.to_string(),
        })
    }
}

/// A keeper's Raft group settings (`[group]`); see `memo_sdk::replication::RaftOpLog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// The group's founding members (64 hex digits each). Empty: this keeper and every keeper
    /// among the peers. A keeper that is not a founder waits to be added by the group.
    #[serde(default)]
    pub founders: Vec<String>,
    /// Milliseconds between the leader's heartbeats.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// The election timeout's range in milliseconds: a follower that hears no leader for a
    /// random time within it stands for election.
    #[serde(default = "default_election_ms")]
    pub election_ms: [u64; 2],
    /// Compact the log into a snapshot every this many entries.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            founders: Vec::new(),
            heartbeat_ms: default_heartbeat_ms(),
            election_ms: default_election_ms(),
            snapshot_every: default_snapshot_every(),
        }
    }
}

impl GroupSettings {
    /// The parsed founders.
    pub fn founder_ids(&self) -> Result<Vec<AccountId>, BadAccount> {
        self.founders
            .iter()
            .map(|f| {
                f.parse().map_err(|e| BadAccount {
                    what: "group founder".into(),
                    reason: format!("{e}"),
                })
            })
            .collect()
    }

    /// The Raft timing these settings give, checked: a heartbeat of at least 10 ms and an
    /// election timeout range above it.
    pub fn to_config(&self) -> Result<crate::replication::GroupConfig, GroupTimingError> {
        let [lo, hi] = self.election_ms;
        let heartbeat = self.heartbeat_ms.max(10);
        if lo <= heartbeat || hi <= lo {
            return Err(GroupTimingError {
                heartbeat_ms: heartbeat,
                election_ms: [lo, hi],
            });
        }
        Ok(crate::replication::GroupConfig {
            heartbeat: Duration::from_millis(heartbeat),
            election_timeout: (Duration::from_millis(lo), Duration::from_millis(hi)),
            snapshot_every: self.snapshot_every.max(1),
            ..Default::default()
        })
    }
}

fn default_heartbeat_ms() -> u64 {
    100
}

fn default_election_ms() -> [u64; 2] {
    [400, 800]
}

fn default_snapshot_every() -> u64 {
    10_000
}

/// 100 ms: a put waits for one block (its orders), so the block time is most of a small put's
/// latency (docs/benchmarks.md, "Put latency").
fn default_block_ms() -> u64 {
    100
}

fn default_stake() -> u64 {
    ChainSettings::DEFAULT_STAKE
}

fn default_price() -> u64 {
    ChainSettings::DEFAULT_PRICE
}

/// A keeper's `[repair]` table. Every threshold derives from `epoch_secs` through
/// [`RepairConfig::for_epoch`] (probes every quarter epoch; a provider is Suspect after
/// missing 2 probes, Lost after 8, i.e. two epochs); each other key overrides one setting.
///
/// ```toml
/// [repair]
/// epoch_secs = 2            # devnet: probe every 0.5 s, Lost after 4 s
/// bytes_per_sec = 0         # repair reads unbounded (default 64 MiB/s)
/// audit_shards = 1          # shards audited per provider per round (0: no audits)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairSettings {
    /// Run detection and repair on this keeper.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The epoch the thresholds derive from, in seconds (at least 1).
    #[serde(default = "default_epoch_secs")]
    pub epoch_secs: u64,
    /// Milliseconds between rounds (default: a quarter epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_interval_ms: Option<u64>,
    /// Milliseconds a probe may take (default: the probe interval, at most 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_timeout_ms: Option<u64>,
    /// Milliseconds a shard fetch or upload may take (default: four rounds, 1 to 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_timeout_ms: Option<u64>,
    /// Missed probes before a provider is Suspect (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect_after: Option<u32>,
    /// Missed probes before a provider is Lost (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_after: Option<u32>,
    /// Shard bytes per second read for repair; 0 for unbounded (default 64 MiB/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// Chunks repaired at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Shards audited per provider per round, across keepers (default 1; 0 disables audits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_shards: Option<usize>,
    /// Seconds a shard no chunk places must have gone unstored before the orphan sweep deletes
    /// it (default 3600; 0 disables sweeps). Longer than any put takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_grace_secs: Option<u64>,
    /// With a ledger: epochs after a user's storage order lapsed before its unpaid objects are
    /// evicted (default 48; 0 keeps unpaid data). See [`RepairConfig::lapse_grace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapse_grace_epochs: Option<u64>,
}

impl Default for RepairSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            epoch_secs: default_epoch_secs(),
            probe_interval_ms: None,
            rpc_timeout_ms: None,
            transfer_timeout_ms: None,
            suspect_after: None,
            lost_after: None,
            bytes_per_sec: None,
            max_concurrent: None,
            audit_shards: None,
            orphan_grace_secs: None,
            lapse_grace_epochs: None,
        }
    }
}

impl RepairSettings {
    /// Defaults for an epoch of `epoch_secs` seconds.
    pub fn for_epoch(epoch_secs: u64) -> Self {
        Self {
            epoch_secs,
            ..Self::default()
        }
    }

    /// The repairer's settings: [`RepairConfig::for_epoch`] with this table's overrides.
    pub fn to_config(&self) -> RepairConfig {
        let ms = Duration::from_millis;
        let mut c = RepairConfig::for_epoch(Duration::from_secs(self.epoch_secs.max(1)));
        if let Some(v) = self.probe_interval_ms {
            c.probe_interval = ms(v.max(1));
        }
        if let Some(v) = self.rpc_timeout_ms {
            c.rpc_timeout = ms(v.max(1));
        }
        if let Some(v) = self.transfer_timeout_ms {
            c.transfer_timeout = ms(v.max(1));
        }
        if let Some(v) = self.suspect_after {
            c.liveness.suspect_after = v.max(1);
        }
        if let Some(v) = self.lost_after {
            c.liveness.lost_after = v.max(c.liveness.suspect_after);
        }
        if let Some(v) = self.bytes_per_sec {
            c.bytes_per_sec = (v > 0).then_some(v);
        }
        if let Some(v) = self.max_concurrent {
            c.max_concurrent = v.max(1);
        }
        if let Some(v) = self.audit_shards {
            c.audit_shards = v;
            if v == 0 {
                c.audit_burst = 0;
            }
        }
        if let Some(v) = self.orphan_grace_secs {
            c.orphan_grace = (v > 0).then(|| Duration::from_secs(v));
        }
        if let Some(v) = self.lapse_grace_epochs {
            c.lapse_grace = (v > 0).then_some(v);
        }
        c
    }
}

fn default_epoch_secs() -> u64 {
    60
}

/// A user's client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// The user's key file.
    pub key_file: PathBuf,
    /// Plaintext bytes per chunk.
    #[serde(default)]
    pub chunk_size: Option<u32>,
    /// k.
    #[serde(default)]
    pub data_shards: Option<u8>,
    /// m.
    #[serde(default)]
    pub parity_shards: Option<u8>,
    /// Known peers; keepers are tried in the listed order.
    #[serde(default)]
    pub peers: Vec<PeerInfo>,
    /// The account of the node that serves the ledger (64 hex digits; its address must be
    /// among the peers). With it, puts pay providers through storage orders and `account`
    /// shows the balance.
    #[serde(default)]
    pub ledger: Option<String>,
    /// Move shard bytes on providers' lanes where they offer one (see `memo_sdk::transport::lane`);
    /// default true. `false` sends everything over the libp2p transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<bool>,
}

fn default_listen() -> String {
    "/ip4/127.0.0.1/tcp/0".into()
}

fn default_true() -> bool {
    true
}

fn default_capacity() -> u64 {
    16 << 30
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: path.into(),
        error,
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = read(path)?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_peers(path: &Path, peers: &[PeerInfo]) -> Result<(), ConfigError> {
    for p in peers {
        p.account_id().map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

impl NodeConfig {
    /// Loads and checks a node config; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut c: NodeConfig = parse(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        c.key_file = resolve(base, &c.key_file);
        c.data_dir = resolve(base, &c.data_dir);
        check_peers(path, &c.peers)?;
        if let Some(chain) = &mut c.chain {
            chain.genesis = resolve(base, &chain.genesis);
            chain.sequencer_id().map_err(|e| ConfigError::Invalid {
                path: path.into(),
                message: e.to_string(),
            })?;
        }
        Ok(c)
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_toml(path, self)
    }
}

impl ClientFile {
    /// Loads and checks a client config; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut c: ClientFile = parse(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        c.key_file = resolve(base, &c.key_file);
        check_peers(path, &c.peers)?;
        if let Some(l) = &c.ledger {
            l.parse::<AccountId>().map_err(|e| ConfigError::Invalid {
                path: path.into(),
                message: format!("ledger: {e}"),
            })?;
        }
        c.params().validate().map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        if !c.peers.iter().any(|p| p.role == Role::Keeper) {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "no keeper among the peers".into(),
            });
        }
        Ok(c)
    }

    /// The codec parameters this config asks for.
    pub fn params(&self) -> CodecParams {
        let d = CodecParams::default();
        CodecParams {
            chunk_size: self.chunk_size.unwrap_or(d.chunk_size),
            data_shards: self.data_shards.unwrap_or(d.data_shards),
            parity_shards: self.parity_shards.unwrap_or(d.parity_shards),
        }
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_toml(path, self)
    }

    /// A client for this config's user: loads the key file, starts a P2P transport that only
    /// dials (no listener), adds the peers' addresses (peers without one are skipped), asks
    /// the keepers in the listed order with this config's codec parameters, lets `tune` adjust
    /// the [`ClientConfig`], and, when `ledger` is set, pays for puts through storage orders
    /// on the ledger that node serves ([`Client::set_ledger`], polled every 200 ms).
    ///
    /// Errors: a [`ConnectError`] saying what failed.
    pub async fn connect(
        &self,
        tune: impl FnOnce(&mut ClientConfig),
    ) -> Result<Client, ConnectError> {
        let keypair = load_key(&self.key_file)?;
        let transport = P2pTransport::start_with(
            &keypair,
            P2pConfig {
                listen: vec![],
                ..P2pConfig::default()
            },
        )
        .await
        .map_err(ConnectError::Transport)?;
        let mut keepers = Vec::new();
        for p in &self.peers {
            let account = p
                .account_id()
                .map_err(|e| ConnectError::Peer(e.to_string()))?;
            if !p.address.is_empty() {
                transport
                    .try_add_address(account, &p.address)
                    .map_err(|e| ConnectError::Peer(format!("peer {}: {e}", p.name)))?;
            }
            if p.role == Role::Keeper {
                keepers.push(account);
            }
        }
        let mut cfg = ClientConfig::new(keepers.clone());
        cfg.params = self.params();
        tune(&mut cfg);
        let timeout = transport.config().request_timeout;
        let book = transport.clone();
        let transport = Arc::new(transport) as Arc<dyn Transport>;
        let mut client = Client::new(keypair, transport.clone(), cfg)?;
        // Where the providers and the other keepers are now, from the first keeper that
        // answers: a config that names keepers only (`memo init`) has no other source, and a
        // node that came back on another address announced it on the ledger.
        match client.directory().await {
            Ok((peers, _)) => {
                for p in peers.iter().filter(|p| !p.address.is_empty()) {
                    if let Err(e) = book.try_add_address(p.account, &p.address) {
                        tracing::debug!(peer = %p.name, "ignoring address {}: {e}", p.address);
                    }
                }
            }
            Err(e) => tracing::debug!("no directory from the keepers: {e}"),
        }
        if self.lanes.unwrap_or(true) {
            client.use_lanes(crate::transport::lane::Lanes::new(
                crate::env::Env::real(),
                transport.clone(),
                timeout,
            ));
        }
        if let Some(ledger) = &self.ledger {
            let account = ledger
                .parse::<AccountId>()
                .map_err(|e| ConnectError::Ledger(e.to_string()))?;
            // The configured ledger node first; in a keeper group every keeper serves the
            // chain, so the others stand in when it is down.
            let mut peers = vec![account];
            peers.extend(keepers.iter().copied());
            client.set_ledger(
                crate::ledger::RemoteLedger::with_peers(transport, peers, CLIENT_LEDGER_POLL),
                crate::client::orders::OrderConfig::default(),
            );
        }
        Ok(client)
    }
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), ConfigError> {
    let text = toml::to_string(value).map_err(|e| ConfigError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes a file atomically (temporary file, then rename), creating its directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let io = |error| ConfigError::Io {
        path: path.into(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads a key file, or creates one with a fresh random key if it does not exist.
pub fn load_or_create_key(path: &Path) -> Result<Keypair, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Keypair::from_key_file(&text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = Keypair::from_secret(rand::random());
            write_atomic(path, kp.to_key_file().as_bytes())?;
            restrict(path);
            Ok(kp)
        }
        Err(error) => Err(ConfigError::Io {
            path: path.into(),
            error,
        }),
    }
}

/// Loads an existing key file.
pub fn load_key(path: &Path) -> Result<Keypair, ConfigError> {
    let text = read(path)?;
    Keypair::from_key_file(&text).map_err(|e| ConfigError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_settings_derive_from_the_epoch_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "role = \"keeper\"\nname = \"k\"\nkey_file = \"k.key\"\ndata_dir = \"d\"\n",
        )
        .unwrap();
        let c = NodeConfig::load(&path).unwrap();
        assert_eq!(c.repair, RepairSettings::default());
        assert!(c.repair.enabled);
        assert_eq!(c.repair.to_config().probe_interval, Duration::from_secs(15));
        let mut c2 = c.clone();
        c2.repair = RepairSettings {
            bytes_per_sec: Some(0),
            audit_shards: Some(0),
            orphan_grace_secs: Some(120),
            ..RepairSettings::for_epoch(2)
        };
        c2.save(&path).unwrap();
        let back = NodeConfig::load(&path).unwrap();
        assert_eq!(back.repair, c2.repair);
        let rc = back.repair.to_config();
        assert_eq!(rc.probe_interval, Duration::from_millis(500));
        assert_eq!(rc.liveness.lost_after as u64 * 500, 4000);
        assert_eq!((rc.bytes_per_sec, rc.audit_shards), (None, 0));
        assert_eq!(rc.orphan_grace, Some(Duration::from_secs(120)));
        assert_eq!(
            c.repair.to_config().orphan_grace,
            Some(Duration::from_secs(3600))
        );
        let off = RepairSettings {
            orphan_grace_secs: Some(0),
            ..RepairSettings::default()
        };
        assert_eq!(off.to_config().orphan_grace, None);
        std::fs::write(
            &path,
            "role = \"keeper\"\nname = \"k\"\nkey_file = \"k.key\"\ndata_dir = \"d\"\n[repair]\nepoch = 3\n",
        )
        .unwrap();
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn configs_round_trip_and_bad_files_get_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::from_seed("k");
        let peer = PeerInfo {
            name: "k".into(),
            role: Role::Keeper,
            account: kp.account().to_hex(),
            address: "/ip4/127.0.0.1/tcp/1".into(),
        };
        let c = ClientFile {
            key_file: "u.key".into(),
            chunk_size: None,
            data_shards: Some(3),
            parity_shards: None,
            peers: vec![peer.clone()],
            ledger: Some(kp.account().to_hex()),
            lanes: None,
        };
        let path = dir.path().join("u.toml");
        c.save(&path).unwrap();
        let back = ClientFile::load(&path).unwrap();
        assert_eq!(back.key_file, dir.path().join("u.key"));
        assert_eq!(back.params().data_shards, 3);
        assert_eq!(back.ledger, c.ledger);
        // A ledger that is not an account id is refused.
        let mut bad = c.clone();
        bad.ledger = Some("not hex".into());
        bad.save(&path).unwrap();
        assert!(matches!(
            ClientFile::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            ClientFile::load(&dir.path().join("missing.toml")),
            Err(ConfigError::Io { .. })
        ));
        std::fs::write(&path, "key_file = 3").unwrap();
        assert!(matches!(
            ClientFile::load(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "key_file = \"a\"\n[[peers]]\nname=\"x\"\nrole=\"keeper\"\naccount=\"zz\"\naddress=\"\"\n").unwrap();
        assert!(matches!(
            ClientFile::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
        std::fs::write(&path, "key_file = \"a\"\ndata_shards = 1\n").unwrap();
        assert!(matches!(
            ClientFile::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
        let key = dir.path().join("keys/n.key");
        let a = load_or_create_key(&key).unwrap();
        assert_eq!(load_or_create_key(&key).unwrap().account(), a.account());
        std::fs::write(&key, "secret = 1").unwrap();
        assert!(matches!(load_key(&key), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn node_chain_settings_resolve_and_check() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::from_seed("seq");
        let path = dir.path().join("n.toml");
        let text = format!(
            "role = \"keeper\"\nname = \"k\"\nkey_file = \"k.key\"\ndata_dir = \"d\"\n\
             [chain]\ngenesis = \"genesis.toml\"\nsequencer = \"{}\"\n",
            kp.account().to_hex()
        );
        std::fs::write(&path, &text).unwrap();
        let c = NodeConfig::load(&path).unwrap();
        let chain = c.chain.unwrap();
        assert_eq!(chain.genesis, dir.path().join("genesis.toml"));
        assert_eq!(chain.sequencer_id().unwrap(), kp.account());
        assert_eq!((chain.block_ms, chain.price), (100, 1));
        // The genesis file is missing: a typed error naming it.
        assert!(matches!(chain.load_genesis(), Err(ConfigError::Io { .. })));
        std::fs::write(&chain.genesis, "chain = \"x\"").unwrap();
        assert!(matches!(
            chain.load_genesis(),
            Err(ConfigError::Invalid { .. })
        ));
        std::fs::write(&path, text.replace(&kp.account().to_hex(), "beef")).unwrap();
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
    }
}

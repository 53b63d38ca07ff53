//! A whole memo network in one process: keepers, providers and users wired together over any
//! transport. Used by the tests, by `memo demo`, and by anyone who wants to try memo locally.

pub mod ledger;

use crate::client::{Client, ClientConfig, ClientError};
use crate::env::Env;
use crate::keeper::repair::{RepairConfig, Repairer};
use crate::keeper::{Keeper, KeeperConfig};
use crate::provider::Provider;
use crate::replication::{MemoryOpLog, OpLog};
use memo_core::codec::CodecParams;
use memo_core::ownership::{MemoryShardStore, ShardStore};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What to start.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// Number of keepers.
    pub keepers: usize,
    /// Number of providers.
    pub providers: usize,
    /// User names.
    pub users: Vec<String>,
    /// Capacity of each provider in bytes.
    pub provider_capacity: u64,
    /// Codec parameters of every user.
    pub params: CodecParams,
    /// The clock and randomness of the whole network; each node gets a [`Env::fork`] of it.
    /// [`Env::simulated`] with a seed makes placement draws replay.
    pub env: Env,
}

impl Default for LocalSpec {
    fn default() -> Self {
        Self {
            keepers: 3,
            providers: 6,
            users: vec!["alice".into(), "bob".into(), "carol".into()],
            provider_capacity: 16 << 30,
            params: CodecParams::default(),
            env: Env::real(),
        }
    }
}

/// A running provider with its store.
pub struct LocalProvider<S> {
    /// The service.
    pub service: Arc<Provider<S>>,
    /// Its keypair.
    pub keypair: Keypair,
    task: JoinHandle<()>,
}

impl<S> LocalProvider<S> {
    /// The provider's account.
    pub fn account(&self) -> AccountId {
        self.keypair.account()
    }
    /// Stops serving (as if the machine died).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl<S: ShardStore + 'static> LocalProvider<S> {
    /// Serves again after [`LocalProvider::stop`] (as if the machine came back with its disk).
    pub fn restart(&mut self) {
        self.task.abort();
        self.task = tokio::spawn(self.service.clone().run());
    }
}

/// A running local network.
pub struct LocalNetwork<S> {
    /// Keepers, each running.
    pub keepers: Vec<Arc<Keeper>>,
    /// Providers, each running.
    pub providers: Vec<LocalProvider<S>>,
    /// One client per user, talking to keeper `i % keepers`.
    pub users: Vec<(String, Client)>,
    /// The keepers' shared operation log.
    pub log: MemoryOpLog,
    /// The ledger, if the spec asked for one.
    pub ledger: Option<crate::local::ledger::LocalLedger>,
    /// Each keeper's repairer, once [`LocalNetwork::enable_repair`] ran.
    pub repairers: Vec<Arc<Repairer>>,
    keeper_keys: Vec<Keypair>,
    tasks: Vec<JoinHandle<()>>,
}

/// The keypairs [`LocalNetwork::start`] gives its keepers, providers and users (in that order),
/// so a caller can start real transports for them first.
pub fn node_keys(spec: &LocalSpec) -> Vec<Keypair> {
    let mut out: Vec<Keypair> = (0..spec.keepers)
        .map(|i| Keypair::from_seed(&format!("keeper-{i}")))
        .collect();
    out.extend((0..spec.providers).map(|i| Keypair::from_seed(&format!("provider-{i}"))));
    out.extend(
        spec.users
            .iter()
            .map(|n| Keypair::from_seed(&format!("user-{n}"))),
    );
    out
}

impl<S: ShardStore + 'static> LocalNetwork<S> {
    /// Starts keepers, providers (stores from `store`) and users, with transports from
    /// `transport` (given each node's keypair and every earlier node's transport, so a real
    /// transport can learn addresses).
    pub async fn start(
        spec: &LocalSpec,
        mut transport: impl FnMut(&Keypair) -> Arc<dyn Transport>,
        mut store: impl FnMut(usize) -> S,
    ) -> Result<Self, ClientError> {
        let log = MemoryOpLog::new();
        let mut tasks = Vec::new();
        let keeper_keys: Vec<Keypair> = (0..spec.keepers)
            .map(|i| Keypair::from_seed(&format!("keeper-{i}")))
            .collect();
        let keeper_ids: Vec<AccountId> = keeper_keys.iter().map(Keypair::account).collect();
        for (i, k) in keeper_ids.iter().enumerate() {
            k.set_name(&format!("keeper-{i}"));
        }
        let mut keepers = Vec::new();
        for kp in &keeper_keys {
            let k = Keeper::new(
                kp.clone(),
                transport(kp),
                Arc::new(log.clone()) as Arc<dyn OpLog>,
                KeeperConfig {
                    keepers: keeper_ids.clone(),
                    env: spec.env.fork(),
                    ..KeeperConfig::default()
                },
            );
            tasks.push(tokio::spawn(k.clone().run()));
            keepers.push(k);
        }
        let mut providers = Vec::new();
        for i in 0..spec.providers {
            let kp = Keypair::from_seed(&format!("provider-{i}"));
            kp.account().set_name(&format!("provider-{i}"));
            let p = Provider::new(
                spec.env.fork(),
                kp.clone(),
                transport(&kp),
                store(i),
                spec.provider_capacity,
                keeper_ids.clone(),
            );
            let task = tokio::spawn(p.clone().run());
            tasks.push(p.spawn_reclaimer());
            for k in &keepers {
                k.add_provider(kp.account());
            }
            providers.push(LocalProvider {
                service: p,
                keypair: kp,
                task,
            });
        }
        let mut users = Vec::new();
        for (i, name) in spec.users.iter().enumerate() {
            let kp = Keypair::from_seed(&format!("user-{name}"));
            let mut order = keeper_ids.clone();
            order.rotate_left(i % keeper_ids.len().max(1));
            let mut cfg = ClientConfig::new(order);
            cfg.env = spec.env.fork();
            cfg.params = spec.params;
            users.push((name.clone(), Client::new(kp.clone(), transport(&kp), cfg)?));
        }
        Ok(Self {
            keepers,
            providers,
            users,
            log,
            ledger: None,
            repairers: Vec::new(),
            keeper_keys,
            tasks,
        })
    }

    /// Runs the network with a ledger from now on: storage orders, challenges, proofs and
    /// payments (see [`crate::local::ledger`]). Call once, right after [`Self::start`].
    pub async fn attach_ledger(
        &mut self,
        spec: &crate::local::ledger::LedgerSpec,
        provider_capacity: u64,
    ) -> Result<&crate::local::ledger::LocalLedger, ClientError> {
        let keepers: Vec<_> = self
            .keeper_keys
            .iter()
            .cloned()
            .zip(self.keepers.iter().cloned())
            .collect();
        let (providers, users) = (&self.providers, &mut self.users);
        let l = crate::local::ledger::attach(spec, provider_capacity, &keepers, providers, users)
            .await?;
        Ok(self.ledger.insert(l))
    }

    /// Starts detection and repair on every keeper (see [`crate::keeper::repair`]): stopped providers
    /// are declared Suspect then Lost, and their shards rebuilt on other providers.
    pub fn enable_repair(&mut self, config: RepairConfig) -> &[Arc<Repairer>] {
        for r in self.repairers(&config) {
            self.tasks.push(r.start());
            self.repairers.push(r);
        }
        &self.repairers
    }

    /// One repairer per keeper, with that keeper's key, not started: simulations drive them
    /// round by round ([`Repairer::round`]); [`LocalNetwork::enable_repair`] runs them.
    pub fn repairers(&self, config: &RepairConfig) -> Vec<Arc<Repairer>> {
        self.keepers
            .iter()
            .zip(&self.keeper_keys)
            .map(|(k, kp)| Repairer::new(k.clone(), kp.clone(), config.clone()))
            .collect()
    }

    /// The client of user `name`.
    pub fn user(&self, name: &str) -> Option<&Client> {
        self.users.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

impl<S> Drop for LocalNetwork<S> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for p in &self.providers {
            p.stop();
        }
    }
}

/// A local network on an in-process [`MemoryNetwork`] with in-memory shard stores.
pub async fn memory_network(
    spec: &LocalSpec,
) -> Result<(MemoryNetwork, LocalNetwork<MemoryShardStore>), ClientError> {
    let net = MemoryNetwork::new();
    let n2 = net.clone();
    let local = LocalNetwork::start(
        spec,
        move |kp| Arc::new(n2.join(kp.account())) as Arc<dyn Transport>,
        |_| MemoryShardStore::new(),
    )
    .await?;
    Ok((net, local))
}

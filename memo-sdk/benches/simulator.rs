//! The deterministic simulator at scale: 1,000 providers, 5 keepers and 10,000 objects under
//! churn, on virtual time ([`Env::simulated`] in a current-thread runtime with paused time).
//!
//! Stores the objects, then runs epochs of four repair rounds each; every epoch crashes,
//! restarts and wipes providers at random (never more than m shards of any chunk at once) and
//! reads a sample of objects back. Prints the wall time of each phase, the virtual time it
//! covered, the simulated events (requests delivered between nodes) and events per second.
//!
//! `cargo bench -p memo-sdk --bench simulator`; `MEMO_SIM_PROVIDERS`, `MEMO_SIM_KEEPERS`,
//! `MEMO_SIM_OBJECTS`, `MEMO_SIM_EPOCHS` and `MEMO_SIM_SEED` change the scale and the seed.

use async_trait::async_trait;
use bytes::Bytes;
use memo_core::AccountId;
use memo_core::codec::CodecParams;
use memo_core::ownership::MemoryShardStore;
use memo_core::transport::{Incoming, MemoryNetwork, Transport, TransportError};
use memo_sdk::Env;
use memo_sdk::keeper::repair::{RepairConfig, Repairer};
use memo_sdk::local::{LocalNetwork, LocalSpec};
use memo_sdk::testkit::{Churn, simulation_repair_config};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const M: usize = 2;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts every request a node sends: the simulation's events.
struct Counting {
    inner: Arc<dyn Transport>,
    events: Arc<AtomicU64>,
}

#[async_trait]
impl Transport for Counting {
    fn local_id(&self) -> AccountId {
        self.inner.local_id()
    }
    fn add_address(&self, peer: AccountId, address: &str) {
        self.inner.add_address(peer, address)
    }
    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError> {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.inner.request(peer, body).await
    }
    async fn next_incoming(&self) -> Option<Incoming> {
        self.inner.next_incoming().await
    }
}

type Store = Arc<MemoryShardStore>;

fn repair_config() -> RepairConfig {
    simulation_repair_config(16)
}

struct Phase {
    name: &'static str,
    wall: Duration,
    virtual_time: Duration,
    events: u64,
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let providers = env_or("MEMO_SIM_PROVIDERS", 1000) as usize;
    let keepers = env_or("MEMO_SIM_KEEPERS", 5) as usize;
    let objects = env_or("MEMO_SIM_OBJECTS", 10_000);
    let epochs = env_or("MEMO_SIM_EPOCHS", 8);
    let seed = env_or("MEMO_SIM_SEED", 1000);
    println!(
        "simulation: {providers} providers, {keepers} keepers, {objects} objects, {epochs} epochs of churn, seed {seed}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let phases = rt.block_on(async move {
        let env = Env::simulated(seed);
        let events = Arc::new(AtomicU64::new(0));
        let mem = MemoryNetwork::new();
        let stores: Vec<Store> = (0..providers).map(|_| Arc::new(MemoryShardStore::new())).collect();
        let spec = LocalSpec {
            keepers,
            providers,
            users: (0..8).map(|i| format!("user-{i}")).collect(),
            provider_capacity: 1 << 30,
            params: CodecParams {
                chunk_size: 4096,
                data_shards: 3,
                parity_shards: M as u8,
            },
            env: env.clone(),
        };
        let (ev, s2) = (events.clone(), stores.clone());
        let mut phases = Vec::new();
        let (wall, virt, ev0) = (Instant::now(), env.now(), 0);
        let mut net = LocalNetwork::start(
            &spec,
            move |kp| {
                Arc::new(Counting {
                    inner: Arc::new(mem.join(kp.account())),
                    events: ev.clone(),
                }) as Arc<dyn Transport>
            },
            move |i| s2[i].clone(),
        )
        .await
        .expect("the network starts");
        let repairers: Vec<Arc<Repairer>> = net.repairers(&repair_config());
        phases.push(Phase {
            name: "start",
            wall: wall.elapsed(),
            virtual_time: env.now() - virt,
            events: events.load(Ordering::Relaxed) - ev0,
        });

        let mut rng = StdRng::seed_from_u64(seed);
        let (wall, virt, ev0) = (Instant::now(), env.now(), events.load(Ordering::Relaxed));
        let mut stored = Vec::new();
        for i in 0..objects {
            let mut data = vec![0u8; 1 + rng.random_range(0..6000usize)];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut data);
            let u = (i % 8) as usize;
            let put = net.users[u]
                .1
                .put_bytes(&format!("o{i}"), &data)
                .await
                .expect("put");
            stored.push((u, put.id.to_string(), blake3::hash(&data)));
        }
        phases.push(Phase {
            name: "put",
            wall: wall.elapsed(),
            virtual_time: env.now() - virt,
            events: events.load(Ordering::Relaxed) - ev0,
        });

        let (wall, virt, ev0) = (Instant::now(), env.now(), events.load(Ordering::Relaxed));
        let mut churn = Churn::new(stores.clone(), M);
        let mut reads = 0u64;
        for epoch in 0..epochs {
            let attempts = rng.random_range(2..8);
            churn.epoch(&mut net, &mut rng, attempts);
            for _ in 0..4 {
                for r in &repairers {
                    r.round().await;
                    r.settle().await;
                }
            }
            for _ in 0..50 {
                let (u, id, hash) = &stored[rng.random_range(0..stored.len())];
                let got = net.users[*u].1.get_bytes(id).await;
                match got {
                    Ok(b) if blake3::hash(&b) == *hash => reads += 1,
                    Ok(_) => panic!("epoch {epoch}: {id} read back altered (seed {seed})"),
                    Err(e) => panic!("epoch {epoch}: {id} lost (seed {seed}): {e}"),
                }
            }
        }
        phases.push(Phase {
            name: "churn",
            wall: wall.elapsed(),
            virtual_time: env.now() - virt,
            events: events.load(Ordering::Relaxed) - ev0,
        });
        let restored: u64 = repairers.iter().map(|r| r.stats().shards_restored).sum();
        println!("churn: {reads} sampled reads exact, {restored} shards rebuilt, {} providers down at the end", churn.down().len());
        phases
    });
    println!();
    println!("| phase | wall s | virtual s | events | events / wall s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut total = (Duration::ZERO, Duration::ZERO, 0u64);
    for p in &phases {
        println!(
            "| {} | {:.2} | {:.0} | {} | {:.0} |",
            p.name,
            p.wall.as_secs_f64(),
            p.virtual_time.as_secs_f64(),
            p.events,
            p.events as f64 / p.wall.as_secs_f64().max(1e-9)
        );
        total = (
            total.0 + p.wall,
            total.1 + p.virtual_time,
            total.2 + p.events,
        );
    }
    println!(
        "| total | {:.2} | {:.0} | {} | {:.0} |",
        total.0.as_secs_f64(),
        total.1.as_secs_f64(),
        total.2,
        total.2 as f64 / total.0.as_secs_f64().max(1e-9)
    );
}

//! Helpers shared by memo-sdk's in-process network tests (each test file that needs them has
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use memo_core::id::{AccountId, ChunkId, ShardId};
use memo_core::objects::Objects;
use memo_core::ownership::{MemoryMeta, ShardHealth, ShardStore};
use memo_core::repair::{LivenessPolicy, RepairThreshold};
use memo_sdk::keeper::repair::RepairConfig;
use memo_sdk::local::LocalNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A single-threaded runtime on virtual time: its clock jumps to the next timer whenever every
/// task waits, so the minutes of tickets, graces and probes pass at once.
pub fn virtual_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The default local network with small chunks: 64 KiB, k = 4, m = 2 (objects of a few hundred
/// KiB span several chunks).
pub fn spec() -> memo_sdk::local::LocalSpec {
    memo_sdk::local::LocalSpec {
        params: memo_core::codec::CodecParams {
            chunk_size: 64 * 1024,
            data_shards: 4,
            parity_shards: 2,
        },
        ..memo_sdk::local::LocalSpec::default()
    }
}

/// Repair tuned for tests: probes every 20 ms, Suspect after 1 missed probe and Lost after 2,
/// eager rebuilds, no audits, no orphan sweep.
pub fn fast_repair() -> RepairConfig {
    RepairConfig {
        probe_interval: Duration::from_millis(20),
        rpc_timeout: Duration::from_secs(2),
        liveness: LivenessPolicy {
            suspect_after: 1,
            lost_after: 2,
        },
        threshold: RepairThreshold::Eager,
        takeover_rounds: 2,
        max_concurrent: 4,
        bytes_per_sec: None,
        reports_per_round: 256,
        transfer_timeout: Duration::from_secs(2),
        audit_shards: 0,
        audit_burst: 0,
        orphan_grace: None,
        sweep_every: 1,
        lapse_grace: None,
    }
}

/// Every registered chunk with its shards (id, holder, health), as keeper state `o` has it.
pub type Registry = BTreeMap<ChunkId, Vec<(ShardId, Option<AccountId>, ShardHealth)>>;

/// The registry of keeper state `o` (pass to `Keeper::inspect`).
pub fn registry(o: &Objects<MemoryMeta>) -> Registry {
    let mut out = BTreeMap::new();
    let holders: Vec<AccountId> = o.holders().copied().collect();
    for h in holders {
        for c in o.held_by(&h) {
            // A chunk is held by k + m providers; read it once.
            if out.contains_key(c) {
                continue;
            }
            let e = o
                .ownership()
                .chunk(c)
                .unwrap()
                .expect("held chunk is registered");
            out.insert(
                *c,
                e.shards
                    .iter()
                    .map(|s| (s.id, s.holder, s.health))
                    .collect(),
            );
        }
    }
    out
}

/// True if every chunk has k + m Healthy shards on distinct holders, as every keeper sees it.
pub fn all_healthy<S: ShardStore + 'static>(net: &LocalNetwork<S>) -> bool {
    net.keepers.iter().all(|k| {
        k.inspect(|o| o.degraded().count() == 0)
            && k.inspect(registry).values().all(|slots| {
                let holders: BTreeSet<_> = slots.iter().filter_map(|s| s.1).collect();
                holders.len() == slots.len() && slots.iter().all(|s| s.2 == ShardHealth::Healthy)
            })
    })
}

/// Guards against a hang: an operation that makes no progress fails the test.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress in 20 s"))
}

/// Waits until every keeper has applied the whole shared log.
pub async fn keepers_caught_up<S: ShardStore + 'static>(net: &LocalNetwork<S>) {
    let len = net.log.len();
    for k in &net.keepers {
        within("keeper catching up", k.wait_applied(len)).await;
    }
}

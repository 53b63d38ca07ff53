//! Fault numbers of issue #20, on virtual time (`Env::simulated`, paused tokio time), at the
//! default settings:
//!
//! - how long after a client dies mid-put its uploads are reclaimed (the providers hold only
//!   registered shards again);
//! - shard bytes repair reads per minute when a chunk has lost a shard and no provider can take
//!   the rebuilt one (every live provider already holds a shard of it), against the repair
//!   read budget.
//!
//! `cargo bench -p memo-sdk --bench faults`

use futures::FutureExt;
use memo_core::codec::CodecParams;
use memo_core::ownership::{MemoryShardStore, ShardStore};
use memo_core::testkit::random_bytes;
use memo_core::transport::MemoryNetwork;
use memo_sdk::Env;
use memo_sdk::keeper::repair::RepairConfig;
use memo_sdk::local::{LocalNetwork, LocalSpec, memory_network};
use memo_sdk::testkit::{held_shards as held, registered_shards as registered};
use std::time::Duration;

fn spec(env: &Env, providers: usize) -> LocalSpec {
    LocalSpec {
        env: env.clone(),
        providers,
        params: CodecParams {
            chunk_size: 1 << 20,
            data_shards: 4,
            parity_shards: 2,
        },
        ..LocalSpec::default()
    }
}

/// A client dies after its uploads, before its put's operation: minutes until the providers
/// hold only registered shards again, and the orphan bytes they held meanwhile.
async fn orphan_reclaim() -> (f64, u64) {
    let env = Env::simulated(7);
    let (_mem, net) = memory_network(&spec(&env, 8)).await.expect("network");
    let alice = net.user("alice").expect("alice");
    let data = random_bytes(16 << 20, 3);
    let mut put = Box::pin(alice.put_bytes("killed", &data));
    // Run the put until its 16 data chunks are uploaded (96 shards), then kill it: the
    // manifest chunk and the operation never go out.
    let mut orphans = 0;
    for _ in 0..100_000 {
        if put.as_mut().now_or_never().is_some() {
            break;
        }
        let h = held(&net);
        if h >= 16 * 6 {
            orphans = h;
            break;
        }
        tokio::task::yield_now().await;
    }
    drop(put);
    assert_eq!(registered(&net), 0, "nothing was registered");
    let died = env.now();
    let bytes: u64 = net
        .providers
        .iter()
        .map(|p| p.service.store().used_bytes().unwrap_or(0))
        .sum();
    assert!(orphans > 0, "the put was killed after its uploads");
    while held(&net) > registered(&net) {
        env.sleep(Duration::from_secs(5)).await;
    }
    assert!(alice.list().await.expect("list").is_empty());
    ((env.now() - died).as_secs_f64() / 60.0, bytes)
}

/// Repair reads per minute with a shard lost and nowhere to rebuild it, over `minutes`.
async fn repair_without_targets(minutes: u64) -> (f64, u64, u64) {
    let env = Env::simulated(8);
    let mem = MemoryNetwork::new();
    let m2 = mem.clone();
    let mut net = LocalNetwork::start(
        &spec(&env, 6),
        move |kp| std::sync::Arc::new(m2.join(kp.account())) as _,
        |_| MemoryShardStore::new(),
    )
    .await
    .expect("network");
    let alice = net.user("alice").expect("alice");
    alice
        .put_bytes("a", &random_bytes(64 << 20, 4))
        .await
        .expect("put");
    let config = RepairConfig::default();
    let budget = config.bytes_per_sec.unwrap_or(0);
    net.enable_repair(config);
    mem.set_down(net.providers[0].account());
    // Lost after two epochs; then the measured minutes.
    env.sleep(Duration::from_secs(180)).await;
    let read = |net: &LocalNetwork<MemoryShardStore>| -> u64 {
        net.repairers.iter().map(|r| r.stats().bytes_read).sum()
    };
    let before = read(&net);
    env.sleep(Duration::from_secs(60 * minutes)).await;
    let deferred: u64 = net.repairers.iter().map(|r| r.stats().deferred).sum();
    (
        (read(&net) - before) as f64 / minutes as f64,
        budget * 60,
        deferred,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (minutes, bytes) = rt.block_on(orphan_reclaim());
    let (per_minute, budget, deferred) = rt.block_on(repair_without_targets(30));
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| a client killed after uploading 16 MiB (k=4, m=2): orphans reclaimed after | {minutes:.1} min |"
    );
    println!(
        "| provider bytes held when it died | {:.1} MiB |",
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "| repair reads per minute, lost shard and no provider to rebuild on (30 min) | {:.0} B |",
        per_minute
    );
    println!(
        "| the repair read budget per minute (default) | {:.0} MiB |",
        budget as f64 / (1 << 20) as f64
    );
    println!("| repairs deferred without a read | {deferred} |");
}

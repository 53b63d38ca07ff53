//! Repair throughput and amplification on the in-memory network.
//!
//! Stores enough data that one provider holds `MEMO_BENCH_HELD_MIB` MiB of shards (default
//! 256), stops that provider, and times one repair round from the Lost declaration until
//! every chunk is back to k + m healthy shards. Then the same with two providers lost at once.
//!
//! Prints: bytes restored, bytes read, seconds, throughput (restored bytes per second) and
//! amplification (bytes read per byte restored; Reed-Solomon's floor is k when one shard per
//! chunk is lost, k / 2 when two are).
//!
//! `cargo bench -p memo-sdk --bench repair` (set `MEMO_BENCH_HELD_MIB=1024` for 1 GiB).

use memo_core::codec::CodecParams;
use memo_core::ownership::ShardStore;
use memo_core::repair::{LivenessPolicy, RepairThreshold};
use memo_core::{AccountId, Keypair};
use memo_sdk::keeper::repair::{RepairConfig, Repairer};
use memo_sdk::local::{LocalSpec, memory_network};
use std::time::{Duration, Instant};

const K: u8 = 4;
const M: u8 = 2;
const PROVIDERS: usize = 8;
const CHUNK: u32 = 4 << 20;
const OBJECT: usize = 64 << 20;

fn fill(buf: &mut [u8], seed: u64) {
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(buf);
}

fn config(max_concurrent: usize, bytes_per_sec: Option<u64>) -> RepairConfig {
    RepairConfig {
        probe_interval: Duration::from_secs(3600),
        rpc_timeout: Duration::from_secs(30),
        liveness: LivenessPolicy {
            suspect_after: 1,
            lost_after: 1,
        },
        threshold: RepairThreshold::Eager,
        takeover_rounds: 1,
        max_concurrent,
        bytes_per_sec,
        reports_per_round: 0,
        transfer_timeout: Duration::from_secs(30),
        audit_shards: 0,
        audit_burst: 0,
        orphan_grace: None,
        sweep_every: 1,
        lapse_grace: None,
    }
}

async fn scenario(held_mib: u64, lose: usize, max_concurrent: usize, budget: Option<u64>) {
    let spec = LocalSpec {
        keepers: 1,
        providers: PROVIDERS,
        users: vec!["bench".into()],
        provider_capacity: 64 << 30,
        params: CodecParams {
            chunk_size: CHUNK,
            data_shards: K,
            parity_shards: M,
        },
        ..LocalSpec::default()
    };
    let (mem, net) = memory_network(&spec).await.expect("network");
    let user = net.user("bench").expect("user");
    // Each chunk puts one shard (chunk / k) on n of the providers.
    let per_object_on_one = OBJECT as u64 / K as u64 * (K + M) as u64 / PROVIDERS as u64;
    let objects = (held_mib << 20).div_ceil(per_object_on_one);
    let t0 = Instant::now();
    let mut buf = vec![0u8; OBJECT];
    for i in 0..objects {
        fill(&mut buf, i);
        user.put_bytes(&format!("obj{i}"), &buf).await.expect("put");
    }
    let stored = objects * OBJECT as u64;
    let lost: Vec<AccountId> = net.providers[..lose].iter().map(|p| p.account()).collect();
    let held: u64 = net.providers[..lose]
        .iter()
        .map(|p| p.service.store().used_bytes().expect("used"))
        .sum();
    eprintln!(
        "setup: {} MiB stored in {:.1} s; losing {lose} provider(s) holding {} MiB of shards",
        stored >> 20,
        t0.elapsed().as_secs_f64(),
        held >> 20
    );
    let repairer = Repairer::new(
        net.keepers[0].clone(),
        Keypair::from_seed("keeper-0"),
        config(max_concurrent, budget),
    );
    for p in &lost {
        mem.set_down(*p);
    }
    let t = Instant::now();
    repairer.round().await;
    repairer.settle().await;
    let secs = t.elapsed().as_secs_f64();
    let s = repairer.stats();
    let healthy = net.keepers[0].inspect(|o| o.degraded().count() == 0);
    assert!(healthy, "not every chunk was repaired: {s:?}");
    assert_eq!(
        s.bytes_restored, held,
        "restored bytes differ from the lost ones"
    );
    // A read after repair still returns the exact bytes (not timed).
    fill(&mut buf, 0);
    assert!(user.get_bytes("obj0").await.expect("get") == buf);
    println!(
        "lost {lose} of {PROVIDERS} providers (k={K}, m={M}, {} MiB chunks, {max_concurrent} chunks at once, budget {}): restored {} MiB ({} shards of {} chunks) in {secs:.2} s = {:.0} MiB/s; read {} MiB, amplification {:.2} bytes read per byte restored",
        CHUNK >> 20,
        budget.map_or("none".to_string(), |b| format!("{} MiB/s", b >> 20)),
        s.bytes_restored >> 20,
        s.shards_restored,
        s.chunks_repaired,
        s.bytes_restored as f64 / secs / (1 << 20) as f64,
        s.bytes_read >> 20,
        s.bytes_read as f64 / s.bytes_restored as f64,
    );
}

fn main() {
    let held_mib: u64 = std::env::var("MEMO_BENCH_HELD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        eprintln!("warm-up (fresh memory is slow to fault in):");
        scenario(held_mib / 4, 1, 8, None).await;
        eprintln!("measured:");
        scenario(held_mib, 1, 8, None).await;
        scenario(held_mib, 2, 8, None).await;
        // The read budget paces repair: 128 MiB/s of reads is 32 MiB/s restored at k = 4.
        scenario(held_mib / 4, 1, 8, Some(128 << 20)).await;
    });
}

//! Repair on a devnet of real processes: a provider holding about 1 GiB of shards is killed
//! (SIGKILL); the keeper declares it Lost and rebuilds its shards on the others. Prints repair
//! throughput (shard bytes restored per second) and amplification (shard bytes read per byte
//! restored; the Reed–Solomon floor is k), from the keeper's counters in
//! `DATA_DIR/repair.json`.
//!
//! `cargo bench -p memo-refnode --bench repair`. Environment:
//! - `MEMO_BENCH_REPAIR_MB`: MiB of shards the lost provider should hold (default 1024; the
//!   object put is sized for it: 8 providers, k = 4, m = 2, so about 5.3× that).
//! - `MEMO_BENCH_REPAIR_RATE`: the keeper's repair read budget in MiB/s (default 0: unbounded).

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use common::Random;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PROVIDERS: usize = 8;
const K: u64 = 4;
const M: u64 = 2;

fn stat(s: &BTreeMap<String, u64>, key: &str) -> u64 {
    s.get(key).copied().unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let held_mib: u64 = common::env("MEMO_BENCH_REPAIR_MB").unwrap_or(1024);
    let rate_mib: u64 = common::env("MEMO_BENCH_REPAIR_RATE").unwrap_or(0);
    // Each provider holds k + m of every `PROVIDERS` shards, each 1/k of a chunk.
    let object_mib = held_mib * K * PROVIDERS as u64 / (K + M);
    let devnet = harness::Devnet::start_with(
        PROVIDERS,
        1,
        &[
            "--epoch-secs",
            "2",
            "--k",
            &K.to_string(),
            "--m",
            &M.to_string(),
            "--repair-bytes-per-sec",
            &(rate_mib << 20).to_string(),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let (client, file) = common::client(&devnet, |_| {}).await?;
        println!(
            "devnet repair: 1 keeper and {PROVIDERS} provider processes on loopback, RS {K}+{M}, {} KiB chunks, epoch 2 s (Lost after 4 s), repair reads {}",
            file.params().chunk_size / 1024,
            if rate_mib == 0 { "unbounded".to_string() } else { format!("<= {rate_mib} MiB/s") }
        );
        let t = Instant::now();
        let size = object_mib << 20;
        let put = client.put("bench", Random::new(size, 0x5eed), Some(size), &mut |_| {}).await?;
        println!("put {object_mib} MiB in {:.1} s", t.elapsed().as_secs_f64());

        // The provider holding the most shard bytes is the one lost.
        let shard_bytes = |name: &str| -> u64 {
            devnet.shard_paths(name).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
        };
        let (victim, held) = (0..PROVIDERS)
            .map(|i| {
                let name = format!("provider-{i}");
                let held = shard_bytes(&name);
                (name, held)
            })
            .max_by_key(|(_, b)| *b)
            .ok_or("no provider")?;
        let before = devnet.repair_stats();
        let killed = Instant::now();
        devnet.kill(&victim);
        println!("killed {victim}, holding {:.0} MiB of shards", held as f64 / 1048576.0);

        // Wait until the keeper restored as many bytes as the victim held, and stat agrees.
        let limit = Duration::from_secs(60 + held / (8 << 20));
        let mut first: Option<Duration> = None;
        let (done, after) = loop {
            let s = devnet.repair_stats();
            let restored = stat(&s, "bytes_restored") - stat(&before, "bytes_restored");
            if restored > 0 && first.is_none() {
                first = Some(killed.elapsed());
            }
            if restored >= held {
                break (killed.elapsed(), s);
            }
            if killed.elapsed() > limit {
                return Err(format!("only {restored} of {held} bytes restored after {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let st = client.stat(&put.id.to_hex()).await?;
        let unhealthy = st.chunks.iter().filter(|c| c.healthy != c.total).count();
        // A sample read back, exact.
        let sample = (64u64 << 20).min(size);
        let want = common::random(sample as usize, 0x5eed);
        let mut got = Vec::new();
        client.get(&put.id.to_hex(), Some(0..sample), &mut got, &mut |_| {}).await?;
        if got != want {
            return Err("read back different bytes after repair".into());
        }
        let diff = |k: &str| stat(&after, k) - stat(&before, k);
        let (restored, read) = (diff("bytes_restored"), diff("bytes_read"));
        let first = first.unwrap_or(done);
        let mib = |b: u64| b as f64 / 1048576.0;
        println!(
            "{:>10} {:>10} {:>10} {:>10} {:>10} {:>14} {:>14} {:>8}",
            "held MiB", "restored", "read MiB", "detect s", "repair s", "MiB/s repair", "MiB/s overall", "ampl."
        );
        println!(
            "{:>10.0} {:>10.0} {:>10.0} {:>10.1} {:>10.1} {:>14.0} {:>14.0} {:>8.2}",
            mib(held),
            mib(restored),
            mib(read),
            first.as_secs_f64(),
            (done - first).as_secs_f64(),
            mib(restored) / (done - first).as_secs_f64().max(1e-3),
            mib(restored) / done.as_secs_f64(),
            read as f64 / restored.max(1) as f64,
        );
        println!(
            "chunks repaired {}, shards {}, repair failures {}, audit reads {:.0} MiB meanwhile; chunks not fully healthy after: {unhealthy} of {}",
            diff("chunks_repaired"),
            diff("shards_restored"),
            diff("failures"),
            mib(diff("audit_bytes")),
            st.chunks.len()
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    drop(devnet);
    result
}

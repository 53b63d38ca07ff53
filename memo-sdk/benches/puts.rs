//! Put latency and throughput on an in-process network (3 keepers, 6 providers, k = 4, m = 2,
//! 1 MiB chunks, memory transport, no ledger), through the client's public API only, so the
//! same file builds at older revisions: `benches/before-after REV` runs it at REV and at the
//! working tree, one after the other, to measure what a protocol change costs.
//!
//! - 1 KiB objects one after another: new, stored again by their owner (a new reference), and
//!   stored by a second user (deduplicated: no upload);
//! - a large object: new, again by its owner, by a second user.
//!
//! `cargo bench -p memo-sdk --bench puts` (`MEMO_PUTS_SMALL=200`, `MEMO_PUTS_LARGE_MIB=64`,
//! `MEMO_PUTS_LABEL` names the row).

use memo_core::codec::CodecParams;
use memo_core::testkit::random_bytes;
use memo_sdk::local::{LocalSpec, memory_network};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn p50_ms(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let small_n = env_or("MEMO_PUTS_SMALL", 200) as usize;
    let large_mib = env_or("MEMO_PUTS_LARGE_MIB", 64) as usize;
    let label = std::env::var("MEMO_PUTS_LABEL").unwrap_or_else(|_| "this build".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let spec = LocalSpec {
        params: CodecParams {
            chunk_size: 1 << 20,
            data_shards: 4,
            parity_shards: 2,
        },
        ..LocalSpec::default()
    };
    rt.block_on(async {
        let (_mem, net) = memory_network(&spec).await.expect("network");
        let alice = net.user("alice").expect("alice");
        let bob = net.user("bob").expect("bob");
        let mut times: [Vec<Duration>; 3] = Default::default();
        for i in 0..small_n {
            let mut d = random_bytes(1024, 5);
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            for (k, who) in [alice, alice, bob].into_iter().enumerate() {
                let t = Instant::now();
                who.put_bytes(&format!("s{i}"), &d).await.expect("put");
                times[k].push(t.elapsed());
            }
        }
        let large = random_bytes(large_mib << 20, 99);
        let mut big = [0.0f64; 3];
        for (k, who) in [alice, alice, bob].into_iter().enumerate() {
            let t = Instant::now();
            who.put_bytes("large", &large).await.expect("put");
            big[k] = t.elapsed().as_secs_f64() * 1e3;
        }
        let [a, b, c] = &mut times;
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.0} ({:.0} MiB/s) | {:.0} | {:.0} |",
            p50_ms(a),
            p50_ms(b),
            p50_ms(c),
            big[0],
            large_mib as f64 / big[0] * 1e3,
            big[1],
            big[2],
        );
    });
}

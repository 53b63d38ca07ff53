//! Put and get throughput through a devnet of real processes on loopback, beside the in-process
//! pipeline's throughput on the same data in the same run.
//!
//! `cargo bench -p memo-refnode --bench devnet` (sizes in MiB: `MEMO_BENCH_SIZES=64,1024`).

use memo_core::codec::{CodecParams, ConvergenceDomain, Decoder, Encoder, MemoryShards};
mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use std::time::Instant;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut s = seed | 1;
    for w in v.chunks_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        w.copy_from_slice(&s.to_le_bytes()[..w.len()]);
    }
    v
}

/// With `MEMO_BENCH_MARKS=1`, prints each phase's wall-clock start and end (Unix seconds) to
/// stderr, to cut a system-wide profile (`perf record -a -k CLOCK_REALTIME`) into phases.
fn mark(phase: &str) {
    if std::env::var_os("MEMO_BENCH_MARKS").is_some() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("mark {phase} {:.3}", t.as_secs_f64());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::var("MEMO_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 1024]);
    let devnet = harness::Devnet::start(10, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let (client, _) = common::client(&devnet, |cfg| {
            // The bench measures the codec defaults, whatever the devnet's user config says.
            cfg.params = CodecParams::default();
            if let Some(n) = std::env::var("MEMO_BENCH_UPLOADS").ok().and_then(|v| v.parse().ok()) {
                cfg.uploads = n;
            }
            if let Some(n) = std::env::var("MEMO_BENCH_WINDOW").ok().and_then(|v| v.parse().ok()) {
                cfg.parallelism.window = n;
            }
        })
        .await?;
        println!(
            "devnet: 1 keeper and 10 provider processes on loopback (libp2p TCP+Noise+yamux, shard files without per-shard fsync: devnet default), RS 4+2, {} KiB chunks",
            CodecParams::default().chunk_size / 1024
        );
        println!("{:>8} {:>16} {:>16} {:>16} {:>16} {:>8} {:>8}", "MiB", "pipeline enc", "devnet put", "pipeline dec", "devnet get", "put %", "get %");
        for (i, mib) in sizes.iter().enumerate() {
            let data = random(mib << 20, 0x5eed + i as u64);
            // In-process pipeline on the same data: encode into memory, decode back.
            let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::default())?;
            let shards = MemoryShards::new();
            mark("encode");
            let t = Instant::now();
            let obj = enc.encode_reader(&data[..], Some(data.len() as u64), &mut |_| {}, &mut |c| {
                shards.insert_chunk(&c);
                Ok(())
            })?;
            let p_enc = *mib as f64 / t.elapsed().as_secs_f64();
            mark("decode");
            let t = Instant::now();
            let back = Decoder::default().decode_to_vec(&shards, &obj)?;
            let p_dec = *mib as f64 / t.elapsed().as_secs_f64();
            assert!(back == data);
            drop((back, shards));
            // Through the devnet.
            mark("put");
            let t = Instant::now();
            let put = client.put(&format!("bench-{mib}"), &data[..], Some(data.len() as u64), &mut |_| {}).await?;
            let d_put = *mib as f64 / t.elapsed().as_secs_f64();
            mark("get");
            let t = Instant::now();
            let mut out = Vec::with_capacity(data.len());
            client.get(&put.id.to_hex(), None, &mut out, &mut |_| {}).await?;
            let d_get = *mib as f64 / t.elapsed().as_secs_f64();
            mark("end");
            if out != data {
                return Err("devnet returned different bytes".into());
            }
            client.delete(&put.id.to_hex()).await?;
            println!(
                "{mib:>8} {:>11.0} MiB/s {:>11.0} MiB/s {:>11.0} MiB/s {:>11.0} MiB/s {:>7.0}% {:>7.0}%",
                p_enc, d_put, p_dec, d_get, 100.0 * d_put / p_enc, 100.0 * d_get / p_dec
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    drop(devnet);
    result
}

//! Put latency as a user sees it: the `memo` command line against a devnet of real processes,
//! one process per command, for small files, a tree of small files (`put -r`, several files at
//! once) and one 64 MiB file, at each block time asked for (a put waits for one ledger block:
//! its storage orders).
//!
//! `cargo bench -p memo-refnode --bench latency` (block times in ms: `MEMO_BENCH_BLOCK_MS=500,100`;
//! small puts per block time: `MEMO_BENCH_PUTS=15`).

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use common::random;
use std::time::Instant;

/// Files in the tree stored with one `put -r`.
const TREE: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let blocks: Vec<u64> = std::env::var("MEMO_BENCH_BLOCK_MS")
        .unwrap_or_else(|_| "500,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let puts: usize = common::env("MEMO_BENCH_PUTS").unwrap_or(15);
    println!("CLI latency on a devnet: 3 keepers (Raft group), 10 providers, k = 4, m = 2");
    println!(
        "| block | 1 KiB put: median (min–max) | put -r of {TREE} 1 KiB files | 64 MiB put | 64 MiB get |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for block_ms in blocks {
        let ms = block_ms.to_string();
        let net = harness::Devnet::start_with(10, 3, &["--block-ms", &ms]);
        let dir = net.dir.path();
        let run = |args: &[&str]| -> Result<f64, Box<dyn std::error::Error>> {
            let t = Instant::now();
            let out = net.memo("alice", args);
            let secs = t.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(
                    format!("memo {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
            Ok(secs)
        };
        let warm = dir.join("warm.bin");
        std::fs::write(&warm, random(1024, 1))?;
        run(&["put", warm.to_str().unwrap_or_default(), "--name", "warm"])?;
        let mut small = Vec::with_capacity(puts);
        for i in 0..puts {
            let f = dir.join(format!("small-{i}.bin"));
            std::fs::write(&f, random(1024, 100 + i as u64))?;
            small.push(run(&["put", f.to_str().unwrap_or_default()])?);
        }
        small.sort_by(f64::total_cmp);
        let tree = dir.join("tree");
        std::fs::create_dir_all(&tree)?;
        for i in 0..TREE {
            std::fs::write(tree.join(format!("f{i}")), random(1024, 1_000 + i as u64))?;
        }
        let tree_put = run(&["put", "-r", tree.to_str().unwrap_or_default()])?;
        let big = dir.join("big.bin");
        std::fs::write(&big, random(64 << 20, 7))?;
        let put = run(&["put", big.to_str().unwrap_or_default(), "--name", "big"])?;
        let out = dir.join("big.out");
        let get = run(&["get", "big", "-o", out.to_str().unwrap_or_default()])?;
        println!(
            "| {block_ms} ms | {:.3} s ({:.3}–{:.3}) | {tree_put:.2} s ({:.0} files/s) | {put:.2} s ({:.0} MiB/s) | {get:.2} s ({:.0} MiB/s) |",
            small[small.len() / 2],
            small[0],
            small[small.len() - 1],
            TREE as f64 / tree_put,
            64.0 / put,
            64.0 / get
        );
    }
    Ok(())
}

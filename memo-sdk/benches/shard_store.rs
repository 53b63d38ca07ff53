//! Shard bytes on disk: one file per shard (`FsShardStore`) against redb blobs, durable writes.
//!
//! Writes N shards of 256 KiB (a 1 MiB chunk's shard with k = 4) one durable put each, reads
//! them all back, purges every other one, and reports throughput and the disk space held after
//! the purge (what a purge gives back when the survivors are spread through the store).
//!
//! A second table is the disk's ceiling for the devnet bench: 1 MiB shards (the devnet's, a
//! 4 MiB chunk with k = 4), written directly without fsync (the devnet's setting), then read
//! back the same way, in MiB/s: by 1, 2 and 4 threads each with a store of its own, and in the
//! devnet's pattern (10 stores, 4, 8 and 16 threads; see `ceiling`). Every devnet put writes its shards
//! and every get reads k of them, so devnet throughput cannot exceed these figures (shard
//! bytes, not object bytes) however fast the CPU side is.
//!
//! Run: `cargo bench -p memo-sdk --bench shard_store` (`MEMO_BENCH_SHARDS` sets N, default 400).

use memo_core::ShardId;
use memo_core::ownership::ShardStore;
use memo_sdk::store::FsShardStore;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::time::Instant;

const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("shards");
const SHARD: usize = 256 * 1024;

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

fn main() {
    let n: usize = std::env::var("MEMO_BENCH_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let shards: Vec<(ShardId, Vec<u8>)> = (0..n as u32)
        .map(|i| {
            let b: Vec<u8> = (0..SHARD)
                .map(|j| (j as u32 ^ i.wrapping_mul(2654435761)) as u8)
                .collect();
            (ShardId::of(&b), b)
        })
        .collect();
    let mb = (n * SHARD) as f64 / 1e6;
    let dir = tempfile::tempdir().expect("temp");
    println!(
        "{n} shards of {} KiB, one write each (durable unless the row says no fsync)\n",
        SHARD / 1024
    );
    println!(
        "| store | put MB/s | get MB/s | delete shards/s | disk after puts | disk after purging every other shard |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");

    // One file per shard: written directly (the default on Linux) or through the page cache,
    // durable (fsync per shard) or not (the devnet's setting).
    for (label, direct, sync) in [
        ("file per shard, direct", true, true),
        ("file per shard, page cache", false, true),
        ("file per shard, direct, no fsync", true, false),
        ("file per shard, page cache, no fsync", false, false),
    ] {
        let root = dir.path().join(label.replace([' ', ','], "_"));
        let fs = FsShardStore::open(&root)
            .expect("open")
            .with_direct_io(direct)
            .with_sync(sync);
        let t = Instant::now();
        for (id, b) in &shards {
            fs.put(id, b).expect("put");
        }
        let put = mb / t.elapsed().as_secs_f64();
        let full = dir_bytes(&root);
        let t = Instant::now();
        for (id, _) in &shards {
            assert!(fs.get(id).expect("get").is_some());
        }
        let get = mb / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (id, _) in shards.iter().step_by(2) {
            fs.delete(id).expect("delete");
        }
        let del = n.div_ceil(2) as f64 / t.elapsed().as_secs_f64();
        let half = dir_bytes(&root);
        let label = if direct && !fs.direct_io() {
            format!("{label} (refused: page cache)")
        } else {
            label.to_string()
        };
        println!(
            "| {label} | {put:.0} | {get:.0} | {del:.0} | {:.1} MB | {:.1} MB |",
            full as f64 / 1e6,
            half as f64 / 1e6
        );
    }

    // redb blobs.
    let path = dir.path().join("blobs.redb");
    let db = Database::create(&path).expect("create");
    let t = Instant::now();
    for (id, b) in &shards {
        let mut txn = db.begin_write().expect("txn");
        txn.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut tab = txn.open_table(BLOBS).expect("table");
            tab.insert(id.as_bytes(), b.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let put = mb / t.elapsed().as_secs_f64();
    let full = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    {
        let txn = db.begin_read().expect("read");
        let tab = txn.open_table(BLOBS).expect("table");
        for (id, b) in &shards {
            let v = tab.get(id.as_bytes()).expect("get").expect("present");
            assert_eq!(ShardId::of(v.value()), *id);
            assert_eq!(v.value().len(), b.len());
        }
    }
    let get = mb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (id, _) in shards.iter().step_by(2) {
        let txn = db.begin_write().expect("txn");
        {
            let mut tab = txn.open_table(BLOBS).expect("table");
            tab.remove(id.as_bytes()).expect("remove");
        }
        txn.commit().expect("commit");
    }
    let del = n.div_ceil(2) as f64 / t.elapsed().as_secs_f64();
    let half = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "| redb blobs | {put:.0} | {get:.0} | {del:.0} | {:.1} MB | {:.1} MB |",
        full as f64 / 1e6,
        half as f64 / 1e6
    );
    ceiling(dir.path());
}

/// The disk's ceiling for the devnet: 1 MiB shards, direct writes without fsync, then direct
/// reads in the order written. First by 1, 2 and 4 threads, each with a store of its own, so
/// each store's files are written and read back-to-back. Then as the devnet's ten providers
/// see them: 1,024 shards dealt in turn to 10 stores (shard i to store i mod 10, as a chunk's
/// shards go to distinct providers), with 4, 8 and 16 threads each taking every 4th, 8th or
/// 16th shard, so every store is written and read by many threads at once and the reads
/// move from store to store as a get's do.
fn ceiling(dir: &Path) {
    const MIB: usize = 1 << 20;
    const PER_THREAD: usize = 256;
    println!("\nDisk ceiling for the devnet: 1 MiB shards, direct I/O, no fsync (MiB/s)\n");
    println!("| stores | threads | shards | put | get |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let layouts = [
        (1, 1, PER_THREAD),
        (2, 2, 2 * PER_THREAD),
        (4, 4, 4 * PER_THREAD),
    ]
    .into_iter()
    .chain([4, 8, 16].map(|threads| (10, threads, 1024)));
    for (n, (stores, threads, count)) in layouts.enumerate() {
        let stores: Vec<FsShardStore> = (0..stores)
            .map(|s| {
                let root = dir.join(format!("ceiling-{n}-{s}"));
                FsShardStore::open(&root).expect("open").with_sync(false)
            })
            .collect();
        // Shard i goes to store i mod stores and is written, then read, by thread i mod threads.
        let shards: Vec<(ShardId, Vec<u8>)> = (0..count)
            .map(|i| {
                let mut b = vec![0u8; MIB];
                blake3::Hasher::new()
                    .update(&((n * 1_000_000 + i) as u64).to_le_bytes())
                    .finalize_xof()
                    .fill(&mut b);
                (ShardId::of(&b), b)
            })
            .collect();
        let run = |f: &(dyn Fn(&FsShardStore, &ShardId, &[u8]) + Sync)| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for first in 0..threads {
                    let (stores, shards) = (&stores, &shards);
                    s.spawn(move || {
                        for i in (first..count).step_by(threads) {
                            let (id, b) = &shards[i];
                            f(&stores[i % stores.len()], id, b);
                        }
                    });
                }
            });
            count as f64 / t.elapsed().as_secs_f64()
        };
        let put = run(&|s, id, b| {
            assert!(s.put(id, b).expect("put"));
        });
        let get = run(&|s, id, b| {
            assert_eq!(s.get(id).expect("get").map(|v| v.len()), Some(b.len()));
        });
        let refused = stores.iter().any(|s| !s.direct_io());
        let note = if refused { " (direct I/O refused)" } else { "" };
        println!(
            "| {} | {threads}{note} | {count} | {put:.0} | {get:.0} |",
            stores.len()
        );
    }
}

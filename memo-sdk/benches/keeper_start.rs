//! Keeper start-up with and without a checkpoint (issue #16/#17): a sequencing keeper's data
//! dir holds a durable op log of `MEMO_BENCH_OPS` operations (default 100000, from
//! `testkit::keeper_workload`: puts with receipts, re-puts, deduplicated puts, deletes and
//! keeper marks). Measured:
//! - the checkpoint's cost: copying the state (under the keeper's state lock, what the log
//!   follower waits for), serializing the copy and writing the file (temp file, fsync,
//!   rename, fsync of the dir; both outside the lock), and its size;
//! - start-up until the keeper has applied the whole log: replaying it from 0 (no checkpoint)
//!   and loading the checkpoint at its end;
//! - applying the whole log with a checkpoint every 10000 operations against none.
//!
//! Each start is measured `MEMO_BENCH_ROUNDS` times (default 3); the figures are the median.
//!
//! Run: `cargo bench -p memo-sdk --bench keeper_start`

use memo_core::Keypair;
use memo_core::objects::SignedOp;
use memo_core::transport::MemoryNetwork;
use memo_sdk::keeper::KeeperConfig;
use memo_sdk::keeper::checkpoint::{self, CHECKPOINT_FILE, CheckpointHeader};
use memo_sdk::keeper::node::KeeperNode;
use memo_sdk::replication::OpLog;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// As in the `memo` binary (see `memo_sdk::alloc`).
#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn start(dir: &Path, keepers: Vec<memo_core::AccountId>, every: u64) -> KeeperNode {
    let key = Keypair::from_seed("bench-keeper");
    let net = MemoryNetwork::new();
    net.set_up(key.account());
    let config = KeeperConfig {
        keepers,
        checkpoint_every: every,
        ..KeeperConfig::default()
    };
    KeeperNode::sequencer(
        key.clone(),
        Arc::new(net.join(key.account())),
        dir,
        config,
        None,
    )
    .expect("keeper starts")
}

async fn append(log: &dyn OpLog, ops: &[SignedOp]) {
    for batch in ops.chunks(1024) {
        for r in futures::future::join_all(batch.iter().map(|op| log.append(op.clone()))).await {
            r.expect("append");
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let n = env("MEMO_BENCH_OPS", 100_000);
    let rounds = env("MEMO_BENCH_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t = Instant::now();
    let w = memo_sdk::testkit::keeper_workload("bench", n);
    println!(
        "workload: {n} operations generated in {}",
        secs(t.elapsed())
    );
    let keepers = vec![w.keeper];
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(CHECKPOINT_FILE);
    rt.block_on(async {
        // Fill the log, applying it without checkpoints, then with one every 10000.
        let node = start(dir.path(), keepers.clone(), 0);
        let t = Instant::now();
        append(node.log.as_ref(), &w.ops).await;
        node.keeper.wait_applied(n as u64).await;
        println!(
            "appended and applied {n} operations (no periodic checkpoint) in {}",
            secs(t.elapsed())
        );
        // The checkpoint at the end: a copy of the state under the lock, then its serialization
        // and the write outside it.
        let header = CheckpointHeader {
            position: n as u64,
            last: [0; 32],
            default_quota: KeeperConfig::default().default_quota,
        };
        let t = Instant::now();
        let copy = node.keeper.inspect(|o| o.clone());
        let copied = t.elapsed();
        let t = Instant::now();
        let bytes = checkpoint::encode(&header, &copy);
        let encode = t.elapsed();
        drop(copy);
        let scratch = dir.path().join("scratch.checkpoint");
        let t = Instant::now();
        checkpoint::write(&scratch, &bytes).expect("write");
        let write = t.elapsed();
        let chunks = node.keeper.inspect(|o| o.chunk_count());
        println!(
            "checkpoint of {n} operations ({chunks} chunks): {:.1} MiB; the state copied under \
             the lock in {}, serialized outside it in {}, written (fsync'd) in {}",
            bytes.len() as f64 / (1 << 20) as f64,
            secs(copied),
            secs(encode),
            secs(write)
        );
        let t = Instant::now();
        let back = checkpoint::decode(&bytes).expect("decode");
        println!("decoded (checksum + state) in {}", secs(t.elapsed()));
        assert!(node.keeper.inspect(|o| *o == back.state));
        node.shutdown().await;

        let replay_dir = tempfile::tempdir().expect("temp dir");
        let node = start(replay_dir.path(), keepers.clone(), 10_000);
        let t = Instant::now();
        append(node.log.as_ref(), &w.ops).await;
        node.keeper.wait_applied(n as u64).await;
        println!(
            "appended and applied {n} operations with a checkpoint every 10000 in {}",
            secs(t.elapsed())
        );
        node.shutdown().await;

        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..rounds {
            // Without a checkpoint: the whole log is replayed.
            std::fs::remove_file(&path).expect("checkpoint written at shutdown");
            let t = Instant::now();
            let node = start(dir.path(), keepers.clone(), 0);
            node.keeper.wait_applied(n as u64).await;
            cold.push(t.elapsed());
            assert_eq!(node.keeper.resumed_from(), 0);
            node.shutdown().await;
            // With the checkpoint the shutdown just wrote.
            let t = Instant::now();
            let node = start(dir.path(), keepers.clone(), 0);
            node.keeper.wait_applied(n as u64).await;
            warm.push(t.elapsed());
            assert_eq!(node.keeper.resumed_from(), n as u64);
            node.shutdown().await;
        }
        println!(
            "start-up to {n} operations applied (median of {rounds}): replay from 0 {}, \
             from the checkpoint {}",
            secs(median(cold)),
            secs(median(warm))
        );
    });
}

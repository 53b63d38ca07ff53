//! The keepers' op log: durable appends (fsync'd, group-committed) at several concurrency
//! levels, a follower's catch-up over the in-memory transport, and the latency of one
//! operation appended through a follower until that follower has applied it.
//!
//! `cargo bench -p memo-sdk --bench oplog` (set `OPLOG_OPS` to change the op count).

use memo_core::objects::{ObjectOp, OpEnvelope, SignedOp};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{Keypair, ObjectId, Signed};
use memo_sdk::node::{Service, serve};
use memo_sdk::replication::{DurableOpLog, OpLog, OpLogService, RemoteOpLog, RemoteOpLogConfig};
use std::sync::Arc;
use std::time::Instant;

fn ops(n: usize) -> Vec<SignedOp> {
    let kp = Keypair::from_seed("bench-user");
    (0..n)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Signed::sign(
                &kp,
                &OpEnvelope::new(
                    ObjectOp::Delete {
                        object: ObjectId(id),
                    },
                    i as u64,
                    u64::MAX,
                ),
            )
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("OPLOG_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = ops(n);
    println!(
        "op log benchmark: {n} signed operations (~{} bytes each)",
        memo_core::wire::encode(&all[0]).len()
    );
    println!("durable appends (each returns after its commit is fsync'd):");
    for concurrency in [1usize, 8, 64, 256] {
        let log = DurableOpLog::open(&dir.path().join(format!("c{concurrency}"))).expect("open");
        let count = if concurrency == 1 { n.min(500) } else { n };
        let chunks: Vec<Vec<SignedOp>> = all[..count]
            .chunks(count.div_ceil(concurrency))
            .map(<[_]>::to_vec)
            .collect();
        let t = Instant::now();
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let log = log.clone();
                tokio::spawn(async move {
                    for op in chunk {
                        log.append(op).await.expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  {concurrency:>4} appenders: {:>8.0} appends/s  {:>7.1} µs/append  {:>6.1} appends per fsync ({} commits)",
            count as f64 / secs,
            secs * 1e6 / count as f64,
            count as f64 / log.commits() as f64,
            log.commits()
        );
    }

    // A follower catching up on a sequencer's log over the in-memory transport.
    let seq_log = DurableOpLog::open(&dir.path().join("catchup-seq")).expect("open");
    let tasks: Vec<_> = all
        .chunks(n.div_ceil(64))
        .map(|c| {
            let (log, c) = (seq_log.clone(), c.to_vec());
            tokio::spawn(async move {
                for op in c {
                    log.append(op).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let net = MemoryNetwork::new();
    let seq = Keypair::from_seed("bench-seq");
    let seq_arc: Arc<dyn OpLog> = Arc::new(seq_log.clone());
    tokio::spawn(serve(
        Arc::new(net.join(seq.account())),
        vec![OpLogService::new(
            seq_arc,
            ["memory replica", "durable replica"].map(|l| Keypair::from_seed(l).account()),
        ) as Arc<dyn Service>],
    ));
    for (label, durable) in [("memory replica", false), ("durable replica", true)] {
        let me: Arc<dyn Transport> = Arc::new(net.join(Keypair::from_seed(label).account()));
        let cache = durable.then(|| {
            DurableOpLog::open(&dir.path().join(format!("replica-{label}"))).expect("open")
        });
        let t = Instant::now();
        let follower =
            RemoteOpLog::start_with(me, seq.account(), cache, RemoteOpLogConfig::default());
        follower.wait_replicated(n as u64).await;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "follower catch-up ({label}, signatures verified): {:>8.0} entries/s  ({:.1} ms for {n})",
            n as f64 / secs,
            secs * 1e3
        );
    }

    // Round trip: append through a follower, wait until the follower holds it.
    let me: Arc<dyn Transport> = Arc::new(net.join(Keypair::from_seed("rt").account()));
    let cache = DurableOpLog::open(&dir.path().join("replica-rt")).expect("open");
    let follower =
        RemoteOpLog::start_with(me, seq.account(), Some(cache), RemoteOpLogConfig::default());
    follower.wait_replicated(n as u64).await;
    let mut extra = ops(n + 400).split_off(n);
    let forward_only = extra.split_off(200);
    let t = Instant::now();
    for op in &forward_only {
        follower.append(op.clone()).await.expect("append");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "append via follower (forwarded, fsync'd by the sequencer): {:>7.0} µs per op",
        secs * 1e6 / forward_only.len() as f64
    );
    follower.wait_replicated((n + 200) as u64).await;
    let t = Instant::now();
    for op in &extra {
        let pos = follower.append(op.clone()).await.expect("append");
        follower.wait_replicated(pos + 1).await;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "append via follower until replicated there (2 fsyncs): {:>7.0} µs per op",
        secs * 1e6 / extra.len() as f64
    );
}

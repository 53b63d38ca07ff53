//! The keepers' Raft group ([`RaftOpLog`]): committed operations per second with 1, 3 and 5
//! keepers under concurrent appenders, with p50 and p99 commit latency, against the
//! single-sequencer durable log in the same run; and failover time (leader stopped → first
//! write accepted through a follower) over 10 trials.
//!
//! Every keeper stores its Raft log in redb with an fsync per commit, on this machine's one
//! disk, and the keepers talk over the in-memory transport (no network latency).
//!
//! `cargo bench -p memo-sdk --bench group` (`GROUP_OPS` sets the operations per run).

use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair};
use memo_sdk::node::{Service, serve};
use memo_sdk::replication::{DurableOpLog, GroupConfig, OpLog, OpLogService, RaftOpLog};
use memo_sdk::testkit::numbered_op;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

fn main() {
    let n: u64 = std::env::var("GROUP_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}

/// One keeper of a benchmark group: its Raft node and the task serving it.
struct Member {
    account: AccountId,
    log: Arc<RaftOpLog>,
    serving: JoinHandle<()>,
}

async fn start_member(
    net: &MemoryNetwork,
    dir: &Path,
    account: AccountId,
    keepers: &[AccountId],
) -> Member {
    net.set_up(account);
    let t: Arc<dyn Transport> = Arc::new(net.join(account));
    let log = RaftOpLog::open(
        account,
        t.clone(),
        &dir.join(account.to_hex()),
        keepers,
        GroupConfig::default(),
    )
    .await
    .expect("open");
    let as_log: Arc<dyn OpLog> = log.clone();
    let services: Vec<Arc<dyn Service>> =
        vec![log.service(), OpLogService::new(as_log, keepers.to_vec())];
    let serving = tokio::spawn(serve(t, services));
    Member {
        account,
        log,
        serving,
    }
}

async fn stop_member(net: &MemoryNetwork, m: Member) {
    net.set_down(m.account);
    m.log.shutdown().await;
    m.serving.abort();
}

fn keepers(n: usize) -> Vec<AccountId> {
    (0..n)
        .map(|i| Keypair::from_seed(&format!("bench-keeper-{i}")).account())
        .collect()
}

async fn group(net: &MemoryNetwork, dir: &Path, n: usize) -> Vec<Member> {
    let ids = keepers(n);
    let mut members = Vec::new();
    for id in &ids {
        members.push(start_member(net, dir, *id, &ids).await);
    }
    members[0]
        .log
        .wait_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    members
}

fn leader_of(members: &[Member]) -> usize {
    let leader = members[0].log.status().leader.expect("a leader");
    members
        .iter()
        .position(|m| m.account == leader)
        .expect("the leader is a member")
}

/// `n` appends from `appenders` concurrent tasks to `log`: (ops/s, p50, p99).
async fn load(log: Arc<dyn OpLog>, n: u64, appenders: u64, salt: u32) -> (f64, Duration, Duration) {
    // Distinct operations per run (the log checks signatures, not nonces).
    let base = u32::try_from(n).expect("op count") * salt;
    let t = Instant::now();
    let tasks: Vec<JoinHandle<Vec<Duration>>> = (0..appenders)
        .map(|a| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = a;
                while i < n {
                    let o = numbered_op(base + i as u32);
                    let s = Instant::now();
                    log.append(o).await.expect("append");
                    lat.push(s.elapsed());
                    i += appenders;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let secs = t.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (n as f64 / secs, at(0.50), at(0.99))
}

fn row(what: &str, (rate, p50, p99): (f64, Duration, Duration)) {
    println!(
        "  {what:<34} {rate:>8.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

async fn run(n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    println!("keeper group benchmark: {n} signed operations per run, fsync per commit");
    println!("committed operations (appended, replicated to a quorum, applied):");
    for appenders in [1u64, 32] {
        let count = if appenders == 1 { n.min(300) } else { n };
        // The peer: today's single sequencer, its durable log with group commit.
        let seq = DurableOpLog::open(&dir.path().join(format!("seq-{appenders}"))).expect("open");
        row(
            &format!("sequencer, {appenders} appenders"),
            load(Arc::new(seq), count, appenders, 1).await,
        );
        for size in [1usize, 3, 5] {
            let net = MemoryNetwork::new();
            let gdir = dir.path().join(format!("g{size}-{appenders}"));
            let members = group(&net, &gdir, size).await;
            let leader = leader_of(&members);
            row(
                &format!("group of {size}, {appenders} appenders, leader"),
                load(members[leader].log.clone(), count, appenders, 2).await,
            );
            if size > 1 {
                let follower = (leader + 1) % size;
                row(
                    &format!("group of {size}, {appenders} appenders, follower"),
                    load(members[follower].log.clone(), count, appenders, 3).await,
                );
            }
            for m in members {
                stop_member(&net, m).await;
            }
        }
    }

    let trials = 10;
    println!(
        "failover, group of 3, default timing (heartbeat 100 ms, election 400-800 ms), {trials} trials:"
    );
    let net = MemoryNetwork::new();
    let gdir = dir.path().join("failover");
    let mut members = group(&net, &gdir, 3).await;
    let ids = keepers(3);
    let mut times = Vec::new();
    for trial in 0..trials {
        let leader = leader_of(&members);
        let follower = members[(leader + 1) % 3].log.clone();
        // A write is flowing before the kill.
        follower
            .append(numbered_op(1_000_000 + trial * 2))
            .await
            .expect("append");
        let gone = members.remove(leader);
        let account = gone.account;
        let killed = Instant::now();
        stop_member(&net, gone).await;
        follower
            .append(numbered_op(1_000_001 + trial * 2))
            .await
            .expect("append after the kill");
        times.push(killed.elapsed());
        // The old leader restarts from its data dir for the next trial.
        let back = start_member(&net, &gdir, account, &ids).await;
        members.insert(leader, back);
        for m in &members {
            m.log.sync_len().await.expect("caught up");
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  kill -> first accepted write: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    for m in members {
        stop_member(&net, m).await;
    }
}

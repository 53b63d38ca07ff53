//! The keepers' Raft group ([`RaftOpLog`]): committed operations per second with 1, 3 and 5
//! keepers under concurrent appenders, with p50 and p99 commit latency, against the
//! single-sequencer durable log in the same run; and failover time (leader stopped → first
//! write accepted through a follower) over 10 trials; and, with the ledger on the group's log,
//! ledger failover (leader stopped → first transaction sent through a follower included).
//!
//! Every keeper stores its Raft log in redb with an fsync per commit, on this machine's one
//! disk, and the keepers talk over the in-memory transport (no network latency).
//!
//! `cargo bench -p memo-sdk --bench group` (`GROUP_OPS` sets the operations per run).

use memo_core::contract::{Call, Genesis, Params, SettlementCall};
use memo_core::proof::MerkleVerifier;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair};
use memo_sdk::ledger::tx::TxSender;
use memo_sdk::ledger::{LedgerService, LocalChain};
use memo_sdk::node::{Service, serve};
use memo_sdk::replication::{
    DurableOpLog, GroupChain, GroupConfig, OpLog, OpLogService, RaftOpLog,
};
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
    start_member_with(net, dir, account, keepers, None).await
}

/// A member; with `chain` (the genesis) it keeps the group's ledger, a block every 100 ms.
async fn start_member_with(
    net: &MemoryNetwork,
    dir: &Path,
    account: AccountId,
    keepers: &[AccountId],
    chain: Option<&Genesis>,
) -> Member {
    net.set_up(account);
    let t: Arc<dyn Transport> = Arc::new(net.join(account));
    let data = dir.join(account.to_hex());
    let chain = chain.map(|genesis| {
        std::fs::create_dir_all(&data).expect("data dir");
        let key = (0..keepers.len())
            .map(keeper_key)
            .find(|k| k.account() == account)
            .expect("a bench keeper");
        GroupChain {
            chain: Arc::new(
                LocalChain::open_group(
                    &data.join("chain.redb"),
                    genesis.clone(),
                    keepers.to_vec(),
                    key,
                    Arc::new(MerkleVerifier::new()),
                )
                .expect("chain"),
            ),
            env: memo_sdk::Env::real(),
            block_interval: Duration::from_millis(100),
        }
    });
    let log = RaftOpLog::open_with_chain(
        account,
        t.clone(),
        &data,
        keepers,
        GroupConfig::default(),
        chain,
    )
    .await
    .expect("open");
    let as_log: Arc<dyn OpLog> = log.clone();
    let mut services: Vec<Arc<dyn Service>> =
        vec![log.service(), OpLogService::new(as_log, keepers.to_vec())];
    if let Some(ledger) = log.ledger() {
        services.push(LedgerService::new(ledger));
    }
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

fn keeper_key(i: usize) -> Keypair {
    Keypair::from_seed(&format!("bench-keeper-{i}"))
}

fn keepers(n: usize) -> Vec<AccountId> {
    (0..n).map(|i| keeper_key(i).account()).collect()
}

async fn group(net: &MemoryNetwork, dir: &Path, n: usize) -> Vec<Member> {
    group_with(net, dir, n, None).await
}

async fn group_with(
    net: &MemoryNetwork,
    dir: &Path,
    n: usize,
    chain: Option<&Genesis>,
) -> Vec<Member> {
    let ids = keepers(n);
    let mut members = Vec::new();
    for id in &ids {
        members.push(start_member_with(net, dir, *id, &ids, chain).await);
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

    println!("ledger failover, group of 3, a block every 100 ms, {trials} trials:");
    let payer = Keypair::from_seed("bench-payer");
    let genesis =
        Genesis::new(5, Params::default(), [(payer.account(), 1u64 << 40)]).expect("genesis");
    let net = MemoryNetwork::new();
    let cdir = dir.path().join("ledger-failover");
    let mut members = group_with(&net, &cdir, 3, Some(&genesis)).await;
    let to = keeper_key(0).account();
    let mut times = Vec::new();
    for _ in 0..trials {
        let leader = leader_of(&members);
        let follower = members[(leader + 1) % 3].log.ledger().expect("a ledger");
        let sender = TxSender::new(payer.clone(), follower);
        let transfer = || Call::Settlement(SettlementCall::Transfer { to, amount: 1 });
        let before = sender
            .send_and_wait(vec![transfer()], Duration::from_secs(30))
            .await
            .expect("a transfer before the kill");
        assert!(before[0].is_ok(), "{before:?}");
        let gone = members.remove(leader);
        let account = gone.account;
        let killed = Instant::now();
        stop_member(&net, gone).await;
        let after = sender
            .send_and_wait(vec![transfer()], Duration::from_secs(30))
            .await
            .expect("a transfer after the kill");
        assert!(after[0].is_ok(), "{after:?}");
        times.push(killed.elapsed());
        let back = start_member_with(&net, &cdir, account, &keepers(3), Some(&genesis)).await;
        members.insert(leader, back);
        for m in &members {
            m.log.sync_len().await.expect("caught up");
        }
    }
    times.sort();
    println!(
        "  kill -> first transaction included: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    for m in members {
        stop_member(&net, m).await;
    }
}

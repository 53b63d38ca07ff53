//! Every op log backend passes memo-sdk's `OpLog` conformance suite: in memory, durable (redb),
//! a follower that forwards appends to a sequencer over the transport, and a member of a Raft
//! group of three that is not its leader.

use memo_core::Keypair;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::node::serve;
use memo_sdk::replication::{
    DurableOpLog, GroupConfig, MemoryOpLog, OpLog, OpLogService, RaftOpLog, RemoteOpLog,
};
use memo_sdk::testkit::oplog_conformance;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_op_log_conforms() {
    oplog_conformance(Arc::new(MemoryOpLog::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_op_log_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = DurableOpLog::open(&dir.path().join("oplog.redb")).expect("open");
    oplog_conformance(Arc::new(log)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_op_log_conforms() {
    let net = MemoryNetwork::new();
    let (seq, fol) = (Keypair::from_seed("seq"), Keypair::from_seed("fol"));
    let dir = tempfile::tempdir().expect("temp dir");
    let sequencer_log = DurableOpLog::open(&dir.path().join("oplog.redb")).expect("open");
    let st: Arc<dyn Transport> = Arc::new(net.join(seq.account()));
    let members = [seq.account(), fol.account()];
    tokio::spawn(serve(
        st,
        vec![OpLogService::new(Arc::new(sequencer_log), members)],
    ));
    let ft: Arc<dyn Transport> = Arc::new(net.join(fol.account()));
    oplog_conformance(Arc::new(RemoteOpLog::start(ft, seq.account()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_op_log_conforms_on_a_follower() {
    let net = MemoryNetwork::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let keepers: Vec<_> = (0..3)
        .map(|i| Keypair::from_seed(&format!("raft-{i}")).account())
        .collect();
    let mut logs = Vec::new();
    for k in &keepers {
        let t: Arc<dyn Transport> = Arc::new(net.join(*k));
        let log = RaftOpLog::open(
            *k,
            t.clone(),
            &dir.path().join(k.to_hex()),
            &keepers,
            GroupConfig::default(),
        )
        .await
        .expect("open");
        let as_log: Arc<dyn OpLog> = log.clone();
        tokio::spawn(serve(
            t,
            vec![log.service(), OpLogService::new(as_log, keepers.clone())],
        ));
        logs.push(log);
    }
    let leader = logs[0]
        .wait_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    let follower = logs
        .iter()
        .zip(&keepers)
        .find(|(_, k)| **k != leader)
        .map(|(l, _)| l.clone())
        .expect("a follower");
    oplog_conformance(follower).await;
}

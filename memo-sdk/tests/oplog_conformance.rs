//! Every op log backend passes memo-sdk's `OpLog` conformance suite: in memory, durable (redb),
//! and a follower that forwards appends to a sequencer over the transport.

use memo_core::Keypair;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::node::serve;
use memo_sdk::replication::{DurableOpLog, MemoryOpLog, OpLogService, RemoteOpLog};
use memo_sdk::testkit::oplog_conformance;
use std::sync::Arc;

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

//! Keeper checkpoints: a keeper restarted from its data dir loads its checkpoint and applies
//! only the log after it, reaching exactly the state of a keeper that replays the whole log;
//! a damaged checkpoint, one ahead of the log, or one of another log is ignored (full replay).

use futures::StreamExt;
use memo_core::objects::SignedOp;
use memo_core::transport::MemoryNetwork;
use memo_core::{AccountId, Keypair};
use memo_sdk::keeper::checkpoint::{self, CHECKPOINT_FILE};
use memo_sdk::keeper::node::{KeeperNode, OPLOG_FILE};
use memo_sdk::keeper::{Keeper, KeeperConfig};
use memo_sdk::replication::{DurableOpLog, MemoryOpLog, OpLog};
use memo_sdk::testkit::keeper_workload;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Guards against a hang: a test that stops making progress fails instead of blocking.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress in 60 s"))
}

const EVERY: u64 = 1000;

fn config(keeper: AccountId) -> KeeperConfig {
    KeeperConfig {
        keepers: vec![keeper],
        checkpoint_every: EVERY,
        ..KeeperConfig::default()
    }
}

/// The sequencing keeper over `dir`, on its own in-memory network.
fn start(dir: &Path, keeper: AccountId) -> KeeperNode {
    let key = Keypair::from_seed("checkpoint-test-keeper");
    let net = MemoryNetwork::new();
    net.set_up(key.account());
    KeeperNode::sequencer(
        key.clone(),
        Arc::new(net.join(key.account())),
        dir,
        config(keeper),
        None,
    )
    .unwrap()
}

/// Appends `ops` to `log`, many at once (their order in the log is the log's).
async fn append(log: &dyn OpLog, ops: &[SignedOp]) {
    for batch in ops.chunks(256) {
        for r in futures::future::join_all(batch.iter().map(|op| log.append(op.clone()))).await {
            r.unwrap();
        }
    }
}

/// Appends `ops` to the op log in `dir` while no keeper runs there.
async fn append_offline(dir: &Path, ops: &[SignedOp]) {
    let log = DurableOpLog::open(&dir.join(OPLOG_FILE)).unwrap();
    append(&log, ops).await;
}

/// Every entry of the op log in `dir`, in order (no keeper runs there).
async fn entries(dir: &Path) -> Vec<SignedOp> {
    let log = DurableOpLog::open(&dir.join(OPLOG_FILE)).unwrap();
    let n = log.len() as usize;
    log.follow(0).take(n).map(|(_, op)| op).collect().await
}

/// Asserts `node`'s keeper holds exactly the state of a keeper without a checkpoint that
/// replays `log` (the same entries) from 0.
async fn assert_same_as_full_replay(node: &KeeperNode, log: Vec<SignedOp>, keeper: AccountId) {
    let n = log.len() as u64;
    let replay = MemoryOpLog::new();
    append(&replay, &log).await;
    let key = Keypair::from_seed("checkpoint-test-reference");
    let net = MemoryNetwork::new();
    net.set_up(key.account());
    let reference = Keeper::new(
        key.clone(),
        Arc::new(net.join(key.account())),
        Arc::new(replay),
        config(keeper),
    );
    let task = reference.start();
    within("full replay", reference.wait_applied(n)).await;
    within("restarted keeper", node.keeper.wait_applied(n)).await;
    assert_eq!(node.keeper.applied(), n);
    let same = node
        .keeper
        .inspect(|loaded| reference.inspect(|replayed| loaded == replayed));
    assert!(
        same,
        "the restarted keeper's state differs from a full replay"
    );
    // Not a vacuous comparison: the state has objects, references, holdings and marks.
    node.keeper.inspect(|o| {
        assert!(o.chunk_count() > 100, "{} chunks", o.chunk_count());
        assert!(o.holders().count() == 6);
        assert!(o.degraded().count() > 0);
    });
    task.abort();
}

/// A keeper applies 2500 operations with a checkpoint every 1000, shuts down (writing one
/// at 2500); 500 more are appended meanwhile. Restarted, it loads the checkpoint, follows
/// from 2500, and holds the state of a full replay of 3000. Restarted from an earlier
/// periodic checkpoint, it follows from there, to the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_checkpoint_and_applies_only_the_rest() {
    let w = keeper_workload("restart", 3000);
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), w.keeper);
    assert_eq!(node.keeper.resumed_from(), 0);
    append(node.log.as_ref(), &w.ops[..2500]).await;
    within("applying", node.keeper.wait_applied(2500)).await;
    // The periodic checkpoints are written in the background.
    let periodic = within(
        "a periodic checkpoint",
        node.keeper.wait_checkpointed(EVERY),
    )
    .await;
    assert!(periodic >= EVERY && periodic % EVERY == 0, "{periodic}");
    let path = dir.path().join(CHECKPOINT_FILE);
    let saved = dir.path().join("periodic.checkpoint");
    std::fs::copy(&path, &saved).unwrap();
    let early = checkpoint::read(&saved).unwrap().unwrap().header.position;
    assert!((EVERY..2500).contains(&early), "{early}");
    node.shutdown().await;
    assert_eq!(
        checkpoint::read(&path).unwrap().unwrap().header.position,
        2500
    );

    append_offline(dir.path(), &w.ops[2500..]).await;
    let log = entries(dir.path()).await;
    let node = start(dir.path(), w.keeper);
    assert_eq!(
        within("resuming", async {
            node.keeper.wait_applied(2500).await;
            node.keeper.resumed_from()
        })
        .await,
        2500
    );
    assert_same_as_full_replay(&node, log.clone(), w.keeper).await;
    node.shutdown().await;

    // From the earlier checkpoint: it follows from there.
    std::fs::rename(&saved, &path).unwrap();
    let node = start(dir.path(), w.keeper);
    assert_same_as_full_replay(&node, log, w.keeper).await;
    assert_eq!(node.keeper.resumed_from(), early);
    node.shutdown().await;
}

/// Shuts a keeper down after `ops` (writing its checkpoint) and returns the checkpoint's
/// bytes.
async fn checkpointed(dir: &Path, keeper: AccountId, ops: &[SignedOp]) -> Vec<u8> {
    let node = start(dir, keeper);
    append(node.log.as_ref(), ops).await;
    within("applying", node.keeper.wait_applied(ops.len() as u64)).await;
    node.shutdown().await;
    std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap()
}

/// A damaged checkpoint (any flipped byte, or cut short) is ignored: the keeper replays the
/// log from 0, to the same state, and writes a good checkpoint again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_falls_back_to_a_full_replay() {
    let w = keeper_workload("corrupt", 1500);
    let dir = tempfile::tempdir().unwrap();
    let good = checkpointed(dir.path(), w.keeper, &w.ops).await;
    let log = entries(dir.path()).await;
    let path = dir.path().join(CHECKPOINT_FILE);
    for damage in [good.len() / 2, 3, good.len() - 1, usize::MAX] {
        let mut bad = good.clone();
        if damage == usize::MAX {
            bad.truncate(good.len() / 3);
        } else {
            bad[damage] ^= 0x10;
        }
        std::fs::write(&path, &bad).unwrap();
        let node = start(dir.path(), w.keeper);
        assert_same_as_full_replay(&node, log.clone(), w.keeper).await;
        assert_eq!(node.keeper.resumed_from(), 0, "damage at {damage}");
        node.shutdown().await;
        assert_eq!(std::fs::read(&path).unwrap().len(), good.len());
        assert!(checkpoint::read(&path).is_ok());
    }
}

/// A checkpoint beyond the log's end (the log was lost) is ignored, and so is one of
/// another log of the same length: the keeper replays the log it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_ahead_of_the_log_or_of_another_log_is_ignored() {
    let w = keeper_workload("ahead", 1200);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpointed(dir.path(), w.keeper, &w.ops).await;
    let path = dir.path().join(CHECKPOINT_FILE);

    // The log is lost and a shorter one written.
    std::fs::remove_file(dir.path().join(OPLOG_FILE)).unwrap();
    append_offline(dir.path(), &w.ops[..700]).await;
    let node = start(dir.path(), w.keeper);
    assert_same_as_full_replay(&node, entries_of(&node).await, w.keeper).await;
    assert_eq!(node.keeper.resumed_from(), 0);
    node.shutdown().await;

    // Another log as long as the checkpoint's.
    std::fs::remove_file(dir.path().join(OPLOG_FILE)).unwrap();
    std::fs::write(&path, &ckpt).unwrap();
    let other = keeper_workload("other", 1200);
    append_offline(dir.path(), &other.ops).await;
    let log = entries(dir.path()).await;
    let node = start(dir.path(), w.keeper);
    assert_same_as_full_replay(&node, log, w.keeper).await;
    assert_eq!(node.keeper.resumed_from(), 0);
    node.shutdown().await;
}

/// The entries of a running sequencer's log.
async fn entries_of(node: &KeeperNode) -> Vec<SignedOp> {
    let log = node.durable.as_ref().unwrap();
    let n = log.len() as usize;
    log.follow(0).take(n).map(|(_, op)| op).collect().await
}

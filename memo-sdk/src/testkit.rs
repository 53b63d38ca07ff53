//! Conformance suites for memo-sdk's async backend traits, for integrators to run on their own
//! backends (feature `testkit`). The sans-IO suites (`memo_core::testkit`: `ShardStore`,
//! `MetaStore`) live in memo-core.
//!
//! - [`transport_conformance`]: what every [`Transport`] must do (authenticated sender,
//!   bodies intact, many requests in flight, dropped replies, unknown peers, the size limit,
//!   a node addressing itself).
//! - [`oplog_conformance`]: what every replicated [`OpLog`] must do (consecutive positions,
//!   following from any position, concurrent appends ordered once, new entries delivered to
//!   followers).
//! - [`ledger_conformance`]: what every [`Ledger`](crate::ledger::Ledger) must do (valid
//!   transactions included in a block that carries them and applied, subscribers told of new
//!   blocks, a replayed transaction changing nothing, no block past the head).
//! - [`most_unreadable`] and [`Churn`]: ground truth and random faults for churn simulations.
//!
//! Each suite panics with a message naming the broken rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::replication::OpLog;
use bytes::Bytes;
use futures::StreamExt;
use memo_core::id::ObjectId;
use memo_core::objects::{ObjectOp, OpEnvelope, SignedOp};
use memo_core::ownership::ShardStore;
use memo_core::transport::{MAX_MESSAGE, Transport, TransportError};
use memo_core::{Keypair, Signed};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Serves requests on `t`: a body starting with `d` has its reply dropped; any other body is
/// answered with `sender account ++ body`.
fn echo_server(t: Arc<dyn Transport>) {
    tokio::spawn(async move {
        while let Some(inc) = t.next_incoming().await {
            if inc.body.first() == Some(&b'd') {
                continue; // dropping `inc` drops the reply
            }
            let mut out = inc.from.0.to_vec();
            out.extend_from_slice(&inc.body);
            let _ = inc.reply.send(Bytes::from(out));
        }
    });
}

async fn echo(from: &Arc<dyn Transport>, to: &Arc<dyn Transport>, body: Bytes) {
    let got = match from.request(to.local_id(), body.clone()).await {
        Ok(g) => g,
        Err(e) => panic!("request of {} bytes failed: {e}", body.len()),
    };
    assert!(got.len() >= 32, "reply carries the sender");
    assert_eq!(&got[..32], &from.local_id().0, "authenticated sender");
    assert!(got[32..] == body[..], "body intact");
}

/// The checks every [`Transport`] passes. `nodes` (at least three) can all reach each other
/// and nobody serves them yet; the suite serves them. Run inside a multi-threaded tokio
/// runtime.
pub async fn transport_conformance(nodes: Vec<Arc<dyn Transport>>) {
    assert!(nodes.len() >= 3, "the suite needs three nodes");
    for n in &nodes {
        echo_server(n.clone());
    }
    // Every pair, both ways, with the authenticated sender.
    for x in &nodes {
        for y in &nodes {
            if x.local_id() != y.local_id() {
                echo(
                    x,
                    y,
                    Bytes::from(format!("e{}>{}", x.local_id(), y.local_id())),
                )
                .await;
            }
        }
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // Empty and large bodies.
    echo(a, b, Bytes::new()).await;
    echo(a, b, Bytes::from(vec![b'x'; 4 << 20])).await;
    // Many in flight at once, to several peers.
    let calls = (0..48u32).map(|i| {
        let to = if i % 2 == 0 { b } else { c };
        echo(a, to, Bytes::from(format!("e{i}").repeat(i as usize + 1)))
    });
    futures::future::join_all(calls).await;
    // A dropped reply.
    assert_eq!(
        a.request(b.local_id(), Bytes::from_static(b"d")).await,
        Err(TransportError::Dropped(b.local_id())),
        "a reply the server drops"
    );
    // A peer nobody knows.
    let stranger = Keypair::from_seed("conformance-stranger").account();
    assert_eq!(
        a.request(stranger, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(stranger)),
        "a peer nobody knows"
    );
    // Over the limit: refused before sending.
    assert_eq!(
        a.request(b.local_id(), Bytes::from(vec![0u8; MAX_MESSAGE + 1]))
            .await,
        Err(TransportError::TooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        }),
        "a body over the limit"
    );
    // A node may address itself.
    echo(a, a, Bytes::from_static(b"eself")).await;
    assert_eq!(
        a.request(a.local_id(), Bytes::from_static(b"d")).await,
        Err(TransportError::Dropped(a.local_id())),
        "a dropped reply to itself"
    );
    // Still healthy afterwards.
    echo(c, a, Bytes::from_static(b"eafter")).await;
}

/// A distinct signed operation per `i`, for log suites.
pub fn numbered_op(i: u32) -> SignedOp {
    let mut object = [0u8; 32];
    object[..4].copy_from_slice(&i.to_le_bytes());
    Signed::sign(
        &Keypair::from_seed("oplog-conformance"),
        &OpEnvelope::new(
            ObjectOp::Delete {
                object: ObjectId(object),
            },
            i.into(),
            u64::MAX,
        ),
    )
}

/// How long a follower may take to see an entry that was appended (a bound against hangs;
/// real logs deliver in milliseconds).
const DELIVERY: Duration = Duration::from_secs(30);

async fn entries(log: &dyn OpLog, from: u64, n: usize) -> Vec<(u64, SignedOp)> {
    match tokio::time::timeout(DELIVERY, log.follow(from).take(n).collect::<Vec<_>>()).await {
        Ok(v) => v,
        Err(_) => panic!("following from {from}: {n} entries did not arrive"),
    }
}

/// The checks every [`OpLog`] passes. `log` is empty. Run inside a multi-threaded tokio
/// runtime.
pub async fn oplog_conformance(log: Arc<dyn OpLog>) {
    // Appends get consecutive positions from 0.
    for i in 0..5u32 {
        match log.append(numbered_op(i)).await {
            Ok(pos) => assert_eq!(pos, u64::from(i), "append {i} got position {pos}"),
            Err(e) => panic!("append {i} failed: {e}"),
        }
    }
    // Following from 0 yields every entry in order, at its position.
    let got = entries(log.as_ref(), 0, 5).await;
    for (i, (pos, op)) in got.iter().enumerate() {
        assert_eq!(*pos, i as u64, "entries come at their positions, in order");
        assert_eq!(op, &numbered_op(i as u32), "entry {i} is what was appended");
    }
    // Following from the middle starts there.
    let mid = entries(log.as_ref(), 3, 2).await;
    assert_eq!(
        mid.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![3, 4],
        "following from 3"
    );
    // Concurrent appends each get one distinct position, and all are delivered.
    let appends = (5..25u32).map(|i| {
        let log = log.clone();
        tokio::spawn(async move { log.append(numbered_op(i)).await })
    });
    let mut positions = BTreeSet::new();
    for a in futures::future::join_all(appends).await {
        match a {
            Ok(Ok(pos)) => assert!(positions.insert(pos), "position {pos} given twice"),
            Ok(Err(e)) => panic!("a concurrent append failed: {e}"),
            Err(e) => panic!("an append task failed: {e}"),
        }
    }
    assert_eq!(
        positions,
        (5..25u64).collect::<BTreeSet<_>>(),
        "concurrent appends fill positions 5 to 24"
    );
    let all = entries(log.as_ref(), 0, 25).await;
    let ops: BTreeSet<Vec<u8>> = all.iter().map(|(_, op)| op.body.clone()).collect();
    assert_eq!(ops.len(), 25, "every appended operation is in the log once");
    // A follower waiting at the end gets an entry appended later.
    let waiting = {
        let log = log.clone();
        tokio::spawn(async move { entries(log.as_ref(), 25, 1).await })
    };
    tokio::task::yield_now().await;
    match log.append(numbered_op(99)).await {
        Ok(pos) => assert_eq!(pos, 25, "the next position"),
        Err(e) => panic!("append after following failed: {e}"),
    }
    match waiting.await {
        Ok(v) => assert_eq!(v, vec![(25, numbered_op(99))], "a waiting follower's entry"),
        Err(e) => panic!("the follower task failed: {e}"),
    }
    // If the log tells its length, it tells the truth (once caught up).
    if let Some(len) = log.known_len() {
        assert!(len <= 26, "known_len {len} exceeds the 26 entries appended");
    }
}

/// A simulation's ground truth for planning faults: the most shards of any one chunk that
/// cannot be read, as `keeper` places them, if the providers in `down` were unreachable. A
/// shard is unreadable when it has no holder, its holder is in `down`, or its holder's store
/// (from `store_of`) no longer has it. A fault plan that keeps this at most m never loses data,
/// whatever the keepers know yet.
pub fn most_unreadable<S: ShardStore>(
    keeper: &crate::keeper::Keeper,
    store_of: impl Fn(&memo_core::AccountId) -> Option<S>,
    down: &BTreeSet<memo_core::AccountId>,
) -> usize {
    keeper.inspect(|o| {
        let mut seen = BTreeSet::new();
        let mut worst = 0;
        let holders: Vec<memo_core::AccountId> = o.holders().copied().collect();
        for h in &holders {
            for c in o.held_by(h) {
                if !seen.insert(*c) {
                    continue;
                }
                let Ok(Some(entry)) = o.ownership().chunk(c) else {
                    continue;
                };
                let bad = entry
                    .shards
                    .iter()
                    .filter(|s| match s.holder {
                        None => true,
                        Some(h) if down.contains(&h) => true,
                        Some(h) => !store_of(&h).is_some_and(|st| st.has(&s.id).unwrap_or(false)),
                    })
                    .count();
                worst = worst.max(bad);
            }
        }
        worst
    })
}

/// Random crashes, restarts and wiped disks for a churn simulation over a
/// [`LocalNetwork`](crate::local::LocalNetwork) whose providers' stores the caller shares
/// (`stores[i]` is provider `i`'s). A fault is applied only while no chunk would have more than
/// `m` unreadable shards ([`most_unreadable`]), so the network can always rebuild.
pub struct Churn {
    stores: Vec<Arc<memo_core::ownership::MemoryShardStore>>,
    m: usize,
    down: BTreeSet<usize>,
}

impl Churn {
    /// Churn over providers with these stores, keeping every chunk within `m` lost shards.
    pub fn new(stores: Vec<Arc<memo_core::ownership::MemoryShardStore>>, m: usize) -> Self {
        Self {
            stores,
            m,
            down: BTreeSet::new(),
        }
    }

    /// The providers that are down now.
    pub fn down(&self) -> &BTreeSet<usize> {
        &self.down
    }

    /// One epoch's faults: with even odds one provider that went down comes back with its
    /// disk; then `attempts` times a random provider crashes or has its disk wiped (even odds),
    /// unless that would put a chunk past `m` unreadable shards.
    pub fn epoch(
        &mut self,
        net: &mut crate::local::LocalNetwork<Arc<memo_core::ownership::MemoryShardStore>>,
        rng: &mut impl rand::RngExt,
        attempts: usize,
    ) {
        if let Some(&p) = self.down.iter().next().filter(|_| rng.random_bool(0.5)) {
            net.providers[p].restart();
            self.down.remove(&p);
        }
        let store_of: std::collections::BTreeMap<memo_core::AccountId, _> = net
            .providers
            .iter()
            .zip(&self.stores)
            .map(|(p, s)| (p.account(), s.clone()))
            .collect();
        for _ in 0..attempts {
            let p = rng.random_range(0..net.providers.len());
            if self.down.contains(&p) {
                continue;
            }
            let mut trial: BTreeSet<memo_core::AccountId> = self
                .down
                .iter()
                .map(|&i| net.providers[i].account())
                .collect();
            trial.insert(net.providers[p].account());
            if most_unreadable(&net.keepers[0], |a| store_of.get(a).cloned(), &trial) > self.m {
                continue;
            }
            if rng.random_bool(0.5) {
                net.providers[p].stop();
                self.down.insert(p);
            } else {
                for id in self.stores[p].list().unwrap_or_default() {
                    let _ = self.stores[p].delete(&id);
                }
            }
        }
    }
}

/// How long a ledger may take to include a submitted transaction (a bound against hangs).
const INCLUSION: Duration = Duration::from_secs(30);

async fn included(
    ledger: &dyn crate::ledger::Ledger,
    hash: [u8; 32],
) -> (memo_core::contract::Height, usize) {
    use crate::ledger::TxStatus;
    let deadline = tokio::time::Instant::now() + INCLUSION;
    loop {
        match ledger.tx_status(hash).await {
            Ok(TxStatus::Included { height, index, .. }) => return (height, index),
            Ok(TxStatus::Rejected(r)) => panic!("a valid transfer was rejected: {r:?}"),
            Ok(TxStatus::Pending | TxStatus::Unknown) => {}
            Err(e) => panic!("tx_status failed: {e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a submitted transaction was not included within {INCLUSION:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn account(
    ledger: &dyn crate::ledger::Ledger,
    who: memo_core::AccountId,
) -> memo_core::contract::Account {
    use memo_core::contract::{Answer, Query};
    match ledger.query(Query::Account(who)).await {
        Ok(Answer::Account(a)) => a,
        other => panic!("query of an account answered {other:?}"),
    }
}

/// The checks every [`Ledger`](crate::ledger::Ledger) passes. The ledger produces blocks on
/// its own (a producer task runs), its chain id is `chain`, and `payer` holds at least 100 in
/// its genesis balance; `payee` is any other account. Run inside a multi-threaded tokio
/// runtime.
pub async fn ledger_conformance(
    ledger: Arc<dyn crate::ledger::Ledger>,
    chain: u64,
    payer: &Keypair,
    payee: memo_core::AccountId,
) {
    use memo_core::contract::{Call, SettlementCall, Tx};
    let h0 = match ledger.head().await {
        Ok(h) => h,
        Err(e) => panic!("head failed: {e}"),
    };
    let mut blocks = ledger.subscribe();
    let before = account(ledger.as_ref(), payee).await.balance;
    let nonce = account(ledger.as_ref(), payer.account()).await.nonce;
    let pay = |nonce: u64, amount: u64| {
        Signed::sign(
            payer,
            &Tx::new(
                chain,
                nonce,
                Call::Settlement(SettlementCall::Transfer { to: payee, amount }),
            ),
        )
    };
    // A valid transaction is included, in a block that carries it, and applied.
    let tx = pay(nonce, 7);
    let hash = match ledger.submit(tx.clone()).await {
        Ok(h) => h,
        Err(e) => panic!("submit of a valid transfer failed: {e}"),
    };
    let (height, index) = included(ledger.as_ref(), hash).await;
    assert!(
        height > h0.height,
        "included above the head it was submitted at"
    );
    match ledger.block(height).await {
        Ok(Some(b)) => {
            assert_eq!(b.header.height, height, "block({height}) is that block");
            assert_eq!(
                b.txs.get(index),
                Some(&tx),
                "the block carries the transaction"
            );
        }
        other => panic!("block({height}) answered {other:?}"),
    }
    assert_eq!(
        account(ledger.as_ref(), payee).await.balance,
        before + 7,
        "the transfer was applied"
    );
    let head = match ledger.head().await {
        Ok(h) => h,
        Err(e) => panic!("head failed: {e}"),
    };
    assert!(head.height >= height, "the head is at or above the block");
    // Subscribers hear of new blocks.
    match tokio::time::timeout(INCLUSION, blocks.recv()).await {
        Ok(Ok(b)) => assert!(b.header.height > h0.height, "a new block, not an old one"),
        other => panic!("no block reached a subscriber: {other:?}"),
    }
    // A replayed transaction changes nothing: refused at once, or rejected in a block.
    if let Ok(h) = ledger.submit(tx).await {
        let deadline = tokio::time::Instant::now() + INCLUSION;
        loop {
            match ledger.tx_status(h).await {
                Ok(crate::ledger::TxStatus::Pending) => {}
                Ok(crate::ledger::TxStatus::Included { height: at, .. }) => {
                    assert_eq!(at, height, "a replay is only the original inclusion");
                    break;
                }
                Ok(_) | Err(_) => break,
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a replay stayed pending"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The next valid transfer still goes through, and the replay moved nothing.
    let (_, _) = included(
        ledger.as_ref(),
        match ledger.submit(pay(nonce + 1, 1)).await {
            Ok(h) => h,
            Err(e) => panic!("submit after a replay failed: {e}"),
        },
    )
    .await;
    assert_eq!(
        account(ledger.as_ref(), payee).await.balance,
        before + 8,
        "the replay moved nothing; the next transfer did"
    );
    // Transactions submitted together are queued in order; each one's wait ends with it
    // settled, long before its bound.
    let batch: Vec<_> = (0..3).map(|i| pay(nonce + 2 + i, 10)).collect();
    let hashes = match ledger.submit_all(batch.clone()).await {
        Ok(h) => h,
        Err(e) => panic!("submit_all of three valid transfers failed: {e}"),
    };
    let digests: Vec<[u8; 32]> = batch.iter().map(Signed::digest).collect();
    assert_eq!(hashes, digests, "submit_all returns the hashes in order");
    let mut at = Vec::new();
    match ledger.await_txs(&hashes, INCLUSION).await {
        Ok(statuses) => {
            for s in statuses {
                match s {
                    crate::ledger::TxStatus::Included { height, index, .. } => {
                        at.push((height, index))
                    }
                    other => panic!("await_txs of a submitted transfer answered {other:?}"),
                }
            }
        }
        Err(e) => panic!("await_txs failed: {e}"),
    }
    assert!(at.is_sorted(), "included in nonce order: {at:?}");
    assert_eq!(
        account(ledger.as_ref(), payee).await.balance,
        before + 38,
        "all three transfers were applied"
    );
    // A transaction the ledger cannot take is settled as rejected, not left to time out.
    match ledger.submit(pay(nonce, 99)).await {
        Err(_) => {}
        Ok(h) => match ledger.await_txs(&[h], INCLUSION).await.as_deref() {
            Ok([crate::ledger::TxStatus::Rejected(_)]) => {}
            other => panic!("a replayed nonce awaited gave {other:?}"),
        },
    }
    // No block beyond the head.
    match ledger.block(u64::MAX).await {
        Ok(None) => {}
        other => panic!("block(u64::MAX) answered {other:?}"),
    }
}

/// Repair settings for simulations on virtual time: a probe round every 15 s, Suspect after 2
/// missed probes and Lost after 4, eager repair, audits that find wiped shards, no orphan
/// sweeps; `max_concurrent` repairs at once per keeper.
pub fn simulation_repair_config(max_concurrent: usize) -> crate::keeper::repair::RepairConfig {
    use memo_core::repair::{LivenessPolicy, RepairThreshold};
    crate::keeper::repair::RepairConfig {
        probe_interval: Duration::from_secs(15),
        rpc_timeout: Duration::from_secs(5),
        liveness: LivenessPolicy {
            suspect_after: 2,
            lost_after: 4,
        },
        threshold: RepairThreshold::Eager,
        takeover_rounds: 2,
        max_concurrent,
        bytes_per_sec: None,
        reports_per_round: 256,
        transfer_timeout: Duration::from_secs(5),
        audit_shards: 4,
        audit_burst: 64,
        orphan_grace: None,
        sweep_every: 1,
        lapse_grace: None,
    }
}

/// Asserts that `r` is a node's refusal with `code` whose message contains `text` (for tests of
/// what a node must refuse).
#[track_caller]
pub fn assert_refused(
    r: Result<memo_core::protocol::Response, crate::transport::rpc::RpcError>,
    code: memo_core::protocol::ErrorCode,
    text: &str,
) {
    match r {
        Err(crate::transport::rpc::RpcError::Remote { error, .. }) => {
            assert_eq!(error.code, code, "{error}");
            assert!(error.message.contains(text), "{error}");
        }
        other => panic!("expected a refusal ({text}), got {other:?}"),
    }
}

/// Shard slots the registry places on providers, as keeper 0 of `net` sees them.
pub fn registered_shards<S>(net: &crate::local::LocalNetwork<S>) -> u64 {
    net.keepers[0].inspect(|o| {
        let holders: Vec<memo_core::AccountId> = o.holders().copied().collect();
        holders
            .iter()
            .map(|p| o.shards_on(p).filter(Result::is_ok).count() as u64)
            .sum()
    })
}

/// Shards the providers of `net` hold: [`registered_shards`] when nothing is orphaned.
pub fn held_shards<S: ShardStore + 'static>(net: &crate::local::LocalNetwork<S>) -> u64 {
    net.providers
        .iter()
        .map(|p| p.service.store().shard_count().unwrap_or(0))
        .sum()
}

/// The first `n` entries of `log` with their operations opened (signatures verified); an
/// entry that does not open is skipped. For tests that replay what the log holds.
pub async fn opened_entries(
    log: &dyn crate::replication::OpLog,
    n: usize,
) -> Vec<(SignedOp, OpEnvelope)> {
    use futures::StreamExt;
    log.follow(0)
        .take(n)
        .filter_map(|(_, s)| async move { s.open().ok().map(|e| (s, e)) })
        .collect()
        .await
}

/// A keeper workload for checkpoint and start-up tests and benches: signed operations that
/// a keeper applies without any network (their receipts are signed by the providers they
/// name; possession is checked only at admission, so these go straight into the log).
pub struct KeeperWorkload {
    /// The operations, in the order generated.
    pub ops: Vec<SignedOp>,
    /// The keeper account that signs the workload's keeper operations: put it in
    /// [`crate::keeper::KeeperConfig::keepers`].
    pub keeper: memo_core::AccountId,
}

/// `n` operations seeded by `seed`, of four users over six providers: 6 in 10 put a new
/// object (one chunk of 3 shards, with the holders' receipts), 1 in 10 puts an object of the
/// user's again, 1 in 10 stores another user's object (deduplicated, with possession
/// proofs), 1 in 10 deletes (purges, releases, or is refused), 1 in 10 is a keeper's shard
/// mark (and 1 in 1000 a provider's health). Nonces and expiries grow with the index.
pub fn keeper_workload(seed: &str, n: usize) -> KeeperWorkload {
    use memo_core::id::{ChunkId, ShardId};
    use memo_core::ownership::{ChunkInfo, ShardHealth};
    use memo_core::protocol::ChunkPlacement;
    use memo_core::repair::{KeeperOp, Reason};
    use memo_core::ticket::{Possession, Receipt};
    let users: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_seed(&format!("{seed}-user-{i}")))
        .collect();
    let providers: Vec<Keypair> = (0..6)
        .map(|i| Keypair::from_seed(&format!("{seed}-provider-{i}")))
        .collect();
    let keeper = Keypair::from_seed("workload-keeper");
    let id =
        |what: &str, i: usize| *blake3::hash(format!("{seed}-{what}-{i}").as_bytes()).as_bytes();
    // Each object: its owner, its chunk and the providers of its shards.
    let mut objects: Vec<(usize, ChunkInfo, [usize; 3])> = Vec::new();
    let mut ops = Vec::with_capacity(n);
    for i in 0..n {
        let nonce = i as u64;
        let expires_ms = 1_000_000_000 + nonce * 100;
        let pick = |objects: &Vec<(usize, ChunkInfo, [usize; 3])>| {
            objects[(i * 7919) % objects.len()].clone()
        };
        let (signer, op) = match i % 10 {
            r if r < 6 || objects.is_empty() => {
                let user = i % users.len();
                let chunk = ChunkInfo {
                    id: ChunkId(id("chunk", i)),
                    stored_bytes: 300,
                    shards: (0..3)
                        .map(|s| ShardId(id(&format!("shard-{s}"), i)))
                        .collect(),
                };
                let holders = [i % 6, (i + 1) % 6, (i + 2) % 6];
                let receipts = chunk
                    .shards
                    .iter()
                    .zip(holders)
                    .map(|(shard, h)| {
                        Signed::sign(
                            &providers[h],
                            &Receipt {
                                shard: *shard,
                                size: 100,
                                user: users[user].account(),
                                expires_ms: u64::MAX,
                            },
                        )
                    })
                    .collect();
                objects.push((user, chunk.clone(), holders));
                let op = ObjectOp::Put {
                    object: ObjectId(chunk.id.0),
                    size: 250,
                    needed: 2,
                    sealed: format!("name-{i}").into_bytes(),
                    placements: vec![ChunkPlacement {
                        chunk: chunk.id,
                        holders: holders
                            .iter()
                            .map(|h| Some(providers[*h].account()))
                            .collect(),
                    }],
                    chunks: vec![chunk],
                    receipts,
                    possession: vec![],
                };
                (&users[user], op)
            }
            r @ (6 | 7) => {
                let (owner, chunk, _) = pick(&objects);
                let user = if r == 6 {
                    owner
                } else {
                    (owner + 1) % users.len()
                };
                let possession = if r == 6 {
                    vec![]
                } else {
                    vec![Possession {
                        chunk: chunk.id,
                        proofs: vec![[7; 32]; chunk.shards.len()],
                    }]
                };
                let op = ObjectOp::Put {
                    object: ObjectId(chunk.id.0),
                    size: 250,
                    needed: 2,
                    sealed: format!("again-{i}").into_bytes(),
                    chunks: vec![chunk],
                    placements: vec![],
                    receipts: vec![],
                    possession,
                };
                (&users[user], op)
            }
            8 => {
                let (owner, chunk, _) = pick(&objects);
                let op = ObjectOp::Delete {
                    object: ObjectId(chunk.id.0),
                };
                (&users[owner], op)
            }
            _ if i % 1000 == 9 => {
                let health = if (i / 1000) % 2 == 0 {
                    ShardHealth::Suspect
                } else {
                    ShardHealth::Healthy
                };
                let op = ObjectOp::Keeper(KeeperOp::ProviderHealth {
                    provider: providers[(i / 1000) % 6].account(),
                    health,
                    reason: Reason::Unresponsive,
                });
                (&keeper, op)
            }
            _ => {
                let (_, chunk, holders) = pick(&objects);
                let index = i % 3;
                let op = ObjectOp::Keeper(KeeperOp::MarkShard {
                    chunk: chunk.id,
                    index: index as u16,
                    holder: providers[holders[index]].account(),
                    health: ShardHealth::Suspect,
                    reason: Reason::FailedProof,
                });
                (&keeper, op)
            }
        };
        ops.push(Signed::sign(
            signer,
            &OpEnvelope::new(op, nonce, expires_ms),
        ));
    }
    KeeperWorkload {
        ops,
        keeper: keeper.account(),
    }
}

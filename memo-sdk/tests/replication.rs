//! Keepers in sync across nodes: one sequencer and two followers over a transport (in memory
//! and libp2p on loopback), users on different keepers, restarts from data dirs; and the local
//! chain followed and verified over the network, including a lying sequencer.

use futures::StreamExt;
use memo_core::codec::CodecParams;
use memo_core::contract::{
    Answer, Call, ChainStatus, Challenge, Genesis, Params, ProofVerifier, Query, SettlementCall,
    SignedTx, Tx,
};
use memo_core::objects::{ObjectOp, OpEnvelope, SignedOp};
use memo_core::ownership::{MemoryShardStore, ShardStore};
use memo_core::protocol::{Request, Response};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair, Signed};
use memo_sdk::keeper::KeeperConfig;
use memo_sdk::keeper::node::{KeeperChain, KeeperNode, SequencerChain};
use memo_sdk::ledger::tx::TxSender;
use memo_sdk::ledger::{
    Block, ChainConfig, ChainFollower, Head, Ledger, LedgerError, LedgerService, LocalChain,
    RemoteLedger, TxStatus,
};
use memo_sdk::node::{Service, serve};
use memo_sdk::provider::Provider;
use memo_sdk::replication::{
    DurableOpLog, GroupConfig, OpLog, OpLogService, RemoteOpLog, RemoteOpLogConfig,
};
use memo_sdk::transport::p2p::P2pTransport;
use memo_sdk::{Client, ClientConfig, ClientError};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Guards against a hang: a test that stops making progress fails instead of blocking.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress in 60 s"))
}

/// Where nodes get their transports.
enum Fabric {
    Memory(MemoryNetwork),
    P2p(Mutex<Vec<P2pTransport>>),
}

impl Fabric {
    fn memory() -> Self {
        Fabric::Memory(MemoryNetwork::new())
    }

    fn p2p() -> Self {
        Fabric::P2p(Mutex::new(Vec::new()))
    }

    /// A transport for `kp`; on libp2p it listens on a fresh loopback port and every node
    /// learns every other's address.
    async fn join(&self, kp: &Keypair) -> Arc<dyn Transport> {
        match self {
            Fabric::Memory(net) => {
                net.set_up(kp.account());
                Arc::new(net.join(kp.account()))
            }
            Fabric::P2p(all) => {
                let (t, addrs) = P2pTransport::start(kp, "/ip4/127.0.0.1/tcp/0")
                    .await
                    .unwrap();
                let mut all = all.lock().unwrap();
                for other in all.iter() {
                    t.add_address(other.local_id(), &other.listen_addrs()[0].to_string());
                    other.add_address(t.local_id(), &addrs[0].to_string());
                }
                all.push(t.clone());
                Arc::new(t)
            }
        }
    }

    /// Takes a node off the network (its process died).
    async fn leave(&self, id: AccountId) {
        if let Fabric::Memory(net) = self {
            net.set_down(id);
        }
        if let Fabric::P2p(all) = self {
            let gone: Vec<P2pTransport> = {
                let mut all = all.lock().unwrap();
                let (gone, kept) = all.drain(..).partition(|t| t.local_id() == id);
                *all = kept;
                gone
            };
            for t in gone {
                t.shutdown().await;
            }
        }
    }
}

fn params() -> CodecParams {
    CodecParams {
        chunk_size: 64 * 1024,
        data_shards: 4,
        parity_shards: 2,
    }
}

use memo_core::testkit::random_bytes as data;

fn keeper_key(i: usize) -> Keypair {
    Keypair::from_seed(&format!("keeper-{i}"))
}

fn user_key(name: &str) -> Keypair {
    Keypair::from_seed(&format!("user-{name}"))
}

/// How the keepers replicate their log.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Keeper 0 sequences, 1 and 2 follow.
    Sequencer,
    /// The three keepers form a Raft group.
    Group,
    /// The three keepers form a Raft group, and the ledger rides on its log.
    GroupChain,
}

/// The group's timing in these tests: the defaults, with a snapshot every 8 entries and no
/// log kept behind it, so that a lagging keeper installs a snapshot.
fn group_config() -> GroupConfig {
    GroupConfig {
        snapshot_every: 8,
        logs_kept: 0,
        ..GroupConfig::default()
    }
}

/// Three keepers (0 sequences, 1 and 2 follow; or a group of three), each with a data dir,
/// and six providers.
struct Net {
    mode: Mode,
    fabric: Fabric,
    dir: tempfile::TempDir,
    keepers: Vec<Option<KeeperNode>>,
    providers: Vec<Arc<Provider<MemoryShardStore>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Net {
    async fn start(fabric: Fabric) -> Self {
        Self::start_in(fabric, Mode::Sequencer).await
    }

    async fn start_in(fabric: Fabric, mode: Mode) -> Self {
        let mut net = Net {
            mode,
            fabric,
            dir: tempfile::tempdir().unwrap(),
            keepers: Vec::new(),
            providers: Vec::new(),
            tasks: Vec::new(),
        };
        let keeper_ids: Vec<AccountId> = (0..3).map(|i| keeper_key(i).account()).collect();
        for i in 0..6 {
            let kp = Keypair::from_seed(&format!("provider-{i}"));
            let p = Provider::new(
                memo_sdk::Env::real(),
                kp.clone(),
                net.fabric.join(&kp).await,
                MemoryShardStore::new(),
                1 << 30,
                keeper_ids.clone(),
            );
            net.tasks.push(tokio::spawn(p.clone().run()));
            net.providers.push(p);
        }
        for i in 0..3 {
            let k = net.start_keeper(i).await;
            net.keepers.push(Some(k));
        }
        net
    }

    async fn start_keeper(&self, i: usize) -> KeeperNode {
        let t = self.fabric.join(&keeper_key(i)).await;
        let dir = self.dir.path().join(format!("keeper-{i}"));
        let config = KeeperConfig {
            keepers: (0..3).map(|i| keeper_key(i).account()).collect(),
            ..KeeperConfig::default()
        };
        // Keepers 0 to 2 found the group; keeper 3 joins later.
        let founders: Vec<AccountId> = (0..3).map(|i| keeper_key(i).account()).collect();
        let mut node = if self.mode != Mode::Sequencer {
            let chain = (self.mode == Mode::GroupChain).then(|| {
                KeeperChain::Produce(SequencerChain {
                    genesis: genesis(),
                    key: keeper_key(i),
                    verifier: Arc::new(AcceptAll),
                    block_interval: Duration::from_millis(20),
                })
            });
            KeeperNode::group(
                keeper_key(i),
                t,
                &dir,
                config,
                &founders,
                group_config(),
                chain,
            )
            .await
            .unwrap()
        } else if i == 0 {
            KeeperNode::sequencer(keeper_key(i), t, &dir, config, None).unwrap()
        } else {
            KeeperNode::follower(
                keeper_key(i),
                t,
                keeper_key(0).account(),
                &dir,
                config,
                None,
            )
            .unwrap()
        };
        for p in &self.providers {
            node.keeper.add_provider(p.account());
        }
        node.spawn_serving();
        node
    }

    async fn stop_keeper(&mut self, i: usize) {
        let node = self.keepers[i].take().unwrap();
        let id = node.account();
        node.shutdown().await;
        self.fabric.leave(id).await;
    }

    async fn restart_keeper(&mut self, i: usize) {
        let node = self.start_keeper(i).await;
        self.keepers[i] = Some(node);
    }

    fn keeper(&self, i: usize) -> &KeeperNode {
        self.keepers[i].as_ref().unwrap()
    }

    /// A client for `name` that talks only to keeper `k`.
    async fn user(&self, name: &str, k: usize) -> Client {
        let kp = user_key(name);
        let mut cfg = ClientConfig::new(vec![keeper_key(k).account()]);
        cfg.params = params();
        Client::new(kp.clone(), self.fabric.join(&kp).await, cfg).unwrap()
    }

    /// The sequencer's log length; in a group, the longest applied log of a running keeper
    /// (an acknowledged write is applied on the keeper that acknowledged it).
    fn log_len(&self) -> u64 {
        match self.mode {
            Mode::Sequencer => self.keeper(0).durable.as_ref().unwrap().len(),
            Mode::Group | Mode::GroupChain => self
                .keepers
                .iter()
                .flatten()
                .map(|k| k.group.as_ref().unwrap().ops().len())
                .max()
                .unwrap_or(0),
        }
    }

    /// The group's leader, as the running keepers agree on it.
    async fn leader(&self) -> usize {
        let k = self.keepers.iter().flatten().next().unwrap();
        let leader = within(
            "electing a leader",
            k.group
                .as_ref()
                .unwrap()
                .wait_leader(Duration::from_secs(60)),
        )
        .await
        .expect("a leader");
        (0..3).find(|i| keeper_key(*i).account() == leader).unwrap()
    }

    /// Waits until every running keeper has applied the sequencer's whole log.
    async fn converge(&self) -> u64 {
        let len = self.log_len();
        for k in self.keepers.iter().flatten() {
            within("keeper catching up", k.keeper.wait_applied(len)).await;
        }
        len
    }

    fn shards_held(&self) -> usize {
        self.providers
            .iter()
            .map(|p| p.store().list().unwrap().len())
            .sum()
    }

    /// Asserts that every running keeper holds the same state for `users`: their object lists,
    /// accounts, and every object's chunks with their holders.
    async fn assert_same_state(&self, users: &[&str]) {
        let keepers: Vec<&KeeperNode> = self.keepers.iter().flatten().collect();
        for name in users {
            let u = user_key(name).account();
            let view = |k: &KeeperNode| {
                let k = k.keeper.clone();
                async move {
                    let list = k.handle_request(u, Request::ListObjects).await;
                    let account = k.handle_request(u, Request::Account).await;
                    let mut stats = Vec::new();
                    if let Response::Objects(objects) = &list {
                        for o in objects {
                            stats.push(k.handle_request(u, Request::StatObject { id: o.id }).await);
                        }
                    }
                    (list, account, stats)
                }
            };
            let reference = view(keepers[0]).await;
            assert!(matches!(reference.0, Response::Objects(_)));
            for k in &keepers[1..] {
                assert_eq!(view(k).await, reference, "keeper {:?} differs", k.account());
            }
        }
    }
}

async fn keepers_stay_in_sync(net: impl Future<Output = Net>) {
    let net = net.await;
    let alice = net.user("alice", 0).await;
    let bob = net.user("bob", 1).await;
    let carol = net.user("carol", 2).await;
    let x = data(300_000, 1);

    // Alice stores X through the sequencer; every keeper applies it.
    let put = alice.put_bytes("x.bin", &x).await.unwrap();
    assert_eq!(put.uploaded_chunks, put.chunks);
    assert_eq!(net.converge().await, 1);
    net.assert_same_state(&["alice"]).await;
    let held = net.shards_held();

    // Alice reads X back through a follower.
    let alice_on_2 = net.user("alice", 2).await;
    assert_eq!(alice_on_2.get_bytes("x.bin").await.unwrap(), x);

    // Bob stores X through a follower: it knows the chunks, no data moves.
    let p2 = bob.put_bytes("mine.bin", &x).await.unwrap();
    assert_eq!((p2.id, p2.uploaded_chunks), (put.id, 0));
    assert_eq!(net.shards_held(), held);

    // Carol stores Y through the other follower, and may not delete X.
    let y = data(200_000, 2);
    let py = carol.put_bytes("y.bin", &y).await.unwrap();
    assert!(py.uploaded_chunks > 0);
    let refused = carol.delete(&put.id.to_hex()).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(ref m)) if m.contains("not an owner")),
        "{refused:?}"
    );
    net.converge().await;
    net.assert_same_state(&["alice", "bob", "carol"]).await;

    // Alice (sequencer) and then Bob (follower) delete X: the last delete purges X's shards.
    alice.delete("x.bin").await.unwrap();
    net.converge().await;
    assert_eq!(bob.get_bytes("mine.bin").await.unwrap(), x);
    bob.delete("mine.bin").await.unwrap();
    net.converge().await;
    assert_eq!(net.shards_held(), py.uploaded_chunks * 6);
    assert_eq!(carol.get_bytes("y.bin").await.unwrap(), y);
    net.assert_same_state(&["alice", "bob", "carol"]).await;
    for k in net.keepers.iter().flatten() {
        let r = k
            .keeper
            .handle_request(user_key("bob").account(), Request::ListObjects)
            .await;
        assert_eq!(r, Response::Objects(Vec::new()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_stay_in_sync_in_memory() {
    within(
        "scenario",
        keepers_stay_in_sync(Net::start(Fabric::memory())),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_stay_in_sync_over_libp2p() {
    within("scenario", keepers_stay_in_sync(Net::start(Fabric::p2p()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_stay_in_sync_in_a_group() {
    within(
        "scenario",
        keepers_stay_in_sync(Net::start_in(Fabric::memory(), Mode::Group)),
    )
    .await;
}

async fn restarts_resume_from_data_dirs(fabric: Fabric) {
    let mut net = Net::start(fabric).await;
    let alice = net.user("alice", 1).await;
    let a = data(150_000, 3);
    alice.put_bytes("a", &a).await.unwrap();
    let before = net.converge().await;

    // Follower 1 goes down; meanwhile others keep writing through the sequencer.
    net.stop_keeper(1).await;
    let bob = net.user("bob", 0).await;
    bob.put_bytes("b", &data(120_000, 4)).await.unwrap();
    let alice_on_0 = net.user("alice", 0).await;
    alice_on_0.put_bytes("c", &data(90_000, 5)).await.unwrap();
    assert_eq!(net.log_len(), before + 2);

    // Its data dir holds its replica of what it had seen.
    let replica = net.dir.path().join("keeper-1").join("oplog.redb");
    assert_eq!(DurableOpLog::open(&replica).unwrap().len(), before);

    // It restarts from its data dir: it replays its replica and pulls only the rest.
    net.restart_keeper(1).await;
    net.converge().await;
    let remote = net.keeper(1).remote.clone().unwrap();
    assert_eq!(remote.known_len(), Some(before + 2));
    net.assert_same_state(&["alice", "bob"]).await;
    let bob_on_1 = net.user("bob", 1).await;
    assert_eq!(bob_on_1.list().await.unwrap().len(), 1);

    // The sequencer restarts from its log; followers reconnect and keep going.
    let len = net.log_len();
    net.stop_keeper(0).await;
    net.restart_keeper(0).await;
    assert_eq!(net.log_len(), len);
    net.converge().await;
    let alice_again = net.user("alice", 0).await;
    assert_eq!(alice_again.list().await.unwrap().len(), 2);
    assert_eq!(alice_again.get_bytes("a").await.unwrap(), a);
    let carol = net.user("carol", 2).await;
    carol.put_bytes("d", &data(80_000, 6)).await.unwrap();
    assert_eq!(net.converge().await, len + 1);
    net.assert_same_state(&["alice", "bob", "carol"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_data_dirs_in_memory() {
    within("scenario", restarts_resume_from_data_dirs(Fabric::memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_data_dirs_over_libp2p() {
    within("scenario", restarts_resume_from_data_dirs(Fabric::p2p())).await;
}

/// What one user's stream of writes left: each object's name and bytes, and whether its put
/// (and its delete, if one was sent) was acknowledged.
#[derive(Default)]
struct Writes {
    /// Acknowledged puts not deleted since: these must be listed and read back exactly.
    kept: Vec<(String, Vec<u8>)>,
    /// Names whose put or delete failed: present or absent, but never twice.
    unsure: Vec<String>,
    /// Acknowledged deletes: these must be gone.
    deleted: Vec<String>,
}

/// `steps` puts from `client`, deleting every third object again; the first `before` steps
/// are reported on `progress` so the test knows when writes are flowing.
async fn write_stream(client: Client, user: usize, steps: usize) -> Writes {
    let mut w = Writes::default();
    for i in 0..steps {
        let name = format!("u{user}-{i}");
        let bytes = data(20_000 + i * 1_000, (user * 100 + i) as u8);
        match client.put_bytes(&name, &bytes).await {
            Ok(_) => w.kept.push((name.clone(), bytes)),
            Err(_) => {
                w.unsure.push(name);
                continue;
            }
        }
        if i % 3 == 2 {
            let (name, _) = w.kept.pop().unwrap();
            match client.delete(&name).await {
                Ok(_) => w.deleted.push(name),
                Err(_) => w.unsure.push(name),
            }
        }
    }
    w
}

/// Checks a user's objects through keeper `k` against what the stream acknowledged.
async fn assert_writes(net: &Net, user: usize, k: usize, w: &Writes) {
    let client = net.user(&format!("w{user}"), k).await;
    let listed: Vec<String> = client
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    let unique: std::collections::BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a name listed twice: {listed:?}"
    );
    for (name, bytes) in &w.kept {
        assert!(
            listed.contains(name),
            "keeper {k}: acknowledged {name} is missing"
        );
        assert_eq!(&client.get_bytes(name).await.unwrap(), bytes, "{name}");
    }
    for name in &w.deleted {
        assert!(
            !listed.contains(name),
            "keeper {k}: deleted {name} is listed"
        );
    }
    for name in &listed {
        assert!(
            w.kept.iter().any(|(n, _)| n == name) || w.unsure.contains(name),
            "keeper {k}: {name} was never written"
        );
    }
}

/// The leader of a group of three stops during a stream of puts and deletes from three users
/// who each know every keeper. A new leader is elected and the stream goes on; afterwards every
/// acknowledged write is present exactly once through every keeper, deletes are gone and reads
/// are exact. The old leader restarts from its data dir and catches up.
async fn a_group_survives_its_leader(fabric: Fabric) {
    let mut net = Net::start_in(fabric, Mode::Group).await;
    let leader = net.leader().await;
    let survivor = net.keeper((leader + 1) % 3).keeper.clone();
    let mut streams = Vec::new();
    for u in 0..3 {
        let kp = user_key(&format!("w{u}"));
        let mut cfg =
            ClientConfig::new((0..3).map(|i| keeper_key((u + i) % 3).account()).collect());
        cfg.params = params();
        let client = Client::new(kp.clone(), net.fabric.join(&kp).await, cfg).unwrap();
        streams.push(tokio::spawn(write_stream(client, u, 9)));
    }
    // Writes are flowing: the leader stops, its process gone.
    within("the first writes", survivor.wait_applied(4)).await;
    net.stop_keeper(leader).await;
    let writes: Vec<Writes> = futures::future::join_all(streams)
        .await
        .into_iter()
        .map(|w| w.unwrap())
        .collect();
    let acknowledged: usize = writes.iter().map(|w| w.kept.len() + w.deleted.len()).sum();
    assert!(
        acknowledged >= 15,
        "the group went on accepting writes ({acknowledged})"
    );
    let new_leader = net.leader().await;
    assert_ne!(new_leader, leader, "a new leader");
    net.converge().await;
    let unsure: usize = writes.iter().map(|w| w.unsure.len()).sum();
    println!("{acknowledged} writes acknowledged, {unsure} failed across the change of leader");
    println!(
        "{:?}",
        net.keeper(new_leader).group.as_ref().unwrap().status()
    );
    for (u, w) in writes.iter().enumerate() {
        for k in (0..3).filter(|k| *k != leader) {
            assert_writes(&net, u, k, w).await;
        }
    }
    // The old leader comes back from its data dir and catches up.
    net.restart_keeper(leader).await;
    net.converge().await;
    let users: Vec<String> = (0..3).map(|u| format!("w{u}")).collect();
    net.assert_same_state(&users.iter().map(|u| u.as_str()).collect::<Vec<_>>())
        .await;
    for (u, w) in writes.iter().enumerate() {
        assert_writes(&net, u, leader, w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_survives_its_leader_in_memory() {
    within("scenario", a_group_survives_its_leader(Fabric::memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_survives_its_leader_over_libp2p() {
    within("scenario", a_group_survives_its_leader(Fabric::p2p())).await;
}

/// A partition cuts the leader off from the other two: it cannot commit what it is asked (the
/// append fails after the wait), the majority elects a leader and commits; when the partition
/// heals, the old leader drops its uncommitted entry and all three hold the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_leader_cannot_commit_and_the_group_converges_after_a_partition() {
    within("scenario", async {
        let net = Net::start_in(Fabric::memory(), Mode::Group).await;
        let Fabric::Memory(mem) = &net.fabric else {
            unreachable!("a memory fabric")
        };
        let old = net.leader().await;
        let before = net.converge().await;
        mem.set_down(keeper_key(old).account());
        let cut_off = net.keeper(old).log.clone();
        let refused =
            tokio::spawn(async move { cut_off.append(memo_sdk::testkit::numbered_op(1)).await });
        // The majority goes on.
        let other = (old + 1) % 3;
        let pos = net
            .keeper(other)
            .log
            .append(memo_sdk::testkit::numbered_op(2))
            .await
            .unwrap();
        assert_eq!(pos, before, "the majority commits at the next position");
        let r = refused.await.unwrap();
        assert!(r.is_err(), "a leader without a quorum committed: {r:?}");
        // Heal: the old leader learns the new term and takes the majority's log.
        mem.set_up(keeper_key(old).account());
        net.keeper(old).log.sync_len().await.unwrap();
        let len = net.converge().await;
        assert_eq!(len, before + 1);
        let mut logs = Vec::new();
        for k in 0..3 {
            let entries: Vec<_> = net
                .keeper(k)
                .log
                .follow(0)
                .take(len as usize)
                .collect()
                .await;
            logs.push(entries);
        }
        assert!(
            logs.iter().all(|l| *l == logs[0]),
            "the keepers' logs differ"
        );
        let ops: Vec<&SignedOp> = logs[0].iter().map(|(_, op)| op).collect();
        assert!(ops.contains(&&memo_sdk::testkit::numbered_op(2)));
        assert!(!ops.contains(&&memo_sdk::testkit::numbered_op(1)));
    })
    .await;
}

/// A keeper whose data dir was wiped (a replaced disk) rejoins with nothing: it takes the
/// group's state from the leader, and no acknowledged operation is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_with_a_wiped_data_dir_catches_up() {
    within("scenario", async {
        let mut net = Net::start_in(Fabric::memory(), Mode::Group).await;
        let alice = net.user("alice", 0).await;
        for i in 0..10 {
            alice
                .put_bytes(&format!("f{i}"), &data(8_000, i as u8))
                .await
                .unwrap();
        }
        let len = net.converge().await;
        let leader = net.leader().await;
        let wiped = (leader + 1) % 3;
        net.stop_keeper(wiped).await;
        std::fs::remove_dir_all(net.dir.path().join(format!("keeper-{wiped}"))).unwrap();
        net.restart_keeper(wiped).await;
        net.keeper(wiped).log.sync_len().await.unwrap();
        within(
            "the wiped keeper",
            net.keeper(wiped).keeper.wait_applied(len),
        )
        .await;
        net.assert_same_state(&["alice"]).await;
        let on_wiped = net.user("alice", wiped).await;
        assert_eq!(on_wiped.list().await.unwrap().len(), 10);
        on_wiped.put_bytes("after", b"after").await.unwrap();
        assert_eq!(net.converge().await, len + 1);
    })
    .await;
}

/// Membership at runtime: after the group compacted its log, a fourth keeper is added; it
/// installs a snapshot, applies the same state, and stays in step as a voter. Then a founder
/// is removed, and the group of three (with the new keeper) goes on accepting writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_joins_from_a_snapshot_and_a_founder_leaves() {
    within("scenario", async {
        let mut net = Net::start_in(Fabric::memory(), Mode::Group).await;
        let alice = net.user("alice", 0).await;
        let mut stored = Vec::new();
        for i in 0..12 {
            let bytes = data(10_000 + i * 500, i as u8);
            alice.put_bytes(&format!("f{i}"), &bytes).await.unwrap();
            stored.push(bytes);
        }
        net.converge().await;
        let leader = net.leader().await;
        let group = net.keeper(leader).group.clone().unwrap();
        let compacted = group.status().purged_index;
        assert!(
            compacted.is_some(),
            "the log was compacted: {:?}",
            group.status()
        );

        // Keeper 3 (not a founder) starts empty and waits; the leader adds it.
        let joined = net.start_keeper(3).await;
        assert_eq!(joined.group.as_ref().unwrap().ops().len(), 0);
        net.keepers.push(Some(joined));
        group.add_member(keeper_key(3).account()).await.unwrap();
        // A read-index sync: keeper 3 has applied all the group committed, membership too.
        net.keeper(3).log.sync_len().await.unwrap();
        net.converge().await;
        let status = net.keeper(3).group.as_ref().unwrap().status();
        assert!(
            status.snapshot_index >= compacted,
            "the new keeper installed a snapshot: {status:?}"
        );
        assert_eq!(status.members.len(), 4, "{status:?}");
        net.assert_same_state(&["alice"]).await;
        let on_3 = net.user("alice", 3).await;
        assert_eq!(on_3.get_bytes("f5").await.unwrap(), stored[5]);

        // A founder that is not the leader leaves; writes go on and reach the new keeper.
        let gone = (0..3).find(|k| *k != leader).unwrap();
        group
            .remove_member(keeper_key(gone).account())
            .await
            .unwrap();
        net.stop_keeper(gone).await;
        let stays = (0..3).find(|k| *k != leader && *k != gone).unwrap();
        net.user("alice", stays)
            .await
            .put_bytes("after", b"after the change")
            .await
            .unwrap();
        net.converge().await;
        assert_eq!(
            on_3.get_bytes("after").await.unwrap(),
            b"after the change".to_vec()
        );
        assert_eq!(group.status().members.len(), 3);
    })
    .await;
}

/// The ledger on the group's log: a transfer sent through a follower is included; the leader
/// stops, the next one goes on building the same chain (every keeper holds the same blocks),
/// and a transfer sent after the change is included; the old leader restarts from its data
/// dir and catches up. A snapshot (every 8 entries here) carries the chain to a lagging keeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_on_the_group_survives_its_leader() {
    within("scenario", async {
        let mut net = Net::start_in(Fabric::memory(), Mode::GroupChain).await;
        let leader = net.leader().await;
        let follower = (leader + 1) % 3;
        let ledger = |net: &Net, k: usize| net.keeper(k).ledger.clone().unwrap();
        let sender = TxSender::new(Keypair::from_seed("a"), ledger(&net, follower));
        let first = sender
            .send_and_wait(vec![transfer(5)], Duration::from_secs(30))
            .await
            .unwrap();
        assert!(first[0].is_ok(), "{first:?}");
        let before = ledger(&net, follower).head().await.unwrap().height;
        net.stop_keeper(leader).await;
        let second = sender
            .send_and_wait(vec![transfer(7)], Duration::from_secs(30))
            .await
            .unwrap();
        assert!(second[0].is_ok(), "{second:?}");
        let new_leader = net.leader().await;
        assert_ne!(new_leader, leader);
        let survivor = (0..3).find(|k| *k != leader && *k != new_leader).unwrap();
        let mut blocks = ledger(&net, survivor).subscribe();
        while ledger(&net, survivor).head().await.unwrap().height < before + 20 {
            // A lagging receiver only means more blocks came: look at the head again.
            let _ = within("blocks after the change", blocks.recv()).await;
        }
        // The old leader comes back and catches up; all three hold one chain.
        net.restart_keeper(leader).await;
        let top = ledger(&net, new_leader).head().await.unwrap().height;
        let mut on_old = ledger(&net, leader).subscribe();
        while ledger(&net, leader).head().await.unwrap().height < top {
            let _ = within("the old leader catching up", on_old.recv()).await;
        }
        for h in 1..=top {
            let mut hashes = Vec::new();
            for k in 0..3 {
                let b = ledger(&net, k).block(h).await.unwrap().expect("a block");
                hashes.push(b.hash());
            }
            assert!(hashes.iter().all(|x| *x == hashes[0]), "block {h} differs");
        }
        // A keeper whose disk was wiped takes the chain from a snapshot (the group's log
        // before it was purged) and then follows the blocks after it. Snapshots and purges
        // run in the background: wait until the others purged some of their logs, so that a
        // snapshot can bring the wiped keeper up, whichever of the other two leads then.
        for k in [leader, new_leader] {
            let group = net.keeper(k).group.clone().unwrap();
            let mut blocks = ledger(&net, k).subscribe();
            while group.status().purged_index.is_none() {
                let _ = within("a keeper purging its log", blocks.recv()).await;
            }
        }
        net.stop_keeper(survivor).await;
        std::fs::remove_dir_all(net.dir.path().join(format!("keeper-{survivor}"))).unwrap();
        net.restart_keeper(survivor).await;
        let top = ledger(&net, new_leader).head().await.unwrap().height;
        let mut on_wiped = ledger(&net, survivor).subscribe();
        while ledger(&net, survivor).head().await.unwrap().height < top {
            let _ = within("the wiped keeper catching up", on_wiped.recv()).await;
        }
        // It got there by a snapshot (the engine's metrics say so a moment after the install).
        let wiped = net.keeper(survivor).group.clone().unwrap();
        while wiped.status().snapshot_index.is_none() {
            let status = wiped.status();
            assert!(
                status.purged_index.is_some(),
                "no snapshot installed: {status:?}"
            );
            let _ = within("the snapshot showing in the metrics", on_wiped.recv()).await;
        }
        for h in 1..=top {
            let mut hashes = Vec::new();
            for k in [new_leader, survivor] {
                let b = ledger(&net, k).block(h).await.unwrap().expect("a block");
                hashes.push(b.hash());
            }
            assert_eq!(
                hashes[0], hashes[1],
                "block {h} differs on the wiped keeper"
            );
        }
        let b = Keypair::from_seed("b").account();
        for k in 0..3 {
            let Answer::Account(acc) = ledger(&net, k).query(Query::Account(b)).await.unwrap()
            else {
                panic!("an account")
            };
            assert_eq!(acc.balance, 1_000_000 + 12, "keeper {k}");
        }
    })
    .await;
}

/// The group's ledger passes the ledger conformance suite through a follower (which forwards
/// submissions and waits to the leader) and through the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_ledger_conforms_through_any_keeper() {
    within("scenario", async {
        let net = Net::start_in(Fabric::memory(), Mode::GroupChain).await;
        let leader = net.leader().await;
        let payee = Keypair::from_seed("payee").account();
        for k in [(leader + 1) % 3, leader] {
            let ledger = net.keeper(k).ledger.clone().unwrap();
            memo_sdk::testkit::ledger_conformance(ledger, CHAIN, &Keypair::from_seed("a"), payee)
                .await;
        }
    })
    .await;
}

fn transfer(amount: u64) -> Call {
    Call::Settlement(SettlementCall::Transfer {
        to: Keypair::from_seed("b").account(),
        amount,
    })
}

fn signed_delete(user: &str, i: u8) -> SignedOp {
    Signed::sign(
        &user_key(user),
        &OpEnvelope::new(
            ObjectOp::Delete {
                object: memo_core::ObjectId([i; 32]),
            },
            i.into(),
            u64::MAX,
        ),
    )
}

/// A sequencer's log that rewrites one entry's signer when serving it.
struct ForgingLog {
    inner: memo_sdk::replication::MemoryOpLog,
    forge: AtomicBool,
}

#[async_trait::async_trait]
impl OpLog for ForgingLog {
    async fn append(&self, op: SignedOp) -> Result<u64, memo_sdk::replication::OpLogError> {
        self.inner.append(op).await
    }
    fn follow(&self, from: u64) -> futures::stream::BoxStream<'static, (u64, SignedOp)> {
        let forge = self.forge.load(Ordering::SeqCst);
        self.inner
            .follow(from)
            .map(move |(pos, mut op)| {
                if forge && pos == 1 {
                    op.signer = user_key("mallory").account();
                }
                (pos, op)
            })
            .boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_never_stores_a_forged_entry() {
    let mem = MemoryNetwork::new();
    let seq = Keypair::from_seed("seq");
    let log = Arc::new(ForgingLog {
        inner: Default::default(),
        forge: AtomicBool::new(true),
    });
    let members = ["f", "light"].map(|n| Keypair::from_seed(n).account());
    let service = OpLogService::new(log.clone(), members);
    tokio::spawn(serve(
        Arc::new(mem.join(seq.account())),
        vec![service as Arc<dyn Service>],
    ));
    for i in 0..3 {
        log.append(signed_delete("alice", i)).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let follower = RemoteOpLog::start_with(
        Arc::new(mem.join(Keypair::from_seed("f").account())),
        seq.account(),
        Some(DurableOpLog::open(&dir.path().join("replica")).unwrap()),
        RemoteOpLogConfig {
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..RemoteOpLogConfig::default()
        },
    );
    let mut status = follower.status();
    let s = within(
        "error reported",
        status.wait_for(|s| s.last_error.is_some()),
    )
    .await
    .unwrap()
    .clone();
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("not validly signed"),
        "{s:?}"
    );
    // Nothing at or after the forgery was stored (the batch was refused whole).
    assert_eq!(s.replicated, 0);
    // Once the sequencer serves the truth, the follower catches up, in order.
    log.forge.store(false, Ordering::SeqCst);
    within("catch up", follower.wait_replicated(3)).await;
    let got: Vec<_> = follower.follow(0).take(3).collect().await;
    for (i, (pos, op)) in got.into_iter().enumerate() {
        assert_eq!((pos, op), (i as u64, signed_delete("alice", i as u8)));
    }
    // Appends through the follower land in the sequencer's log, at the end.
    assert_eq!(follower.append(signed_delete("bob", 9)).await.unwrap(), 3);
    // An append with a bad signature is refused by the sequencer's service.
    let mut forged = signed_delete("bob", 10);
    forged.signer = user_key("mallory").account();
    assert!(follower.append(forged).await.is_err());
    assert_eq!(log.inner.len(), 4);
    // A follower without a data dir keeps its replica in memory, with the same entries.
    let light = RemoteOpLog::start(
        Arc::new(mem.join(Keypair::from_seed("light").account())),
        seq.account(),
    );
    within("light catch up", light.wait_replicated(4)).await;
    let a: Vec<_> = light.follow(0).take(4).collect().await;
    let b: Vec<_> = follower.follow(0).take(4).collect().await;
    assert_eq!(a, b);
    assert_eq!(light.known_len(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_keepers_may_append_to_or_read_the_log() {
    let mem = MemoryNetwork::new();
    let seq = Keypair::from_seed("seq");
    let log = Arc::new(memo_sdk::replication::MemoryOpLog::new());
    let keeper = Keypair::from_seed("keeper");
    let service = OpLogService::new(log.clone(), [keeper.account()]);
    tokio::spawn(serve(
        Arc::new(mem.join(seq.account())),
        vec![service as Arc<dyn Service>],
    ));
    let stranger: Arc<dyn Transport> = Arc::new(mem.join(Keypair::from_seed("x").account()));
    let k: Arc<dyn Transport> = Arc::new(mem.join(keeper.account()));
    let op = signed_delete("alice", 1);
    let r = memo_sdk::replication::client::append(stranger.as_ref(), seq.account(), &op).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        memo_sdk::replication::client::append(k.as_ref(), seq.account(), &op)
            .await
            .unwrap(),
        0
    );
    // A stranger cannot read the log (it holds every user's signed operations).
    let at = seq.account();
    let read = |t: Arc<dyn Transport>, from: u64| async move {
        memo_sdk::replication::client::read(t.as_ref(), at, from, 10, Duration::ZERO).await
    };
    let refused = read(stranger.clone(), 0).await;
    assert!(
        matches!(&refused, Err(memo_sdk::transport::rpc::RpcError::Remote { error, .. }) if error.code == memo_core::protocol::ErrorCode::Forbidden),
        "{refused:?}"
    );
    let all = read(k.clone(), 0).await.unwrap();
    assert_eq!(all.entries.len(), 1);
    // A read at the end with no wait answers at once, empty.
    let b = read(k, 1).await.unwrap();
    assert_eq!((b.from, b.entries.len(), b.len), (1, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// The chain.

const CHAIN: u64 = 11;

struct AcceptAll;
impl ProofVerifier for AcceptAll {
    fn verify(&self, _: &Challenge, _: &[u8]) -> Result<(), memo_core::proof::ProofError> {
        Ok(())
    }
}

fn genesis() -> Genesis {
    Genesis::new(
        CHAIN,
        Params {
            epoch_blocks: 3,
            ..Params::default()
        },
        ["a", "b"]
            .iter()
            .map(|n| (Keypair::from_seed(n).account(), 1_000_000)),
    )
    .unwrap()
}

fn chain_seq() -> Keypair {
    Keypair::from_seed("chain-sequencer")
}

fn pay(nonce: u64, amount: u64) -> SignedTx {
    let call = Call::Settlement(SettlementCall::Transfer {
        to: Keypair::from_seed("b").account(),
        amount,
    });
    Signed::sign(&Keypair::from_seed("a"), &Tx::new(CHAIN, nonce, call))
}

fn open_follower(path: &Path) -> LocalChain {
    let config = ChainConfig {
        genesis: genesis(),
        sequencer: chain_seq().account(),
    };
    LocalChain::open_follower(path, config, Arc::new(AcceptAll)).unwrap()
}

/// Blocks `from..from+n`, each with one transfer from `a`.
fn produce(c: &LocalChain, from: u64, n: u64) {
    for h in from..from + n {
        c.submit_tx(pay(h - 1, 1)).unwrap();
        c.produce_block(1_000 * h).unwrap();
    }
}

/// A sequencer that, while `lie` is set, serves block `height` with a false state root,
/// signed with its real key (so only re-executing the block exposes it).
struct LyingLedger {
    chain: Arc<LocalChain>,
    lie: AtomicBool,
    height: u64,
}

#[async_trait::async_trait]
impl Ledger for LyingLedger {
    async fn submit(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError> {
        self.chain.submit(tx).await
    }
    async fn tx_status(&self, hash: [u8; 32]) -> Result<TxStatus, LedgerError> {
        self.chain.tx_status(hash).await
    }
    async fn query(&self, query: Query) -> Result<Answer, LedgerError> {
        self.chain.query(query).await
    }
    async fn head(&self) -> Result<Head, LedgerError> {
        self.chain.head().await
    }
    async fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        let b = self.chain.block(height).await?;
        Ok(match b {
            Some(b) if height == self.height && self.lie.load(Ordering::SeqCst) => {
                let mut header = b.header.clone();
                header.state_root = [7; 32];
                Some(Block::seal(header, b.txs, &chain_seq()))
            }
            other => other,
        })
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<Block>> {
        self.chain.subscribe()
    }
}

async fn chain_follower_verifies(fabric: Fabric) {
    let dir = tempfile::tempdir().unwrap();
    let seq = Arc::new(
        LocalChain::open_sequencer(
            &dir.path().join("seq"),
            genesis(),
            chain_seq(),
            Arc::new(AcceptAll),
        )
        .unwrap(),
    );
    produce(&seq, 1, 5);
    let lying = Arc::new(LyingLedger {
        chain: seq.clone(),
        lie: AtomicBool::new(true),
        height: 3,
    });
    let seq_t = fabric.join(&chain_seq()).await;
    tokio::spawn(serve(
        seq_t,
        vec![LedgerService::new(lying.clone()) as Arc<dyn Service>],
    ));

    // Reads and submits through the network.
    let fkey = Keypair::from_seed("chain-follower");
    let ft = fabric.join(&fkey).await;
    let remote = RemoteLedger::new(ft.clone(), chain_seq().account(), Duration::from_millis(20));
    assert_eq!(remote.head().await.unwrap(), seq.head_now());
    let Answer::Status(ChainStatus { chain, height, .. }) =
        remote.query(Query::Status).await.unwrap()
    else {
        panic!("wrong answer")
    };
    assert_eq!((chain, height), (CHAIN, 5));
    let h6 = remote.submit(pay(5, 1)).await.unwrap();
    assert_eq!(remote.tx_status(h6).await.unwrap(), TxStatus::Pending);
    let replay = remote.submit(pay(0, 1)).await.unwrap();
    seq.produce_block(6_000).unwrap();
    assert!(matches!(
        remote.tx_status(h6).await.unwrap(),
        TxStatus::Included { height: 6, .. }
    ));
    // A transaction sent again after its inclusion is not queued twice: its status stays the
    // first inclusion's, and the new block holds only the new transfer.
    assert!(matches!(
        remote.tx_status(replay).await.unwrap(),
        TxStatus::Included { height: 1, .. }
    ));
    assert_eq!(seq.block_at(6).unwrap().unwrap().txs.len(), 1);

    // The follower refuses the falsified block 3 and stays at 2.
    let fpath = dir.path().join("follower");
    let follower = ChainFollower::start(
        Arc::new(open_follower(&fpath)),
        remote.clone(),
        Duration::from_millis(20),
    );
    let mut status = follower.status();
    let s = within("rejection", status.wait_for(|s| s.rejected >= 2))
        .await
        .unwrap()
        .clone();
    assert_eq!(s.height, 2);
    assert!(
        matches!(
            s.last_error,
            Some(LedgerError::Block(
                memo_core::contract::BlockError::StateRoot
            ))
        ),
        "{s:?}"
    );
    assert_eq!(follower.chain().head_now().height, 2);

    // Once the sequencer serves the true block, the follower catches up and keeps up.
    lying.lie.store(false, Ordering::SeqCst);
    within("catch up", follower.wait_height(6)).await;
    seq.submit_tx(pay(6, 1)).unwrap();
    seq.produce_block(7_000).unwrap();
    within("keep up", follower.wait_height(7)).await;
    assert_eq!(follower.chain().head_now(), seq.head_now());

    // Restarted from its data dir, it resumes at its stored head and fetches only the rest.
    let chain = follower.stop().await;
    drop(chain);
    produce(&seq, 8, 3);
    let reopened = Arc::new(open_follower(&fpath));
    assert_eq!(reopened.head_now().height, 7);
    let follower = ChainFollower::start(reopened, remote.clone(), Duration::from_millis(20));
    within("resume", follower.wait_height(10)).await;
    assert_eq!(follower.chain().head_now(), seq.head_now());
    assert_eq!(
        follower.chain().with_contract(|c| c.recompute_root()),
        seq.head_now().state_root
    );

    // A follower refuses submits: served over the network, the refusal is typed.
    let fserve = fabric.join(&Keypair::from_seed("reader")).await;
    let reader_id = fserve.local_id();
    tokio::spawn(serve(
        fserve,
        vec![LedgerService::new(follower.chain().clone()) as Arc<dyn Service>],
    ));
    let via_follower = RemoteLedger::new(ft, reader_id, Duration::from_millis(20));
    assert_eq!(via_follower.head().await.unwrap(), seq.head_now());
    assert!(matches!(
        via_follower.submit(pay(10, 1)).await,
        Err(LedgerError::Remote(_))
    ));
    // Blocks subscribed through the network arrive in order as they are produced (the poller
    // may still be delivering blocks it found before this subscription).
    let mut sub = remote.subscribe();
    let mut produced = 10;
    let mut last = 0;
    within("subscription", async {
        while last <= 10 {
            produced += 1;
            produce(&seq, produced, 1);
            while let Ok(Ok(b)) = tokio::time::timeout(Duration::from_millis(100), sub.recv()).await
            {
                assert!(b.header.height > last, "blocks out of order");
                assert!(
                    last == 0 || b.header.height == last + 1,
                    "a block was skipped"
                );
                assert_eq!(b, Arc::new(seq.block_at(b.header.height).unwrap().unwrap()));
                last = b.header.height;
            }
        }
    })
    .await;
    assert!(last <= produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_follower_verifies_in_memory() {
    within("scenario", chain_follower_verifies(Fabric::memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_follower_verifies_over_libp2p() {
    within("scenario", chain_follower_verifies(Fabric::p2p())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencers_log_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oplog.redb");
    let log = DurableOpLog::open(&path).unwrap();
    let appends: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(signed_delete("alice", i)).await })
        })
        .collect();
    let mut positions = Vec::new();
    for a in appends {
        positions.push(a.await.unwrap().unwrap());
    }
    positions.sort_unstable();
    assert_eq!(positions, (0..20).collect::<Vec<u64>>());
    let before = log.read(0, 100, usize::MAX).unwrap();
    drop(log);
    let log = DurableOpLog::open(&path).unwrap();
    assert_eq!(log.len(), 20);
    assert_eq!(log.read(0, 100, usize::MAX).unwrap(), before);
    assert_eq!(log.verify_all().unwrap(), 20);
    assert_eq!(log.append(signed_delete("bob", 1)).await.unwrap(), 20);
}

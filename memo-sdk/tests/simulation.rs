//! Seeded simulations with dozens of nodes on the in-memory network.
//!
//! - `workload_*`: 4 keepers, 36 providers and 12 users do random puts, gets and deletes
//!   (users act concurrently); afterwards the state is checked against a simple model: what
//!   was acknowledged reads back exactly, reference counts and owners match, non-owners'
//!   deletes were refused, purged chunks left no shard on any provider, every keeper agrees.
//! - `failures_*`: the same scale with repair: providers stop, come back and lose their disks,
//!   two Byzantine providers alter the shards they serve, over many repair rounds; failures
//!   are only injected while no chunk would lose more than m shards at once, and no object is
//!   ever lost. (`tests/repair.rs` has the small-scale version of this simulation, with rotting
//!   disks and a single failure at a time.)
//!
//! Everything random comes from one seed per test (`SIM_SEED` overrides it to explore), so a
//! failure replays with the same plan.

use memo_core::ChunkId;
use memo_core::Keypair;
use memo_core::codec::CodecParams;
use memo_core::id::{AccountId, ObjectId, ShardId};
use memo_core::objects::Objects;
use memo_core::ownership::{MemoryMeta, MemoryShardStore, ShardHealth, ShardStore};
use memo_core::testkit::random_bytes;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::ClientError;
use memo_sdk::keeper::repair::{RepairConfig, Repairer};
use memo_sdk::local::{LocalNetwork, LocalSpec};
use memo_sdk::transport::fault::{FaultConfig, FaultTransport};

mod common;
use common::{Registry, registry};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const K: usize = 3;
const M: usize = 2;

fn params() -> CodecParams {
    CodecParams {
        chunk_size: 4096,
        data_shards: K as u8,
        parity_shards: M as u8,
    }
}

fn seed(default: u64) -> u64 {
    let s = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("simulation seed {s} (SIM_SEED=N replays or explores)");
    s
}

/// Everything one keeper knows, for comparing keepers: the registry, and each user's objects
/// (id, size, refs) and reference count on each chunk.
type KeeperView = (
    Registry,
    BTreeMap<AccountId, Vec<(ObjectId, u64, u64)>>,
    BTreeMap<ChunkId, Vec<(AccountId, u64)>>,
);

fn keeper_view(o: &Objects<MemoryMeta>, users: &[AccountId]) -> KeeperView {
    let reg = registry(o);
    let objects = users
        .iter()
        .map(|u| {
            let list = o.list(u).iter().map(|e| (e.id, e.size, e.refs)).collect();
            (*u, list)
        })
        .collect();
    let owners = reg
        .keys()
        .map(|c| {
            let mut v = o.ownership().owners(c).unwrap();
            v.sort();
            (*c, v)
        })
        .collect();
    (reg, objects, owners)
}

// ---------------------------------------------------------------------------------------------
// Random workload

/// Contents users store. Contents come in families of two that share a seed: the shorter is a
/// prefix of the longer, so they share their leading chunks (dedup across objects).
struct Content {
    name: String,
    bytes: Vec<u8>,
    family: usize,
}

fn contents(rng: &mut StdRng, families: usize) -> Vec<Content> {
    let mut out = Vec::new();
    for f in 0..families {
        let long = rng.random_range(9_000..30_000);
        let short = rng.random_range(4_097..long - 100);
        let full = random_bytes(long, 100 + f as u8);
        for (i, len) in [short, long].into_iter().enumerate() {
            out.push(Content {
                name: format!("f{f}-{i}"),
                bytes: full[..len].to_vec(),
                family: f,
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Put(usize),
    /// Reads content `.0`: exact bytes if the user owns it, `NotFound` otherwise.
    Get(usize),
    DeleteOwn(usize),
    /// Deletes, by id, a content the user does not own (someone else may): refused.
    DeleteForeign(usize),
    /// Nothing this step (another user changes the content's family).
    Idle,
}

/// The model: each user's reference count on each content, plus what the network told us
/// about each content (object id, chunks) once it was first stored.
#[derive(Default)]
struct Model {
    refs: BTreeMap<(usize, usize), u64>,
    ids: BTreeMap<usize, ObjectId>,
    chunks: BTreeMap<usize, Vec<ChunkId>>,
    /// Each such chunk's shards.
    shards: BTreeMap<ChunkId, Vec<ShardId>>,
}

impl Model {
    fn refs(&self, user: usize, c: usize) -> u64 {
        self.refs.get(&(user, c)).copied().unwrap_or(0)
    }
    fn live(&self, c: usize) -> bool {
        self.refs.iter().any(|(&(_, x), &n)| x == c && n > 0)
    }
    /// The chunks some live content refers to.
    fn live_chunks(&self) -> BTreeSet<ChunkId> {
        self.chunks
            .iter()
            .filter(|(c, _)| self.live(**c))
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }
}

/// One step's plan: at most one op per user, and at most one put or delete per content family
/// (so the outcome of a step does not depend on how its ops interleave).
fn plan_step(rng: &mut StdRng, model: &Model, users: usize, contents: &[Content]) -> Vec<Op> {
    let mut touched = BTreeSet::new();
    let mut ops = Vec::new();
    for u in 0..users {
        let owned: Vec<usize> = (0..contents.len())
            .filter(|&c| model.refs(u, c) > 0)
            .collect();
        let foreign: Vec<usize> = model
            .ids
            .keys()
            .copied()
            .filter(|&c| model.refs(u, c) == 0)
            .collect();
        let op = match rng.random_range(0..100) {
            0..35 => Op::Put(rng.random_range(0..contents.len())),
            35..55 if !owned.is_empty() => Op::Get(owned[rng.random_range(0..owned.len())]),
            55..60 => Op::Get(rng.random_range(0..contents.len())),
            60..88 if !owned.is_empty() => Op::DeleteOwn(owned[rng.random_range(0..owned.len())]),
            88..100 if !foreign.is_empty() => {
                Op::DeleteForeign(foreign[rng.random_range(0..foreign.len())])
            }
            _ => Op::Put(rng.random_range(0..contents.len())),
        };
        let family = match op {
            Op::Put(c) | Op::DeleteOwn(c) => Some(contents[c].family),
            Op::Get(_) | Op::DeleteForeign(_) | Op::Idle => None,
        };
        // Another user changes this family this step: this one idles.
        let clash = family.is_some_and(|f| !touched.insert(f));
        ops.push(if clash { Op::Idle } else { op });
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_dozens_of_nodes_matches_a_model() {
    let seed = seed(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let users: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let spec = LocalSpec {
        keepers: 4,
        providers: 36,
        users: users.clone(),
        provider_capacity: 1 << 30,
        params: params(),
        ..LocalSpec::default()
    };
    let (_mem, net) = memo_sdk::local::memory_network(&spec).await.unwrap();
    let clients: Vec<_> = users.iter().map(|n| net.user(n).unwrap()).collect();
    let accounts: Vec<AccountId> = clients.iter().map(|c| c.account()).collect();
    let contents = contents(&mut rng, 8);
    let mut model = Model::default();
    let (mut puts, mut dedup_puts, mut deletes, mut refused, mut reads, mut purges) =
        (0, 0, 0, 0, 0, 0);
    let mut purged_chunks = 0;

    for step in 0..60 {
        let plan = plan_step(&mut rng, &model, users.len(), &contents);
        let live_before: Vec<bool> = (0..contents.len()).map(|c| model.live(c)).collect();
        let results = common::within(
            "step",
            futures::future::join_all(plan.iter().enumerate().map(|(u, op)| {
                let client = clients[u];
                let contents = &contents;
                let id = match op {
                    Op::DeleteForeign(c) => Some(model.ids[c]),
                    _ => None,
                };
                async move {
                    match *op {
                        Op::Put(c) => client
                            .put_bytes(&contents[c].name, &contents[c].bytes)
                            .await
                            .map(Some),
                        Op::Idle => Ok(None),
                        Op::Get(c) => match client.get_bytes(&contents[c].name).await {
                            Ok(got) => {
                                assert!(
                                    got == contents[c].bytes,
                                    "step {step}: user{u} read {} wrong",
                                    contents[c].name
                                );
                                Ok(None)
                            }
                            Err(e) => Err(e),
                        },
                        Op::DeleteOwn(c) => client.delete(&contents[c].name).await.map(|_| None),
                        Op::DeleteForeign(_) => {
                            client.delete(&id.unwrap().to_hex()).await.map(|_| None)
                        }
                    }
                }
            })),
        )
        .await;
        // Fold the outcomes into the model, checking each against it.
        for (u, (op, result)) in plan.iter().zip(results).enumerate() {
            match *op {
                Op::Put(c) => {
                    let report = result
                        .unwrap_or_else(|e| panic!("step {step}: user{u} put {c}: {e}"))
                        .unwrap();
                    if let Some(id) = model.ids.get(&c) {
                        assert_eq!(report.id, *id, "the same content gets the same object id");
                    }
                    model.ids.insert(c, report.id);
                    if live_before[c] {
                        // Stored already (by anyone): no shard traffic.
                        assert_eq!(report.uploaded_chunks, 0, "step {step}: put {c}");
                        dedup_puts += 1;
                    } else {
                        assert!(report.uploaded_chunks > 0, "step {step}: put {c}");
                    }
                    *model.refs.entry((u, c)).or_default() += 1;
                    puts += 1;
                }
                Op::Idle => {}
                Op::Get(c) if model.refs(u, c) > 0 => {
                    result.unwrap_or_else(|e| panic!("step {step}: user{u} get {c}: {e}"));
                    reads += 1;
                }
                Op::Get(c) => assert!(
                    matches!(result, Err(ClientError::NotFound(_))),
                    "step {step}: user{u} reads {c}, which it does not own: {result:?}"
                ),
                Op::DeleteOwn(c) => {
                    result.unwrap_or_else(|e| panic!("step {step}: user{u} delete {c}: {e}"));
                    *model.refs.get_mut(&(u, c)).unwrap() -= 1;
                    deletes += 1;
                    if !model.live(c) {
                        purges += 1;
                    }
                }
                Op::DeleteForeign(c) => {
                    assert!(
                        matches!(result, Err(ClientError::Refused(ref m)) if m.contains("not an owner")),
                        "step {step}: user{u} deletes {c}, which it does not own: {result:?}"
                    );
                    refused += 1;
                }
            }
        }
        // Chunks of each content, once (the first time it is stored).
        common::keepers_caught_up(&net).await;
        for (c, content) in contents.iter().enumerate() {
            if model.chunks.contains_key(&c) || !model.live(c) {
                continue;
            }
            let owner = (0..users.len()).find(|&u| model.refs(u, c) > 0).unwrap();
            let st = clients[owner].stat(&content.name).await.unwrap();
            let chunks: Vec<ChunkId> = st.chunks.iter().map(|s| s.chunk).collect();
            assert_eq!(chunks.last().map(|c| c.0), Some(model.ids[&c].0));
            for chunk in &chunks {
                let shards = net.keepers[0].inspect(|o| {
                    let e = o.ownership().chunk(chunk).unwrap().unwrap();
                    e.shards.iter().map(|s| s.id).collect::<Vec<_>>()
                });
                model.shards.insert(*chunk, shards);
            }
            model.chunks.insert(c, chunks);
        }
        // The last delete of a content purged every shard of its chunks that no live content
        // shares, from every provider, before the delete returned.
        let live = model.live_chunks();
        for c in (0..contents.len()).filter(|&c| live_before[c] && !model.live(c)) {
            for chunk in model.chunks[&c].iter().filter(|ch| !live.contains(ch)) {
                purged_chunks += 1;
                for shard in &model.shards[chunk] {
                    for p in &net.providers {
                        assert!(
                            !p.service.store().has(shard).unwrap(),
                            "step {step}: {} was deleted by its last owner, but provider {:?} \
                             still holds shard {shard:?}",
                            contents[c].name,
                            p.account()
                        );
                    }
                }
            }
        }
    }
    eprintln!(
        "{puts} puts ({dedup_puts} deduplicated), {reads} reads, {deletes} deletes \
         ({purges} purges, {purged_chunks} chunks purged), {refused} refused deletes"
    );
    // The plan exercised what it is meant to.
    assert!(puts >= 50 && dedup_puts >= 10 && deletes >= 20 && refused >= 5);
    assert!(purges >= 2 && purged_chunks >= 2);

    common::keepers_caught_up(&net).await;

    // Every user's listing and account match the model.
    for (u, client) in clients.iter().enumerate() {
        let mut want: BTreeMap<ObjectId, (String, u64)> = BTreeMap::new();
        for (c, content) in contents.iter().enumerate() {
            if model.refs(u, c) > 0 {
                want.insert(model.ids[&c], (content.name.clone(), model.refs(u, c)));
            }
        }
        let got: BTreeMap<ObjectId, (String, u64)> = client
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.id, (o.name, o.refs)))
            .collect();
        assert_eq!(got, want, "user{u}'s objects");
        let account = client.account_status().await.unwrap();
        assert_eq!(account.objects, want.len() as u64, "user{u}");
        assert_eq!(
            account.stored_bytes == 0,
            want.is_empty(),
            "user{u}: {account:?}"
        );
    }
    // Every acknowledged, not deleted object reads back exactly, for every owner.
    for (c, content) in contents.iter().enumerate() {
        for (u, client) in clients.iter().enumerate() {
            if model.refs(u, c) > 0 {
                let got = client.get_bytes(&content.name).await;
                assert!(
                    got.as_ref().is_ok_and(|g| *g == content.bytes),
                    "user{u} reads {} back wrong: {:?}",
                    content.name,
                    got.map(|g| g.len())
                );
            }
        }
    }

    // Every keeper has the same state.
    let views: Vec<KeeperView> = net
        .keepers
        .iter()
        .map(|k| k.inspect(|o| keeper_view(o, &accounts)))
        .collect();
    for (i, v) in views.iter().enumerate().skip(1) {
        assert!(*v == views[0], "keeper {i} disagrees with keeper 0");
    }
    let (reg, _, owners) = &views[0];

    // Reference counts: each user's count on a chunk is its references to the objects that
    // contain the chunk; a chunk is registered exactly while someone refers to it.
    let mut want_owners: BTreeMap<ChunkId, BTreeMap<AccountId, u64>> = BTreeMap::new();
    for (&(u, c), &n) in &model.refs {
        if n == 0 {
            continue;
        }
        for chunk in &model.chunks[&c] {
            *want_owners
                .entry(*chunk)
                .or_default()
                .entry(accounts[u])
                .or_default() += n;
        }
    }
    let got_owners: BTreeMap<ChunkId, BTreeMap<AccountId, u64>> = owners
        .iter()
        .map(|(c, v)| (*c, v.iter().copied().collect()))
        .collect();
    assert_eq!(got_owners, want_owners, "chunk owners and reference counts");
    assert_eq!(
        reg.keys().collect::<BTreeSet<_>>(),
        want_owners.keys().collect::<BTreeSet<_>>(),
        "registered chunks"
    );
    let shared = want_owners.values().filter(|o| o.len() > 1).count();
    assert!(shared > 0, "no chunk ended up with two owners");

    // Providers hold exactly the shards the registry places on them, each intact on a distinct
    // provider: the last delete of a chunk purged its shards from every provider.
    let mut placed: BTreeMap<AccountId, BTreeSet<ShardId>> = BTreeMap::new();
    for slots in reg.values() {
        let holders: BTreeSet<_> = slots.iter().map(|s| s.1.unwrap()).collect();
        assert_eq!(holders.len(), K + M);
        for (id, holder, health) in slots {
            assert_eq!(*health, ShardHealth::Healthy);
            placed.entry(holder.unwrap()).or_default().insert(*id);
        }
    }
    for p in &net.providers {
        let store = p.service.store();
        let have: BTreeSet<ShardId> = store.list().unwrap().into_iter().collect();
        let want = placed.remove(&p.account()).unwrap_or_default();
        assert_eq!(have, want, "provider {:?} holds other shards", p.account());
        for id in &have {
            assert_eq!(ShardId::of(&store.get(id).unwrap().unwrap()), *id);
        }
    }
    assert!(placed.is_empty(), "shards placed on unknown providers");
}

// ---------------------------------------------------------------------------------------------
// Failures and Byzantine providers, with repair

/// `common::fast_repair` with 8 repairs at once, and keeper audits and the orphan sweep as by
/// default (audits find Byzantine providers that nobody reads from).
fn repair_config() -> RepairConfig {
    let d = RepairConfig::default();
    RepairConfig {
        max_concurrent: 8,
        audit_shards: d.audit_shards,
        audit_burst: d.audit_burst,
        orphan_grace: d.orphan_grace,
        sweep_every: d.sweep_every,
        ..common::fast_repair()
    }
}

struct FailureSim {
    mem: MemoryNetwork,
    net: LocalNetwork<MemoryShardStore>,
    byzantine: Vec<(usize, Arc<FaultTransport>)>,
    repairers: Vec<Arc<Repairer>>,
    /// Acknowledged objects: (owner, name, bytes).
    objects: Vec<(usize, String, Vec<u8>)>,
    down: BTreeSet<usize>,
}

impl FailureSim {
    async fn new(keepers: usize, providers: usize, users: usize, byzantine: &[usize]) -> Self {
        let spec = LocalSpec {
            keepers,
            providers,
            users: (0..users).map(|i| format!("user{i}")).collect(),
            provider_capacity: 1 << 30,
            params: params(),
            ..LocalSpec::default()
        };
        let mem = MemoryNetwork::new();
        let byz: BTreeMap<AccountId, usize> = byzantine
            .iter()
            .map(|&i| (Keypair::from_seed(&format!("provider-{i}")).account(), i))
            .collect();
        let faults = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m2, f2) = (mem.clone(), faults.clone());
        let net = LocalNetwork::start(
            &spec,
            move |kp| {
                let t: Arc<dyn Transport> = Arc::new(m2.join(kp.account()));
                match byz.get(&kp.account()) {
                    Some(&i) => {
                        // Honest until `byzantine_on`.
                        let f = Arc::new(FaultTransport::new(t, FaultConfig::none(i as u64)));
                        f2.lock().unwrap().push((i, f.clone()));
                        f
                    }
                    None => t,
                }
            },
            |_| MemoryShardStore::new(),
        )
        .await
        .unwrap();
        let repairers = net.repairers(&repair_config());
        let byzantine = std::mem::take(&mut *faults.lock().unwrap());
        Self {
            mem,
            net,
            byzantine,
            repairers,
            objects: Vec::new(),
            down: BTreeSet::new(),
        }
    }

    fn provider(&self, i: usize) -> AccountId {
        self.net.providers[i].account()
    }

    fn store(&self, i: usize) -> &MemoryShardStore {
        self.net.providers[i].service.store()
    }

    fn set_byzantine(&self, share: f64) {
        for (i, f) in &self.byzantine {
            f.set_config(FaultConfig {
                corrupt_replies: share,
                ..FaultConfig::none(*i as u64)
            });
        }
    }

    fn registry(&self, k: usize) -> Registry {
        self.net.keepers[k].inspect(registry)
    }

    /// The most shards any chunk has lost (unreachable, gone from the disk, or held by a
    /// Byzantine provider), if providers `down` were down and providers `wiped` lost their
    /// disks now.
    fn worst_chunk(&self, down: &BTreeSet<usize>, wiped: Option<usize>) -> usize {
        let index: BTreeMap<AccountId, usize> = (0..self.net.providers.len())
            .map(|i| (self.provider(i), i))
            .collect();
        let bad = |holder: &Option<AccountId>, shard: &ShardId| {
            let Some(&i) = holder.as_ref().and_then(|h| index.get(h)) else {
                return true;
            };
            down.contains(&i)
                || wiped == Some(i)
                || self.byzantine.iter().any(|(b, _)| *b == i)
                || !self.store(i).has(shard).unwrap()
        };
        self.registry(0)
            .values()
            .map(|slots| slots.iter().filter(|s| bad(&s.1, &s.0)).count())
            .max()
            .unwrap_or(0)
    }

    async fn rounds(&self, n: usize) {
        for _ in 0..n {
            for r in &self.repairers {
                common::within("repair round", r.round()).await;
            }
            for r in &self.repairers {
                common::within("repairs settling", r.settle()).await;
            }
        }
    }

    /// What the next epoch's storage challenges would find: every shard provider `p` is
    /// registered to hold fails its proof.
    async fn fail_proofs(&self, p: usize) {
        let who = self.provider(p);
        for slots in self.registry(0).values() {
            for (id, holder, _) in slots {
                if *holder == Some(who) {
                    self.repairers[p % self.repairers.len()]
                        .report_failed_proof(who, *id)
                        .await;
                }
            }
        }
    }

    /// Every acknowledged object reads back exactly.
    async fn check_reads(&self, when: &str) {
        for (u, name, bytes) in &self.objects {
            let got = self.net.users[*u].1.get_bytes(name).await;
            assert!(
                got.as_ref().is_ok_and(|g| g == bytes),
                "{when}: {name} read back wrong: {:?}",
                got.map(|g| g.len())
            );
        }
    }

    /// True if every chunk has k + m Healthy shards on distinct holders, on every keeper.
    fn all_healthy(&self) -> bool {
        common::all_healthy(&self.net)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_byzantine_providers_lose_no_data_with_dozens_of_nodes() {
    let seed = seed(11);
    let mut rng = StdRng::seed_from_u64(seed);
    let byzantine = [34, 35];
    let mut sim = FailureSim::new(4, 36, 3, &byzantine).await;
    for i in 0..14u8 {
        let u = i as usize % 3;
        let name = format!("obj{i}");
        let bytes = random_bytes(rng.random_range(3_000..24_000), 50 + i);
        sim.net.users[u].1.put_bytes(&name, &bytes).await.unwrap();
        sim.objects.push((u, name, bytes));
    }
    sim.set_byzantine(0.3);
    let honest: Vec<usize> = (0..36).filter(|i| !byzantine.contains(i)).collect();
    let (mut stops, mut wipes, mut comebacks, mut skipped, mut worst) = (0, 0, 0, 0, 0);
    let mut most_down = 0;
    for epoch in 0..30 {
        // Inject failures, but never so many that a chunk loses more than m shards.
        for _ in 0..2 {
            let p = honest[rng.random_range(0..honest.len())];
            match rng.random_range(0..10) {
                0..4 if !sim.down.contains(&p) => {
                    let mut down = sim.down.clone();
                    down.insert(p);
                    if sim.worst_chunk(&down, None) <= M {
                        sim.mem.set_down(sim.provider(p));
                        sim.down = down;
                        stops += 1;
                    } else {
                        skipped += 1;
                    }
                }
                4..6 if !sim.down.contains(&p) => {
                    if sim.worst_chunk(&sim.down, Some(p)) <= M {
                        let store = sim.store(p);
                        for id in store.list().unwrap() {
                            store.delete(&id).unwrap();
                        }
                        sim.fail_proofs(p).await;
                        wipes += 1;
                    } else {
                        skipped += 1;
                    }
                }
                6..9 if !sim.down.is_empty() => {
                    let back: Vec<usize> = sim.down.iter().copied().collect();
                    let q = back[rng.random_range(0..back.len())];
                    sim.mem.set_up(sim.provider(q));
                    sim.down.remove(&q);
                    comebacks += 1;
                }
                _ => {}
            }
        }
        most_down = most_down.max(sim.down.len());
        let w = sim.worst_chunk(&sim.down, None);
        assert!(w <= M, "epoch {epoch}: a chunk lost {w} shards");
        worst = worst.max(w);
        if epoch % 6 == 5 {
            // A new object while things are failing; only acknowledged ones count.
            let u = epoch % 3;
            let name = format!("late{epoch}");
            let bytes = random_bytes(rng.random_range(3_000..12_000), epoch as u8);
            if sim.net.users[u].1.put_bytes(&name, &bytes).await.is_ok() {
                sim.objects.push((u, name, bytes));
            }
        }
        sim.rounds(1).await;
        sim.check_reads(&format!("epoch {epoch}")).await;
    }
    let stats: Vec<_> = sim.repairers.iter().map(|r| r.stats()).collect();
    let faults: u64 = sim.byzantine.iter().map(|(_, f)| f.stats().corrupted).sum();
    eprintln!(
        "{stops} stops, {wipes} wipes, {comebacks} comebacks, {skipped} skipped, at most {most_down} \
         down at once, worst chunk lost {worst}; {faults} replies altered; {stats:?}"
    );
    assert!(stops + wipes >= 10, "too few failures injected");
    assert!(most_down >= 2, "never two providers down at once");
    assert_eq!(worst, M, "no chunk was ever at the limit of m lost shards");
    assert!(faults > 0, "the Byzantine providers never altered a reply");
    let repaired: u64 = stats.iter().map(|s| s.chunks_repaired).sum();
    assert!(repaired > 0);

    // Everything comes back; every chunk returns to k + m healthy shards on distinct providers.
    for p in std::mem::take(&mut sim.down) {
        sim.mem.set_up(sim.provider(p));
    }
    sim.set_byzantine(0.0);
    let mut rounds = 0;
    while !sim.all_healthy() {
        rounds += 1;
        assert!(rounds <= 20, "not healthy after 20 rounds");
        sim.rounds(1).await;
    }
    sim.check_reads("the end").await;
    common::keepers_caught_up(&sim.net).await;
    let reg = sim.registry(0);
    for k in 1..sim.net.keepers.len() {
        assert!(sim.registry(k) == reg, "keeper {k} disagrees with keeper 0");
    }
    // Every registered holder really holds its shard, intact.
    let index: BTreeMap<AccountId, usize> = (0..36).map(|i| (sim.provider(i), i)).collect();
    for slots in reg.values() {
        for (id, holder, _) in slots {
            let store = sim.store(index[&holder.unwrap()]);
            let bytes = store.get(id).unwrap().expect("registered shard is held");
            assert_eq!(ShardId::of(&bytes), *id);
        }
    }
}

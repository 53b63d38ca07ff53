//! Refcount throughput of the ownership state machine on redb with durable commits.
//!
//! For each registry size (default 10 thousand, 1 million and 10 million chunks; override with
//! `MEMO_BENCH_SIZES=10000,100000`), a fresh database is filled with that many placed chunks (each
//! owned once, 4+2 shards) in unsynced batches, then aged: 2n rewrites of random chunks go
//! through the store's write path, so its cleaner has turned the table over and runs during
//! the measurement at every size, as in a long-running keeper (see `RedbMeta`'s layout); then
//! it is made durable. Then, each as one durable redb transaction per object of 64 chunks:
//! - put 64 new: 64 chunks nobody holds (registered, awaiting placement);
//! - put 64 shared: 64 random registered chunks another user now also owns (dedup, no data);
//! - delete 64: the user deletes those shared objects again (released, no purge);
//! - delete 64 purge: the user deletes the new objects (last owner: registry entry removed).
//!
//! Each size is measured three ways:
//! - **1**: one object per durable redb commit (`Ownership::put_object`/`delete_object`);
//! - **32**: group commit, 32 objects per durable redb commit (`Ownership::apply_batch`, each
//!   object still all-or-nothing);
//! - **log**: the keeper's path. Each object's signed operation is appended to the durable op
//!   log (`DurableOpLog`: fsync'd group commit, 32 appenders at once standing for concurrent
//!   users; an append returns only once durable, which is when a keeper acknowledges), and a
//!   follower applies the log to redb through `RedbMeta::log_at` in unsynced transactions of
//!   whatever entries are ready, with a durable checkpoint every 1024 entries
//!   (`DEFAULT_CHECKPOINT_EVERY`; each size's 1280 entries pay for one). The time runs from the
//!   first append until the follower has applied the last entry. Signing and checking each
//!   operation's signature are included.
//!
//! All sizes are populated first, then measured in turns: each of `MEMO_BENCH_ROUNDS` rounds
//! (default 5) runs every row at every size on its share of the objects, so that the machine
//! drifting (this VM's fsync latency moves by tens of percent within minutes) weighs on every
//! size alike. A figure is the mean over the rounds.
//! `MEMO_BENCH_OBJECTS` sets how many objects each phase measures in all (default 320).
//! `MEMO_BENCH_CKPT` sets the log entries between durable checkpoints in the log rows.
//! `MEMO_BENCH_CACHE_MB` sets redb's page cache (default: redb's 1 GiB). Before measuring, the
//! database is read once (`RedbMeta::warm_cache`), as a long-running keeper's cache would be.
//! `MEMO_BENCH_DIR` picks the directory for the databases (default: the system temp dir).
//! `MEMO_BENCH_ROWS` picks the rows to run (default `1,32,log`), e.g. to profile one of them.
//!
//! Run: `cargo bench -p memo-sdk --bench refcount`

use futures::StreamExt;
use memo_core::ownership::{
    Account, ChunkEntry, ChunkInfo, MetaStore, MetaTxn, ObjectChunks, ObjectOp, Ownership,
    ShardHealth, ShardSlot, StoreError,
};
use memo_core::{AccountId, ChunkId, ShardId};
use memo_core::{Keypair, ObjectId, Signed, objects};
use memo_sdk::replication::{DurableOpLog, OpLog};
use memo_sdk::store::RedbMeta;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// As in the `memo` binary (see `memo_sdk::alloc`).
#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

const PER_OBJECT: usize = 64;
/// Objects per durable commit in the group-commit rows.
const GROUP: usize = 32;
const SHARDS: usize = 6;
const STORED: u64 = 6 * 262_160;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn chunk_id(i: u64) -> ChunkId {
    ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn info(id: ChunkId) -> ChunkInfo {
    let shards = (0..SHARDS as u8)
        .map(|j| {
            let mut s = id.0;
            s[0] ^= j + 1;
            ShardId(s)
        })
        .collect();
    ChunkInfo {
        id,
        stored_bytes: STORED,
        shards,
    }
}

fn placed_entry(id: ChunkId, i: u64) -> ChunkEntry {
    let mut e = ChunkEntry::unplaced(&info(id));
    for (j, s) in e.shards.iter_mut().enumerate() {
        *s = ShardSlot {
            holder: Some(AccountId([((i + j as u64) % 200) as u8; 32])),
            ..s.clone()
        };
        s.health = ShardHealth::Healthy;
    }
    e
}

/// Registers chunks `chunk_id(0..n)`, each placed and owned once, then ages the table.
fn populate(meta: &RedbMeta, n: u64) {
    let ids: Vec<ChunkId> = (0..n).map(chunk_id).collect();
    const OWNERS: u64 = 16;
    const BATCH: usize = 4096;
    let owner = |i: u64| AccountId([(i % OWNERS) as u8 + 1; 32]);
    let mut usage = [0u64; OWNERS as usize];
    for (b, batch) in ids.chunks(BATCH).enumerate() {
        meta.write_unsynced(|t: &mut dyn MetaTxn| {
            for (k, id) in batch.iter().enumerate() {
                let i = (b * BATCH + k) as u64;
                t.set_refcount(id, &owner(i), 1)?;
                t.put_chunk(id, &placed_entry(*id, i))?;
                usage[(i % OWNERS) as usize] += STORED;
            }
            Ok::<_, StoreError>(())
        })
        .expect("populate");
    }
    // Age the table as a long-running keeper's would be: 2n rewrites of random chunks (same
    // values) through the store's write path, so the cleaner has turned the table over and
    // its garbage is spread the way its own cleaning leaves it, at every size.
    let mut rng = Rng(n ^ 0xa6e);
    for _ in 0..(2 * n).div_ceil(BATCH as u64) {
        meta.write_unsynced(|t: &mut dyn MetaTxn| {
            for _ in 0..BATCH {
                let i = rng.next() % n;
                t.set_refcount(&ids[i as usize], &owner(i), 1)?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("age");
    }
    meta.write(|t: &mut dyn MetaTxn| {
        for (o, u) in usage.iter().enumerate() {
            t.put_account(
                &AccountId([o as u8 + 1; 32]),
                &Account {
                    usage: *u,
                    quota: u64::MAX,
                },
            )?;
        }
        Ok::<_, StoreError>(())
    })
    .expect("durable commit");
}

/// Seconds per object for the four phases, committing `batch` objects per durable transaction.
fn measure(
    own: &Ownership<RedbMeta>,
    user: AccountId,
    fresh: &[ObjectChunks],
    shared: &[ObjectChunks],
    batch: usize,
) -> [f64; 4] {
    let run = |objects: &[ObjectChunks], put: bool| -> f64 {
        let t = Instant::now();
        for group in objects.chunks(batch) {
            let ops: Vec<ObjectOp> = group
                .iter()
                .map(|o| match put {
                    true => ObjectOp::Put {
                        user,
                        object: o.clone(),
                    },
                    false => ObjectOp::Delete {
                        user,
                        object: o.clone(),
                    },
                })
                .collect();
            if batch == 1 {
                // The plain single-object path.
                match &ops[0] {
                    ObjectOp::Put { object, .. } => {
                        drop(own.put_object(user, object).expect("put"))
                    }
                    ObjectOp::Delete { object, .. } => {
                        drop(own.delete_object(user, object).expect("delete"))
                    }
                }
            } else {
                for r in own.apply_batch(&ops).expect("batch") {
                    r.expect("object in batch");
                }
            }
        }
        t.elapsed().as_secs_f64() / objects.len() as f64
    };
    [
        run(fresh, true),
        run(shared, true),
        run(shared, false),
        run(fresh, false),
    ]
}

/// Log entries between durable redb checkpoints in the log rows: the default, so each size's
/// 4 × 320 entries pay for one checkpoint.
const CHECKPOINT_EVERY: u64 = memo_sdk::store::DEFAULT_CHECKPOINT_EVERY;
/// Concurrent appenders in the log rows.
const APPENDERS: usize = 32;

/// Seconds per object for the four phases on the keeper's path (see the module docs).
fn measure_logged(
    rt: &tokio::runtime::Runtime,
    log: &DurableOpLog,
    meta: &RedbMeta,
    key: &Keypair,
    fresh: &[ObjectChunks],
    shared: &[ObjectChunks],
) -> [f64; 4] {
    // The keeper's object index: object id -> chunks (a delete names only the object).
    let mut index: HashMap<ObjectId, ObjectChunks> = HashMap::new();
    let object_id = |set: u8, i: usize| {
        let mut id = [set; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        ObjectId(id)
    };
    for (set, objs) in [(1u8, fresh), (2, shared)] {
        for (i, o) in objs.iter().enumerate() {
            index.insert(object_id(set, i), o.clone());
        }
    }
    let run = |set: u8, objs: &[ObjectChunks], put: bool| -> f64 {
        let ops: Arc<Vec<objects::ObjectOp>> = Arc::new(
            objs.iter()
                .enumerate()
                .map(|(i, o)| match put {
                    true => objects::ObjectOp::Put {
                        object: object_id(set, i),
                        size: 0,
                        needed: 4,
                        sealed: Vec::new(),
                        chunks: o.chunks.clone(),
                        placements: Vec::new(),
                        receipts: Vec::new(),
                        possession: Vec::new(),
                    },
                    false => objects::ObjectOp::Delete {
                        object: object_id(set, i),
                    },
                })
                .collect(),
        );
        let start = meta.applied().expect("applied");
        let end = start + ops.len() as u64;
        let t = Instant::now();
        // Users: sign, the keeper checks the signature and appends; each waits for durability.
        let next = Arc::new(AtomicUsize::new(0));
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|_| {
                let (ops, next, log, key) = (ops.clone(), next.clone(), log.clone(), key.clone());
                rt.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(op) = ops.get(i) else { break };
                        let envelope = objects::OpEnvelope::new(op.clone(), i as u64, u64::MAX);
                        let signed = Signed::sign(&key, &envelope);
                        signed.verify().expect("signature");
                        log.append(signed).await.expect("durable append");
                    }
                })
            })
            .collect();
        // The follower: applies whatever entries are ready, one transaction per batch.
        let mut entries = log.follow(start).ready_chunks(256);
        let mut applied = start;
        while applied < end {
            let batch = rt.block_on(entries.next()).expect("log stream");
            let first = batch[0].0;
            let owned: Vec<ObjectOp> = batch
                .iter()
                .map(|(_, signed)| match signed.open().expect("entry").op {
                    objects::ObjectOp::Put { chunks, .. } => ObjectOp::Put {
                        user: signed.signer,
                        object: ObjectChunks::new(chunks),
                    },
                    objects::ObjectOp::Delete { object }
                    | objects::ObjectOp::DeleteNamed { object, .. } => ObjectOp::Delete {
                        user: signed.signer,
                        object: index[&object].clone(),
                    },
                    objects::ObjectOp::Keeper(_) => unreachable!("no keeper ops here"),
                })
                .collect();
            let n = owned.len() as u64;
            for r in Ownership::new(meta.log_at(first, n))
                .apply_batch(&owned)
                .expect("apply")
            {
                r.expect("object in batch");
            }
            applied = first + n;
        }
        let dt = t.elapsed().as_secs_f64() / ops.len() as f64;
        for a in appenders {
            rt.block_on(a).expect("appender");
        }
        dt
    };
    [
        run(1, fresh, true),
        run(2, shared, true),
        run(2, shared, false),
        run(1, fresh, false),
    ]
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn fsync_latency(dir: &std::path::Path) -> f64 {
    let p = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&p).expect("probe");
    let t = Instant::now();
    for _ in 0..100 {
        f.write_all(&[0u8; 4096]).expect("probe");
        f.sync_data().expect("probe");
    }
    let dt = t.elapsed().as_secs_f64() / 100.0;
    let _ = std::fs::remove_file(p);
    dt
}

/// One registry size under test: its database, op log and what populating it took.
struct Registry {
    n: u64,
    own: Ownership<RedbMeta>,
    log: DurableOpLog,
    populate_secs: f64,
    db_bytes: u64,
    /// Per row label: per round, seconds per object of the four phases.
    times: std::collections::BTreeMap<&'static str, Vec<[f64; 4]>>,
}

/// Fresh (never stored) and shared (random registered) objects for one measurement.
fn object_sets(
    n: u64,
    count: usize,
    salt: u64,
    rng: &mut Rng,
) -> (Vec<ObjectChunks>, Vec<ObjectChunks>) {
    let fresh = (0..count as u64)
        .map(|o| {
            ObjectChunks::new(
                (0..PER_OBJECT as u64)
                    .map(|j| info(chunk_id(u64::MAX - salt - o * 1000 - j)))
                    .collect(),
            )
        })
        .collect();
    // `populate` registered chunk_id(0..n).
    let shared = (0..count)
        .map(|_| {
            ObjectChunks::new(
                (0..PER_OBJECT)
                    .map(|_| info(chunk_id(rng.next() % n)))
                    .collect(),
            )
        })
        .collect();
    (fresh, shared)
}

fn main() {
    let sizes = env_list("MEMO_BENCH_SIZES", &[10_000, 1_000_000, 10_000_000]);
    let cache = std::env::var("MEMO_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|mb| mb << 20);
    let count = env_list("MEMO_BENCH_OBJECTS", &[320])[0] as usize;
    let rounds = (env_list("MEMO_BENCH_ROUNDS", &[5])[0] as usize).clamp(1, count.max(1));
    let per_round = count.div_ceil(rounds);
    let checkpoint_every = env_list("MEMO_BENCH_CKPT", &[CHECKPOINT_EVERY])[0];
    let wanted: Vec<String> = std::env::var("MEMO_BENCH_ROWS")
        .unwrap_or_else(|_| "1,32,log".into())
        .split(',')
        .map(|r| r.trim().to_string())
        .collect();
    let rows: Vec<&'static str> = ["1", "32", "log"]
        .into_iter()
        .filter(|r| wanted.iter().any(|w| w == r))
        .collect();
    let base = std::env::var("MEMO_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "refcount benchmark: redb 4.4 (log-structured records), objects of {PER_OBJECT} chunks, {} objects per phase in {rounds} rounds; rows 1 and {GROUP}: durable redb commits; row log: durable op-log appends ({APPENDERS} at once) applied to redb with checkpoints",
        per_round * rounds
    );
    println!(
        "disk: 4 KiB write + fdatasync = {:.0} us",
        fsync_latency(dir.path()) * 1e6
    );
    let cache_text = cache.map_or("redb default, 1 GiB".to_string(), |c| {
        format!("{} MiB", c >> 20)
    });
    println!("redb page cache: {cache_text}");
    // Populate every size first; then measure them in turns, so that a drift of the machine
    // (this VM's fsync latency moves by tens of percent within minutes) falls on all sizes alike.
    let user = AccountId([0xbe; 32]);
    let key = Keypair::from_seed("refcount bench user");
    let mut registries: Vec<Registry> = Vec::new();
    for &n in &sizes {
        let path = dir.path().join(format!("registry-{n}.redb"));
        let meta = RedbMeta::open_with_cache(&path, cache).expect("open");
        let t = Instant::now();
        populate(&meta, n);
        let populate_secs = t.elapsed().as_secs_f64();
        let own = Ownership::new(meta);
        own.open_account(user, u64::MAX).expect("account");
        own.open_account(key.account(), u64::MAX).expect("account");
        let db_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("populated {n} chunks in {populate_secs:.1} s");
        let log = DurableOpLog::open(&dir.path().join(format!("oplog-{n}.redb"))).expect("op log");
        registries.push(Registry {
            n,
            own,
            log,
            populate_secs,
            db_bytes,
            times: Default::default(),
        });
    }
    for r in &registries {
        // Steady state of a long-running keeper: its page cache holds what fits.
        r.own.store().warm_cache().expect("warm");
        // A durable checkpoint at least once per phase, so the log rows pay for them.
        r.own.store().set_checkpoint_every(checkpoint_every);
        let mut rng = Rng(r.n ^ 0x5eed);
        let warm = object_sets(r.n, 10, 1 << 40, &mut rng);
        measure(&r.own, user, &warm.0, &warm.1, 1);
    }
    for round in 0..rounds as u64 {
        for r in registries.iter_mut() {
            let mut rng = Rng(r.n ^ (round << 32));
            for (k, &row) in rows.iter().enumerate() {
                let salt = (2 + round * 8 + k as u64) << 40;
                let (fresh, shared) = object_sets(r.n, per_round, salt, &mut rng);
                let t = match row {
                    "log" => measure_logged(&rt, &r.log, r.own.store(), &key, &fresh, &shared),
                    "1" => measure(&r.own, user, &fresh, &shared, 1),
                    _ => measure(&r.own, user, &fresh, &shared, GROUP),
                };
                r.times.entry(row).or_default().push(t);
            }
        }
    }
    println!(
        "chunk-references per second (ms per object of {PER_OBJECT} chunks), over {rounds} rounds taking turns between the sizes"
    );
    println!();
    println!(
        "| chunks in registry | populate and age, db size | objects per durable commit (log: op log) | put 64 new | put 64 shared | delete 64 (owner left) | delete 64 (purge) | refs/s, mean of 4 | cost vs first size |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut first: std::collections::BTreeMap<&str, f64> = Default::default();
    for r in &registries {
        for &row in &rows {
            let per_round = &r.times[row];
            // Every round measures the same number of objects: the mean per object over all
            // rounds (a median would hide the log rows' one checkpoint).
            let t: [f64; 4] = std::array::from_fn(|p| {
                per_round.iter().map(|t| t[p]).sum::<f64>() / per_round.len() as f64
            });
            let mean = t.iter().sum::<f64>() / 4.0;
            let base = *first.entry(row).or_insert(mean);
            let cell = |dt: f64| format!("{:.0} ({:.2} ms/obj)", PER_OBJECT as f64 / dt, dt * 1e3);
            println!(
                "| {} | {:.1} s, {:.2} GB | {row} | {} | {} | {} | {} | {:.0} | {:.2}x |",
                r.n,
                r.populate_secs,
                r.db_bytes as f64 / 1e9,
                cell(t[0]),
                cell(t[1]),
                cell(t[2]),
                cell(t[3]),
                PER_OBJECT as f64 / mean,
                mean / base
            );
        }
        let st = r.own.store().record_stats().expect("stats");
        println!(
            "|   | op log: {} appends in {} durable commits; chunk records: {} live, {} in the table |",
            r.log.len(),
            r.log.commits(),
            st.live,
            st.records
        );
    }
}

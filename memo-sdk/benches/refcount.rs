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
//! `MEMO_BENCH_OBJECTS` sets how many objects each phase measures (default 320).
//! `MEMO_BENCH_CKPT` sets the log entries between durable checkpoints in the log rows.
//! `MEMO_BENCH_CACHE_MB` sets redb's page cache (default: redb's 1 GiB). Before measuring, the
//! database is read once (`RedbMeta::warm_cache`), as a long-running keeper's cache would be.
//! `MEMO_BENCH_DIR` picks the directory for the databases (default: the system temp dir).
//!
//! Run: `cargo bench -p memo-sdk --bench refcount`

use futures::StreamExt;
use memo_core::ownership::{
    Account, ChunkEntry, ChunkInfo, MetaStore, MetaTxn, ObjectChunks, ObjectOp, Ownership,
    ShardHealth, ShardSlot, StoreError,
};
use memo_core::{AccountId, ChunkId, ShardId};
use memo_core::{Keypair, ObjectId, Signed, objects};
use memo_sdk::oplog::{DurableOpLog, OpLog};
use memo_sdk::store::RedbMeta;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

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

fn populate(meta: &RedbMeta, n: u64) -> Vec<ChunkId> {
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
    ids
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
                        let signed = Signed::sign(&key, op);
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
                .map(|(_, signed)| match signed.open().expect("entry") {
                    objects::ObjectOp::Put { chunks, .. } => ObjectOp::Put {
                        user: signed.signer,
                        object: ObjectChunks::new(chunks),
                    },
                    objects::ObjectOp::Delete { object } => ObjectOp::Delete {
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

fn main() {
    let sizes = env_list("MEMO_BENCH_SIZES", &[10_000, 1_000_000, 10_000_000]);
    let cache = std::env::var("MEMO_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|mb| mb << 20);
    let count = env_list("MEMO_BENCH_OBJECTS", &[320])[0] as usize;
    let checkpoint_every = env_list("MEMO_BENCH_CKPT", &[CHECKPOINT_EVERY])[0];
    let base = std::env::var("MEMO_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "refcount benchmark: redb 4.4 (log-structured records), objects of {PER_OBJECT} chunks, {count} objects per phase; rows 1 and {GROUP}: durable redb commits; row log: durable op-log appends ({APPENDERS} at once) applied to redb with checkpoints"
    );
    println!(
        "disk: 4 KiB write + fdatasync = {:.0} us",
        fsync_latency(dir.path()) * 1e6
    );
    let cache_text = cache.map_or("redb default, 1 GiB".to_string(), |c| {
        format!("{} MiB", c >> 20)
    });
    println!("redb page cache: {cache_text}");
    println!("chunk-references per second (ms per object of {PER_OBJECT} chunks)");
    println!();
    println!(
        "| chunks in registry | populate and age, db size | objects per durable commit (log: op log) | put 64 new | put 64 shared | delete 64 (owner left) | delete 64 (purge) | refs/s, mean of 4 | cost vs first size |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut first: std::collections::BTreeMap<String, f64> = Default::default();
    for &n in &sizes {
        let path = dir.path().join(format!("registry-{n}.redb"));
        let meta = RedbMeta::open_with_cache(&path, cache).expect("open");
        let t = Instant::now();
        let ids = populate(&meta, n);
        let pop = t.elapsed().as_secs_f64();
        let own = Ownership::new(meta);
        let user = AccountId([0xbe; 32]);
        own.open_account(user, u64::MAX).expect("account");
        let key = Keypair::from_seed("refcount bench user");
        own.open_account(key.account(), u64::MAX).expect("account");
        let mut rng = Rng(n);
        let object_sets = |salt: u64, rng: &mut Rng| {
            let fresh: Vec<ObjectChunks> = (0..count as u64)
                .map(|o| {
                    ObjectChunks::new(
                        (0..PER_OBJECT as u64)
                            .map(|j| info(chunk_id(u64::MAX - salt - o * 1000 - j)))
                            .collect(),
                    )
                })
                .collect();
            let shared: Vec<ObjectChunks> = (0..count)
                .map(|_| {
                    ObjectChunks::new(
                        (0..PER_OBJECT)
                            .map(|_| info(ids[(rng.next() % ids.len() as u64) as usize]))
                            .collect(),
                    )
                })
                .collect();
            (fresh, shared)
        };
        let warm = object_sets(1 << 40, &mut rng);
        let single = object_sets(2 << 40, &mut rng);
        let grouped = object_sets(3 << 40, &mut rng);
        let logged = object_sets(4 << 40, &mut rng);
        drop(ids);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // Steady state of a long-running keeper: its page cache holds what fits.
        own.store().warm_cache().expect("warm");
        // A durable checkpoint at least once per phase, so the log rows pay for them.
        own.store().set_checkpoint_every(checkpoint_every);
        measure(&own, user, &warm.0[..10], &warm.1[..10], 1);
        let log = DurableOpLog::open(&dir.path().join(format!("oplog-{n}.redb"))).expect("op log");
        let mut rows: Vec<(String, [f64; 4])> = Vec::new();
        for (batch, sets) in [(1, &single), (GROUP, &grouped)] {
            rows.push((
                batch.to_string(),
                measure(&own, user, &sets.0, &sets.1, batch),
            ));
        }
        let meta = own.into_store();
        let t = measure_logged(&rt, &log, &meta, &key, &logged.0, &logged.1);
        rows.push(("log".into(), t));
        for (label, t) in rows {
            let mean = t.iter().sum::<f64>() / 4.0;
            let base = *first.entry(label.clone()).or_insert(mean);
            let cell = |dt: f64| format!("{:.0} ({:.2} ms/obj)", PER_OBJECT as f64 / dt, dt * 1e3);
            println!(
                "| {n} | {pop:.1} s, {:.2} GB | {label} | {} | {} | {} | {} | {:.0} | {:.2}x |",
                size as f64 / 1e9,
                cell(t[0]),
                cell(t[1]),
                cell(t[2]),
                cell(t[3]),
                PER_OBJECT as f64 / mean,
                mean / base
            );
        }
        let st = meta.record_stats().expect("stats");
        println!(
            "|   | op log: {} appends in {} durable commits; chunk records: {} live, {} in the table |",
            log.len(),
            log.commits(),
            st.live,
            st.records
        );
        drop(log);
        drop(meta);
        let _ = std::fs::remove_file(dir.path().join(format!("oplog-{n}.redb")));
        let _ = std::fs::remove_file(&path);
    }
}

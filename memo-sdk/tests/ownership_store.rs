//! The durable ownership backends: conformance, the seeds' scenario, random sequences, corrupt
//! records and crash safety with a real killed process.

use memo_core::ownership::{
    ChunkInfo, ObjectChunks, ObjectOp, Ownership, OwnershipError, ShardStore, ShardStoreError,
    StoreError,
};
use memo_core::testkit::{self, ModelChecker};
use memo_core::{AccountId, ChunkId, ShardId};
use memo_sdk::store::{FsShardStore, RedbMeta, raw};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Temporary directories live as long as the test process (stores borrow their paths).
static DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

fn temp_path(name: &str) -> std::path::PathBuf {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    DIRS.lock().unwrap().push(d);
    p
}

fn redb() -> RedbMeta {
    RedbMeta::open(temp_path("meta.redb")).unwrap()
}

/// A store whose cleaner runs whenever garbage outnumbers live records, however few.
fn redb_cleaning() -> RedbMeta {
    let m = redb();
    m.set_cleaning_floor(0);
    m
}

#[test]
fn redb_meta_conformance() {
    testkit::meta_store_conformance(redb);
}

#[test]
fn redb_meta_conformance_while_cleaning() {
    testkit::meta_store_conformance(redb_cleaning);
}

#[test]
fn the_cleaner_keeps_the_records_near_the_live_ones_and_the_state_exact() {
    let path = temp_path("clean.redb");
    let ops = testkit::random_ops(23, 400, 4, 12);
    let (snap, stats) = {
        let meta = RedbMeta::open(&path).unwrap();
        meta.set_cleaning_floor(8);
        let mut m = ModelChecker::new(meta, 4, 12);
        let mut most = 0;
        for op in &ops {
            m.apply(op);
            let st = m.ownership().store().record_stats().unwrap();
            // At most 12 chunks, each rewritten by every op: without cleaning the table
            // would hold every version ever written.
            most = most.max(st.records);
            assert!(st.live <= 12, "{st:?}");
        }
        assert!(
            most <= 8 + 2 * 12 * 3,
            "the cleaner bounds the table: {most} records"
        );
        (
            m.snapshot_meta(),
            m.ownership().store().record_stats().unwrap(),
        )
    };
    // Reopening rebuilds the same index from what the cleaner left.
    let reopened = RedbMeta::open(&path).unwrap();
    assert_eq!(reopened.record_stats().unwrap(), stats);
    let own = Ownership::new(reopened);
    assert_eq!(testkit::meta_snapshot(&own, 4, 12), snap);
}

#[test]
fn a_record_without_a_readable_chunk_id_is_refused_on_open() {
    let path = temp_path("meta.redb");
    let m = RedbMeta::open(&path).unwrap();
    let own = Ownership::new(&m);
    own.open_account(AccountId([1; 32]), u64::MAX).unwrap();
    own.put_object(AccountId([1; 32]), &ObjectChunks::new(vec![chunk(1)]))
        .unwrap();
    raw::append_record_bytes(&m, &[7; 20]).unwrap();
    drop(m);
    let err = RedbMeta::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                what: "chunk record",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Where an [`FsShardStore`] rooted at `root` keeps shard `id`'s file.
fn shard_file(root: &std::path::Path, id: &ShardId) -> std::path::PathBuf {
    let hex = id.to_hex();
    root.join("shards").join(&hex[..2]).join(&hex)
}

#[test]
fn fs_shard_store_conformance() {
    testkit::shard_store_conformance(|| FsShardStore::open(temp_path("shards")).unwrap());
}

/// The file store knows its disk's free space, and a holder over it never offers more than
/// that (less the reserve).
#[test]
fn fs_shard_store_reports_the_disks_free_space() {
    let store = FsShardStore::open(temp_path("shards")).unwrap();
    let free = store
        .free_bytes()
        .unwrap()
        .expect("a file system reports free space");
    assert!(free > 0);
    let holder = memo_core::ownership::Holder::new(store, u64::MAX);
    let room = holder.room().unwrap();
    assert!(room < free && room + memo_core::ownership::DISK_RESERVE >= free - (64 << 20));
}

#[test]
fn fs_shard_store_conformance_through_the_page_cache() {
    testkit::shard_store_conformance(|| {
        FsShardStore::open(temp_path("shards"))
            .unwrap()
            .with_direct_io(false)
    });
}

/// Direct writes pad to whole blocks and cut back: every length comes back exactly, on both
/// write paths, and the byte count is the sum of the real lengths; what one path wrote the
/// other reads back. Where the file system refuses direct I/O the store falls back, which
/// this test also covers.
#[test]
fn shard_files_keep_their_exact_length_on_both_write_paths() {
    for direct in [true, false] {
        let root = temp_path("shards");
        let s = FsShardStore::open(&root).unwrap().with_direct_io(direct);
        let mut stored = Vec::new();
        let mut total = 0u64;
        for (i, len) in [0usize, 1, 4095, 4096, 4097, (1 << 20) + 3, 9 << 20]
            .into_iter()
            .enumerate()
        {
            let bytes = testkit::random_bytes(len, i as u8 + 1);
            let id = ShardId::of(&bytes);
            assert!(s.put(&id, &bytes).unwrap(), "len {len}");
            assert_eq!(
                s.get(&id).unwrap().as_deref(),
                Some(&bytes[..]),
                "len {len}"
            );
            let file = shard_file(&root, &id);
            assert_eq!(std::fs::metadata(&file).unwrap().len(), len as u64);
            total += len as u64;
            stored.push((id, bytes));
        }
        assert_eq!(s.used_bytes().unwrap(), total);
        let other = FsShardStore::open(&root).unwrap().with_direct_io(!direct);
        // Reopening counts what is on disk: the same bytes and shards.
        assert_eq!(other.used_bytes().unwrap(), total);
        assert_eq!(other.shard_count().unwrap(), stored.len() as u64);
        for (id, bytes) in &stored {
            assert_eq!(other.get(id).unwrap().as_deref(), Some(&bytes[..]));
        }
        if !direct {
            assert!(!s.direct_io());
        }
        // Nothing is left in the temporaries.
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }
}

/// Serving a shard does not touch its file's access time (no metadata write per read), on
/// both read paths. The times are set an hour back, where `relatime` would update the access
/// time on the next read.
#[cfg(target_os = "linux")]
#[test]
fn reading_a_shard_leaves_its_access_time() {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for direct in [true, false] {
        let root = temp_path("shards");
        let s = FsShardStore::open(&root).unwrap().with_direct_io(direct);
        let bytes = testkit::random_bytes(100_000, 3);
        let id = ShardId::of(&bytes);
        s.put(&id, &bytes).unwrap();
        let file = shard_file(&root, &id);
        let times = std::fs::FileTimes::new()
            .set_accessed(hour_ago)
            .set_modified(hour_ago);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_times(times)
            .unwrap();
        let before = std::fs::metadata(&file).unwrap().accessed().unwrap();
        assert_eq!(s.get(&id).unwrap().as_deref(), Some(&bytes[..]));
        let after = std::fs::metadata(&file).unwrap().accessed().unwrap();
        assert_eq!(after, before, "direct: {direct}");
    }
}

/// A delete empties the shard's file at once (its blocks are freed) and keeps it for a later
/// put, which fills it instead of creating a file; reopening clears the spares.
#[test]
fn deleted_shard_files_are_emptied_and_reused() {
    use std::os::unix::fs::MetadataExt;
    let root = temp_path("shards");
    let s = FsShardStore::open(&root).unwrap();
    let shards: Vec<Vec<u8>> = (0..4u8)
        .map(|i| testkit::random_bytes((256 << 10) + i as usize, i + 1))
        .collect();
    let ids: Vec<ShardId> = shards.iter().map(|b| ShardId::of(b)).collect();
    for (id, b) in ids.iter().zip(&shards) {
        assert!(s.put(id, b).unwrap());
    }
    let inode = |id: &ShardId| std::fs::metadata(shard_file(&root, id)).unwrap().ino();
    let deleted_inodes: Vec<u64> = ids[..2].iter().map(inode).collect();
    for id in &ids[..2] {
        assert!(s.delete(id).unwrap());
        assert!(!s.has(id).unwrap());
        assert_eq!(s.get(id).unwrap(), None);
    }
    assert_eq!(s.spare_files(), 2);
    assert_eq!(
        s.used_bytes().unwrap(),
        shards[2..].iter().map(|b| b.len() as u64).sum::<u64>()
    );
    // The spares hold no data and no blocks.
    let mut spare_inodes = Vec::new();
    for e in std::fs::read_dir(root.join("tmp")).unwrap() {
        let m = e.unwrap().metadata().unwrap();
        assert_eq!((m.len(), m.blocks()), (0, 0));
        spare_inodes.push(m.ino());
    }
    spare_inodes.sort_unstable();
    let mut expected = deleted_inodes.clone();
    expected.sort_unstable();
    assert_eq!(spare_inodes, expected);
    // New puts reuse them: the same inodes, now holding the new shards, exactly.
    let fresh: Vec<Vec<u8>> = (0..2u8)
        .map(|i| testkit::random_bytes(4097 * (i as usize + 1), i + 40))
        .collect();
    for b in &fresh {
        let id = ShardId::of(b);
        assert!(s.put(&id, b).unwrap());
        assert!(expected.contains(&inode(&id)), "a spare file was reused");
        assert_eq!(s.get(&id).unwrap().as_deref(), Some(&b[..]));
    }
    assert_eq!(s.spare_files(), 0);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // Spares left by a store are gone when it is reopened.
    s.delete(&ids[2]).unwrap();
    drop(s);
    let s = FsShardStore::open(&root).unwrap();
    assert_eq!(s.spare_files(), 0);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert_eq!(s.get(&ids[3]).unwrap().as_deref(), Some(&shards[3][..]));
}

#[test]
fn seeds_scenario_on_redb() {
    testkit::seeds_scenario(redb());
}

#[test]
fn state_survives_reopen() {
    let path = temp_path("meta.redb");
    let ops = testkit::random_ops(11, 60, 3, 8);
    let snap = {
        let mut m = ModelChecker::new(RedbMeta::open(&path).unwrap(), 3, 8);
        for op in &ops {
            m.apply(op);
        }
        m.snapshot_meta()
    };
    let reopened = Ownership::new(RedbMeta::open(&path).unwrap());
    assert_eq!(testkit::meta_snapshot(&reopened, 3, 8), snap);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn redb_random_sequences_keep_the_invariants(seed in any::<u64>(), len in 1usize..60) {
        let mut m = ModelChecker::new(redb(), 3, 8);
        for op in testkit::random_ops(seed, len, 3, 8) {
            m.apply(&op);
        }
    }

    #[test]
    fn redb_random_sequences_keep_the_invariants_while_cleaning(seed in any::<u64>(), len in 1usize..60) {
        let mut m = ModelChecker::new(redb_cleaning(), 3, 8);
        for op in testkit::random_ops(seed, len, 3, 8) {
            m.apply(&op);
        }
    }
}

fn chunk(i: u64) -> ChunkInfo {
    ChunkInfo {
        id: ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
        stored_bytes: 1000 + i,
        shards: (0..6u8).map(|j| ShardId([j; 32])).collect(),
    }
}

#[test]
fn corrupt_records_are_typed_errors_and_change_nothing() {
    let meta = redb();
    let own = Ownership::new(meta);
    let u = AccountId([1; 32]);
    own.open_account(u, u64::MAX).unwrap();
    let (a, b) = (chunk(1), chunk(2));
    own.put_object(u, &ObjectChunks::new(vec![a.clone(), b.clone()]))
        .unwrap();
    let before = (own.account(&u).unwrap(), own.refcount(&u, &a.id).unwrap());

    // A truncated registry entry: the object touching it is refused whole.
    let good = own.chunk(&b.id).unwrap().unwrap().to_bytes();
    raw::put_chunk_bytes(own.store(), &b.id, &good[..good.len() - 3]).unwrap();
    let obj = ObjectChunks::new(vec![a.clone(), b.clone()]);
    for r in [
        own.put_object(u, &obj).map(|_| ()),
        own.delete_object(u, &obj).map(|_| ()),
    ] {
        assert!(
            matches!(
                r,
                Err(OwnershipError::Store(StoreError::Corrupt {
                    what: "chunk entry",
                    ..
                }))
            ),
            "{r:?}"
        );
    }
    assert_eq!(
        (own.account(&u).unwrap(), own.refcount(&u, &a.id).unwrap()),
        before
    );
    raw::put_chunk_bytes(own.store(), &b.id, &good).unwrap();

    // A refcount of the wrong width.
    raw::put_ref_bytes(own.store(), &a.id, &u, &[1, 2, 3]).unwrap();
    let r = own.delete_object(u, &ObjectChunks::new(vec![a.clone()]));
    assert!(matches!(
        r,
        Err(OwnershipError::Store(StoreError::Corrupt {
            what: "refcount",
            ..
        }))
    ));
    assert!(
        own.owners(&a.id).is_err(),
        "owners() reports the corrupt count too"
    );
    // A zero count: an owner never has 0 references, so it is damage too.
    raw::put_ref_bytes(own.store(), &a.id, &u, &0u64.to_le_bytes()).unwrap();
    let r = own.delete_object(u, &ObjectChunks::new(vec![a.clone()]));
    assert!(
        matches!(
            r,
            Err(OwnershipError::Store(StoreError::Corrupt {
                what: "refcount",
                ..
            }))
        ),
        "{r:?}"
    );
    assert!(own.refcount(&u, &a.id).is_err());
    raw::put_ref_bytes(own.store(), &a.id, &u, &1u64.to_le_bytes()).unwrap();

    // A garbage account record (wrong version byte).
    raw::put_account_bytes(own.store(), &u, &[0xee, 0, 0]).unwrap();
    let r = own.put_object(u, &ObjectChunks::new(vec![chunk(3)]));
    assert!(matches!(
        r,
        Err(OwnershipError::Store(StoreError::Corrupt {
            what: "account",
            ..
        }))
    ));
    assert_eq!(
        own.chunk(&chunk(3).id).unwrap(),
        None,
        "refused put registered nothing"
    );
}

#[test]
fn unknown_layout_version_is_refused_on_open() {
    let path = temp_path("meta.redb");
    let m = RedbMeta::open(&path).unwrap();
    raw::set_schema_version(&m, 99).unwrap();
    drop(m);
    let err = RedbMeta::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { what: "schema", .. }),
        "{err:?}"
    );
}

#[test]
fn damaged_shard_files_are_reported_not_served() {
    let root = temp_path("shards");
    let s = FsShardStore::open(&root).unwrap();
    let bytes = vec![5u8; 4096];
    let id = ShardId::of(&bytes);
    s.put(&id, &bytes).unwrap();
    let file = shard_file(&root, &id);
    std::fs::write(&file, &bytes[..100]).unwrap();
    assert!(matches!(s.get(&id), Err(ShardStoreError::Corrupt { .. })));
    // A leftover temporary from a crash is removed on open; the byte count is rebuilt.
    std::fs::write(root.join("tmp").join("junk"), b"x").unwrap();
    // A stray file among the shards is not a shard: neither counted nor listed.
    std::fs::write(file.with_file_name("not-a-shard"), b"stray").unwrap();
    let s = FsShardStore::open(&root).unwrap();
    assert_eq!(s.used_bytes().unwrap(), 100);
    assert_eq!(s.shard_count().unwrap(), 1);
    assert_eq!(s.list().unwrap(), vec![id]);
    assert!(!root.join("tmp").join("junk").exists());
    assert!(s.delete(&id).unwrap());
    assert_eq!(s.shard_count().unwrap(), 0);
    assert!(!file.exists(), "a purge unlinks the file");
}

// ---- crash safety ------------------------------------------------------------------------

const CHILD_ENV: &str = "MEMO_OWNERSHIP_CRASH_CHILD";
const CRASH_USER: AccountId = AccountId([7; 32]);
const CHUNKS_PER_OBJECT: u64 = 64;

/// Step `s` of the child's fixed sequence: every third step deletes the object put two steps
/// earlier; the others put object `s`, whose first half shares chunks with its neighbours
/// (re-references) and whose second half is new.
fn crash_step(s: u64) -> (bool, ObjectChunks) {
    let (delete, obj) = if s % 3 == 2 {
        (true, s - 2)
    } else {
        (false, s)
    };
    let chunks = (0..CHUNKS_PER_OBJECT)
        .map(|j| {
            if j < 32 {
                chunk((obj / 4) << 16 | j)
            } else {
                chunk(obj << 16 | j | 1 << 40)
            }
        })
        .collect();
    (delete, ObjectChunks::new(chunks))
}

fn crash_child(path: &str) -> ! {
    let own = Ownership::new(RedbMeta::open(path).unwrap());
    own.open_account(CRASH_USER, u64::MAX).unwrap();
    println!("ready");
    // Objects one per transaction, then group commits of 2, 3 and 4 objects, repeating.
    let mut s = 0;
    for round in 0u64.. {
        let batch = 1 + round % 4;
        if batch == 1 {
            let (delete, obj) = crash_step(s);
            if delete {
                own.delete_object(CRASH_USER, &obj).unwrap();
            } else {
                own.put_object(CRASH_USER, &obj).unwrap();
            }
        } else {
            let ops: Vec<ObjectOp> = (s..s + batch).map(log_entry).collect();
            for r in own.apply_batch(&ops).unwrap() {
                r.unwrap();
            }
        }
        s += batch;
    }
    unreachable!()
}

/// The refcounts after the first `k` steps, and the usage.
struct CrashModel {
    refs: BTreeMap<ChunkId, (u64, u64)>,
    usage: u64,
    steps: u64,
}

impl CrashModel {
    fn step(&mut self) {
        let (delete, obj) = crash_step(self.steps);
        for c in &obj.chunks {
            let e = self.refs.entry(c.id).or_insert((0, c.stored_bytes));
            if delete {
                e.0 -= 1;
                self.usage -= c.stored_bytes;
            } else {
                e.0 += 1;
                self.usage += c.stored_bytes;
            }
        }
        self.steps += 1;
    }

    fn matches<S: memo_core::ownership::MetaStore>(&self, own: &Ownership<S>) -> bool {
        self.refs.iter().all(|(id, &(n, _))| {
            let ok_ref = own.refcount(&CRASH_USER, id).unwrap() == n;
            let ok_entry = own.chunk(id).unwrap().is_some() == (n > 0);
            ok_ref && ok_entry
        })
    }
}

/// Runs test `name` of this binary as a child with `env` = `path`, waits for its "ready" line,
/// lets it work for `ms` milliseconds, then SIGKILLs it (no destructor, no flush,
/// mid-transaction).
fn run_and_kill(name: &str, env: &str, path: &std::path::Path, ms: u64) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(env, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before it was ready"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(ms));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child must still be running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_mid_object_leaves_state_before_or_after() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        crash_child(&path);
    }
    let mut progressed = 0;
    for round in 0..6u64 {
        let path = temp_path("crash.redb");
        // Kill at a different moment each round (the position, not the speed, is what varies).
        run_and_kill(
            "killed_mid_object_leaves_state_before_or_after",
            CHILD_ENV,
            &path,
            40 + round * 53 % 250,
        );

        let own = Ownership::new(RedbMeta::open(&path).unwrap());
        let usage = own.account(&CRASH_USER).unwrap().unwrap().usage;
        let mut model = model_after(0);
        let mut found = None;
        while model.steps < 1_000_000 {
            if model.usage == usage && model.matches(&own) {
                found = Some(model.steps);
                break;
            }
            model.step();
        }
        let k = found.expect("state equals the state after a whole number of objects");
        // Every object's chunks are all-or-nothing: no chunk of the next object is referenced.
        let (delete, next) = crash_step(k);
        let partial = next.chunks.iter().filter(|c| {
            let n = own.refcount(&CRASH_USER, &c.id).unwrap();
            let m = model.refs.get(&c.id).map_or(0, |e| e.0);
            n != m
        });
        assert_eq!(
            partial.count(),
            0,
            "step {k} (delete: {delete}) half applied"
        );
        eprintln!("round {round}: killed after {k} whole objects");
        progressed += usize::from(k > 0);
    }
    assert!(
        progressed >= 3,
        "the child committed objects before most kills"
    );
}

// ---- driven by a durable log: unsynced commits, checkpoints, replay -----------------------

/// Step `s` of the fixed sequence as an ownership operation (the crash child's objects and the
/// log's entries).
fn log_entry(s: u64) -> ObjectOp {
    match crash_step(s) {
        (true, object) => ObjectOp::Delete {
            user: CRASH_USER,
            object,
        },
        (false, object) => ObjectOp::Put {
            user: CRASH_USER,
            object,
        },
    }
}

/// Applies log entries `from..to` in batches of 1, 2, 3, ... (as a follower does with
/// whatever the log has ready), through [`RedbMeta::log_at`].
fn apply_log(meta: &RedbMeta, from: u64, to: u64) {
    let mut s = from;
    let mut batch = 1;
    while s < to {
        let n = batch.min(to - s);
        let ops: Vec<ObjectOp> = (s..s + n).map(log_entry).collect();
        for r in Ownership::new(meta.log_at(s, n)).apply_batch(&ops).unwrap() {
            r.unwrap();
        }
        s += n;
        batch = batch % 5 + 1;
    }
}

const LOG_CHILD_ENV: &str = "MEMO_OWNERSHIP_LOG_CRASH_CHILD";

fn log_crash_child(path: &str) -> ! {
    let meta = RedbMeta::open(path).unwrap();
    meta.set_checkpoint_every(7);
    Ownership::new(&meta)
        .open_account(CRASH_USER, u64::MAX)
        .unwrap();
    println!("ready");
    apply_log(&meta, 0, u64::MAX);
    unreachable!()
}

/// The model after the first `k` log entries.
fn model_after(k: u64) -> CrashModel {
    let mut m = CrashModel {
        refs: BTreeMap::new(),
        usage: 0,
        steps: 0,
    };
    while m.steps < k {
        m.step();
    }
    m
}

#[test]
fn log_driven_state_is_a_checkpoint_after_a_kill_and_replay_completes_it() {
    if let Ok(path) = std::env::var(LOG_CHILD_ENV) {
        log_crash_child(&path);
    }
    let mut progressed = 0;
    for round in 0..4u64 {
        let path = temp_path("log-crash.redb");
        // SIGKILL mid-batch: unsynced commits since the last checkpoint are lost.
        run_and_kill(
            "log_driven_state_is_a_checkpoint_after_a_kill_and_replay_completes_it",
            LOG_CHILD_ENV,
            &path,
            60 + round * 71 % 200,
        );

        let meta = RedbMeta::open(&path).unwrap();
        let k = meta.applied().unwrap();
        // The state is exactly the state after the recorded position: nothing of a later
        // entry, nothing missing of an earlier one.
        let own = Ownership::new(&meta);
        let model = model_after(k);
        assert!(model.matches(&own), "state after {k} entries");
        assert_eq!(
            own.account(&CRASH_USER).unwrap().unwrap().usage,
            model.usage
        );
        // Replaying the log from there reaches the same state as applying it without a crash.
        apply_log(&meta, k, k + 40);
        assert_eq!(meta.applied().unwrap(), k + 40);
        let model = model_after(k + 40);
        assert!(model.matches(&Ownership::new(&meta)));
        eprintln!(
            "round {round}: reopened at entry {k}, replayed to {}",
            k + 40
        );
        progressed += usize::from(k > 0);
    }
    assert!(
        progressed >= 2,
        "the child made checkpoints before most kills"
    );
}

#[test]
fn log_positions_are_checked_and_refusals_still_advance() {
    let meta = redb();
    let own = Ownership::new(&meta);
    own.open_account(CRASH_USER, u64::MAX).unwrap();
    assert_eq!(meta.applied().unwrap(), 0);
    apply_log(&meta, 0, 3);
    assert_eq!(meta.applied().unwrap(), 3);
    // Entries already applied, or past a gap, are refused whole and change nothing.
    for first in [0, 2, 4] {
        let err = Ownership::new(meta.log_at(first, 1))
            .apply_batch(&[log_entry(first)])
            .unwrap_err();
        assert!(
            matches!(err, OwnershipError::Store(StoreError::Inconsistent(_))),
            "{err:?}"
        );
    }
    assert_eq!(meta.applied().unwrap(), 3);
    assert!(model_after(3).matches(&own));
    // A refused object (a non-owner's delete) is an outcome of its entry: the position moves.
    let stranger = ObjectOp::Delete {
        user: AccountId([9; 32]),
        object: crash_step(0).1,
    };
    let out = Ownership::new(meta.log_at(3, 1))
        .apply_batch(&[stranger])
        .unwrap();
    assert!(matches!(out[0], Err(OwnershipError::UnknownUser { .. })));
    assert_eq!(meta.applied().unwrap(), 4);
    assert!(model_after(3).matches(&own));
    // Checkpointing after refusals succeeds.
    meta.checkpoint().unwrap();
}

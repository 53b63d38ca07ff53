//! The durable shard store ([`FsShardStore`]): conformance, exact file lengths on both write
//! paths, access times, reuse of purged files, and damage reported rather than served.

use memo_core::ShardId;
use memo_core::ownership::{ShardStore, ShardStoreError};
use memo_core::testkit;
use memo_sdk::store::FsShardStore;
use std::sync::Mutex;

/// Temporary directories live as long as the test process (stores borrow their paths).
static DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

fn temp_path(name: &str) -> std::path::PathBuf {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    DIRS.lock().unwrap().push(d);
    p
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

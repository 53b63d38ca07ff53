//! [`FsShardStore`]: one file per shard, written atomically, deleted to give the space back.

use memo_core::ShardId;
use memo_core::ownership::{ShardStore, ShardStoreError, Verified};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ShardStoreError {
    move |e| match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => ShardStoreError::NoSpace {
            reason: format!("{op}: {e}"),
        },
        _ => ShardStoreError::Backend {
            op,
            reason: e.to_string(),
        },
    }
}

/// Shard bytes as files: `root/shards/<first byte hex>/<shard id hex>`.
///
/// A put writes a temporary file, fsyncs it, renames it into place and fsyncs the directory, so
/// a shard is either absent or whole after a crash (stale temporaries are removed on open). A
/// delete moves the file out of its place and empties it (or unlinks it), so a purge gives the
/// disk space back at once; emptied files are reused by later puts ([`SPARES`]). Reads verify
/// the bytes against the id and report [`ShardStoreError::Corrupt`] instead of serving damaged
/// data.
///
/// Why files and not redb blobs: measured with `cargo bench -p memo-sdk --bench shard_store`
/// (400 shards of 256 KiB, one durable write each, then every other shard purged; 2-core VM):
///
/// | store | put MB/s | get MB/s | deletes/s | disk after puts | after purging half |
/// | --- | ---: | ---: | ---: | ---: | ---: |
/// | file per shard (direct I/O) | 639 | 895 | 5532 | 67.1 MB | 33.6 MB |
/// | redb blobs | 251 | 6955 | 6213 | 269.5 MB | 202.1 MB |
///
/// redb's copy-on-write file grew to 4x the data and kept 3/4 of it after half the shards were
/// purged (freed pages are reused, the file only shrinks at its end or on a full compaction),
/// while emptying or unlinking a file gives its blocks back at once, which is what a purge
/// promises. Files also keep bulk bytes out of the metadata database.
pub struct FsShardStore {
    root: PathBuf,
    used: AtomicU64,
    /// Shards held (counted at open, then kept with `used`), so a status probe needs no scan.
    count: AtomicU64,
    /// Serialises the rename/unlink step with the byte count (data is written outside it).
    lock: Mutex<()>,
    tmp_seq: AtomicU64,
    sync: bool,
    /// Write and read shard files with `O_DIRECT`; cleared for good the first time the file
    /// system refuses a write.
    direct: AtomicBool,
    /// Emptied files of deleted shards (under `tmp/`), which puts reuse (see [`SPARES`]).
    spares: Mutex<Vec<PathBuf>>,
}

/// Emptied shard files kept for reuse, at most. A delete renames the shard's file away and
/// truncates it (its blocks go back to the file system at once), and a later put writes into
/// it instead of creating a file. Why: creating a file allocates an inode, and ext4 without a
/// journal (this VM's disk) skips every inode deleted in the last seconds, reading its inode
/// table block to find out; after a purge of thousands of shards, each new shard file scanned
/// past all of them (27% of the providers' CPU on a devnet put that followed a purge).
pub const SPARES: usize = 1024;

impl std::fmt::Debug for FsShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FsShardStore({})", self.root.display())
    }
}

impl FsShardStore {
    /// Opens (or creates) a store under `root`, removing leftover temporary files and counting
    /// the bytes held.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ShardStoreError> {
        let root = root.as_ref().to_path_buf();
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io("clean temporaries"))?;
        }
        fs::create_dir_all(&tmp).map_err(io("create"))?;
        let (mut used, mut count) = (0u64, 0u64);
        for b in 0..=255u8 {
            let dir = shard_dir(&root, b);
            fs::create_dir_all(&dir).map_err(io("create"))?;
            for e in fs::read_dir(&dir).map_err(io("scan"))? {
                let e = e.map_err(io("scan"))?;
                // Counted as `list` counts.
                if shard_named(&e).is_some() {
                    used += e.metadata().map_err(io("scan"))?.len();
                    count += 1;
                }
            }
        }
        Ok(Self {
            root,
            used: AtomicU64::new(used),
            count: AtomicU64::new(count),
            lock: Mutex::new(()),
            tmp_seq: AtomicU64::new(0),
            sync: true,
            direct: AtomicBool::new(cfg!(target_os = "linux")),
            spares: Mutex::new(Vec::new()),
        })
    }

    /// Whether each put is fsync'd (file and directory) before it is acknowledged. On by
    /// default. Without it a put survives the process being killed (the data is written and
    /// renamed into place before the put returns) but not a machine crash; reads still verify
    /// every shard against its id, so a shard torn by a crash is reported and repaired from the
    /// other providers, never served. Worth turning off where many providers share one disk
    /// (a devnet), and a trade-off for operators to choose.
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Whether shard files are written with direct I/O (`O_DIRECT`, Linux only; on by default
    /// there). The bytes then go from the provider's buffer to the disk without passing
    /// through the page cache: a provider stores far more than it reads back soon, so caching
    /// what it writes only evicts more useful pages, and on a VM each fresh page-cache page
    /// costs a host page fault. Reads are direct too (the disk reads into a reused aligned
    /// buffer: no page-cache insertion, no kernel copy), falling back to a buffered read where
    /// refused. A file system that refuses direct I/O (e.g. an older tmpfs) is detected on the
    /// first put, which then falls back to ordinary I/O for the life of the store. Durability
    /// is unchanged: with [`Self::with_sync`] off, a put survives the process being killed
    /// either way.
    ///
    /// `cargo bench -p memo-sdk --bench shard_store` (400 shards of 256 KiB, same VM, one
    /// thread):
    ///
    /// | I/O | put MB/s | get MB/s |
    /// | --- | ---: | ---: |
    /// | direct, fsync | 639 | 895 |
    /// | page cache, fsync | 434 | 6008 |
    /// | direct, no fsync | 1200 | 670 |
    /// | page cache, no fsync | 1196 | 6270 |
    ///
    /// A get of a shard the page cache holds is faster through the cache; a direct read goes
    /// to the disk every time, one request at a time here. What direct reads save is CPU,
    /// which is what a busy provider runs short of: on the devnet bench (many reads at once,
    /// client and providers sharing two cores) gets ran at 743 and 818 MiB/s with direct
    /// reads against 590 and 484 with buffered ones.
    pub fn with_direct_io(self, direct: bool) -> Self {
        self.direct.store(direct, Ordering::Relaxed);
        self
    }

    /// Whether puts currently use direct I/O (false after a fallback).
    pub fn direct_io(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Writes `bytes` to the temporary `tmp` (new, or an empty spare), directly when enabled,
    /// buffered otherwise, and syncs it if the store syncs.
    fn write_file(&self, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let written = match self.direct_io().then(|| direct::write(tmp, bytes)) {
            None => None,
            Some(Ok(f)) => Some(f),
            // EINVAL: this file system does not do direct I/O.
            Some(Err(e)) if e.kind() == ErrorKind::InvalidInput => {
                tracing::info!(dir = %self.root.display(), error = %e, "direct I/O refused; writing shards through the page cache");
                self.direct.store(false, Ordering::Relaxed);
                let _ = fs::remove_file(tmp);
                None
            }
            Some(Err(e)) => return Err(e),
        };
        let f = match written {
            Some(f) => f,
            None => {
                // Creates it, or empties a reused spare.
                let mut f = File::create(tmp)?;
                f.write_all(bytes)?;
                f
            }
        };
        if self.sync { f.sync_all() } else { Ok(()) }
    }

    fn path(&self, id: &ShardId) -> PathBuf {
        shard_dir(&self.root, id.0[0]).join(id.to_hex())
    }

    /// A new, unique path under `tmp/` (removed on open), named after `what`.
    fn temporary(&self, what: &str) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{what}.{}.{seq}", std::process::id()))
    }

    fn lock_spares(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Emptied files waiting for reuse (for tests and diagnostics).
    pub fn spare_files(&self) -> usize {
        self.lock_spares().len()
    }

    fn guard(&self) -> Result<std::sync::MutexGuard<'_, ()>, ShardStoreError> {
        self.lock.lock().map_err(|_| ShardStoreError::Backend {
            op: "lock",
            reason: "poisoned".into(),
        })
    }
}

/// Direct-I/O writes: the buffer, file offset and length must be multiples of the device's
/// logical block size; [`ALIGN`](direct::ALIGN) covers every common one.
mod direct {
    #[cfg(target_os = "linux")]
    use std::cell::RefCell;
    #[cfg(target_os = "linux")]
    use std::io::Write;
    use std::path::Path;

    /// Alignment of buffer, offset and length.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) const ALIGN: usize = 4096;
    /// Shards up to this size are staged in a per-thread buffer that is kept for reuse.
    #[cfg(target_os = "linux")]
    const KEEP: usize = 8 << 20;

    #[cfg(target_os = "linux")]
    thread_local! {
        static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Creates `path` and writes `bytes` to it with `O_DIRECT`: staged in an aligned buffer,
    /// zero-padded to a whole block, then cut back to its length. A file system without direct
    /// I/O fails it with EINVAL ([`std::io::ErrorKind::InvalidInput`]).
    #[cfg(target_os = "linux")]
    pub(super) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            // A new temporary, or a reused spare (already empty).
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let padded = bytes.len().next_multiple_of(ALIGN);
        aligned(padded, |block| {
            block[..bytes.len()].copy_from_slice(bytes);
            block[bytes.len()..].fill(0);
            // A short direct write leaves an unaligned rest, which write_all's retry would
            // send unaligned; the file system then fails it with EINVAL, reported as such.
            f.write_all(block)
        })?;
        if padded != bytes.len() {
            f.set_len(bytes.len() as u64)?;
        }
        Ok(f)
    }

    /// Reads the whole file at `path` with `O_DIRECT`, through the per-thread aligned buffer,
    /// into a vector of its exact length; also returns the file's [`super::file_id`]. A file
    /// system without direct I/O fails it with EINVAL ([`std::io::ErrorKind::InvalidInput`]);
    /// so does a read that comes back short of the file's length (it cannot be continued at
    /// an unaligned offset).
    #[cfg(target_os = "linux")]
    pub(super) fn read(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
        use std::os::unix::fs::FileExt;
        let f = super::open_for_reading(path, libc::O_DIRECT)?;
        let meta = f.metadata()?;
        let len = usize::try_from(meta.len())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::FileTooLarge))?;
        // One block more than the length: a file that grew meanwhile reads past `len`.
        let padded = (len + 1).next_multiple_of(ALIGN);
        aligned(padded, |block| {
            let n = f.read_at(block, 0)?;
            if n != len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("direct read returned {n} of {len} bytes"),
                ));
            }
            Ok((block[..len].to_vec(), super::file_id(&meta)))
        })
    }

    /// Runs `f` on a block of `padded` bytes (a multiple of [`ALIGN`]) aligned to [`ALIGN`]:
    /// in this thread's kept buffer up to [`KEEP`], in a fresh one beyond.
    #[cfg(target_os = "linux")]
    fn aligned<T>(
        padded: usize,
        f: impl FnOnce(&mut [u8]) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let stage = |buf: &mut Vec<u8>| {
            if buf.len() < padded + ALIGN {
                buf.resize(padded + ALIGN, 0);
            }
            let at = buf.as_ptr().align_offset(ALIGN);
            f(&mut buf[at..at + padded])
        };
        if padded <= KEEP {
            STAGING.with(|b| stage(&mut b.borrow_mut()))
        } else {
            stage(&mut Vec::new())
        }
    }

    /// No direct I/O here: refused like a file system without it, so puts fall back.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn write(_: &Path, _: &[u8]) -> std::io::Result<std::fs::File> {
        Err(std::io::ErrorKind::InvalidInput.into())
    }

    /// No direct I/O here: refused, so reads fall back.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn read(_: &Path) -> std::io::Result<(Vec<u8>, u64)> {
        Err(std::io::ErrorKind::InvalidInput.into())
    }
}

/// The directory of the shards whose ids start with byte `first`.
fn shard_dir(root: &Path, first: u8) -> PathBuf {
    root.join("shards").join(format!("{first:02x}"))
}

/// The shard an entry of a shard directory holds. Names that are not shard ids are not
/// shards (and not the store's to remove).
fn shard_named(entry: &fs::DirEntry) -> Option<ShardId> {
    entry.file_name().to_str()?.parse().ok()
}

/// Which file `meta` describes (its inode), to tell whether a path still names the file that
/// was read.
fn file_id(meta: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(meta)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// Opens `path` read-only with the extra open `flags`, and without updating its access time
/// where the platform allows (Linux's `O_NOATIME`): a shard's first read would otherwise
/// dirty its inode, one more metadata write per shard served. `O_NOATIME` is refused (EPERM)
/// for a file this process does not own; it is then opened without it.
fn open_for_reading(path: &Path, flags: i32) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags| {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
        };
        match open(flags | libc::O_NOATIME) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => open(flags),
            r => r,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = flags;
        File::open(path)
    }
}

/// Reads the whole file at `path` through the page cache, and its [`file_id`].
fn buffered_read(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let mut f = open_for_reading(path, 0)?;
    let meta = f.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    Ok((bytes, file_id(&meta)))
}

fn sync_dir(dir: &Path) -> Result<(), ShardStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory"))
}

impl ShardStore for FsShardStore {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        self.put_verified(Verified::check(id, bytes)?)
    }

    fn put_verified(&self, shard: Verified<'_>) -> Result<bool, ShardStoreError> {
        let (id, bytes) = (shard.id(), shard.bytes());
        let path = self.path(id);
        if path.exists() {
            return Ok(false);
        }
        let spare = self.lock_spares().pop();
        let tmp = spare.unwrap_or_else(|| self.temporary(&id.to_hex()));
        if let Err(e) = self.write_file(&tmp, bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(io("write")(e));
        }
        let _g = self.guard()?;
        if path.exists() {
            let _ = fs::remove_file(&tmp);
            return Ok(false);
        }
        fs::rename(&tmp, &path).map_err(io("rename"))?;
        self.used.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        drop(_g);
        if self.sync
            && let Some(dir) = path.parent()
        {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        let path = self.path(id);
        let mut tries = 0;
        loop {
            let read = match self.direct_io().then(|| direct::read(&path)) {
                // Refused (no direct I/O here, or a short read): read through the page cache.
                Some(Err(e)) if e.kind() == ErrorKind::InvalidInput => buffered_read(&path),
                None => buffered_read(&path),
                Some(r) => r,
            };
            let (bytes, file) = match read {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("read")(e)),
            };
            let actual = ShardId::of(&bytes);
            if actual == *id {
                return Ok(Some(bytes));
            }
            // Files at shard paths are never written in place, but a delete may have moved
            // this one away while it was read and a put reused it for another shard (see
            // `SPARES`): it is corrupt only if the path still names the file that was read.
            tries += 1;
            match fs::metadata(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("stat")(e)),
                Ok(m) if file_id(&m) != file && tries < 3 => continue,
                Ok(_) => {
                    return Err(ShardStoreError::Corrupt {
                        id: *id,
                        reason: format!("{} bytes on disk hash to {actual}", bytes.len()),
                    });
                }
            }
        }
    }

    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        match fs::metadata(self.path(id)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("stat")(e)),
        }
    }

    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        let path = self.path(id);
        let _g = self.guard()?;
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io("stat")(e)),
        };
        // Keep the file for a later put while there is room for it (see `SPARES`).
        let spare = (self.lock_spares().len() < SPARES).then(|| self.temporary("spare"));
        match &spare {
            Some(to) => fs::rename(&path, to).map_err(io("delete"))?,
            None => fs::remove_file(&path).map_err(io("delete"))?,
        }
        // Saturating: a file altered on disk may have another length than the one counted.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(len))
            });
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
        drop(_g);
        // The removal is durable before the file can hold another shard: otherwise a crash
        // could leave this shard's path naming a file a later put filled.
        if self.sync
            && let Some(dir) = path.parent()
        {
            sync_dir(dir)?;
        }
        if let Some(spare) = spare {
            // Give the blocks back now; a file that cannot be emptied is not kept. The shard
            // is deleted either way: a failure here is logged, not returned.
            match fs::OpenOptions::new()
                .write(true)
                .open(&spare)
                .and_then(|f| f.set_len(0))
            {
                Ok(()) => self.lock_spares().push(spare),
                Err(e) => match fs::remove_file(&spare) {
                    Ok(()) => {
                        tracing::debug!(error = %e, "could not empty a deleted shard's file; removed it")
                    }
                    Err(e2) => {
                        tracing::warn!(file = %spare.display(), error = %e, remove = %e2, "could not empty or remove a deleted shard's file; it goes when the store reopens")
                    }
                },
            }
        }
        Ok(true)
    }

    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        self.list_after(None, usize::MAX)
    }

    /// Reads only the directories the page needs: shards live in one directory per first id
    /// byte, so a page starts at `after`'s directory and stops once it has `max` shards.
    fn list_after(
        &self,
        after: Option<&ShardId>,
        max: usize,
    ) -> Result<Vec<ShardId>, ShardStoreError> {
        let mut out = Vec::new();
        let first = after.map_or(0, |a| a.0[0]);
        for b in first..=255u8 {
            if out.len() >= max {
                break;
            }
            let mut here = Vec::new();
            for e in fs::read_dir(shard_dir(&self.root, b)).map_err(io("list"))? {
                let e = e.map_err(io("list"))?;
                if let Some(id) = shard_named(&e).filter(|id| after.is_none_or(|a| id > a)) {
                    here.push(id);
                }
            }
            here.sort_unstable();
            out.extend(here);
        }
        out.truncate(max);
        Ok(out)
    }

    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        Ok(self.used.load(Ordering::Relaxed))
    }

    fn shard_count(&self) -> Result<u64, ShardStoreError> {
        Ok(self.count.load(Ordering::Relaxed))
    }

    /// The file system's space available to this process under the store's root.
    fn free_bytes(&self) -> Result<Option<u64>, ShardStoreError> {
        let st = rustix::fs::statvfs(&self.root).map_err(|e| ShardStoreError::Backend {
            op: "free space",
            reason: e.to_string(),
        })?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }
}

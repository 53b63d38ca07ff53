//! Keeper checkpoints: the keeper's whole applied state as of a log position, in one file of
//! its data dir, so that a restart loads it and follows the log from there instead of
//! replaying it from the start.
//!
//! File layout ([`CHECKPOINT_FILE`]): the magic `memockpt`, the format version
//! ([`CHECKPOINT_VERSION`]), the blake3 hash of the rest, then the rest:
//! [`memo_core::objects::OBJECTS_STATE_VERSION`] and the [`wire`] encoding of the header (the
//! position N, the digest of the operation at N − 1, the default quota the state was built
//! with) and of the state ([`Objects`]). A file that is foreign, of another version, truncated
//! or damaged is refused with a typed error ([`CheckpointError`]); the keeper then replays
//! the log from 0.
//!
//! Files are written atomically: a temporary file beside it, fsync'd, renamed over the old
//! one, and the directory fsync'd, so a crash leaves the old checkpoint or the new one.

use memo_core::objects::{OBJECTS_STATE_VERSION, Objects};
use memo_core::ownership::MemoryMeta;
use memo_core::wire::{self, WireError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The checkpoint's file in a keeper's data dir.
pub const CHECKPOINT_FILE: &str = "keeper.checkpoint";
/// Format version of the checkpoint file.
pub const CHECKPOINT_VERSION: u8 = 1;
/// The largest checkpoint file read (64 GiB): a larger file is refused unread.
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 36;
/// Applied operations between two checkpoints by default ([`super::KeeperConfig`]).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;

const MAGIC: &[u8; 8] = b"memockpt";
/// Magic, version, hash.
const PREFIX: usize = 8 + 1 + 32;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a keeper checkpoint (no magic, or shorter than its prefix).
    #[error("not a keeper checkpoint")]
    Foreign,
    /// The file is larger than [`MAX_CHECKPOINT_BYTES`].
    #[error("checkpoint of {0} bytes is larger than the limit")]
    TooLarge(u64),
    /// Another format version.
    #[error("checkpoint format {found}; this build reads {expected}")]
    Version {
        /// The version found.
        found: u8,
        /// The version this build reads.
        expected: u8,
    },
    /// The content does not match its hash: the file is damaged.
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    /// The content does not decode.
    #[error(transparent)]
    Decode(#[from] WireError),
}

/// Where a checkpoint stands in the log, and what else its state depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// The state is that of the first `position` log entries applied.
    pub position: u64,
    /// The digest of the entry at `position - 1` ([`memo_core::Signed::digest`]), to check
    /// the checkpoint belongs to this log.
    pub last: [u8; 32],
    /// The quota accounts were opened with ([`super::KeeperConfig::default_quota`]).
    pub default_quota: u64,
}

/// A checkpoint read back: its header and the state.
#[derive(Debug)]
pub struct Checkpoint {
    /// Where it stands.
    pub header: CheckpointHeader,
    /// The keeper's state as of [`CheckpointHeader::position`].
    pub state: Objects<MemoryMeta>,
}

/// The file's bytes for `state` as of `header`.
pub fn encode(header: &CheckpointHeader, state: &Objects<MemoryMeta>) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + 1024);
    out.extend_from_slice(MAGIC);
    out.push(CHECKPOINT_VERSION);
    out.extend_from_slice(&[0; 32]);
    wire::encode_versioned_into(OBJECTS_STATE_VERSION, &(header, state), &mut out);
    let hash = blake3::hash(&out[PREFIX..]);
    out[9..PREFIX].copy_from_slice(hash.as_bytes());
    out
}

/// Decodes the bytes [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() < PREFIX || &bytes[..8] != MAGIC {
        return Err(CheckpointError::Foreign);
    }
    if bytes[8] != CHECKPOINT_VERSION {
        return Err(CheckpointError::Version {
            found: bytes[8],
            expected: CHECKPOINT_VERSION,
        });
    }
    if blake3::hash(&bytes[PREFIX..]).as_bytes() != &bytes[9..PREFIX] {
        return Err(CheckpointError::Checksum);
    }
    let body = &bytes[PREFIX..];
    let (header, state) = wire::decode_versioned::<(CheckpointHeader, Objects<MemoryMeta>)>(
        body,
        OBJECTS_STATE_VERSION,
        body.len(),
        "keeper checkpoint",
    )?;
    Ok(Checkpoint { header, state })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Reads the checkpoint at `path`; `None` if there is none.
pub fn read(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if len > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge(len));
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    decode(&bytes).map(Some)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync'd, renamed over
/// `path`, then the directory fsync'd.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            position: 7,
            last: [3; 32],
            default_quota: 1 << 20,
        }
    }

    #[test]
    fn round_trip_and_damage_is_refused() {
        let state = Objects::new(MemoryMeta::new());
        state
            .ensure_account(memo_core::AccountId([1; 32]), 99)
            .unwrap();
        let bytes = encode(&header(), &state);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.header, header());
        assert_eq!(back.state, state);
        // Every single flipped byte is refused, whatever it hits.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "byte {i} flipped");
        }
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(CheckpointError::Checksum)
        ));
        assert!(matches!(decode(b"memo"), Err(CheckpointError::Foreign)));
    }

    #[test]
    fn written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        assert!(read(&path).unwrap().is_none());
        let state = Objects::new(MemoryMeta::new());
        write(&path, &encode(&header(), &state)).unwrap();
        write(&path, &encode(&header(), &state)).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().header, header());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CHECKPOINT_FILE)]);
    }
}

//! The manifest: an object's encrypted description, stored as a chunk itself.
//!
//! A manifest lists the object's size and its chunks in order (id, secret, size, shard ids).
//! It is encrypted convergently like any chunk, so the same file in the same domain gives the
//! same manifest and the same [`ObjectId`]. What a user keeps to read an object back is an
//! [`ObjectRef`]: the manifest chunk's reference (its secret included). The object id alone names
//! the object but does not let anyone read it.

use super::CodecError;
use super::chunk::{ChunkRef, MAX_DATA_CHUNK};
use crate::id::{ObjectId, ShardId};
use crate::wire;
use serde::{Deserialize, Serialize};

/// Format version of encoded manifests.
pub const MANIFEST_VERSION: u8 = 1;
/// Format version of object references.
pub const OBJECT_REF_VERSION: u8 = 1;
/// Largest manifest accepted (about 900 thousand chunks: about 3.5 TiB at the default 4 MiB chunks).
pub const MAX_MANIFEST_BYTES: u32 = 256 * 1024 * 1024;
const OBJECT_REF_PREFIX: &str = "memo-obj1:";

/// The decrypted description of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Object size in bytes.
    pub size: u64,
    /// The chunk size the object was cut with (the last chunk may be shorter).
    pub chunk_size: u32,
    /// The object's chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

impl Manifest {
    /// Canonical, versioned bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(MANIFEST_VERSION, self)
    }

    /// Decodes and checks a manifest: every chunk reference valid, sizes adding up.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let m: Manifest = wire::decode_versioned(
            bytes,
            MANIFEST_VERSION,
            MAX_MANIFEST_BYTES as usize,
            "manifest",
        )?;
        m.check()?;
        Ok(m)
    }

    /// Decodes the manifest fetched for `obj` and checks it describes an object of `obj`'s size.
    pub fn for_object(bytes: &[u8], obj: &ObjectRef) -> Result<Self, CodecError> {
        let manifest = Self::from_bytes(bytes)?;
        if manifest.size != obj.size {
            return Err(CodecError::ManifestInconsistent(format!(
                "manifest says {} bytes, the object reference {}",
                manifest.size, obj.size
            )));
        }
        Ok(manifest)
    }

    fn check(&self) -> Result<(), CodecError> {
        let mut total = 0u64;
        for (i, c) in self.chunks.iter().enumerate() {
            c.validate(MAX_DATA_CHUNK)?;
            if c.size > self.chunk_size {
                return Err(CodecError::ManifestInconsistent(format!(
                    "chunk {i} has {} bytes, more than the chunk size {}",
                    c.size, self.chunk_size
                )));
            }
            total += c.size as u64;
        }
        if total != self.size {
            return Err(CodecError::ManifestInconsistent(format!(
                "chunks add up to {total} bytes but the object has {}",
                self.size
            )));
        }
        Ok(())
    }

    /// The chunks overlapping the byte range `start..end`, with each chunk's starting offset.
    pub fn chunks_in_range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &ChunkRef)> {
        let mut offset = 0u64;
        self.chunks.iter().filter_map(move |c| {
            let at = offset;
            offset += c.size as u64;
            (at < end && at + c.size as u64 > start).then_some((at, c))
        })
    }

    /// Every shard id of every chunk.
    pub fn shard_ids(&self) -> impl Iterator<Item = &ShardId> {
        self.chunks.iter().flat_map(|c| c.shards.iter())
    }
}

/// A handle that reads an object back: the manifest chunk's reference and the object's size.
///
/// It holds the manifest's secret, so whoever has it can read the object: share it like a key.
/// Text form: `memo-obj1:` followed by hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The manifest chunk.
    pub manifest: ChunkRef,
    /// The object's size in bytes.
    pub size: u64,
}

impl std::fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectRef({:?}, {} bytes)", self.id(), self.size)
    }
}

impl ObjectRef {
    /// The object's id (the manifest's chunk id).
    pub fn id(&self) -> ObjectId {
        ObjectId(self.manifest.id.0)
    }

    /// Canonical, versioned bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_versioned(OBJECT_REF_VERSION, self)
    }

    /// Decodes and validates an object reference.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let r: ObjectRef =
            wire::decode_versioned(bytes, OBJECT_REF_VERSION, 16 * 1024, "object reference")?;
        r.manifest.validate(MAX_MANIFEST_BYTES)?;
        Ok(r)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{OBJECT_REF_PREFIX}{}", hex::encode(self.to_bytes()))
    }
}

impl std::str::FromStr for ObjectRef {
    type Err = CodecError;
    fn from_str(s: &str) -> Result<Self, CodecError> {
        let hex_part = s.trim().strip_prefix(OBJECT_REF_PREFIX).ok_or_else(|| {
            CodecError::BadObjectRef(format!("does not start with {OBJECT_REF_PREFIX}"))
        })?;
        let bytes = hex::decode(hex_part).map_err(|e| CodecError::BadObjectRef(e.to_string()))?;
        Self::from_bytes(&bytes)
    }
}

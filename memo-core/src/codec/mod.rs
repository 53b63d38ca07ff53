//! The object codec: chunk, encrypt convergently, address with blake3, erasure-code; and back.
//!
//! ```
//! use memo_core::codec::{CodecParams, ConvergenceDomain, Decoder, Encoder, MemoryShards};
//! let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::with_shards(4, 2))?;
//! let (obj, chunks) = enc.encode_bytes(b"hello, memo")?;
//! let shards = MemoryShards::new();
//! chunks.iter().for_each(|c| shards.insert_chunk(c));
//! assert_eq!(Decoder::default().decode_to_vec(&shards, &obj)?, b"hello, memo");
//! # Ok::<(), memo_core::codec::CodecError>(())
//! ```

mod chunk;
mod convergence;
mod error;
mod manifest;
mod params;
pub mod pipeline;
mod rebuild;
pub mod siv;
mod stream;

pub use bytes::Bytes;
pub use chunk::{
    ChunkDecoder, ChunkRef, EncodedChunk, MAX_DATA_CHUNK, ShardOutcome, encode_capacity,
    encode_chunk, encode_chunk_in_place, reencode_shards,
};
pub use convergence::{ConvergenceDomain, DomainKind};
pub use error::CodecError;
pub use manifest::{MANIFEST_VERSION, MAX_MANIFEST_BYTES, Manifest, OBJECT_REF_VERSION, ObjectRef};
pub use params::{
    CodecParams, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_SHARDS, MIN_CHUNK_SIZE, Parallelism,
};
pub use rebuild::{Rebuilt, rebuild_shards};
pub use stream::{
    Decoder, Encoder, MemoryShards, Progress, ShardSource, fetch_chunk, read_manifest,
};

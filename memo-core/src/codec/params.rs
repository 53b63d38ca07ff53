//! Codec parameters: chunk size, erasure coding (k data + m parity shards), parallelism.

use super::CodecError;
use serde::{Deserialize, Serialize};

/// Smallest allowed chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest allowed chunk size.
pub const MAX_CHUNK_SIZE: u32 = 64 * 1024 * 1024;
/// Largest number of shards (k + m) per chunk.
pub const MAX_SHARDS: usize = 256;
/// Default chunk size: 4 MiB. Measured against 1 MiB (`cargo bench -p memo-core --bench
/// pipeline` with `MEMO_BENCH_CHUNK_KIB`): 1.3–1.6x faster encode, and 4x fewer chunk ids,
/// registry entries, ledger commitments and reference-count updates per byte; the cost is
/// coarser dedup (whole 4 MiB aligned chunks) and a larger in-flight window (still ~50 MiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// How an object is cut and coded. Validated by [`CodecParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodecParams {
    /// Plaintext bytes per chunk (the dedup unit). Default 4 MiB.
    pub chunk_size: u32,
    /// k: data shards per chunk (at least 2); any k shards rebuild the chunk. Default 4.
    pub data_shards: u8,
    /// m: parity shards per chunk; up to m shards may be lost. Default 2.
    pub parity_shards: u8,
}

impl Default for CodecParams {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            data_shards: 4,
            parity_shards: 2,
        }
    }
}

impl CodecParams {
    /// Parameters with the given k and m and the default chunk size.
    pub fn with_shards(data_shards: u8, parity_shards: u8) -> Self {
        Self {
            data_shards,
            parity_shards,
            ..Self::default()
        }
    }

    /// k + m.
    pub fn total_shards(&self) -> usize {
        self.data_shards as usize + self.parity_shards as usize
    }

    /// Checks every field is in range.
    pub fn validate(&self) -> Result<(), CodecError> {
        check_shards(self.data_shards as usize, self.parity_shards as usize)?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(CodecError::InvalidParams(format!(
                "chunk size {} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                self.chunk_size
            )));
        }
        Ok(())
    }
}

pub(crate) fn check_shards(k: usize, m: usize) -> Result<(), CodecError> {
    // k = 1 would make every shard a copy of the chunk with the same id: content addressing
    // could not tell the copies apart, so replication is expressed as k >= 2 with parity.
    if k < 2 || m == 0 || k + m > MAX_SHARDS {
        return Err(CodecError::InvalidParams(format!(
            "k={k} m={m}: need k >= 2, m >= 1 and k + m <= {MAX_SHARDS}"
        )));
    }
    Ok(())
}

/// How much work runs at once in the streaming encoder and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// Worker threads coding chunks. Default: one per core.
    pub threads: usize,
    /// Chunks in flight (read or fetched, not yet delivered). Bounds memory to about
    /// `window × chunk_size × (2 + m/k)`. Default: 4 per thread.
    pub window: usize,
}

impl Default for Parallelism {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            threads,
            window: 4 * threads,
        }
    }
}

//! Streaming encode from any `Read` and decode to any `Write`, parallel across chunks, with
//! memory bounded by a window of chunks in flight.

use super::CodecError;
use super::chunk::{ChunkDecoder, ChunkRef, EncodedChunk, encode_capacity, encode_chunk_in_place};
use super::convergence::ConvergenceDomain;
use super::manifest::{MAX_MANIFEST_BYTES, Manifest, ObjectRef};
use super::params::{CodecParams, Parallelism};
use super::pipeline::ordered_pipeline;
use crate::id::ShardId;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Mutex;

/// How far an encode or decode has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Plaintext bytes done.
    pub done: u64,
    /// Plaintext bytes in all, when known.
    pub total: Option<u64>,
}

/// Turns objects into chunks and shards.
#[derive(Debug, Clone)]
pub struct Encoder {
    domain: ConvergenceDomain,
    params: CodecParams,
    par: Parallelism,
}

impl Encoder {
    /// An encoder for `domain` with validated `params` and default parallelism.
    pub fn new(domain: ConvergenceDomain, params: CodecParams) -> Result<Self, CodecError> {
        params.validate()?;
        Ok(Self {
            domain,
            params,
            par: Parallelism::default(),
        })
    }

    /// Sets threads and window.
    pub fn with_parallelism(mut self, par: Parallelism) -> Self {
        self.par = par;
        self
    }

    /// The parameters in use.
    pub fn params(&self) -> &CodecParams {
        &self.params
    }

    /// The convergence domain.
    pub fn domain(&self) -> &ConvergenceDomain {
        &self.domain
    }

    /// Encodes one chunk from an owned plaintext buffer (see [`encode_capacity`] to avoid a
    /// reallocation).
    pub fn encode_chunk_owned(&self, plaintext: Vec<u8>) -> Result<EncodedChunk, CodecError> {
        encode_chunk_in_place(
            &self.domain,
            plaintext,
            self.params.data_shards as usize,
            self.params.parity_shards as usize,
        )
    }

    /// Encodes one chunk of plaintext with this encoder's domain and shard counts.
    pub fn encode_chunk(&self, plaintext: &[u8]) -> Result<EncodedChunk, CodecError> {
        super::chunk::encode_chunk(
            &self.domain,
            plaintext,
            self.params.data_shards as usize,
            self.params.parity_shards as usize,
        )
    }

    /// Streams `reader` through the codec. Every data chunk, then the manifest chunk, is handed
    /// to `sink` in order; `progress` sees plaintext bytes done. Returns the handle that reads
    /// the object back. Memory stays within the window whatever the input's size.
    pub fn encode_reader<R: Read + Send>(
        &self,
        mut reader: R,
        total: Option<u64>,
        progress: &mut dyn FnMut(Progress),
        sink: &mut dyn FnMut(EncodedChunk) -> io::Result<()>,
    ) -> Result<ObjectRef, CodecError> {
        let (k, m) = (
            self.params.data_shards as usize,
            self.params.parity_shards as usize,
        );
        let chunk_size = self.params.chunk_size as usize;
        let mut refs: Vec<ChunkRef> = Vec::new();
        let mut done = 0u64;
        ordered_pipeline(
            self.par.threads,
            self.par.window,
            || {
                let mut buf = Vec::with_capacity(encode_capacity(chunk_size, k, m));
                // `read_to_end` fills spare capacity without zeroing it first.
                let n = read_chunk(&mut reader, &mut buf, chunk_size)?;
                if n == 0 {
                    return Ok(None);
                }
                Ok(Some(buf))
            },
            |buf| encode_chunk_in_place(&self.domain, buf, k, m),
            |enc: EncodedChunk| {
                done += enc.chunk.size as u64;
                refs.push(enc.chunk.clone());
                sink(enc)?;
                progress(Progress { done, total });
                Ok(())
            },
        )?;
        // An empty input is an object too: a manifest with no chunks.
        let manifest = Manifest {
            size: done,
            chunk_size: self.params.chunk_size,
            chunks: refs,
        };
        let bytes = manifest.to_bytes();
        let mut buf = Vec::with_capacity(encode_capacity(bytes.len(), k, m));
        buf.extend_from_slice(&bytes);
        if buf.len() > MAX_MANIFEST_BYTES as usize {
            return Err(CodecError::InvalidParams(format!(
                "object of {done} bytes needs a manifest over {MAX_MANIFEST_BYTES} bytes: use a larger chunk size"
            )));
        }
        let enc = encode_chunk_in_place(&self.domain, buf, k, m)?;
        let obj = ObjectRef {
            manifest: enc.chunk.clone(),
            size: done,
        };
        sink(enc)?;
        Ok(obj)
    }

    /// Encodes a byte slice, returning the handle and every chunk (manifest last).
    pub fn encode_bytes(&self, data: &[u8]) -> Result<(ObjectRef, Vec<EncodedChunk>), CodecError> {
        let mut out = Vec::new();
        let obj = self.encode_reader(data, Some(data.len() as u64), &mut |_| {}, &mut |c| {
            out.push(c);
            Ok(())
        })?;
        Ok((obj, out))
    }
}

/// Appends up to `max` bytes from `r` to `buf`, retrying short reads until `max` or EOF.
fn read_chunk(r: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let start = buf.len();
    loop {
        let got = buf.len() - start;
        if got == max {
            return Ok(got);
        }
        match r.by_ref().take((max - got) as u64).read_to_end(buf) {
            Ok(0) => return Ok(buf.len() - start),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Where a decoder gets shards from. Bytes from a source are never trusted: each is checked
/// against its id. Implementations must be callable from several threads at once.
pub trait ShardSource: Sync {
    /// Shard `index` of `chunk`: `Ok(None)` if it is not available. An `Err` is treated like a
    /// missing shard, so one failing holder never fails a read that others can serve.
    fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>>;
}

/// Fetches and decodes one chunk from `source`: data shards first (no decoding work when they
/// are all good), then parity shards until k good ones are in hand.
pub fn fetch_chunk(source: &dyn ShardSource, chunk: &ChunkRef) -> Result<Vec<u8>, CodecError> {
    let mut dec = ChunkDecoder::new(chunk);
    for index in 0..chunk.shards.len() {
        if dec.is_ready() {
            break;
        }
        if let Ok(Some(bytes)) = source.fetch(chunk, index) {
            dec.add(index, bytes);
        }
    }
    dec.finish()
}

/// Fetches, decrypts and checks the manifest that `obj` points to.
pub fn read_manifest(source: &dyn ShardSource, obj: &ObjectRef) -> Result<Manifest, CodecError> {
    obj.manifest.validate(MAX_MANIFEST_BYTES)?;
    let bytes = fetch_chunk(source, &obj.manifest)?;
    Manifest::for_object(&bytes, obj)
}

/// Reads objects back from shards.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    par: Parallelism,
}

impl Decoder {
    /// A decoder with the given parallelism.
    pub fn new(par: Parallelism) -> Self {
        Self { par }
    }

    /// Writes the object (or the byte `range` of it) to `writer`, in order, fetching and
    /// decoding chunks in parallel within the window. Returns the bytes written. On error,
    /// everything written before it was verified: no wrong byte is ever written.
    pub fn decode_to_writer(
        &self,
        source: &dyn ShardSource,
        obj: &ObjectRef,
        range: Option<Range<u64>>,
        progress: &mut dyn FnMut(Progress),
        writer: &mut dyn Write,
    ) -> Result<u64, CodecError> {
        let manifest = read_manifest(source, obj)?;
        let range = range.unwrap_or(0..manifest.size);
        let (start, end) = (range.start.min(manifest.size), range.end.min(manifest.size));
        let total = end.saturating_sub(start);
        let mut chunks = manifest.chunks_in_range(start, end);
        let mut written = 0u64;
        ordered_pipeline(
            self.par.threads,
            self.par.window,
            || Ok::<_, CodecError>(chunks.next()),
            |(at, chunk): (u64, &ChunkRef)| Ok((at, fetch_chunk(source, chunk)?)),
            |(at, plain): (u64, Vec<u8>)| {
                let from = start.saturating_sub(at) as usize;
                let to = ((end - at) as usize).min(plain.len());
                writer.write_all(&plain[from..to])?;
                written += (to - from) as u64;
                progress(Progress {
                    done: written,
                    total: Some(total),
                });
                Ok(())
            },
        )?;
        writer.flush()?;
        Ok(written)
    }

    /// Decodes the whole object into memory.
    pub fn decode_to_vec(
        &self,
        source: &dyn ShardSource,
        obj: &ObjectRef,
    ) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(obj.size.min(1 << 30) as usize);
        self.decode_to_writer(source, obj, None, &mut |_| {}, &mut out)?;
        Ok(out)
    }
}

/// Shards in memory, keyed by shard id: a [`ShardSource`] for tests, simulations and demos.
#[derive(Debug, Default)]
pub struct MemoryShards {
    map: Mutex<HashMap<ShardId, Bytes>>,
}

impl MemoryShards {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds every shard of `chunk`.
    pub fn insert_chunk(&self, chunk: &EncodedChunk) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (id, bytes) in chunk.chunk.shards.iter().zip(&chunk.shards) {
            map.insert(*id, bytes.clone());
        }
    }
    /// Adds one shard under `id` (which need not match its bytes: for fault injection).
    pub fn insert(&self, id: ShardId, bytes: impl Into<Bytes>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, bytes.into());
    }
    /// Removes a shard; returns whether it was there.
    pub fn remove(&self, id: &ShardId) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }
    /// How many shards are held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    /// Whether no shards are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ShardSource for MemoryShards {
    fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>> {
        let Some(id) = chunk.shards.get(index) else {
            return Ok(None);
        };
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned())
    }
}

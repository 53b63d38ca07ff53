//! Async streaming over the object codec: encode from any `AsyncRead`, decode to any
//! `AsyncWrite`.
//!
//! Chunks are coded on tokio's blocking pool ([`run_blocking`]: inline on a current-thread
//! runtime), up to a window at a time, so every core works while
//! memory stays bounded; the sink (for example an upload to providers) runs concurrently with
//! reading and coding, and its calls may overlap (up to `uploads` at once).

use crate::env::run_blocking;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use memo_core::codec::{
    ChunkDecoder, ChunkRef, CodecError, EncodedChunk, Encoder, MAX_MANIFEST_BYTES, Manifest,
    ObjectRef, Parallelism, Progress, ShardSource, encode_capacity, encode_chunk_in_place,
};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn join_error(e: tokio::task::JoinError) -> CodecError {
    CodecError::Io(io::Error::other(format!("coding task failed: {e}")))
}

async fn read_chunk<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let start = buf.len();
    while buf.len() - start < max {
        let want = (max - (buf.len() - start)) as u64;
        if (&mut *r).take(want).read_to_end(buf).await? == 0 {
            break;
        }
    }
    Ok(buf.len() - start)
}

/// Encodes `reader` and hands every chunk (data chunks in order, then the manifest) to `sink`.
/// At most `par.window` chunks are being coded and at most `uploads` sink calls run at once.
pub async fn encode_async<R, F, Fut>(
    encoder: &Encoder,
    par: Parallelism,
    uploads: usize,
    reader: R,
    total: Option<u64>,
    progress: &mut (dyn FnMut(Progress) + Send),
    mut sink: F,
) -> Result<ObjectRef, CodecError>
where
    R: AsyncRead + Unpin + Send,
    F: FnMut(EncodedChunk) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    let params = *encoder.params();
    let (k, m) = (params.data_shards as usize, params.parity_shards as usize);
    let chunk_size = params.chunk_size as usize;
    // The data chunks' refs and bytes, in order, then the manifest's ref.
    let refs: Mutex<(Vec<ChunkRef>, u64)> = Mutex::new((Vec::new(), 0));
    let manifest_ref: Mutex<Option<ChunkRef>> = Mutex::new(None);
    let chunks = stream::try_unfold(reader, move |mut r| async move {
        let mut buf = Vec::with_capacity(encode_capacity(chunk_size, k, m));
        let n = read_chunk(&mut r, &mut buf, chunk_size).await?;
        Ok::<_, CodecError>((n > 0).then_some((buf, r)))
    });
    let domain_encoder = encoder.clone();
    let data = chunks
        .map_ok(move |buf| {
            let enc = domain_encoder.clone();
            async move {
                run_blocking(move || enc.encode_chunk_owned(buf))
                    .await
                    .map_err(join_error)?
            }
        })
        .try_buffered(par.window.max(1))
        .map_ok(|c: EncodedChunk| {
            let done = {
                let mut r = refs.lock().unwrap_or_else(|p| p.into_inner());
                r.1 += c.chunk.size as u64;
                r.0.push(c.chunk.clone());
                r.1
            };
            progress(Progress { done, total });
            c
        });
    // The manifest is encoded once the last data chunk is, and uploads alongside the data
    // chunks still uploading (a small object's two chunks go at once, not one after the other).
    let manifest = stream::once(async {
        let (chunks, size) = std::mem::take(&mut *refs.lock().unwrap_or_else(|p| p.into_inner()));
        // An empty input is an object too: a manifest with no chunks.
        let manifest = Manifest {
            size,
            chunk_size: params.chunk_size,
            chunks,
        };
        let bytes = manifest.to_bytes();
        if bytes.len() > MAX_MANIFEST_BYTES as usize {
            return Err(CodecError::InvalidParams(format!(
                "object of {size} bytes needs a manifest over {MAX_MANIFEST_BYTES} bytes: use a larger chunk size"
            )));
        }
        let enc = encoder.clone();
        let chunk = run_blocking(move || {
            let mut buf = Vec::with_capacity(encode_capacity(bytes.len(), k, m));
            buf.extend_from_slice(&bytes);
            encode_chunk_in_place(enc.domain(), buf, k, m)
        })
        .await
        .map_err(join_error)??;
        *manifest_ref.lock().unwrap_or_else(|p| p.into_inner()) = Some(chunk.chunk.clone());
        Ok((chunk, size))
    });
    let mut size = 0;
    // After the first failure no further chunk starts, but the uploads under way finish, so
    // that whatever they stored is known to the sink's caller (a failed put takes it back).
    let stop = AtomicBool::new(false);
    let stopped = || stop.load(Ordering::Relaxed);
    let failed = {
        let uploading = data
            .map_ok(|c| (c, None))
            .chain(manifest.map_ok(|(c, size)| (c, Some(size))))
            .take_while(|_| futures::future::ready(!stopped()))
            .map(|item| match item {
                Ok((c, manifest_of)) => {
                    if let Some(s) = manifest_of {
                        size = s;
                    }
                    let upload = sink(c);
                    futures::future::Either::Left(
                        async move { upload.await.map_err(CodecError::Io) },
                    )
                }
                Err(e) => futures::future::Either::Right(futures::future::ready(Err(e))),
            })
            .buffer_unordered(uploads.max(1));
        let mut uploading = std::pin::pin!(uploading);
        let mut failed = None;
        while let Some(r) = uploading.next().await {
            if let Err(e) = r {
                stop.store(true, Ordering::Relaxed);
                failed.get_or_insert(e);
            }
        }
        failed
    };
    if let Some(e) = failed {
        return Err(e);
    }
    let manifest = manifest_ref
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or_else(|| CodecError::Io(io::Error::other("the manifest was not encoded")))?;
    Ok(ObjectRef { manifest, size })
}

/// Where an async decoder gets shards: providers over the network, a local store, memory.
/// Bytes are never trusted: each shard is checked against its id.
#[async_trait]
pub trait AsyncShardSource: Send + Sync {
    /// Shard `index` of `chunk`, or `Ok(None)` if unavailable. Errors count as unavailable.
    async fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>>;

    /// Told when the bytes this source gave for shard `index` of `chunk` did not match the
    /// shard's id (they were ignored). A network source reports the provider. Default: nothing.
    fn rejected(&self, _chunk: &ChunkRef, _index: usize) {}
}

/// Any synchronous [`ShardSource`] (memory, local disk) as an [`AsyncShardSource`].
#[async_trait]
impl<T: ShardSource + Send + Sync> AsyncShardSource for T {
    async fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>> {
        ShardSource::fetch(self, chunk, index)
    }
}

/// Fetches one chunk: all k data shards at once, then, if any were missing or bad, the parity
/// shards at once; decodes on the blocking pool.
pub async fn fetch_chunk_async(
    source: &dyn AsyncShardSource,
    chunk: &ChunkRef,
) -> Result<Vec<u8>, CodecError> {
    let mut dec = ChunkDecoder::new(chunk);
    let k = chunk.k();
    for wave in [0..k, k..chunk.shards.len()] {
        if dec.is_ready() {
            break;
        }
        let got = futures::future::join_all(
            wave.map(|i| async move { (i, source.fetch(chunk, i).await) }),
        )
        .await;
        for (i, r) in got {
            if let Ok(Some(bytes)) = r
                && dec.add(i, bytes) == memo_core::codec::ShardOutcome::Rejected
            {
                source.rejected(chunk, i);
            }
        }
    }
    if !dec.is_ready() {
        return Err(dec.not_enough());
    }
    run_blocking(move || dec.finish())
        .await
        .map_err(join_error)?
}

/// Fetches and checks the manifest of `obj`.
pub async fn read_manifest_async(
    source: &dyn AsyncShardSource,
    obj: &ObjectRef,
) -> Result<Manifest, CodecError> {
    obj.manifest.validate(MAX_MANIFEST_BYTES)?;
    let bytes = fetch_chunk_async(source, &obj.manifest).await?;
    Manifest::for_object(&bytes, obj)
}

/// Writes the object (or the byte `range` of it) to `writer` in order, fetching and decoding
/// up to `par.window` chunks at once. Returns the bytes written; everything written was
/// verified.
pub async fn decode_async<W: AsyncWrite + Unpin + Send>(
    source: &dyn AsyncShardSource,
    obj: &ObjectRef,
    range: Option<Range<u64>>,
    par: Parallelism,
    progress: &mut (dyn FnMut(Progress) + Send),
    writer: &mut W,
) -> Result<u64, CodecError> {
    let manifest = read_manifest_async(source, obj).await?;
    decode_manifest_async(source, &manifest, range, par, progress, writer).await
}

/// Like [`decode_async`], for a caller that has already read and checked the object's manifest
/// (see [`read_manifest_async`]), so it is not fetched and decrypted again.
pub async fn decode_manifest_async<W: AsyncWrite + Unpin + Send>(
    source: &dyn AsyncShardSource,
    manifest: &Manifest,
    range: Option<Range<u64>>,
    par: Parallelism,
    progress: &mut (dyn FnMut(Progress) + Send),
    writer: &mut W,
) -> Result<u64, CodecError> {
    let range = range.unwrap_or(0..manifest.size);
    let (start, end) = (range.start.min(manifest.size), range.end.min(manifest.size));
    let total = end.saturating_sub(start);
    let mut written = 0u64;
    let mut chunks = stream::iter(manifest.chunks_in_range(start, end))
        .map(
            |(at, c)| async move { Ok::<_, CodecError>((at, fetch_chunk_async(source, c).await?)) },
        )
        .buffered(par.window.max(1));
    while let Some(item) = chunks.next().await {
        let (at, plain) = item?;
        let from = start.saturating_sub(at) as usize;
        let to = ((end - at) as usize).min(plain.len());
        writer.write_all(&plain[from..to]).await?;
        written += (to - from) as u64;
        progress(Progress {
            done: written,
            total: Some(total),
        });
    }
    writer.flush().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::codec::{CodecParams, ConvergenceDomain, Decoder, MIN_CHUNK_SIZE, MemoryShards};
    use std::sync::{Arc, Mutex};

    fn data(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        blake3::Hasher::new()
            .update(b"sdk")
            .finalize_xof()
            .fill(&mut v);
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_round_trip_matches_the_sync_codec() {
        let params = CodecParams {
            chunk_size: MIN_CHUNK_SIZE,
            data_shards: 3,
            parity_shards: 2,
        };
        let enc = Encoder::new(ConvergenceDomain::global(), params).unwrap();
        let input = data(50_000);
        let store = Arc::new(MemoryShards::new());
        let uploaded = Mutex::new(0usize);
        let mut seen = Vec::new();
        let obj = encode_async(
            &enc,
            Parallelism {
                threads: 2,
                window: 3,
            },
            2,
            &input[..],
            Some(input.len() as u64),
            &mut |p| seen.push(p.done),
            |c| {
                store.insert_chunk(&c);
                *uploaded.lock().unwrap() += 1;
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
        let (sync_obj, sync_chunks) = enc.encode_bytes(&input).unwrap();
        assert_eq!(obj, sync_obj, "async and sync encoders agree");
        assert_eq!(*uploaded.lock().unwrap(), sync_chunks.len());
        assert_eq!(seen.last(), Some(&(input.len() as u64)));
        let mut out = Vec::new();
        let n = decode_async(
            store.as_ref(),
            &obj,
            Some(1000..30_000),
            Parallelism::default(),
            &mut |_| {},
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(n, 29_000);
        assert_eq!(out, &input[1000..30_000]);
        assert_eq!(
            Decoder::default()
                .decode_to_vec(store.as_ref(), &obj)
                .unwrap(),
            input
        );
    }

    #[tokio::test]
    async fn a_failing_sink_fails_the_put_and_empty_input_is_refused() {
        let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::default()).unwrap();
        let input = data(10_000);
        let r = encode_async(
            &enc,
            Parallelism::default(),
            4,
            &input[..],
            None,
            &mut |_| {},
            |_| async { Err(io::Error::other("provider refused")) },
        )
        .await;
        assert!(matches!(r, Err(CodecError::Io(_))));
        let r = encode_async(
            &enc,
            Parallelism::default(),
            4,
            &b""[..],
            None,
            &mut |_| {},
            |_| async { Ok(()) },
        )
        .await;
        // Empty input: an object of no chunks, just its manifest.
        let obj = r.unwrap();
        assert_eq!(obj.size, 0);
    }

    #[tokio::test]
    async fn decode_survives_lost_shards_and_reports_too_few() {
        let params = CodecParams {
            chunk_size: MIN_CHUNK_SIZE,
            data_shards: 2,
            parity_shards: 2,
        };
        let enc = Encoder::new(ConvergenceDomain::global(), params).unwrap();
        let input = data(20_000);
        let (obj, chunks) = enc.encode_bytes(&input).unwrap();
        let store = Arc::new(MemoryShards::new());
        chunks.iter().for_each(|c| store.insert_chunk(c));
        for c in &chunks[..chunks.len() - 1] {
            store.remove(&c.chunk.shards[0]);
            store.remove(&c.chunk.shards[1]);
        }
        let mut out = Vec::new();
        decode_async(
            store.as_ref(),
            &obj,
            None,
            Parallelism::default(),
            &mut |_| {},
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(out, input);
        store.remove(&chunks[0].chunk.shards[2]);
        let r = decode_async(
            store.as_ref(),
            &obj,
            None,
            Parallelism::default(),
            &mut |_| {},
            &mut Vec::new(),
        )
        .await;
        assert!(matches!(
            r,
            Err(CodecError::NotEnoughShards {
                good: 1,
                needed: 2,
                ..
            })
        ));
    }
}

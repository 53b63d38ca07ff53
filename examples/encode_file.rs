//! Encode a file into shards on local disk, then read it back and check it.
//!
//! ```text
//! cargo run --release -p memo-examples --example encode_file -- [FILE]
//! ```
//!
//! Without FILE, a 32 MiB file of random bytes is generated. This is the pipeline every put
//! and get goes through: the shards written here are what providers store.

use anyhow::{Context, Result, bail};
use memo_core::codec::{Bytes, ChunkRef, CodecParams, ConvergenceDomain, Encoder, Parallelism};
use memo_sdk::client::pipeline::{AsyncShardSource, decode_async, encode_async};
use std::path::PathBuf;

/// Shards as files named by their id: the simplest shard store there is.
struct DirStore(PathBuf);

#[async_trait::async_trait]
impl AsyncShardSource for DirStore {
    async fn fetch(&self, chunk: &ChunkRef, index: usize) -> std::io::Result<Option<Bytes>> {
        let path = self.0.join(chunk.shards[index].to_hex());
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let work = std::env::temp_dir().join(format!("memo-example-{}", std::process::id()));
    let shards_dir = work.join("shards");
    tokio::fs::create_dir_all(&shards_dir).await?;
    let input = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = work.join("input.bin");
            let mut data = vec![0u8; 32 << 20];
            for (i, b) in data.iter_mut().enumerate() {
                *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
            }
            tokio::fs::write(&path, &data).await?;
            path
        }
    };
    let size = tokio::fs::metadata(&input)
        .await
        .context("input file")?
        .len();

    // 1. Encode: 1 MiB chunks, 4 data + 2 parity shards, global convergence (dedup with everyone).
    let encoder = Encoder::new(ConvergenceDomain::global(), CodecParams::with_shards(4, 2))?;
    let file = tokio::fs::File::open(&input).await?;
    let dir = shards_dir.clone();
    let obj = encode_async(
        &encoder,
        Parallelism::default(),
        8,
        file,
        Some(size),
        &mut |p| {
            eprint!("\rencoded {} / {} bytes", p.done, size);
        },
        |chunk| {
            let dir = dir.clone();
            async move {
                for (id, bytes) in chunk.chunk.shards.iter().zip(&chunk.shards) {
                    tokio::fs::write(dir.join(id.to_hex()), bytes).await?;
                }
                Ok(())
            }
        },
    )
    .await?;
    eprintln!();
    println!("object id:  {}", obj.id());
    println!("read with:  {obj}");

    // 2. Decode from the shard files to a new file, and compare.
    let out_path = work.join("output.bin");
    let mut out = tokio::fs::File::create(&out_path).await?;
    let source = DirStore(shards_dir);
    let n = decode_async(
        &source,
        &obj,
        None,
        Parallelism::default(),
        &mut |_| {},
        &mut out,
    )
    .await?;
    if n != size || tokio::fs::read(&out_path).await? != tokio::fs::read(&input).await? {
        bail!("read back different bytes");
    }
    println!("read back {n} bytes, identical");
    tokio::fs::remove_dir_all(&work).await?;
    Ok(())
}

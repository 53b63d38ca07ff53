//! memo's object pipeline against MaidSafe's `self_encryption`, in one run, on the same data.
//!
//! `cargo bench -p memo-core --bench pipeline`
//!
//! Prints encode and decode throughput of both on the same 256 MiB of random data (override with
//! `MEMO_BENCH_MIB`), their ratios, and the peak memory (VmHWM) of a child process that streams a
//! 1 GiB object through memo's encoder to shard files on disk and back through the decoder
//! (override with `MEMO_BENCH_PEAK_MIB`).

use memo_core::codec::{
    Bytes, ChunkRef, CodecParams, ConvergenceDomain, Decoder, EncodedChunk, Encoder, MemoryShards,
    Parallelism, ShardSource,
};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

const RUNS: usize = 3;

fn env_mib(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median of `RUNS` timed runs, in seconds.
fn median_secs(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

/// Fast deterministic pseudo-random bytes (xorshift64*), so generating input costs little.
struct Noise {
    state: u64,
    left: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for word in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct DirShards(PathBuf);

impl DirShards {
    fn put(&self, c: &EncodedChunk) -> io::Result<()> {
        for (id, bytes) in c.chunk.shards.iter().zip(&c.shards) {
            std::fs::write(self.0.join(id.to_hex()), bytes)?;
        }
        Ok(())
    }
}

impl ShardSource for DirShards {
    fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>> {
        match std::fs::read(self.0.join(chunk.shards[index].to_hex())) {
            Ok(b) => Ok(Some(b.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

struct HashWriter(blake3::Hasher, u64);
impl Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The child: stream `mib` MiB through encode to disk and back, print peak RSS.
fn peak_child(mib: u64) -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("memo-peak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = DirShards(dir.clone());
    let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::default())
        .map_err(io::Error::other)?;
    let len = mib << 20;
    let mut input_hash = HashWriter(blake3::Hasher::new(), 0);
    io::copy(
        &mut Noise {
            state: 0x9e37_79b9_7f4a_7c15,
            left: len,
        },
        &mut input_hash,
    )?;
    let t = Instant::now();
    let obj = enc
        .encode_reader(
            Noise {
                state: 0x9e37_79b9_7f4a_7c15,
                left: len,
            },
            Some(len),
            &mut |_| {},
            &mut |c| store.put(&c),
        )
        .map_err(io::Error::other)?;
    let enc_s = t.elapsed().as_secs_f64();
    let mut out = HashWriter(blake3::Hasher::new(), 0);
    let t = Instant::now();
    Decoder::default()
        .decode_to_writer(&store, &obj, None, &mut |_| {}, &mut out)
        .map_err(io::Error::other)?;
    let dec_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    if out.0.finalize() != input_hash.0.finalize() || out.1 != len {
        return Err(io::Error::other("decoded bytes differ"));
    }
    println!(
        "PEAK {} {:.1} {:.1}",
        vm_hwm_kib(),
        mib as f64 / enc_s,
        mib as f64 / dec_s
    );
    Ok(())
}

fn main() -> io::Result<()> {
    if let Ok(mib) = std::env::var("MEMO_BENCH_PEAK_CHILD") {
        return peak_child(mib.parse().unwrap_or(1024));
    }
    let mib = env_mib("MEMO_BENCH_MIB", 256);
    let peak_mib = env_mib("MEMO_BENCH_PEAK_MIB", 1024);
    let len = mib << 20;
    let mut data = vec![0u8; len];
    Noise {
        state: 0x1234_5678_9abc_def1,
        left: len as u64,
    }
    .read_exact(&mut data)?;
    let threads = Parallelism::default().threads;
    println!(
        "memo pipeline vs self_encryption: {mib} MiB of random data, {threads} threads, median of {RUNS}"
    );

    // memo: default chunk size and 4+2 shards (override the chunk size with MEMO_BENCH_CHUNK_KIB).
    let mut params = CodecParams::default();
    if let Some(kib) = std::env::var("MEMO_BENCH_CHUNK_KIB")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        params.chunk_size = kib * 1024;
    }
    let enc = Encoder::new(ConvergenceDomain::global(), params).map_err(io::Error::other)?;
    let mut chunks = Vec::new();
    let mut obj = None;
    let memo_enc = median_secs(|| {
        chunks.clear();
        obj = enc
            .encode_reader(&data[..], Some(len as u64), &mut |_| {}, &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .ok();
    });
    let obj = obj.ok_or_else(|| io::Error::other("memo encode failed"))?;
    let store = MemoryShards::new();
    chunks.iter().for_each(|c| store.insert_chunk(c));
    let dec = Decoder::default();
    let memo_dec = median_secs(|| {
        dec.decode_to_writer(&store, &obj, None, &mut |_| {}, &mut io::sink())
            .map(|_| ())
            .unwrap_or(());
    });
    let mut sink = HashWriter(blake3::Hasher::new(), 0);
    dec.decode_to_writer(&store, &obj, None, &mut |_| {}, &mut sink)
        .map_err(io::Error::other)?;
    if sink.0.finalize() != blake3::hash(&data) {
        return Err(io::Error::other("memo decoded different bytes"));
    }
    drop(chunks);
    drop(store);

    // self_encryption: its own chunking, compression and encryption.
    let bytes = self_encryption::bytes::Bytes::from(data.clone());
    let mut se = None;
    let se_enc = median_secs(|| {
        se = self_encryption::encrypt(bytes.clone()).ok();
    });
    let (map, se_chunks) = se.ok_or_else(|| io::Error::other("self_encryption failed"))?;
    let mut back = None;
    let se_dec = median_secs(|| {
        back = self_encryption::decrypt(&map, &se_chunks).ok();
    });
    if back.as_deref() != Some(&data[..]) {
        return Err(io::Error::other(
            "self_encryption decrypted different bytes",
        ));
    }

    let r = |s: f64| mib as f64 / s;
    println!("{:<34} {:>10} {:>10}", "", "encode", "decode");
    let label = format!("memo ({} KiB chunks, RS 4+2)", params.chunk_size / 1024);
    println!(
        "{label:<34} {:>7.0} MiB/s {:>5.0} MiB/s",
        r(memo_enc),
        r(memo_dec)
    );
    println!(
        "{:<34} {:>7.0} MiB/s {:>5.0} MiB/s",
        "self_encryption 0.36",
        r(se_enc),
        r(se_dec)
    );
    println!(
        "{:<34} {:>9.1}x {:>9.1}x   (targets: 6x, 4x)",
        "memo / self_encryption",
        se_enc / memo_enc,
        se_dec / memo_dec
    );

    // Peak memory in a fresh process, so this process's buffers do not count.
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .env("MEMO_BENCH_PEAK_CHILD", peak_mib.to_string())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find_map(|l| l.strip_prefix("PEAK ")) {
        Some(line) => {
            let f: Vec<&str> = line.split_whitespace().collect();
            let kib: f64 = f[0].parse().unwrap_or(0.0);
            println!(
                "streaming {peak_mib} MiB through files on disk: peak RSS {:.0} MiB (target < 256 MiB); encode {} MiB/s, decode {} MiB/s",
                kib / 1024.0,
                f[1],
                f[2]
            );
        }
        None => {
            return Err(io::Error::other(format!(
                "peak-memory child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    Ok(())
}

//! Put and get throughput through a devnet of real processes on loopback, beside the in-process
//! pipeline's throughput on the same data in the same run.
//!
//! `cargo bench -p memo-refnode --bench devnet` (sizes in MiB: `MEMO_BENCH_SIZES=64,1024`;
//! runs per size: `MEMO_BENCH_REPS=3`, the median is printed; keepers: `MEMO_BENCH_KEEPERS=3`
//! and `MEMO_BENCH_REPLICATION=group|sequencer`).
//!
//! With `MEMO_BENCH_LAYOUT=split` (Linux), the devnet's node processes run on the upper half of
//! the CPUs and this process (the pipeline and the client) on the lower half: a stand-in, on
//! one machine, for providers on machines of their own, where a client has only its own CPUs
//! for both coding and sending, and the pipeline figure is what those CPUs code. By default
//! (`shared`) every process may run on every CPU.
//!
//! A second table gives the CPU time each phase took per GiB, in this process (the pipeline,
//! or the client) and in the devnet's node processes together (lanes only; from
//! `/proc/PID/stat`, 10 ms ticks): what a put or get costs each side, which the throughput
//! ratio alone hides when the client and every node share the machine's cores.
//!
//! A third table (Linux) is an upper bound. Before the runs, the bench times, one thread each,
//! the work every shard byte needs on its way: the provider's blake3 check, the lane's AES-GCM
//! seal and open, a loopback TCP send and receive, and a provider's shard-file write and read.
//! Added to the run's own encode or decode CPU, that gives the most a put or get could reach
//! on this layout's CPUs if nothing else cost CPU: where that is below a target, no change to
//! the data path that keeps those protections can meet it on this machine. A fourth table
//! gives what the disk did during the lane puts and gets (from `/proc/diskstats`).

use memo_core::codec::{CodecParams, ConvergenceDomain, Decoder, Encoder, MemoryShards};
mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use common::random;
use std::time::Instant;

/// With `MEMO_BENCH_MARKS=1`, prints each phase's wall-clock start and end (Unix seconds) to
/// stderr, to cut a system-wide profile (`perf record -a -k CLOCK_REALTIME`) into phases.
fn mark(phase: &str) {
    if std::env::var_os("MEMO_BENCH_MARKS").is_some() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("mark {phase} {:.3}", t.as_secs_f64());
    }
}

/// CPU time (user and system, all threads) that process `pid` (`"self"` for this one) has
/// used, in seconds, from `/proc/PID/stat`; `None` where that cannot be read (not Linux, or
/// the process is gone). Ticks are taken as 1/100 s (Linux's `USER_HZ` on every common
/// architecture).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Disk totals since boot over every block device in `/sys/block` but loop and RAM devices:
/// `[reads, sectors read, ms reading, writes, sectors written, ms writing]` (from
/// `/proc/diskstats`); `None` where that cannot be read.
fn disk() -> Option<[u64; 6]> {
    let devices: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let mut total = [0u64; 6];
    for line in stats.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 11 || !devices.iter().any(|d| d == f[2]) {
            continue;
        }
        // Fields 4..=7 are reads, merged, sectors, ms; 8..=11 the same for writes.
        for (slot, field) in [(0, 3), (1, 5), (2, 6), (3, 7), (4, 9), (5, 10)] {
            total[slot] += f[field].parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// What the disk did between `a` and `b` over `secs` seconds, one direction (`write` or
/// not): `[MiB moved, ms per request, requests in flight on average]`.
fn disk_phase(
    a: Option<[u64; 6]>,
    b: Option<[u64; 6]>,
    secs: f64,
    write: bool,
) -> Option<[f64; 3]> {
    let (a, b) = (a?, b?);
    let o = if write { 3 } else { 0 };
    let d = |i: usize| b[o + i].saturating_sub(a[o + i]) as f64;
    let (ops, mib, ms) = (d(0), d(1) * 512.0 / (1u64 << 20) as f64, d(2));
    Some([
        mib,
        if ops > 0.0 { ms / ops } else { 0.0 },
        ms / 1000.0 / secs,
    ])
}

/// Single-thread CPU seconds per GiB of shard bytes for the work a lane put or get cannot
/// skip, measured on this machine: what bounds the devnet when every byte must be hashed by its
/// provider, sealed and opened on the lane, and carried by loopback TCP.
#[cfg(target_os = "linux")]
mod floor {
    use memo_core::ShardId;
    use memo_core::ownership::{ShardStore, Verified};
    use memo_sdk::store::FsShardStore;
    use nix::time::{ClockId, clock_gettime};
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// CPU seconds per GiB of shard bytes, one thread each.
    #[derive(Clone, Copy, Debug)]
    pub struct Floor {
        /// A provider's blake3 check of a shard against its id.
        pub hash: f64,
        /// AES-256-GCM seal on the lane (ring, as the lane uses).
        pub seal: f64,
        /// AES-256-GCM open on the lane.
        pub open: f64,
        /// Writing to a loopback TCP socket (the kernel's receive path on loopback included).
        pub send: f64,
        /// Reading from it.
        pub recv: f64,
        /// A provider's write of a shard file (`FsShardStore`, direct, no fsync: the devnet's
        /// setting), its check and one copy of the bytes (its staging in an aligned buffer)
        /// not included.
        pub write: f64,
        /// A provider's read of a shard file, its check and one copy not included.
        pub read: f64,
        /// One copy of the bytes in memory (taken off `write` and `read`, and not counted
        /// anywhere: a data path could do without it).
        pub copy: f64,
    }

    /// This thread's CPU time in seconds.
    fn cpu() -> f64 {
        clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
            .unwrap_or(0.0)
    }

    /// Measures each part over `gib` GiB of `shard`-byte pieces (at least one).
    pub fn measure(shard: usize, gib: f64) -> std::io::Result<Floor> {
        let n = ((gib * (1u64 << 30) as f64) as usize / shard).max(1);
        let per_gib = |secs: f64| secs / (n * shard) as f64 * (1u64 << 30) as f64;
        let mut buf = super::random(shard, 0xf100);
        buf.reserve(16);

        let t = cpu();
        for _ in 0..n {
            std::hint::black_box(blake3::hash(std::hint::black_box(&buf)));
        }
        let hash = per_gib(cpu() - t);

        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| std::io::Error::other("key"))?,
        );
        let nonce = |i: usize| {
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&(i as u64).to_be_bytes());
            Nonce::assume_unique_for_key(n)
        };
        let (mut seal, mut open) = (0.0, 0.0);
        for i in 0..n {
            let t = cpu();
            key.seal_in_place_append_tag(nonce(i), Aad::empty(), &mut buf)
                .map_err(|_| std::io::Error::other("seal"))?;
            let t1 = cpu();
            let len = key
                .open_in_place(nonce(i), Aad::empty(), &mut buf)
                .map_err(|_| std::io::Error::other("open"))?
                .len();
            open += cpu() - t1;
            seal += t1 - t;
            buf.truncate(len);
        }

        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let total = n * shard;
        let reader = std::thread::spawn(move || -> std::io::Result<f64> {
            let (mut s, _) = listener.accept()?;
            let mut into = vec![0u8; shard];
            let t = cpu();
            let mut got = 0;
            while got < total {
                let k = s.read(&mut into)?;
                if k == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got += k;
            }
            Ok(cpu() - t)
        });
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let t = cpu();
        for _ in 0..n {
            s.write_all(&buf)?;
        }
        let send = per_gib(cpu() - t);
        let recv = per_gib(
            reader
                .join()
                .map_err(|_| std::io::Error::other("reader panicked"))??,
        );
        let mut to = vec![0u8; buf.len()];
        let t = cpu();
        for _ in 0..n {
            to.copy_from_slice(std::hint::black_box(&buf));
            std::hint::black_box(&mut to);
        }
        let copy = per_gib(cpu() - t);
        drop(to);

        // Distinct shards (the first 8 bytes count), written to and read from a store in a
        // temporary directory; the check inside each is taken off with `hash`, and one copy
        // (staging through the store's aligned buffer) with `copy`.
        let dir = tempfile::tempdir()?;
        let store = FsShardStore::open(dir.path())
            .map_err(std::io::Error::other)?
            .with_sync(false);
        let mut ids = Vec::with_capacity(n);
        let mut write = 0.0;
        for i in 0..n {
            buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let id = ShardId::of(&buf);
            let checked = Verified::check(&id, &buf).map_err(std::io::Error::other)?;
            let t = cpu();
            store.put_verified(checked).map_err(std::io::Error::other)?;
            write += cpu() - t;
            ids.push(id);
        }
        let t = cpu();
        for id in &ids {
            let got = store.get(id).map_err(std::io::Error::other)?;
            if got.map(|b| b.len()) != Some(shard) {
                return Err(std::io::Error::other("a shard written was not read back"));
            }
        }
        let read = (per_gib(cpu() - t) - hash - copy).max(0.0);
        Ok(Floor {
            write: (per_gib(write) - copy).max(0.0),
            read,
            copy,
            hash,
            seal: per_gib(seal),
            open: per_gib(open),
            send,
            recv,
        })
    }
}

/// Restricts the calling thread (and the threads and processes it starts from then on) to
/// CPUs `cpus`.
#[cfg(target_os = "linux")]
fn pin(cpus: std::ops::Range<usize>) -> Result<(), Box<dyn std::error::Error>> {
    let mut set = nix::sched::CpuSet::new();
    for c in cpus {
        set.set(c)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// Where the bench's processes run, and on how many CPUs.
enum Layout {
    /// Every process on every one of `cpus` CPUs.
    Shared { cpus: usize },
    /// The bench process (pipeline and client) on CPUs `0..client`, the devnet's nodes on
    /// CPUs `client..client + nodes` (Linux only).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Split { client: usize, nodes: usize },
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Shared { cpus } => write!(
                f,
                "layout: shared (the devnet's nodes and this process on all {cpus} CPUs)"
            ),
            Layout::Split { client, nodes } => write!(
                f,
                "layout: split (pipeline and client on CPUs 0..{client}, the devnet's nodes on CPUs {client}..{})",
                client + nodes
            ),
        }
    }
}

/// Starts the devnet in layout `kind` (`shared` or `split`). `split` starts the devnet pinned
/// to the upper half of the CPUs (its processes inherit that), then pins this thread to the
/// lower half before any other thread of the bench exists.
fn start(kind: &str) -> Result<(harness::Devnet, Layout), Box<dyn std::error::Error>> {
    // Counted before any pinning: all the CPUs.
    let n = std::thread::available_parallelism()?.get();
    // `MEMO_BENCH_KEEPERS` keepers (default 1), replicating as `MEMO_BENCH_REPLICATION` says
    // (`group`, the default, or `sequencer`).
    let keepers: usize = common::env("MEMO_BENCH_KEEPERS").unwrap_or(1);
    let replication: String =
        common::env("MEMO_BENCH_REPLICATION").unwrap_or_else(|| "group".into());
    let devnet =
        || harness::Devnet::start_with(10, keepers, &["--replication", replication.as_str()]);
    println!("devnet: {keepers} keeper(s), replication {replication}");
    match kind {
        "shared" => Ok((devnet(), Layout::Shared { cpus: n })),
        #[cfg(target_os = "linux")]
        "split" => {
            if n < 2 {
                return Err("the split layout needs at least 2 CPUs".into());
            }
            let half = n / 2;
            pin(half..n)?;
            let devnet = devnet();
            pin(0..half)?;
            Ok((
                devnet,
                Layout::Split {
                    client: half,
                    nodes: n - half,
                },
            ))
        }
        other => Err(format!("MEMO_BENCH_LAYOUT={other}: use shared or split (Linux)").into()),
    }
}

/// Prints the required work's cost ([`floor::Floor`]) and the most it allows the devnet, per
/// size, if nothing else cost CPU: every shard byte hashed by its provider, sealed and opened on
/// the lane and carried by loopback TCP, beside this run's own encode and decode CPU. In the
/// shared layout all of it comes out of every CPU; in the split layout the client's part
/// (coding, seal or open, its end of TCP) out of the client's CPUs and the providers' part out
/// of the nodes', and the busier side bounds. `rows`: the CPU table's rows (MiB, CPU seconds
/// per GiB, encode and decode MiB/s).
#[cfg(target_os = "linux")]
fn print_bound(
    f: &floor::Floor,
    params: &CodecParams,
    layout: &Layout,
    rows: &[(usize, [f64; 6], f64, f64)],
) {
    // Shard bytes per data byte: a put sends all k + m shards, a get fetches k.
    let spread = (params.data_shards + params.parity_shards) as f64 / params.data_shards as f64;
    println!();
    println!(
        "Required work, one thread each, CPU seconds per GiB of shard bytes (measured before the runs): provider blake3 check {:.2}, lane seal {:.2}, lane open {:.2}, loopback TCP send {:.2}, receive {:.2}, shard file write {:.2}, read {:.2} (each less one in-memory copy, {:.2}, not counted)",
        f.hash, f.seal, f.open, f.send, f.recv, f.write, f.read, f.copy
    );
    // GiB/s that `client` and `nodes` CPU-s per GiB allow on this layout's CPUs.
    let most = |client: f64, nodes: f64| -> f64 {
        match *layout {
            Layout::Shared { cpus } => cpus as f64 / (client + nodes),
            Layout::Split {
                client: c,
                nodes: n,
            } => (c as f64 / client).min(n as f64 / nodes),
        }
    };
    println!("The most that work allows in this layout, with nothing else costing CPU:");
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12}",
        "MiB", "put ≤ MiB/s", "of encode", "get ≤ MiB/s", "of decode"
    );
    for (mib, [enc_cpu, _, _, dec_cpu, _, _], enc, dec) in rows {
        let put = 1024.0
            * most(
                enc_cpu + spread * (f.seal + f.send),
                spread * (f.open + f.recv + f.hash + f.write),
            );
        let get = 1024.0 * most(dec_cpu + f.open + f.recv, f.read + f.hash + f.seal + f.send);
        println!(
            "{mib:>6} {put:>12.0} {:>11.0}% {get:>12.0} {:>11.0}%",
            100.0 * put / enc,
            100.0 * get / dec
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = common::env::<String>("MEMO_BENCH_SIZES")
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 1024]);
    let kind = common::env::<String>("MEMO_BENCH_LAYOUT").unwrap_or_else(|| "shared".into());
    let (devnet, layout) = start(&kind)?;
    // The required work's cost, measured once on the (idle) devnet's machine, on the bench's
    // CPUs: one piece is one shard of the default chunk (1 MiB: 4 MiB with k = 4).
    #[cfg(target_os = "linux")]
    let (params, floor) = {
        let params = CodecParams::default();
        let shard = (params.chunk_size / params.data_shards as u32) as usize;
        (params, floor::measure(shard, 0.5)?)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reps: usize = common::env("MEMO_BENCH_REPS").unwrap_or(3).max(1);
    let result = rt.block_on(async {
        let tune = |cfg: &mut memo_sdk::ClientConfig| {
            // The bench measures the codec defaults, whatever the devnet's user config says.
            cfg.params = CodecParams::default();
            if let Some(n) = common::env("MEMO_BENCH_UPLOADS") {
                cfg.uploads = n;
            }
            if let Some(n) = common::env("MEMO_BENCH_WINDOW") {
                cfg.parallelism.window = n;
            }
        };
        // The SDK's default (shard bytes on the providers' lanes) and, for comparison, every
        // byte over libp2p (Noise + yamux).
        let (client, mut file) = common::client(&devnet, tune).await?;
        file.lanes = Some(false);
        let noise = file.connect(tune).await?;
        println!(
            "devnet: every node its own process on loopback (10 providers), RS 4+2, {} KiB chunks, shard files without per-shard fsync (devnet default); median of {reps} runs, fresh random data each",
            CodecParams::default().chunk_size / 1024
        );
        println!("{layout}");
        println!("put/get: shard bytes on the lanes (AES-256-GCM over TCP, the default); noise: everything over libp2p TCP+Noise+yamux");
        println!("{:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}", "MiB", "encode", "put", "noise put", "decode", "get", "noise get", "put %", "get %");
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        // Decoded bytes go to one buffer that is touched once, here, and reused by the pipeline
        // and the devnet gets alike: on this VM a fresh page costs a host page fault (about
        // 2 ms per MiB), which would otherwise weigh on whichever side got fresh memory.
        let mut out: Vec<u8> = Vec::new();
        out.resize(sizes.iter().max().copied().unwrap_or(0) << 20, 1);
        let nodes: Vec<String> = devnet.pids().iter().map(u64::to_string).collect();
        let me = ["self".to_string()];
        let cpu = |who: &[String]| -> f64 { who.iter().filter_map(|p| cpu_seconds(p)).sum() };
        // Per size: MiB, CPU seconds per GiB, and the encode and decode MiB/s.
        let mut cpu_rows = Vec::new();
        let mut disk_rows = Vec::new();
        for mib in &sizes {
            let mut m: [Vec<f64>; 6] = Default::default();
            // CPU seconds per GiB: [encode, put client, put nodes, decode, get client, get nodes].
            let mut secs: [Vec<f64>; 6] = Default::default();
            // The disk during lane puts (writes) and gets (reads): MiB, ms per request, in flight.
            let mut disk_put: [Vec<f64>; 3] = Default::default();
            let mut disk_get: [Vec<f64>; 3] = Default::default();
            let gib = *mib as f64 / 1024.0;
            for rep in 0..reps {
                let seed = 0x5eed + (*mib as u64) * 1000 + rep as u64;
                let data = random(mib << 20, seed);
                // In-process pipeline on the same data. Encode as a put streams: each chunk's
                // shards are handed on and dropped (keeping a GiB of shards would measure this
                // VM's fresh pages, not the codec). Then encode again, untimed, into memory, and
                // decode that back.
                let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::default())?;
                mark("encode");
                let c0 = cpu(&me);
                let t = Instant::now();
                enc.encode_reader(&data[..], Some(data.len() as u64), &mut |_| {}, &mut |c| {
                    drop(c);
                    Ok(())
                })?;
                m[0].push(*mib as f64 / t.elapsed().as_secs_f64());
                secs[0].push((cpu(&me) - c0) / gib);
                let shards = MemoryShards::new();
                let obj = enc.encode_reader(&data[..], Some(data.len() as u64), &mut |_| {}, &mut |c| {
                    shards.insert_chunk(&c);
                    Ok(())
                })?;
                mark("decode");
                let c0 = cpu(&me);
                let t = Instant::now();
                out.clear();
                Decoder::default().decode_to_writer(&shards, &obj, None, &mut |_| {}, &mut out)?;
                m[3].push(*mib as f64 / t.elapsed().as_secs_f64());
                secs[3].push((cpu(&me) - c0) / gib);
                assert!(out == data);
                drop(shards);
                // Through the devnet, on lanes and over Noise, each on data it has not seen.
                // m: [encode, put, noise put, decode, get, noise get]; way 0 is lanes, 1 noise.
                for (c, way) in [(&client, 0), (&noise, 1)] {
                    let fresh;
                    let data: &[u8] = if way == 0 {
                        &data
                    } else {
                        fresh = random(mib << 20, !seed);
                        &fresh
                    };
                    mark("put");
                    let (c0, n0, d0) = (cpu(&me), cpu(&nodes), disk());
                    let t = Instant::now();
                    let put = c.put(&format!("bench-{mib}-{rep}-{way}"), data, Some(data.len() as u64), &mut |_| {}).await?;
                    let put_secs = t.elapsed().as_secs_f64();
                    m[1 + way].push(*mib as f64 / put_secs);
                    let (c1, n1, d1) = (cpu(&me), cpu(&nodes), disk());
                    mark("get");
                    let t = Instant::now();
                    out.clear();
                    c.get(&put.id.to_hex(), None, &mut out, &mut |_| {}).await?;
                    let get_secs = t.elapsed().as_secs_f64();
                    m[4 + way].push(*mib as f64 / get_secs);
                    let (c2, n2, d2) = (cpu(&me), cpu(&nodes), disk());
                    if way == 0 {
                        for (v, phase) in [
                            (&mut disk_put, disk_phase(d0, d1, put_secs, true)),
                            (&mut disk_get, disk_phase(d1, d2, get_secs, false)),
                        ] {
                            for (slot, x) in v.iter_mut().zip(phase.unwrap_or_default()) {
                                slot.push(x);
                            }
                        }
                        secs[1].push((c1 - c0) / gib);
                        secs[2].push((n1 - n0) / gib);
                        secs[4].push((c2 - c1) / gib);
                        secs[5].push((n2 - n1) / gib);
                    }
                    mark("end");
                    if out != data {
                        return Err("devnet returned different bytes".into());
                    }
                    c.delete(&put.id.to_hex()).await?;
                }
                if common::env::<u8>("MEMO_BENCH_VERBOSE").is_some() {
                    let last = m.each_ref().map(|v| v.last().copied().unwrap_or(0.0) as u64);
                    eprintln!("{mib} MiB, run {rep}: {last:?}");
                }
            }
            let [enc, put, nput, dec, get, nget] = m.map(|mut v| median(&mut v));
            cpu_rows.push((*mib, secs.map(|mut v| median(&mut v)), enc, dec));
            disk_rows.push((*mib, disk_put.map(|mut v| median(&mut v)), disk_get.map(|mut v| median(&mut v))));
            println!(
                "{mib:>6} {enc:>10.0} {put:>10.0} {nput:>10.0} {dec:>10.0} {get:>10.0} {nget:>10.0} {:>6.0}% {:>6.0}%",
                100.0 * put / enc,
                100.0 * get / dec
            );
        }
        println!("(MiB/s; put % = put / encode, get % = get / decode)");
        println!();
        println!("CPU seconds per GiB (lanes): this process (pipeline or client) and the devnet's nodes together");
        println!("{:>6} {:>8} {:>11} {:>10} {:>8} {:>11} {:>10}", "MiB", "encode", "put client", "put nodes", "decode", "get client", "get nodes");
        for (mib, [enc, pc, pn, dec, gc, gn], _, _) in &cpu_rows {
            println!("{mib:>6} {enc:>8.2} {pc:>11.2} {pn:>10.2} {dec:>8.2} {gc:>11.2} {gn:>10.2}");
        }
        #[cfg(target_os = "linux")]
        print_bound(&floor, &params, &layout, &cpu_rows);
        if disk().is_some() {
            println!();
            println!("Disk during lane puts and gets (every device in /sys/block but loop and ram; from /proc/diskstats)");
            println!("{:>6} {:>13} {:>15} {:>16} {:>12} {:>14} {:>15}", "MiB", "put: written", "ms per write", "writes in flight", "get: read", "ms per read", "reads in flight");
            for (mib, [pw, pms, pq], [gr, gms, gq]) in disk_rows {
                println!("{mib:>6} {pw:>9.0} MiB {pms:>15.2} {pq:>16.1} {gr:>8.0} MiB {gms:>14.2} {gq:>15.1}");
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    drop(devnet);
    result
}

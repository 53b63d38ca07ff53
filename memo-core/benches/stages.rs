//! Single-core throughput of each pipeline stage on 1 MiB chunks.
//! `cargo bench -p memo-core --bench stages`
use memo_core::codec::{ConvergenceDomain, encode_chunk};
use std::time::Instant;

fn rate(name: &str, bytes: usize, iters: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>8.0} MiB/s",
        (bytes * iters) as f64 / s / 1048576.0
    );
}

fn main() {
    use aes_siv::KeyInit;
    let n = 1 << 20;
    let mut data = vec![0u8; n];
    blake3::Hasher::new().finalize_xof().fill(&mut data);
    let key = [7u8; 64];
    let mut data_big = vec![0u8; 4 << 20];
    blake3::Hasher::new().finalize_xof().fill(&mut data_big);
    rate("blake3 hash", n, 200, || {
        std::hint::black_box(blake3::hash(&data));
    });
    rate("aes-256-siv encrypt", n, 50, || {
        let mut c = aes_siv::siv::Aes256Siv::new((&key).into());
        std::hint::black_box(c.encrypt([b"h"], &data).unwrap());
    });
    rate("reed-solomon 4+2 encode", n, 100, || {
        let mut e = reed_solomon_simd::ReedSolomonEncoder::new(4, 2, n / 4).unwrap();
        for p in data.chunks(n / 4) {
            e.add_original_shard(p).unwrap();
        }
        std::hint::black_box(e.encode().unwrap().recovery(0).map(|r| r[0]));
    });
    let d = ConvergenceDomain::global();
    rate("encode_chunk (all stages)", n, 50, || {
        std::hint::black_box(encode_chunk(&d, &data, 4, 2).unwrap());
    });
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    rate(
        &format!("encode_chunk x{threads} threads"),
        n * threads,
        50,
        || {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| std::hint::black_box(encode_chunk(&d, &data, 4, 2).unwrap()));
                }
            });
        },
    );
    for size in [256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20] {
        let part = &data_big[..size];
        rate(
            &format!("encode_chunk {} KiB x{threads}", size >> 10),
            size * threads,
            (64 << 20) / size,
            || {
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| std::hint::black_box(encode_chunk(&d, part, 4, 2).unwrap()));
                    }
                });
            },
        );
    }
    rate(
        &format!("aes-siv x{threads} threads"),
        n * threads,
        50,
        || {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        let mut c = aes_siv::siv::Aes256Siv::new((&key).into());
                        std::hint::black_box(c.encrypt([b"h"], &data).unwrap());
                    });
                }
            });
        },
    );
}

//! Why shard lanes use AES-256-GCM: the lane's cipher against Noise's ChaCha20-Poly1305 (both
//! from ring, the implementation libp2p-noise uses too), sealing 1 MiB frames in place, with
//! blake3 (the shard ids) for scale.
//!
//! `cargo bench -p memo-sdk --bench lane_cipher` (`MEMO_BENCH_MIB=2048` MiB per cipher).

use ring::aead::{AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use std::time::Instant;

fn seal(alg: &'static Algorithm, frames: u64) -> f64 {
    let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; alg.key_len()]).expect("key"));
    let mut frame = vec![1u8; 1 << 20];
    let t = Instant::now();
    for i in 0..frames {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&i.to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut frame)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
    frames as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let mib: u64 = std::env::var("MEMO_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    println!("{mib} MiB in 1 MiB frames, one core");
    println!("| | MiB/s |\n| --- | ---: |");
    println!(
        "| ChaCha20-Poly1305 (Noise) | {:.0} |",
        seal(&CHACHA20_POLY1305, mib)
    );
    println!("| AES-256-GCM (lane) | {:.0} |", seal(&AES_256_GCM, mib));
    let data = vec![1u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..mib {
        std::hint::black_box(blake3::hash(&data));
    }
    println!("| blake3 | {:.0} |", mib as f64 / t.elapsed().as_secs_f64());
}

//! Feeding arbitrary shards to a chunk decoder never panics and never yields wrong bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::codec::{ChunkDecoder, ConvergenceDomain, encode_chunk};
use std::sync::OnceLock;

static CHUNK: OnceLock<(memo_core::codec::EncodedChunk, Vec<u8>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (enc, plain) = CHUNK.get_or_init(|| {
        let plain: Vec<u8> = (0..3000u32).map(|i| (i * 31) as u8).collect();
        (
            encode_chunk(&ConvergenceDomain::global(), &plain, 3, 2).unwrap(),
            plain,
        )
    });
    let mut dec = ChunkDecoder::new(&enc.chunk);
    // Each record: one index byte, one "use the real shard" byte, then bytes to xor in.
    for rec in data.chunks(9) {
        let index = rec[0] as usize % 6;
        let mut bytes = enc
            .shards
            .get(index)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        if rec.len() > 1 && rec[1] & 1 == 1 {
            for (i, b) in rec[2..].iter().enumerate() {
                if let Some(x) = bytes.get_mut(i * 97) {
                    *x ^= b;
                }
            }
        }
        dec.add(index, bytes.into());
    }
    if let Ok(out) = dec.finish() {
        assert_eq!(&out, plain);
    }
});

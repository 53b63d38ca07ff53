//! Rebuilding shards from arbitrary offered bytes and parameters (what a keeper does with
//! shards fetched from untrusted providers) never panics and never returns a shard that does
//! not match its id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::codec::{Bytes, rebuild_shards};
use memo_core::{ChunkId, ShardId};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (k, n, slen) = (
        data[0] as usize % 8,
        data[1] as usize % 12,
        data[2] as usize * 2,
    );
    let body = &data[3..];
    let ids: Vec<ShardId> = (0..n).map(|i| ShardId::of(&[i as u8])).collect();
    let have: Vec<(usize, Bytes)> = body
        .chunks(slen.max(1))
        .enumerate()
        .map(|(i, c)| (i, Bytes::copy_from_slice(c)))
        .collect();
    let want: Vec<usize> = (0..n).collect();
    if let Ok(r) = rebuild_shards(ChunkId::of(body), k, &ids, slen, &have, &want) {
        for (i, b) in r.shards {
            assert_eq!(ShardId::of(&b), ids[i]);
        }
    }
});

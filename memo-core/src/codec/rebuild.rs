//! Rebuilding lost shards without the chunk's secret (for keepers repairing other users' data).
//!
//! A keeper knows a chunk's id, k, its shard ids and the shard length (stored bytes over
//! k + m), but not its secret nor its plaintext size, hence not the exact ciphertext length.
//! It does not need them: the k data shards are the ciphertext followed by zero padding, and
//! the ciphertext length `L` is the unique length in the narrow window that gives this shard
//! length (`(slen - 2)·k < L <= slen·k`) for which `blake3(data[..L]) == chunk id`. The bytes
//! past `L` are zeros, so the candidates start at the data's last non-zero byte; a cloned
//! incremental hasher checks each candidate with one extra byte, so finding `L` costs one
//! hash of the chunk. The chunk id then vouches for every rebuilt shard, and each rebuilt
//! shard is checked against its own id too. No format change was needed.

use super::CodecError;
use super::chunk::{shard_len, with_encoder};
use super::params::{MAX_CHUNK_SIZE, check_shards};
use super::siv;
use crate::id::{ChunkId, ShardId};
use bytes::{Bytes, BytesMut};

/// Shards rebuilt by [`rebuild_shards`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// The ciphertext length that was found.
    pub ciphertext_len: usize,
    /// `(index, bytes)` for each wanted index, in the order asked, each matching its id.
    pub shards: Vec<(usize, Bytes)>,
    /// Indices of offered shards that did not match their ids (their sources lie or rot).
    pub rejected: Vec<usize>,
}

/// Rebuilds shards `want` of chunk `chunk` (k data shards, shard ids `ids`, each `slen` bytes)
/// from `have`: offered `(index, bytes)` pairs from untrusted sources. Offered shards that do
/// not match their ids are skipped and listed in [`Rebuilt::rejected`]; k good ones suffice.
///
/// Errors: [`CodecError::InvalidParams`] / [`CodecError::InvalidChunkRef`] for inconsistent
/// parameters, [`CodecError::NotEnoughShards`] with fewer than k good shards, and
/// [`CodecError::ChunkMismatch`] if no ciphertext length matches the chunk id or a rebuilt
/// shard does not match its id (the registry's shard list does not describe this chunk).
pub fn rebuild_shards(
    chunk: ChunkId,
    k: usize,
    ids: &[ShardId],
    slen: usize,
    have: &[(usize, Bytes)],
    want: &[usize],
) -> Result<Rebuilt, CodecError> {
    let n = ids.len();
    let m = n.saturating_sub(k);
    check_shards(k, m)?;
    let max_slen = shard_len(siv::sealed_len(MAX_CHUNK_SIZE as usize), k);
    let bad = |reason: String| CodecError::InvalidChunkRef { chunk, reason };
    if slen == 0 || slen % 2 == 1 || slen > max_slen {
        return Err(bad(format!(
            "shard length {slen} is not even and within 2..={max_slen}"
        )));
    }
    if let Some(i) = want.iter().find(|&&i| i >= n) {
        return Err(bad(format!("no shard {i} of {n}")));
    }
    let mut slots: Vec<Option<&Bytes>> = vec![None; n];
    let mut good = 0;
    let mut rejected = Vec::new();
    for (i, b) in have {
        let Some(slot) = slots.get_mut(*i) else {
            rejected.push(*i);
            continue;
        };
        if slot.is_some() || good >= k {
            continue;
        }
        if b.len() != slen || ShardId::of(b) != ids[*i] {
            rejected.push(*i);
            continue;
        }
        *slot = Some(b);
        good += 1;
    }
    if good < k {
        return Err(CodecError::NotEnoughShards {
            chunk,
            needed: k,
            good,
            rejected: rejected.len(),
            missing: n - good - rejected.len().min(n - good),
        });
    }
    // The k data shards: the ciphertext and its zero padding.
    let mut data = BytesMut::with_capacity(slen * n);
    super::chunk::assemble_originals(&slots, k, m, slen, |piece| data.extend_from_slice(piece))?;
    let ciphertext_len = find_len(&data, chunk, k, slen).ok_or(CodecError::ChunkMismatch(chunk))?;
    if want.iter().any(|&i| i >= k) {
        with_encoder(k, m, slen, |enc| {
            for piece in data[..slen * k].chunks(slen) {
                enc.add_original_shard(piece)?;
            }
            let result = enc.encode()?;
            let parity: Vec<u8> = result.recovery_iter().flatten().copied().collect();
            data.extend_from_slice(&parity);
            Ok(())
        })?;
    }
    let all = data.freeze();
    let mut shards = Vec::with_capacity(want.len());
    for &i in want {
        let b = all.slice(i * slen..(i + 1) * slen);
        if ShardId::of(&b) != ids[i] {
            return Err(CodecError::ChunkMismatch(chunk));
        }
        shards.push((i, b));
    }
    Ok(Rebuilt {
        ciphertext_len,
        shards,
        rejected,
    })
}

/// The ciphertext length: the unique `L` in the window for `slen` with `blake3(data[..L])`
/// equal to the chunk id (bytes past `L` must be zero padding).
fn find_len(data: &[u8], chunk: ChunkId, k: usize, slen: usize) -> Option<usize> {
    let full = slen * k;
    let lowest = (slen.saturating_sub(2) * k + 1).max(1);
    let nonzero = data[..full]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p + 1);
    let start = lowest.max(nonzero);
    if start > full {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&data[..start]);
    for len in start..=full {
        if len > start {
            hasher.update(&[0]);
        }
        if shard_len(len, k) == slen && hasher.finalize().as_bytes() == chunk.as_bytes() {
            return Some(len);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{ConvergenceDomain, EncodedChunk, encode_chunk};
    use proptest::prelude::*;

    fn chunk(len: usize, k: usize, m: usize, seed: u8) -> EncodedChunk {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect();
        encode_chunk(&ConvergenceDomain::global(), &data, k, m).unwrap()
    }

    fn offer(e: &EncodedChunk, idx: &[usize]) -> Vec<(usize, Bytes)> {
        idx.iter().map(|&i| (i, e.shards[i].clone())).collect()
    }

    #[test]
    fn rebuilds_data_and_parity_shards_without_the_secret() {
        let e = chunk(10_001, 4, 3, 7);
        let c = &e.chunk;
        let r = rebuild_shards(
            c.id,
            4,
            &c.shards,
            c.shard_len(),
            &offer(&e, &[1, 4, 5, 6]),
            &[0, 2, 3],
        )
        .unwrap();
        assert_eq!(r.ciphertext_len, c.ciphertext_len());
        assert_eq!(
            r.shards,
            vec![
                (0, e.shards[0].clone()),
                (2, e.shards[2].clone()),
                (3, e.shards[3].clone())
            ]
        );
        let r = rebuild_shards(
            c.id,
            4,
            &c.shards,
            c.shard_len(),
            &offer(&e, &[0, 1, 2, 3]),
            &[6, 4],
        )
        .unwrap();
        assert_eq!(
            r.shards,
            vec![(6, e.shards[6].clone()), (4, e.shards[4].clone())]
        );
    }

    #[test]
    fn altered_shards_are_rejected_and_others_used() {
        let e = chunk(5000, 2, 2, 3);
        let c = &e.chunk;
        let mut bad = e.shards[0].to_vec();
        bad[10] ^= 1;
        let mut have = vec![(0, Bytes::from(bad)), (9, e.shards[1].clone())];
        have.extend(offer(&e, &[1, 3]));
        let r = rebuild_shards(c.id, 2, &c.shards, c.shard_len(), &have, &[0, 2]).unwrap();
        assert_eq!(r.rejected, vec![0, 9]);
        assert_eq!(r.shards[0].1, e.shards[0]);
        assert_eq!(r.shards[1].1, e.shards[2]);
        // Only one good shard: not enough.
        let r = rebuild_shards(c.id, 2, &c.shards, c.shard_len(), &have[..2], &[2]);
        assert!(matches!(
            r,
            Err(CodecError::NotEnoughShards { good: 0, .. })
        ));
    }

    #[test]
    fn inconsistent_descriptions_are_refused() {
        let e = chunk(3000, 3, 2, 5);
        let c = &e.chunk;
        let have = offer(&e, &[0, 1, 2]);
        let slen = c.shard_len();
        assert!(rebuild_shards(c.id, 3, &c.shards, slen + 1, &have, &[4]).is_err());
        assert!(rebuild_shards(c.id, 3, &c.shards, 0, &have, &[4]).is_err());
        assert!(rebuild_shards(c.id, 3, &c.shards, slen, &have, &[5]).is_err());
        assert!(rebuild_shards(c.id, 1, &c.shards, slen, &have, &[4]).is_err());
        // Wrong chunk id: no length matches.
        assert!(matches!(
            rebuild_shards(ChunkId([1; 32]), 3, &c.shards, slen, &have, &[4]),
            Err(CodecError::ChunkMismatch(_))
        ));
        // A shard list that does not belong to the chunk's data: the rebuilt shard is refused.
        let mut ids = c.shards.clone();
        ids[4] = ShardId([0; 32]);
        assert!(matches!(
            rebuild_shards(c.id, 3, &ids, slen, &have, &[4]),
            Err(CodecError::ChunkMismatch(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_k_shards_rebuild_any_other(
            len in 1usize..6000,
            k in 2usize..6,
            m in 1usize..4,
            seed in any::<u8>(),
            pick in any::<u64>(),
        ) {
            let e = chunk(len, k, m, seed);
            let c = &e.chunk;
            let n = k + m;
            // Choose k sources by rotating from a random start; rebuild the rest.
            let start = (pick % n as u64) as usize;
            let src: Vec<usize> = (0..k).map(|j| (start + j) % n).collect();
            let want: Vec<usize> = (0..n).filter(|i| !src.contains(i)).collect();
            let r = rebuild_shards(c.id, k, &c.shards, c.shard_len(), &offer(&e, &src), &want)
                .unwrap();
            prop_assert_eq!(r.ciphertext_len, c.ciphertext_len());
            for (i, b) in r.shards {
                prop_assert_eq!(&b, &e.shards[i]);
            }
        }

        #[test]
        fn garbage_never_panics(
            k in 0usize..5,
            n in 0usize..8,
            slen in 0usize..64,
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            idx in proptest::collection::vec(0usize..10, 0..8),
        ) {
            let ids: Vec<ShardId> = (0..n).map(|i| ShardId([i as u8; 32])).collect();
            let have: Vec<(usize, Bytes)> =
                idx.iter().map(|&i| (i, Bytes::from(bytes.clone()))).collect();
            let _ = rebuild_shards(ChunkId([3; 32]), k, &ids, slen, &have, &idx);
        }
    }
}

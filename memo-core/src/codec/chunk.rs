//! One chunk: encrypt, address, erasure-code; and back from any k verified shards.
//!
//! Layout: `ciphertext = AES-256-SIV segments ‖ their tags` (see [`super::siv`]),
//! `chunk id = blake3(ciphertext)`.
//! The ciphertext is zero-padded to `k × shard_len` (`shard_len` = ⌈len/k⌉ rounded up to even,
//! as reed-solomon-simd needs) and cut into k data shards; m parity shards follow.
//! `shard id = blake3(shard bytes)`.

use super::CodecError;
use super::convergence::ConvergenceDomain;
use super::params::{MAX_CHUNK_SIZE, check_shards};
use super::siv;
use crate::id::{ChunkId, ShardId};
use bytes::{Bytes, BytesMut};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

thread_local! {
    // Coders keep large work buffers: one per thread, reused across chunks, so coding a chunk
    // does not allocate and fault in fresh memory each time.
    static RS_ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    static RS_DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's encoder, reset for `k`, `m` and `slen`.
pub(super) fn with_encoder<T>(
    k: usize,
    m: usize,
    slen: usize,
    f: impl FnOnce(&mut ReedSolomonEncoder) -> Result<T, reed_solomon_simd::Error>,
) -> Result<T, CodecError> {
    RS_ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let enc = match slot.as_mut() {
            Some(e) => {
                e.reset(k, m, slen).map_err(rs_params)?;
                e
            }
            None => slot.insert(ReedSolomonEncoder::new(k, m, slen).map_err(rs_params)?),
        };
        f(enc).map_err(rs_params)
    })
}

fn with_decoder<T>(
    k: usize,
    m: usize,
    slen: usize,
    f: impl FnOnce(&mut ReedSolomonDecoder) -> Result<T, reed_solomon_simd::Error>,
) -> Result<T, CodecError> {
    RS_DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dec = match slot.as_mut() {
            Some(d) => {
                d.reset(k, m, slen).map_err(rs_params)?;
                d
            }
            None => slot.insert(ReedSolomonDecoder::new(k, m, slen).map_err(rs_params)?),
        };
        f(dec).map_err(rs_params)
    })
}

/// Everything needed to find, verify, rebuild and decrypt one chunk.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// blake3 of the ciphertext.
    pub id: ChunkId,
    /// The chunk secret (the decryption key's seed).
    pub secret: [u8; 32],
    /// Plaintext length in bytes.
    pub size: u32,
    /// k: data shards.
    pub data_shards: u8,
    /// Shard ids, data shards first then parity (k + m).
    pub shards: Vec<ShardId>,
}

impl std::fmt::Debug for ChunkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChunkRef({:?}, {} bytes, {}+{})",
            self.id,
            self.size,
            self.k(),
            self.m()
        )
    }
}

impl ChunkRef {
    /// k: how many shards rebuild the chunk.
    pub fn k(&self) -> usize {
        self.data_shards as usize
    }
    /// m: how many parity shards there are.
    pub fn m(&self) -> usize {
        self.shards.len().saturating_sub(self.k())
    }
    /// Ciphertext length.
    pub fn ciphertext_len(&self) -> usize {
        siv::sealed_len(self.size as usize)
    }
    /// Bytes in each shard.
    pub fn shard_len(&self) -> usize {
        shard_len(self.ciphertext_len(), self.k())
    }
    /// Bytes stored for this chunk across all its shards.
    pub fn stored_bytes(&self) -> u64 {
        self.shard_len() as u64 * self.shards.len() as u64
    }

    /// Checks the reference is internally consistent and within `max_size`, before anything
    /// is allocated for it.
    pub fn validate(&self, max_size: u32) -> Result<(), CodecError> {
        let bad = |reason: String| CodecError::InvalidChunkRef {
            chunk: self.id,
            reason,
        };
        check_shards(self.k(), self.m()).map_err(|e| bad(e.to_string()))?;
        if self.size == 0 || self.size > max_size {
            return Err(bad(format!("size {} is outside 1..={max_size}", self.size)));
        }
        Ok(())
    }
}

pub(crate) fn shard_len(ciphertext_len: usize, k: usize) -> usize {
    let per = ciphertext_len.div_ceil(k);
    per + (per & 1)
}

/// A chunk ready to upload: its reference and its k + m shards, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedChunk {
    /// The chunk's reference (goes into the manifest).
    pub chunk: ChunkRef,
    /// Shard bytes; `shards[i]` hashes to `chunk.shards[i]`. All slices of one buffer.
    pub shards: Vec<Bytes>,
}

impl std::fmt::Debug for EncodedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncodedChunk({:?})", self.chunk)
    }
}

/// The buffer capacity [`encode_chunk_in_place`] needs for `size` plaintext bytes, so that it
/// never reallocates: room for the tag, the padding and the parity shards.
pub fn encode_capacity(size: usize, k: usize, m: usize) -> usize {
    shard_len(siv::sealed_len(size), k.max(1)) * (k + m)
}

/// Encodes one chunk whose plaintext is `buf`. Nothing is copied or allocated when `buf` has
/// [`encode_capacity`]: the ciphertext, its padding and the parity shards all live in `buf`, and
/// the shards are slices of it.
pub fn encode_chunk_in_place(
    domain: &ConvergenceDomain,
    mut buf: Vec<u8>,
    k: usize,
    m: usize,
) -> Result<EncodedChunk, CodecError> {
    check_shards(k, m)?;
    if buf.is_empty() {
        return Err(CodecError::EmptyObject);
    }
    let size = u32::try_from(buf.len()).map_err(|_| {
        CodecError::InvalidParams(format!("chunk of {} bytes is too large", buf.len()))
    })?;
    let secret = domain.chunk_secret(&buf);
    siv::seal(&secret, &mut buf);
    let id = ChunkId::of(&buf);
    let slen = shard_len(buf.len(), k);
    buf.resize(slen * k, 0);
    with_encoder(k, m, slen, |enc| {
        for piece in buf.chunks(slen) {
            enc.add_original_shard(piece)?;
        }
        let result = enc.encode()?;
        buf.reserve_exact(slen * m);
        for r in result.recovery_iter() {
            buf.extend_from_slice(r);
        }
        Ok(())
    })?;
    let all = Bytes::from(buf);
    let shards: Vec<Bytes> = (0..k + m)
        .map(|i| all.slice(i * slen..(i + 1) * slen))
        .collect();
    let ids = shards.iter().map(|s| ShardId::of(s)).collect();
    Ok(EncodedChunk {
        chunk: ChunkRef {
            id,
            secret,
            size,
            data_shards: k as u8,
            shards: ids,
        },
        shards,
    })
}

/// Encodes one chunk of plaintext.
pub fn encode_chunk(
    domain: &ConvergenceDomain,
    plaintext: &[u8],
    k: usize,
    m: usize,
) -> Result<EncodedChunk, CodecError> {
    let mut buf = Vec::with_capacity(encode_capacity(plaintext.len(), k, m));
    buf.extend_from_slice(plaintext);
    encode_chunk_in_place(domain, buf, k, m)
}

fn rs_params(e: reed_solomon_simd::Error) -> CodecError {
    CodecError::InvalidParams(format!("erasure coder: {e}"))
}

/// What happened to a shard offered to a [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOutcome {
    /// The shard matches its id and was kept.
    Accepted,
    /// The shard's bytes do not match its id (corrupt, or from another chunk): ignored.
    Rejected,
    /// A shard for this index was already kept, or k shards are already in hand: ignored.
    Unneeded,
    /// The index is not a shard of this chunk: ignored.
    OutOfRange,
}

/// Rebuilds a chunk from shards offered one at a time, in any order, from untrusted sources.
///
/// Each shard is checked against its id before it is kept, so corrupt or foreign shards are
/// skipped rather than believed; once [`ChunkDecoder::is_ready`], [`ChunkDecoder::finish`]
/// rebuilds, checks the chunk id and decrypts.
pub struct ChunkDecoder {
    chunk: ChunkRef,
    slots: Vec<Option<Bytes>>,
    good: usize,
    rejected: usize,
}

impl ChunkDecoder {
    /// A decoder for `chunk`, which must already be validated ([`ChunkRef::validate`]).
    pub fn new(chunk: &ChunkRef) -> Self {
        Self {
            chunk: chunk.clone(),
            slots: vec![None; chunk.shards.len()],
            good: 0,
            rejected: 0,
        }
    }

    /// The chunk being decoded.
    pub fn chunk(&self) -> &ChunkRef {
        &self.chunk
    }

    /// Offers shard `index`.
    pub fn add(&mut self, index: usize, bytes: Bytes) -> ShardOutcome {
        let Some(expected) = self.chunk.shards.get(index) else {
            return ShardOutcome::OutOfRange;
        };
        if self.slots[index].is_some() || self.is_ready() {
            return ShardOutcome::Unneeded;
        }
        if bytes.len() != self.chunk.shard_len() || ShardId::of(&bytes) != *expected {
            self.rejected += 1;
            return ShardOutcome::Rejected;
        }
        self.slots[index] = Some(bytes);
        self.good += 1;
        ShardOutcome::Accepted
    }

    /// Whether k good shards are in hand.
    pub fn is_ready(&self) -> bool {
        self.good >= self.chunk.k()
    }

    /// Shards accepted so far.
    pub fn good(&self) -> usize {
        self.good
    }

    /// Shards rejected so far.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// Indices that have no good shard yet.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| i)
    }

    /// The error to report when no more shards can be had.
    pub fn not_enough(&self) -> CodecError {
        CodecError::NotEnoughShards {
            chunk: self.chunk.id,
            needed: self.chunk.k(),
            good: self.good,
            rejected: self.rejected,
            missing: self.slots.len() - self.good,
        }
    }

    /// Rebuilds the ciphertext from the shards in hand (k of them), checking the chunk id.
    pub fn ciphertext(self) -> Result<Vec<u8>, CodecError> {
        if !self.is_ready() {
            return Err(self.not_enough());
        }
        let (k, m) = (self.chunk.k(), self.chunk.m());
        let slen = self.chunk.shard_len();
        let mut out = Vec::with_capacity(slen * k);
        assemble_originals(&self.slots, k, m, slen, |piece| {
            out.extend_from_slice(piece)
        })?;
        out.truncate(self.chunk.ciphertext_len());
        if ChunkId::of(&out) != self.chunk.id {
            return Err(CodecError::ChunkMismatch(self.chunk.id));
        }
        Ok(out)
    }

    /// Rebuilds, verifies and decrypts the chunk.
    pub fn finish(self) -> Result<Vec<u8>, CodecError> {
        let chunk = self.chunk.clone();
        let mut buf = self.ciphertext()?;
        if !siv::open(&chunk.secret, &mut buf, chunk.size as usize) {
            return Err(CodecError::Decrypt(chunk.id));
        }
        Ok(buf)
    }
}

/// Hands the k data shards to `push` in order, rebuilding any that are missing from the parity
/// shards in hand. `slots` must hold at least k verified shards.
pub(super) fn assemble_originals<S: AsRef<[u8]>>(
    slots: &[Option<S>],
    k: usize,
    m: usize,
    slen: usize,
    mut push: impl FnMut(&[u8]),
) -> Result<(), CodecError> {
    if slots[..k].iter().all(Option::is_some) {
        slots[..k].iter().flatten().for_each(|s| push(s.as_ref()));
        return Ok(());
    }
    with_decoder(k, m, slen, |dec| {
        for (i, s) in slots.iter().enumerate() {
            if let Some(s) = s {
                if i < k {
                    dec.add_original_shard(i, s.as_ref())?;
                } else {
                    dec.add_recovery_shard(i - k, s.as_ref())?;
                }
            }
        }
        let restored = dec.decode()?;
        for (i, s) in slots[..k].iter().enumerate() {
            match (s, restored.restored_original(i)) {
                (Some(s), _) => push(s.as_ref()),
                (None, Some(r)) => push(r),
                (None, None) => {
                    return Err(reed_solomon_simd::Error::TooFewOriginalShards {
                        original_count: k,
                        original_received_count: 0,
                    });
                }
            }
        }
        Ok(())
    })
}

/// Re-creates shards of a chunk from its verified ciphertext (for repair): returns the shards
/// at `indices`, each checked against its id.
pub fn reencode_shards(
    chunk: &ChunkRef,
    ciphertext: &[u8],
    indices: &[usize],
) -> Result<Vec<(usize, Bytes)>, CodecError> {
    let (k, m, slen) = (chunk.k(), chunk.m(), chunk.shard_len());
    if ChunkId::of(ciphertext) != chunk.id {
        return Err(CodecError::ChunkMismatch(chunk.id));
    }
    let mut all = BytesMut::with_capacity(slen * (k + m));
    all.extend_from_slice(ciphertext);
    all.resize(slen * k, 0);
    with_encoder(k, m, slen, |enc| {
        for piece in all.chunks(slen) {
            enc.add_original_shard(piece)?;
        }
        let result = enc.encode()?;
        for r in result.recovery_iter() {
            all.extend_from_slice(r);
        }
        Ok(())
    })?;
    let all = all.freeze();
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let expected = chunk
            .shards
            .get(i)
            .ok_or_else(|| CodecError::InvalidChunkRef {
                chunk: chunk.id,
                reason: format!("no shard {i}"),
            })?;
        let bytes = all.slice(i * slen..(i + 1) * slen);
        if ShardId::of(&bytes) != *expected {
            return Err(CodecError::ChunkMismatch(chunk.id));
        }
        out.push((i, bytes));
    }
    Ok(out)
}

/// The default size limit for data chunks when validating references.
pub const MAX_DATA_CHUNK: u32 = MAX_CHUNK_SIZE;

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(len: usize, k: usize, m: usize) -> EncodedChunk {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        encode_chunk(&ConvergenceDomain::global(), &data, k, m).unwrap()
    }

    #[test]
    fn any_k_shards_rebuild() {
        let e = chunk(10_000, 3, 2);
        let plain: Vec<u8> = (0..10_000).map(|i| (i * 7 + 3) as u8).collect();
        for skip in [[0, 1], [0, 4], [2, 3], [3, 4]] {
            let mut d = ChunkDecoder::new(&e.chunk);
            for (i, s) in e.shards.iter().enumerate() {
                if !skip.contains(&i) {
                    d.add(i, s.clone());
                }
            }
            assert_eq!(d.finish().unwrap(), plain);
        }
    }

    #[test]
    fn corrupt_and_foreign_shards_are_rejected() {
        let e = chunk(5000, 2, 2);
        let other = chunk(4999, 2, 2);
        let mut d = ChunkDecoder::new(&e.chunk);
        let mut bad = e.shards[0].to_vec();
        bad[3] ^= 0x40;
        assert_eq!(d.add(0, bad.into()), ShardOutcome::Rejected);
        assert_eq!(d.add(1, other.shards[1].clone()), ShardOutcome::Rejected);
        assert_eq!(d.add(9, e.shards[1].clone()), ShardOutcome::OutOfRange);
        assert_eq!(d.add(2, e.shards[2].clone()), ShardOutcome::Accepted);
        assert_eq!(d.add(2, e.shards[2].clone()), ShardOutcome::Unneeded);
        assert!(!d.is_ready());
        match d.not_enough() {
            CodecError::NotEnoughShards {
                needed: 2,
                good: 1,
                rejected: 2,
                missing: 3,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.finish(),
            Err(CodecError::NotEnoughShards { .. })
        ));
    }

    #[test]
    fn wrong_secret_is_a_decrypt_error() {
        let e = chunk(300, 2, 1);
        let mut r = e.chunk.clone();
        r.secret[0] ^= 1;
        let mut d = ChunkDecoder::new(&r);
        d.add(0, e.shards[0].clone());
        d.add(1, e.shards[1].clone());
        assert!(matches!(d.finish(), Err(CodecError::Decrypt(_))));
    }

    #[test]
    fn reencode_recreates_exact_shards() {
        let e = chunk(7777, 4, 3);
        let mut d = ChunkDecoder::new(&e.chunk);
        for i in 3..7 {
            d.add(i, e.shards[i].clone());
        }
        let ct = d.ciphertext().unwrap();
        let again = reencode_shards(&e.chunk, &ct, &[0, 5]).unwrap();
        assert_eq!(
            again,
            vec![(0, e.shards[0].clone()), (5, e.shards[5].clone())]
        );
    }

    #[test]
    fn validate_bounds() {
        let e = chunk(100, 2, 1);
        assert!(e.chunk.validate(MAX_DATA_CHUNK).is_ok());
        assert!(e.chunk.validate(50).is_err());
        let mut r = e.chunk.clone();
        r.data_shards = 3;
        assert!(r.validate(MAX_DATA_CHUNK).is_err());
        r.data_shards = 0;
        assert!(r.validate(MAX_DATA_CHUNK).is_err());
    }
}

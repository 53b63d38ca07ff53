//! One chunk: encrypt, address, erasure-code; and back from any k verified shards.
//!
//! Layout: `ciphertext = tag(16) || AES-256-SIV(plaintext)`, `chunk id = blake3(ciphertext)`.
//! The ciphertext is zero-padded to `k × shard_len` (`shard_len` = ⌈len/k⌉ rounded up to even,
//! as reed-solomon-simd needs) and cut into k data shards; m parity shards follow.
//! `shard id = blake3(shard bytes)`.

use super::convergence::{self, ConvergenceDomain, TAG_LEN};
use super::params::{MAX_CHUNK_SIZE, check_shards};
use super::CodecError;
use crate::id::{ChunkId, ShardId};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use serde::{Deserialize, Serialize};

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
        write!(f, "ChunkRef({:?}, {} bytes, {}+{})", self.id, self.size, self.k(), self.m())
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
        self.size as usize + TAG_LEN
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
        let bad = |reason: String| CodecError::InvalidChunkRef { chunk: self.id, reason };
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
    /// Shard bytes; `shards[i]` hashes to `chunk.shards[i]`.
    pub shards: Vec<Vec<u8>>,
}

impl std::fmt::Debug for EncodedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncodedChunk({:?})", self.chunk)
    }
}

/// Encodes one chunk whose plaintext is `buf[TAG_LEN..]` (the first `TAG_LEN` bytes are room for
/// the tag, so nothing is copied). Plaintext must be 1..=[`MAX_CHUNK_SIZE`] bytes, except for
/// manifests, which may be larger.
pub fn encode_chunk_in_place(
    domain: &ConvergenceDomain,
    mut buf: Vec<u8>,
    k: usize,
    m: usize,
) -> Result<EncodedChunk, CodecError> {
    check_shards(k, m)?;
    let size = buf.len().checked_sub(TAG_LEN).filter(|&s| s > 0).ok_or(CodecError::EmptyObject)?;
    let size = u32::try_from(size)
        .map_err(|_| CodecError::InvalidParams(format!("chunk of {size} bytes is too large")))?;
    let secret = domain.chunk_secret(&buf[TAG_LEN..]);
    if !convergence::seal_in_place(&secret, &mut buf) {
        return Err(CodecError::InvalidParams("cipher refused the chunk".into()));
    }
    let id = ChunkId::of(&buf);
    let slen = shard_len(buf.len(), k);
    buf.resize(slen * k, 0);
    let mut enc = ReedSolomonEncoder::new(k, m, slen).map_err(rs_params)?;
    for piece in buf.chunks(slen) {
        enc.add_original_shard(piece).map_err(rs_params)?;
    }
    let result = enc.encode().map_err(rs_params)?;
    let mut shards: Vec<Vec<u8>> = Vec::with_capacity(k + m);
    shards.extend(buf.chunks(slen).map(<[u8]>::to_vec));
    shards.extend(result.recovery_iter().map(<[u8]>::to_vec));
    let ids = shards.iter().map(|s| ShardId::of(s)).collect();
    Ok(EncodedChunk {
        chunk: ChunkRef { id, secret, size, data_shards: k as u8, shards: ids },
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
    let mut buf = Vec::with_capacity(TAG_LEN + plaintext.len());
    buf.resize(TAG_LEN, 0);
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
pub struct ChunkDecoder<'a> {
    chunk: &'a ChunkRef,
    slots: Vec<Option<Vec<u8>>>,
    good: usize,
    rejected: usize,
}

impl<'a> ChunkDecoder<'a> {
    /// A decoder for `chunk`, which must already be validated ([`ChunkRef::validate`]).
    pub fn new(chunk: &'a ChunkRef) -> Self {
        Self { chunk, slots: vec![None; chunk.shards.len()], good: 0, rejected: 0 }
    }

    /// Offers shard `index`.
    pub fn add(&mut self, index: usize, bytes: Vec<u8>) -> ShardOutcome {
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
        self.slots.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| i)
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
        let k = self.chunk.k();
        let slen = self.chunk.shard_len();
        let ct_len = self.chunk.ciphertext_len();
        let mut out = Vec::with_capacity(slen * k);
        if self.slots[..k].iter().all(Option::is_some) {
            for s in self.slots[..k].iter().flatten() {
                out.extend_from_slice(s);
            }
        } else {
            let mut dec = ReedSolomonDecoder::new(k, self.chunk.m(), slen).map_err(rs_params)?;
            for (i, s) in self.slots.iter().enumerate() {
                if let Some(s) = s {
                    if i < k {
                        dec.add_original_shard(i, s).map_err(rs_params)?;
                    } else {
                        dec.add_recovery_shard(i - k, s).map_err(rs_params)?;
                    }
                }
            }
            let restored = dec.decode().map_err(rs_params)?;
            for (i, s) in self.slots[..k].iter().enumerate() {
                match s {
                    Some(s) => out.extend_from_slice(s),
                    None => out.extend_from_slice(
                        restored.restored_original(i).ok_or_else(|| self.not_enough())?,
                    ),
                }
            }
        }
        out.truncate(ct_len);
        if ChunkId::of(&out) != self.chunk.id {
            return Err(CodecError::ChunkMismatch(self.chunk.id));
        }
        Ok(out)
    }

    /// Rebuilds, verifies and decrypts the chunk.
    pub fn finish(self) -> Result<Vec<u8>, CodecError> {
        let chunk = self.chunk;
        let mut ct = self.ciphertext()?;
        if !convergence::open_in_place(&chunk.secret, &mut ct) {
            return Err(CodecError::Decrypt(chunk.id));
        }
        ct.drain(..TAG_LEN);
        Ok(ct)
    }
}

/// Re-creates any missing shards of a chunk from its ciphertext (for repair): returns the
/// shards at `indices`, each verified against its id.
pub fn reencode_shards(
    chunk: &ChunkRef,
    ciphertext: &[u8],
    indices: &[usize],
) -> Result<Vec<(usize, Vec<u8>)>, CodecError> {
    let (k, m, slen) = (chunk.k(), chunk.m(), chunk.shard_len());
    if ChunkId::of(ciphertext) != chunk.id {
        return Err(CodecError::ChunkMismatch(chunk.id));
    }
    let mut padded = ciphertext.to_vec();
    padded.resize(slen * k, 0);
    let mut enc = ReedSolomonEncoder::new(k, m, slen).map_err(rs_params)?;
    for piece in padded.chunks(slen) {
        enc.add_original_shard(piece).map_err(rs_params)?;
    }
    let result = enc.encode().map_err(rs_params)?;
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let bytes = if i < k {
            padded[i * slen..(i + 1) * slen].to_vec()
        } else {
            result.recovery(i - k).ok_or_else(|| CodecError::InvalidChunkRef {
                chunk: chunk.id,
                reason: format!("no shard {i}"),
            })?.to_vec()
        };
        if Some(&ShardId::of(&bytes)) != chunk.shards.get(i) {
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
        let mut bad = e.shards[0].clone();
        bad[3] ^= 0x40;
        assert_eq!(d.add(0, bad), ShardOutcome::Rejected);
        assert_eq!(d.add(1, other.shards[1].clone()), ShardOutcome::Rejected);
        assert_eq!(d.add(9, e.shards[1].clone()), ShardOutcome::OutOfRange);
        assert_eq!(d.add(2, e.shards[2].clone()), ShardOutcome::Accepted);
        assert_eq!(d.add(2, e.shards[2].clone()), ShardOutcome::Unneeded);
        assert!(!d.is_ready());
        match d.not_enough() {
            CodecError::NotEnoughShards { needed: 2, good: 1, rejected: 2, missing: 3, .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(d.finish(), Err(CodecError::NotEnoughShards { .. })));
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
        assert_eq!(again, vec![(0, e.shards[0].clone()), (5, e.shards[5].clone())]);
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

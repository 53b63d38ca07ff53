//! Convergent encryption: a chunk's key comes from its plaintext and a convergence secret.
//!
//! Equal plaintexts in the same convergence domain give equal ciphertexts and so equal chunk ids:
//! that is what lets memo dedup across users. The domain decides who can dedup with whom:
//!
//! - [`ConvergenceDomain::global`] (default): everyone. Maximum dedup, but anyone who already has a
//!   file can compute its chunk ids and confirm that somebody stored it ("confirmation of file").
//! - [`ConvergenceDomain::group`]: those who share a secret. Dedup within the group only; outsiders
//!   cannot confirm anything.
//! - [`ConvergenceDomain::private`]: one account. No cross-user dedup, no confirmation attack.
//!
//! Cipher: AES-256-SIV (RFC 5297), which is deterministic and misuse-resistant. The per-chunk
//! secret is `blake3::keyed_hash(domain_key, plaintext)`; the 64-byte SIV key is that secret
//! expanded by blake3's XOF.

use crate::identity::Keypair;
use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;

/// Bytes the cipher adds to a chunk (the SIV tag).
pub const TAG_LEN: usize = 16;
const SIV_HEADER: &[u8] = b"memo/chunk/v1";

/// Who can dedup with whom. See the module docs for the trade-off.
#[derive(Clone, PartialEq, Eq)]
pub struct ConvergenceDomain {
    key: [u8; 32],
    kind: DomainKind,
}

/// The kind of a [`ConvergenceDomain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// Network-wide.
    Global,
    /// Shared by the holders of a secret.
    Group,
    /// One account.
    Private,
}

impl std::fmt::Debug for ConvergenceDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConvergenceDomain::{:?}", self.kind)
    }
}

impl Default for ConvergenceDomain {
    fn default() -> Self {
        Self::global()
    }
}

impl ConvergenceDomain {
    /// The network-wide domain.
    pub fn global() -> Self {
        Self { key: blake3::derive_key("memo 2026 convergence global v1", b""), kind: DomainKind::Global }
    }

    /// A domain shared by everyone who knows `secret`.
    pub fn group(secret: &[u8]) -> Self {
        Self { key: blake3::derive_key("memo 2026 convergence group v1", secret), kind: DomainKind::Group }
    }

    /// A domain of one account, derived from its keypair.
    pub fn private(keypair: &Keypair) -> Self {
        Self {
            key: blake3::derive_key(
                "memo 2026 convergence private v1",
                &keypair.derive_secret("convergence"),
            ),
            kind: DomainKind::Private,
        }
    }

    /// Which kind of domain this is.
    pub fn kind(&self) -> DomainKind {
        self.kind
    }

    /// The chunk secret of `plaintext` in this domain.
    pub fn chunk_secret(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, plaintext).as_bytes()
    }
}

fn siv(secret: &[u8; 32]) -> Aes256Siv {
    let mut key = [0u8; 64];
    blake3::Hasher::new_keyed(secret).update(b"aes-256-siv key").finalize_xof().fill(&mut key);
    Aes256Siv::new((&key).into())
}

/// Encrypts `buf[TAG_LEN..]` in place and writes the tag into `buf[..TAG_LEN]`.
/// `buf` must be at least `TAG_LEN + 1` bytes long.
pub(crate) fn seal_in_place(secret: &[u8; 32], buf: &mut [u8]) -> bool {
    let (tag_out, body) = buf.split_at_mut(TAG_LEN);
    match siv(secret).encrypt_inout_detached([SIV_HEADER], body.into()) {
        Ok(tag) => {
            tag_out.copy_from_slice(tag.as_slice());
            true
        }
        Err(_) => false,
    }
}

/// Decrypts `buf` (tag then ciphertext) in place; on success the plaintext is `buf[TAG_LEN..]`.
pub(crate) fn open_in_place(secret: &[u8; 32], buf: &mut [u8]) -> bool {
    if buf.len() < TAG_LEN {
        return false;
    }
    let (tag, body) = buf.split_at_mut(TAG_LEN);
    let Ok(tag) = aes_siv::Tag::try_from(&*tag) else { return false };
    siv(secret).decrypt_inout_detached([SIV_HEADER], body.into(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_keys() {
        let p = b"same plaintext";
        let g = ConvergenceDomain::global();
        assert_eq!(g.chunk_secret(p), ConvergenceDomain::global().chunk_secret(p));
        assert_ne!(g.chunk_secret(p), ConvergenceDomain::group(b"team").chunk_secret(p));
        assert_ne!(
            ConvergenceDomain::group(b"team").chunk_secret(p),
            ConvergenceDomain::group(b"other").chunk_secret(p)
        );
        let a = ConvergenceDomain::private(&Keypair::from_seed("a"));
        let b = ConvergenceDomain::private(&Keypair::from_seed("b"));
        assert_ne!(a.chunk_secret(p), b.chunk_secret(p));
        assert_eq!(a.kind(), DomainKind::Private);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        for len in [1usize, 15, 16, 17, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let secret = ConvergenceDomain::global().chunk_secret(&plain);
            let mut buf = vec![0u8; TAG_LEN];
            buf.extend_from_slice(&plain);
            assert!(seal_in_place(&secret, &mut buf), "len {len}");
            assert_ne!(&buf[TAG_LEN..], &plain[..]);
            let mut ok = buf.clone();
            assert!(open_in_place(&secret, &mut ok));
            assert_eq!(&ok[TAG_LEN..], &plain[..]);
            let mut bad = buf.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert!(!open_in_place(&secret, &mut bad));
            let mut wrong = [0u8; 32];
            wrong[0] = 1;
            assert!(!open_in_place(&wrong, &mut buf.clone()));
        }
    }
}

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
//! Cipher: AES-256-SIV (RFC 5297), which is deterministic and misuse-resistant, applied to up to
//! eight segments of the chunk in lockstep (see [`super::siv`]). The per-chunk secret is
//! `blake3::keyed_hash(domain_key, plaintext)`; the 64-byte SIV key is that secret expanded by
//! blake3's XOF.

use crate::identity::Keypair;

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
        Self {
            key: blake3::derive_key("memo 2026 convergence global v1", b""),
            kind: DomainKind::Global,
        }
    }

    /// A domain shared by everyone who knows `secret`.
    pub fn group(secret: &[u8]) -> Self {
        Self {
            key: blake3::derive_key("memo 2026 convergence group v1", secret),
            kind: DomainKind::Group,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_keys() {
        let p = b"same plaintext";
        let g = ConvergenceDomain::global();
        assert_eq!(
            g.chunk_secret(p),
            ConvergenceDomain::global().chunk_secret(p)
        );
        assert_ne!(
            g.chunk_secret(p),
            ConvergenceDomain::group(b"team").chunk_secret(p)
        );
        assert_ne!(
            ConvergenceDomain::group(b"team").chunk_secret(p),
            ConvergenceDomain::group(b"other").chunk_secret(p)
        );
        let a = ConvergenceDomain::private(&Keypair::from_seed("a"));
        let b = ConvergenceDomain::private(&Keypair::from_seed("b"));
        assert_ne!(a.chunk_secret(p), b.chunk_secret(p));
        assert_eq!(a.kind(), DomainKind::Private);
    }
}

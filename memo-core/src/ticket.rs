//! Placement tickets, storage receipts and proofs of possession: what makes a put's claims
//! checkable by keepers that never see the data.
//!
//! 1. A keeper places a new chunk and signs one [`Ticket`] for it: this user may store these
//!    shards, of this size, each on the provider named beside it, until this time.
//! 2. A provider stores shard bytes only with a valid ticket from one of its keepers, and
//!    answers with a signed [`Receipt`].
//! 3. A put registers a chunk only with every shard's receipt, signed by the holder it names.
//!    Nobody can register a chunk (and so poison deduplication) with shards nobody holds.
//! 4. A user who becomes an owner of a chunk that is already registered proves it holds the
//!    chunk's content: for each such chunk it sends [`possession_proof`]s of every shard under
//!    a key bound to its account and its operation's nonce ([`possession_key`]). The keeper
//!    picks shards at random and asks their holders to compute the same proof. A replayed or
//!    re-signed operation carries proofs under another key, so it proves nothing.

use crate::id::{AccountId, ChunkId, ShardId};
use crate::identity::{Signable, Signed};
use serde::{Deserialize, Serialize};

/// How long a keeper's ticket stays valid (the client uploads then submits within it).
pub const TICKET_TTL_MS: u64 = 10 * 60 * 1000;

/// A keeper's permission for `user` to store a chunk's shards, each on the provider named
/// beside it (one signature for the whole chunk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The chunk.
    pub chunk: ChunkId,
    /// Each shard, in index order, with the provider it goes to.
    pub shards: Vec<(ShardId, AccountId)>,
    /// The exact size of every shard in bytes.
    pub size: u64,
    /// Who uploads them (and will own them).
    pub user: AccountId,
    /// Unix milliseconds after which the ticket is void.
    pub expires_ms: u64,
}

impl Signable for Ticket {
    const CONTEXT: &'static str = "memo/ticket/v2";
    /// Room for [`crate::codec::MAX_SHARDS`] shards.
    const MAX_BYTES: usize = 128 + crate::codec::MAX_SHARDS * 72;
}

/// A provider's statement that it stored a shard for a user under a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The shard.
    pub shard: ShardId,
    /// Its size in bytes.
    pub size: u64,
    /// The uploader named by the ticket.
    pub user: AccountId,
    /// The ticket's expiry: a put whose receipts' tickets expired is refused (the provider may
    /// have reclaimed the shard).
    pub expires_ms: u64,
}

impl Signable for Receipt {
    const CONTEXT: &'static str = "memo/receipt/v1";
    const MAX_BYTES: usize = 256;
}

/// Why a ticket or receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The signature does not verify or the body does not decode.
    #[error("forged {what}: {reason}")]
    Forged {
        /// "ticket" or "receipt".
        what: &'static str,
        /// What failed.
        reason: String,
    },
    /// The ticket was not signed by a keeper this node trusts.
    #[error("ticket signed by {signer}, who is not a keeper")]
    NotKeeper {
        /// The signer.
        signer: AccountId,
    },
    /// The ticket is for another shard, size, uploader or provider.
    #[error("ticket does not match: {0}")]
    Mismatch(String),
    /// The ticket's time ran out.
    #[error("ticket expired at {expires_ms} (now {now_ms})")]
    Expired {
        /// Its expiry (unix ms).
        expires_ms: u64,
        /// The time it was presented.
        now_ms: u64,
    },
}

/// Checks a ticket presented with `len` bytes of shard `shard` by `from` to `me`, at `now_ms`;
/// `is_keeper` says whether the signer is a trusted keeper, and `sigs` checks the signature
/// (with the keepers' keys cached). Returns the ticket.
#[allow(clippy::too_many_arguments)]
pub fn check_ticket(
    ticket: &Signed<Ticket>,
    is_keeper: impl Fn(&AccountId) -> bool,
    sigs: &mut crate::contract::SigChecker,
    shard: &ShardId,
    len: u64,
    from: &AccountId,
    me: &AccountId,
    now_ms: u64,
) -> Result<Ticket, TicketError> {
    if !is_keeper(&ticket.signer) {
        return Err(TicketError::NotKeeper {
            signer: ticket.signer,
        });
    }
    if !sigs.verify_one(ticket) {
        return Err(TicketError::Forged {
            what: "ticket",
            reason: "the signature does not verify".into(),
        });
    }
    let t = ticket.open_unverified().map_err(|e| TicketError::Forged {
        what: "ticket",
        reason: e.to_string(),
    })?;
    let mismatch = if !t.shards.iter().any(|(s, _)| s == shard) {
        Some(format!("it does not name shard {}", shard.short()))
    } else if !t.shards.contains(&(*shard, *me)) {
        Some(format!(
            "it places shard {} on another provider, not {}",
            shard.short(),
            me.short()
        ))
    } else if t.size != len {
        Some(format!("it is for {} bytes, not {len}", t.size))
    } else if t.user != *from {
        Some(format!("it was issued to {}", t.user.short()))
    } else {
        None
    };
    if let Some(m) = mismatch {
        return Err(TicketError::Mismatch(m));
    }
    if now_ms >= t.expires_ms {
        return Err(TicketError::Expired {
            expires_ms: t.expires_ms,
            now_ms,
        });
    }
    Ok(t)
}

/// The key a user's possession proofs for `chunk` are computed under: bound to the user and
/// to its operation's nonce, so nobody else's operation, and no other operation, can use them.
pub fn possession_key(user: &AccountId, nonce: u64, chunk: &ChunkId) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("memo 2026 possession key v1");
    h.update(&user.0);
    h.update(&nonce.to_le_bytes());
    h.update(&chunk.0);
    *h.finalize().as_bytes()
}

/// The proof that one holds a shard's bytes, under `key`.
pub fn possession_proof(key: &[u8; 32], shard: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, shard).as_bytes()
}

/// A user's proofs that it holds an already registered chunk: one per shard, in index order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Possession {
    /// The chunk.
    pub chunk: ChunkId,
    /// [`possession_proof`] of each shard under [`possession_key`].
    pub proofs: Vec<[u8; 32]>,
}

impl Possession {
    /// The proofs for `chunk`'s shards (`shards` in index order) by `user` in the operation
    /// with `nonce`.
    pub fn prove<B: AsRef<[u8]>>(
        user: &AccountId,
        nonce: u64,
        chunk: ChunkId,
        shards: &[B],
    ) -> Self {
        let key = possession_key(user, nonce, &chunk);
        Self {
            chunk,
            proofs: shards
                .iter()
                .map(|s| possession_proof(&key, s.as_ref()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    fn ticket(keeper: &Keypair, user: AccountId, provider: AccountId) -> Signed<Ticket> {
        Signed::sign(
            keeper,
            &Ticket {
                chunk: ChunkId([5; 32]),
                shards: vec![
                    (ShardId::of(b"xyz"), AccountId([9; 32])),
                    (ShardId::of(b"abc"), provider),
                ],
                size: 3,
                user,
                expires_ms: 1_000,
            },
        )
    }

    #[test]
    fn a_ticket_is_valid_only_as_issued() {
        let keeper = Keypair::from_seed("k");
        let (user, prov) = (AccountId([1; 32]), AccountId([2; 32]));
        let t = ticket(&keeper, user, prov);
        let is_k = |a: &AccountId| *a == keeper.account();
        let sigs = &mut crate::contract::SigChecker::new();
        let id = ShardId::of(b"abc");
        assert!(check_ticket(&t, is_k, sigs, &id, 3, &user, &prov, 999).is_ok());
        assert!(matches!(
            check_ticket(&t, is_k, sigs, &id, 3, &user, &prov, 1_000),
            Err(TicketError::Expired { .. })
        ));
        for (shard, len, from, me) in [
            (ShardId::of(b"x"), 3, user, prov),
            (ShardId::of(b"xyz"), 3, user, prov),
            (id, 4, user, prov),
            (id, 3, prov, prov),
            (id, 3, user, user),
        ] {
            assert!(matches!(
                check_ticket(&t, is_k, sigs, &shard, len, &from, &me, 0),
                Err(TicketError::Mismatch(_))
            ));
        }
        // Signed by someone who is not a keeper, or altered after signing.
        let stranger = ticket(&Keypair::from_seed("s"), user, prov);
        assert!(matches!(
            check_ticket(&stranger, is_k, sigs, &id, 3, &user, &prov, 0),
            Err(TicketError::NotKeeper { .. })
        ));
        let mut altered = t.clone();
        altered.body[0] ^= 1;
        assert!(matches!(
            check_ticket(&altered, is_k, sigs, &id, 3, &user, &prov, 0),
            Err(TicketError::Forged { .. })
        ));
    }

    #[test]
    fn possession_proofs_are_bound_to_user_nonce_and_content() {
        let c = ChunkId([9; 32]);
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let p = Possession::prove(&a, 7, c, &[b"one".as_slice(), b"two"]);
        assert_eq!(p.proofs.len(), 2);
        assert_ne!(p, Possession::prove(&b, 7, c, &[b"one".as_slice(), b"two"]));
        assert_ne!(p, Possession::prove(&a, 8, c, &[b"one".as_slice(), b"two"]));
        assert_ne!(p, Possession::prove(&a, 7, c, &[b"one".as_slice(), b"tw0"]));
        let key = possession_key(&a, 7, &c);
        assert_eq!(p.proofs[1], possession_proof(&key, b"two"));
    }
}

//! A memo account is a libp2p identity: the same ed25519 key, so a Noise-authenticated
//! connection names the remote account.

use libp2p::PeerId;
use libp2p::identity::{self, ed25519};
use memo_core::{AccountId, Keypair};

/// A peer id or key that does not correspond to a memo account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerIdError {
    /// The peer id is a hash of its key (keys too long to inline), so the key cannot be read.
    #[error("peer id {0} does not embed its public key")]
    NotInline(PeerId),
    /// The embedded key is not a decodable libp2p public key.
    #[error("peer id {0} embeds an undecodable public key")]
    BadKey(PeerId),
    /// The embedded key is of another type (secp256k1, ECDSA, RSA).
    #[error("peer id {0} is not an ed25519 key")]
    NotEd25519(PeerId),
    /// The 32 bytes of the account are not a valid ed25519 public key.
    #[error("account {0:?} is not a valid ed25519 public key")]
    BadAccount(AccountId),
    /// The text is not a peer id.
    #[error("not a peer id: {0}")]
    Malformed(String),
}

/// The libp2p keypair of a memo keypair (same ed25519 secret, same public key).
pub fn libp2p_keypair(keypair: &Keypair) -> identity::Keypair {
    let mut secret = keypair.secret();
    // A 32-byte ed25519 secret is always valid; the conversion only fails on a wrong length.
    let secret = ed25519::SecretKey::try_from_bytes(&mut secret)
        .unwrap_or_else(|_| unreachable!("an ed25519 secret key is 32 bytes"));
    identity::Keypair::from(ed25519::Keypair::from(secret))
}

/// The libp2p peer id of an account.
pub fn peer_id_of(account: &AccountId) -> Result<PeerId, PeerIdError> {
    let public = ed25519::PublicKey::try_from_bytes(account.as_bytes())
        .map_err(|_| PeerIdError::BadAccount(*account))?;
    Ok(identity::PublicKey::from(public).to_peer_id())
}

/// The account of a peer id, if it is an inline ed25519 key (as every memo node's is).
pub fn account_of(peer: &PeerId) -> Result<AccountId, PeerIdError> {
    const IDENTITY_MULTIHASH: u64 = 0;
    let mh = peer.as_ref();
    if mh.code() != IDENTITY_MULTIHASH {
        return Err(PeerIdError::NotInline(*peer));
    }
    let public = identity::PublicKey::try_decode_protobuf(mh.digest())
        .map_err(|_| PeerIdError::BadKey(*peer))?;
    let public = public
        .try_into_ed25519()
        .map_err(|_| PeerIdError::NotEd25519(*peer))?;
    Ok(AccountId(public.to_bytes()))
}

/// The account of a peer id written as text (the part after `/p2p/` in a multiaddr).
pub fn account_of_text(peer: &str) -> Result<AccountId, PeerIdError> {
    let peer: PeerId = peer
        .parse()
        .map_err(|e| PeerIdError::Malformed(format!("{peer}: {e}")))?;
    account_of(&peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_and_peer_id_convert_both_ways() {
        for label in ["a", "b", "provider-7"] {
            let kp = Keypair::from_seed(label);
            let lp = libp2p_keypair(&kp);
            let peer = lp.public().to_peer_id();
            assert_eq!(peer_id_of(&kp.account()).unwrap(), peer);
            assert_eq!(account_of(&peer).unwrap(), kp.account());
        }
    }

    #[test]
    fn the_libp2p_key_signs_as_the_memo_key() {
        let kp = Keypair::from_seed("signer");
        let lp = libp2p_keypair(&kp);
        let sig = lp.sign(b"hello").unwrap();
        assert!(lp.public().verify(b"hello", &sig));
        let ed = lp.public().try_into_ed25519().unwrap();
        assert_eq!(ed.to_bytes(), kp.account().0);
    }

    #[test]
    fn foreign_peer_ids_are_typed_errors() {
        // A random identity multihash that is not a protobuf public key.
        let random = PeerId::random();
        assert_eq!(account_of(&random), Err(PeerIdError::BadKey(random)));
        // A sha256 peer id (as for RSA keys): the key is not recoverable.
        let mh = libp2p::multihash::Multihash::<64>::wrap(0x12, &[7u8; 32]).unwrap();
        let hashed = PeerId::from_multihash(mh).unwrap();
        assert_eq!(account_of(&hashed), Err(PeerIdError::NotInline(hashed)));
        // An inline secp256k1 key (protobuf KeyType 2, 33-byte compressed point).
        let mut proto = vec![0x08, 0x02, 0x12, 33, 0x02];
        proto.extend_from_slice(&[9u8; 32]);
        let mh = libp2p::multihash::Multihash::<64>::wrap(0, &proto).unwrap();
        let secp = PeerId::from_multihash(mh).unwrap();
        assert!(matches!(
            account_of(&secp),
            Err(PeerIdError::BadKey(_) | PeerIdError::NotEd25519(_))
        ));
    }

    #[test]
    fn invalid_account_bytes_are_a_typed_error() {
        // Not a point on the curve (y = 2 has no valid x for ed25519).
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        let bad = AccountId(bytes);
        assert_eq!(peer_id_of(&bad), Err(PeerIdError::BadAccount(bad)));
    }
}

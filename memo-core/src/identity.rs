//! Identities: ed25519 keypairs, account ids, signed envelopes and key files.
//!
//! memo-core never draws randomness itself: a [`Keypair`] is made from 32 secret bytes that the
//! caller supplies (the SDK takes them from the OS).

use crate::id::{AccountId, parse_hex32};
use crate::wire::{self, WireError};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..4]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}

/// A signature or key did not verify or parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The account id is not a valid ed25519 public key.
    #[error("account {0} is not a valid ed25519 public key")]
    BadPublicKey(AccountId),
    /// The signature does not match the signer and message.
    #[error("bad signature by {0}")]
    BadSignature(AccountId),
    /// The signed body could not be decoded.
    #[error(transparent)]
    Body(#[from] WireError),
    /// A key file could not be read.
    #[error("bad key file: {0}")]
    KeyFile(String),
}

/// An ed25519 keypair: the secret behind an account.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.account())
    }
}

impl Keypair {
    /// The keypair whose secret is `secret` (32 bytes from a CSPRNG, or a test seed).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// A deterministic keypair for tests and simulations, derived from a label.
    pub fn from_seed(label: &str) -> Self {
        Self::from_secret(blake3::derive_key(
            "memo 2026 test keypair v1",
            label.as_bytes(),
        ))
    }

    /// The 32 secret bytes. Keep them secret.
    pub fn secret(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// This keypair's account id (its public key).
    pub fn account(&self) -> AccountId {
        AccountId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message` under a domain-separation `context`.
    pub fn sign(&self, context: &str, message: &[u8]) -> Signature {
        Signature(
            self.signing
                .sign(&signing_input(context, message))
                .to_bytes(),
        )
    }

    /// Derives a 32-byte secret for `purpose` from this keypair (e.g. a private convergence
    /// secret or an index key). Deterministic, and independent of the signing key's use.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 account-derived secret v1");
        h.update(&self.signing.to_bytes());
        h.update(purpose.as_bytes());
        *h.finalize().as_bytes()
    }
}

/// The exact bytes ed25519 signs for `message` under `context`.
pub(crate) fn signing_input(context: &str, message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + context.len() + message.len());
    m.extend_from_slice(b"memo/sig/v1\0");
    m.extend_from_slice(&(context.len() as u32).to_le_bytes());
    m.extend_from_slice(context.as_bytes());
    m.extend_from_slice(message);
    m
}

/// Checks that `signature` is `signer`'s signature of `message` under `context`.
pub fn verify(
    signer: &AccountId,
    context: &str,
    message: &[u8],
    signature: &Signature,
) -> Result<(), IdentityError> {
    let key =
        VerifyingKey::from_bytes(&signer.0).map_err(|_| IdentityError::BadPublicKey(*signer))?;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(&signing_input(context, message), &sig)
        .map_err(|_| IdentityError::BadSignature(*signer))
}

/// A type that travels inside a [`Signed`] envelope.
pub trait Signable: Serialize + DeserializeOwned {
    /// Domain-separation context: a signature for one type never verifies as another.
    const CONTEXT: &'static str;
    /// Largest accepted encoding of the body, checked before decoding.
    const MAX_BYTES: usize;
}

/// A value with its signer and signature over its canonical encoding.
///
/// The body is kept as the exact bytes that were signed, so verifying never depends on
/// re-encoding.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Signed<T> {
    /// Who signed.
    pub signer: AccountId,
    /// The canonical encoding of the value.
    pub body: Vec<u8>,
    /// `signer`'s signature of `body` under `T::CONTEXT`.
    pub signature: Signature,
    #[serde(skip)]
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Self {
            signer: self.signer,
            body: self.body.clone(),
            signature: self.signature,
            _t: PhantomData,
        }
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, o: &Self) -> bool {
        self.signer == o.signer && self.body == o.body && self.signature == o.signature
    }
}

impl<T> Eq for Signed<T> {}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signed(by {:?}, {} bytes)", self.signer, self.body.len())
    }
}

impl<T: Signable> Signed<T> {
    /// Signs `value` with `keypair`.
    pub fn sign(keypair: &Keypair, value: &T) -> Self {
        let body = wire::encode(value);
        let signature = keypair.sign(T::CONTEXT, &body);
        Self {
            signer: keypair.account(),
            body,
            signature,
            _t: PhantomData,
        }
    }

    /// Verifies the signature, then decodes the body.
    pub fn open(&self) -> Result<T, IdentityError> {
        self.verify()?;
        Ok(wire::decode(&self.body, T::MAX_BYTES, T::CONTEXT)?)
    }

    /// Decodes the body without verifying the signature: for values whose signature was
    /// checked before (entries of a log that only admits verified values).
    pub fn open_unverified(&self) -> Result<T, IdentityError> {
        Ok(wire::decode(&self.body, T::MAX_BYTES, T::CONTEXT)?)
    }

    /// Verifies the signature only.
    pub fn verify(&self) -> Result<(), IdentityError> {
        verify(&self.signer, T::CONTEXT, &self.body, &self.signature)
    }

    /// A stable digest of the whole envelope (e.g. a transaction hash).
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&wire::encode(self)).as_bytes()
    }
}

/// The text form of a key file: TOML with the account id and the secret, both in hex.
///
/// ```text
/// # memo key file: whoever reads this file controls the account
/// version = 1
/// account = "<64 hex digits>"
/// secret = "<64 hex digits>"
/// ```
#[derive(Debug, Serialize, Deserialize)]
struct KeyFileToml {
    version: u32,
    account: String,
    secret: String,
}

impl Keypair {
    /// Renders this keypair as a key file.
    pub fn to_key_file(&self) -> String {
        let body = KeyFileToml {
            version: 1,
            account: self.account().to_hex(),
            secret: hex::encode(self.secret()),
        };
        let text = toml::to_string(&body).unwrap_or_default();
        format!("# memo key file: whoever reads this file controls the account\n{text}")
    }

    /// Parses a key file, checking that the secret matches the stated account.
    pub fn from_key_file(text: &str) -> Result<Self, IdentityError> {
        if text.len() > 4096 {
            return Err(IdentityError::KeyFile("longer than 4096 bytes".into()));
        }
        let kf: KeyFileToml =
            toml::from_str(text).map_err(|e| IdentityError::KeyFile(e.message().to_string()))?;
        if kf.version != 1 {
            return Err(IdentityError::KeyFile(format!(
                "unsupported version {}",
                kf.version
            )));
        }
        let secret =
            parse_hex32(&kf.secret).map_err(|e| IdentityError::KeyFile(format!("secret: {e}")))?;
        let account = parse_hex32(&kf.account)
            .map_err(|e| IdentityError::KeyFile(format!("account: {e}")))?;
        let kp = Keypair::from_secret(secret);
        if kp.account().0 != account {
            return Err(IdentityError::KeyFile(
                "secret does not belong to the stated account".into(),
            ));
        }
        Ok(kp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Hello(u32, String);
    impl Signable for Hello {
        const CONTEXT: &'static str = "test/hello";
        const MAX_BYTES: usize = 1024;
    }

    #[test]
    fn sign_open_and_tamper() {
        let kp = Keypair::from_seed("alice");
        let s = Signed::sign(&kp, &Hello(1, "hi".into()));
        assert_eq!(s.open().unwrap(), Hello(1, "hi".into()));
        let bytes = wire::encode(&s);
        let back: Signed<Hello> = wire::decode(&bytes, 4096, "signed").unwrap();
        assert_eq!(back.open().unwrap(), Hello(1, "hi".into()));

        let mut t = s.clone();
        t.body[0] ^= 1;
        assert_eq!(t.open(), Err(IdentityError::BadSignature(kp.account())));
        let mut t = s.clone();
        t.signer = Keypair::from_seed("mallory").account();
        assert!(matches!(t.open(), Err(IdentityError::BadSignature(_))));
        // Same bytes, other context: refused.
        assert!(verify(&kp.account(), "other", &s.body, &s.signature).is_err());
    }

    #[test]
    fn key_file_round_trip_and_errors() {
        let kp = Keypair::from_seed("bob");
        let text = kp.to_key_file();
        assert_eq!(
            Keypair::from_key_file(&text).unwrap().account(),
            kp.account()
        );
        let other = Keypair::from_seed("carol").account().to_hex();
        let forged = text.replace(&kp.account().to_hex(), &other);
        assert!(matches!(
            Keypair::from_key_file(&forged),
            Err(IdentityError::KeyFile(_))
        ));
        assert!(Keypair::from_key_file("garbage = [").is_err());
        assert!(Keypair::from_key_file("version = 2\naccount = \"\"\nsecret = \"\"").is_err());
    }

    #[test]
    fn derived_secrets_differ_by_purpose_and_account() {
        let a = Keypair::from_seed("a");
        let b = Keypair::from_seed("b");
        assert_ne!(a.derive_secret("x"), a.derive_secret("y"));
        assert_ne!(a.derive_secret("x"), b.derive_secret("x"));
        assert_eq!(a.derive_secret("x"), a.derive_secret("x"));
    }
}

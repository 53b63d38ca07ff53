//! 32-byte identifiers: content addresses (blake3) and account ids (ed25519 public keys).
//!
//! Every id prints as 64 lowercase hex digits and parses back from the same form.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An id could not be parsed from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text is not 64 hex digits.
    #[error("expected 64 hex digits, got {len} characters")]
    Length {
        /// Characters given.
        len: usize,
    },
    /// The text has a character that is not a hex digit.
    #[error("not a hex digit in id")]
    Hex,
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        ///
        /// Serialized as 64 hex digits in human-readable formats (JSON, TOML) and as 32 raw
        /// bytes in binary ones.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                Self(b)
            }
        }
    };
}

/// Parses 64 hex digits into 32 bytes.
pub fn parse_hex32(s: &str) -> Result<[u8; 32], IdParseError> {
    let s = s.trim();
    if s.len() != 64 {
        return Err(IdParseError::Length {
            len: s.chars().count(),
        });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| IdParseError::Hex)?;
    Ok(out)
}

id_type!(
    /// A chunk's address: blake3 of its ciphertext. The unit of dedup and ownership.
    ChunkId
);
id_type!(
    /// A shard's address: blake3 of its bytes, which is also the root its storage proofs check against.
    ShardId
);
id_type!(
    /// An object's address: the chunk id of its encrypted manifest.
    ObjectId
);
id_type!(
    /// An account: the ed25519 public key of a user, provider or keeper.
    AccountId
);

/// Node names for logs: the names operators gave their nodes, known to this process (a node
/// registers its config's peers). Display only; nothing depends on them.
static NAMES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashMap<AccountId, String>>> =
    std::sync::OnceLock::new();

impl AccountId {
    /// Records `name` as this account's name in [`AccountId::label`] (for this process).
    pub fn set_name(&self, name: &str) {
        let names = NAMES.get_or_init(Default::default);
        names
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*self, name.to_string());
    }

    /// How logs name the account: the name recorded with [`AccountId::set_name`] and the
    /// first hex digits (`keeper-1 (9f1c2a3b)`), or the first hex digits alone.
    pub fn label(&self) -> String {
        let name = NAMES.get().and_then(|n| {
            n.read()
                .unwrap_or_else(|p| p.into_inner())
                .get(self)
                .cloned()
        });
        match name {
            Some(name) => format!("{name} ({})", self.short()),
            None => self.short(),
        }
    }
}

impl ChunkId {
    /// The id of `ciphertext`.
    pub fn of(ciphertext: &[u8]) -> Self {
        Self(*blake3::hash(ciphertext).as_bytes())
    }
}

impl ShardId {
    /// The id of a shard's bytes.
    pub fn of(shard: &[u8]) -> Self {
        Self(*blake3::hash(shard).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_is_hex_in_json_and_raw_in_binary() {
        let id = ShardId::of(b"x");
        let bin = crate::wire::encode(&id);
        assert_eq!(bin, id.0.to_vec());
        assert_eq!(crate::wire::decode::<ShardId>(&bin, 32, "id").unwrap(), id);
        let text = toml::to_string(&std::collections::BTreeMap::from([("id", id)])).unwrap();
        assert!(text.contains(&id.to_hex()));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = ChunkId::of(b"abc");
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<ChunkId>().unwrap(), id);
        assert_eq!(
            "abc".parse::<ChunkId>(),
            Err(IdParseError::Length { len: 3 })
        );
        let bad = "z".repeat(64);
        assert_eq!(bad.parse::<ShardId>(), Err(IdParseError::Hex));
        assert_eq!(id.short(), &text[..8]);
    }

    #[test]
    fn accounts_are_labelled_by_their_names_once_known() {
        let a = AccountId([7; 32]);
        assert_eq!(a.label(), "07070707");
        a.set_name("keeper-7");
        assert_eq!(a.label(), "keeper-7 (07070707)");
        assert_eq!(AccountId([8; 32]).label(), "08080808");
    }
}

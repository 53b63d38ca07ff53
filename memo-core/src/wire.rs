//! Canonical binary encoding for everything memo signs, stores or sends.
//!
//! memo encodes with [postcard] (varint integers, length-prefixed sequences, no field names), which
//! is deterministic for the types memo uses (no hash maps: ordered maps and vectors only), so equal
//! values give equal bytes and signatures over encodings are stable. Decoding is bounded: input
//! longer than the caller's limit is refused before anything is allocated, and trailing bytes are
//! an error, so one value has exactly one accepted encoding.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input exceeds the limit for this kind of message.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Bytes remain after a complete value.
    #[error("malformed {what}: {extra} trailing bytes")]
    Trailing {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes remained.
        extra: usize,
    },
    /// The format version is one this build does not read.
    #[error("{what} has format version {found}; this build reads version {expected}")]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        found: u8,
        /// The version supported.
        expected: u8,
    },
}

/// Encodes `value` canonically.
#[allow(clippy::panic)]
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // postcard cannot fail on memo's types (no maps with non-string keys issues, no unsized
    // sequences); a failure would be a programming error in a type definition.
    postcard::to_allocvec(value).unwrap_or_else(|e| panic!("memo type failed to encode: {e}"))
}

/// Decodes one `T` from exactly `bytes`, refusing inputs over `max` bytes.
pub fn decode<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    max: usize,
    what: &'static str,
) -> Result<T, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(WireError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes `value` behind a one-byte format version.
pub fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    encode_versioned_sized(version, value, 0)
}

/// [`encode_versioned`] into a vector allocated with `capacity` (enough for the whole
/// encoding: it is then written once and never reallocated).
pub fn encode_versioned_sized<T: Serialize + ?Sized>(
    version: u8,
    value: &T,
    capacity: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    encode_versioned_into(version, value, &mut out);
    out
}

/// Appends what [`encode_versioned`] returns to `out`, in one pass: give `out` the capacity
/// and a large value (a shard) is copied once, with no reallocation.
#[allow(clippy::panic)]
pub fn encode_versioned_into<T: Serialize + ?Sized>(version: u8, value: &T, out: &mut Vec<u8>) {
    out.push(version);
    // As in `encode`: memo's types always encode.
    postcard::serialize_with_flavor(value, Append(out))
        .unwrap_or_else(|e| panic!("memo type failed to encode: {e}"))
}

/// A postcard output that appends to a vector, copying byte strings with one `memcpy`
/// (postcard's own `to_extend` extends byte by byte: about 5% of a client's CPU in a
/// shard put, `memo-refnode/benches/devnet.rs` under `perf`).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a value written by [`encode_versioned`], checking the version first.
pub fn decode_versioned<T: DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    max: usize,
    what: &'static str,
) -> Result<T, WireError> {
    match bytes.first() {
        None => Err(WireError::Malformed {
            what,
            reason: "empty input".into(),
        }),
        Some(&v) if v != version => Err(WireError::Version {
            what,
            found: v,
            expected: version,
        }),
        Some(_) => decode(&bytes[1..], max.saturating_sub(1), what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_limits_and_trailing_bytes() {
        let v: (u32, Vec<u8>) = (7, vec![1, 2, 3]);
        let bytes = encode(&v);
        assert_eq!(decode::<(u32, Vec<u8>)>(&bytes, 64, "t").unwrap(), v);
        assert!(matches!(
            decode::<(u32, Vec<u8>)>(&bytes, 2, "t"),
            Err(WireError::TooLarge { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode::<(u32, Vec<u8>)>(&long, 64, "t"),
            Err(WireError::Trailing {
                what: "t",
                extra: 1
            })
        );
        // A length prefix claiming more bytes than exist is an error, not an allocation.
        assert!(decode::<Vec<u8>>(&[0xff, 0xff, 0xff, 0xff, 0x0f], 64, "t").is_err());
        let ver = encode_versioned(3, &v);
        assert_eq!(
            decode_versioned::<(u32, Vec<u8>)>(&ver, 3, 64, "t").unwrap(),
            v
        );
        assert_eq!(
            decode_versioned::<(u32, Vec<u8>)>(&ver, 4, 64, "t"),
            Err(WireError::Version {
                what: "t",
                found: 3,
                expected: 4
            })
        );
    }
}

//! Decoding arbitrary bytes as persisted registry records (accounts, chunk entries) never
//! panics, and whatever decodes survives a round trip.
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::ownership::{Account, ChunkEntry, refcount_from_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Account::from_bytes(data) {
        let bytes = a.to_bytes();
        assert_eq!(
            Account::from_bytes(&bytes).map(|a| a.to_bytes()).ok(),
            Some(bytes)
        );
    }
    if let Ok(e) = ChunkEntry::from_bytes(data) {
        let bytes = e.to_bytes();
        assert_eq!(
            ChunkEntry::from_bytes(&bytes).map(|e| e.to_bytes()).ok(),
            Some(bytes)
        );
    }
    let _ = refcount_from_bytes(data);
});

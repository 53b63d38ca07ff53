//! Decoding arbitrary bytes as persisted registry records (accounts, chunk entries) never
//! panics, and whatever decodes re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::ownership::{Account, ChunkEntry, refcount_from_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Account::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
    if let Ok(e) = ChunkEntry::from_bytes(data) {
        assert_eq!(e.to_bytes(), data);
    }
    let _ = refcount_from_bytes(data);
});

//! Decoding arbitrary bytes as a manifest never panics; whatever decodes re-encodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::codec::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_bytes(data) {
        assert_eq!(Manifest::from_bytes(&m.to_bytes()).ok(), Some(m));
    }
});

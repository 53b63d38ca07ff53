//! Decoding arbitrary bytes as a node protocol request or response never panics, and whatever
//! decodes re-encodes to the same bytes (the encoding is canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::protocol::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
    }
    if let Ok(r) = Response::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
    }
});

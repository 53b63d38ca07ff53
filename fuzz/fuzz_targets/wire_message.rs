//! Decoding arbitrary bytes as a node protocol request or response never panics, and whatever
//! decodes survives a round trip.
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::protocol::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::from_bytes(data) {
        let bytes = r.to_bytes();
        assert_eq!(
            Request::from_bytes(&bytes).map(|r| r.to_bytes()).ok(),
            Some(bytes)
        );
    }
    if let Ok(r) = Response::from_bytes(data) {
        let bytes = r.to_bytes();
        assert_eq!(
            Response::from_bytes(&bytes).map(|r| r.to_bytes()).ok(),
            Some(bytes)
        );
    }
});

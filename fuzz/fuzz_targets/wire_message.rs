//! Decoding arbitrary bytes as a node protocol request or response never panics, whatever
//! decodes survives a round trip, and decoding a shared buffer (`from_shared`, which slices
//! shard bytes out of it) gives what decoding a slice gives.
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::protocol::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let shared = bytes::Bytes::copy_from_slice(data);
    assert_eq!(Request::from_shared(&shared), Request::from_bytes(data));
    assert_eq!(Response::from_shared(&shared), Response::from_bytes(data));
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

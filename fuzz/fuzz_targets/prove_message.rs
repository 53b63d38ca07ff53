//! Decoding arbitrary bytes as a prove request (what a provider's prover receives) or a prove
//! report (what a keeper's challenger receives) never panics, and whatever decodes survives a
//! round trip.
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_sdk::provider::prover::{ProveReport, ProveRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ProveRequest::from_bytes(data) {
        assert_eq!(ProveRequest::from_bytes(&r.to_bytes()).ok(), Some(r));
    }
    if let Ok(r) = ProveReport::from_bytes(data) {
        assert_eq!(ProveReport::from_bytes(&r.to_bytes()).ok(), Some(r));
    }
});

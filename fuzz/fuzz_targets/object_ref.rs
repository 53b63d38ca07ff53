//! Parsing arbitrary bytes and text as an object reference never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::codec::ObjectRef;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ObjectRef::from_bytes(data) {
        assert_eq!(r.to_string().parse::<ObjectRef>().ok(), Some(r));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<ObjectRef>();
    }
});

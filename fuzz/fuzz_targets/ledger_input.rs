//! Decoding arbitrary bytes as a signed ledger transaction, and opening and verifying whatever
//! decodes, never panics; whatever decodes survives a round trip with the same digest. (Genesis
//! files have their own target, `genesis`.)
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::contract::SignedTx;
use memo_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = wire::decode::<SignedTx>(data, 1 << 20, "transaction") {
        let bytes = wire::encode(&tx);
        let again = wire::decode::<SignedTx>(&bytes, 1 << 20, "transaction").expect("round trip");
        assert_eq!(again.digest(), tx.digest());
        assert_eq!(wire::encode(&again), bytes);
        let _ = tx.verify();
        let _ = tx.open();
    }
});

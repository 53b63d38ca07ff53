//! Decoding arbitrary bytes as a signed ledger transaction, and arbitrary text as a genesis
//! file, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::contract::{Genesis, SignedTx};
use memo_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = wire::decode::<SignedTx>(data, 1 << 20, "transaction") {
        let _ = tx.verify();
        let _ = tx.open();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Genesis::from_toml(text);
    }
});

//! Decoding arbitrary bytes as a block (what chain followers receive from the sequencer) never
//! panics, and whatever decodes survives a round trip with the same hash.
//!
//! The decoders accept some non-canonical encodings (postcard reads overlong varints, e.g.
//! `82 00` as 2), so the property is that whatever decodes re-encodes to bytes that decode to
//! the same value, not that the input bytes come back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_sdk::ledger::{Block, tx_root};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Block::decode(data) {
        let again = Block::decode(&b.encode()).expect("an encoded block decodes");
        assert_eq!(again.hash(), b.hash());
        assert_eq!(again.encode(), b.encode());
        let _ = b.signature_ok();
        let _ = b.hash();
        let _ = tx_root(&b.txs);
        for tx in &b.txs {
            let _ = tx.verify();
            let _ = tx.open();
        }
    }
});

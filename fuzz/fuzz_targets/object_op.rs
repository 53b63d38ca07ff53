//! Decoding arbitrary bytes as a signed object operation (what keepers put in the shared log),
//! opening and verifying it, and applying whatever opens to a small keeper state, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::objects::{MAX_OP_BYTES, Objects, SignedOp};
use memo_core::ownership::MemoryMeta;
use memo_core::{AccountId, wire};

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = wire::decode::<SignedOp>(data, MAX_OP_BYTES + 256, "operation") else {
        return;
    };
    let _ = signed.verify();
    if let Ok(op) = signed.open() {
        let mut o =
            Objects::new(MemoryMeta::new()).with_keepers([signed.signer, AccountId([1; 32])]);
        let _ = o.ensure_account(signed.signer, 1 << 40);
        let _ = o.check(signed.signer, &op, op.expires_ms.saturating_sub(1));
        let _ = o.apply_signed(signed.signer, &op);
        let _ = o.apply_signed(AccountId([1; 32]), &op);
        let _ = o.apply_signed(signed.signer, &op);
    }
});

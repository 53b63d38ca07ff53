//! Parsing arbitrary text as a key file never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::Keypair;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(kp) = Keypair::from_key_file(text) {
            assert_eq!(
                Keypair::from_key_file(&kp.to_key_file()).unwrap().account(),
                kp.account()
            );
        }
    }
});

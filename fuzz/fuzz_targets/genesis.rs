//! Parsing arbitrary text as a genesis file never panics, and whatever parses renders to TOML
//! that parses back to the same genesis.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::contract::Genesis;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = Genesis::from_toml(text) {
        let again = Genesis::from_toml(&g.to_toml()).expect("a rendered genesis parses");
        assert_eq!(again, g);
    }
});

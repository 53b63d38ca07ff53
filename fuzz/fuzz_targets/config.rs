//! Loading arbitrary text as a node config or a client config file never panics, and whatever
//! loads saves to a file that loads again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_sdk::config::{ClientFile, NodeConfig};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A scratch directory of this process (the configs are read from files, as nodes do).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("memo-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = dir().join("input.toml");
    std::fs::write(&path, text).unwrap();
    let saved = dir().join("saved.toml");
    if let Ok(c) = NodeConfig::load(&path) {
        c.save(&saved).expect("a loaded node config saves");
        let again = NodeConfig::load(&saved).expect("a saved node config loads");
        assert_eq!(
            (again.role, &again.name, &again.peers),
            (c.role, &c.name, &c.peers)
        );
    }
    if let Ok(c) = ClientFile::load(&path) {
        c.save(&saved).expect("a loaded client config saves");
        let again = ClientFile::load(&saved).expect("a saved client config loads");
        assert_eq!((again.params(), &again.peers), (c.params(), &c.peers));
    }
});

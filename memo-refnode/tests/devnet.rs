//! End to end: the real `memo` binary, every node its own process, on loopback.

mod common;

use common::{Devnet, MEMO};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

#[test]
fn put_get_dedup_refuse_and_purge_across_processes() {
    // Three keepers in three processes share one log; each user starts with another keeper.
    let net = Devnet::start(6, 3);
    let data: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = net.dir.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();

    let put = net.json("alice", &["put", file, "--name", "doc"]);
    let id = put["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(put["uploaded_chunks"], put["chunks"]);
    let held = net.shard_files();
    assert_eq!(held as u64, put["chunks"].as_u64().unwrap() * 6);

    let out = net.dir.path().join("out.bin");
    net.json("alice", &["get", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let part = net.memo("alice", &["get", "doc", "--range", "1000..2000"]);
    assert!(part.status.success());
    assert_eq!(part.stdout, &data[1000..2000]);

    // Same user again, then a second user: no shard traffic.
    assert_eq!(
        net.json("alice", &["put", file, "--name", "doc"])["uploaded_bytes"],
        0
    );
    let stat = net.json("alice", &["stat", "doc"]);
    assert_eq!(
        (stat["size"].as_u64(), stat["refs"].as_u64()),
        (Some(data.len() as u64), Some(2))
    );
    let chunk = &stat["chunks"][0];
    assert_eq!(
        (
            chunk["needed"].as_u64(),
            chunk["total"].as_u64(),
            chunk["healthy"].as_u64()
        ),
        (Some(4), Some(6), Some(6))
    );
    assert_eq!(chunk["holders"].as_array().unwrap().len(), 6);
    let bob = net.json("bob", &["put", file]);
    assert_eq!(
        (bob["id"].as_str(), bob["uploaded_bytes"].as_u64()),
        (Some(id.as_str()), Some(0))
    );
    assert_eq!(net.shard_files(), held);

    // A non-owner's delete is refused with a clear message and a non-zero exit.
    let refused = net.memo("carol", &["rm", &id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an owner"));

    // Alice's two references go; bob's data stays; then bob's delete purges the disks.
    assert!(net.memo("alice", &["rm", "doc"]).status.success());
    assert!(net.memo("alice", &["rm", "doc"]).status.success());
    assert!(!net.memo("alice", &["rm", &id]).status.success());
    assert_eq!(net.shard_files(), held);
    let account = net.json("bob", &["account"]);
    assert!(account["stored_bytes"].as_u64().unwrap() > 0);
    assert!(account["balance"].is_u64());
    assert!(net.memo("bob", &["rm", "input.bin"]).status.success());
    assert_eq!(net.shard_files(), 0);
    assert_eq!(net.json("bob", &["account"])["stored_bytes"], 0);

    // Bad input: unknown object, missing config.
    let unknown = net.memo("bob", &["get", "nothing-here"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no object"));
    let no_config = Command::new(MEMO)
        .env_remove("MEMO_CONFIG")
        .args(["ls"])
        .output()
        .unwrap();
    assert!(!no_config.status.success());
    assert!(String::from_utf8_lossy(&no_config.stderr).contains("config"));
}

#[test]
fn a_devnet_keeper_that_is_gone_is_a_clear_error() {
    let net = Devnet::start(6, 1);
    let devnet: Value =
        serde_json::from_slice(&std::fs::read(net.dir.path().join("devnet.json")).unwrap())
            .unwrap();
    let keeper = devnet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "keeper")
        .unwrap();
    let pid = keeper["pid"].as_u64().unwrap();
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
    std::thread::sleep(Duration::from_millis(200));
    let out = net.memo("alice", &["ls"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no keeper reachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

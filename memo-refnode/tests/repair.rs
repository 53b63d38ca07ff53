//! End to end: keepers started by `memo devnet` detect lost providers and corrupted shard files
//! and repair them, with no client read needed; `memo get` returns exact bytes throughout.

mod common;

use common::Devnet;
use memo_core::testkit::random_bytes;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// A 2-second epoch: keepers probe every 0.5 s and declare a silent provider Lost after 4 s.
/// 256 KiB chunks so a few MiB make enough chunks that every provider holds shards.
const DEVNET: &[&str] = &["--epoch-secs", "2", "--chunk-size", "262144"];
/// How long repair may take on a loaded machine (a few epochs are enough on an idle one).
const REPAIR_WITHIN: Duration = Duration::from_secs(90);

/// Puts `data` as alice's `name`; returns the object id.
fn put(net: &Devnet, name: &str, data: &[u8]) -> String {
    let file = net.dir.path().join(format!("{name}.in"));
    std::fs::write(&file, data).unwrap();
    let put = net.json("alice", &["put", file.to_str().unwrap(), "--name", name]);
    put["id"].as_str().unwrap().to_string()
}

/// The chunks of `stat --json`.
fn chunks(stat: &Value) -> Vec<Value> {
    stat["chunks"].as_array().unwrap().clone()
}

/// True if every chunk has all its shards Healthy and placed on distinct holders, none of
/// them in `not`.
fn fully_healthy(stat: &Value, not: &BTreeSet<String>) -> bool {
    chunks(stat).iter().all(|c| {
        let holders: Vec<&str> = c["holders"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let distinct: BTreeSet<&str> = holders.iter().copied().collect();
        c["healthy"] == c["total"]
            && holders.len() as u64 == c["total"].as_u64().unwrap()
            && distinct.len() == holders.len()
            && holders.iter().all(|h| !not.contains(*h))
            && c["health"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h == "healthy")
    })
}

fn account(net: &Devnet, name: &str) -> String {
    net.node(name)["account"].as_str().unwrap().to_string()
}

#[test]
fn two_killed_providers_are_repaired_and_reads_stay_exact() {
    let net = Devnet::start_with(8, 3, DEVNET);
    let bytes = random_bytes(4 << 20, 1);
    let id = put(&net, "doc", &bytes);
    for i in 0..8 {
        assert!(
            !net.shard_paths(&format!("provider-{i}")).is_empty(),
            "provider-{i} holds no shard"
        );
    }
    let killed: BTreeSet<String> = ["provider-0", "provider-3"]
        .iter()
        .map(|n| account(&net, n))
        .collect();
    net.kill("provider-0");
    net.kill("provider-3");
    // Reads work at once (two of six shards per chunk may be gone; four suffice).
    assert!(net.get("alice", &id) == bytes);

    // While repair runs, stat shows the degraded chunks; then every chunk is back to full
    // health on live providers.
    let degraded = |c: &Value| {
        c["health"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "suspect" || h == "lost")
    };
    net.until(REPAIR_WITHIN, "stat shows degraded chunks", || {
        let stat = net.json("alice", &["stat", "doc", "--json"]);
        chunks(&stat).iter().any(degraded).then_some(())
    });
    net.until(REPAIR_WITHIN, "every chunk back to full health", || {
        let stat = net.json("alice", &["stat", "doc", "--json"]);
        fully_healthy(&stat, &killed).then_some(())
    });
    assert!(net.get("alice", &id) == bytes);
    net.until(Duration::from_secs(10), "counters published", || {
        (net.repair_stats()
            .get("shards_restored")
            .copied()
            .unwrap_or(0)
            > 0)
        .then_some(())
    });
    let logs = net.keeper_logs();
    assert!(
        logs.contains("provider health changed"),
        "no health change logged"
    );
    assert!(
        logs.contains("holder declared lost"),
        "no repair reason logged"
    );
    // The ledger records the moves: the shards' orders go to the new holders, and the killed
    // providers' stake pays the repairing keeper.
    net.until(REPAIR_WITHIN, "repairs recorded on the ledger", || {
        net.keeper_logs()
            .contains("repair recorded on the ledger")
            .then_some(())
    });
    assert!(
        !net.keeper_logs().contains("the ledger refused a repair"),
        "{}",
        net.diagnostics()
    );
}

#[test]
fn corrupted_shard_files_are_found_without_reads_and_repaired() {
    let net = Devnet::start_with(8, 3, DEVNET);
    let bytes = random_bytes(4 << 20, 2);
    let id = put(&net, "doc", &bytes);
    let victim = account(&net, "provider-2");
    let before = net.json("alice", &["stat", "doc", "--json"]);
    let held: Vec<(String, usize)> = chunks(&before)
        .iter()
        .flat_map(|c| {
            let chunk = c["chunk"].as_str().unwrap().to_string();
            c["holders"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(_, h)| h.as_str() == Some(victim.as_str()))
                .map(move |(i, _)| (chunk.clone(), i))
                .collect::<Vec<_>>()
        })
        .collect();
    let files = net.shard_paths("provider-2");
    assert!(!files.is_empty());
    assert_eq!(files.len(), held.len());
    // Garbage of the same length in place of every shard the provider holds.
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len() as usize;
        std::fs::write(f, random_bytes(len, 0xba)).unwrap();
    }

    // No client reads: the keepers' audits must find every bad shard.
    net.until(REPAIR_WITHIN, "every corrupted shard moved", || {
        let stat = net.json("alice", &["stat", "doc", "--json"]);
        let moved = held.iter().all(|(chunk, i)| {
            chunks(&stat).iter().any(|c| {
                c["chunk"].as_str() == Some(chunk.as_str())
                    && c["holders"][*i].as_str() != Some(victim.as_str())
            })
        });
        (moved && fully_healthy(&stat, &BTreeSet::new())).then_some(())
    });
    // The keepers publish their counters within a quarter second.
    let stats = net.until(Duration::from_secs(10), "counters published", || {
        let st = net.repair_stats();
        (st.get("shards_restored").copied().unwrap_or(0) >= held.len() as u64).then_some(st)
    });
    assert!(stats["audit_failures"] > 0, "{stats:?}");
    assert!(net.get("alice", &id) == bytes);
    // The provider dropped the garbage (on read) or was told to delete it (after repair).
    net.until(Duration::from_secs(30), "garbage files gone", || {
        files.iter().all(|f| !f.exists()).then_some(())
    });
    assert!(net.keeper_logs().contains("audit found a bad shard"));
}

//! End to end: the real `memo` binary, every node its own process, on loopback.

mod common;

use common::{Devnet, MEMO};
use memo_core::testkit::random_bytes;
use std::process::Command;
use std::time::Duration;

#[test]
fn put_get_dedup_refuse_and_purge_across_processes() {
    // Three keepers in three processes share one log.
    let net = Devnet::start(6, 3);
    let data = random_bytes(2_500_000, 1);
    let file = net.dir.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();

    let put = net.json("alice", &["put", file, "--name", "doc"]);
    let id = put["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(put["uploaded_chunks"], put["chunks"]);
    let held = net.shard_files();
    assert_eq!(held as u64, put["chunks"].as_u64().unwrap() * 6);

    assert_eq!(net.get("alice", &id), data);
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
    // A damaged key file: a clear error naming it, nothing sent.
    let bad_key = net.dir.path().join("keys").join("damaged.key");
    std::fs::write(&bad_key, "secret = 1\n").unwrap();
    net.user_with_key("damaged", &bad_key);
    let out = net.memo("damaged", &["ls"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged.key"), "{err}");
}

#[test]
fn a_devnet_keeper_that_is_gone_is_a_clear_error() {
    let net = Devnet::start(6, 1);
    net.kill("keeper-0");
    let out = net.memo("alice", &["ls"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no keeper reachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ledger across processes: every node registered, a put pays for storage orders from
/// the user's balance, and the keepers' challenges pay the providers epoch after epoch.
#[test]
fn storage_is_ordered_challenged_and_paid_on_the_devnet_ledger() {
    let net = Devnet::start_with(6, 2, &["--epoch-secs", "1", "--block-ms", "200"]);
    let before = net.json("alice", &["account"])["balance"].as_u64().unwrap();
    assert!(before > 0, "users are funded at genesis");
    // A client config for provider-0's own key: its balance is what the ledger paid it.
    net.user_with_key(
        "provider-0",
        &net.dir.path().join("keys").join("provider-0.key"),
    );
    let provider_balance = || {
        net.json("provider-0", &["account"])["balance"]
            .as_u64()
            .unwrap()
    };
    let registered = provider_balance();

    // 6 MiB over 4+2: every provider holds shards of every chunk.
    let file = net.dir.path().join("paid.bin");
    let data = random_bytes(6 << 20, 2);
    std::fs::write(&file, &data).unwrap();
    let put = net.json("alice", &["put", file.to_str().unwrap()]);
    let orders = put["orders"].as_array().unwrap();
    assert!(
        !orders.is_empty(),
        "a put on a devnet creates storage orders: {put}"
    );
    let account = net.json("alice", &["account"]);
    assert_eq!(account["lapsed_orders"], 0, "{account}");
    let after = account["balance"].as_u64().unwrap();
    assert!(
        after < before,
        "the orders' escrow comes out of the user's balance"
    );

    // Nothing is stored unpaid. A fresh key (unfunded, unregistered) cannot order, and a
    // funded user whose config leaves out the ledger is refused by the keepers; neither put
    // leaves an object or a shard behind.
    let small = net.dir.path().join("small.bin");
    std::fs::write(&small, random_bytes(300_000, 3)).unwrap();
    let small = small.to_str().unwrap();
    let fresh = net.dir.path().join("keys").join("fresh.key");
    std::fs::write(
        &fresh,
        memo_core::Keypair::from_seed("devnet fresh").to_key_file(),
    )
    .unwrap();
    net.user_with_key("fresh", &fresh);
    let alice_config = std::fs::read_to_string(net.user("alice")).unwrap();
    let no_ledger: String = alice_config
        .lines()
        .filter(|l| !l.starts_with("ledger"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        no_ledger.len(),
        alice_config.len(),
        "alice's config names a ledger"
    );
    std::fs::write(net.user("alice-unpaid"), no_ledger).unwrap();
    let held = net.shard_files();
    for (user, why) in [("fresh", "balance 0"), ("alice-unpaid", "unpaid")] {
        let out = net.memo(user, &["put", small, "--name", "unpaid"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{user}: {err}");
        assert_eq!(net.shard_files(), held, "{user}'s uploads were withdrawn");
    }
    assert_eq!(net.json("fresh", &["ls"]), serde_json::json!([]));
    let listed = net.json("alice", &["ls"]);
    assert!(
        !listed.to_string().contains("\"unpaid\""),
        "the refused put is not listed: {listed}"
    );

    // A second owner of stored data pays its share: the unfunded key cannot claim Alice's
    // file, and Bob, who stores the same bytes, uploads nothing and co-owns every order.
    let paid = file.to_str().unwrap();
    let out = net.memo("fresh", &["put", paid, "--name", "dedup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("share"), "{err}");
    assert_eq!(net.json("fresh", &["ls"]), serde_json::json!([]));
    let bob_before = net.json("bob", &["account"])["balance"].as_u64().unwrap();
    let second = net.json("bob", &["put", paid]);
    assert_eq!(second["uploaded_chunks"], 0, "{second}");
    assert_eq!(
        second["shared"].as_array().unwrap().len(),
        orders.len(),
        "{second}"
    );
    let bob_after = net.json("bob", &["account"])["balance"].as_u64().unwrap();
    assert!(bob_after < bob_before, "Bob paid his share");

    // One user's three processes put at once: they share one ledger nonce sequence, and every
    // exit code tells the truth (each put succeeds, is listed, and made its orders).
    let files: Vec<String> = (0..3u8)
        .map(|i| {
            let f = net.dir.path().join(format!("concurrent-{i}.bin"));
            std::fs::write(&f, random_bytes(500_000, 10 + i)).unwrap();
            f.to_str().unwrap().to_string()
        })
        .collect();
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            net.command("alice")
                .args(["--json", "put", f, "--name", &format!("concurrent-{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let put: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!put["orders"].as_array().unwrap().is_empty(), "{put}");
    }
    let listed = net.json("alice", &["ls"]).to_string();
    for i in 0..3 {
        assert!(listed.contains(&format!("concurrent-{i}")), "{listed}");
    }

    // Within a few epochs (1 s each) the provider proves its shards and is paid.
    net.until(Duration::from_secs(60), "provider-0 was never paid", || {
        (provider_balance() > registered).then_some(())
    });
    assert_eq!(net.get("alice", put["id"].as_str().unwrap()), data);
}

/// A power cut in the middle of a put: every node and the devnet are SIGKILLed at once, then
/// the devnet is started again on the same directory. Acknowledged objects read back exactly,
/// the interrupted put is either whole or absent (no leaked usage), the ledger resumes, and new
/// puts work.
#[test]
fn a_power_cut_mid_put_loses_nothing_acknowledged() {
    let mut net = Devnet::start_with(6, 2, &["--epoch-secs", "2", "--block-ms", "200"]);
    let dir = net.dir.path().to_path_buf();
    let a = random_bytes(3 << 20, 11);
    std::fs::write(dir.join("a.bin"), &a).unwrap();
    let put_a = net.json("alice", &["put", dir.join("a.bin").to_str().unwrap()]);
    let usage_a = net.json("alice", &["account"])["stored_bytes"]
        .as_u64()
        .unwrap();

    // A bigger put in flight when the power goes.
    let b = random_bytes(40 << 20, 12);
    std::fs::write(dir.join("b.bin"), &b).unwrap();
    let mut put_b = net
        .command("alice")
        .args(["--json", "put"])
        .arg(dir.join("b.bin"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    net.crash_all();
    let _ = put_b.kill();
    let _ = put_b.wait();

    net.restart();
    // Acknowledged: exact bytes (and bob sees none of alice's objects).
    assert_eq!(net.get("alice", put_a["id"].as_str().unwrap()), a);
    assert!(net.json("bob", &["ls"]).as_array().unwrap().is_empty());
    // The interrupted put is whole or absent, and usage counts exactly what is listed.
    let listed = net.json("alice", &["ls"]);
    let listed = listed.as_array().unwrap();
    let usage = net.json("alice", &["account"])["stored_bytes"]
        .as_u64()
        .unwrap();
    eprintln!("after the cut: {} object(s) listed", listed.len());
    match listed.len() {
        1 => assert_eq!(usage, usage_a, "no references leaked by the cut put"),
        2 => {
            assert_eq!(net.get("alice", "b.bin"), b);
            assert!(usage > usage_a);
        }
        n => panic!("{n} objects listed after the cut: {listed:?}"),
    }
    // The network carries on: a new put is stored, read back and paid for.
    let c = random_bytes(2 << 20, 13);
    std::fs::write(dir.join("c.bin"), &c).unwrap();
    let put_c = net.json("bob", &["put", dir.join("c.bin").to_str().unwrap()]);
    assert!(!put_c["orders"].as_array().unwrap().is_empty(), "{put_c}");
    assert_eq!(net.get("bob", "c.bin"), c);
}

/// A devnet of 6 providers (one per shard of a chunk, so every put needs all of them) and
/// 1 keeper, where alice stored `doc` (1 MB, from `seed`); its bytes and provider-0's address.
fn six_providers_and_a_doc(seed: u8) -> (Devnet, Vec<u8>, String) {
    let net = Devnet::start(6, 1);
    let data = random_bytes(1_000_000, seed);
    let file = net.dir.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    net.json("alice", &["put", file.to_str().unwrap(), "--name", "doc"]);
    let before = net.node("provider-0")["listen"]
        .as_str()
        .unwrap()
        .to_string();
    (net, data, before)
}

/// Asserts that alice's `name` has every chunk fully healthy and reads back as `data`.
fn assert_whole(net: &Devnet, name: &str, data: &[u8]) {
    let stat = net.json("alice", &["stat", name]);
    assert!(
        stat["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["healthy"] == c["total"]),
        "{stat}"
    );
    assert_eq!(net.get("alice", name), data);
}

/// Starts the killed provider `name` again from its config (`memo node --config`, logging at
/// info to `NAME-TAG.log` in the devnet's dir); returns its process and its `node.json` once
/// it serves.
fn restart_provider(
    net: &Devnet,
    name: &str,
    tag: &str,
) -> (std::process::Child, serde_json::Value) {
    let data_dir = net.dir.path().join("nodes").join(name);
    let _ = std::fs::remove_file(data_dir.join("node.json"));
    let log = std::fs::File::create(net.dir.path().join(format!("{name}-{tag}.log"))).unwrap();
    let child = Command::new(MEMO)
        .env("RUST_LOG", "info")
        .args(["node", "--config"])
        .arg(net.dir.path().join("configs").join(format!("{name}.toml")))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = net.until(Duration::from_secs(30), "the provider restarts", || {
        let text = std::fs::read_to_string(data_dir.join("node.json")).ok()?;
        serde_json::from_str(&text).ok()
    });
    (child, ready)
}

/// A provider killed and started again from its config (which says port 0) comes back on the
/// address it had, so the keepers that know that address use it again: its shards count as
/// healthy, and nothing was repaired for them.
#[test]
fn a_restarted_provider_comes_back_on_its_address_and_is_used_again() {
    let (net, data, before) = six_providers_and_a_doc(9);
    net.kill("provider-0");
    let (mut again, ready) = restart_provider(&net, "provider-0", "again");
    assert_eq!(ready["listen"].as_str(), Some(before.as_str()));
    // Clients and keepers reach it at the address they know: with six providers for six
    // shards a chunk, a new put needs it (and would fail, finding no other room, if it had
    // come back elsewhere).
    let more = random_bytes(500_000, 10);
    let file2 = net.dir.path().join("more.bin");
    std::fs::write(&file2, &more).unwrap();
    net.json("alice", &["put", file2.to_str().unwrap(), "--name", "more"]);
    assert_whole(&net, "more", &more);
    assert_eq!(net.get("alice", "doc"), data);
    let repaired: u64 = net
        .repair_stats()
        .get("chunks_repaired")
        .copied()
        .unwrap_or(0);
    assert_eq!(repaired, 0, "nothing was repaired twice");
    let _ = again.kill();
    let _ = again.wait();
}

/// The keepers' Raft group on a devnet of separate processes: with 3 keepers the leader is
/// SIGKILLed while three users write. The next writes are accepted (a new leader is elected),
/// every acknowledged write is there once and reads are exact, and the keepers left agree.
#[test]
fn a_killed_group_leader_is_replaced_and_nothing_acknowledged_is_lost() {
    killed_keepers_lose_nothing(3, 1);
}

/// The same with 5 keepers, of which 2 are killed: the leader and another (not keeper-0).
#[test]
fn a_group_of_five_survives_two_killed_keepers() {
    killed_keepers_lose_nothing(5, 2);
}

/// A devnet of `keepers` keepers; after the first writes, `kill` of them are SIGKILLed, the
/// leader first.
fn killed_keepers_lose_nothing(keepers: usize, kill: usize) {
    let net = Devnet::start(6, keepers);
    let users = ["alice", "bob", "carol"];
    let write = |user: &str, i: usize| -> (String, Vec<u8>) {
        let name = format!("{user}-{i}");
        let data = random_bytes(50_000 + i * 7_000, i as u8);
        let path = net.dir.path().join(&name);
        std::fs::write(&path, &data).unwrap();
        net.json(user, &["put", path.to_str().unwrap(), "--name", &name]);
        (name, data)
    };
    let mut kept: Vec<(String, String, Vec<u8>)> = Vec::new();
    for u in users {
        for i in 0..2 {
            let (name, data) = write(u, i);
            kept.push((u.into(), name, data));
        }
    }
    let groups = net.json("alice", &["keepers"]);
    let leader = net.until(Duration::from_secs(30), "a leader", || {
        let g = net.json("alice", &["keepers"]);
        g.as_array()?
            .iter()
            .find_map(|k| k["leader"].as_str().map(String::from))
    });
    assert_eq!(groups.as_array().unwrap().len(), keepers, "{groups}");
    let height_before = net.ledger_height(&format!("keeper-{}", keepers - 1));
    // The leader builds the ledger's blocks, and keeper-0 is the node every config names
    // first for the ledger: both die (keeper-0 second when it does not lead).
    net.kill(&leader);
    let mut dead = vec![leader.clone()];
    for name in
        std::iter::once("keeper-0".to_string()).chain((1..keepers).map(|k| format!("keeper-{k}")))
    {
        if dead.len() < kill && !dead.contains(&name) {
            net.kill(&name);
            dead.push(name);
        }
    }
    let killed = std::time::Instant::now();
    // Writes and deletes go on through the keepers left.
    for u in users {
        for i in 2..4 {
            let (name, data) = write(u, i);
            if u == "alice" && i == 2 {
                println!("first write after the kill: {:?}", killed.elapsed());
            }
            kept.push((u.into(), name, data));
        }
        let gone = format!("{u}-0");
        net.json(u, &["rm", &gone]);
        kept.retain(|(_, name, _)| *name != gone);
    }
    for u in users {
        let listed: Vec<String> = net
            .json(u, &["ls"])
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect();
        let mut expected: Vec<String> = kept
            .iter()
            .filter(|(owner, _, _)| owner == u)
            .map(|(_, name, _)| name.clone())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "{u}'s objects, once each");
    }
    for (u, name, data) in &kept {
        assert_eq!(&net.get(u, name), data, "{u}: {name}");
    }
    // The ledger went on: the puts after the kill were paid (a put is admitted only once its
    // orders are on the ledger), and the new leader's blocks moved the chain on.
    let survivor = (0..keepers)
        .map(|k| format!("keeper-{k}"))
        .find(|k| !dead.contains(k))
        .unwrap();
    net.until(Duration::from_secs(30), "the ledger to move on", || {
        (net.ledger_height(&survivor) > height_before + 10).then_some(())
    });
    // The keepers left have a new leader and apply the same operations.
    net.until(Duration::from_secs(30), "the keepers left to agree", || {
        let g = net.json("alice", &["keepers"]);
        let live: Vec<&serde_json::Value> = g
            .as_array()?
            .iter()
            .filter(|k| k.get("error").is_none())
            .collect();
        let same = live.len() == keepers - kill
            && live
                .iter()
                .all(|k| k["leader"] == live[0]["leader"] && k["ops"] == live[0]["ops"])
            && live[0]["leader"]
                .as_str()
                .is_some_and(|l| !dead.iter().any(|d| d == l));
        same.then_some(())
    });
}

/// `kill -9` a client in the middle of a put: what it uploaded becomes orphans, which the
/// providers reclaim once their placement tickets expire (6 s here, plus a 3 s grace), so the
/// providers' shard files return to what they were before. Nothing of the killed put is
/// listed, and a put afterwards works.
#[test]
fn a_killed_client_leaves_no_orphans_past_its_tickets() {
    let net = Devnet::start_with(6, 1, &["--ticket-secs", "6"]);
    let small = net.dir.path().join("small.bin");
    std::fs::write(&small, random_bytes(200_000, 4)).unwrap();
    net.json("alice", &["put", small.to_str().unwrap()]);
    let baseline = net.shard_files();
    let big = net.dir.path().join("big.bin");
    std::fs::write(&big, random_bytes(256 << 20, 5)).unwrap();
    let mut put = net
        .command("alice")
        .args(["put", big.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    net.until(Duration::from_secs(60), "the put to upload shards", || {
        (net.shard_files() >= baseline + 24).then_some(())
    });
    put.kill().unwrap();
    put.wait().unwrap();
    let orphans = net.shard_files().saturating_sub(baseline);
    let names: Vec<String> = net
        .json("alice", &["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["small.bin"], "the killed put is not listed");
    net.until(
        Duration::from_secs(90),
        "the orphans to be reclaimed",
        || (net.shard_files() == baseline).then_some(()),
    );
    println!(
        "{orphans} orphan shard files reclaimed {:.1} s after the put started",
        started.elapsed().as_secs_f64()
    );
    let again = net.dir.path().join("again.bin");
    let data = random_bytes(300_000, 6);
    std::fs::write(&again, &data).unwrap();
    net.json("alice", &["put", again.to_str().unwrap()]);
    assert_eq!(net.get("alice", "again.bin"), data);
}

/// Unmounts a test's tmpfs when dropped (lazily: the devnet's processes may still hold it).
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` on `dir`; whether it worked (it needs root, and a container that
/// allows mounts; CI runs as root).
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Bytes in the files under `dir`, at any depth.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

/// One provider's data directory on a 12 MiB tmpfs, among 8 providers: every put of 10 × 16 MiB
/// succeeds, the small provider takes data shards (1 MiB) until its disk is full (less than
/// its 4 MiB reserve and a shard free) and none after (only manifests'
/// shards of a few hundred bytes still fit), and the others take the
/// rest. Needs to mount a tmpfs (root; CI runs as root); where it cannot, it says so and
/// checks nothing.
#[test]
fn a_provider_on_a_full_disk_gets_nothing_more_and_puts_go_on() {
    let probe = tempfile::tempdir().unwrap();
    if !mount_tmpfs(probe.path(), "1m") {
        eprintln!("skipped: this process cannot mount a tmpfs (it needs root)");
        return;
    }
    drop(Tmpfs(probe.path().to_path_buf()));
    let mut mount = None;
    let net = Devnet::start_prepared(8, 1, &[], |dir| {
        let data = dir.join("nodes").join("provider-0");
        std::fs::create_dir_all(&data).unwrap();
        assert!(
            mount_tmpfs(&data, "12m"),
            "mount tmpfs on {}",
            data.display()
        );
        mount = Some(Tmpfs(data));
    });
    let _mount = mount;
    let shard_bytes = |name: &str| {
        dir_bytes(
            &net.dir
                .path()
                .join("nodes")
                .join(name)
                .join("shards")
                .join("shards"),
        )
    };
    const MIB: u64 = 1 << 20;
    let mut small = Vec::new();
    let mut full_at = None;
    for i in 0..10u8 {
        let path = net.dir.path().join(format!("f{i}.bin"));
        std::fs::write(&path, random_bytes(16 << 20, 40 + i)).unwrap();
        let out = net.memo("alice", &["put", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "put {i} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            net.diagnostics()
        );
        // Full: less room left on the tmpfs than the reserve a provider keeps free and one
        // data shard (1 MiB and a few bytes).
        let df = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(net.dir.path().join("nodes").join("provider-0"))
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&df.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's answer");
        if full_at.is_none() && avail < memo_core::ownership::DISK_RESERVE + MIB {
            full_at = Some(small.len());
        }
        small.push(shard_bytes("provider-0"));
    }
    let others: Vec<u64> = (1..8)
        .map(|p| shard_bytes(&format!("provider-{p}")) / MIB)
        .collect();
    println!(
        "provider-0 (12 MiB tmpfs), KiB of shards after each put: {:?}; the others, MiB: {others:?}",
        small.iter().map(|b| b / 1024).collect::<Vec<_>>()
    );
    let full_at = full_at.expect("the small provider filled up");
    assert!(full_at < 8, "it filled up early enough to check: {full_at}");
    assert!(
        small[9] - small[full_at] < 64 * 1024,
        "once full, the small provider took no data shard"
    );
    assert!(
        others.iter().all(|mib| *mib > 12),
        "the others took the rest: {others:?}"
    );
    assert_eq!(
        net.get("alice", "f9.bin"),
        random_bytes(16 << 20, 49),
        "the last put reads back"
    );
}

/// A provider restarted while another process holds its old port comes back on a new one. It
/// announces the new address on the ledger; keepers (from the ledger) and clients (from a
/// keeper's directory) use it: a put that needs every provider succeeds, all its chunks
/// healthy, and reads back.
#[test]
fn a_provider_back_on_a_new_address_announces_it_and_is_used() {
    let (net, data, before) = six_providers_and_a_doc(11);
    let port: u16 = before.rsplit('/').next().unwrap().parse().unwrap();
    net.kill("provider-0");
    // Someone else takes the port meanwhile.
    let _squatter = net.until(Duration::from_secs(30), "the old port to be free", || {
        std::net::TcpListener::bind(("127.0.0.1", port)).ok()
    });
    let (mut again, ready) = restart_provider(&net, "provider-0", "moved");
    let now = ready["listen"].as_str().unwrap().to_string();
    assert_ne!(now, before, "it came back elsewhere");
    // With six providers for six shards a chunk, a put needs it.
    let more = random_bytes(500_000, 12);
    let file2 = net.dir.path().join("more.bin");
    std::fs::write(&file2, &more).unwrap();
    let started = std::time::Instant::now();
    net.until(
        Duration::from_secs(60),
        "a put that needs the moved provider",
        || {
            net.memo("alice", &["put", file2.to_str().unwrap(), "--name", "more"])
                .status
                .success()
                .then_some(())
        },
    );
    println!(
        "moved from {before} to {now}; a put reached it {:.1} s after its restart",
        started.elapsed().as_secs_f64()
    );
    assert_whole(&net, "more", &more);
    assert_eq!(net.get("alice", "doc"), data);
    let log = std::fs::read_to_string(net.dir.path().join("provider-0-moved.log")).unwrap();
    assert!(
        log.contains("announced this node's new address"),
        "the provider announced its address: {log}"
    );
    net.until(
        Duration::from_secs(30),
        "the keeper to take the new address from the ledger",
        || {
            net.keeper_logs()
                .contains("a peer announced a new address")
                .then_some(())
        },
    );
    let _ = again.kill();
    let _ = again.wait();
}

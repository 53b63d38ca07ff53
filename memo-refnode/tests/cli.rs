//! The command line as a person uses it: the real `memo` binary against a devnet of real
//! processes. Each check covers the behaviour, the message and the exit code.

mod common;

use common::{Devnet, MEMO};
use memo_core::testkit::random_bytes;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts `o` failed with exit code `code` and `needle` in its stderr.
fn fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "wanted {needle:?} in: {}",
        stderr(o)
    );
}

/// The names `memo --json ls` lists, sorted, with their object ids.
fn listed(net: &Devnet, user: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in net.json(user, &["ls"]).as_array().unwrap() {
        for n in o["names"].as_array().unwrap() {
            out.push((
                n.as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn names_references_and_removal_say_what_they_do() {
    // 6 providers = k + m: the devnet says it cannot repair.
    let net = Devnet::start(6, 1);
    let err = std::fs::read_to_string(net.dir.path().join("devnet.err")).unwrap();
    assert!(err.contains("cannot repair"), "{err}");

    let data = random_bytes(300_000, 7);
    let file = net.dir.path().join("a.bin");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();

    // A second name is kept: listed, resolvable, and removable on its own.
    let put = net.memo("alice", &["put", file]);
    assert!(put.status.success(), "{}", stderr(&put));
    let id = stdout(&put).trim().to_string();
    assert_eq!(id.len(), 64);
    // The share handle is printed on put.
    let handle = stderr(&put)
        .lines()
        .find_map(|l| l.strip_prefix("share: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no share line: {}", stderr(&put)));
    assert!(handle.starts_with("memo-obj1:"), "{handle}");
    // Not a terminal: no progress bar in the output.
    assert!(
        !stderr(&put).contains('\r') && !stderr(&put).contains("ETA"),
        "{}",
        stderr(&put)
    );
    let second = net.memo("alice", &["put", file, "--name", "other"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        listed(&net, "alice"),
        vec![("a.bin".into(), id.clone()), ("other".into(), id.clone())]
    );
    let ls = net.memo("alice", &["ls"]);
    let text = stdout(&ls);
    assert!(text.starts_with("ID"), "a header: {text}");
    assert!(text.contains("other") && text.contains("a.bin"), "{text}");
    assert_eq!(net.get("alice", "other"), data);
    assert_eq!(net.get("alice", "a.bin"), data);
    let stat = net.json("alice", &["stat", "other"]);
    assert_eq!(stat["refs"], 2);

    // memo share prints the same handle, and another user reads the object with it.
    let share = net.memo("alice", &["share", "other"]);
    assert!(share.status.success(), "{}", stderr(&share));
    assert_eq!(stdout(&share).trim(), handle);
    let by_bob = net.memo("bob", &["get", &handle]);
    assert!(by_bob.status.success(), "{}", stderr(&by_bob));
    assert_eq!(by_bob.stdout, data);

    // rm NAME drops that name's reference; the other name still works.
    let rm = net.memo("alice", &["rm", "a.bin"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(
        stderr(&rm).contains("named a.bin") && stderr(&rm).contains("you hold 1 more"),
        "{}",
        stderr(&rm)
    );
    assert_eq!(listed(&net, "alice"), vec![("other".into(), id.clone())]);
    fails(
        &net.memo("alice", &["get", "a.bin"]),
        1,
        "no object named a.bin",
    );
    assert_eq!(net.get("alice", "other"), data);

    // Bob stores it too: alice's last rm releases it, bob's purges it.
    assert!(net.memo("bob", &["put", file]).status.success());
    let rm = net.json("alice", &["rm", "other"]);
    assert_eq!(
        (rm["outcome"].as_str(), rm["refs_left"].as_u64()),
        (Some("released"), Some(0))
    );
    let rm = net.memo("bob", &["rm", "a.bin"]);
    assert!(rm.status.success());
    assert!(
        stderr(&rm).contains("purged from every provider"),
        "{}",
        stderr(&rm)
    );
    net.until(Duration::from_secs(30), "shards were not purged", || {
        (net.shard_files() == 0).then_some(())
    });

    // A user with no objects is told so.
    let ls = net.memo("carol", &["ls"]);
    assert!(ls.status.success());
    assert!(stdout(&ls).is_empty());
    assert!(stderr(&ls).contains("no objects"), "{}", stderr(&ls));
    assert_eq!(net.json("carol", &["ls"]), Value::Array(vec![]));

    // Standard input and output.
    let mut put = net
        .command("alice")
        .args(["put", "-", "--name", "piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    put.stdin.take().unwrap().write_all(b"from a pipe").unwrap();
    let put = put.wait_with_output().unwrap();
    assert!(put.status.success(), "{}", stderr(&put));
    let got = net.memo("alice", &["get", "piped", "-o", "-"]);
    assert_eq!(got.stdout, b"from a pipe");
    fails(&net.memo("alice", &["put", "-"]), 1, "--name");
}

#[test]
fn errors_name_the_path_and_speak_json() {
    let net = Devnet::start(8, 1);
    let dir = net.dir.path();
    let file = dir.join("b.bin");
    std::fs::write(&file, random_bytes(100_000, 3)).unwrap();
    assert!(
        net.memo("alice", &["put", file.to_str().unwrap()])
            .status
            .success()
    );

    // -q: only the result on stdout, nothing on stderr.
    let quiet = net.memo("alice", &["-q", "put", file.to_str().unwrap()]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet).trim().len(), 64);
    // Sizes for people by default, exact with --bytes.
    let ls = stdout(&net.memo("alice", &["ls"]));
    assert!(ls.contains("97.7 KiB"), "{ls}");
    let ls = stdout(&net.memo("alice", &["--bytes", "ls"]));
    assert!(ls.contains("100000"), "{ls}");

    // get -o DIR and put DIR name the user's path.
    let d = dir.join("somedir");
    std::fs::create_dir(&d).unwrap();
    let d = d.to_str().unwrap();
    fails(
        &net.memo("alice", &["get", "b.bin", "-o", d]),
        1,
        &format!("cannot write to {d}: it is a directory"),
    );
    fails(
        &net.memo("alice", &["put", d]),
        1,
        &format!("{d} is a directory"),
    );
    let missing = dir.join("nope").join("x.bin");
    fails(
        &net.memo("alice", &["get", "b.bin", "-o", missing.to_str().unwrap()]),
        1,
        "does not exist",
    );

    // A failed get -o leaves neither the file nor its partial file.
    let out = dir.join("out.bin");
    fails(
        &net.memo("alice", &["get", "no-such", "-o", out.to_str().unwrap()]),
        1,
        "no object named no-such",
    );
    assert!(!out.exists());
    assert_no_partial(dir);

    // With --json an error is one JSON object on stdout, with its kind and a hint.
    let o = net.memo("alice", &["--json", "get", "no-such"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "not_found");
    assert!(v["error"].as_str().unwrap().contains("no-such"), "{v}");
    assert!(v["hint"].is_string(), "{v}");

    // Empty files are stored and read back.
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let put = net.json("alice", &["put", empty.to_str().unwrap()]);
    assert_eq!(put["size"], 0);
    assert_eq!(net.get("alice", "empty.bin"), b"");

    // Directory trees: put -r names every file PREFIX/path; get -r writes them back.
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub").join("deeper")).unwrap();
    std::fs::write(tree.join("a.txt"), b"one").unwrap();
    std::fs::write(tree.join("sub").join("b.bin"), random_bytes(200_000, 9)).unwrap();
    std::fs::write(tree.join("sub").join("deeper").join("empty"), b"").unwrap();
    fails(
        &net.memo("alice", &["put", tree.to_str().unwrap()]),
        1,
        "put -r stores the tree",
    );
    let put = net.json("alice", &["put", "-r", tree.to_str().unwrap()]);
    let names: Vec<&str> = put
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["tree/a.txt", "tree/sub/b.bin", "tree/sub/deeper/empty"]
    );
    let back = dir.join("back");
    let got = net.json(
        "alice",
        &["get", "-r", "tree", "-o", back.to_str().unwrap()],
    );
    assert_eq!(got["files"], 3);
    for rel in ["a.txt", "sub/b.bin", "sub/deeper/empty"] {
        assert_eq!(
            std::fs::read(back.join(rel)).unwrap(),
            std::fs::read(tree.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_no_partial(&back.join("sub"));
    fails(
        &net.memo(
            "alice",
            &["get", "-r", "nothing", "-o", back.to_str().unwrap()],
        ),
        1,
        "no object named nothing/",
    );

    // A usage error with --json is JSON too, with clap's exit code 2.
    let o = net.memo("alice", &["--json", "get"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "usage");
    assert!(v["error"].as_str().unwrap().contains("WHAT"), "{v}");

    // A keeper that is gone: a hint to check the devnet.
    net.kill("keeper-0");
    let o = net.memo("alice", &["ls"]);
    fails(&o, 1, "no keeper reachable");
    assert!(
        stderr(&o).contains("is the devnet running?"),
        "{}",
        stderr(&o)
    );
    let o = net.memo("alice", &["--json", "ls"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "unreachable");
}

/// No `.NAME.memo-partial` files in `dir`.
fn assert_no_partial(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".memo-partial"))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

#[test]
fn an_interrupted_get_that_wrote_nothing_leaves_no_partial_file() {
    let net = Devnet::start(6, 1);
    let dir = net.dir.path();
    let file = dir.join("c.bin");
    std::fs::write(&file, random_bytes(2_000_000, 5)).unwrap();
    assert!(
        net.memo("alice", &["put", file.to_str().unwrap()])
            .status
            .success()
    );

    // Every provider paused: the get waits on its shards with its partial file open.
    let providers: Vec<String> = (0..6)
        .map(|i| net.node(&format!("provider-{i}"))["pid"].to_string())
        .collect();
    signal("-STOP", &providers);
    let out = dir.join("copy.bin");
    let partial = dir.join(".copy.bin.memo-partial");
    let mut get = net
        .command("alice")
        .args(["get", "c.bin", "-o"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !partial.exists() {
        assert!(
            get.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the get never created its partial file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal("-INT", &[get.id().to_string()]);
    let o = get.wait_with_output().unwrap();
    signal("-CONT", &providers);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(!out.exists());
    assert_no_partial(dir);
    // And once the providers are back, the get works.
    assert_eq!(net.get("alice", "c.bin").len(), 2_000_000);
}

#[test]
fn a_get_resumes_after_the_verified_part_of_its_partial_file() {
    // 256 KiB chunks: a 1 MB object has 4.
    let net = Devnet::start_with(6, 1, &["--chunk-size", "262144"]);
    let dir = net.dir.path();
    let data = random_bytes(1_000_000, 8);
    let file = dir.join("d.bin");
    std::fs::write(&file, &data).unwrap();
    assert!(
        net.memo("alice", &["put", file.to_str().unwrap()])
            .status
            .success()
    );
    let out = dir.join("copy.bin");
    let partial = dir.join(".copy.bin.memo-partial");

    // The first chunk as an interrupted get left it, then bytes that are not the object's.
    let mut planted = data[..262_144].to_vec();
    planted.extend_from_slice(&[0u8; 5000]);
    std::fs::write(&partial, &planted).unwrap();
    let o = net.memo("alice", &["get", "d.bin", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming") && stderr(&o).contains("256.0 KiB already verified"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(!partial.exists());

    // A partial file of other bytes altogether: read from the start.
    std::fs::write(&partial, vec![7u8; 300_000]).unwrap();
    let o = net.memo("alice", &["get", "d.bin", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("resuming"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(!partial.exists());
}

fn signal(sig: &str, pids: &[String]) {
    let ok = Command::new("kill")
        .arg(sig)
        .args(pids)
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pids:?}");
}

#[test]
fn config_options_do_not_clash() {
    // The global --config is not offered where it means nothing.
    let help = Command::new(MEMO)
        .args(["devnet", "--help"])
        .output()
        .unwrap();
    let help = stdout(&help);
    assert!(!help.contains("--config"), "{help}");
    assert!(help.contains("[default: 8]"), "{help}");
    assert!(help.contains("repair"), "{help}");
    // MEMO_CONFIG does not make devnet ask for anything: it fails on its own argument.
    let o = Command::new(MEMO)
        .env("MEMO_CONFIG", "/nonexistent/alice.toml")
        .args(["devnet", "--dir", "/nonexistent/dir", "--providers", "2"])
        .output()
        .unwrap();
    fails(&o, 1, "--providers must be at least");
    // `memo --config FILE node` reads FILE as the node config.
    let o = Command::new(MEMO)
        .env_remove("MEMO_NODE_CONFIG")
        .args(["--config", "/nonexistent/node.toml", "node"])
        .output()
        .unwrap();
    fails(&o, 1, "/nonexistent/node.toml");
    // Client commands take --config before or after the command.
    for args in [
        &["--config", "/nonexistent/c.toml", "ls"][..],
        &["ls", "--config", "/nonexistent/c.toml"][..],
    ] {
        let o = Command::new(MEMO)
            .env_remove("MEMO_CONFIG")
            .args(args)
            .output()
            .unwrap();
        fails(&o, 1, "/nonexistent/c.toml");
    }
    let o = Command::new(MEMO)
        .args(["--config", "x.toml", "demo"])
        .output()
        .unwrap();
    fails(&o, 1, "demo and devnet write their own configs");
}

#[test]
fn completions_and_man_page() {
    let o = Command::new(MEMO)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    assert!(
        script.contains("_memo") && script.contains("share"),
        "{script}"
    );
    let o = Command::new(MEMO)
        .args(["completions", "nushell-9"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let o = Command::new(MEMO).arg("man").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(".TH memo"), "{}", stdout(&o));
    // --version names the commit.
    let o = Command::new(MEMO).arg("--version").output().unwrap();
    assert!(stdout(&o).contains("(commit "), "{}", stdout(&o));
    // memo key creates a key file once, then shows the same account.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("me.key");
    let first = Command::new(MEMO).arg("key").arg(&file).output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("created"), "{}", stderr(&first));
    let account = stdout(&first).trim().to_string();
    assert_eq!(account.len(), 64);
    let again = Command::new(MEMO)
        .args(["--json", "key"])
        .arg(&file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (v["account"].as_str(), v["created"].as_bool()),
        (Some(account.as_str()), Some(false))
    );
    std::fs::write(&file, "secret = 1\n").unwrap();
    fails(
        &Command::new(MEMO).arg("key").arg(&file).output().unwrap(),
        1,
        "me.key",
    );
    // -k and -m are short options of devnet and demo.
    let help = Command::new(MEMO)
        .args(["demo", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&help).contains("-k, --k"), "{}", stdout(&help));
}

/// `memo init --keeper ACCOUNT@ADDR` writes a config that names keepers only: every keeper
/// (from the one given's directory) and the ledger. With a funded key, puts and gets work
/// through it, the providers' addresses coming from the keepers. A fresh key gets a config
/// too, and its put is refused as unpaid. An existing config is kept unless --force.
#[test]
fn init_from_one_keeper_address_finds_the_rest() {
    let net = Devnet::start(6, 3);
    let k1 = net.node("keeper-1");
    let spec = format!(
        "{}@{}",
        k1["account"].as_str().unwrap(),
        k1["listen"].as_str().unwrap()
    );
    let dir = net.dir.path().join("init");
    let config = dir.join("alice.toml");
    let alice_key = net.dir.path().join("keys").join("user-alice.key");
    let o = Command::new(MEMO)
        .args(["--json", "init", "--keeper", &spec, "--key"])
        .arg(&alice_key)
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["key_created"], false);
    assert_eq!(out["keepers"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(out["providers_known"], 6, "{out}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(!written.contains("provider"), "keepers only: {written}");
    assert!(written.contains("ledger"), "{written}");

    let data = random_bytes(300_000, 9);
    let file = dir.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let memo = |args: &[&str]| {
        Command::new(MEMO)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let o = memo(&["put", file.to_str().unwrap(), "--name", "via-init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = dir.join("back.bin");
    let o = memo(&["get", "via-init", "-o", back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Again: the config exists.
    let again = Command::new(MEMO)
        .args(["init", "--keeper", &spec])
        .arg(&config)
        .output()
        .unwrap();
    fails(&again, 1, "--force");

    // A fresh key: a config and a key file are written; nothing is paid, so a put is refused.
    let fresh = dir.join("fresh.toml");
    let o = Command::new(MEMO)
        .args(["init", "--keeper", &spec])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote"), "{}", stdout(&o));
    assert!(dir.join("fresh.key").exists());
    let other = dir.join("other.bin");
    std::fs::write(&other, random_bytes(100_000, 10)).unwrap();
    let o = Command::new(MEMO)
        .arg("--config")
        .arg(&fresh)
        .args(["put", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // A keeper that does not answer: the error says where and what to check.
    let o = Command::new(MEMO)
        .args(["init", "--keeper"])
        .arg(format!(
            "{}@/ip4/127.0.0.1/tcp/1",
            k1["account"].as_str().unwrap()
        ))
        .arg(dir.join("nobody.toml"))
        .output()
        .unwrap();
    fails(&o, 1, "/ip4/127.0.0.1/tcp/1");
    assert!(!dir.join("nobody.toml").exists());
}

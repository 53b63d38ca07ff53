//! The devnet harness the end-to-end tests (and the devnet benchmarks) share: the real `memo`
//! binary, every node its own process, on loopback, in a temporary directory.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MEMO: &str = env!("CARGO_BIN_EXE_memo");

pub struct Devnet {
    pub child: Child,
    pub dir: tempfile::TempDir,
    /// The `memo devnet` arguments after `--users`, for [`Devnet::restart`].
    args: Vec<String>,
}

impl Devnet {
    /// A devnet of `providers` providers and `keepers` keepers with users alice, bob, carol.
    pub fn start(providers: usize, keepers: usize) -> Devnet {
        Self::start_with(providers, keepers, &[])
    }

    /// Like [`Devnet::start`], with more `memo devnet` arguments.
    pub fn start_with(providers: usize, keepers: usize, extra: &[&str]) -> Devnet {
        Self::start_prepared(providers, keepers, extra, |_| {})
    }

    /// Like [`Devnet::start_with`], after `prepare` ran on the devnet's (empty) directory.
    pub fn start_prepared(
        providers: usize,
        keepers: usize,
        extra: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Devnet {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut args: Vec<String> = vec![
            "--providers".into(),
            providers.to_string(),
            "--keepers".into(),
            keepers.to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let child = spawn_devnet(dir.path(), &args);
        let mut net = Devnet { child, dir, args };
        net.wait_ready("come up");
        net
    }

    /// Waits up to 60 s until the devnet wrote `devnet.json`; panics with "devnet did not
    /// {what}" if it exits or takes longer.
    fn wait_ready(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dir.path().join("devnet.json").exists() {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "devnet did not {what} ({exited:?}): {}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn user(&self, name: &str) -> PathBuf {
        self.dir.path().join("users").join(format!("{name}.toml"))
    }

    /// Writes a client config `name` that is alice's with the key file `key` instead, so
    /// [`Devnet::memo`] and [`Devnet::json`] can act as `name`.
    pub fn user_with_key(&self, name: &str, key: &Path) {
        let alice = std::fs::read_to_string(self.user("alice")).unwrap();
        let key_line = alice.lines().find(|l| l.starts_with("key_file")).unwrap();
        let line = format!("key_file = {:?}", key.display().to_string());
        std::fs::write(self.user(name), alice.replace(key_line, &line)).unwrap();
    }

    /// A `memo` command acting as `user` (its client config in `MEMO_CONFIG`).
    pub fn command(&self, user: &str) -> Command {
        let mut cmd = Command::new(MEMO);
        cmd.env("MEMO_CONFIG", self.user(user));
        cmd
    }

    pub fn memo(&self, user: &str, args: &[&str]) -> Output {
        self.command(user).args(args).output().unwrap()
    }

    pub fn json(&self, user: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.memo(user, &all);
        assert!(
            out.status.success(),
            "memo {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `user`'s `memo get WHAT -o FILE` (which must succeed), and the bytes it wrote.
    pub fn get(&self, user: &str, what: &str) -> Vec<u8> {
        let out = self
            .dir
            .path()
            .join(format!("{user}-{}.out", what.replace('/', "_")));
        self.json(user, &["get", what, "-o", out.to_str().unwrap()]);
        let got = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        got
    }

    /// Shard files held by all nodes: files at shard paths, not the store's temporaries or
    /// the emptied files it keeps for reuse.
    pub fn shard_files(&self) -> usize {
        let mut n = 0;
        let nodes = self.dir.path().join("nodes");
        for node in std::fs::read_dir(nodes).unwrap().flatten() {
            n += count_files(&node.path().join("shards").join("shards"));
        }
        n
    }
}

/// Spawns `memo devnet --dir DIR --users alice,bob,carol ARGS`, its stderr in `DIR/devnet.err`.
fn spawn_devnet(dir: &Path, args: &[String]) -> Child {
    Command::new(MEMO)
        .args(["devnet", "--dir"])
        .arg(dir)
        .args(["--users", "alice,bob,carol"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("devnet.err")).unwrap())
        .spawn()
        .unwrap()
}

/// The files under `dir` whose names do not start with a dot, at any depth.
pub fn count_files(dir: &Path) -> usize {
    let mut files = Vec::new();
    list_files(dir, &mut files);
    files.len()
}

impl Drop for Devnet {
    fn drop(&mut self) {
        // SIGTERM lets the devnet stop its nodes.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Devnet {
    /// The devnet's stderr and the tail of every node's log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out =
            std::fs::read_to_string(self.dir.path().join("devnet.err")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                out.push_str(&format!("\n--- {}:\n", e.file_name().to_string_lossy()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// `devnet.json`.
    pub fn info(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("devnet.json")).unwrap())
            .unwrap()
    }

    /// The entries of `nodes` in `devnet.json`.
    fn nodes(&self) -> Vec<Value> {
        self.info()["nodes"].as_array().unwrap().clone()
    }

    /// The entry of node `name` in `devnet.json`.
    pub fn node(&self, name: &str) -> Value {
        self.nodes()
            .into_iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The ledger's height as node `name` sees it (its `/health`).
    pub fn ledger_height(&self, name: &str) -> u64 {
        let url = self.node(name)["status"].as_str().unwrap().to_string();
        let health: Value = serde_json::from_str(&http_get(&format!("{url}health")).1).unwrap();
        health["ledger_height"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no ledger height: {health}"))
    }

    /// Every node's pid, from `devnet.json`.
    pub fn pids(&self) -> Vec<u64> {
        self.nodes()
            .iter()
            .map(|n| n["pid"].as_u64().unwrap())
            .collect()
    }

    /// Kills node `name` with SIGKILL and waits until its process is gone.
    pub fn kill(&self, name: &str) {
        let pid = self.node(name)["pid"].as_u64().unwrap();
        assert!(sigkill(pid));
        wait_gone(pid, Instant::now() + Duration::from_secs(10), name);
    }

    /// A power cut: SIGKILLs the devnet process and every node at once (no shutdown, no
    /// flush), and waits until they are gone.
    pub fn crash_all(&mut self) {
        let pids = self.pids();
        let _ = self.child.kill();
        for &pid in &pids {
            sigkill(pid);
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        for pid in pids {
            wait_gone(pid, deadline, &format!("node {pid}"));
        }
    }

    /// Starts `memo devnet` again on the same directory (same keys, data and ledger) with the
    /// arguments it was started with, and waits until it is ready.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("devnet.json"));
        self.child = spawn_devnet(self.dir.path(), &self.args);
        self.wait_ready("come back");
    }

    /// The shard files of provider `name`.
    pub fn shard_paths(&self, name: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        list_files(
            &self
                .dir
                .path()
                .join("nodes")
                .join(name)
                .join("shards")
                .join("shards"),
            &mut out,
        );
        out
    }

    /// Polls `f` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
    pub fn until<T>(&self, limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
        poll(limit, f).unwrap_or_else(|| panic!("timed out after {limit:?}: {what}"))
    }

    /// The text of every keeper's log.
    pub fn keeper_logs(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.dir.path().join("logs"))
            .unwrap()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("keeper-") {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        all
    }

    /// Every keeper's repair counters (`DATA_DIR/repair.json`), summed by key.
    pub fn repair_stats(&self) -> std::collections::BTreeMap<String, u64> {
        let mut sum = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(self.dir.path().join("nodes"))
            .unwrap()
            .flatten()
        {
            let Ok(text) = std::fs::read(e.path().join("repair.json")) else {
                continue;
            };
            let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&text) else {
                continue;
            };
            for (k, v) in m {
                *sum.entry(k).or_insert(0) += v.as_u64().unwrap_or(0);
            }
        }
        sum
    }
}

/// Sends SIGKILL to process `pid`; true if `kill` succeeded.
fn sigkill(pid: u64) -> bool {
    Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until process `pid` is gone (or a zombie); panics with "{what} did not die" after
/// `deadline`.
fn wait_gone(pid: u64, deadline: Instant, what: &str) {
    while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        assert!(Instant::now() < deadline, "{what} did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            list_files(&p, out);
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
}

/// GET `url` (`http://HOST:PORT/PATH`): the status code and the body.
pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

/// Asks `f` every 200 ms until it gives a value (returned) or `limit` passes (`None`): for
/// conditions outside this process, which nothing signals.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! Put latency as a user sees it: the `memo` command line against a devnet of real processes,
//! one process per command, for small files, a tree of small files (`put -r`, several files at
//! once) and one 64 MiB file, at each block time asked for (a put waits for one ledger block:
//! its storage orders).
//!
//! In the same run, the same operations against Tahoe-LAFS on this machine, when its `tahoe`
//! command is found (`MEMO_BENCH_TAHOE=/path/to/tahoe`, else `tahoe` on the PATH; `pip install
//! tahoe-lafs`): an introducer, 10 storage nodes and a client gateway on loopback, with k = 4,
//! n = 6 like memo's, each command one `tahoe` process as a user runs it.
//!
//! Then, at the last block time, large objects (`MEMO_BENCH_BIG_MIB=1024`, MiB, comma-separated;
//! empty for none): put and get through the CLI, and a get of the same object by an SDK client in
//! this process (the devnet bench's get), against Tahoe-LAFS's put and get of the same size.
//!
//! `cargo bench -p memo-refnode --bench latency` (block times in ms: `MEMO_BENCH_BLOCK_MS=500,100`;
//! small puts per block time: `MEMO_BENCH_PUTS=15`).

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use common::random;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Files in the tree stored with one `put -r`.
const TREE: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let blocks: Vec<u64> = std::env::var("MEMO_BENCH_BLOCK_MS")
        .unwrap_or_else(|_| "500,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let puts: usize = common::env("MEMO_BENCH_PUTS").unwrap_or(15);
    println!("CLI latency on a devnet: 3 keepers (Raft group), 10 providers, k = 4, m = 2");
    println!(
        "| block | 1 KiB put: median (min–max) | put -r of {TREE} 1 KiB files | 64 MiB put | 64 MiB get |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let bigs: Vec<usize> = std::env::var("MEMO_BENCH_BIG_MIB")
        .unwrap_or_else(|_| "1024".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Per large size: CLI put, CLI get and SDK get seconds.
    let mut large: Vec<(usize, f64, f64, f64)> = Vec::new();
    let last = blocks.len().saturating_sub(1);
    for (round, block_ms) in blocks.into_iter().enumerate() {
        let ms = block_ms.to_string();
        let net = harness::Devnet::start_with(10, 3, &["--block-ms", &ms]);
        let dir = net.dir.path();
        let run = |args: &[&str]| -> Result<f64, Box<dyn std::error::Error>> {
            let t = Instant::now();
            let out = net.memo("alice", args);
            let secs = t.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(
                    format!("memo {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
            Ok(secs)
        };
        let warm = dir.join("warm.bin");
        std::fs::write(&warm, random(1024, 1))?;
        run(&["put", warm.to_str().unwrap_or_default(), "--name", "warm"])?;
        let mut small = Vec::with_capacity(puts);
        for i in 0..puts {
            let f = dir.join(format!("small-{i}.bin"));
            std::fs::write(&f, random(1024, 100 + i as u64))?;
            small.push(run(&["put", f.to_str().unwrap_or_default()])?);
        }
        small.sort_by(f64::total_cmp);
        let tree = dir.join("tree");
        std::fs::create_dir_all(&tree)?;
        for i in 0..TREE {
            std::fs::write(tree.join(format!("f{i}")), random(1024, 1_000 + i as u64))?;
        }
        let tree_put = run(&["put", "-r", tree.to_str().unwrap_or_default()])?;
        let big = dir.join("big.bin");
        std::fs::write(&big, random(64 << 20, 7))?;
        let put = run(&["put", big.to_str().unwrap_or_default(), "--name", "big"])?;
        let out = dir.join("big.out");
        let get = run(&["get", "big", "-o", out.to_str().unwrap_or_default()])?;
        row(&format!("{block_ms} ms"), &small, tree_put, "", put, get);
        if round == last {
            for &mib in &bigs {
                let f = dir.join(format!("big-{mib}.bin"));
                std::fs::write(&f, random(mib << 20, 11 + mib as u64))?;
                let name = format!("big-{mib}");
                let put = run(&["put", f.to_str().unwrap_or_default(), "--name", &name])?;
                std::fs::remove_file(&f)?;
                let out = dir.join(format!("big-{mib}.out"));
                let get = run(&["get", &name, "-o", out.to_str().unwrap_or_default()])?;
                let got = std::fs::metadata(&out)?.len();
                std::fs::remove_file(&out)?;
                if got != (mib as u64) << 20 {
                    return Err(format!("the CLI got {got} bytes of {mib} MiB").into());
                }
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                let sdk = rt.block_on(async {
                    let (client, _) = common::client(&net, |_| {}).await?;
                    let t = Instant::now();
                    let n = client
                        .get(&name, None, &mut tokio::io::sink(), &mut |_| {})
                        .await?;
                    let secs = t.elapsed().as_secs_f64();
                    if n != (mib as u64) << 20 {
                        return Err(format!("the SDK got {n} bytes of {mib} MiB").into());
                    }
                    Ok::<f64, Box<dyn std::error::Error>>(secs)
                })?;
                large.push((mib, put, get, sdk));
            }
        }
    }
    let tahoe_large = tahoe(puts, &bigs)?;
    if !large.is_empty() {
        println!();
        println!(
            "| object | memo CLI put | memo CLI get | memo SDK get (in-process, same devnet) | CLI get / SDK get | Tahoe put | Tahoe get |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (mib, put, get, sdk) in large {
            let rate = |secs: f64| format!("{secs:.2} s ({:.0} MiB/s)", mib as f64 / secs);
            let (tput, tget) = match tahoe_large.iter().find(|t| t.0 == mib) {
                Some((_, p, g)) => (rate(*p), rate(*g)),
                None => ("not measured".into(), "not measured".into()),
            };
            println!(
                "| {mib} MiB | {} | {} | {} | {:.0}% | {tput} | {tget} |",
                rate(put),
                rate(get),
                rate(sdk),
                100.0 * sdk / get
            );
        }
    }
    Ok(())
}

/// One row of the table: the small puts' median and range (sorted), the tree's time, and the
/// 64 MiB put and get times.
fn row(label: &str, small: &[f64], tree: f64, tree_how: &str, put: f64, get: f64) {
    println!(
        "| {label} | {:.3} s ({:.3}–{:.3}) | {tree:.2} s ({:.0} files/s{tree_how}) | {put:.2} s ({:.0} MiB/s) | {get:.2} s ({:.0} MiB/s) |",
        small[small.len() / 2],
        small[0],
        small[small.len() - 1],
        TREE as f64 / tree,
        64.0 / put,
        64.0 / get
    );
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A free loopback port (bound, then released).
fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The Tahoe-LAFS processes of a grid, killed when dropped.
struct Grid(Vec<Child>);

impl Drop for Grid {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `tahoe ARGS`, failing with its output if it fails; returns its stdout and the time.
fn tahoe_cmd(exe: &Path, args: &[&str]) -> Res<(String, f64)> {
    let t = Instant::now();
    let out = Command::new(exe).args(args).stdin(Stdio::null()).output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "tahoe {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        secs,
    ))
}

fn start(exe: &Path, dir: &Path, grid: &mut Grid) -> Res<()> {
    let log = std::fs::File::create(dir.with_extension("log"))?;
    grid.0.push(
        Command::new(exe)
            .args(["run", "--allow-stdin-close"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    Ok(())
}

/// The same rows against a Tahoe-LAFS grid on this machine, if `tahoe` is found; then a put
/// and a get of each of `bigs` MiB, returned as (MiB, put seconds, get seconds).
fn tahoe(puts: usize, bigs: &[usize]) -> Res<Vec<(usize, f64, f64)>> {
    let exe = PathBuf::from(std::env::var("MEMO_BENCH_TAHOE").unwrap_or_else(|_| "tahoe".into()));
    if Command::new(&exe).arg("--version").output().is_err() {
        println!(
            "(Tahoe-LAFS not measured: no `tahoe` command; set MEMO_BENCH_TAHOE or pip install tahoe-lafs)"
        );
        return Ok(Vec::new());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().unwrap_or_default().to_string();
    let mut grid = Grid(Vec::new());
    let port = free_port()?;
    let intro = dir.join("intro");
    tahoe_cmd(
        &exe,
        &[
            "create-introducer",
            &format!("--port=tcp:{port}:interface=127.0.0.1"),
            &format!("--location=tcp:127.0.0.1:{port}"),
            &s(&intro),
        ],
    )?;
    start(&exe, &intro, &mut grid)?;
    let furl_file = intro.join("private").join("introducer.furl");
    let furl = harness::poll(Duration::from_secs(60), || {
        std::fs::read_to_string(&furl_file)
            .ok()
            .map(|f| f.trim().to_string())
    })
    .ok_or("the Tahoe introducer did not start")?;
    for i in 0..10 {
        let port = free_port()?;
        let node = dir.join(format!("storage-{i}"));
        tahoe_cmd(
            &exe,
            &[
                "create-node",
                &format!("--port=tcp:{port}:interface=127.0.0.1"),
                &format!("--location=tcp:127.0.0.1:{port}"),
                &format!("--introducer={furl}"),
                &format!("--nickname=s{i}"),
                "--webport=none",
                &s(&node),
            ],
        )?;
        start(&exe, &node, &mut grid)?;
    }
    let web = free_port()?;
    let client = dir.join("client");
    tahoe_cmd(
        &exe,
        &[
            "create-client",
            &format!("--introducer={furl}"),
            "--nickname=client",
            &format!("--webport=tcp:{web}:interface=127.0.0.1"),
            "--shares-needed=4",
            "--shares-happy=6",
            "--shares-total=6",
            &s(&client),
        ],
    )?;
    start(&exe, &client, &mut grid)?;
    let c = s(&client);
    let put = |f: &Path| tahoe_cmd(&exe, &["-d", &c, "put", &s(f)]);
    // Wait until the gateway can place a file on the grid (it found the storage nodes).
    let warm = dir.join("warm.bin");
    std::fs::write(&warm, random(1024, 1))?;
    harness::poll(Duration::from_secs(120), || put(&warm).ok())
        .ok_or("the Tahoe grid did not come up")?;
    let mut small = Vec::with_capacity(puts);
    for i in 0..puts {
        let f = dir.join(format!("small-{i}.bin"));
        std::fs::write(&f, random(1024, 100 + i as u64))?;
        small.push(put(&f)?.1);
    }
    small.sort_by(f64::total_cmp);
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree)?;
    for i in 0..TREE {
        std::fs::write(tree.join(format!("f{i}")), random(1024, 1_000 + i as u64))?;
    }
    tahoe_cmd(&exe, &["-d", &c, "create-alias", "bench"])?;
    let tree_put = tahoe_cmd(&exe, &["-d", &c, "cp", "-r", &s(&tree), "bench:tree"])?.1;
    let big = dir.join("big.bin");
    std::fs::write(&big, random(64 << 20, 7))?;
    let (cap, big_put) = put(&big)?;
    let out = dir.join("big.out");
    let big_get = tahoe_cmd(&exe, &["-d", &c, "get", &cap, &s(&out)])?.1;
    if std::fs::read(&out)? != std::fs::read(&big)? {
        return Err("Tahoe returned other bytes".into());
    }
    row(
        "Tahoe-LAFS",
        &small,
        tree_put,
        ", `tahoe cp -r`",
        big_put,
        big_get,
    );
    let mut large = Vec::new();
    for &mib in bigs {
        let f = dir.join(format!("big-{mib}.bin"));
        std::fs::write(&f, random(mib << 20, 11 + mib as u64))?;
        let (cap, put_secs) = put(&f)?;
        std::fs::remove_file(&f)?;
        let out = dir.join(format!("big-{mib}.out"));
        let get_secs = tahoe_cmd(&exe, &["-d", &c, "get", &cap, &s(&out)])?.1;
        let got = std::fs::metadata(&out)?.len();
        std::fs::remove_file(&out)?;
        if got != (mib as u64) << 20 {
            return Err(format!("Tahoe returned {got} bytes of {mib} MiB").into());
        }
        large.push((mib, put_secs, get_secs));
    }
    drop(grid);
    Ok(large)
}

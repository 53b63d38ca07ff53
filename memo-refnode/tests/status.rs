//! Status pages on a devnet of real `memo` processes: `devnet.json` names every node's status
//! page and the devnet's page, each node answers `/health`, node logs are plain text, and (in
//! headless Chromium) the devnet's page shows every node and a killed provider as down.

mod common;

use common::{Devnet, http_get as get};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn every_node_serves_its_status_page_and_logs_plain_text() {
    let net = Devnet::start(6, 1);
    let info = net.info();
    let page = info["page"]
        .as_str()
        .expect("the devnet's page in devnet.json");
    let (code, body) = get(page);
    assert_eq!(code, 200);
    assert!(body.contains("memo devnet"));
    let (code, nodes) = get(&format!("{page}api/nodes"));
    assert_eq!(code, 200);
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 7);
    for n in info["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        let url = n["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no status page in devnet.json"));
        // Every node registered before devnet.json was written: each is ready.
        let (code, health) = get(&format!("{url}health"));
        assert_eq!(code, 200, "{name}: {health}");
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        assert_eq!(health["ready"], true, "{name}");
        assert!(
            health["ledger_height"].as_u64().is_some(),
            "{name}: {health}"
        );
        let status: serde_json::Value =
            serde_json::from_str(&get(&format!("{url}api/status")).1).unwrap();
        assert_eq!(status["name"], name);
        let (code, metrics) = get(&format!("{url}metrics"));
        assert_eq!(code, 200);
        assert!(metrics.contains("memo_ledger_height "), "{name}: {metrics}");
        let log = std::fs::read_to_string(net.dir.path().join("logs").join(format!("{name}.log")))
            .unwrap();
        assert!(!log.contains('\x1b'), "{name}'s log has ANSI escapes");
        assert!(!log.contains("serving on"), "{name}'s log has a stray line");
        assert!(
            log.contains("status page"),
            "{name}'s log does not give its status page"
        );
        assert!(
            log.contains(&format!("account={name} (")),
            "{name}'s log names nodes by their names: {log}"
        );
    }
    // A put makes storage orders on the ledger: the providers' statuses count them.
    let file = net.dir.path().join("a.bin");
    std::fs::write(&file, vec![7u8; 200_000]).unwrap();
    net.json("alice", &["put", file.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let orders: u64 = info["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == "provider")
            .map(|n| {
                let url = n["status"].as_str().unwrap();
                let s: serde_json::Value =
                    serde_json::from_str(&get(&format!("{url}api/status")).1).unwrap();
                s["ledger"]["orders"].as_u64().unwrap_or(0)
            })
            .sum();
        if orders > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no provider shows an order within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(info["nodes"][6]["name"], "keeper-0");
    let keeper = info["nodes"][6]["status"].as_str().unwrap();
    // The devnet's keepers form a Raft group (of one here): the status shows it.
    let status: serde_json::Value =
        serde_json::from_str(&get(&format!("{keeper}api/status")).1).unwrap();
    assert_eq!(status["group"]["role"], "leader", "{status}");
    assert_eq!(status["group"]["members"].as_array().unwrap().len(), 1);
    let (code, body) = get(&format!("{keeper}no/such/page"));
    assert_eq!(code, 404, "{body}");
}

/// Chromium, if this machine has it. CI installs it (.ci/run): there, its absence fails.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed; .ci/run installs it"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
    }
    found
}

/// The page at `url` after its scripts ran, as headless Chromium sees it; with `screenshot`,
/// also saved there as a PNG.
fn render(chromium: &Path, profile: &Path, url: &str, screenshot: Option<&Path>) -> String {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1200,900",
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(url).output().expect("running chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `data-health` of node `name`'s row in the devnet page's DOM.
fn row_health<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let at = dom.find(&format!("data-node=\"{name}\""))?;
    let rest = &dom[at..];
    let value = &rest[rest.find("data-health=\"")? + "data-health=\"".len()..];
    Some(&value[..value.find('"')?])
}

#[test]
fn the_devnet_page_shows_every_node_and_a_killed_provider_as_down() {
    let Some(chromium) = chromium() else {
        return;
    };
    let net = Devnet::start(7, 1);
    let page = net.info()["page"].as_str().unwrap().to_string();
    let profile = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..7)
        .map(|i| format!("provider-{i}"))
        .chain(["keeper-0".to_string()])
        .collect();
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dom = render(&chromium, profile.path(), &page, None);
            if ok(&dom) {
                return dom;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}: {dom}"
            );
        }
    };
    wait_for("every node ready", &|dom| {
        names.iter().all(|n| row_health(dom, n) == Some("ready"))
    });
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("devnet-page.png");
    render(&chromium, profile.path(), &page, Some(&shot));
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());

    net.kill("provider-3");
    let dom = wait_for("provider-3 down", &|dom| {
        row_health(dom, "provider-3") == Some("down")
    });
    for n in names.iter().filter(|n| *n != "provider-3") {
        assert_eq!(row_health(&dom, n), Some("ready"), "{n}");
    }
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("devnet-page-provider-down.png");
    render(&chromium, profile.path(), &page, Some(&shot));
}

/// A provider's status gives, epoch by epoch, what the ledger settled for its proofs: once it
/// holds paid shards, an epoch shows proofs passed (2 s epochs here).
#[test]
fn a_providers_status_shows_its_proofs_per_epoch() {
    let net = Devnet::start_with(6, 1, &["--epoch-secs", "2"]);
    let file = net.dir.path().join("a.bin");
    std::fs::write(&file, memo_core::testkit::random_bytes(300_000, 3)).unwrap();
    net.json("alice", &["put", file.to_str().unwrap()]);
    let url = net.node("provider-0")["status"]
        .as_str()
        .unwrap()
        .to_string();
    let epochs = net.until(Duration::from_secs(60), "proofs passed in an epoch", || {
        let status: serde_json::Value =
            serde_json::from_str(&get(&format!("{url}api/status")).1).ok()?;
        let epochs = status["proofs"]["epochs"].as_array()?.clone();
        epochs
            .iter()
            .any(|e| e["passed"].as_u64() > Some(0))
            .then_some(epochs)
    });
    // An honest provider fails no proof (one may miss a deadline on a loaded machine).
    assert!(epochs.iter().all(|e| e["failed"] == 0), "{epochs:?}");
}

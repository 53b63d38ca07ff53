//! The status server of nodes started from their configs (`Node::start`): `/metrics` moves with
//! a put and a get, `/api/status` and `/health` describe the node, and bad requests get clear
//! HTTP errors that leave the node serving.

use memo_sdk::Env;
use memo_sdk::config::{
    ClientFile, GroupSettings, NodeConfig, PeerInfo, RepairSettings, Role, load_or_create_key,
};
use memo_sdk::node::{Node, NodeError};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` (raw HTTP/1.1) to `addr` and returns the status code and the body.
async fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // The server may close before reading all of an oversized body: keep what was answered.
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    http(addr, req.as_bytes()).await
}

async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (code, body) = get(addr, path).await;
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The value of the sample `series` (name and labels exactly as printed) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

/// `series` summed over the scrapes of every node in `addrs`.
async fn total(addrs: &[SocketAddr], series: &str) -> f64 {
    let mut sum = 0.0;
    for a in addrs {
        let (code, text) = get(*a, "/metrics").await;
        assert_eq!(code, 200);
        sum += sample(&text, series);
    }
    sum
}

struct Net {
    keeper: SocketAddr,
    providers: Vec<SocketAddr>,
    client: ClientFile,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn node_config(dir: &Path, name: &str, role: Role, peers: Vec<PeerInfo>) -> NodeConfig {
    NodeConfig {
        capacity: 1 << 30,
        sync_writes: false,
        peers,
        repair: RepairSettings {
            enabled: false,
            ..RepairSettings::default()
        },
        status: Some("127.0.0.1:0".into()),
        ..NodeConfig::in_dir(role, name, dir)
    }
}

/// Serves `node` in the background until the returned sender is dropped or fired.
fn serve(node: Node) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node.run_until(async {
        let _ = rx.await;
    }));
    tx
}

/// One keeper and six providers (k = 4, m = 2), each with its status server on a free port, and
/// a client config for a user.
async fn network(dir: &Path) -> Net {
    let key = |name: &str| load_or_create_key(&dir.join("keys").join(format!("{name}.key")));
    let keeper = PeerInfo {
        name: "keeper-0".into(),
        role: Role::Keeper,
        account: key("keeper-0").unwrap().account().to_hex(),
        address: String::new(),
    };
    let mut stop = Vec::new();
    let (mut providers, mut provider_peers) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let name = format!("provider-{i}");
        let cfg = node_config(dir, &name, Role::Provider, vec![keeper.clone()]);
        let node = Node::start(&cfg, Env::real()).await.unwrap();
        providers.push(node.status.expect("a status address"));
        provider_peers.push(PeerInfo {
            name,
            role: Role::Provider,
            account: node.account.to_hex(),
            address: node.listen.clone(),
        });
        stop.push(serve(node));
    }
    let cfg = node_config(dir, "keeper-0", Role::Keeper, provider_peers.clone());
    let node = Node::start(&cfg, Env::real()).await.unwrap();
    let keeper_status = node.status.expect("a status address");
    let keeper = PeerInfo {
        address: node.listen.clone(),
        ..keeper
    };
    stop.push(serve(node));
    key("user").unwrap();
    let client = ClientFile {
        key_file: dir.join("keys").join("user.key"),
        chunk_size: Some(64 * 1024),
        data_shards: Some(4),
        parity_shards: Some(2),
        peers: std::iter::once(keeper).chain(provider_peers).collect(),
        ledger: None,
        lanes: None,
    };
    // Ready when the keeper has heard from every provider (its hello to each was answered).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = json(keeper_status, "/api/status").await;
        let heard = s["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["last_heard_secs"].is_null())
            .count();
        if heard == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the keeper heard from {heard} of 6 providers within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Net {
        keeper: keeper_status,
        providers,
        client,
        stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_with_a_put_and_a_get() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path()).await;
    let client = net.client.connect(|_| {}).await.unwrap();
    let p = &net.providers;
    let put_shards = r#"memo_requests_total{kind="PutShard"}"#;
    let get_shards = r#"memo_requests_total{kind="GetShard"}"#;
    assert_eq!(total(p, "memo_shard_bytes_in_total").await, 0.0);
    assert_eq!(total(p, put_shards).await, 0.0);

    let data: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    let put = client.put_bytes("a.bin", &data).await.unwrap();
    // Chunks of 64 KiB, 6 shards each, every shard at least a quarter of its chunk.
    let shards = (put.chunks * 6) as f64;
    assert!(put.chunks >= 5, "{} chunks", put.chunks);
    let stored = total(p, "memo_shard_bytes_in_total").await;
    assert!(stored >= data.len() as f64 * 1.5, "{stored} shard bytes in");
    assert_eq!(total(p, "memo_shards_in_total").await, shards);
    assert!(total(p, put_shards).await >= shards);
    assert_eq!(total(p, "memo_shard_bytes_out_total").await, 0.0);
    let keeper_scrape = get(net.keeper, "/metrics").await.1;
    assert!(sample(&keeper_scrape, r#"memo_requests_total{kind="Place"}"#) >= 1.0);
    assert!(
        keeper_scrape.contains(r#"memo_request_seconds_bucket{le="+Inf",kind="Place"}"#),
        "{keeper_scrape}"
    );
    assert_eq!(
        sample(&keeper_scrape, r#"memo_chunks{health="healthy"}"#),
        put.chunks as f64
    );

    assert_eq!(client.get_bytes("a.bin").await.unwrap(), data);
    let served = total(p, "memo_shard_bytes_out_total").await;
    assert!(served >= data.len() as f64, "{served} shard bytes out");
    assert!(total(p, get_shards).await >= (put.chunks * 4) as f64);
    assert_eq!(
        total(p, r#"memo_request_errors_total{kind="GetShard"}"#).await,
        0.0
    );

    // The JSON says the same, with names.
    let k = json(net.keeper, "/api/status").await;
    assert_eq!(k["role"], "keeper");
    assert_eq!(k["name"], "keeper-0");
    assert_eq!(k["keeper_role"], "sequencer");
    assert_eq!(k["chunks"]["total"], put.chunks);
    assert_eq!(k["repair"]["queue"], 0);
    assert!(k["group"].is_null());
    let names: Vec<&str> = k["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"provider-5"), "{names:?}");
    let mut used = 0;
    for a in p {
        let s = json(*a, "/api/status").await;
        assert_eq!(s["role"], "provider");
        assert_eq!(s["disk"]["capacity"], 1u64 << 30);
        used += s["disk"]["used"].as_u64().unwrap();
    }
    assert!(
        used as f64 >= stored,
        "{used} bytes on disk, {stored} stored"
    );
    let h = json(net.keeper, "/health").await;
    assert_eq!(
        (h["live"].as_bool(), h["ready"].as_bool()),
        (Some(true), Some(true))
    );
    let (code, page) = get(p[0], "/").await;
    assert_eq!(code, 200);
    assert!(page.contains("api/status"));
    drop(net.stop);
}

#[tokio::test]
async fn unknown_paths_and_oversized_bodies_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = node_config(dir.path(), "provider-0", Role::Provider, vec![]);
    let node = Node::start(&cfg, Env::real()).await.unwrap();
    let addr = node.status.unwrap();
    let _stop = serve(node);

    let (code, body) = get(addr, "/no/such/page").await;
    assert_eq!(code, 404, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("/no/such/page"),
        "{body}"
    );

    // A declared length over the limit is refused before a byte of the body is read.
    let big = "POST /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\n";
    let (code, body) = http(addr, big.as_bytes()).await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("limited to"), "{body}");
    // So is a chunked body that grows past it.
    let mut chunked =
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'a'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (code, body) = http(addr, &chunked).await;
    assert_eq!(code, 413, "{body}");
    // Garbage is not HTTP: the server answers 400 or closes, and goes on serving.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"\x00\xffnot http at all\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
    })
    .await;

    // The node is unaffected.
    let h = json(addr, "/health").await;
    assert_eq!(h["ready"], true);
    let s = json(addr, "/api/status").await;
    assert_eq!(s["name"], "provider-0");
}

#[tokio::test]
async fn a_status_address_in_use_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut cfg = node_config(dir.path(), "provider-0", Role::Provider, vec![]);
    cfg.status = Some(address.clone());
    match Node::start(&cfg, Env::real()).await {
        Err(e @ NodeError::Status { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&address), "{message}");
        }
        Err(e) => panic!("expected a status error, got {e}"),
        Ok(_) => panic!("a node started on a status address in use"),
    }
    // Not a host:port address: also refused at start.
    cfg.status = Some("nowhere".into());
    assert!(matches!(
        Node::start(&cfg, Env::real()).await,
        Err(NodeError::Status { .. })
    ));
    // "off": no server and no metrics.
    cfg.status = Some("off".into());
    let node = Node::start(&cfg, Env::real()).await.unwrap();
    assert!(node.status.is_none() && node.metrics.is_none());
    node.shutdown().await;
}

#[tokio::test]
async fn a_keeper_in_a_group_reports_its_group_and_is_ready_once_it_has_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path(), "keeper-0", Role::Keeper, vec![]);
    cfg.group = Some(GroupSettings::default());
    let node = Node::start(&cfg, Env::real()).await.unwrap();
    let (addr, me) = (node.status.unwrap(), node.account.to_hex());
    let _stop = serve(node);
    // A group of one elects itself; until then the keeper is live but not ready (503).
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let (code, body) = get(addr, "/health").await;
        let h: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(h["live"], true);
        assert_eq!(code == 200, h["ready"] == true, "{code}: {body}");
        if code == 200 {
            break h;
        }
        assert!(Instant::now() < deadline, "no leader within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(health["keeper_role"], "leader");
    let s = json(addr, "/api/status").await;
    let g = &s["group"];
    assert_eq!(g["role"], "leader", "{s}");
    assert_eq!(g["leader"], me.as_str());
    assert_eq!(g["members"], serde_json::json!([me]));
    assert!(g["term"].as_u64().unwrap() >= 1);
    assert!(g["last_log_index"].as_u64().is_some());
    assert_eq!(s["keeper_role"], "leader");
}

//! What metrics cost: put and get throughput of nodes started from their configs
//! (`Node::start`: libp2p on loopback, shard lanes, 1 keeper, 6 providers, k = 4, m = 2, 1 MiB
//! chunks, no ledger) with the status server off and on, alternating in the same run; and the
//! cost of recording one request.
//!
//! `cargo bench -p memo-sdk --bench status` (`MEMO_STATUS_MIB=32` per object,
//! `MEMO_STATUS_ROUNDS=4` rounds of each mode, `MEMO_STATUS_OBJECTS=3` objects per round).

use bytes::Bytes;
use memo_core::protocol::Request;
use memo_core::testkit::random_bytes;
use memo_sdk::Env;
use memo_sdk::config::{
    ClientFile, NodeConfig, PeerInfo, RepairSettings, Role, load_or_create_key,
};
use memo_sdk::node::Node;
use memo_sdk::node::metrics::NodeMetrics;
use std::path::Path;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, name: &str, role: Role, peers: Vec<PeerInfo>, status: bool) -> NodeConfig {
    NodeConfig {
        capacity: 64 << 30,
        sync_writes: false,
        peers,
        repair: RepairSettings {
            enabled: false,
            ..RepairSettings::default()
        },
        status: Some(if status { "127.0.0.1:0" } else { "off" }.into()),
        ..NodeConfig::in_dir(role, name, dir)
    }
}

fn serve(node: Node) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node.run_until(async {
        let _ = rx.await;
    }));
    tx
}

/// Puts and gets `objects` objects of `mib` MiB on a fresh network: (put MiB/s, get MiB/s).
async fn round(status: bool, mib: usize, objects: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let key = |name: &str| load_or_create_key(&dir.join("keys").join(format!("{name}.key")));
    let keeper = PeerInfo {
        name: "keeper-0".into(),
        role: Role::Keeper,
        account: key("keeper-0").expect("key").account().to_hex(),
        address: String::new(),
    };
    let (mut stop, mut providers) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let name = format!("provider-{i}");
        let cfg = config(dir, &name, Role::Provider, vec![keeper.clone()], status);
        let node = Node::start(&cfg, Env::real()).await.expect("provider");
        providers.push(PeerInfo {
            name,
            role: Role::Provider,
            account: node.account.to_hex(),
            address: node.listen.clone(),
        });
        stop.push(serve(node));
    }
    let cfg = config(dir, "keeper-0", Role::Keeper, providers.clone(), status);
    let node = Node::start(&cfg, Env::real()).await.expect("keeper");
    let keeper = PeerInfo {
        address: node.listen.clone(),
        ..keeper
    };
    stop.push(serve(node));
    key("user").expect("key");
    let client = ClientFile {
        key_file: dir.join("keys").join("user.key"),
        chunk_size: Some(1 << 20),
        data_shards: Some(4),
        parity_shards: Some(2),
        peers: std::iter::once(keeper).chain(providers).collect(),
        ledger: None,
        lanes: None,
    }
    .connect(|_| {})
    .await
    .expect("client");
    // A first put until it succeeds: the keeper may still be learning the providers' room.
    let warm = random_bytes(4096, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.put_bytes("warm", &warm).await.is_err() {
        assert!(Instant::now() < deadline, "no put succeeded within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data: Vec<Vec<u8>> = (0..objects)
        .map(|i| random_bytes(mib << 20, i as u8 + 7))
        .collect();
    let t = Instant::now();
    for (i, d) in data.iter().enumerate() {
        client.put_bytes(&format!("o{i}"), d).await.expect("put");
    }
    let put = (mib * objects) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..objects {
        let got = client.get_bytes(&format!("o{i}")).await.expect("get");
        assert_eq!(got.len(), mib << 20);
    }
    let get = (mib * objects) as f64 / t.elapsed().as_secs_f64();
    drop(stop);
    (put, get)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mib = env_or("MEMO_STATUS_MIB", 32) as usize;
    let rounds = env_or("MEMO_STATUS_ROUNDS", 4) as usize;
    let objects = env_or("MEMO_STATUS_OBJECTS", 3) as usize;

    // One request recorded: named by its wire tag, timed, counted.
    let m = NodeMetrics::new(memo_core::AccountId([0; 32]), &[]);
    let body = Bytes::from(Request::ListObjects.to_bytes());
    let n = 2_000_000u32;
    let t = Instant::now();
    for _ in 0..n {
        m.start(&body).finish(&m, false);
    }
    println!(
        "recording one request: {:.0} ns",
        t.elapsed().as_secs_f64() * 1e9 / f64::from(n)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mut off, mut on) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for r in 0..rounds {
        // Alternate which mode goes first, so drift favours neither.
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for status in order {
            let (put, get) = rt.block_on(round(status, mib, objects));
            println!(
                "round {r} metrics {}: put {put:.1} MiB/s, get {get:.1} MiB/s",
                if status { "on " } else { "off" }
            );
            let side = if status { &mut on } else { &mut off };
            side.0.push(put);
            side.1.push(get);
        }
    }
    let (put_off, get_off) = (median(&mut off.0), median(&mut off.1));
    let (put_on, get_on) = (median(&mut on.0), median(&mut on.1));
    println!("median of {rounds} rounds, {objects} objects of {mib} MiB each:");
    println!(
        "  put: off {put_off:.1} MiB/s, on {put_on:.1} MiB/s ({:+.1}%)",
        (put_on / put_off - 1.0) * 100.0
    );
    println!(
        "  get: off {get_off:.1} MiB/s, on {get_on:.1} MiB/s ({:+.1}%)",
        (get_on / get_off - 1.0) * 100.0
    );
}

//! Peak memory of a provider under the flood of issue #18: 96 concurrent PutShards of 32 MiB
//! with wrong shard ids, from fresh keys, over the p2p transport and over shard lanes; with
//! the caps at their defaults and with the caps disabled (`Limits::unlimited`), in one run.
//!
//! Each provider (a real `Provider` on an `FsShardStore` in a temporary directory, served on a
//! `P2pTransport` with a `LaneServer` that shares the transport's limiter) runs in a child
//! process of its own, so its peak RSS (`VmHWM`) is the provider's alone; this process is the
//! flooder.
//!
//! `cargo bench -p memo-sdk --bench flood` (`MEMO_FLOOD_REQUESTS`, default 96;
//! `MEMO_FLOOD_MIB`, default 32; `MEMO_FLOOD_KEYS`, fresh keys sharing the requests, default 4).

mod proc_status;

use bytes::Bytes;
use memo_sdk::memo_core::protocol::{ErrorCode, Request, Response};
use memo_sdk::memo_core::transport::Transport;
use memo_sdk::memo_core::{AccountId, Keypair, ShardId};
use memo_sdk::node::{Service, serve};
use memo_sdk::provider::Provider;
use memo_sdk::store::FsShardStore;
use memo_sdk::transport::lane::{LaneServer, Lanes};
use memo_sdk::transport::limits::Limits;
use memo_sdk::transport::p2p::{P2pConfig, P2pTransport};
use memo_sdk::transport::rpc::RpcError;
use proc_status::status_kib;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

const MIB: usize = 1024 * 1024;
/// Set in a child process: run the provider, with the caps (`capped`) or without.
const ROLE: &str = "MEMO_FLOOD_PROVIDER";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match std::env::var(ROLE) {
        Ok(role) => runtime.block_on(provider(role == "capped")),
        Err(_) => runtime.block_on(flooder()),
    }
}

/// The child: a provider that prints its address, serves until its stdin closes, then prints
/// its memory figures.
async fn provider(capped: bool) {
    let keypair = Keypair::from_seed("memo flood bench provider");
    let config = P2pConfig {
        limits: if capped {
            Limits::default()
        } else {
            Limits::unlimited()
        },
        request_timeout: Duration::from_secs(120),
        ..P2pConfig::default()
    };
    let p2p = P2pTransport::start_with(&keypair, config)
        .await
        .expect("transport");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FsShardStore::open(dir.path()).expect("store");
    let env = memo_sdk::Env::real();
    let transport: Arc<dyn Transport> = Arc::new(p2p.clone());
    let provider = Provider::new(
        env.clone(),
        keypair.clone(),
        transport.clone(),
        store,
        1 << 40,
        [],
    );
    let lane = LaneServer::start_limited(
        env,
        "127.0.0.1:0",
        None,
        provider.clone(),
        p2p.limiter().clone(),
    )
    .await
    .expect("lane");
    let services: Vec<Arc<dyn Service>> = vec![provider, lane];
    tokio::spawn(serve(transport, services));
    let baseline = status_kib("VmRSS:");
    println!(
        "ready {} {} {baseline}",
        keypair.account().to_hex(),
        p2p.listen_addrs()[0]
    );
    // Until the flooder is done.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .expect("stdin");
    println!(
        "memory {} {}",
        status_kib("VmHWM:"),
        p2p.limiter().in_flight().bytes
    );
    p2p.shutdown().await;
}

/// What the flood's requests got.
#[derive(Default, Debug)]
struct Outcome {
    refused_by_caps: usize,
    refused_by_provider: usize,
    failed: usize,
}

impl Outcome {
    fn add(&mut self, result: Result<Response, RpcError>) {
        match result {
            Err(RpcError::Remote { error, .. }) if error.code == ErrorCode::Unavailable => {
                self.refused_by_caps += 1
            }
            Err(RpcError::Remote { .. }) | Ok(_) => self.refused_by_provider += 1,
            Err(_) => self.failed += 1,
        }
    }
}

async fn flooder() {
    let requests = env_usize("MEMO_FLOOD_REQUESTS", 96);
    let size = env_usize("MEMO_FLOOD_MIB", 32) * MIB;
    let keys = env_usize("MEMO_FLOOD_KEYS", 4).max(1);
    println!(
        "flood: {requests} concurrent PutShards of {} MiB with wrong ids from {keys} fresh keys",
        size / MIB
    );
    println!(
        "{:<5} {:<9} {:>8} {:>9} {:>9} {:>7} {:>12} {:>13} {:>8}",
        "via",
        "caps",
        "requests",
        "capped",
        "provider",
        "failed",
        "base RSS MiB",
        "peak RSS MiB",
        "secs"
    );
    // One wrong shard: its id is not the hash of its bytes. Encoded once and shared.
    let bytes = Bytes::from(vec![0x5a; size]);
    let request = Request::PutShard {
        shard: ShardId::of(b"not these bytes"),
        ticket: None,
        bytes,
    };
    let body = Bytes::from(request.to_bytes());
    for lanes in [false, true] {
        for capped in [true, false] {
            run(lanes, capped, requests, keys, &request, &body).await;
        }
    }
}

/// One provider process under one flood.
async fn run(lanes: bool, capped: bool, requests: usize, keys: usize, req: &Request, body: &Bytes) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env(ROLE, if capped { "capped" } else { "unlimited" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("provider process");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    let mut words = line.split_whitespace().skip(1);
    let (Some(account), Some(address), Some(base)) = (words.next(), words.next(), words.next())
    else {
        panic!("provider said {line:?}");
    };
    let provider: AccountId = account.parse().expect("account");
    let base: u64 = base.parse().unwrap_or(0);

    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut nodes = Vec::new();
    for k in 0..keys {
        // A fresh key: nothing the provider has seen.
        let key = Keypair::from_secret(memo_sdk::Env::real().random());
        let t = P2pTransport::start_with(
            &key,
            P2pConfig {
                listen: vec![],
                request_timeout: Duration::from_secs(120),
                ..P2pConfig::default()
            },
        )
        .await
        .expect("flooder transport");
        t.try_add_address(provider, address).expect("address");
        let transport: Arc<dyn Transport> = Arc::new(t.clone());
        let lanes_of_key = Lanes::new(
            memo_sdk::Env::real(),
            transport.clone(),
            Duration::from_secs(120),
        );
        nodes.push(t);
        for _ in (k..requests).step_by(keys) {
            let (transport, l, req, body) = (
                transport.clone(),
                lanes_of_key.clone(),
                req.clone(),
                body.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if lanes {
                    l.call(provider, &req).await
                } else {
                    match transport.request(provider, body).await {
                        Ok(raw) => match Response::from_shared(&raw) {
                            Ok(Response::Error(error)) => Err(RpcError::Remote {
                                peer: provider,
                                error,
                            }),
                            Ok(r) => Ok(r),
                            Err(error) => Err(RpcError::Malformed {
                                peer: provider,
                                error,
                            }),
                        },
                        Err(e) => Err(RpcError::Transport(e)),
                    }
                }
            }));
        }
    }
    let mut outcome = Outcome::default();
    for t in tasks {
        outcome.add(t.await.expect("flood task"));
    }
    let secs = started.elapsed().as_secs_f64();
    for t in &nodes {
        t.shutdown().await;
    }
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "done").expect("tell the provider");
    drop(stdin);
    line.clear();
    out.read_line(&mut line).expect("memory line");
    let peak: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = child.wait();
    println!(
        "{:<5} {:<9} {:>8} {:>9} {:>9} {:>7} {:>12} {:>13} {:>8.1}",
        if lanes { "lane" } else { "p2p" },
        if capped { "default" } else { "disabled" },
        requests,
        outcome.refused_by_caps,
        outcome.refused_by_provider,
        outcome.failed,
        base / 1024,
        peak / 1024,
        secs
    );
}

//! Request/response throughput over loopback: `P2pTransport` (TCP + Noise + yamux) next to the
//! in-process `MemoryTransport`.
//!
//! `cargo bench -p memo-sdk --bench transport` (set `MEMO_BENCH_SECS` to change the time per
//! case, default 1.5). "put" sends the payload in the request and gets an 8-byte answer (a
//! shard upload); "get" sends a small request and gets the payload back (a shard download).

use bytes::Bytes;
use memo_core::Keypair;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::transport::p2p::P2pTransport;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Answers `g<n>` with the first `n` bytes of a shared buffer, anything else with 8 bytes.
fn serve(t: Arc<dyn Transport>, payload: Bytes) {
    tokio::spawn(async move {
        while let Some(inc) = t.next_incoming().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                let answer = match inc.body.first() {
                    Some(b'g') => {
                        let n: usize = std::str::from_utf8(&inc.body[1..])
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        payload.slice(..n.min(payload.len()))
                    }
                    _ => Bytes::from_static(b"stored!!"),
                };
                let _ = inc.reply.send(answer);
            });
        }
    });
}

#[derive(Clone, Copy)]
enum Direction {
    Put,
    Get,
}

/// Runs `in_flight` request loops from `client` to `server` for `secs`; returns MiB/s of payload.
async fn measure(
    client: Arc<dyn Transport>,
    server: memo_core::AccountId,
    payload: Bytes,
    size: usize,
    in_flight: usize,
    dir: Direction,
    secs: f64,
) -> f64 {
    let request = match dir {
        Direction::Put => payload.slice(..size),
        Direction::Get => Bytes::from(format!("g{size}")),
    };
    // Warm up: connection, buffers.
    for _ in 0..4 {
        client
            .request(server, request.clone())
            .await
            .expect("warm-up request");
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let loops = (0..in_flight).map(|_| {
        let client = client.clone();
        let request = request.clone();
        tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let answer = client
                    .request(server, request.clone())
                    .await
                    .expect("request");
                if let Direction::Get = dir {
                    assert_eq!(answer.len(), size);
                }
                done += 1;
            }
            done
        })
    });
    let mut requests = 0;
    for handle in futures::future::join_all(loops).await {
        requests += handle.expect("request loop");
    }
    let elapsed = start.elapsed().as_secs_f64();
    (requests * size) as f64 / MIB as f64 / elapsed
}

fn main() {
    let secs: f64 = std::env::var("MEMO_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let payload = Bytes::from(
            (0..MIB as u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
                .collect::<Vec<u8>>(),
        );

        let net = MemoryNetwork::new();
        let mem_client: Arc<dyn Transport> =
            Arc::new(net.join(Keypair::from_seed("bench-mem-client").account()));
        let mem_server = net.join(Keypair::from_seed("bench-mem-server").account());
        let mem_server_id = mem_server.local_id();
        serve(Arc::new(mem_server), payload.clone());

        let (p2p_server, addrs) = P2pTransport::start(
            &Keypair::from_seed("bench-p2p-server"),
            "/ip4/127.0.0.1/tcp/0",
        )
        .await
        .expect("start server");
        let (p2p_client, _) = P2pTransport::start(
            &Keypair::from_seed("bench-p2p-client"),
            "/ip4/127.0.0.1/tcp/0",
        )
        .await
        .expect("start client");
        let p2p_server_id = p2p_server.local_id();
        p2p_client
            .try_add_address(p2p_server_id, &addrs[0].to_string())
            .expect("address");
        serve(Arc::new(p2p_server.clone()), payload.clone());
        let p2p_client: Arc<dyn Transport> = Arc::new(p2p_client);

        println!("transport throughput over loopback ({secs} s per case), MiB/s of payload");
        println!(
            "{:<4} {:>8} {:>9} {:>12} {:>12}",
            "dir", "message", "in flight", "libp2p", "memory"
        );
        for dir in [Direction::Put, Direction::Get] {
            for size in [256 * KIB, MIB] {
                for in_flight in [1, 16] {
                    let p2p = measure(
                        p2p_client.clone(),
                        p2p_server_id,
                        payload.clone(),
                        size,
                        in_flight,
                        dir,
                        secs,
                    )
                    .await;
                    let mem = measure(
                        mem_client.clone(),
                        mem_server_id,
                        payload.clone(),
                        size,
                        in_flight,
                        dir,
                        secs,
                    )
                    .await;
                    println!(
                        "{:<4} {:>8} {:>9} {:>12.1} {:>12.1}",
                        match dir {
                            Direction::Put => "put",
                            Direction::Get => "get",
                        },
                        format!("{} KiB", size / KIB),
                        in_flight,
                        p2p,
                        mem
                    );
                }
            }
        }
        p2p_server.shutdown().await;
    });
}

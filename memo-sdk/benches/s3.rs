//! The S3 gateway against the direct client, in the same run over one in-process network:
//! put and get of one large object (1 GiB by default), the gateway's through plain HTTP/1.1
//! requests signed with SigV4 (`UNSIGNED-PAYLOAD`) on 127.0.0.1.
//!
//! `cargo bench -p memo-sdk --features s3 --bench s3` (`MEMO_BENCH_MIB` sets the size in MiB,
//! `MEMO_BENCH_ROUNDS` the rounds, default 2; each side's best round is reported).
//! The direct and gateway objects hold different bytes, so neither is deduplicated against the
//! other; the data is generated as it is sent, never held whole.

mod s3_http;

use std::sync::Arc;
use std::time::Instant;

use memo_sdk::local::{LocalSpec, memory_network};
use memo_sdk::memo_core::Keypair;
use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
use s3_http::{Generated, MIB, rate, request};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: u64 = std::env::var("MEMO_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let size = mib * MIB;
    let (_net, mut local) = memory_network(&LocalSpec::default()).await.unwrap();
    let (_, client) = local.users.remove(0);
    let client = Arc::new(client);
    let creds = Credentials::derive(&Keypair::from_seed("user-alice"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        Gateway::new(client.clone(), GatewayConfig::new(creds.clone()))
            .serve(listener, std::future::pending()),
    );
    let r = request(&host, "PUT", "/bench", "", &creds, tokio::io::empty(), 0).await;
    assert_eq!(r.status, 200, "create bucket");

    let rounds: usize = std::env::var("MEMO_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    println!(
        "S3 gateway vs direct client, {mib} MiB object, in-process network, 127.0.0.1, best of {rounds} rounds"
    );
    // Seconds per round: direct put, gateway put, direct get, gateway get (alternating, so a
    // load change on the machine hits both sides alike).
    let mut best = [f64::MAX; 4];
    for round in 0..rounds {
        let (direct, object) = (format!("direct-{round}"), format!("/bench/object-{round}"));
        let t = Instant::now();
        client
            .put(
                &direct,
                Generated::new(&direct, size),
                Some(size),
                &mut |_| {},
            )
            .await
            .unwrap();
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let body = Generated::new(&object, size);
        let r = request(&host, "PUT", &object, "", &creds, body, size).await;
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        assert_eq!(r.status, 200, "gateway put");

        let t = Instant::now();
        let got = client
            .get(&direct, None, &mut tokio::io::sink(), &mut |_| {})
            .await
            .unwrap();
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        assert_eq!(got, size);
        let t = Instant::now();
        let r = request(&host, "GET", &object, "", &creds, tokio::io::empty(), 0).await;
        best[3] = best[3].min(t.elapsed().as_secs_f64());
        assert_eq!((r.status, r.len), (200, size), "gateway get");
    }

    println!(
        "{:<6} {:>14} {:>14} {:>8}",
        "", "direct MiB/s", "gateway MiB/s", "ratio"
    );
    for (what, d, g) in [("put", best[0], best[1]), ("get", best[2], best[3])] {
        println!(
            "{what:<6} {:>14.1} {:>14.1} {:>7.0}%",
            rate(size, d),
            rate(size, g),
            100.0 * d / g
        );
    }
}

//! Peak memory of the process while a large object goes up through the S3 gateway as a
//! multipart upload (64 MiB parts, the way aws-cli and rclone send big files): 1 GiB, then
//! 4 GiB. The providers keep their shards in files (a temporary directory), so what the
//! process holds is the gateway's, the client's and the network's working memory, not the
//! stored bytes; it should not grow with the object's size.
//!
//! `cargo bench -p memo-sdk --features s3 --bench s3_rss` (`MEMO_BENCH_GIB` sets the larger
//! size, default 4; `TMPDIR` where the shards go: about 1.5 times the data;
//! `MEMO_BENCH_DIRECT=1` makes the same uploads with the client alone, as a baseline).

mod proc_status;
mod s3_http;

use std::sync::Arc;
use std::time::Instant;

use memo_sdk::local::{LocalNetwork, LocalSpec};
use memo_sdk::memo_core::Keypair;
use memo_sdk::memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
use memo_sdk::store::FsShardStore;
use proc_status::status_mib;
use s3_http::{Generated, MIB, rate, request};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

const PART: u64 = 64 * MIB;

/// Uploads `size` bytes to `path` in parts of `PART`; returns the seconds it took.
async fn multipart(host: &str, creds: &Credentials, path: &str, size: u64) -> f64 {
    let t = Instant::now();
    let r = request(host, "POST", path, "uploads=", creds, tokio::io::empty(), 0).await;
    assert_eq!(r.status, 200, "create multipart upload");
    let xml = String::from_utf8_lossy(&r.body).into_owned();
    let id = xml
        .split("<UploadId>")
        .nth(1)
        .and_then(|s| s.split("</UploadId>").next())
        .expect("an upload id")
        .to_string();
    let mut done = String::from("<CompleteMultipartUpload>");
    let (mut n, mut at) = (1u32, 0u64);
    while at < size {
        let len = PART.min(size - at);
        let body = Generated::new(&format!("{path}-{n}"), len);
        let q = format!("partNumber={n}&uploadId={id}");
        let r = request(host, "PUT", path, &q, creds, body, len).await;
        assert_eq!(r.status, 200, "part {n}");
        done += &format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
            r.etag
        );
        at += len;
        n += 1;
    }
    done += "</CompleteMultipartUpload>";
    let q = format!("uploadId={id}");
    let body = done.as_bytes();
    let r = request(host, "POST", path, &q, creds, body, body.len() as u64).await;
    assert_eq!(
        r.status,
        200,
        "complete: {}",
        String::from_utf8_lossy(&r.body)
    );
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let gib: u64 = std::env::var("MEMO_BENCH_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let net = MemoryNetwork::new();
    let n2 = net.clone();
    let root = dir.path().to_path_buf();
    let mut local = LocalNetwork::start(
        &LocalSpec::default(),
        move |kp: &Keypair| Arc::new(n2.join(kp.account())) as Arc<dyn Transport>,
        move |i| FsShardStore::open(root.join(format!("provider-{i}"))).unwrap(),
    )
    .await
    .unwrap();
    let (_, client) = local.users.remove(0);
    let client = Arc::new(client);
    // `MEMO_BENCH_DIRECT=1`: the same uploads through the client alone, for comparison.
    let direct = std::env::var("MEMO_BENCH_DIRECT").is_ok_and(|v| v == "1");
    let creds = Credentials::derive(&Keypair::from_seed("user-alice"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        Gateway::new(client.clone(), GatewayConfig::new(creds.clone()))
            .serve(listener, std::future::pending()),
    );
    let r = request(&host, "PUT", "/rss", "", &creds, tokio::io::empty(), 0).await;
    assert_eq!(r.status, 200, "create bucket");

    let how = if direct {
        "direct client, 64 MiB puts"
    } else {
        "S3 gateway multipart upload, 64 MiB parts"
    };
    println!("{how}, shards in files; peak RSS of the process");
    println!("{:<22} {:>10} {:>14}", "", "MiB/s", "peak RSS MiB");
    println!("{:<22} {:>10} {:>14}", "started", "", status_mib("VmHWM:"));
    for (name, size) in [
        ("1 GiB".to_string(), 1u64 << 30),
        (format!("{gib} GiB"), gib << 30),
    ] {
        let secs = if direct {
            let t = Instant::now();
            let mut at = 0;
            while at < size {
                let len = PART.min(size - at);
                let body = Generated::new(&format!("{name}-{at}"), len);
                client
                    .put(&format!("{name}-{at}"), body, Some(len), &mut |_| {})
                    .await
                    .unwrap();
                at += len;
            }
            t.elapsed().as_secs_f64()
        } else {
            multipart(
                &host,
                &creds,
                &format!("/rss/{}", name.replace(' ', "")),
                size,
            )
            .await
        };
        println!(
            "{:<22} {:>10.1} {:>14}",
            format!("after {name}"),
            rate(size, secs),
            status_mib("VmHWM:")
        );
    }
    drop(local);
}

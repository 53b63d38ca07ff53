//! The S3 gateway over an in-process network, on 127.0.0.1: refused without a signature,
//! driven by boto3 (`s3_boto3.py`), and checked against the user's index afterwards.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use memo_sdk::local::{LocalSpec, memory_network};
use memo_sdk::memo_core::Keypair;
use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
use memo_sdk::{Client, ClientError};
use tokio::net::TcpListener;

/// The gateway's limit for one body in these tests: above a 5 MiB part, cheap to exceed.
const MAX_PUT: u64 = 6 << 20;

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), memo_sdk::s3::GatewayError>>,
}

async fn start(client: Arc<Client>, creds: &Credentials, max_put: u64) -> Running {
    let mut cfg = GatewayConfig::new(creds.clone());
    cfg.max_put_size = max_put;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Gateway::new(client, cfg).serve(listener, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// One plain HTTP request; returns the whole response.
fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Object ids, names and reference counts in the user's index.
async fn index(client: &Client) -> Result<Vec<(String, u64)>, ClientError> {
    Ok(client
        .list()
        .await?
        .into_iter()
        .map(|o| (o.name, o.refs))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_requests_are_refused() {
    let (_net, mut local) = memory_network(&LocalSpec::default()).await.unwrap();
    let (_, client) = local.users.remove(0);
    let creds = Credentials::derive(&Keypair::from_seed("user-alice"));
    let gw = start(Arc::new(client), &creds, MAX_PUT).await;
    let addr = gw.addr;
    let resp = tokio::task::spawn_blocking(move || {
        raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("AccessDenied"), "{resp}");
    let resp = tokio::task::spawn_blocking(move || {
        raw_http(
            addr,
            "PUT /bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    gw.stop().await;
}

#[test]
fn credentials_are_derived_from_the_key() {
    let a = Credentials::derive(&Keypair::from_seed("user-alice"));
    let b = Credentials::derive(&Keypair::from_seed("user-bob"));
    assert_eq!(a, Credentials::derive(&Keypair::from_seed("user-alice")));
    assert_ne!(a.access_key, b.access_key);
    assert_ne!(a.secret_key, b.secret_key);
    assert!(a.access_key.starts_with("MEMO") && a.access_key.len() == 20);
    assert!(!format!("{a:?}").contains(&a.secret_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_drives_the_gateway() {
    let (_net, mut local) = memory_network(&LocalSpec::default()).await.unwrap();
    let (_, client) = local.users.remove(0);
    let client = Arc::new(client);
    // Something stored outside the gateway stays out of its buckets.
    client.put_bytes("notes.txt", b"not s3").await.unwrap();
    let creds = Credentials::derive(&Keypair::from_seed("user-alice"));
    let gw = start(client.clone(), &creds, MAX_PUT).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_boto3.py");
    let (endpoint, c2) = (format!("http://{}", gw.addr), creds.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", &c2.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &c2.secret_key)
            .env("MEMO_S3_MAX_PUT", MAX_PUT.to_string())
            .env_remove("AWS_PROFILE")
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs (boto3 comes from `pip install boto3`, see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("boto3: all checks passed"), "{stdout}");
    gw.stop().await;

    // What is left: `notes.txt`, bucket `keep`, its three keys, and one data object that the
    // three keys reference three times (same bytes stored once). Deleted keys, the completed,
    // copied and aborted uploads, the oversized bodies and the broken upload left nothing.
    let mut idx = index(&client).await.unwrap();
    idx.sort();
    let data: Vec<_> = idx.iter().filter(|(n, _)| n == "memo-s3/data").collect();
    assert_eq!(data.len(), 1, "{idx:#?}");
    assert_eq!(data[0].1, 3, "{idx:#?}");
    let entries: Vec<_> = idx
        .iter()
        .filter(|(n, _)| n.starts_with("memo-s3/1 "))
        .collect();
    assert_eq!(entries.len(), 4, "{idx:#?}");
    assert!(entries.iter().all(|(_, refs)| *refs == 1), "{idx:#?}");
    assert!(idx.iter().any(|(n, r)| n == "notes.txt" && *r == 1));
    assert_eq!(idx.len(), 6, "{idx:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn awscli_and_rclone_drive_the_gateway() {
    let (_net, mut local) = memory_network(&LocalSpec::default()).await.unwrap();
    let (_, client) = local.users.remove(0);
    let client = Arc::new(client);
    let creds = Credentials::derive(&Keypair::from_seed("user-alice"));
    let gw = start(client.clone(), &creds, 5 << 30).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_cli.sh");
    let (endpoint, c2) = (format!("http://{}", gw.addr), creds.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", &c2.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &c2.secret_key)
            .env_remove("AWS_PROFILE")
            .output()
    })
    .await
    .unwrap()
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aws-cli/rclone script failed (aws-cli and rclone come from .ci/run)\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("cli: all checks passed"), "{stdout}");
    gw.stop().await;
    // Everything was deleted: no reference is left behind.
    let left = index(&client).await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
}

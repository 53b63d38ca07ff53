//! The S3 gateway against the direct client, in the same run over one in-process network:
//! put and get of one large object (1 GiB by default), the gateway's through plain HTTP/1.1
//! requests signed with SigV4 (`UNSIGNED-PAYLOAD`) on 127.0.0.1.
//!
//! `cargo bench -p memo-sdk --features s3 --bench s3` (`MEMO_BENCH_MIB` sets the size in MiB,
//! `MEMO_BENCH_ROUNDS` the rounds, default 2; each side's best round is reported).
//! The direct and gateway objects hold different bytes, so neither is deduplicated against the
//! other; the data is generated as it is sent, never held whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use memo_sdk::local::{LocalSpec, memory_network};
use memo_sdk::memo_core::Keypair;
use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

const MIB: u64 = 1 << 20;

/// `len` pseudo-random bytes from `seed`, generated as they are read.
struct Generated {
    xof: blake3::OutputReader,
    left: u64,
}

impl Generated {
    fn new(seed: &str, len: u64) -> Self {
        Self {
            xof: blake3::Hasher::new().update(seed.as_bytes()).finalize_xof(),
            left: len,
        }
    }
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let dst = buf.initialize_unfilled_to(n);
        self.xof.fill(dst);
        buf.advance(n);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn hmac(key: &[u8], msg: &str) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, msg.as_bytes()).as_ref().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` for now.
fn amz_date() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The head of a SigV4-signed request with an unsigned payload.
fn signed_head(method: &str, host: &str, path: &str, creds: &Credentials, len: u64) -> String {
    let date = amz_date();
    let day = &date[..8];
    let canonical = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"
    );
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(digest.as_ref())
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), day);
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex(&hmac(&key, &to_sign));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {date}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}\r\nContent-Length: {len}\r\n\r\n",
        creds.access_key
    )
}

/// Reads a response head; returns the status and the content length.
async fn read_head(r: &mut BufReader<TcpStream>) -> (u16, u64) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            return (status, len);
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
}

/// Sends one request with `body` streamed after the head; returns the status.
async fn request(
    host: &str,
    method: &str,
    path: &str,
    creds: &Credentials,
    mut body: impl AsyncRead + Unpin,
    len: u64,
) -> (u16, u64) {
    let mut s = TcpStream::connect(host).await.unwrap();
    s.write_all(signed_head(method, host, path, creds, len).as_bytes())
        .await
        .unwrap();
    tokio::io::copy(&mut body, &mut s).await.unwrap();
    let mut r = BufReader::new(s);
    let (status, clen) = read_head(&mut r).await;
    let mut rest = (&mut r).take(clen);
    let got = tokio::io::copy(&mut rest, &mut tokio::io::sink())
        .await
        .unwrap();
    (status, got)
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

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
    let (status, _) = request(&host, "PUT", "/bench", &creds, tokio::io::empty(), 0).await;
    assert_eq!(status, 200, "create bucket");

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
        let (status, _) = request(&host, "PUT", &object, &creds, body, size).await;
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        assert_eq!(status, 200, "gateway put");

        let t = Instant::now();
        let got = client
            .get(&direct, None, &mut tokio::io::sink(), &mut |_| {})
            .await
            .unwrap();
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        assert_eq!(got, size);
        let t = Instant::now();
        let (status, got) = request(&host, "GET", &object, &creds, tokio::io::empty(), 0).await;
        best[3] = best[3].min(t.elapsed().as_secs_f64());
        assert_eq!((status, got), (200, size), "gateway get");
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

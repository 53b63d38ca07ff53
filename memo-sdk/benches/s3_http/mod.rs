//! A bare S3 client for the benches: requests signed with SigV4 (`UNSIGNED-PAYLOAD`) over
//! plain HTTP/1.1, one connection each, and bodies generated as they are sent.

#![allow(dead_code)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use memo_sdk::s3::Credentials;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;

/// A mebibyte.
pub const MIB: u64 = 1 << 20;

/// `len` pseudo-random bytes from `seed`, generated as they are read.
pub struct Generated {
    xof: blake3::OutputReader,
    left: u64,
}

impl Generated {
    /// `len` bytes from `seed`.
    pub fn new(seed: &str, len: u64) -> Self {
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
fn signed_head(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    creds: &Credentials,
    len: u64,
) -> String {
    let date = amz_date();
    let day = &date[..8];
    let canonical = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"
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
        "{method} {path}{}{query} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {date}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}\r\nContent-Length: {len}\r\n\r\n",
        if query.is_empty() { "" } else { "?" },
        creds.access_key
    )
}

/// Reads a response head; returns the status and the content length.
async fn read_head(r: &mut BufReader<TcpStream>) -> (u16, u64, String) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let (mut len, mut etag) = (0, String::new());
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            return (status, len, etag);
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("etag:") {
            etag = v.trim().to_string();
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
}

/// A response: status, body, ETag header.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body (kept only up to 64 KiB; longer bodies are counted and dropped).
    pub body: Vec<u8>,
    /// Body bytes received.
    pub len: u64,
    /// The ETag header, as sent.
    pub etag: String,
}

/// Sends one SigV4-signed request (`query` in canonical order) with `body` streamed after the
/// head, on a new connection.
pub async fn request(
    host: &str,
    method: &str,
    path: &str,
    query: &str,
    creds: &Credentials,
    body: impl AsyncRead + Unpin,
    len: u64,
) -> Reply {
    let mut s = TcpStream::connect(host).await.unwrap();
    s.write_all(signed_head(method, host, path, query, creds, len).as_bytes())
        .await
        .unwrap();
    // 1 MiB writes: the sending side of the bench should cost the process little.
    let mut body = BufReader::with_capacity(1 << 20, body);
    tokio::io::copy_buf(&mut body, &mut s).await.unwrap();
    let mut r = BufReader::new(s);
    let (status, clen, etag) = read_head(&mut r).await;
    let mut rest = (&mut r).take(clen);
    let mut kept = Vec::new();
    (&mut rest)
        .take(64 << 10)
        .read_to_end(&mut kept)
        .await
        .unwrap();
    let more = tokio::io::copy(&mut rest, &mut tokio::io::sink())
        .await
        .unwrap();
    Reply {
        status,
        len: kept.len() as u64 + more,
        body: kept,
        etag,
    }
}

/// MiB/s.
pub fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

//! What the devnet benchmarks share besides the test harness: an SDK client for a devnet user,
//! pseudo-random data and environment settings.

use crate::harness::Devnet;
use memo_sdk::config::ClientFile;
use memo_sdk::{Client, ClientConfig};
use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The `memo` binary's allocator, for the in-process side of a benchmark too (the pipeline
/// figures and the client): the same allocator on both sides of a comparison.
#[global_allocator]
static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;

/// Alice's client with her config's codec settings and ledger (every put pays for its storage
/// before it is admitted, as a user's does); `tune` adjusts the rest.
pub async fn client(
    net: &Devnet,
    tune: impl FnOnce(&mut ClientConfig),
) -> Result<(Client, ClientFile), Box<dyn Error>> {
    let file = ClientFile::load(&net.user("alice"))?;
    let client = file.connect(tune).await?;
    Ok((client, file))
}

/// Environment variable `name` parsed as a `T`; `None` if it is unset or does not parse.
pub fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// `len` pseudo-random bytes from `seed`: the first `len` bytes of [`Random::new`]`(_, seed)`.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Random::new(len as u64, seed).fill(&mut v);
    v
}

/// `len` pseudo-random bytes (xorshift64), generated as they are read (no copy in memory or on
/// disk).
pub struct Random {
    state: u64,
    left: u64,
}

impl Random {
    pub fn new(len: u64, seed: u64) -> Self {
        Self {
            state: seed | 1,
            left: len,
        }
    }

    /// Fills `out` with the next bytes of the stream, ignoring its length limit.
    fn fill(&mut self, out: &mut [u8]) {
        for w in out.chunks_mut(8) {
            let s = &mut self.state;
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            w.copy_from_slice(&s.to_le_bytes()[..w.len()]);
        }
    }
}

impl AsyncRead for Random {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Whole 8-byte words so the stream does not depend on the reader's buffer sizes.
        let n = (buf.remaining() as u64 & !7).min(self.left) as usize;
        if n > 0 {
            let mut tmp = vec![0u8; n];
            self.fill(&mut tmp);
            buf.put_slice(&tmp);
            self.left -= n as u64;
        }
        Poll::Ready(Ok(()))
    }
}

//! A custom transport: wrap any `Transport` to observe (or shape) what crosses the network.
//!
//! ```text
//! cargo run --release -p memo-examples --example custom_transport
//! ```
//!
//! memo's services only see the `Transport` trait: request/response between accounts, with the
//! sender authenticated. Implement it over your own network stack (or wrap one, as here) and
//! pass it to `LocalNetwork::start`, `Client::new`, `Keeper::new` or `Provider::new`.

use anyhow::Result;
use async_trait::async_trait;
use memo_core::AccountId;
use memo_core::codec::{Bytes, CodecParams};
use memo_core::ownership::MemoryShardStore;
use memo_core::transport::{Incoming, MemoryNetwork, Transport, TransportError};
use memo_sdk::local::{LocalNetwork, LocalSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the bytes every node sends, then delegates.
struct Counting<T> {
    inner: T,
    sent: Arc<AtomicU64>,
}

#[async_trait]
impl<T: Transport> Transport for Counting<T> {
    fn local_id(&self) -> AccountId {
        self.inner.local_id()
    }
    fn add_address(&self, peer: AccountId, address: &str) {
        self.inner.add_address(peer, address)
    }
    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError> {
        self.sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        self.inner.request(peer, body).await
    }
    async fn next_incoming(&self) -> Option<Incoming> {
        self.inner.next_incoming().await
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let net = MemoryNetwork::new();
    let sent = Arc::new(AtomicU64::new(0));
    let spec = LocalSpec {
        params: CodecParams::with_shards(4, 2),
        ..LocalSpec::default()
    };
    let counter = sent.clone();
    let local: LocalNetwork<MemoryShardStore> = LocalNetwork::start(
        &spec,
        |kp| {
            Arc::new(Counting {
                inner: net.join(kp.account()),
                sent: counter.clone(),
            }) as Arc<dyn Transport>
        },
        |_| MemoryShardStore::new(),
    )
    .await?;
    let alice = local.user("alice").expect("alice is in the default spec");
    let data = vec![7u8; 4 << 20];
    alice.put_bytes("sevens", &data).await?;
    let first = sent.swap(0, Ordering::Relaxed);
    alice.put_bytes("sevens", &data).await?;
    let second = sent.load(Ordering::Relaxed);
    println!("first put sent {first} bytes (4 MiB as 4+2 shards plus requests)");
    println!("second put of the same data sent {second} bytes (only metadata: the chunks dedup)");
    Ok(())
}

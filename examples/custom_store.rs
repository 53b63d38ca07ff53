//! A custom shard store: keep provider shards wherever you like, and prove it conforms.
//!
//! ```text
//! cargo run --release -p memo-examples --example custom_store
//! ```
//!
//! A provider stores shards through the small `ShardStore` trait. This one keeps them in a
//! `BTreeMap` behind a mutex (swap in S3, a database, a raw device...). The same conformance
//! suite that memo's own backends pass (`memo_core::testkit`, feature `testkit`) checks it, and
//! then it serves a whole local network.

use anyhow::{Result, bail};
use memo_core::ShardId;
use memo_core::ownership::{ShardStore, ShardStoreError, Verified};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::local::{LocalNetwork, LocalSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct MapStore(Mutex<BTreeMap<ShardId, Vec<u8>>>);

impl MapStore {
    fn map(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<ShardId, Vec<u8>>>, ShardStoreError> {
        self.0.lock().map_err(|_| ShardStoreError::Backend {
            op: "lock",
            reason: "poisoned".into(),
        })
    }
}

impl ShardStore for MapStore {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        // Refuses bytes that do not hash to `id` (ShardStoreError::Mismatch).
        self.put_verified(Verified::check(id, bytes)?)
    }
    // The provider's Holder checks every shard before storing it: no second hash here.
    fn put_verified(&self, shard: Verified<'_>) -> Result<bool, ShardStoreError> {
        let mut map = self.map()?;
        if map.contains_key(shard.id()) {
            return Ok(false);
        }
        map.insert(*shard.id(), shard.bytes().to_vec());
        Ok(true)
    }
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        Ok(self.map()?.get(id).cloned())
    }
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        Ok(self.map()?.contains_key(id))
    }
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        Ok(self.map()?.remove(id).is_some())
    }
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        Ok(self.map()?.keys().copied().collect())
    }
    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        Ok(self.map()?.values().map(|v| v.len() as u64).sum())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // The same checks memo's memory, redb and file stores pass; panics name a broken contract.
    memo_core::testkit::shard_store_conformance(MapStore::default);
    println!("MapStore passes the shard-store conformance suite");

    let net = MemoryNetwork::new();
    let local: LocalNetwork<MapStore> = LocalNetwork::start(
        &LocalSpec::default(),
        |kp| Arc::new(net.join(kp.account())) as Arc<dyn Transport>,
        |_| MapStore::default(),
    )
    .await?;
    let alice = local.user("alice").expect("alice is in the default spec");
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i >> 3) as u8).collect();
    alice.put_bytes("doc", &data).await?;
    if alice.get_bytes("doc").await? != data {
        bail!("read back different bytes");
    }
    let held: usize = local
        .providers
        .iter()
        .map(|p| p.service.store().list().map(|l| l.len()).unwrap_or(0))
        .sum();
    println!("providers on MapStore hold {held} shards; the object reads back exactly");
    Ok(())
}

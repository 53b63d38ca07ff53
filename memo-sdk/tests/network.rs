//! End to end on the in-memory network: keepers, providers and users as separate services.

use memo_core::ownership::ShardStore;
use memo_sdk::ClientError;
use memo_sdk::local::{LocalSpec, memory_network};

mod common;
use common::spec;

use memo_core::testkit::random_bytes as data;

fn shards_held<S: ShardStore + 'static>(net: &memo_sdk::local::LocalNetwork<S>) -> usize {
    net.providers
        .iter()
        .map(|p| p.service.store().list().unwrap().len())
        .sum()
}

/// The seeds' scenario, object by object, over the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_scenario_over_the_network() {
    let (_mem, net) = memory_network(&spec()).await.unwrap();
    let (u1, u2, u3) = (
        net.user("alice").unwrap(),
        net.user("bob").unwrap(),
        net.user("carol").unwrap(),
    );
    let x = data(300_000, 1);

    // User 1 stores X: every chunk is uploaded, k+m shards each on distinct providers.
    let put = u1.put_bytes("x.bin", &x).await.unwrap();
    assert_eq!(put.uploaded_chunks, put.chunks);
    let held = shards_held(&net);
    assert_eq!(held, put.chunks * 6);
    assert_eq!(u1.get_bytes("x.bin").await.unwrap(), x);

    // Stores it again: refcount 2, no new shard traffic.
    let again = u1.put_bytes("x.bin", &x).await.unwrap();
    assert_eq!(
        (again.id, again.uploaded_chunks, again.uploaded_bytes),
        (put.id, 0, 0)
    );
    assert_eq!(u1.stat("x.bin").await.unwrap().object.refs, 2);

    // User 2 stores X (through another keeper): a second owner, same copies.
    let p2 = u2.put_bytes("mine.bin", &x).await.unwrap();
    assert_eq!((p2.id, p2.uploaded_chunks), (put.id, 0));
    assert_eq!(shards_held(&net), held);
    assert_eq!(u2.get_bytes("mine.bin").await.unwrap(), x);

    // User 3 deletes X: refused, nothing changes.
    let refused = u3.delete(&put.id.to_hex()).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(ref m)) if m.contains("not an owner")),
        "{refused:?}"
    );

    // User 1 deletes twice: refcount 1, then no longer an owner; the data stays.
    u1.delete("x.bin").await.unwrap();
    assert_eq!(u1.stat("x.bin").await.unwrap().object.refs, 1);
    u1.delete("x.bin").await.unwrap();
    assert!(matches!(
        u1.stat("x.bin").await,
        Err(ClientError::NotFound(_))
    ));
    assert_eq!(shards_held(&net), held);
    assert_eq!(u2.get_bytes("mine.bin").await.unwrap(), x);

    // User 1 deletes again: refused.
    assert!(matches!(
        u1.delete(&put.id.to_hex()).await,
        Err(ClientError::Refused(_))
    ));

    // User 2 deletes: the last owner's last delete purges every shard from every provider.
    u2.delete("mine.bin").await.unwrap();
    assert_eq!(shards_held(&net), 0);
    for p in &net.providers {
        assert_eq!(p.service.store().used_bytes().unwrap(), 0);
    }
    assert_eq!(u2.account_status().await.unwrap().stored_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_agree_and_reads_survive_lost_providers() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let alice = net.user("alice").unwrap();
    let x = data(500_000, 2);
    let put = alice.put_bytes("a", &x).await.unwrap();
    // Users on other keepers see the state this one wrote (the keepers share one log).
    let bob = net.user("bob").unwrap();
    let p2 = bob.put_bytes("same", &x).await.unwrap();
    assert_eq!((p2.id, p2.uploaded_chunks), (put.id, 0));
    let stat = alice.stat("a").await.unwrap();
    assert_eq!(stat.chunks.len(), put.chunks);
    assert!(
        stat.chunks
            .iter()
            .all(|c| c.healthy == 6 && c.needed == 4 && c.total == 6)
    );
    // Two providers (m = 2) go away: reads still return the exact bytes, ranges too.
    mem.set_down(net.providers[0].account());
    mem.set_down(net.providers[3].account());
    assert_eq!(alice.get_bytes("a").await.unwrap(), x);
    let mut part = Vec::new();
    alice
        .get("a", Some(123_456..300_001), &mut part, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(part, &x[123_456..300_001]);
    // A third one: some chunk has only 3 of 4 needed shards reachable.
    mem.set_down(net.providers[5].account());
    assert!(matches!(
        alice.get_bytes("a").await,
        Err(ClientError::Codec(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_put_leaves_no_object_and_no_references() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let bob = net.user("bob").unwrap();
    // Every provider is unreachable: uploads fail, the put fails, nothing is committed.
    for p in &net.providers {
        mem.set_down(p.account());
    }
    let r = bob.put_bytes("b", &data(200_000, 3)).await;
    assert!(matches!(r, Err(ClientError::Upload { .. })), "{r:?}");
    assert!(bob.list().await.unwrap().is_empty());
    assert_eq!(bob.account_status().await.unwrap().stored_bytes, 0);
    // Unknown objects and unreachable keepers get typed errors.
    assert!(matches!(
        bob.get_bytes("nope").await,
        Err(ClientError::NotFound(_))
    ));
    for k in &net.keepers {
        mem.set_down(k.account());
    }
    assert!(matches!(
        bob.list().await,
        Err(ClientError::NoKeeper { tried: 3, .. })
    ));
}

/// Holds back the `DeleteShards` requests its node sends: a purge slow to reach the holders.
struct SlowPurge {
    inner: memo_core::transport::MemoryTransport,
    delay: std::time::Duration,
}

#[async_trait::async_trait]
impl memo_core::transport::Transport for SlowPurge {
    fn local_id(&self) -> memo_core::AccountId {
        self.inner.local_id()
    }

    fn add_address(&self, peer: memo_core::AccountId, address: &str) {
        self.inner.add_address(peer, address)
    }

    async fn request(
        &self,
        peer: memo_core::AccountId,
        body: bytes::Bytes,
    ) -> Result<bytes::Bytes, memo_core::transport::TransportError> {
        if let Ok(memo_core::protocol::Request::DeleteShards { .. }) =
            memo_core::protocol::Request::from_bytes(&body)
        {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.request(peer, body).await
    }

    async fn next_incoming(&self) -> Option<memo_core::transport::Incoming> {
        self.inner.next_incoming().await
    }
}

/// The last owner deletes an object, and while the purge is still on its way to the holders
/// another user stores the same bytes (same chunks, same shard ids). The new upload must not
/// be lost to the old purge: the keeper places the chunks again only once the purge is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_put_during_a_slow_purge_keeps_its_shards() {
    use std::sync::Arc;
    let mem = memo_core::transport::MemoryNetwork::new();
    let m2 = mem.clone();
    let net = memo_sdk::local::LocalNetwork::start(
        &LocalSpec {
            keepers: 1,
            ..spec()
        },
        move |kp| {
            Arc::new(SlowPurge {
                inner: m2.join(kp.account()),
                delay: std::time::Duration::from_millis(400),
            }) as Arc<dyn memo_core::transport::Transport>
        },
        |_| memo_core::ownership::MemoryShardStore::new(),
    )
    .await
    .unwrap();
    let alice = net.user("alice").unwrap();
    let bob = net.user("bob").unwrap();
    let bytes = data(300_000, 11);
    alice.put_bytes("x", &bytes).await.unwrap();
    let stored = shards_held(&net);
    assert!(stored > 0);
    let (deleted, reput) = tokio::join!(alice.delete("x"), async {
        // Once alice's delete is applied (her listing is empty), her purge is in flight.
        while !alice.list().await.unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        bob.put_bytes("y", &bytes).await
    });
    deleted.unwrap();
    let report = reput.unwrap();
    assert!(
        report.uploaded_chunks > 0,
        "the chunks were purged, so bob uploads them again"
    );
    assert_eq!(bob.get_bytes("y").await.unwrap(), bytes);
    assert_eq!(shards_held(&net), stored, "bob's copies are all there");
}

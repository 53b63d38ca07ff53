//! A provider whose disk fills up (issue #20): it refuses shards before writing them, a client
//! places a refused chunk again on other providers, keepers stop placing on it once it reports
//! no room, and a put fails for lack of space only when too few providers have room, saying so.

use memo_core::ShardId;
use memo_core::ownership::ShardStore;
use memo_core::testkit::{SmallDisk, random_bytes as data};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::ClientError;
use memo_sdk::keeper::repair::RepairConfig;
use memo_sdk::local::{LocalNetwork, LocalSpec};
use memo_sdk::testkit::{held_shards, registered_shards};
use std::sync::Arc;

const SHARD: u64 = 16 * 1024;

mod common;

fn spec(providers: usize) -> LocalSpec {
    LocalSpec {
        providers,
        ..common::spec()
    }
}

/// A network whose provider 0 has a disk of `disk` bytes.
async fn network(providers: usize, disk: u64) -> LocalNetwork<SmallDisk> {
    let mem = MemoryNetwork::new();
    LocalNetwork::start(
        &spec(providers),
        move |kp| Arc::new(mem.join(kp.account())) as Arc<dyn Transport>,
        |i| SmallDisk::new((i == 0).then_some(disk)),
    )
    .await
    .unwrap()
}

fn used(net: &LocalNetwork<SmallDisk>, i: usize) -> u64 {
    net.providers[i].service.store().used_bytes().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_provider_does_not_stop_puts_and_gets_nothing_more() {
    // Room for 10 shards on provider 0; every object of 1 MiB puts 102 shards, 17 per
    // provider on average.
    let net = network(8, 10 * SHARD).await;
    let alice = net.user("alice").unwrap();
    let objects: Vec<Vec<u8>> = (0..4).map(|i| data(1 << 20, 40 + i)).collect();
    // It fills up mid-put: the client places the refused chunks again elsewhere.
    for (i, o) in objects.iter().enumerate() {
        alice.put_bytes(&format!("o{i}"), o).await.unwrap();
    }
    assert!(used(&net, 0) <= 10 * SHARD, "the full disk took no more");
    // What the refused placements stored elsewhere was taken back at once: no orphan.
    assert_eq!(held_shards(&net), registered_shards(&net));
    assert!(used(&net, 0) > 0, "it took shards while it had room");
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(&alice.get_bytes(&format!("o{i}")).await.unwrap(), o);
    }
    // Once the keepers probed it, they place on it nothing larger than its room: no data
    // chunk's shard (a small manifest shard may still fit).
    for r in net.repairers(&RepairConfig::default()) {
        r.round().await;
    }
    let full = net.providers[0].account();
    let room = 10 * SHARD - used(&net, 0);
    assert!(room < SHARD);
    // Placement itself leaves it out (not only the client's retries).
    let chunks: Vec<memo_core::ownership::ChunkInfo> = (0..20u8)
        .map(|c| memo_core::ownership::ChunkInfo {
            id: memo_core::ChunkId([c; 32]),
            stored_bytes: 6 * SHARD,
            shards: (0..6)
                .map(|i| ShardId([c.wrapping_mul(7).wrapping_add(i); 32]))
                .collect(),
        })
        .collect();
    let placed = net.keepers[0]
        .handle_request(
            alice.account(),
            memo_core::protocol::Request::Place {
                chunks,
                exclude: vec![],
            },
        )
        .await;
    let memo_core::protocol::Response::Placed(grants) = placed else {
        panic!("{placed:?}")
    };
    assert!(
        grants
            .iter()
            .flatten()
            .all(|g| !g.placement.holders.contains(&Some(full)))
    );
    let last = alice.put_bytes("last", &data(1 << 20, 50)).await.unwrap();
    assert!(used(&net, 0) <= 10 * SHARD);
    let stat = alice.stat(&last.id.to_hex()).await.unwrap();
    let (_manifest, data_chunks) = stat.chunks.split_last().unwrap();
    assert!(
        data_chunks.iter().all(|c| !c.holders.contains(&Some(full))),
        "a data chunk was placed on the full provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_fails_for_lack_of_space_only_without_enough_providers_with_room() {
    // Six providers for six shards a chunk: with one full, no placement works.
    let net = network(6, 0).await;
    let alice = net.user("alice").unwrap();
    // Four data chunks and the manifest, uploading at once: when the first fails, the others
    // in flight finish, and the failed put takes back all they stored.
    let err = alice
        .put_bytes("x", &data(200_000, 51))
        .await
        .expect_err("no placement has room");
    let text = err.to_string();
    assert!(text.contains("no room"), "{text}");
    assert!(matches!(err, ClientError::Rpc(_)), "{err:?}");
    assert!(alice.list().await.unwrap().is_empty(), "nothing was stored");
    // The failed put took back what it had stored on the providers with room.
    assert_eq!(held_shards(&net), 0);
}

//! A client killed at any step of a put (issue #20), on virtual time: the put either committed
//! (its object is listed by its name and reads back) or left no reference; and once the
//! tickets of its uploads expire, providers hold exactly the shards the registry places on
//! them: no orphan outlives the reclaim.

use futures::FutureExt;
use memo_core::testkit::random_bytes as data;
use memo_sdk::Env;

mod common;
use memo_sdk::local::{LocalSpec, memory_network};
use memo_sdk::testkit::{held_shards as held, registered_shards as registered};
use std::time::Duration;

#[test]
fn a_put_killed_at_any_step_commits_or_leaves_nothing_past_the_reclaim() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let env = Env::simulated(20);
        let spec = LocalSpec {
            env: env.clone(),
            ..common::spec()
        };
        let (_mem, net) = memory_network(&spec).await.unwrap();
        let alice = net.user("alice").unwrap();
        let steps = [1usize, 2, 3, 4, 5, 6, 7, 8, 16, 64, 4096];
        let mut committed = Vec::new();
        for (i, &n) in steps.iter().enumerate() {
            let name = format!("x{i}");
            let x = data(300_000, 60 + i as u8);
            // The client runs `n` steps of its put, then dies (its future is dropped).
            let mut put = Box::pin(alice.put_bytes(&name, &x));
            let mut finished = None;
            for _ in 0..n {
                if let Some(r) = put.as_mut().now_or_never() {
                    finished = Some(r);
                    break;
                }
                tokio::task::yield_now().await;
            }
            drop(put);
            // Let whatever the keepers had already taken finish.
            env.sleep(Duration::from_secs(1)).await;
            let listed = alice
                .list()
                .await
                .unwrap()
                .iter()
                .any(|o| o.names.contains(&name));
            if let Some(r) = finished {
                r.unwrap();
                assert!(listed, "{name} finished but is not listed");
            }
            if listed {
                assert_eq!(alice.get_bytes(&name).await.unwrap(), x);
                committed.push(name);
            }
        }
        assert!(
            !committed.is_empty() && committed.len() < steps.len(),
            "some puts were killed before they committed, some after: {committed:?}"
        );
        // Every reference alice holds is an object she lists.
        let status = alice.account_status().await.unwrap();
        assert_eq!(status.objects as usize, committed.len());
        // Past the tickets' life, the grace and a reclaim round: no orphan is left.
        assert!(
            held(&net) > registered(&net),
            "the killed puts left uploads behind"
        );
        let wait = Duration::from_millis(memo_core::ticket::TICKET_TTL_MS)
            + memo_sdk::provider::RECLAIM_GRACE
            + 2 * memo_sdk::provider::RECLAIM_EVERY;
        env.sleep(wait).await;
        assert_eq!(held(&net), registered(&net));
        for name in &committed {
            assert!(alice.get_bytes(name).await.is_ok());
        }
    });
}

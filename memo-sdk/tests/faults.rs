//! A client killed, or a provider restarted, at any step of a put (issue #20), on virtual time.
//!
//! Killed client: the put either committed (its object is listed by its name and reads back)
//! or left no reference; and once the tickets of its uploads expire, providers hold exactly the
//! shards the registry places on them: no orphan outlives the reclaim.

use futures::FutureExt;
use memo_core::testkit::random_bytes as data;
use memo_sdk::Env;

mod common;
use memo_sdk::local::{LocalSpec, memory_network};
use memo_sdk::testkit::{held_shards as held, registered_shards as registered};
use std::time::Duration;

/// Polls `fut` for up to `n` steps (yielding to the network's tasks between them): its output
/// if it finished within them.
async fn steps_of<F: std::future::Future>(
    mut fut: std::pin::Pin<&mut F>,
    n: usize,
) -> Option<F::Output> {
    for _ in 0..n {
        if let Some(r) = fut.as_mut().now_or_never() {
            return Some(r);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Past every ticket's life, the reclaim grace and two reclaim rounds.
fn reclaim_wait() -> Duration {
    Duration::from_millis(memo_core::ticket::TICKET_TTL_MS)
        + memo_sdk::provider::RECLAIM_GRACE
        + 2 * memo_sdk::provider::RECLAIM_EVERY
}

#[test]
fn a_put_killed_at_any_step_commits_or_leaves_nothing_past_the_reclaim() {
    let rt = common::virtual_runtime();
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
            let finished = steps_of(put.as_mut(), n).await;
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
        env.sleep(reclaim_wait()).await;
        assert_eq!(held(&net), registered(&net));
        for name in &committed {
            assert!(alice.get_bytes(name).await.is_ok());
        }
    });
}

/// A provider that restarts at any step of a put (issue #20), on virtual time: the put goes on
/// around it (its shards placed elsewhere) or fails, and its outcome is the truth: a put that
/// succeeded is listed and reads back, one that failed is not listed. After the restart the
/// provider serves again, and once the tickets expire no orphan is left anywhere.
#[test]
fn a_provider_restarted_at_any_step_of_a_put_loses_nothing_and_leaks_nothing() {
    let rt = common::virtual_runtime();
    rt.block_on(async {
        let env = Env::simulated(21);
        let spec = LocalSpec {
            env: env.clone(),
            providers: 8,
            ..common::spec()
        };
        let (mem, mut net) = memory_network(&spec).await.unwrap();
        let steps = [1usize, 2, 3, 4, 6, 8, 16, 64, 4096];
        let mut stored = Vec::new();
        let mut interrupted = 0;
        for (i, &n) in steps.iter().enumerate() {
            let name = format!("r{i}");
            let x = data(2_000_000, 80 + i as u8);
            let which = i % net.providers.len();
            let victim = net.providers[which].account();
            let outcome = {
                let alice = net.user("alice").unwrap();
                // The put runs `n` steps; then the provider dies, and the put goes on.
                let mut put = Box::pin(alice.put_bytes(&name, &x));
                let finished = steps_of(put.as_mut(), n).await;
                net.providers[which].stop();
                mem.set_down(victim);
                match finished {
                    Some(r) => r,
                    None => {
                        interrupted += 1;
                        put.await
                    }
                }
            };
            // It comes back with its disk.
            net.providers[which].restart();
            mem.set_up(victim);
            let alice = net.user("alice").unwrap();
            let listed = alice
                .list()
                .await
                .unwrap()
                .iter()
                .any(|o| o.names.contains(&name));
            assert_eq!(outcome.is_ok(), listed, "{name}: {outcome:?}");
            if listed {
                assert_eq!(alice.get_bytes(&name).await.unwrap(), x);
                stored.push((name, x));
            }
        }
        assert!(
            interrupted >= 4,
            "restarts fell in the middle of puts: {interrupted}"
        );
        assert!(!stored.is_empty());
        env.sleep(reclaim_wait()).await;
        assert_eq!(
            held(&net),
            registered(&net),
            "no orphan outlives the reclaim"
        );
        let alice = net.user("alice").unwrap();
        for (name, x) in &stored {
            assert_eq!(&alice.get_bytes(name).await.unwrap(), x);
        }
    });
}

//! Storage proofs end to end on the in-memory network with a ledger: puts create orders,
//! keepers challenge every epoch, providers prove, the contract verifies, pays and slashes.

use memo_core::AccountId;
use memo_core::codec::CodecParams;
use memo_core::contract::{Answer, Commitment, Epoch, Order, OrderId, Query, RoleInfo};
use memo_core::ownership::{MemoryShardStore, ShardStore, ShardStoreError};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{ShardId, proof};
use memo_sdk::keeper::challenger::{ChallengerConfig, EpochReport};
use memo_sdk::ledger::Ledger;
use memo_sdk::local::ledger::{LedgerSpec, LocalLedger};
use memo_sdk::local::{LocalNetwork, LocalSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A memory store that can be told to serve altered bytes (bit rot, or a cheat).
#[derive(Default)]
struct Faulty {
    inner: MemoryShardStore,
    alter: AtomicBool,
}

impl ShardStore for Faulty {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        self.inner.put(id, bytes)
    }
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        let mut b = self.inner.get(id)?;
        if self.alter.load(Ordering::Relaxed)
            && let Some(b) = b.as_mut()
        {
            for x in b.iter_mut().step_by(100) {
                *x ^= 0xa5;
            }
        }
        Ok(b)
    }
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        self.inner.has(id)
    }
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        self.inner.delete(id)
    }
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        self.inner.list()
    }
    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        self.inner.used_bytes()
    }
}

const STAKE: u64 = 100_000;

fn spec(providers: usize, k: u8, m: u8) -> (LocalSpec, LedgerSpec) {
    let local = LocalSpec {
        keepers: 2,
        providers,
        users: vec!["alice".into(), "bob".into()],
        provider_capacity: 1 << 30,
        params: CodecParams {
            chunk_size: 16 * 1024,
            data_shards: k,
            parity_shards: m,
        },
        ..LocalSpec::default()
    };
    let ledger = LedgerSpec {
        epoch_blocks: 4,
        block_interval: Duration::from_millis(25),
        stake: STAKE,
        challenger: ChallengerConfig {
            prove_timeout: Duration::from_secs(5),
            ..ChallengerConfig::default()
        },
        ..LedgerSpec::default()
    };
    (local, ledger)
}

async fn start((spec, ledger): &(LocalSpec, LedgerSpec)) -> (MemoryNetwork, LocalNetwork<Faulty>) {
    let mem = MemoryNetwork::new();
    let m2 = mem.clone();
    let mut net = LocalNetwork::start(
        spec,
        move |kp| Arc::new(m2.join(kp.account())) as Arc<dyn Transport>,
        |_| Faulty::default(),
    )
    .await
    .unwrap();
    net.attach_ledger(ledger, spec.provider_capacity)
        .await
        .unwrap();
    (mem, net)
}

use memo_core::testkit::random_bytes as data;

mod common;

fn ledger(net: &LocalNetwork<Faulty>) -> &LocalLedger {
    net.ledger.as_ref().expect("a ledger")
}

/// The provider holding the most shards: its index and account.
fn fullest(net: &LocalNetwork<Faulty>) -> (usize, AccountId) {
    net.providers
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.service.store().list().unwrap().len())
        .map(|(i, p)| (i, p.account()))
        .unwrap()
}

fn orders_of(l: &LocalLedger, who: AccountId) -> Vec<(OrderId, Order)> {
    match l.chain.query_now(&Query::OrdersOf(who)) {
        Answer::Orders(v) => v,
        other => panic!("{other:?}"),
    }
}

fn commitment(l: &LocalLedger, id: OrderId) -> Commitment {
    match l.chain.query_now(&Query::Commitment(id)) {
        Answer::Commitment(Some(c)) => c,
        other => panic!("order {id}: {other:?}"),
    }
}

fn balance(l: &LocalLedger, who: AccountId) -> u64 {
    match l.chain.query_now(&Query::Account(who)) {
        Answer::Account(a) => a.balance,
        other => panic!("{other:?}"),
    }
}

fn provider_role(l: &LocalLedger, who: AccountId) -> (u64, memo_core::contract::ProofStats) {
    match l.chain.query_now(&Query::Role(who)) {
        Answer::Role(Some(r)) => match r.info {
            RoleInfo::Provider { stake, stats, .. } => (stake, stats),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// Every keeper's report of `epoch` (they must agree: the verdicts are the ledger's).
async fn reports(l: &LocalLedger, epoch: Epoch) -> EpochReport {
    let wait = async {
        let mut all = Vec::new();
        for c in &l.challengers {
            all.push(c.wait_report(epoch).await);
        }
        all
    };
    let all = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("epoch settled in time");
    for r in &all[1..] {
        let strip = |r: &EpochReport| {
            r.providers
                .iter()
                .map(|p| (p.provider, p.passed, p.failed, p.missed))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(r), strip(&all[0]), "keepers agree on epoch {epoch}");
    }
    all.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_of_challenges_pays_the_honest_and_catches_the_rest() {
    let (mem, net) = start(&spec(6, 4, 2)).await;
    let l = ledger(&net);
    let alice = net.user("alice").unwrap();
    let put = alice.put_bytes("a.bin", &data(40_000, 1)).await.unwrap();

    // Orders: one per (provider, shard length), committed, covering every uploaded shard.
    assert!(!put.orders.is_empty());
    let orders = orders_of(l, alice.account());
    assert_eq!(
        orders.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        put.orders
    );
    let start = orders[0].1.start;
    assert!(orders.iter().all(|(_, o)| o.start == start));
    let mut committed = 0;
    for (id, o) in &orders {
        let c = commitment(l, *id);
        assert_eq!(o.bytes, c.shard_len * c.shards.len() as u64);
        let holder = net
            .providers
            .iter()
            .find(|p| p.account() == o.provider)
            .unwrap();
        for s in &c.shards {
            assert!(
                holder.service.store().has(s).unwrap(),
                "committed where stored"
            );
        }
        committed += c.shards.len();
    }
    assert_eq!(committed, put.chunks * 6);
    for p in &net.providers {
        assert!(orders.iter().any(|(_, o)| o.provider == p.account()));
    }

    // Provider 1 loses its data, provider 2 serves altered bytes, provider 3 goes away.
    let acct = |i: usize| net.providers[i].account();
    let dropped = net.providers[1].service.store();
    for s in dropped.list().unwrap() {
        dropped.delete(&s).unwrap();
    }
    net.providers[2]
        .service
        .store()
        .alter
        .store(true, Ordering::Relaxed);
    net.providers[3].stop();
    mem.set_down(acct(3));

    let honest = [0, 4, 5];
    let mut last_balance = None;
    for e in start + 1..=start + 3 {
        let r = reports(l, e).await;
        for i in honest {
            let x = r.provider(&acct(i)).expect("challenged");
            assert!(x.challenged > 0);
            assert_eq!(
                (x.passed, x.failed, x.missed),
                (x.challenged, 0, 0),
                "epoch {e}: {x:?}"
            );
            assert!(x.earned > 0);
        }
        let p0 = r.provider(&acct(0)).unwrap();
        if let Some(before) = last_balance {
            let gain = p0.balance - before;
            assert!(
                gain > 0 && gain <= p0.earned && gain >= p0.earned * 9 / 10,
                "{gain}"
            );
        }
        last_balance = Some(p0.balance);
        for i in [1, 2] {
            let x = r.provider(&acct(i)).unwrap();
            assert_eq!(
                (x.failed, x.passed, x.missed),
                (x.challenged, 0, 0),
                "{x:?}"
            );
        }
        let x = r.provider(&acct(3)).unwrap();
        assert_eq!(
            (x.missed, x.passed, x.failed),
            (x.challenged, 0, 0),
            "{x:?}"
        );
    }

    // The ledger agrees: slashed stakes, missed marks, a repair fund.
    let (stake1, stats1) = provider_role(l, acct(1));
    assert!(stake1 < STAKE && stats1.failed >= 3 && stats1.proven == 0);
    // A slash is ten epochs of the order's pay (at least the genesis floor of 100), capped at
    // the stake: three failures cost far more than three floors.
    for i in [1, 2] {
        let (stake, _) = provider_role(l, acct(i));
        assert!(stake < STAKE - 3 * 100, "provider {i}: stake {stake}");
    }
    let (stake3, stats3) = provider_role(l, acct(3));
    assert!(
        stake3 < STAKE,
        "silence past the grace of two epochs is slashed"
    );
    assert!(stats3.missed >= 3 && stats3.proven == 0);
    let (stake0, stats0) = provider_role(l, acct(0));
    assert_eq!(stake0, STAKE);
    assert!(stats0.proven >= 3 && stats0.failed == 0);

    // Reputation: the honest score above the prior, the cheats below the placement minimum.
    let rep = l.challengers[0].reputation();
    let now = l.challengers[0].epoch();
    assert!(rep.score(&acct(0), now).0 > proof::PPM as u32 / 2);
    for i in [1, 2, 3] {
        assert!(!rep.eligible(&acct(i), now), "provider {i}");
    }
    assert!(l.last_report().is_some_and(|r| r.epoch >= start + 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_follow_puts_and_end_when_the_data_is_purged() {
    let (_mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let bob = net.user("bob").unwrap();
    let before = balance(l, bob.account());
    let x = data(50_000, 2);
    let put = bob.put_bytes("x", &x).await.unwrap();
    let orders = orders_of(l, bob.account());
    assert_eq!(orders.len(), put.orders.len());
    let escrow: u64 = orders.iter().map(|(_, o)| o.escrow).sum();
    assert_eq!(before - balance(l, bob.account()), escrow);
    let shards: usize = orders
        .iter()
        .map(|(id, _)| commitment(l, *id).shards.len())
        .sum();
    assert_eq!(shards, put.chunks * 3);

    // The same data again: no data moves, no new order.
    let again = bob.put_bytes("x", &x).await.unwrap();
    assert!(again.orders.is_empty());
    assert_eq!(orders_of(l, bob.account()).len(), orders.len());

    // Let the orders run an epoch, then delete twice: the purge ends every order.
    let start = orders[0].1.start;
    reports(l, start).await;
    bob.delete("x").await.unwrap();
    assert_eq!(
        orders_of(l, bob.account()).len(),
        orders.len(),
        "still owned"
    );
    let mid = balance(l, bob.account());
    bob.delete("x").await.unwrap();
    let deleted_in = l.head().epoch;
    l.wait_epoch(deleted_in + 2).await;
    assert!(
        orders_of(l, bob.account()).is_empty(),
        "purged orders end after the current epoch"
    );
    assert!(
        balance(l, bob.account()) > mid,
        "the unused escrow came back"
    );
    // No provider was challenged on purged data.
    for p in &net.providers {
        let (stake, stats) = provider_role(l, p.account());
        assert_eq!((stake, stats.failed), (STAKE, 0), "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_avoids_providers_that_failed() {
    let (_mem, net) = start(&spec(6, 2, 1)).await;
    let l = ledger(&net);
    let alice = net.user("alice").unwrap();
    let put = alice.put_bytes("a", &data(120_000, 3)).await.unwrap();
    let start = orders_of(l, alice.account())[0].1.start;

    // The provider holding most shards loses them all.
    let loser = net
        .providers
        .iter()
        .max_by_key(|p| p.service.store().list().unwrap().len())
        .unwrap();
    let held = loser.service.store().list().unwrap();
    assert!(!held.is_empty(), "{} chunks placed", put.chunks);
    for s in &held {
        loser.service.store().delete(s).unwrap();
    }
    let r = reports(l, start + 1).await;
    let x = r.provider(&loser.account()).unwrap();
    assert!(x.failed > 0 && x.passed == 0, "{x:?}");
    for c in &l.challengers {
        assert!(!c.reputation().eligible(&loser.account(), c.epoch()));
    }

    // New data goes to the others only; never two shards of a chunk on one provider.
    let bob = net.user("bob").unwrap();
    for i in 0..6u8 {
        let p = bob
            .put_bytes(&format!("b{i}"), &data(40_000, 10 + i))
            .await
            .unwrap();
        let stat = bob.stat(&format!("b{i}")).await.unwrap();
        for c in &stat.chunks {
            let holders: Vec<AccountId> = c.holders.iter().flatten().copied().collect();
            let mut distinct = holders.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), holders.len());
            assert!(!holders.contains(&loser.account()));
        }
        assert!(!p.orders.is_empty());
    }
    assert!(loser.service.store().list().unwrap().is_empty());
}

/// A provider holding shards stops; the keepers repair its shards onto other providers and
/// record the repairs on the ledger: the shards are committed under orders of their new
/// holders, the failed provider's stake pays the repairing keepers a penalty per shard, and the
/// new holders are challenged for the moved shards and pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_move_orders_to_the_new_holders_and_the_failed_stake_pays() {
    use memo_core::contract::{Outcome, Params, ProofMark};
    use memo_sdk::keeper::challenger::RecordedRepair;
    use std::collections::BTreeSet;

    let (mem, mut net) = start(&spec(6, 2, 1)).await;
    let alice = net.user("alice").unwrap().account();
    let bytes = data(60_000, 4);
    let put = net.user("alice").unwrap().put_bytes("r", &bytes).await;
    put.unwrap();
    let (vi, victim) = fullest(&net);
    let keepers: Vec<AccountId> = net.keepers.iter().map(|k| k.account()).collect();
    let (lost, keeper_before) = {
        let l = ledger(&net);
        let lost: BTreeSet<ShardId> = orders_of(l, victim)
            .iter()
            .filter(|(_, o)| o.provider == victim)
            .flat_map(|(id, _)| commitment(l, *id).shards)
            .collect();
        let before: Vec<u64> = keepers.iter().map(|k| balance(l, *k)).collect();
        (lost, before)
    };
    assert!(!lost.is_empty());
    assert_eq!(provider_role(ledger(&net), victim).0, STAKE);

    net.providers[vi].stop();
    mem.set_down(victim);
    net.enable_repair(common::fast_repair());
    let l = ledger(&net);

    // Wait (with a deadline) until every lost shard's repair is recorded on the ledger.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let recorded: Vec<(usize, RecordedRepair)> = loop {
        let all: Vec<(usize, RecordedRepair)> = l
            .challengers
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.repairs().into_iter().map(move |r| (i, r)))
            .collect();
        let done: BTreeSet<ShardId> = all.iter().map(|(_, r)| r.shard).collect();
        if done.is_superset(&lost) {
            break all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "repairs not recorded in time: {} of {} ({all:?})",
            done.len(),
            lost.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let penalty = Params::default().repair_penalty;
    let mut paid = vec![0u64; keepers.len()];
    let mut new_orders = Vec::new();
    for (k, r) in &recorded {
        assert_eq!(r.from, victim);
        assert!(lost.contains(&r.shard));
        let Ok(Outcome::Reassigned {
            order,
            moved,
            shortfall,
            penalty: p,
        }) = r.result
        else {
            panic!("the ledger refused a repair: {r:?}");
        };
        assert_eq!((shortfall, p), (0, penalty), "same price: no shortfall");
        assert!(moved > 0);
        paid[*k] += p;
        new_orders.push((order, r.shard, r.to));
    }
    assert_eq!(recorded.len(), lost.len(), "each shard recorded once");

    // The ledger: each moved shard committed under an order of its new holder, which has it.
    for (order, shard, to) in &new_orders {
        assert_ne!(*to, victim);
        let o = match l.chain.query_now(&Query::Order(*order)) {
            Answer::Order(Some(o)) => o,
            other => panic!("order {order}: {other:?}"),
        };
        assert_eq!((o.user, o.provider), (alice, *to));
        assert_eq!(commitment(l, *order).shards, vec![*shard]);
        let holder = net.providers.iter().find(|p| p.account() == *to).unwrap();
        assert!(holder.service.store().has(shard).unwrap());
    }
    for (id, o) in orders_of(l, victim) {
        if o.provider == victim
            && let Answer::Commitment(Some(c)) = l.chain.query_now(&Query::Commitment(id))
        {
            assert!(c.shards.iter().all(|s| !lost.contains(s)), "order {id}");
        }
    }
    // The failed provider paid the penalties (silence alone is not slashed); the repairing
    // keepers got them (and perhaps fees on top).
    assert_eq!(
        provider_role(l, victim).0,
        STAKE - penalty * lost.len() as u64
    );
    for (i, k) in keepers.iter().enumerate() {
        assert!(
            balance(l, *k) >= keeper_before[i] + paid[i],
            "keeper {i} was paid {}",
            paid[i]
        );
    }
    assert!(paid.iter().sum::<u64>() > 0);

    // A new holder is challenged for its moved shard in a later epoch, proves it and is paid.
    let (order, _, to) = new_orders[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let passed_in = loop {
        if let Answer::Order(Some(o)) = l.chain.query_now(&Query::Order(order))
            && let Some(ProofMark::Passed(e)) = o.proof
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order} of {} never proven",
            to.short()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let r = reports(l, passed_in).await;
    let x = r.provider(&to).expect("new holder challenged");
    assert!(x.passed > 0 && x.failed == 0 && x.earned > 0, "{x:?}");
    let (_, stats) = provider_role(l, to);
    assert!(stats.proven > 0 && stats.failed == 0, "{stats:?}");
}

/// A client for `key` on the test network, with the network's codec and keepers.
fn client_for(
    mem: &MemoryNetwork,
    net: &LocalNetwork<Faulty>,
    key: memo_core::Keypair,
) -> memo_sdk::client::Client {
    let like = net.user("alice").unwrap();
    let mut config = memo_sdk::client::ClientConfig::new(like.keepers().to_vec());
    config.params = spec(4, 2, 1).0.params;
    let transport = Arc::new(mem.join(key.account())) as Arc<dyn Transport>;
    memo_sdk::client::Client::new(key, transport, config).unwrap()
}

fn shards_held(net: &LocalNetwork<Faulty>) -> usize {
    net.providers
        .iter()
        .map(|p| p.service.store().list().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_puts_are_refused_before_anything_is_visible() {
    let (mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let x = data(40_000, 7);

    // A key with no ledger in its config: the keepers refuse the put, and its uploads go.
    let stranger = client_for(&mem, &net, memo_core::Keypair::from_seed("stranger"));
    let held = shards_held(&net);
    let err = stranger.put_bytes("x", &x).await.unwrap_err();
    assert!(
        err.is_refusal() && err.to_string().contains("unpaid"),
        "{err}"
    );
    assert!(stranger.list().await.unwrap().is_empty());
    assert_eq!(
        shards_held(&net),
        held,
        "the refused put's uploads were withdrawn"
    );

    // The same key paying from an empty balance: the order is refused, nothing is submitted.
    let mut broke = client_for(&mem, &net, memo_core::Keypair::from_seed("stranger"));
    broke.set_ledger(l.ledger(), memo_sdk::client::orders::OrderConfig::default());
    let err = broke.put_bytes("x", &x).await.unwrap_err();
    assert!(
        err.to_string().contains("balance 0"),
        "an unfunded key cannot order: {err}"
    );
    assert!(broke.list().await.unwrap().is_empty());
    assert_eq!(shards_held(&net), held);
    assert!(orders_of(l, broke.account()).is_empty());
    assert_eq!(balance(l, broke.account()), 0);

    // A funded user stores the same bytes, and every shard it uploaded is paid for.
    let alice = net.user("alice").unwrap();
    let put = alice.put_bytes("x", &x).await.unwrap();
    assert!(!put.orders.is_empty());
    let mut pairs = Vec::new();
    for p in &net.providers {
        for s in p.service.store().list().unwrap() {
            pairs.push((p.account(), s));
        }
    }
    assert_eq!(pairs.len(), put.chunks * 3);
    let Answer::Holdings(h) = l.chain.query_now(&Query::Holdings(pairs.clone())) else {
        panic!()
    };
    for ((p, s), orders) in pairs.iter().zip(h) {
        assert!(
            orders.iter().any(|(_, user, _)| *user == alice.account()),
            "shard {s:?} on {p:?} is unpaid"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_concurrent_clients_never_race_on_nonces() {
    let (mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let bob = memo_core::Keypair::from_seed("user-bob");
    assert_eq!(bob.account(), net.user("bob").unwrap().account());
    let clients: Vec<memo_sdk::client::Client> = (0..3)
        .map(|_| {
            let mut c = client_for(&mem, &net, bob.clone());
            c.set_ledger(l.ledger(), memo_sdk::client::orders::OrderConfig::default());
            c
        })
        .collect();
    let puts = futures::future::join_all(clients.iter().enumerate().map(|(i, c)| async move {
        let mut made = Vec::new();
        for j in 0..3u8 {
            let bytes = data(20_000, 10 * i as u8 + j);
            made.push(c.put_bytes(&format!("f{i}-{j}"), &bytes).await);
        }
        made
    }))
    .await;
    let mut ordered = 0;
    for r in puts.into_iter().flatten() {
        let r = r.expect("every concurrent put succeeds");
        assert!(!r.orders.is_empty());
        ordered += r.orders.len();
    }
    // Every order each put reported exists, and together they are all of bob's orders.
    assert_eq!(orders_of(l, bob.account()).len(), ordered);
    assert_eq!(clients[0].list().await.unwrap().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_proof_marks_its_shard_for_repair() {
    use memo_core::contract::Outcome;
    let (_mem, mut net) = start(&spec(6, 2, 1)).await;
    net.user("alice")
        .unwrap()
        .put_bytes("r", &data(60_000, 9))
        .await
        .unwrap();
    let (ci, cheat) = fullest(&net);
    // The cheat answers every request, with altered bytes: only its failed proofs (no audits,
    // no reads) can tell the keepers that its shards are gone.
    net.providers[ci]
        .service
        .store()
        .alter
        .store(true, Ordering::Relaxed);
    net.enable_repair(common::fast_repair());
    let l = ledger(&net);
    let mut blocks = l.ledger().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let moved: Vec<_> = l
            .challengers
            .iter()
            .flat_map(|c| c.repairs())
            .filter(|r| r.from == cheat)
            .collect();
        if let Some(r) = moved.first() {
            assert!(matches!(r.result, Ok(Outcome::Reassigned { .. })), "{r:?}");
            assert_ne!(r.to, cheat);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no shard of the failing provider was repaired"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), blocks.recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_feed_the_beacon_every_epoch_and_keep_their_stake() {
    let (_mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let first = l.head().epoch;
    l.wait_epoch(first + 4).await;
    for k in &net.keepers {
        let Answer::BeaconCommit(Some((made, _))) =
            l.chain.query_now(&Query::BeaconCommit(k.account()))
        else {
            panic!("keeper {:?} has no beacon commitment", k.account())
        };
        assert!(made > first, "it committed again after the first epoch");
        let Answer::Role(Some(r)) = l.chain.query_now(&Query::Role(k.account())) else {
            panic!()
        };
        assert_eq!(r.stake(), STAKE, "it revealed every commitment in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_data_is_not_repaired() {
    use memo_core::contract::{Call, MarketCall};
    let (mem, mut net) = start(&spec(6, 2, 1)).await;
    let put = net
        .user("alice")
        .unwrap()
        .put_bytes("u", &data(30_000, 11))
        .await
        .unwrap();
    let l = ledger(&net);
    // Alice ends her orders before they start: the data is no longer paid for.
    let alice = memo_sdk::ledger::tx::TxSender::new(
        memo_core::Keypair::from_seed("user-alice"),
        l.ledger(),
    );
    let ends = put
        .orders
        .iter()
        .map(|o| Call::Market(MarketCall::EndOrder { order: *o }))
        .collect();
    for r in alice
        .send_and_wait(ends, Duration::from_secs(10))
        .await
        .unwrap()
    {
        r.unwrap();
    }
    assert!(orders_of(l, net.user("alice").unwrap().account()).is_empty());
    let (vi, victim) = net
        .providers
        .iter()
        .enumerate()
        .find(|(_, p)| !p.service.store().list().unwrap().is_empty())
        .map(|(i, p)| (i, p.account()))
        .unwrap();
    net.providers[vi].stop();
    mem.set_down(victim);
    let repairers = net.enable_repair(common::fast_repair()).to_vec();
    let l = ledger(&net);
    let mut blocks = l.ledger().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // The keepers find the lost shards, and put the repair off as unpaid.
    while repairers.iter().all(|r| r.backing_off().is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unpaid chunk was never put off as unpaid"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), blocks.recv()).await;
    }
    assert!(l.challengers.iter().all(|c| c.repairs().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_the_ledger_stops_offering_leave_placement() {
    use memo_core::contract::{Call, RolesCall};
    let (_mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let all: Vec<AccountId> = net.providers.iter().map(|p| p.account()).collect();
    let chosen = |c: &memo_sdk::keeper::challenger::Challenger| {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..32u8 {
            seen.extend(c.choose(&all, 3, &[i; 32]));
        }
        seen
    };
    let leaving = all[0];
    let mut blocks = l.ledger().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !l.challengers.iter().all(|c| chosen(c).contains(&leaving)) {
        assert!(tokio::time::Instant::now() < deadline, "never placed on");
        let _ = tokio::time::timeout(Duration::from_secs(1), blocks.recv()).await;
    }
    // The provider gives notice: its reputation is untouched, but the ledger no longer offers
    // it for new orders, and within a block no keeper places on it.
    let tx = memo_sdk::ledger::tx::TxSender::new(net.providers[0].keypair.clone(), l.ledger());
    let r = tx
        .send_and_wait(vec![Call::Roles(RolesCall::Leave)], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    while l.challengers.iter().any(|c| chosen(c).contains(&leaving)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a keeper still places on a provider the ledger does not offer"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), blocks.recv()).await;
    }
}

/// The owners the ledger lists for every shard the providers hold: (shard, owners).
fn owners_of_held(net: &LocalNetwork<Faulty>) -> Vec<(ShardId, Vec<AccountId>)> {
    let mut pairs = Vec::new();
    for p in &net.providers {
        for s in p.service.store().list().unwrap() {
            pairs.push((p.account(), s));
        }
    }
    let Answer::Holdings(h) = ledger(net).chain.query_now(&Query::Holdings(pairs.clone())) else {
        panic!()
    };
    pairs
        .into_iter()
        .zip(h)
        .map(|((_, s), rows)| {
            let mut owners: Vec<AccountId> = rows.into_iter().map(|(_, u, _)| u).collect();
            owners.sort();
            (s, owners)
        })
        .collect()
}

/// Waits, block by block (up to 30 s), until `done` holds.
async fn until(l: &LocalLedger, what: &str, mut done: impl FnMut() -> bool) {
    let mut blocks = l.chain.subscribe();
    let wait = async {
        while !done() {
            let _ = blocks.recv().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_pays_its_share_and_is_refunded_when_it_leaves() {
    let (mem, net) = start(&spec(4, 2, 1)).await;
    let l = ledger(&net);
    let (alice, bob) = (net.user("alice").unwrap(), net.user("bob").unwrap());
    let (a, b) = (alice.account(), bob.account());
    let x = data(40_000, 11);
    let put = alice.put_bytes("x", &x).await.unwrap();
    assert!(!put.orders.is_empty() && put.shared.is_empty());

    // An unfunded key cannot become an owner of the stored data: nothing becomes visible.
    let mut broke = client_for(&mem, &net, memo_core::Keypair::from_seed("broke"));
    broke.set_ledger(l.ledger(), memo_sdk::client::orders::OrderConfig::default());
    let err = broke.put_bytes("x", &x).await.unwrap_err();
    assert!(err.to_string().contains("share"), "{err}");
    assert!(broke.list().await.unwrap().is_empty());
    // Nor can one with no ledger in its config: the keepers refuse the unpaid claim.
    let stranger = client_for(&mem, &net, memo_core::Keypair::from_seed("stranger"));
    let err = stranger.put_bytes("x", &x).await.unwrap_err();
    assert!(
        err.is_refusal() && err.to_string().contains("unpaid"),
        "{err}"
    );

    // Bob stores the same bytes: nothing moves, he co-owns every shard and pays Alice half.
    let (a0, b0) = (balance(l, a), balance(l, b));
    let again = bob.put_bytes("x", &x).await.unwrap();
    assert_eq!((again.uploaded_chunks, again.orders.len()), (0, 0));
    assert_eq!(again.shared.len(), put.orders.len());
    let mut both = vec![a, b];
    both.sort();
    let held = owners_of_held(&net);
    assert_eq!(held.len(), put.chunks * 3);
    assert!(held.iter().all(|(_, o)| *o == both), "{held:?}");
    let paid = b0 - balance(l, b);
    assert!(paid > 0);
    assert!(balance(l, a) >= a0 + paid, "Alice got Bob's share");

    // Bob deletes: his keeper leaves his shares and Alice refunds the rest of his term.
    let b1 = balance(l, b);
    bob.delete("x").await.unwrap();
    until(l, "Bob's shares are left", || {
        owners_of_held(&net).iter().all(|(_, o)| *o == [a])
    })
    .await;
    assert!(balance(l, b) > b1, "Bob was refunded");

    // Bob stores it again, then Alice deletes hers: Bob owns the data alone and pays for it
    // all; his last delete purges it, and Alice (whose orders end) refunds his share.
    bob.put_bytes("x", &x).await.unwrap();
    alice.delete("x").await.unwrap();
    until(l, "Alice's shares are left", || {
        owners_of_held(&net).iter().all(|(_, o)| *o == [b])
    })
    .await;
    assert_eq!(bob.get_bytes("x").await.unwrap(), x);
    let b2 = balance(l, b);
    bob.delete("x").await.unwrap();
    until(l, "the purge ends Alice's orders", || {
        orders_of(l, a).iter().all(|(_, o)| o.term == 0)
    })
    .await;
    assert!(balance(l, b) > b2, "the last owner was refunded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_data_is_evicted_once_its_lapse_is_past_the_grace() {
    use memo_core::contract::{Call, SettlementCall};
    let mut with_carol = spec(4, 2, 1);
    with_carol.0.users.push("carol".into());
    let (mem, mut net) = start(&with_carol).await;
    let mut config = common::fast_repair();
    config.lapse_grace = Some(2);
    let repairers = net.enable_repair(config).to_vec();
    let l = ledger(&net);
    let alice = net.user("alice").unwrap();
    let kept = data(20_000, 20);
    alice.put_bytes("kept", &kept).await.unwrap();
    let held = shards_held(&net);
    // Carol's orders run 2 epochs; then she spends her whole balance, so they cannot renew.
    let key = memo_core::Keypair::from_seed("user-carol");
    let mut carol = client_for(&mem, &net, key.clone());
    let orders = memo_sdk::client::orders::OrderConfig {
        duration: 2,
        ..Default::default()
    };
    carol.set_ledger(l.ledger(), orders);
    carol.put_bytes("x", &data(30_000, 21)).await.unwrap();
    assert!(shards_held(&net) > held);
    let all = balance(l, carol.account());
    let spend = Call::Settlement(SettlementCall::Transfer {
        to: alice.account(),
        amount: all,
    });
    let sent = memo_sdk::ledger::tx::TxSender::new(key, l.ledger())
        .send_and_wait(vec![spend], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(sent[0].is_ok(), "{sent:?}");
    // Her orders lapse; two epochs later the responsible keeper evicts her object and purges
    // its shards. Alice's data stays.
    until(l, "Carol's unpaid object is evicted and purged", || {
        shards_held(&net) == held
    })
    .await;
    assert!(carol.list().await.unwrap().is_empty());
    let Answer::Lapsed(lapsed) = l.chain.query_now(&Query::Lapsed(carol.account())) else {
        panic!()
    };
    let evicted_in = l.head().epoch;
    assert!(!lapsed.is_empty());
    assert!(
        lapsed.iter().all(|(e, _, _)| *e + 2 <= evicted_in),
        "evicted only after the grace: {lapsed:?} at {evicted_in}"
    );
    assert_eq!(repairers.iter().map(|r| r.stats().evicted).sum::<u64>(), 1);
    assert_eq!(alice.get_bytes("kept").await.unwrap(), kept);
}

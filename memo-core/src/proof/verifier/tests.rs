//! The contract with the real verifier: honest proofs pass and are paid; altered, dropped,
//! replayed or misdirected proofs fail and are slashed; silence is a missed mark.

use super::*;
use crate::contract::{
    Amount, Call, Contract, Genesis, MarketCall, OrderId, Outcome, Params, ProofStats, Rejection,
    RoleInfo, RolesCall, SettlementCall, SignedTx, StorageProof as ProofTx, Tx,
};
use crate::id::{AccountId, ShardId};
use crate::identity::{Keypair, Signed};
use std::collections::HashMap;
use std::sync::Arc;

const CHAIN: u64 = 11;
const SHARD_LEN: usize = 8 * 1024 + 100;

fn kp(name: &str) -> Keypair {
    Keypair::from_seed(name)
}

fn shard(i: u8) -> Vec<u8> {
    let mut v = vec![0u8; SHARD_LEN];
    blake3::Hasher::new()
        .update(&[i])
        .finalize_xof()
        .fill(&mut v);
    v
}

struct World {
    c: Contract,
    nonces: HashMap<AccountId, u64>,
    shards: Vec<Vec<u8>>,
    order: OrderId,
}

impl World {
    /// Keeper k, provider p, user u; one order of 3 shards for 4 epochs, committed in epoch 0.
    fn new() -> Self {
        let params = Params {
            epoch_blocks: 2,
            keepers_per_user: 1,
            // Slash the floor, so two failures fit in the stake.
            slash_epochs: 0,
            ..Params::default()
        };
        let g = Genesis::new(
            CHAIN,
            params,
            ["u", "p", "k"].iter().map(|n| (kp(n).account(), 1_000_000)),
        )
        .unwrap();
        let mut c = Contract::new(&g, Arc::new(MerkleVerifier::new())).unwrap();
        c.begin_block(1, g.hash()).unwrap();
        let mut w = Self {
            c,
            nonces: HashMap::new(),
            shards: (0..3).map(shard).collect(),
            order: 0,
        };
        w.send(
            "k",
            Call::Roles(RolesCall::RegisterKeeper {
                stake: 1_000,
                address: "k".into(),
            }),
        )
        .unwrap();
        w.send(
            "p",
            Call::Roles(RolesCall::RegisterProvider {
                stake: 1_000,
                capacity: 1 << 20,
                price: 1,
                address: "p".into(),
            }),
        )
        .unwrap();
        w.send("u", Call::Roles(RolesCall::RegisterUser)).unwrap();
        let shards: Vec<ShardId> = w.shards.iter().map(|s| ShardId::of(s)).collect();
        let Ok(Outcome::OrderCreated(id)) = w.send(
            "u",
            Call::Market(MarketCall::CreateOrder {
                provider: kp("p").account(),
                price: 1,
                duration: 4,
                receipts: crate::testkit::store_receipts(
                    &kp("p"),
                    kp("u").account(),
                    SHARD_LEN as u64,
                    &shards,
                ),
            }),
        ) else {
            panic!("order")
        };
        w.order = id;
        w
    }

    fn send(&mut self, who: &str, call: Call) -> Result<Outcome, Rejection> {
        let k = kp(who);
        let n = self.nonces.entry(k.account()).or_insert(0);
        let tx: SignedTx = Signed::sign(&k, &Tx::new(CHAIN, *n, call));
        let r = self.c.apply(&tx);
        if r.is_ok() {
            *n += 1;
        }
        r
    }

    fn next_epoch(&mut self) {
        let e = self.c.epoch();
        while self.c.epoch() == e {
            let root = self.c.commit_block().unwrap();
            let h = self.c.height() + 1;
            self.c
                .begin_block(h, *blake3::hash(&root).as_bytes())
                .unwrap();
        }
    }

    fn challenge(&self) -> contract::Challenge {
        self.c
            .challenge(self.order)
            .expect("a challenge this epoch")
    }

    /// The held copy of the challenged shard.
    fn held(&self, c: &contract::Challenge) -> Vec<u8> {
        self.shards
            .iter()
            .find(|s| ShardId::of(s) == c.shard)
            .cloned()
            .unwrap()
    }

    fn submit(&mut self, epoch: u64, shard: ShardId, proof: Vec<u8>) -> Result<Outcome, Rejection> {
        let p = ProofTx {
            order: self.order,
            epoch,
            shard,
            proof,
        };
        self.send("p", Call::Settlement(SettlementCall::SubmitProof(p)))
    }

    fn balance(&self, who: &str) -> Amount {
        self.c.account(&kp(who).account()).balance
    }

    fn provider(&self) -> (Amount, ProofStats) {
        match self.c.role(&kp("p").account()).map(|r| r.info.clone()) {
            Some(RoleInfo::Provider { stake, stats, .. }) => (stake, stats),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn leaves_are_drawn_from_the_seed_and_stay_in_range() {
    let w = World::new();
    let mut c = w.c.challenge(w.order);
    assert!(c.is_none(), "the order starts next epoch");
    let mut w = w;
    w.next_epoch();
    c = Some(w.challenge());
    let c = c.unwrap();
    let item = order_item(&c, 5);
    assert_eq!(item.leaves.len(), 5);
    assert!(item.leaves.windows(2).all(|p| p[0] < p[1]));
    assert!(
        item.leaves
            .iter()
            .all(|&l| l < leaf_count(SHARD_LEN as u64))
    );
    assert_eq!(order_item(&c, 5), item, "deterministic");
    let mut other = c.clone();
    other.seed[0] ^= 1;
    assert_ne!(order_item(&other, 5).leaves, item.leaves);
    // A one-leaf shard has one leaf to prove whatever is asked.
    let tiny = contract::Challenge {
        shard_len: 10,
        ..c.clone()
    };
    assert_eq!(order_item(&tiny, 8).leaves, vec![0]);
    assert!(MerkleVerifier::with_leaves(0).is_err());
    assert!(MerkleVerifier::with_leaves(9).is_err());
    assert_eq!(MerkleVerifier::with_leaves(8).unwrap().leaves(), 8);
}

#[test]
fn an_honest_provider_passes_and_is_paid_each_epoch() {
    let mut w = World::new();
    w.next_epoch();
    let pay = 3 * SHARD_LEN as u64; // bytes × price 1
    let fee = pay * u64::from(w.c.params().keeper_fee_bps) / 10_000;
    for _ in 0..4 {
        let c = w.challenge();
        let proof = MerkleVerifier::new().prove(&c, &w.held(&c)).unwrap();
        assert!(proof.len() <= 2048, "{} bytes", proof.len());
        let before = w.balance("p");
        assert_eq!(w.submit(c.epoch, c.shard, proof), Ok(Outcome::ProofPassed));
        w.next_epoch();
        assert_eq!(w.balance("p") - before, pay - fee, "epoch {} paid", c.epoch);
    }
    assert_eq!(
        w.provider(),
        (
            1_000,
            ProofStats {
                proven: 4,
                failed: 0,
                missed: 0,
                ..w.provider().1
            }
        )
    );
    let o = w.c.order(w.order).unwrap();
    assert_eq!(
        (o.start, o.end, o.escrow),
        (1, 9, 4 * pay),
        "the order ran its 4 epochs and renewed for 4 more from the user's balance"
    );
    assert_eq!(w.c.total_money(), u128::from(w.c.supply()));
}

#[test]
fn altered_or_dropped_data_fails_and_is_slashed() {
    let mut w = World::new();
    w.next_epoch();
    let c = w.challenge();
    let mut altered = w.held(&c);
    for b in altered.iter_mut().step_by(512) {
        *b ^= 0x55;
    }
    let bad = MerkleVerifier::new().prove(&c, &altered).unwrap();
    let before = w.balance("p");
    let Ok(Outcome::ProofFailed { slashed, reason }) = w.submit(c.epoch, c.shard, bad) else {
        panic!("an altered shard must fail")
    };
    assert_eq!(slashed, 100);
    assert!(reason.contains("do not hash"), "{reason}");
    assert_eq!(
        w.submit(c.epoch, c.shard, vec![1, 2, 3]),
        Err(Rejection::AlreadyProven(w.order)),
        "one outcome per order and epoch"
    );
    w.next_epoch();
    assert_eq!(w.balance("p"), before, "a failed epoch is not paid");

    // Dropped: the provider has nothing to build from and sends an empty answer.
    let c = w.challenge();
    let Ok(Outcome::ProofFailed { slashed, .. }) = w.submit(c.epoch, c.shard, Vec::new()) else {
        panic!("an empty proof must fail")
    };
    assert_eq!(slashed, 100);
    w.next_epoch();
    let (stake, stats) = w.provider();
    assert_eq!(stake, 800);
    assert_eq!(stats.failed, 2);
    assert_eq!(
        w.c.order(w.order).unwrap().forfeit,
        200,
        "held for the repair"
    );
    assert_eq!(w.c.total_money(), u128::from(w.c.supply()));
}

#[test]
fn a_proof_for_another_shard_or_leaf_fails() {
    let mut w = World::new();
    w.next_epoch();
    let c = w.challenge();
    // A valid proof of another committed shard, presented as the challenged one.
    let other = w
        .shards
        .iter()
        .find(|s| ShardId::of(s) != c.shard)
        .cloned()
        .unwrap();
    let posing = contract::Challenge {
        shard: ShardId::of(&other),
        ..c.clone()
    };
    let mut proof =
        StorageProof::from_bytes(&MerkleVerifier::new().prove(&posing, &other).unwrap()).unwrap();
    proof.shard = c.shard;
    let r = MerkleVerifier::new().verify(&c, &proof.to_bytes());
    assert!(r.is_err());
    // Naming the other shard outright is refused before verification.
    assert!(matches!(
        w.submit(c.epoch, posing.shard, proof.to_bytes()),
        Err(Rejection::WrongShard { .. })
    ));
    // The right shard but another leaf than the seed picked.
    let item = order_item(&c, 1);
    let wrong_leaf = (item.leaves[0] + 1) % leaf_count(SHARD_LEN as u64);
    let forged = StorageProof::prove(
        &ChallengeItem {
            leaves: vec![wrong_leaf],
            ..item
        },
        &w.held(&c),
    )
    .unwrap();
    assert!(matches!(
        w.submit(c.epoch, c.shard, forged.to_bytes()),
        Ok(Outcome::ProofFailed { .. })
    ));
}

#[test]
fn an_old_proof_replayed_in_a_later_epoch_fails() {
    let mut w = World::new();
    w.next_epoch();
    let c1 = w.challenge();
    let old = MerkleVerifier::new().prove(&c1, &w.held(&c1)).unwrap();
    assert_eq!(
        w.submit(c1.epoch, c1.shard, old.clone()),
        Ok(Outcome::ProofPassed)
    );
    w.next_epoch();
    let c2 = w.challenge();
    // As it was: the epoch is wrong.
    assert!(matches!(
        w.submit(c1.epoch, c1.shard, old.clone()),
        Err(Rejection::WrongEpoch { .. })
    ));
    // Relabelled for the new epoch: the new seed asks for other data.
    let r = w.submit(c2.epoch, c1.shard, old);
    if c2.shard == c1.shard {
        assert_ne!(order_item(&c1, 1).leaves, order_item(&c2, 1).leaves);
        assert!(matches!(r, Ok(Outcome::ProofFailed { .. })), "{r:?}");
    } else {
        assert!(matches!(r, Err(Rejection::WrongShard { .. })), "{r:?}");
    }
}

#[test]
fn no_proof_by_the_deadline_is_a_missed_mark_and_unpaid() {
    let mut w = World::new();
    w.next_epoch();
    let (p0, u0) = (w.balance("p"), w.balance("u"));
    w.next_epoch();
    assert_eq!(w.balance("p"), p0);
    assert_eq!(
        w.balance("u"),
        u0 + 3 * SHARD_LEN as u64,
        "the user gets the epoch back"
    );
    assert_eq!(
        w.provider(),
        (
            1_000,
            ProofStats {
                proven: 0,
                failed: 0,
                missed: 1,
                ..w.provider().1
            }
        )
    );
}

#[test]
fn garbage_never_passes() {
    let mut w = World::new();
    w.next_epoch();
    let c = w.challenge();
    let v = MerkleVerifier::new();
    for junk in [vec![], vec![0u8; 10], vec![1u8; 3000]] {
        assert!(v.verify(&c, &junk).is_err());
    }
    let good = v.prove(&c, &w.held(&c)).unwrap();
    assert_eq!(v.verify(&c, &good), Ok(()));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(v.verify(&c, &flipped).is_err());
}

#[test]
fn queries_list_a_providers_challenges_and_an_accounts_orders() {
    use crate::contract::{Answer, Query};
    let mut w = World::new();
    let p = kp("p").account();
    assert_eq!(
        w.c.query(&Query::Challenges(p)),
        Answer::Challenges(vec![]),
        "not running yet"
    );
    w.next_epoch();
    assert_eq!(
        w.c.query(&Query::Challenges(p)),
        Answer::Challenges(vec![w.challenge()])
    );
    assert_eq!(
        w.c.query(&Query::Challenges(kp("u").account())),
        Answer::Challenges(vec![])
    );
    for who in ["u", "p"] {
        let Answer::Orders(list) = w.c.query(&Query::OrdersOf(kp(who).account())) else {
            panic!()
        };
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, w.order);
    }
    assert_eq!(
        w.c.query(&Query::OrdersOf(kp("k").account())),
        Answer::Orders(vec![])
    );
}

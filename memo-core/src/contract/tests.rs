use super::*;
use crate::id::ShardId;
use crate::identity::{Keypair, Signed};
use std::collections::HashMap;

/// Passes a proof iff it is `blake3(seed ‖ shard)`: it must depend on the challenge.
struct StubVerifier;

impl ProofVerifier for StubVerifier {
    fn verify(&self, c: &Challenge, proof: &[u8]) -> Result<(), crate::proof::ProofError> {
        if proof == stub_proof(c).as_slice() {
            Ok(())
        } else {
            Err(crate::proof::ProofError::PathMismatch {
                shard: c.shard,
                index: 0,
            })
        }
    }
}

fn stub_proof(c: &Challenge) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(&c.seed);
    h.update(&c.shard.0);
    h.finalize().as_bytes().to_vec()
}

const CHAIN: u64 = 7;

fn kp(name: &str) -> Keypair {
    Keypair::from_seed(name)
}

fn params() -> Params {
    Params {
        epoch_blocks: 4,
        notice_epochs: 2,
        keepers_per_user: 2,
        ..Params::default()
    }
}

struct World {
    c: Contract,
    nonces: HashMap<AccountId, u64>,
    parent: [u8; 32],
}

impl World {
    fn new(names: &[&str]) -> Self {
        let g = Genesis::new(
            CHAIN,
            params(),
            names.iter().map(|n| (kp(n).account(), 1_000_000)),
        )
        .unwrap();
        let mut c = Contract::new(&g, Arc::new(StubVerifier)).unwrap();
        let parent = g.hash();
        c.begin_block(1, parent).unwrap();
        Self {
            c,
            nonces: HashMap::new(),
            parent,
        }
    }

    fn tx(&mut self, who: &Keypair, call: Call) -> SignedTx {
        let n = self.nonces.entry(who.account()).or_insert(0);
        Signed::sign(who, &Tx::new(CHAIN, *n, call))
    }

    fn send(&mut self, who: &Keypair, call: Call) -> Result<Outcome, Rejection> {
        let tx = self.tx(who, call);
        let r = self.c.apply(&tx);
        if r.is_ok() {
            *self.nonces.get_mut(&who.account()).unwrap() += 1;
        }
        r
    }

    /// Commits the open block and opens the next one, a tick later.
    fn next_block(&mut self) {
        self.next_block_at(false);
    }

    /// Commits the open block and opens the next one: early (at the same tick) or a tick
    /// later.
    fn next_block_at(&mut self, early: bool) {
        let root = self.c.commit_block().unwrap();
        self.parent = *blake3::hash(&root).as_bytes();
        let h = self.c.height() + 1;
        let tick = self.c.tick() + u64::from(!early);
        self.c.begin_block_at(h, tick, self.parent).unwrap();
    }

    fn next_epoch(&mut self) {
        let e = self.c.epoch();
        while self.c.epoch() == e {
            self.next_block();
        }
    }

    fn balance(&self, name: &str) -> Amount {
        self.c.account(&kp(name).account()).balance
    }

    fn conserved(&self) {
        assert_eq!(self.c.total_money(), u128::from(self.c.supply()));
    }

    /// User u sends `order` (a [`MarketCall::CreateOrder`]); returns the new order's id.
    fn order(&mut self, order: Call) -> OrderId {
        let Outcome::OrderCreated(id) = self.send(&kp("u"), order).unwrap() else {
            panic!()
        };
        id
    }
}

fn provider_call(stake: Amount) -> Call {
    Call::Roles(RolesCall::RegisterProvider {
        stake,
        capacity: 1 << 20,
        price: 2,
        address: "/ip4/127.0.0.1/tcp/1".into(),
    })
}

fn keeper_call(stake: Amount) -> Call {
    Call::Roles(RolesCall::RegisterKeeper {
        stake,
        address: "k".into(),
    })
}

/// `provider`'s storage receipts for `user`'s `shards`, each `size` bytes.
fn store_receipts(
    user: &str,
    provider: &str,
    size: u64,
    shards: &[ShardId],
) -> Vec<Signed<crate::ticket::Receipt>> {
    crate::testkit::store_receipts(&kp(provider), kp(user).account(), size, shards)
}

/// u's order from `provider` for `shards` of `shard_len` bytes each, with their receipts.
fn order_call(
    provider: &str,
    shard_len: u64,
    shards: &[ShardId],
    price: Amount,
    duration: u64,
) -> Call {
    Call::Market(MarketCall::CreateOrder {
        provider: kp(provider).account(),
        price,
        duration,
        receipts: store_receipts("u", provider, shard_len, shards),
    })
}

fn shards(n: u8) -> Vec<ShardId> {
    (0..n).map(|i| ShardId::of(&[i])).collect()
}

/// A world with keepers k1..k3, provider p, user u (matched), one order of 4 shards of 25 bytes
/// at price 2 for 3 epochs.
fn market() -> (World, OrderId) {
    let mut w = World::new(&["u", "p", "k1", "k2", "k3", "x"]);
    for k in ["k1", "k2", "k3"] {
        w.send(&kp(k), keeper_call(1_000)).unwrap();
    }
    w.send(&kp("p"), provider_call(1_000)).unwrap();
    w.send(&kp("u"), Call::Roles(RolesCall::RegisterUser))
        .unwrap();
    let id = w.order(order_call("p", 25, &shards(4), 2, 3));
    (w, id)
}

fn prove(w: &mut World, id: OrderId, good: bool) -> Result<Outcome, Rejection> {
    prove_by(w, "p", id, good)
}

/// `who` submits a proof for order `id`'s current challenge: the right one if `good`.
fn prove_by(w: &mut World, who: &str, id: OrderId, good: bool) -> Result<Outcome, Rejection> {
    let c = w.c.challenge(id).expect("challenge");
    let proof = if good { stub_proof(&c) } else { vec![0; 32] };
    let p = StorageProof {
        order: id,
        epoch: c.epoch,
        shard: c.shard,
        proof,
    };
    w.send(&kp(who), Call::Settlement(SettlementCall::SubmitProof(p)))
}

#[test]
fn genesis_toml_round_trip_and_validation() {
    let g = Genesis::new(
        3,
        params(),
        [(kp("a").account(), 5), (kp("b").account(), 7)],
    )
    .unwrap();
    let text = g.to_toml();
    assert_eq!(Genesis::from_toml(&text).unwrap(), g);
    assert_eq!(g.supply(), 12);
    let bad = text.replace("epoch_blocks = 4", "epoch_blocks = 0");
    assert_eq!(
        Genesis::from_toml(&bad),
        Err(GenesisError::Param("epoch_blocks"))
    );
    assert!(matches!(
        Genesis::from_toml("chain = 1\n[[balances]]\naccount = \"zz\"\namount = 1"),
        Err(GenesisError::Account(_))
    ));
    let a = kp("a").account();
    assert!(matches!(
        Genesis::new(1, params(), [(a, 1), (a, 2)]),
        Err(GenesisError::Duplicate(_))
    ));
    assert!(matches!(
        Genesis::from_toml("chain = 1\nbogus = 2"),
        Err(GenesisError::Toml(_))
    ));
}

#[test]
fn early_blocks_share_their_parents_tick_and_epochs_count_ticks() {
    let mut w = World::new(&["u"]);
    // Block 1 (opened by World::new) is tick 1; epochs are 4 ticks.
    assert_eq!((w.c.height(), w.c.tick(), w.c.epoch()), (1, 1, 0));
    let early = |w: &mut World| {
        let root = w.c.commit_block().unwrap();
        w.parent = *blake3::hash(&root).as_bytes();
        let (h, t) = (w.c.height() + 1, w.c.tick());
        w.c.begin_block_at(h, t, w.parent).unwrap();
    };
    // Any number of early blocks leave the tick, and so the epoch, where they were.
    for _ in 0..20 {
        early(&mut w);
    }
    assert_eq!((w.c.height(), w.c.tick(), w.c.epoch()), (21, 1, 0));
    w.next_block();
    w.next_block();
    early(&mut w);
    assert_eq!((w.c.tick(), w.c.epoch()), (3, 0));
    // The fourth tick opens epoch 1, whether or not early blocks came between.
    w.next_block();
    assert_eq!((w.c.height(), w.c.tick(), w.c.epoch()), (25, 4, 1));
    // A tick may not go back nor skip ahead; the refusal changes nothing.
    let root = w.c.commit_block().unwrap();
    let before = w.c.state_root();
    assert_eq!(root, before);
    for bad in [3, 6] {
        assert_eq!(
            w.c.begin_block_at(26, bad, w.parent),
            Err(BlockError::WrongTick {
                parent: 4,
                got: bad
            })
        );
        assert_eq!(
            (w.c.height(), w.c.tick(), w.c.state_root()),
            (25, 4, before)
        );
    }
    w.c.begin_block_at(26, 5, w.parent).unwrap();
    assert_eq!((w.c.tick(), w.c.epoch()), (5, 1));
}

#[test]
fn modules_have_fixed_addresses_and_reads_need_no_identity() {
    let w = World::new(&["a"]);
    let roles = w.c.module_address("roles").unwrap();
    assert_eq!(roles, Module::Roles.address(CHAIN));
    assert_ne!(roles, Module::Roles.address(CHAIN + 1));
    assert_ne!(roles, w.c.module_address("market").unwrap());
    assert_eq!(
        w.c.query(&Query::Module("nope".into())),
        Answer::Module(None)
    );
    assert_eq!(
        w.c.query(&Query::Account(kp("a").account())),
        Answer::Account(Account {
            balance: 1_000_000,
            nonce: 0
        })
    );
}

#[test]
fn roles_register_stake_lookup_and_leave_after_notice() {
    let mut w = World::new(&["p", "k", "u", "poor"]);
    w.send(&kp("p"), provider_call(5_000)).unwrap();
    assert_eq!(w.balance("p"), 995_000);
    let role = w.c.role(&kp("p").account()).unwrap();
    assert_eq!(role.kind(), RoleKind::Provider);
    assert_eq!(role.stake(), 5_000);
    assert_eq!(role.address(), "/ip4/127.0.0.1/tcp/1");
    assert_eq!(
        w.send(&kp("p"), provider_call(5_000)),
        Err(Rejection::AlreadyRegistered(RoleKind::Provider))
    );
    assert_eq!(
        w.send(&kp("k"), keeper_call(10)),
        Err(Rejection::StakeTooLow {
            stake: 10,
            minimum: 1_000
        })
    );
    let poor = kp("poor");
    w.send(
        &poor,
        Call::Settlement(SettlementCall::Transfer {
            to: kp("u").account(),
            amount: 999_500,
        }),
    )
    .unwrap();
    assert_eq!(
        w.send(&poor, keeper_call(1_000)),
        Err(Rejection::InsufficientBalance {
            needed: 1_000,
            available: 500
        })
    );
    w.send(&kp("p"), Call::Roles(RolesCall::AddStake { amount: 1 }))
        .unwrap();
    assert_eq!(w.c.role(&kp("p").account()).unwrap().stake(), 5_001);
    assert!(matches!(
        w.send(&kp("u"), Call::Roles(RolesCall::AddStake { amount: 1 })),
        Err(Rejection::NotRegistered(_))
    ));
    // A node that came back elsewhere announces its new address; nobody else can.
    let moved = || {
        Call::Roles(RolesCall::SetAddress {
            address: "/ip4/127.0.0.1/tcp/2".into(),
        })
    };
    w.send(&kp("p"), moved()).unwrap();
    assert_eq!(
        w.c.role(&kp("p").account()).unwrap().address(),
        "/ip4/127.0.0.1/tcp/2"
    );
    assert_eq!(w.c.providers()[0].address, "/ip4/127.0.0.1/tcp/2");
    assert!(matches!(
        w.send(&kp("u"), moved()),
        Err(Rejection::NotRegistered(_))
    ));
    let too_long = Call::Roles(RolesCall::SetAddress {
        address: "x".repeat(10_000),
    });
    assert!(w.send(&kp("p"), too_long).is_err());
    assert_eq!(
        w.c.role(&kp("p").account()).unwrap().address(),
        "/ip4/127.0.0.1/tcp/2"
    );

    w.send(&kp("p"), Call::Roles(RolesCall::Leave)).unwrap();
    assert_eq!(
        w.send(&kp("p"), Call::Roles(RolesCall::Leave)),
        Err(Rejection::Leaving(kp("p").account()))
    );
    assert!(
        w.c.providers().is_empty(),
        "a leaving provider takes no orders"
    );
    w.next_epoch();
    assert!(
        w.c.role(&kp("p").account()).is_some(),
        "still serving notice"
    );
    w.next_epoch();
    assert!(w.c.role(&kp("p").account()).is_none());
    assert_eq!(w.balance("p"), 1_000_000, "stake returned");
    w.next_block();
    w.conserved();
}

#[test]
fn keeper_matching_is_random_among_active_keepers_and_recorded() {
    let names: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.extend(["u1", "u2", "u3"]);
    let mut w = World::new(&all);
    for k in &names[..7] {
        w.send(&kp(k), keeper_call(1_000)).unwrap();
    }
    w.send(&kp("k0"), Call::Roles(RolesCall::Leave)).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for u in ["u1", "u2", "u3"] {
        let Outcome::Matched(ks) = w
            .send(&kp(u), Call::Roles(RolesCall::RegisterUser))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(ks.len(), 2);
        assert_ne!(ks[0], ks[1]);
        assert!(
            !ks.contains(&kp("k0").account()),
            "leaving keepers are not matched"
        );
        assert!(
            !ks.contains(&kp("k7").account()),
            "unregistered accounts are not matched"
        );
        assert_eq!(w.c.keepers_of(&kp(u).account()), ks);
        seen.extend(ks);
    }
    assert!(seen.len() > 2, "different users get different keepers");
}

#[test]
fn rejections_are_typed_and_change_nothing() {
    let mut w = World::new(&["a", "b"]);
    let a = kp("a");
    let before = w.c.end_block().unwrap();
    // Bad signature.
    let mut t = w.tx(
        &a,
        Call::Settlement(SettlementCall::Transfer {
            to: kp("b").account(),
            amount: 5,
        }),
    );
    t.body[0] ^= 1;
    assert_eq!(w.c.apply(&t), Err(Rejection::BadSignature));
    let mut forged = w.tx(&a, Call::Roles(RolesCall::RegisterUser));
    forged.signer = kp("b").account();
    assert_eq!(w.c.apply(&forged), Err(Rejection::BadSignature));
    // Wrong chain, unknown module, wrong module.
    let body = Tx::new(CHAIN + 1, 0, Call::Roles(RolesCall::RegisterUser));
    assert!(matches!(
        w.c.apply(&Signed::sign(&a, &body)),
        Err(Rejection::WrongChain { .. })
    ));
    let mut body = Tx::new(CHAIN, 0, Call::Roles(RolesCall::RegisterUser));
    body.module = ModuleAddress([9; 32]);
    assert_eq!(
        w.c.apply(&Signed::sign(&a, &body)),
        Err(Rejection::UnknownModule(ModuleAddress([9; 32])))
    );
    body.module = Module::Market.address(CHAIN);
    assert_eq!(
        w.c.apply(&Signed::sign(&a, &body)),
        Err(Rejection::WrongModule {
            call: Module::Roles
        })
    );
    // Out-of-order and replayed nonces.
    let gap = Tx::new(CHAIN, 1, Call::Roles(RolesCall::RegisterUser));
    assert_eq!(
        w.c.apply(&Signed::sign(&a, &gap)),
        Err(Rejection::NonceGap {
            expected: 0,
            got: 1
        })
    );
    let first = w.tx(&a, Call::Roles(RolesCall::RegisterUser));
    assert!(w.c.apply(&first).is_ok());
    assert_eq!(
        w.c.apply(&first),
        Err(Rejection::NonceReplayed {
            expected: 1,
            got: 0
        })
    );
    *w.nonces.get_mut(&a.account()).unwrap() += 1;
    let mid = w.c.end_block().unwrap();
    assert_ne!(mid, before);
    // Wrong role, too little balance: a failing call mid-way leaves no trace.
    let order = Call::Market(MarketCall::CreateOrder {
        provider: kp("b").account(),
        price: 1,
        duration: 1,
        receipts: store_receipts("a", "b", 10, &shards(1)),
    });
    assert_eq!(
        w.send(&a, order),
        Err(Rejection::NotRegistered(kp("b").account()))
    );
    assert!(matches!(
        w.send(
            &a,
            Call::Settlement(SettlementCall::Transfer {
                to: kp("b").account(),
                amount: 2_000_000
            })
        ),
        Err(Rejection::InsufficientBalance { .. })
    ));
    assert_eq!(
        w.send(
            &a,
            Call::Settlement(SettlementCall::Transfer {
                to: a.account(),
                amount: 0
            })
        ),
        Err(Rejection::Invalid("amount (zero)"))
    );
    assert_eq!(w.c.end_block().unwrap(), mid);
    assert_eq!(w.c.account(&a.account()).nonce, 1);
    let leave = w.tx(&a, Call::Roles(RolesCall::Leave));
    assert!(w.c.apply_verified(&leave).is_ok());
    w.c.abort_block();
    assert_eq!(w.c.state_root(), w.c.recompute_root());
}

#[test]
fn storage_is_paid_only_for_proven_epochs_with_keeper_fees() {
    let (mut w, id) = market();
    assert_eq!(
        w.balance("u"),
        1_000_000 - 600,
        "escrow = 100 bytes × 2 × 3 epochs"
    );
    assert_eq!(w.c.order(id).unwrap().escrow, 600);
    let early = StorageProof {
        order: id,
        epoch: 0,
        shard: shards(1)[0],
        proof: vec![],
    };
    assert_eq!(
        w.send(
            &kp("p"),
            Call::Settlement(SettlementCall::SubmitProof(early))
        ),
        Err(Rejection::OrderNotRunning {
            order: id,
            epoch: 0
        })
    );
    w.next_epoch(); // epoch 1: the order's first epoch
    assert_eq!(prove(&mut w, id, true), Ok(Outcome::ProofPassed));
    assert_eq!(prove(&mut w, id, true), Err(Rejection::AlreadyProven(id)));
    let p_before = w.balance("p");
    w.next_epoch(); // epoch 1 settled: 200 paid, 5% to the two matched keepers
    let keepers = w.c.keepers_of(&kp("u").account());
    assert_eq!(keepers.len(), 2);
    assert_eq!(w.balance("p") - p_before, 190);
    for k in &keepers {
        assert_eq!(w.c.account(k).balance, 1_000_000 - 1_000 + 5);
    }
    // Epoch 2: no proof → no pay, a mark, and the user gets the epoch back.
    let u_before = w.balance("u");
    w.next_epoch();
    assert_eq!(w.balance("p"), p_before + 190);
    assert_eq!(w.balance("u"), u_before + 200);
    let Some(RoleInfo::Provider { stats, used, .. }) =
        w.c.role(&kp("p").account()).map(|r| r.info.clone())
    else {
        panic!()
    };
    // The ledger keeps the provider's reputation record: the same a keeper computes.
    let mut rep = crate::proof::Reputation::default();
    rep.record(kp("p").account(), 1, crate::proof::Outcome::Pass);
    rep.record(kp("p").account(), 2, crate::proof::Outcome::Miss);
    assert_eq!(
        stats,
        ProofStats {
            proven: 1,
            failed: 0,
            missed: 1,
            record: rep.record_of(&kp("p").account(), 2).unwrap(),
        }
    );
    assert_eq!(stats.record.observations, 2);
    assert_eq!(used, 100);
    // Epoch 3, the last: the user ends the order (it would renew from its balance), and a
    // wrong proof → unpaid, and slashed ten epochs of pay (2,000), capped at the 1,000
    // staked, into the order's forfeit.
    w.send(&kp("u"), Call::Market(MarketCall::EndOrder { order: id }))
        .unwrap();
    assert!(matches!(
        prove(&mut w, id, false),
        Ok(Outcome::ProofFailed { slashed: 1_000, .. })
    ));
    assert_eq!(w.c.order(id).unwrap().forfeit, 1_000);
    assert_eq!(w.c.status().repair_fund, 0);
    w.next_epoch();
    assert!(w.c.order(id).is_none(), "the order ran out");
    assert_eq!(
        w.c.status().repair_fund,
        1_000,
        "an unused forfeit goes to the fund"
    );
    assert_eq!(w.balance("u"), u_before + 400);
    let Some(RoleInfo::Provider { used, stake, .. }) =
        w.c.role(&kp("p").account()).map(|r| r.info.clone())
    else {
        panic!()
    };
    assert_eq!((used, stake), (0, 0));
    // Below minimum stake: no new orders, and no place among the offers.
    let new = order_call("p", 10, &[ShardId::of(b"n")], 2, 1);
    assert_eq!(
        w.send(&kp("u"), new.clone()),
        Err(Rejection::StakeTooLow {
            stake: 0,
            minimum: 1_000
        })
    );
    assert!(w.c.providers().is_empty());
    w.send(&kp("p"), Call::Roles(RolesCall::AddStake { amount: 1_000 }))
        .unwrap();
    assert!(w.send(&kp("u"), new).is_ok());
    w.conserved();
}

#[test]
fn proofs_are_checked_against_the_commitment_and_challenge() {
    let (mut w, id) = market();
    w.next_epoch();
    let c = w.c.challenge(id).unwrap();
    assert!(shards(4).contains(&c.shard));
    assert_eq!(c.shard_len, 25);
    let other = shards(4).into_iter().find(|s| *s != c.shard).unwrap();
    let p = StorageProof {
        order: id,
        epoch: c.epoch,
        shard: other,
        proof: stub_proof(&c),
    };
    assert!(matches!(
        w.send(&kp("p"), Call::Settlement(SettlementCall::SubmitProof(p))),
        Err(Rejection::WrongShard { .. })
    ));
    let p = StorageProof {
        order: id,
        epoch: c.epoch + 1,
        shard: c.shard,
        proof: stub_proof(&c),
    };
    assert!(matches!(
        w.send(
            &kp("p"),
            Call::Settlement(SettlementCall::SubmitProof(p.clone()))
        ),
        Err(Rejection::WrongEpoch { .. })
    ));
    // Only the order's provider may prove.
    let p = StorageProof {
        order: id,
        epoch: c.epoch,
        shard: c.shard,
        proof: stub_proof(&c),
    };
    assert_eq!(
        w.send(&kp("x"), Call::Settlement(SettlementCall::SubmitProof(p))),
        Err(Rejection::NotOrderParty(id))
    );
    // Challenges change with the epoch's beacon.
    let b1 = w.c.beacon();
    w.next_epoch();
    assert_ne!(w.c.beacon(), b1);
    assert_ne!(w.c.challenge(id).unwrap().seed, c.seed);
}

#[test]
fn early_end_refunds_the_rest_and_frees_space() {
    let (mut w, id) = market();
    // Not started yet: everything back.
    let id2 = w.order(order_call(
        "p",
        25,
        &[ShardId::of(b"e1"), ShardId::of(b"e2")],
        2,
        4,
    ));
    let u = w.balance("u");
    assert_eq!(
        w.send(&kp("x"), Call::Market(MarketCall::EndOrder { order: id2 })),
        Err(Rejection::NotOrderParty(id2))
    );
    w.send(&kp("u"), Call::Market(MarketCall::EndOrder { order: id2 }))
        .unwrap();
    assert_eq!(w.balance("u"), u + 400);
    assert!(w.c.order(id2).is_none());
    // Running: the current epoch still settles, later ones refund. A matched keeper may purge.
    w.next_epoch();
    let keeper = w.c.keepers_of(&kp("u").account())[0];
    let kname = ["k1", "k2", "k3"]
        .into_iter()
        .find(|n| kp(n).account() == keeper)
        .unwrap();
    w.send(&kp(kname), Call::Market(MarketCall::EndOrder { order: id }))
        .unwrap();
    assert_eq!(w.balance("u"), u + 400 + 400);
    assert_eq!(w.c.order(id).unwrap().end, 2);
    prove(&mut w, id, true).unwrap();
    w.next_epoch();
    assert!(w.c.order(id).is_none());
    let Some(RoleInfo::Provider { used, .. }) =
        w.c.role(&kp("p").account()).map(|r| r.info.clone())
    else {
        panic!()
    };
    assert_eq!(used, 0);
    w.conserved();
}

#[test]
fn orders_are_committed_to_exactly_the_providers_receipts() {
    let (mut w, id) = market();
    assert_eq!(
        w.c.query(&Query::Commitment(id)),
        Answer::Commitment(Some(Commitment {
            shard_len: 25,
            shards: shards(4)
        }))
    );
    // The holdings index answers which orders pay for which provider's shards.
    let p = kp("p").account();
    assert_eq!(
        w.c.query(&Query::Holdings(vec![
            (p, shards(4)[3]),
            (p, ShardId::of(b"none")),
            (kp("x").account(), shards(4)[0]),
        ])),
        Answer::Holdings(vec![vec![(id, kp("u").account(), 4)], vec![], vec![]])
    );
    let s = shards(3);
    let create = |receipts: Vec<Signed<crate::ticket::Receipt>>| {
        Call::Market(MarketCall::CreateOrder {
            provider: kp("p").account(),
            price: 2,
            duration: 2,
            receipts,
        })
    };
    let bad = |index: u32, reason: &'static str| Rejection::BadStorageReceipt { index, reason };
    // Signed by someone else, or claiming the provider's name under another's signature.
    let mut by_x = store_receipts("u", "p", 10, &s);
    by_x[1] = store_receipts("u", "x", 10, &s[1..2]).remove(0);
    let mut forged = by_x.clone();
    forged[1].signer = kp("p").account();
    // Issued to another user, of another size, or the same shard twice.
    let mut other_user = store_receipts("u", "p", 10, &s);
    other_user[2] = store_receipts("x", "p", 10, &s[2..3]).remove(0);
    let mut sizes = store_receipts("u", "p", 10, &s);
    sizes[1] = store_receipts("u", "p", 11, &s[1..2]).remove(0);
    let twice = store_receipts("u", "p", 10, &[s[0], s[1], s[0]]);
    let max = w.c.params().max_shards_per_commit as usize;
    let many: Vec<ShardId> = (0..=max as u32)
        .map(|i| ShardId::of(&i.to_le_bytes()))
        .collect();
    let cases = vec![
        (by_x, bad(1, "not signed by the order's provider")),
        (forged, bad(1, "bad signature")),
        (other_user, bad(2, "issued to another user")),
        (sizes, bad(1, "shard sizes differ or are zero")),
        (
            store_receipts("u", "p", 0, &s),
            bad(0, "shard sizes differ or are zero"),
        ),
        (twice, bad(2, "shard listed twice")),
        (vec![], Rejection::Invalid("shard count")),
        (
            store_receipts("u", "p", 1, &many),
            Rejection::Invalid("shard count"),
        ),
    ];
    let before = w.c.end_block().unwrap();
    for (receipts, want) in cases {
        assert_eq!(w.send(&kp("u"), create(receipts)), Err(want.clone()));
        assert_eq!(w.c.end_block().unwrap(), before, "{want} changed the state");
    }
    // A stranger cannot order with the user's receipts: they name the user.
    assert!(
        w.send(&kp("x"), Call::Roles(RolesCall::RegisterUser))
            .is_ok()
    );
    assert_eq!(
        w.send(&kp("x"), create(store_receipts("u", "p", 10, &s))),
        Err(bad(0, "issued to another user"))
    );
    // The most receipts an order may carry fit in one transaction.
    let full: Vec<ShardId> = (0..MAX_SHARDS_PER_ORDER)
        .map(|i| ShardId::of(&i.to_le_bytes()))
        .collect();
    let tx = w.tx(&kp("u"), create(store_receipts("u", "p", 1 << 40, &full)));
    assert!(
        tx.body.len() <= <Tx as crate::Signable>::MAX_BYTES,
        "{} bytes",
        tx.body.len()
    );
    let ok = w.send(&kp("u"), create(store_receipts("u", "p", 10, &s)));
    assert!(matches!(ok, Ok(Outcome::OrderCreated(_))), "{ok:?}");
}

#[test]
fn missed_proofs_are_slashed_after_the_grace_and_the_forfeit_pays_the_repair() {
    let (mut w, first, [k, _]) = repair_market();
    // Only this test's order runs (the first has not started: it ends at once).
    w.send(
        &kp("u"),
        Call::Market(MarketCall::EndOrder { order: first }),
    )
    .unwrap();
    w.send(&kp("p"), Call::Roles(RolesCall::AddStake { amount: 9_000 }))
        .unwrap();
    let s: Vec<ShardId> = (10..16u8).map(|i| ShardId::of(&[i])).collect();
    // 6 shards of 20 bytes at 2 for 10 epochs: 240 an epoch; a slash is 10 epochs, 2,400.
    let id = w.order(order_call("p", 20, &s, 2, 10));
    let grace = w.c.params().missed_grace;
    assert_eq!(grace, 2);
    // Epochs 1 and 2 go unproven: marked, forgiven.
    w.next_epoch();
    w.next_epoch();
    w.next_epoch();
    assert_eq!(w.c.order(id).unwrap().missed, grace);
    assert_eq!(stake_of(&w, "p"), 10_000);
    // Epoch 3 unproven too: slashed.
    w.next_epoch();
    assert_eq!(w.c.order(id).unwrap().missed, grace + 1);
    assert_eq!(stake_of(&w, "p"), 10_000 - 2_400);
    assert_eq!(w.c.order(id).unwrap().forfeit, 2_400);
    // A proof resets the count; a failed one is slashed at once.
    prove(&mut w, id, true).unwrap();
    w.next_epoch();
    assert_eq!(w.c.order(id).unwrap().missed, 0);
    assert_eq!(
        prove(&mut w, id, false).map(|o| matches!(o, Outcome::ProofFailed { slashed: 2_400, .. })),
        Ok(true)
    );
    assert_eq!(stake_of(&w, "p"), 10_000 - 4_800);
    w.conserved();
    // Repairing a shard in epoch 5: its sixth of the forfeit (800) pays the keeper's reward,
    // and the rest tops up the new order's escrow. The provider's stake is not touched again.
    let k_before = w.c.account(&k.account()).balance;
    let Ok(Outcome::Reassigned {
        order: new,
        moved,
        shortfall,
        penalty,
    }) = w.send(&k, reassign(id, s[0], "q"))
    else {
        panic!("reassign refused")
    };
    let reward = w.c.params().repair_penalty;
    assert_eq!((moved, shortfall, penalty), (200, 0, reward));
    assert_eq!(w.c.account(&k.account()).balance, k_before + reward);
    assert_eq!(w.c.order(new).unwrap().escrow, 200 + 800 - reward);
    assert_eq!(w.c.order(id).unwrap().forfeit, 4_000);
    assert_eq!(stake_of(&w, "p"), 10_000 - 4_800);
    w.conserved();
    // What no repair used goes to the repair fund when the order ends.
    let fund = w.c.status().repair_fund;
    w.send(&k, Call::Market(MarketCall::EndOrder { order: id }))
        .unwrap();
    w.next_epoch();
    assert!(w.c.order(id).is_none());
    assert_eq!(w.c.status().repair_fund, fund + 4_000);
    w.conserved();
}

#[test]
fn orders_renew_from_the_balance_and_lapse_when_it_runs_out() {
    let (mut w, id) = market();
    // u keeps 700: enough to renew the 3-epoch term (600) once, not twice.
    let spare = w.balance("u") - 700;
    w.send(
        &kp("u"),
        Call::Settlement(SettlementCall::Transfer {
            to: kp("x").account(),
            amount: spare,
        }),
    )
    .unwrap();
    for _ in 0..3 {
        w.next_epoch();
        prove(&mut w, id, true).unwrap();
    }
    w.next_epoch();
    let o = w.c.order(id).expect("renewed").clone();
    assert_eq!((o.end, o.escrow, o.term), (7, 600, 3));
    assert_eq!(w.balance("u"), 100);
    for _ in 0..2 {
        prove(&mut w, id, true).unwrap();
        w.next_epoch();
    }
    prove(&mut w, id, true).unwrap();
    assert_eq!(
        w.c.query(&Query::Lapsed(kp("u").account())),
        Answer::Lapsed(vec![])
    );
    w.next_epoch();
    // 100 left, 600 needed: the order lapses, the provider's space frees, the user can see it.
    assert!(w.c.order(id).is_none());
    assert_eq!(
        w.c.query(&Query::Lapsed(kp("u").account())),
        Answer::Lapsed(vec![(7, id, kp("p").account())])
    );
    let Some(RoleInfo::Provider { used, .. }) =
        w.c.role(&kp("p").account()).map(|r| r.info.clone())
    else {
        panic!()
    };
    assert_eq!(used, 0);
    assert_eq!(w.balance("u"), 100);
    w.conserved();
    // Lapses are remembered for LAPSE_MEMORY epochs.
    while w.c.epoch() < 7 + LAPSE_MEMORY {
        w.next_epoch();
    }
    assert_eq!(
        w.c.query(&Query::Lapsed(kp("u").account())),
        Answer::Lapsed(vec![])
    );
}

fn share(id: OrderId, shards: &[ShardId]) -> Call {
    Call::Market(MarketCall::Share {
        order: id,
        shards: shards.to_vec(),
    })
}

fn unshare(id: OrderId, user: &str, shards: &[ShardId]) -> Call {
    Call::Market(MarketCall::Unshare {
        order: id,
        user: kp(user).account(),
        shards: shards.to_vec(),
    })
}

/// The owners the ledger lists for shard `s` of order `id` (what keepers check a put against).
fn owners(w: &World, id: OrderId, s: ShardId) -> Vec<AccountId> {
    let Answer::Holdings(h) = w.c.query(&Query::Holdings(vec![(kp("p").account(), s)])) else {
        panic!()
    };
    h[0].iter()
        .filter(|(o, _, _)| *o == id)
        .map(|(_, u, _)| *u)
        .collect()
}

#[test]
fn owners_of_deduplicated_shards_split_their_cost_and_are_refunded_as_owners_come_and_go() {
    let mut w = World::new(&["u", "p", "k1", "k2", "k3", "v", "y", "x", "poor"]);
    for k in ["k1", "k2", "k3"] {
        w.send(&kp(k), keeper_call(1_000)).unwrap();
    }
    w.send(&kp("p"), provider_call(1_000)).unwrap();
    for u in ["u", "v", "y", "poor"] {
        w.send(&kp(u), Call::Roles(RolesCall::RegisterUser))
            .unwrap();
    }
    // u's order: 4 shards of 25 bytes at 2 for 3 epochs: each shard is worth V = 150.
    let id = w.order(order_call("p", 25, &shards(4), 2, 3));
    let s0 = shards(4)[0];
    let bal = |w: &World| ["u", "v", "y"].map(|n| w.balance(n));
    let b0 = bal(&w);
    // v co-owns two shards: it pays u half of each, V/2.
    assert_eq!(
        w.send(&kp("v"), share(id, &shards(2))),
        Ok(Outcome::Shared(150))
    );
    assert_eq!(bal(&w), [b0[0] + 150, b0[1] - 150, b0[2]]);
    let mut both = vec![kp("u").account(), kp("v").account()];
    both.sort();
    assert_eq!(owners(&w, id, s0), both);
    // A third owner of shard 0 pays each of the two V/6: all three now carry V/3.
    assert_eq!(w.send(&kp("y"), share(id, &[s0])), Ok(Outcome::Shared(50)));
    assert_eq!(bal(&w), [b0[0] + 175, b0[1] - 125, b0[2] - 50]);
    assert_eq!(owners(&w, id, s0).len(), 3);
    w.conserved();
    // Refused, changing nothing: owning twice, a shard not committed, a shard listed twice,
    // an account with no balance, a stranger's leave for someone else, a non-owner's leave.
    let root = w.c.end_block().unwrap();
    assert_eq!(
        w.send(&kp("v"), share(id, &[s0])),
        Err(Rejection::AlreadyOwner {
            order: id,
            shard: s0
        })
    );
    assert!(matches!(
        w.send(&kp("v"), share(id, &[ShardId::of(b"other")])),
        Err(Rejection::ShardNotCommitted { .. })
    ));
    assert!(matches!(
        w.send(&kp("y"), share(id, &[shards(4)[3], shards(4)[3]])),
        Err(Rejection::Invalid(_))
    ));
    let all = w.balance("poor");
    w.send(
        &kp("poor"),
        Call::Settlement(SettlementCall::Transfer {
            to: kp("x").account(),
            amount: all,
        }),
    )
    .unwrap();
    let root = {
        let _ = root;
        w.c.end_block().unwrap()
    };
    assert!(matches!(
        w.send(&kp("poor"), share(id, &[s0])),
        Err(Rejection::InsufficientBalance { .. })
    ));
    assert_eq!(
        w.send(&kp("x"), unshare(id, "v", &[s0])),
        Err(Rejection::NotOrderParty(id))
    );
    assert_eq!(
        w.send(&kp("y"), unshare(id, "y", &[shards(4)[3]])),
        Err(Rejection::NotOwner {
            order: id,
            shard: shards(4)[3]
        })
    );
    assert_eq!(w.c.end_block().unwrap(), root);
    // u leaves shard 0 while v and y keep it: each of them refunds u V/6.
    assert_eq!(
        w.send(&kp("u"), unshare(id, "u", &[s0])),
        Ok(Outcome::Unshared(50))
    );
    assert_eq!(bal(&w), [b0[0] + 225, b0[1] - 150, b0[2] - 75]);
    // v's keeper reports v's delete: y refunds v V/2 and carries the shard alone.
    let k = w.c.keepers_of(&kp("v").account())[0];
    let keeper = ["k1", "k2", "k3"]
        .into_iter()
        .find(|n| kp(n).account() == k)
        .unwrap();
    assert_eq!(
        w.send(&kp(keeper), unshare(id, "v", &[s0])),
        Ok(Outcome::Unshared(75))
    );
    assert_eq!(bal(&w), [b0[0] + 225, b0[1] - 75, b0[2] - 150]);
    assert_eq!(owners(&w, id, s0), vec![kp("y").account()]);
    // The last owner leaves: u, who funds the escrow (and gets it back when the order ends),
    // refunds it V. Nobody owns the shard now; the keepers purge it.
    assert_eq!(
        w.send(&kp("y"), unshare(id, "y", &[s0])),
        Ok(Outcome::Unshared(150))
    );
    assert_eq!(bal(&w), [b0[0] + 75, b0[1] - 75, b0[2]]);
    assert!(owners(&w, id, s0).is_empty());
    w.conserved();
    // Ending the order refunds its escrow to u and forgets its owners.
    w.send(&kp("u"), Call::Market(MarketCall::EndOrder { order: id }))
        .unwrap();
    assert_eq!(bal(&w), [b0[0] + 75 + 600, b0[1] - 75, b0[2]]);
    assert_eq!(w.c.owners.len(), 0);
    w.conserved();
}

#[test]
fn co_owners_pay_their_share_of_each_renewal_or_lapse_alone() {
    let (mut w, id) = market();
    w.send(&kp("x"), Call::Roles(RolesCall::RegisterUser))
        .unwrap();
    // x co-owns all four shards: it pays u 4 × V/2 = 300 now.
    assert_eq!(
        w.send(&kp("x"), share(id, &shards(4))),
        Ok(Outcome::Shared(300))
    );
    // x keeps 350: its half of one renewal (300), not of two.
    let spare = w.balance("x") - 350;
    w.send(
        &kp("x"),
        Call::Settlement(SettlementCall::Transfer {
            to: kp("k1").account(),
            amount: spare,
        }),
    )
    .unwrap();
    let u0 = w.balance("u");
    for _ in 0..3 {
        w.next_epoch();
        prove(&mut w, id, true).unwrap();
    }
    w.next_epoch();
    // The renewal takes the whole term's escrow (600) from u and x's half (300) from x.
    let o = w.c.order(id).expect("renewed").clone();
    assert_eq!((o.end, o.escrow), (7, 600));
    assert_eq!(w.balance("u"), u0 - 300);
    assert_eq!(w.balance("x"), 50);
    w.conserved();
    for _ in 0..2 {
        prove(&mut w, id, true).unwrap();
        w.next_epoch();
    }
    prove(&mut w, id, true).unwrap();
    w.next_epoch();
    // x cannot pay its half of the next term: its shares lapse, u renews alone and owns
    // every shard again.
    let o = w.c.order(id).expect("renewed by u").clone();
    assert_eq!(o.end, 10);
    assert_eq!(w.balance("x"), 50);
    assert_eq!(w.balance("u"), u0 - 300 - 600);
    assert_eq!(
        w.c.query(&Query::Lapsed(kp("x").account())),
        Answer::Lapsed(vec![(7, id, kp("p").account())])
    );
    assert_eq!(owners(&w, id, shards(4)[2]), vec![kp("u").account()]);
    assert_eq!(w.c.owners.len(), 0);
    w.conserved();
}

fn beacon_at(epoch: Epoch, reveal: Option<&[u8; 32]>, next: &[u8; 32]) -> Call {
    Call::Settlement(SettlementCall::Beacon {
        epoch,
        reveal: reveal.copied(),
        commit: *blake3::hash(next).as_bytes(),
    })
}

#[test]
fn the_challenge_beacon_comes_from_keepers_reveals_and_withholding_costs_stake() {
    let (mut w, id) = market();
    // Grinding: whatever the producer puts in blocks, or however it stamps them, the beacon
    // and so the challenged shard are the same (see apply_block_checks_signatures_order_and_root
    // for different parents). Without reveals the next beacon is known in advance...
    let b0 = w.c.beacon();
    let predicted = derive(
        "memo 2026 beacon v2",
        &[&b0, &1u64.to_le_bytes(), &[0u8; 32]],
    );
    // ...so keepers reveal secrets committed an epoch earlier.
    let (s1, s2) = ([1u8; 32], [2u8; 32]);
    // A step for another epoch (included late) is refused: keepers derive their secrets from
    // the epoch a commitment is made in.
    assert_eq!(
        w.send(&kp("k1"), beacon_at(w.c.epoch() + 1, None, &s1)),
        Err(Rejection::WrongEpoch { current: 0, got: 1 })
    );
    w.send(&kp("k1"), beacon_at(w.c.epoch(), None, &s1))
        .unwrap();
    assert_eq!(
        w.send(&kp("k1"), beacon_at(w.c.epoch(), None, &s2)),
        Err(Rejection::Invalid("beacon (already sent this epoch)"))
    );
    assert_eq!(
        w.send(&kp("u"), beacon_at(w.c.epoch(), None, &s1)),
        Err(Rejection::WrongRole {
            account: kp("u").account(),
            needed: RoleKind::Keeper
        })
    );
    w.send(&kp("k2"), beacon_at(w.c.epoch(), None, &s2))
        .unwrap();
    w.next_epoch();
    assert_eq!(w.c.beacon(), predicted, "no reveals yet");
    // Epoch 1: k1 reveals; a wrong or missing reveal is refused and changes nothing.
    let before = w.c.end_block().unwrap();
    for (who, call, why) in [
        (
            "k1",
            beacon_at(w.c.epoch(), Some(&[9; 32]), &s2),
            "beacon reveal (does not match)",
        ),
        (
            "k1",
            beacon_at(w.c.epoch(), None, &s2),
            "beacon reveal (missing)",
        ),
        (
            "k3",
            beacon_at(w.c.epoch(), Some(&s1), &s2),
            "beacon reveal (nothing committed)",
        ),
    ] {
        assert_eq!(w.send(&kp(who), call), Err(Rejection::Invalid(why)));
        assert_eq!(w.c.end_block().unwrap(), before);
    }
    w.send(&kp("k1"), beacon_at(w.c.epoch(), Some(&s1), &[3; 32]))
        .unwrap();
    let b1 = w.c.beacon();
    let unmixed = derive(
        "memo 2026 beacon v2",
        &[&b1, &2u64.to_le_bytes(), &[0u8; 32]],
    );
    let k2_stake = w.c.role(&kp("k2").account()).unwrap().stake();
    let fund = w.c.status().repair_fund;
    w.next_epoch();
    // k1's reveal entered the beacon: unknown to anyone before it was revealed.
    assert_ne!(w.c.beacon(), unmixed);
    let part = derive("memo 2026 beacon reveal v1", &[&kp("k1").account().0, &s1]);
    assert_eq!(
        w.c.beacon(),
        derive("memo 2026 beacon v2", &[&b1, &2u64.to_le_bytes(), &part])
    );
    // k2 withheld its reveal (to steer the beacon, say): slashed, commitment dropped.
    let slash = w.c.params().slash_amount;
    assert_eq!(
        w.c.role(&kp("k2").account()).unwrap().stake(),
        k2_stake - slash
    );
    assert_eq!(w.c.status().repair_fund, fund + slash);
    assert_eq!(
        w.c.query(&Query::BeaconCommit(kp("k2").account())),
        Answer::BeaconCommit(None)
    );
    assert_eq!(
        w.c.query(&Query::BeaconCommit(kp("k1").account())),
        Answer::BeaconCommit(Some((1, *blake3::hash(&[3; 32]).as_bytes())))
    );
    assert!(w.c.challenge(id).is_some());
    w.conserved();
}

fn receipt(user: &str, provider: &str, serial: u64, expires: Epoch) -> Signed<Receipt> {
    let r = Receipt {
        chain: CHAIN,
        user: kp(user).account(),
        provider: kp(provider).account(),
        serial,
        bytes: 1000,
        price: 3,
        expires,
    };
    Signed::sign(&kp(user), &r)
}

#[test]
fn receipts_settle_once_and_only_by_their_provider() {
    let (mut w, _) = market();
    w.send(&kp("x"), provider_call(1_000)).unwrap();
    let r = receipt("u", "p", 1, 3);
    let settle = |r: &Signed<Receipt>| Call::Settlement(SettlementCall::SettleReceipt(r.clone()));
    assert_eq!(
        w.send(&kp("x"), settle(&r)),
        Err(Rejection::NotReceiptProvider(kp("p").account()))
    );
    assert_eq!(
        w.send(&kp("u"), settle(&r)),
        Err(Rejection::WrongRole {
            account: kp("u").account(),
            needed: RoleKind::Provider
        })
    );
    let (u, p) = (w.balance("u"), w.balance("p"));
    assert_eq!(
        w.send(&kp("p"), settle(&r)),
        Ok(Outcome::ReceiptSettled(3000))
    );
    assert_eq!((w.balance("u"), w.balance("p")), (u - 3000, p + 3000));
    assert_eq!(
        w.send(&kp("p"), settle(&r)),
        Err(Rejection::ReceiptAlreadySettled)
    );
    w.next_block();
    assert_eq!(
        w.send(&kp("p"), settle(&r)),
        Err(Rejection::ReceiptAlreadySettled)
    );
    // A receipt "signed" by someone else for the user is refused.
    let mut forged = r.clone();
    forged.signer = kp("x").account();
    assert_eq!(
        w.send(&kp("p"), settle(&forged)),
        Err(Rejection::BadReceipt)
    );
    let mut tampered = receipt("u", "p", 2, 3);
    tampered.body[10] ^= 1;
    assert_eq!(
        w.send(&kp("p"), settle(&tampered)),
        Err(Rejection::BadReceipt)
    );
    assert_eq!(
        w.send(&kp("p"), settle(&receipt("u", "p", 3, 500))),
        Err(Rejection::ReceiptTooLong(500))
    );
    // After expiry the id is forgotten, and the receipt can no longer be settled.
    for _ in 0..4 {
        w.next_epoch();
    }
    assert_eq!(
        w.send(&kp("p"), settle(&r)),
        Err(Rejection::ReceiptExpired(3))
    );
    assert_eq!(
        w.c.query(&Query::ReceiptSettled(Receipt::id_of(&r))),
        Answer::ReceiptSettled(false)
    );
    w.conserved();
}

#[test]
fn apply_block_checks_signatures_order_and_root() {
    let g = Genesis::new(
        CHAIN,
        params(),
        [(kp("a").account(), 100), (kp("b").account(), 100)],
    )
    .unwrap();
    let new = || Contract::new(&g, Arc::new(StubVerifier)).unwrap();
    let pay = |n: u64, amount: u64| {
        Signed::sign(
            &kp("a"),
            &Tx::new(
                CHAIN,
                n,
                Call::Settlement(SettlementCall::Transfer {
                    to: kp("b").account(),
                    amount,
                }),
            ),
        )
    };
    let txs = vec![pay(0, 10), pay(1, 20), pay(2, 30)];
    let mut c1 = new();
    let root = c1.apply_block(1, g.hash(), &txs, None).unwrap();
    assert_eq!(root, c1.recompute_root());
    // Replay gives the same root; a wrong claimed root is refused and changes nothing.
    let mut c2 = new();
    let genesis_root = c2.state_root();
    assert_eq!(
        c2.apply_block(1, g.hash(), &txs, Some([0; 32])),
        Err(BlockError::StateRoot)
    );
    assert_eq!(c2.state_root(), genesis_root);
    assert_eq!(c2.height(), 0);
    assert_eq!(c2.apply_block(1, g.hash(), &txs, Some(root)), Ok(root));
    // Reordered transactions: the nonces break.
    let mut c3 = new();
    let reordered = vec![txs[1].clone(), txs[0].clone(), txs[2].clone()];
    assert!(matches!(
        c3.apply_block(1, g.hash(), &reordered, None),
        Err(BlockError::InvalidTx {
            index: 0,
            reason: Rejection::NonceGap { .. }
        })
    ));
    // A forged signature.
    let mut bad = txs.clone();
    bad[2].signature.0[5] ^= 1;
    assert_eq!(
        c3.apply_block(1, g.hash(), &bad, None),
        Err(BlockError::InvalidTx {
            index: 2,
            reason: Rejection::BadSignature
        })
    );
    assert_eq!(c3.state_root(), genesis_root);
    assert_eq!(
        c3.apply_block(2, g.hash(), &txs, None),
        Err(BlockError::WrongHeight {
            expected: 1,
            got: 2
        })
    );
    // A different parent hash (another block producer's choice of contents or time) gives the
    // same beacon, hence the same state: the producer cannot grind the challenges.
    let p4 = Params {
        epoch_blocks: 1,
        ..params()
    };
    let g4 = Genesis::new(CHAIN, p4, [(kp("a").account(), 100)]).unwrap();
    let mut x = Contract::new(&g4, Arc::new(StubVerifier)).unwrap();
    let mut y = Contract::new(&g4, Arc::new(StubVerifier)).unwrap();
    assert_eq!(
        x.apply_block(1, [1; 32], &[], None),
        y.apply_block(1, [2; 32], &[], None)
    );
    assert_eq!(x.beacon(), y.beacon());
}

#[test]
fn batch_and_single_verification_agree_with_identity() {
    let a = kp("a");
    let txs: Vec<SignedTx> = (0..20)
        .map(|n| Signed::sign(&a, &Tx::new(CHAIN, n, Call::Roles(RolesCall::RegisterUser))))
        .collect();
    let mut s = SigChecker::new();
    assert!(txs.iter().all(|t| t.verify().is_ok() && s.verify_one(t)));
    assert!(s.verify_batch(&txs));
    let mut bad = txs.clone();
    bad[7].body.push(0);
    assert!(!s.verify_batch(&bad));
    assert_eq!(s.find_invalid(&bad), vec![7]);
    let mut badkey = txs.clone();
    badkey[3].signer = AccountId([0xff; 32]);
    assert!(!s.verify_batch(&badkey));
}

// ----- reassigning repaired shards -----

/// Keepers k1..k3, providers p (price 2), q (price 2), r (price 5), s (leaving), user u; one
/// order of 120 bytes from u to p at price 2 for epochs 1..4, committed to 6 shards of 20
/// bytes. Returns the world, the order and u's two matched keepers.
fn repair_market() -> (World, OrderId, [Keypair; 2]) {
    let mut w = World::new(&["u", "p", "q", "r", "s", "k1", "k2", "k3", "x"]);
    for k in ["k1", "k2", "k3"] {
        w.send(&kp(k), keeper_call(1_000)).unwrap();
    }
    for (name, price) in [("p", 2), ("q", 2), ("r", 5), ("s", 1)] {
        w.send(
            &kp(name),
            Call::Roles(RolesCall::RegisterProvider {
                stake: 1_000,
                capacity: 1 << 20,
                price,
                address: String::new(),
            }),
        )
        .unwrap();
    }
    w.send(&kp("s"), Call::Roles(RolesCall::Leave)).unwrap();
    w.send(&kp("u"), Call::Roles(RolesCall::RegisterUser))
        .unwrap();
    let id = w.order(order_call("p", 20, &shards(6), 2, 3));
    let matched = w.c.keepers_of(&kp("u").account());
    let names: Vec<&str> = ["k1", "k2", "k3"]
        .into_iter()
        .filter(|k| matched.contains(&kp(k).account()))
        .collect();
    assert_eq!(names.len(), 2);
    (w, id, [kp(names[0]), kp(names[1])])
}

fn reassign(order: OrderId, shard: ShardId, to: &str) -> Call {
    Call::Files(FilesCall::Reassign {
        order,
        shard,
        to: kp(to).account(),
    })
}

fn stake_of(w: &World, name: &str) -> Amount {
    w.c.role(&kp(name).account()).map_or(0, Role::stake)
}

#[test]
fn reassign_refuses_invalid_moves_and_changes_nothing() {
    let (mut w, id, [k, _]) = repair_market();
    let s = shards(6);
    // A second order, held by q and committed to shard 0.
    let other = w.order(order_call("q", 20, &[s[0]], 2, 3));
    let outsider = ["k1", "k2", "k3"]
        .into_iter()
        .map(kp)
        .find(|x| !w.c.keepers_of(&kp("u").account()).contains(&x.account()))
        .unwrap();
    let before = w.c.end_block().unwrap();
    let cases: Vec<(Keypair, Call, Rejection)> = vec![
        (
            kp("u"),
            reassign(id, s[1], "q"),
            Rejection::WrongRole {
                account: kp("u").account(),
                needed: RoleKind::Keeper,
            },
        ),
        (
            kp("x"),
            reassign(id, s[1], "q"),
            Rejection::NotRegistered(kp("x").account()),
        ),
        (
            outsider.clone(),
            reassign(id, s[1], "q"),
            Rejection::NotOrderParty(id),
        ),
        (
            k.clone(),
            reassign(99, s[1], "q"),
            Rejection::UnknownOrder(99),
        ),
        (
            k.clone(),
            reassign(id, ShardId::of(b"nope"), "q"),
            Rejection::ShardNotCommitted {
                order: id,
                shard: ShardId::of(b"nope"),
            },
        ),
        (
            k.clone(),
            reassign(id, s[1], "p"),
            Rejection::SameProvider(kp("p").account()),
        ),
        (
            k.clone(),
            reassign(id, s[1], "x"),
            Rejection::NotRegistered(kp("x").account()),
        ),
        (
            k.clone(),
            reassign(id, s[1], "k1"),
            Rejection::WrongRole {
                account: kp("k1").account(),
                needed: RoleKind::Provider,
            },
        ),
        (
            k.clone(),
            reassign(id, s[1], "s"),
            Rejection::Leaving(kp("s").account()),
        ),
        (
            k.clone(),
            reassign(id, s[0], "q"),
            Rejection::AlreadyHolds(other),
        ),
    ];
    for (who, call, want) in cases {
        assert_eq!(w.send(&who, call.clone()), Err(want), "{call:?}");
        assert_eq!(
            w.c.end_block().unwrap(),
            before,
            "{call:?} changed the state"
        );
    }
    // In the order's last epoch nothing is left to move.
    w.next_epoch();
    w.next_epoch();
    w.next_epoch();
    assert_eq!(w.c.epoch(), 3);
    let before = w.c.end_block().unwrap();
    assert_eq!(
        w.send(&k, reassign(id, s[1], "q")),
        Err(Rejection::OrderNotRunning {
            order: id,
            epoch: 3
        })
    );
    assert_eq!(w.c.end_block().unwrap(), before);
    w.conserved();
}

#[test]
fn reassign_moves_the_shard_and_its_escrow_and_pays_the_keeper_from_the_stake() {
    let (mut w, id, [k, _]) = repair_market();
    let s = shards(6);
    w.next_epoch();
    assert_eq!(w.c.epoch(), 1);
    let k_before = w.c.account(&k.account()).balance;
    let penalty = w.c.params().repair_penalty;
    assert!(penalty > 0);
    // Epoch 1 runs: 240 of the 720 escrow pays it; the shard's sixth of the other 480 moves.
    let Ok(Outcome::Reassigned {
        order: new,
        moved,
        shortfall,
        penalty: paid,
    }) = w.send(&k, reassign(id, s[2], "q"))
    else {
        panic!("reassign refused")
    };
    assert_eq!((moved, shortfall, paid), (80, 0, penalty));
    w.conserved();
    let old = w.c.order(id).unwrap().clone();
    assert_eq!((old.bytes, old.escrow), (100, 640));
    let o = w.c.order(new).unwrap().clone();
    assert_eq!(o.user, kp("u").account());
    assert_eq!(o.provider, kp("q").account());
    assert_eq!(
        (o.bytes, o.price, o.start, o.end, o.escrow),
        (20, 2, 2, 4, 80)
    );
    let c = w.c.commitments.get(&new).unwrap();
    assert_eq!((c.shard_len, c.shards.clone()), (20, vec![s[2]]));
    assert_eq!(
        w.c.holders_of(kp("q").account(), s[2]).collect::<Vec<_>>(),
        [new]
    );
    assert_eq!(w.c.holders_of(kp("p").account(), s[2]).count(), 0);
    assert_eq!(
        w.c.holders_of(kp("p").account(), s[3]).collect::<Vec<_>>(),
        [id]
    );
    assert!(!w.c.commitments.get(&id).unwrap().shards.contains(&s[2]));
    assert_eq!(stake_of(&w, "p"), 1_000 - penalty);
    assert_eq!(w.c.account(&k.account()).balance, k_before + penalty);
    // The same shard cannot be moved twice.
    assert_eq!(
        w.send(&k, reassign(id, s[2], "r")),
        Err(Rejection::ShardNotCommitted {
            order: id,
            shard: s[2]
        })
    );
    // A dearer provider: the failed provider's stake pays the difference (20 × 3 × 2 epochs).
    let Ok(Outcome::Reassigned {
        order: dear,
        moved,
        shortfall,
        ..
    }) = w.send(&k, reassign(id, s[3], "r"))
    else {
        panic!("reassign refused")
    };
    assert_eq!((moved, shortfall), (80, 120));
    let o = w.c.order(dear).unwrap();
    assert_eq!((o.price, o.escrow), (5, 200));
    assert_eq!(stake_of(&w, "p"), 1_000 - 2 * penalty - 120);
    w.conserved();
    // The new order is not challenged in this epoch (it starts next epoch).
    assert!(w.c.challenge(new).is_none());
    w.next_epoch();
    // Epoch 2: q is challenged for the moved shard and paid; p never for it again.
    let ch = w.c.challenge(new).unwrap();
    assert_eq!((ch.provider, ch.shard), (kp("q").account(), s[2]));
    assert!(
        w.c.challenges_of(&kp("q").account())
            .iter()
            .any(|c| c.order == new)
    );
    assert_ne!(w.c.challenge(id).unwrap().shard, s[2]);
    assert_eq!(prove_by(&mut w, "q", new, true), Ok(Outcome::ProofPassed));
    let q_before = w.balance("q");
    w.next_epoch();
    // 40 per epoch, less the keepers' 5 % fee (2, split between u's two keepers).
    assert_eq!(w.balance("q"), q_before + 38);
    w.conserved();
    // The orders end together and leave nothing behind.
    w.next_epoch();
    for o in [id, new, dear] {
        w.send(&k, Call::Market(MarketCall::EndOrder { order: o }))
            .unwrap();
    }
    w.next_epoch();
    assert!(w.c.order(id).is_none() && w.c.order(new).is_none() && w.c.order(dear).is_none());
    w.conserved();
    let root = w.c.commit_block().unwrap();
    assert_eq!(root, w.c.recompute_root());
}

#[test]
fn reassigning_the_last_shard_ends_the_order() {
    let mut w = World::new(&["u", "p", "q", "k1", "k2"]);
    for k in ["k1", "k2"] {
        w.send(&kp(k), keeper_call(1_000)).unwrap();
    }
    for name in ["p", "q"] {
        w.send(&kp(name), provider_call(1_000)).unwrap();
    }
    w.send(&kp("u"), Call::Roles(RolesCall::RegisterUser))
        .unwrap();
    let mut ids = vec![];
    for i in 0..2u8 {
        ids.push(w.order(order_call("p", 10, &[ShardId::of(&[i])], 2, 3)));
    }
    assert_eq!(ids, [0, 1]);
    let k1 = kp("k1");
    let u_before = w.balance("u");
    // Before the order starts: everything moves and the old order is gone at once.
    let Ok(Outcome::Reassigned { moved, .. }) =
        w.send(&k1, reassign(ids[0], ShardId::of(&[ids[0] as u8]), "q"))
    else {
        panic!()
    };
    assert_eq!(moved, 60);
    assert!(w.c.order(ids[0]).is_none());
    assert_eq!(w.balance("u"), u_before);
    w.conserved();
    // While it runs: it keeps the current epoch's escrow, loses its commitment and ends.
    w.next_epoch();
    let Ok(Outcome::Reassigned { moved, .. }) =
        w.send(&k1, reassign(ids[1], ShardId::of(&[ids[1] as u8]), "q"))
    else {
        panic!()
    };
    assert_eq!(moved, 40);
    let old = w.c.order(ids[1]).unwrap();
    assert_eq!((old.bytes, old.escrow, old.end), (0, 20, 2));
    assert!(w.c.challenge(ids[1]).is_none());
    w.conserved();
    w.next_epoch();
    assert!(w.c.order(ids[1]).is_none());
    // Epoch 1 was not paid: the old order's last escrow went back to the user, and so did the
    // epoch of the first moved order, which q did not prove.
    assert_eq!(w.balance("u"), u_before + 40);
    assert_eq!(stake_of(&w, "p"), 1_000 - 2 * w.c.params().repair_penalty);
    w.conserved();
}

#[test]
fn genesis_without_repair_penalty_gets_the_default() {
    let g = Genesis::new(3, params(), [(kp("a").account(), 5)]).unwrap();
    let text = g.to_toml();
    assert!(text.contains("repair_penalty"));
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("repair_penalty"))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = Genesis::from_toml(&old).unwrap();
    assert_eq!(
        parsed.params.repair_penalty,
        Params::default().repair_penalty
    );
    assert_eq!(parsed, g);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

    fn arb_call() -> impl Strategy<Value = (usize, u8, usize, u64, u64)> {
        (
            0..NAMES.len(),
            0u8..16,
            0..NAMES.len(),
            0u64..3_000,
            0u64..6,
        )
    }

    /// A call and its sender; most calls go to a plausible sender so that many succeed.
    fn make(
        c: &Contract,
        who: usize,
        op: u8,
        other: usize,
        amount: u64,
        small: u64,
    ) -> (usize, Call) {
        let other_id = kp(NAMES[other]).account();
        let live: Vec<(OrderId, Order)> = c.orders().map(|(id, o)| (id, o.clone())).collect();
        let pick = live.get(amount as usize % (live.len() + 1)).cloned();
        let order = pick.as_ref().map_or(amount, |(id, _)| *id);
        let index_of = |a: AccountId| {
            NAMES
                .iter()
                .position(|n| kp(n).account() == a)
                .unwrap_or(who)
        };
        let party = |p: bool| match (&pick, p) {
            (Some((_, o)), true) if small != 0 => index_of(o.provider),
            (Some((_, o)), false) if small != 0 => index_of(o.user),
            _ => who,
        };
        match op {
            0 => (
                who,
                Call::Settlement(SettlementCall::Transfer {
                    to: other_id,
                    amount,
                }),
            ),
            1 => (who, Call::Roles(RolesCall::RegisterUser)),
            2 => (who, keeper_call(amount)),
            3 => (
                who,
                Call::Roles(RolesCall::RegisterProvider {
                    stake: amount,
                    capacity: 10_000,
                    price: small,
                    address: String::new(),
                }),
            ),
            4 if small == 1 => (
                who,
                Call::Roles(RolesCall::SetAddress {
                    address: format!("/ip4/127.0.0.1/tcp/{amount}"),
                }),
            ),
            4 => (who, Call::Roles(RolesCall::AddStake { amount })),
            5 if small == 0 => (who, Call::Roles(RolesCall::Leave)),
            5 | 6 | 8 => {
                // Receipts mostly from the provider ordered from, for the sender; op 8 has
                // them signed by the other provider, and `small == 3` issued to another user.
                let sender = if small == 5 { who } else { 4 + who % 2 };
                let provider = NAMES[other % 2];
                let signer = if op == 8 {
                    NAMES[(other + 1) % 2]
                } else {
                    provider
                };
                let user = if small == 3 {
                    NAMES[other]
                } else {
                    NAMES[sender]
                };
                let first = (amount % 7) as u8;
                let shards: Vec<ShardId> = (first..first + (small % 4) as u8)
                    .map(|i| ShardId::of(&[i]))
                    .collect();
                (
                    sender,
                    Call::Market(MarketCall::CreateOrder {
                        provider: kp(provider).account(),
                        price: small,
                        duration: small % 4,
                        receipts: store_receipts(user, signer, amount % 50, &shards),
                    }),
                )
            }
            7 => (party(false), Call::Market(MarketCall::EndOrder { order })),
            9 | 10 => {
                let ch = c.challenge(order);
                let (epoch, shard, proof) = match &ch {
                    Some(ch) if op == 9 => (ch.epoch, ch.shard, stub_proof(ch)),
                    Some(ch) => (ch.epoch, ch.shard, vec![1]),
                    None => (c.epoch(), ShardId::of(b"x"), vec![]),
                };
                (
                    party(true),
                    Call::Settlement(SettlementCall::SubmitProof(StorageProof {
                        order,
                        epoch,
                        shard,
                        proof,
                    })),
                )
            }
            13 => {
                // Mostly a committed order, moved to the other provider.
                let committed: Vec<(OrderId, &Order, &Commitment)> = live
                    .iter()
                    .filter_map(|(id, o)| c.commitments.get(id).map(|cm| (*id, o, cm)))
                    .collect();
                let (order, shard, to) =
                    match committed.get(amount as usize % (committed.len() + 1)) {
                        Some((id, o, cm)) => {
                            let to = if small == 0 {
                                kp(NAMES[other % 2]).account()
                            } else if o.provider == kp("a").account() {
                                kp("b").account()
                            } else {
                                kp("a").account()
                            };
                            (*id, cm.shards[small as usize % cm.shards.len()], to)
                        }
                        None => (order, ShardId::of(b"x"), kp(NAMES[other % 2]).account()),
                    };
                (
                    2 + who % 2,
                    Call::Files(FilesCall::Reassign { order, shard, to }),
                )
            }
            14 | 15 => {
                // Mostly some shards of a committed order: co-owned by a user (op 14), or left
                // by one of their owners or its keeper (op 15).
                let committed: Vec<(OrderId, &Order, &Commitment)> = live
                    .iter()
                    .filter_map(|(id, o)| c.commitments.get(id).map(|cm| (*id, o, cm)))
                    .collect();
                let Some((id, o, cm)) = committed.get(amount as usize % (committed.len() + 1))
                else {
                    return (
                        who,
                        Call::Market(MarketCall::Share {
                            order,
                            shards: vec![ShardId::of(b"x")],
                        }),
                    );
                };
                let mut shards = cm.shards[..1 + small as usize % cm.shards.len()].to_vec();
                if small == 5 {
                    shards.push(shards[0]);
                }
                if op == 14 {
                    let user = if small == 4 { who } else { 4 + who % 2 };
                    return (user, Call::Market(MarketCall::Share { order: *id, shards }));
                }
                let owners = c.owners_of(*id, o.user, shards[0]);
                let user = owners
                    .get(other % (owners.len() + 1))
                    .copied()
                    .unwrap_or(other_id);
                let sender = if small == 3 {
                    2 + who % 2
                } else {
                    index_of(user)
                };
                (
                    sender,
                    Call::Market(MarketCall::Unshare {
                        order: *id,
                        user,
                        shards,
                    }),
                )
            }
            11 => (
                0,
                Call::Settlement(SettlementCall::SettleReceipt(receipt(
                    NAMES[other],
                    "a",
                    amount % 4,
                    c.epoch() + small,
                ))),
            ),
            _ => (
                who,
                Call::Settlement(SettlementCall::SettleReceipt(receipt(
                    NAMES[other],
                    NAMES[(other + 1) % 6],
                    small,
                    c.epoch() + 1,
                ))),
            ),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// Money is conserved and every rejection leaves the state root unchanged, across
        /// random valid and invalid transactions and epoch turns; replay gives the same root.
        #[test]
        fn money_is_conserved_and_rejections_change_nothing(
            steps in proptest::collection::vec((arb_call(), 0u8..8, 0u8..3), 1..120)
        ) {
            let mut w = World::new(&NAMES);
            let mut setup = vec![];
            for (name, call) in [
                ("a", provider_call(1_000)),
                ("b", Call::Roles(RolesCall::RegisterProvider { stake: 1_500, capacity: 2_000, price: 1, address: String::new() })),
                ("c", keeper_call(1_000)),
                ("d", keeper_call(2_000)),
                ("e", Call::Roles(RolesCall::RegisterUser)),
                ("f", Call::Roles(RolesCall::RegisterUser)),
            ] {
                let tx = w.tx(&kp(name), call);
                w.c.apply(&tx).unwrap();
                *w.nonces.get_mut(&kp(name).account()).unwrap() += 1;
                setup.push(tx);
            }
            let mut log: Vec<Vec<SignedTx>> = vec![setup];
            let mut stats = [0usize; 16];
            let mut parents = vec![w.parent];
            let mut ticks = vec![w.c.tick()];
            // A block after the transaction: none (0), a tick later (1), or early (2).
            for ((who, op, other, amount, small), nonce_skew, next) in steps {
                let (new_block, early) = (next != 0, next == 2);
                let (who, call) = make(&w.c, who, op, other, amount, small);
                let sender = kp(NAMES[who]);
                let mut tx = w.tx(&sender, call);
                if nonce_skew == 0 {
                    // A wrong nonce: replay or gap.
                    let mut body: Tx = crate::wire::decode(&tx.body, 1 << 20, "t").unwrap();
                    body.nonce = if body.nonce > 0 && small % 2 == 0 { body.nonce - 1 } else { body.nonce + 1 };
                    tx = Signed::sign(&sender, &body);
                }
                let before = w.c.end_block().unwrap();
                match w.c.apply(&tx) {
                    Ok(_) => {
                        stats[op as usize] += 1;
                        *w.nonces.entry(sender.account()).or_insert(0) += 1;
                        log.last_mut().unwrap().push(tx);
                    }
                    Err(_) => prop_assert_eq!(w.c.end_block().unwrap(), before),
                }
                prop_assert_eq!(w.c.total_money(), u128::from(w.c.supply()));
                // No order without receipts: each is committed to exactly its bytes.
                for (id, o) in w.c.orders() {
                    let held = w.c.commitments.get(&id).map_or(0, |c| c.shard_len * c.shards.len() as u64);
                    prop_assert_eq!(held, o.bytes, "order {}", id);
                }
                let indexed: usize = w.c.commitments.iter().map(|(_, c)| c.shards.len()).sum();
                prop_assert_eq!(w.c.holdings.len(), indexed);
                // Owners are recorded only for committed shards of live orders.
                for ((id, shard), _) in w.c.owners.iter() {
                    prop_assert!(w.c.commitments.get(id).is_some_and(|c| c.shards.contains(shard)));
                }
                if new_block {
                    // No pay for unproven epochs: across an epoch turn a provider gains at
                    // most its proven orders' pay (and its stake back if it leaves now).
                    let turning = (w.c.tick() + u64::from(!early)) / w.c.params().epoch_blocks != w.c.epoch();
                    let e = w.c.epoch();
                    let allowed = |p: AccountId| -> u128 {
                        let proven: u128 = w.c.orders()
                            .filter(|(_, o)| o.provider == p && o.start <= e && e < o.end && o.proof == Some(ProofMark::Passed(e)))
                            .map(|(_, o)| u128::from(o.per_epoch().min(o.escrow)))
                            .sum();
                        let leaving = match w.c.role(&p) {
                            Some(r) if matches!(r.status, Status::Leaving { effective } if effective <= e + 1) => u128::from(r.stake()),
                            _ => 0,
                        };
                        proven + leaving
                    };
                    let before: Vec<(AccountId, u128, u128)> = ["a", "b"].iter()
                        .map(|n| kp(n).account())
                        .filter(|p| w.c.role(p).is_some_and(|r| r.kind() == RoleKind::Provider))
                        .map(|p| (p, u128::from(w.c.account(&p).balance), allowed(p)))
                        .collect();
                    w.next_block_at(early);
                    if turning {
                        for (p, was, max) in before {
                            let now = u128::from(w.c.account(&p).balance);
                            prop_assert!(now <= was + max, "provider gained {} > {}", now - was, max);
                        }
                    }
                    log.push(vec![]);
                    parents.push(w.parent);
                    ticks.push(w.c.tick());
                    continue;
                }
                if new_block {
                    w.next_block_at(early);
                    log.push(vec![]);
                    parents.push(w.parent);
                    ticks.push(w.c.tick());
                }
            }
            let root = w.c.commit_block().unwrap();
            if std::env::var_os("MEMO_PROPTEST_STATS").is_some() {
                eprintln!("accepted per op: {stats:?}");
            }
            prop_assert_eq!(root, w.c.recompute_root());
            prop_assert_eq!(w.c.total_money(), u128::from(w.c.supply()));
            // Replay from genesis.
            let g = Genesis::new(CHAIN, params(), NAMES.iter().map(|n| (kp(n).account(), 1_000_000))).unwrap();
            let mut r = Contract::new(&g, Arc::new(StubVerifier)).unwrap();
            for (i, txs) in log.iter().enumerate() {
                r.execute_block_outcomes(i as u64 + 1, ticks[i], parents[i], txs, None).unwrap();
                r.commit_block().unwrap();
            }
            prop_assert_eq!(r.state_root(), root);
            prop_assert_eq!(r.epoch(), w.c.epoch());
        }
    }
}

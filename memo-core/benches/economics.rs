//! The contract's economics under load: storage orders carrying providers' receipts, renewals
//! and an epoch's settlement of 10,000 orders, with the block that proves them.
//!
//! `cargo bench -p memo-core --bench economics` prints a table. Single-threaded, best of 3.

mod common;

use common::Chain;
use memo_core::contract::{
    Call, Contract, Genesis, MarketCall, Params, RolesCall, SettlementCall, SignedTx, StorageProof,
};
use memo_core::proof::MerkleVerifier;
use memo_core::ticket::Receipt;
use memo_core::{AccountId, Keypair, ShardId, Signed};
use std::collections::HashMap;
use std::sync::Arc;

const CHAIN: u64 = 9;
const USERS: usize = 1_000;
const PROVIDERS: usize = 10;
const ORDERS: usize = 10_000;
const SHARD_LEN: usize = 256 * 1024;

fn receipts(provider: &Keypair, user: AccountId, first: u64, n: usize) -> Vec<Signed<Receipt>> {
    (0..n as u64)
        .map(|i| receipt(provider, user, ShardId::of(&(first + i).to_le_bytes())))
        .collect()
}

fn receipt(provider: &Keypair, user: AccountId, shard: ShardId) -> Signed<Receipt> {
    Signed::sign(
        provider,
        &Receipt {
            shard,
            size: SHARD_LEN as u64,
            user,
            expires_ms: u64::MAX,
        },
    )
}

/// Distinct shard contents the proven orders commit to (orders share them).
const CONTENTS: usize = 32;

fn main() {
    let users: Vec<Keypair> = (0..USERS)
        .map(|i| Keypair::from_seed(&format!("eco-user-{i}")))
        .collect();
    let providers: Vec<Keypair> = (0..PROVIDERS)
        .map(|i| Keypair::from_seed(&format!("eco-provider-{i}")))
        .collect();
    let keeper = Keypair::from_seed("eco-keeper");
    let params = Params {
        epoch_blocks: 2,
        keepers_per_user: 1,
        ..Params::default()
    };
    let g = Genesis::new(
        CHAIN,
        params,
        users
            .iter()
            .chain(&providers)
            .chain([&keeper])
            .map(|k| (k.account(), 1 << 52)),
    )
    .expect("genesis");
    let mut ch = Chain::new(
        Contract::new(&g, Arc::new(MerkleVerifier::new())).expect("contract"),
        g.hash(),
    );
    let mut regs = vec![ch.tx(
        &keeper,
        Call::Roles(RolesCall::RegisterKeeper {
            stake: 1_000,
            address: String::new(),
        }),
    )];
    for p in &providers {
        regs.push(ch.tx(
            p,
            Call::Roles(RolesCall::RegisterProvider {
                stake: 1 << 45,
                capacity: 1 << 62,
                price: 1,
                address: String::new(),
            }),
        ));
    }
    ch.block(&regs);
    let regs: Vec<SignedTx> = users
        .iter()
        .map(|u| ch.tx(u, Call::Roles(RolesCall::RegisterUser)))
        .collect();
    ch.block(&regs);

    println!("contract economics: {USERS} users, {PROVIDERS} providers, 256 KiB shards");
    println!("| figure | value |");
    println!("| --- | ---: |");
    // Orders with receipts: blocks of 1,000, for two receipt counts.
    let mut next_shard = 0u64;
    let mut orders_made = 0usize;
    for per_order in [6usize, 64] {
        let mut best = f64::INFINITY;
        let mut bytes = 0;
        for _ in 0..3 {
            let txs: Vec<SignedTx> = (0..1_000)
                .map(|i| {
                    let (u, p) = (&users[i % USERS], &providers[i % PROVIDERS]);
                    let r = receipts(p, u.account(), next_shard, per_order);
                    next_shard += per_order as u64;
                    ch.tx(
                        u,
                        Call::Market(MarketCall::CreateOrder {
                            provider: p.account(),
                            price: 1,
                            duration: 1,
                            receipts: r,
                        }),
                    )
                })
                .collect();
            bytes = memo_core::wire::encode(&txs[0]).len();
            best = best.min(ch.block(&txs) / 1_000.0);
            orders_made += 1_000;
        }
        println!(
            "| CreateOrder with {per_order} receipts: {bytes} B, applied | {:.0} µs ({:.0} orders/s) |",
            best * 1e6,
            1.0 / best
        );
    }
    // 10,000 more orders of one shard each, term 1: every epoch they settle and renew.
    let contents: Vec<Vec<u8>> = (0..CONTENTS as u64)
        .map(|s| {
            let mut v = vec![0u8; SHARD_LEN];
            blake3::Hasher::new()
                .update(&s.to_le_bytes())
                .finalize_xof()
                .fill(&mut v);
            v
        })
        .collect();
    let content_ids: Vec<ShardId> = contents.iter().map(|c| ShardId::of(c)).collect();
    let mut shard_of: HashMap<u64, (usize, usize)> = HashMap::new();
    let first_id = ch.c.orders().map(|(id, _)| id).max().map_or(0, |m| m + 1);
    let mut made = 0usize;
    while made < ORDERS {
        let n = (ORDERS - made).min(1_000);
        let txs: Vec<SignedTx> = (0..n)
            .map(|i| {
                let j = made + i;
                let (u, pi) = (&users[j % USERS], j % PROVIDERS);
                shard_of.insert(first_id + j as u64, (pi, j % CONTENTS));
                let r = receipt(&providers[pi], u.account(), content_ids[j % CONTENTS]);
                ch.tx(
                    u,
                    Call::Market(MarketCall::CreateOrder {
                        provider: providers[pi].account(),
                        price: 1,
                        duration: 1,
                        receipts: vec![r],
                    }),
                )
            })
            .collect();
        ch.block(&txs);
        made += n;
    }
    let _ = orders_made;
    let live = ch.c.orders().count();
    let mut settle = f64::INFINITY;
    for _ in 0..3 {
        settle = settle.min(ch.next_epoch());
    }
    println!(
        "| settle and renew an epoch of {live} orders (no proofs) | {:.1} ms |",
        settle * 1e3
    );
    // One epoch's proofs for the last 10,000 orders, as providers submit them: the block's
    // size and the time to apply it (real Merkle proofs over shards in memory).
    let verifier = MerkleVerifier::new();
    let ids: Vec<u64> =
        ch.c.orders()
            .filter(|(id, _)| shard_of.contains_key(id))
            .map(|(id, _)| id)
            .collect();
    let mut txs = Vec::with_capacity(ids.len());
    for id in &ids {
        let c = ch.c.challenge(*id).expect("challenged");
        let (p, s) = shard_of[id];
        let proof = verifier.prove(&c, &contents[s]).expect("prove");
        let call = Call::Settlement(SettlementCall::SubmitProof(StorageProof {
            order: *id,
            epoch: c.epoch,
            shard: c.shard,
            proof,
        }));
        txs.push(ch.tx(&providers[p], call));
    }
    let size: usize = txs.iter().map(|t| memo_core::wire::encode(t).len()).sum();
    let apply = ch.block(&txs);
    println!(
        "| block of one epoch's proofs for {} orders | {:.1} MiB, applied in {:.0} ms |",
        txs.len(),
        size as f64 / (1 << 20) as f64,
        apply * 1e3
    );
    let settled = ch.next_epoch();
    println!(
        "| settle that epoch (pay {} proven orders, renew them) | {:.1} ms |",
        txs.len(),
        settled * 1e3
    );
    assert_eq!(ch.c.total_money(), u128::from(ch.c.supply()));
}

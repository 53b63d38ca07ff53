//! Storage proofs on the ledger: how many `SubmitProof` transactions the contract applies per
//! second with the real verifier (batch signature check, decode, Merkle check, bookkeeping).
//!
//! `cargo bench -p memo-core --bench ledger_proofs` prints the figures. Single-threaded; best of
//! 5 blocks of `N` proofs (one block per epoch, each order proven once per epoch).

mod common;

use common::Chain;
use memo_core::contract::{
    Call, Contract, Genesis, MarketCall, Params, RolesCall, SettlementCall, SignedTx, StorageProof,
};
use memo_core::proof::MerkleVerifier;
use memo_core::{Keypair, ShardId, Signed};
use std::sync::Arc;
use std::time::Instant;

const CHAIN: u64 = 5;
const N: usize = 1_000;
const SHARDS: usize = 32;
const SHARD_LEN: usize = 256 * 1024;

fn main() {
    let (u, p, k) = (
        Keypair::from_seed("u"),
        Keypair::from_seed("p"),
        Keypair::from_seed("k"),
    );
    let params = Params {
        epoch_blocks: 3,
        keepers_per_user: 1,
        ..Params::default()
    };
    let g = Genesis::new(
        CHAIN,
        params,
        [&u, &p, &k].iter().map(|kp| (kp.account(), 1 << 60)),
    )
    .expect("genesis");
    let mut ch = Chain::new(
        Contract::new(&g, Arc::new(MerkleVerifier::new())).expect("contract"),
        g.hash(),
    );
    let regs = vec![
        ch.tx(
            &k,
            Call::Roles(RolesCall::RegisterKeeper {
                stake: 1_000,
                address: String::new(),
            }),
        ),
        ch.tx(
            &p,
            Call::Roles(RolesCall::RegisterProvider {
                stake: 1_000,
                capacity: 1 << 50,
                price: 1,
                address: String::new(),
            }),
        ),
        ch.tx(&u, Call::Roles(RolesCall::RegisterUser)),
    ];
    ch.block(&regs);
    let shards: Vec<Vec<u8>> = (0..SHARDS)
        .map(|i| {
            let mut v = vec![0u8; SHARD_LEN];
            blake3::Hasher::new()
                .update(&(i as u64).to_le_bytes())
                .finalize_xof()
                .fill(&mut v);
            v
        })
        .collect();
    let orders: Vec<SignedTx> = (0..N)
        .map(|i| {
            ch.tx(
                &u,
                Call::Market(MarketCall::CreateOrder {
                    provider: p.account(),
                    price: 1,
                    duration: 100,
                    receipts: vec![Signed::sign(
                        &p,
                        &memo_core::ticket::Receipt {
                            shard: ShardId::of(&shards[i % SHARDS]),
                            size: SHARD_LEN as u64,
                            user: u.account(),
                            expires_ms: u64::MAX,
                        },
                    )],
                }),
            )
        })
        .collect();
    ch.block(&orders);
    ch.next_epoch();

    let verifier = MerkleVerifier::new();
    let (mut best, mut best_prove, mut tx_bytes) = (f64::INFINITY, f64::INFINITY, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let mut calls = Vec::with_capacity(N);
        for i in 0..N as u64 {
            let c = ch.c.challenge(i).expect("challenged");
            let proof = verifier
                .prove(&c, &shards[(i as usize) % SHARDS])
                .expect("prove");
            calls.push(Call::Settlement(SettlementCall::SubmitProof(
                StorageProof {
                    order: i,
                    epoch: c.epoch,
                    shard: c.shard,
                    proof,
                },
            )));
        }
        best_prove = best_prove.min(t.elapsed().as_secs_f64() / N as f64);
        let txs: Vec<SignedTx> = calls.into_iter().map(|call| ch.tx(&p, call)).collect();
        tx_bytes = memo_core::wire::encode(&txs[0]).len();
        best = best.min(ch.block(&txs) / N as f64);
        // Every proof passed.
        assert!(matches!(
            ch.c.order(0).and_then(|o| o.proof),
            Some(memo_core::contract::ProofMark::Passed(_))
        ));
        ch.next_epoch();
    }
    println!("ledger proofs: {N} SubmitProof transactions per block, 256 KiB shards, 1 leaf");
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!("| SubmitProof transaction (signed) | {tx_bytes} B |");
    println!(
        "| provider: build one proof from the shard in memory | {:.1} µs |",
        best_prove * 1e6
    );
    println!(
        "| ledger: apply one proof in a block (signature, decode, verify, bookkeeping) | {:.1} µs ({:.0} proofs/s) |",
        best * 1e6,
        1.0 / best
    );
}

//! The work the trust rules of issue #18 add to each uploaded shard, one thread: a keeper signs
//! a ticket, the provider checks it and signs a receipt, the admitting keeper verifies the
//! receipt; and a proof of possession over one shard.
//!
//! `cargo bench -p memo-sdk --bench trust`. What the rules cost whole puts, before and after:
//! `memo-sdk/benches/before-after` runs `benches/puts.rs` at two revisions.

use memo_core::contract::SigChecker;
use memo_core::testkit::random_bytes;
use memo_core::ticket::{Possession, Receipt, Ticket, check_ticket};
use memo_core::{AccountId, Keypair, ShardId, Signed};
use std::time::Instant;

/// Mean time of `f` over `n` runs, in microseconds.
fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    // 1. Per-shard work.
    let keeper = Keypair::from_seed("bench-keeper");
    let provider = Keypair::from_seed("bench-provider");
    let user = AccountId([7; 32]);
    let shard = ShardId([1; 32]);
    // One ticket per chunk of 6 shards on 6 providers.
    let ticket = |i: u32| Ticket {
        chunk: memo_core::ChunkId([3; 32]),
        shards: (0..6u8)
            .map(|j| {
                (
                    ShardId([j; 32]),
                    Keypair::from_seed(&format!("p{j}")).account(),
                )
            })
            .chain([(shard, provider.account())])
            .skip(1)
            .collect(),
        size: 262_144,
        user,
        expires_ms: u64::from(i) + 1_000_000,
    };
    let n = 2000;
    let tickets: Vec<Ticket> = (0..n).map(ticket).collect();
    let sign_ticket = per_op(n, |i| {
        std::hint::black_box(Signed::sign(&keeper, &tickets[i as usize]));
    }) / 6.0;
    let signed = Signed::sign(&keeper, &ticket(0));
    let is_keeper = |a: &AccountId| *a == keeper.account();
    // As a provider runs it: the keeper's key stays decompressed in the cache.
    let mut sigs = SigChecker::new();
    let check = per_op(n, |_| {
        let r = check_ticket(
            &signed,
            is_keeper,
            &mut sigs,
            &shard,
            262_144,
            &user,
            &provider.account(),
            0,
        );
        std::hint::black_box(r.is_ok());
    });
    let receipt = Receipt {
        shard,
        size: 262_144,
        user,
        expires_ms: 1_000_000,
    };
    let sign_receipt = per_op(n, |_| {
        std::hint::black_box(Signed::sign(&provider, &receipt));
    });
    // As the admitting keeper runs it: a put's receipts in one batch (here the 6 of a chunk,
    // from 6 providers), keys cached.
    let providers: Vec<Keypair> = (0..6)
        .map(|i| Keypair::from_seed(&format!("bench-provider-{i}")))
        .collect();
    let receipts: Vec<Signed<Receipt>> = providers
        .iter()
        .map(|p| Signed::sign(p, &receipt))
        .collect();
    let verify_receipt = per_op(n / 6, |_| {
        std::hint::black_box(sigs.verify_batch(&receipts));
    }) / 6.0;
    let per_shard = sign_ticket + check + sign_receipt + verify_receipt;
    let shard_256k = random_bytes(262_144, 1);
    let proof_256k = per_op(200, |i| {
        std::hint::black_box(Possession::prove(
            &user,
            u64::from(i),
            memo_core::ChunkId([2; 32]),
            &[&shard_256k],
        ));
    });
    println!("trust work per shard, one thread (mean of {n}):");
    println!("| step | µs |");
    println!("| --- | ---: |");
    println!("| keeper signs a ticket (one for a chunk's 6 shards) | {sign_ticket:.1} |");
    println!("| provider checks the ticket | {check:.1} |");
    println!("| provider signs a receipt | {sign_receipt:.1} |");
    println!("| keeper verifies the receipt (a chunk's 6 in one batch) | {verify_receipt:.1} |");
    println!("| all four, per uploaded shard | {per_shard:.1} |");
    println!("| proof of possession over a 256 KiB shard | {proof_256k:.1} |");

    println!();
    println!(
        "puts with and without these rules: benches/before-after (memo-sdk/benches/puts.rs at \
         two revisions)"
    );
}

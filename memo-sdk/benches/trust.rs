//! What the trust rules of issue #18 cost a put, measured in one run.
//!
//! 1. The work each shard adds, one thread: a keeper signs a ticket, the provider checks it
//!    and signs a receipt, the admitting keeper verifies the receipt; a proof of possession
//!    over one shard.
//! 2. Puts on an in-process network (3 keepers, 6 providers, k = 4, m = 2, memory transport,
//!    real clock): small objects one after another, and a large object. Their per-put trust
//!    work (from 1) is printed beside their latency.
//! 3. The proof of possession, isolated: the same object stored again by its owner (a new
//!    reference, no proof needed) against by a second user (who must prove possession, which
//!    the keeper checks with the holders). Same data, same network, same run.
//!
//! `cargo bench -p memo-sdk --bench trust` (`MEMO_TRUST_SMALL=200` small puts,
//! `MEMO_TRUST_LARGE_MIB=64`).

use memo_core::codec::CodecParams;
use memo_core::testkit::random_bytes;
use memo_core::ticket::{Possession, Receipt, Ticket, check_ticket};
use memo_core::{AccountId, Keypair, ShardId, Signed};
use memo_sdk::local::{LocalSpec, memory_network};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mean time of `f` over `n` runs, in microseconds.
fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let small_n = env_or("MEMO_TRUST_SMALL", 200) as usize;
    let large_mib = env_or("MEMO_TRUST_LARGE_MIB", 64) as usize;

    // 1. Per-shard work.
    let keeper = Keypair::from_seed("bench-keeper");
    let provider = Keypair::from_seed("bench-provider");
    let user = AccountId([7; 32]);
    let shard = ShardId([1; 32]);
    let ticket = |i: u32| Ticket {
        shard,
        size: 262_144,
        user,
        provider: provider.account(),
        expires_ms: u64::from(i) + 1_000_000,
    };
    let n = 2000;
    let sign_ticket = per_op(n, |i| {
        std::hint::black_box(Signed::sign(&keeper, &ticket(i)));
    });
    let signed = Signed::sign(&keeper, &ticket(0));
    let is_keeper = |a: &AccountId| *a == keeper.account();
    let check = per_op(n, |_| {
        let r = check_ticket(
            &signed,
            is_keeper,
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
    let signed_receipt = Signed::sign(&provider, &receipt);
    let verify_receipt = per_op(n, |_| {
        std::hint::black_box(signed_receipt.open().is_ok());
    });
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
    println!("| keeper signs a ticket | {sign_ticket:.1} |");
    println!("| provider checks the ticket | {check:.1} |");
    println!("| provider signs a receipt | {sign_receipt:.1} |");
    println!("| keeper verifies the receipt | {verify_receipt:.1} |");
    println!("| all four, per uploaded shard | {per_shard:.1} |");
    println!("| proof of possession over a 256 KiB shard | {proof_256k:.1} |");

    // 2 and 3. Puts on an in-process network.
    let params = CodecParams {
        chunk_size: 1 << 20,
        data_shards: 4,
        parity_shards: 2,
    };
    let spec = LocalSpec {
        params,
        ..LocalSpec::default()
    };
    rt.block_on(async {
        let (_mem, net) = memory_network(&spec).await.expect("network");
        let alice = net.user("alice").expect("alice");
        let bob = net.user("bob").expect("bob");
        let small: Vec<Vec<u8>> = (0..small_n)
            .map(|i| {
                let mut d = random_bytes(1024, 5);
                d[..8].copy_from_slice(&(i as u64).to_le_bytes());
                d
            })
            .collect();
        let mut first = Vec::new();
        let mut owner_again = Vec::new();
        let mut second_owner = Vec::new();
        for (i, d) in small.iter().enumerate() {
            for (who, times) in [
                (alice, &mut first),
                (alice, &mut owner_again),
                (bob, &mut second_owner),
            ] {
                let t = Instant::now();
                who.put_bytes(&format!("s{i}"), d).await.expect("put");
                times.push(t.elapsed());
            }
        }
        let large = random_bytes(large_mib << 20, 99);
        let t = Instant::now();
        let report = alice.put_bytes("large", &large).await.expect("put");
        let large_first = t.elapsed();
        let t = Instant::now();
        alice.put_bytes("large again", &large).await.expect("put");
        let large_again = t.elapsed();
        let t = Instant::now();
        let bobs = bob.put_bytes("large", &large).await.expect("put");
        let large_second = t.elapsed();
        assert_eq!(bobs.uploaded_chunks, 0, "a second owner uploads nothing");

        let shards = (params.data_shards + params.parity_shards) as f64;
        // A 1 KiB object is two chunks (data and manifest), each of k + m shards.
        let small_work = 2.0 * shards * per_shard / 1e3;
        let large_work = report.chunks as f64 * shards * per_shard / 1e3;
        println!();
        println!(
            "puts on an in-process network (3 keepers, 6 providers, k=4 m=2, 1 MiB chunks); \
             trust work = tickets and receipts of every uploaded shard, one thread:"
        );
        println!("| put | p50 ms | p90 ms | trust work ms | share |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        let (p50, p90) = (quantile(&mut first, 0.5), quantile(&mut first, 0.9));
        println!(
            "| {small_n} objects of 1 KiB, new | {:.2} | {:.2} | {small_work:.3} | {:.1}% |",
            ms(p50),
            ms(p90),
            100.0 * small_work / ms(p50)
        );
        println!(
            "| {large_mib} MiB, new ({:.0} MiB/s) | {:.0} | | {large_work:.1} | {:.1}% |",
            large_mib as f64 / large_first.as_secs_f64(),
            ms(large_first),
            100.0 * large_work / ms(large_first)
        );
        println!();
        println!("the proof of possession, isolated (same object, same run):");
        println!("| put | owner again (no proof) ms | second owner (proof checked) ms | cost ms |");
        println!("| --- | ---: | ---: | ---: |");
        let (a, b) = (
            quantile(&mut owner_again, 0.5),
            quantile(&mut second_owner, 0.5),
        );
        println!(
            "| 1 KiB, p50 of {small_n} | {:.2} | {:.2} | {:.2} |",
            ms(a),
            ms(b),
            ms(b) - ms(a)
        );
        println!(
            "| {large_mib} MiB ({} chunks) | {:.0} | {:.0} | {:.0} |",
            report.chunks,
            ms(large_again),
            ms(large_second),
            ms(large_second) - ms(large_again)
        );
    });
}

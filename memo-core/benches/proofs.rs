//! Proofs of storage: proof sizes, verification and generation speed.
//!
//! `cargo bench -p memo-core --bench proofs` prints tables. Single-threaded; each figure is the
//! best of 5 batches (the machine is shared, so the best batch is the least disturbed).

use std::hint::black_box;
use std::time::Instant;

use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root};
use memo_core::proof::tree::{DEFAULT_CACHE_GROUP_LOG2, leaf_count, path_len};
use memo_core::proof::{
    Challenge, ChallengeItem, ChallengeParams, CommittedShard, ProofResponse, StorageProof,
    TreeCache, verify, verify_response,
};
use memo_core::{AccountId, ShardId};

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Seconds per call of `f` (best of 5 batches of `n` calls).
fn time<F: FnMut(usize)>(n: usize, mut f: F) -> f64 {
    for i in 0..n.min(100) {
        f(i);
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..n {
                f(i);
            }
            t.elapsed().as_secs_f64() / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn us(s: f64) -> String {
    format!("{:.2} µs", s * 1e6)
}

fn item_for(data: &[u8], leaves: Vec<u64>) -> ChallengeItem {
    ChallengeItem {
        shard: ShardId::of(data),
        shard_len: data.len() as u64,
        leaves,
    }
}

fn main() {
    println!("# memo proofs of storage (1 KiB blake3 leaves; root = shard id)\n");

    println!("## Proof size per challenged shard (encoded StorageProof)\n");
    println!("| shard size | leaves | path nodes | 1 leaf | 2 leaves | 4 leaves |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, len) in [
        ("1 KiB", 1024usize),
        ("4 KiB", 4096),
        ("64 KiB", 64 << 10),
        ("256 KiB", 256 << 10),
        ("1 MiB", 1 << 20),
        ("32 MiB", 32 << 20),
    ] {
        let data = bytes(len, len as u64);
        let cache = TreeCache::build(&data);
        let n = leaf_count(len as u64);
        let size = |k: u64| {
            let leaves: Vec<u64> = (0..k.min(n)).map(|i| i * (n / k.min(n))).collect();
            let item = item_for(&data, leaves);
            StorageProof::prove_from_reader(&item, &data[..], Some(&cache))
                .unwrap()
                .to_bytes()
                .len()
        };
        println!(
            "| {label} | {n} | {} | {} B | {} B | {} B |",
            path_len(len as u64, 0).unwrap(),
            size(1),
            size(2),
            size(4)
        );
    }

    let data = bytes(256 << 10, 1);
    let id = ShardId::of(&data);
    let n = leaf_count(data.len() as u64);
    let cache = TreeCache::build(&data);
    let items: Vec<ChallengeItem> = (0..n).map(|i| item_for(&data, vec![i])).collect();
    let proofs: Vec<StorageProof> = items
        .iter()
        .map(|it| StorageProof::prove_from_reader(it, &data[..], Some(&cache)).unwrap())
        .collect();
    let encoded: Vec<Vec<u8>> = proofs.iter().map(|p| p.to_bytes()).collect();

    println!("\n## Verification (256 KiB shard, 1 leaf per proof, one core)\n");
    let v = time(20_000, |i| {
        let k = i % n as usize;
        verify(black_box(&items[k]), black_box(&proofs[k])).unwrap();
    });
    let vd = time(20_000, |i| {
        let k = i % n as usize;
        let p = StorageProof::from_bytes(black_box(&encoded[k])).unwrap();
        verify(&items[k], &p).unwrap();
    });
    // A whole epoch's response: 8 shards of 256 KiB, decoded and verified.
    let shards: Vec<Vec<u8>> = (0..8).map(|i| bytes(256 << 10, 100 + i)).collect();
    let caches: Vec<TreeCache> = shards.iter().map(|s| TreeCache::build(s)).collect();
    let committed: Vec<CommittedShard> = shards
        .iter()
        .map(|s| CommittedShard {
            shard: ShardId::of(s),
            shard_len: s.len() as u64,
        })
        .collect();
    let provider = AccountId([1; 32]);
    let ch = Challenge::derive(
        &[9; 32],
        provider,
        1,
        &committed,
        &ChallengeParams::default(),
    )
    .unwrap();
    let resp = ProofResponse::prove(&ch, |item| {
        let k = committed
            .iter()
            .position(|c| c.shard == item.shard)
            .unwrap();
        Ok((&shards[k][..], Some(caches[k].clone())))
    })
    .unwrap();
    let resp_bytes = resp.to_bytes();
    let vr = time(2_000, |_| {
        let r = ProofResponse::from_bytes(black_box(&resp_bytes)).unwrap();
        verify_response(&ch, &r).unwrap();
    });
    let derive = time(20_000, |i| {
        black_box(
            Challenge::derive(
                &[i as u8; 32],
                provider,
                1,
                &committed,
                &ChallengeParams::default(),
            )
            .unwrap(),
        );
    });
    println!("| operation | time | per second (one core) |");
    println!("| --- | ---: | ---: |");
    println!("| verify one proof | {} | {:.0} |", us(v), 1.0 / v);
    println!(
        "| decode + verify one proof ({} B) | {} | {:.0} |",
        encoded[0].len(),
        us(vd),
        1.0 / vd
    );
    println!(
        "| decode + verify a response of 8 shards ({} B) | {} | {:.0} shards/s |",
        resp_bytes.len(),
        us(vr),
        8.0 / vr
    );
    println!(
        "| derive a challenge (8 of 8 shards) | {} | {:.0} |",
        us(derive),
        1.0 / derive
    );

    println!("\n## Generation from a 256 KiB shard (1 leaf)\n");
    println!("| method | reads + hashes per proof | cache size | time |");
    println!("| --- | ---: | ---: | ---: |");
    let g = time(500, |i| {
        let k = (i * 37) % n as usize;
        black_box(StorageProof::prove(&items[k], &data).unwrap());
    });
    println!("| no cache (hash the shard) | 256 KiB | 0 B | {} |", us(g));
    for log2 in [8u8, 6, 4, 2, 0] {
        let c = TreeCache::build_from_reader(&data[..], data.len() as u64, log2).unwrap();
        assert_eq!(c.shard(), id);
        let t = time(5_000, |i| {
            let k = (i * 37) % n as usize;
            black_box(StorageProof::prove_from_reader(&items[k], &data[..], Some(&c)).unwrap());
        });
        let cache_bytes = c.to_bytes().len();
        let default = if log2 == DEFAULT_CACHE_GROUP_LOG2 {
            " (default)"
        } else {
            ""
        };
        println!(
            "| cache, {} KiB groups{default} | {} KiB | {cache_bytes} B ({:.2} %) | {} |",
            1u32 << log2,
            1u32 << log2,
            cache_bytes as f64 * 100.0 / data.len() as f64,
            us(t)
        );
    }
    let b = time(200, |_| {
        black_box(TreeCache::build(black_box(&data)));
    });
    println!(
        "\nBuilding the cache once (hashes the shard, yields its id): {}",
        us(b)
    );

    println!("\n## Coarser leaves? (256 KiB shard, one sampled leaf)\n");
    println!("| leaf | proof payload | leaf hash + path merges |");
    println!("| ---: | ---: | ---: |");
    let cv = [7u8; 32];
    for kib in [1usize, 2, 4, 8] {
        let leaf = &data[..kib << 10];
        let depth = (256 / kib).trailing_zeros() as usize;
        let t = time(20_000, |_| {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(0);
            let mut c = h.update(black_box(leaf)).finalize_non_root();
            for _ in 0..depth {
                c = merge_subtrees_non_root(&c, &cv, Mode::Hash);
            }
            black_box(c);
        });
        println!("| {kib} KiB | {} B | {} |", (kib << 10) + 32 * depth, us(t));
    }

    println!("\n## Comparison for one challenged 256 KiB shard\n");
    println!("| scheme | proof | extra commitment | verification |");
    println!("| --- | ---: | --- | --- |");
    println!(
        "| memo (blake3 tree, 1 KiB leaf) | {} B | none: the root is the shard id | {} |",
        encoded[0].len(),
        us(v)
    );
    println!(
        "| Sia (64 B leaf, 32 B nodes) | {} B | Merkle root in the contract | one leaf hash + 12 nodes |",
        64 + 32 * 12
    );
    println!(
        "| MEMO (BLS-style aggregate) | 98 B for all challenged shards | per-block tags stored by the provider, public key setup | pairings (milliseconds) |"
    );
}

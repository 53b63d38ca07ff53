//! Proofs of storage: honest and dishonest providers, replay, wire format, and the statistical
//! catch rate of a provider that keeps only part of a shard.

use std::collections::BTreeMap;

use memo_core::codec::{CodecParams, ConvergenceDomain, Encoder};
use memo_core::proof::tree::{leaf_count, leaf_len};
use memo_core::proof::{
    Challenge, ChallengeError, ChallengeItem, ChallengeParams, CommittedShard, LEAF_LEN, LeafProof,
    MAX_RESPONSE_BYTES, ProofError, ProofResponse, ProveError, ReadFn, StorageProof, TreeCache,
    verify, verify_response, verify_response_items,
};
use memo_core::wire::WireError;
use memo_core::{AccountId, Keypair, ShardId, Signed};
use proptest::prelude::*;

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn block_hash(epoch: u64) -> [u8; 32] {
    *blake3::hash(format!("block of epoch {epoch}").as_bytes()).as_bytes()
}

/// A provider's shard store: shard id → (bytes, tree cache built when the shard arrived).
struct Store {
    account: AccountId,
    shards: BTreeMap<ShardId, (Vec<u8>, TreeCache)>,
}

impl Store {
    fn new(label: &str) -> Self {
        Self {
            account: Keypair::from_seed(label).account(),
            shards: BTreeMap::new(),
        }
    }
    fn put(&mut self, data: Vec<u8>) -> ShardId {
        let id = ShardId::of(&data);
        let cache = TreeCache::build(&data);
        self.shards.insert(id, (data, cache));
        id
    }
    fn committed(&self) -> Vec<CommittedShard> {
        self.shards
            .iter()
            .map(|(id, (d, _))| CommittedShard {
                shard: *id,
                shard_len: d.len() as u64,
            })
            .collect()
    }
    fn challenge(
        &self,
        epoch: u64,
        committed: &[CommittedShard],
        p: &ChallengeParams,
    ) -> Challenge {
        Challenge::derive(&block_hash(epoch), self.account, epoch, committed, p).unwrap()
    }
    /// Answers honestly from whatever it holds; a shard it lacks gets an empty proof.
    fn respond(&self, ch: &Challenge) -> ProofResponse {
        let proofs = ch
            .items
            .iter()
            .map(|item| match self.shards.get(&item.shard) {
                Some((d, cache)) => {
                    StorageProof::prove_from_reader(item, &d[..], Some(cache)).unwrap()
                }
                None => StorageProof {
                    shard: item.shard,
                    shard_len: item.shard_len,
                    leaves: vec![],
                },
            })
            .collect();
        ProofResponse {
            epoch: ch.epoch,
            provider: ch.provider,
            proofs,
        }
    }
}

#[test]
fn honest_provider_with_codec_shards_passes_every_epoch() {
    let params = CodecParams {
        chunk_size: 1 << 20,
        ..CodecParams::with_shards(4, 2)
    };
    let enc = Encoder::new(ConvergenceDomain::global(), params).unwrap();
    let (_obj, chunks) = enc.encode_bytes(&bytes(2_500_000, 1)).unwrap();
    let mut store = Store::new("honest");
    let mut committed = Vec::new();
    for c in &chunks {
        for (i, s) in c.shards.iter().enumerate() {
            assert_eq!(store.put(s.to_vec()), c.chunk.shards[i]);
            // The ledger knows the length from the chunk reference alone.
            committed.push(CommittedShard {
                shard: c.chunk.shards[i],
                shard_len: c.chunk.shard_len() as u64,
            });
        }
    }
    assert_eq!(committed.len(), 24);
    let params = ChallengeParams {
        shards_per_epoch: 8,
        leaves_per_shard: 2,
    };
    let mut seen = std::collections::BTreeSet::new();
    for epoch in 0..60 {
        let ch = store.challenge(epoch, &committed, &params);
        assert_eq!(ch.items.len(), 8);
        let resp = store.respond(&ch);
        // Through the wire and a signature, as a contract would receive it.
        let kp = Keypair::from_seed("honest");
        let signed = Signed::sign(&kp, &resp);
        let opened: ProofResponse = signed.open().unwrap();
        assert_eq!(signed.signer, ch.provider);
        assert_eq!(
            ProofResponse::from_bytes(&opened.to_bytes()).unwrap(),
            opened
        );
        verify_response(&ch, &opened).unwrap();
        seen.extend(ch.items.iter().map(|i| i.shard));
    }
    assert_eq!(seen.len(), 24, "over 60 epochs every shard was challenged");
}

#[test]
fn challenges_are_deterministic_distinct_and_seeded() {
    let mut store = Store::new("p");
    for i in 0..20 {
        store.put(bytes(5000 + 1000 * i, i as u64));
    }
    let committed = store.committed();
    let p = ChallengeParams {
        shards_per_epoch: 5,
        leaves_per_shard: 3,
    };
    let a = store.challenge(7, &committed, &p);
    let mut shuffled = committed.clone();
    shuffled.reverse();
    shuffled.push(committed[0]); // duplicates are harmless
    assert_eq!(
        store.challenge(7, &shuffled, &p),
        a,
        "order and duplicates do not matter"
    );
    assert_eq!(a.items.len(), 5);
    assert!(a.items.windows(2).all(|w| w[0].shard < w[1].shard));
    for it in &a.items {
        assert_eq!(it.leaves.len(), 3);
        assert!(it.leaves.windows(2).all(|w| w[0] < w[1]));
        assert!(it.leaves.iter().all(|&l| l < leaf_count(it.shard_len)));
    }
    assert_ne!(store.challenge(8, &committed, &p), a, "another epoch");
    let other = Challenge::derive(&block_hash(7), AccountId([9; 32]), 7, &committed, &p).unwrap();
    assert_ne!(other.items, a.items, "another provider");
    let other = Challenge::derive(&[0; 32], store.account, 7, &committed, &p).unwrap();
    assert_ne!(other.items, a.items, "another block hash");
    // Fewer shards/leaves than asked: everything is challenged.
    let small = [CommittedShard {
        shard: ShardId::of(b"x"),
        shard_len: 1,
    }];
    let ch = store.challenge(1, &small, &p);
    assert_eq!(
        ch.items,
        vec![ChallengeItem {
            shard: small[0].shard,
            shard_len: 1,
            leaves: vec![0]
        }]
    );
    assert!(store.challenge(1, &[], &p).items.is_empty());
    // Bad parameters and inconsistent commitments are refused.
    let bad = ChallengeParams {
        shards_per_epoch: 0,
        leaves_per_shard: 1,
    };
    assert!(matches!(
        Challenge::derive(&[0; 32], store.account, 1, &committed, &bad),
        Err(ChallengeError::Param {
            name: "shards_per_epoch",
            ..
        })
    ));
    let bad = ChallengeParams {
        shards_per_epoch: 1,
        leaves_per_shard: 9,
    };
    assert!(Challenge::derive(&[0; 32], store.account, 1, &committed, &bad).is_err());
    let conflict = [
        small[0],
        CommittedShard {
            shard_len: 2,
            ..small[0]
        },
    ];
    assert!(matches!(
        Challenge::derive(&[0; 32], store.account, 1, &conflict, &p),
        Err(ChallengeError::ConflictingLength { .. })
    ));
}

#[test]
fn leaf_sampling_is_uniform() {
    let c = [CommittedShard {
        shard: ShardId::of(b"s"),
        shard_len: 8 * 1024,
    }];
    let p = ChallengeParams {
        shards_per_epoch: 1,
        leaves_per_shard: 1,
    };
    let mut hits = [0u32; 8];
    for epoch in 0..8000 {
        let ch = Challenge::derive(&block_hash(epoch), AccountId([1; 32]), epoch, &c, &p).unwrap();
        hits[ch.items[0].leaves[0] as usize] += 1;
    }
    // Expected 1000 each, standard deviation ~30.
    assert!(hits.iter().all(|&h| (880..1120).contains(&h)), "{hits:?}");
}

#[test]
fn dropped_shard_fails_exactly_the_epochs_that_sample_it() {
    let mut store = Store::new("dropper");
    let ids: Vec<_> = (0..12)
        .map(|i| store.put(bytes(40 * 1024 + i, i as u64)))
        .collect();
    let committed = store.committed();
    let p = ChallengeParams {
        shards_per_epoch: 3,
        leaves_per_shard: 1,
    };
    store.shards.remove(&ids[5]);
    let (mut passed, mut failed) = (0, 0);
    for epoch in 0..40 {
        let ch = store.challenge(epoch, &committed, &p);
        let resp = store.respond(&ch);
        let verdicts = verify_response_items(&ch, &resp).unwrap();
        for (item, v) in ch.items.iter().zip(&verdicts) {
            if item.shard == ids[5] {
                assert!(matches!(
                    v,
                    Err(ProofError::LeafCount {
                        expected: 1,
                        found: 0,
                        ..
                    })
                ));
            } else {
                assert_eq!(v, &Ok(()));
            }
        }
        let sampled = ch.items.iter().any(|i| i.shard == ids[5]);
        assert_eq!(verify_response(&ch, &resp).is_err(), sampled);
        if sampled { failed += 1 } else { passed += 1 }
    }
    assert!(
        passed > 0 && failed > 0,
        "{passed} passes, {failed} failures"
    );
}

#[test]
fn never_stored_shard_cannot_be_faked() {
    let mut store = Store::new("liar");
    let data = bytes(100 * 1024, 3);
    let id = ShardId::of(&data);
    let committed = [CommittedShard {
        shard: id,
        shard_len: data.len() as u64,
    }];
    let p = ChallengeParams::default();
    let ch = store.challenge(3, &committed, &p);
    let item = &ch.items[0];
    // Right shape, wrong content: zero leaf and zero path.
    let fake = StorageProof {
        shard: id,
        shard_len: item.shard_len,
        leaves: item
            .leaves
            .iter()
            .map(|&i| LeafProof {
                index: i,
                data: vec![0; leaf_len(item.shard_len, i).unwrap()],
                path: vec![[0; 32]; memo_core::proof::tree::path_len(item.shard_len, i).unwrap()],
            })
            .collect(),
    };
    assert!(matches!(
        verify(item, &fake),
        Err(ProofError::PathMismatch { .. })
    ));
    // Another shard's bytes of the same length answered under this id.
    let other = bytes(100 * 1024, 4);
    let forged = StorageProof::prove(item, &other).unwrap();
    assert!(matches!(
        verify(item, &forged),
        Err(ProofError::PathMismatch { .. })
    ));
    // The store without the shard answers with nothing.
    store.shards.clear();
    assert!(verify_response(&ch, &store.respond(&ch)).is_err());
}

#[test]
fn altered_bytes_sampled_are_caught_unsampled_only_when_sampled() {
    let data = bytes(256 * 1024, 5);
    let id = ShardId::of(&data);
    let cache = TreeCache::build(&data);
    let committed = [CommittedShard {
        shard: id,
        shard_len: data.len() as u64,
    }];
    let mut store = Store::new("rot");
    store.put(data.clone());
    let p = ChallengeParams {
        shards_per_epoch: 1,
        leaves_per_shard: 1,
    };
    let ch = store.challenge(11, &committed, &p);
    let item = &ch.items[0];
    let sampled = item.leaves[0] as usize;

    // One flipped byte inside the sampled leaf: caught whichever way the proof is built.
    let mut rotten = data.clone();
    rotten[sampled * LEAF_LEN + 17] ^= 0x40;
    for proof in [
        StorageProof::prove(item, &rotten).unwrap(),
        StorageProof::prove_from_reader(item, &rotten[..], Some(&cache)).unwrap(),
    ] {
        assert_eq!(
            verify(item, &proof),
            Err(ProofError::PathMismatch {
                shard: id,
                index: sampled as u64
            })
        );
    }

    // One flipped byte in a leaf that is not sampled, in another cache group. A provider
    // that rehashes the whole shard per proof exposes it (the sibling subtree holding it hashes
    // wrongly) but that is luck, not security: one that answers from its tree cache, built while
    // the data was intact, passes this epoch. Security rests on the sampled leaves only: the
    // damage is caught in the first epoch that samples the altered leaf.
    let victim = (sampled + 128) % 256;
    let mut rotten = data.clone();
    rotten[victim * LEAF_LEN + 3] ^= 1;
    assert!(verify(item, &StorageProof::prove(item, &rotten).unwrap()).is_err());
    let cached = StorageProof::prove_from_reader(item, &rotten[..], Some(&cache)).unwrap();
    assert_eq!(verify(item, &cached), Ok(()));
    let (epoch, later) = (12..)
        .map(|e| (e, store.challenge(e, &committed, &p)))
        .find(|(_, c)| c.items[0].leaves[0] == victim as u64)
        .unwrap();
    let proof =
        StorageProof::prove_from_reader(&later.items[0], &rotten[..], Some(&cache)).unwrap();
    assert!(
        matches!(
            verify(&later.items[0], &proof),
            Err(ProofError::PathMismatch { .. })
        ),
        "epoch {epoch}"
    );
}

#[test]
fn replayed_and_misdirected_proofs_fail() {
    let mut store = Store::new("replayer");
    let a = store.put(bytes(200 * 1024, 6));
    let b = store.put(bytes(200 * 1024, 7));
    let committed = store.committed();
    let p = ChallengeParams {
        shards_per_epoch: 2,
        leaves_per_shard: 2,
    };
    let old = store.challenge(20, &committed, &p);
    let old_resp = store.respond(&old);
    verify_response(&old, &old_resp).unwrap();
    let new = store.challenge(21, &committed, &p);
    assert_ne!(old.items, new.items, "the new epoch samples other leaves");
    assert_eq!(
        verify_response(&new, &old_resp),
        Err(ProofError::WrongEpoch {
            expected: 21,
            found: 20
        })
    );
    let mut relabelled = old_resp.clone();
    relabelled.epoch = 21;
    assert!(matches!(
        verify_response(&new, &relabelled),
        Err(ProofError::WrongLeafIndex { .. })
    ));
    let mut other_provider = new.clone();
    other_provider.provider = AccountId([3; 32]);
    assert!(matches!(
        verify_response(&other_provider, &store.respond(&new)),
        Err(ProofError::WrongProvider { .. })
    ));
    let mut short = store.respond(&new);
    short.proofs.pop();
    assert!(matches!(
        verify_response(&new, &short),
        Err(ProofError::ItemCount {
            expected: 2,
            found: 1
        })
    ));

    // A proof for shard b offered for shard a.
    let item_a = new.items.iter().find(|i| i.shard == a).unwrap();
    let item_b = new.items.iter().find(|i| i.shard == b).unwrap();
    let proof_b = store
        .respond(&new)
        .proofs
        .into_iter()
        .find(|p| p.shard == b)
        .unwrap();
    assert_eq!(
        verify(item_a, &proof_b),
        Err(ProofError::WrongShard {
            expected: a,
            found: b
        })
    );
    let mut renamed = proof_b.clone();
    renamed.shard = a;
    assert!(verify(item_a, &renamed).is_err());
    verify(item_b, &proof_b).unwrap();
    let mut wrong_len = proof_b;
    wrong_len.shard_len += 1;
    assert!(matches!(
        verify(item_b, &wrong_len),
        Err(ProofError::WrongLength { .. })
    ));
}

#[test]
fn wire_format_is_bounded_and_versioned() {
    let data = bytes(256 * 1024, 8);
    let id = ShardId::of(&data);
    let item = ChallengeItem {
        shard: id,
        shard_len: data.len() as u64,
        leaves: vec![37],
    };
    let proof = StorageProof::prove(&item, &data).unwrap();
    let enc = proof.to_bytes();
    // 1 version + 32 id + 3 length + 1 count + 1 index + 2 + 1024 data + 1 + 8·32 path.
    assert_eq!(enc.len(), 1321);
    assert_eq!(StorageProof::from_bytes(&enc).unwrap(), proof);
    let mut v2 = enc.clone();
    v2[0] = 2;
    assert!(matches!(
        StorageProof::from_bytes(&v2),
        Err(ProofError::Malformed(WireError::Version { .. }))
    ));
    assert!(matches!(
        StorageProof::from_bytes(&enc[..enc.len() - 1]),
        Err(ProofError::Malformed(_))
    ));
    let huge = vec![1u8; MAX_RESPONSE_BYTES + 1];
    assert!(matches!(
        ProofResponse::from_bytes(&huge),
        Err(ProofError::Malformed(WireError::TooLarge { .. }))
    ));
    // Wrong-length leaf and wrong-depth path get their own errors.
    let mut p = proof.clone();
    p.leaves[0].data.pop();
    assert!(matches!(
        verify(&item, &p),
        Err(ProofError::LeafLength {
            expected: 1024,
            found: 1023,
            ..
        })
    ));
    let mut p = proof.clone();
    p.leaves[0].path.push([0; 32]);
    assert!(matches!(
        verify(&item, &p),
        Err(ProofError::PathLength {
            expected: 8,
            found: 9,
            ..
        })
    ));
    // A challenge naming a leaf outside the shard is refused, not a panic.
    let bad = ChallengeItem {
        leaves: vec![256],
        ..item.clone()
    };
    let mut p = proof;
    p.leaves[0].index = 256;
    assert!(matches!(
        verify(&bad, &p),
        Err(ProofError::LeafOutOfRange { .. })
    ));
    assert!(matches!(
        StorageProof::prove(&bad, &data),
        Err(ProveError::LeafOutOfRange { .. })
    ));
    assert!(matches!(
        StorageProof::prove(&item, &data[1..]),
        Err(ProveError::WrongLength { .. })
    ));
}

#[test]
fn single_chunk_shards_prove_with_the_whole_shard() {
    for len in [0usize, 1, 500, 1024] {
        let data = bytes(len, len as u64);
        let item = ChallengeItem {
            shard: ShardId::of(&data),
            shard_len: len as u64,
            leaves: vec![0],
        };
        let proof = StorageProof::prove(&item, &data).unwrap();
        assert_eq!(proof.leaves[0].data, data);
        assert!(proof.leaves[0].path.is_empty());
        verify(&item, &proof).unwrap();
    }
}

/// Lengths 1 byte ..= 300 KiB, with extra weight on powers of two KiB and their neighbours.
fn shard_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=300 * 1024,
        (0u32..=8, -1i64..=1).prop_map(|(e, d)| ((1024i64 << e) + d) as usize),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_leaf_verifies_and_every_bit_flip_fails(len in shard_len(), seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let data = bytes(len, seed);
        let id = ShardId::of(&data);
        let cache = TreeCache::build(&data);
        let leaves = leaf_count(len as u64);
        let all = ChallengeItem { shard: id, shard_len: len as u64, leaves: (0..leaves).collect() };
        let proof = StorageProof::prove_from_reader(&all, &data[..], Some(&cache)).unwrap();
        prop_assert_eq!(verify(&all, &proof), Ok(()));

        // Every single-bit flip of one leaf's encoded proof is refused (by decode or verify).
        let leaf = pick.index(leaves as usize) as u64;
        let item = ChallengeItem { shard: id, shard_len: len as u64, leaves: vec![leaf] };
        let one = StorageProof::prove(&item, &data).unwrap();
        let enc = one.to_bytes();
        prop_assert!(enc.len() <= 2048, "proof of {} bytes", enc.len());
        let mut flipped = enc.clone();
        for bit in 0..enc.len() * 8 {
            flipped[bit / 8] ^= 1 << (bit % 8);
            let accepted = StorageProof::from_bytes(&flipped).is_ok_and(|p| verify(&item, &p).is_ok());
            prop_assert!(!accepted, "bit {} of {} accepted", bit, enc.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
    }
}

/// The statistical guarantee: a provider that kept only 90 % of a 100-leaf shard is challenged on 1 leaf per epoch, so each epoch
/// catches it with probability 1/10 and the first catch comes at epoch T with
/// P(T ≤ E) = 1 − 0.9^E: 0.1 for E = 1, 0.651 for E = 10, 0.990 for E = 44.
/// A deterministic simulation over 2 000 seeds (block-hash chains) must agree. The simulated
/// cheater is the strongest one: it keeps the chaining value of every leaf (a tree cache of
/// 1-leaf groups), so its paths are always right and only the sampled leaf's bytes can give it
/// away. (With the default 16 KiB cache it would also be caught whenever a dropped leaf shares
/// the sampled leaf's group, which happens almost every epoch.)
#[test]
fn provider_keeping_90_percent_is_caught_within_44_epochs_with_99_percent() {
    const LEAVES: u64 = 100;
    const EPOCHS: u64 = 44;
    let data = bytes(LEAVES as usize * LEAF_LEN, 99);
    let id = ShardId::of(&data);
    let cache = TreeCache::build_from_reader(&data[..], data.len() as u64, 0).unwrap();
    assert_eq!(cache.shard(), id);
    let committed = [CommittedShard {
        shard: id,
        shard_len: data.len() as u64,
    }];
    let params = ChallengeParams::default(); // 1 leaf per shard
    let provider = AccountId([5; 32]);
    let analytic = |e: u64| 1.0 - 0.9f64.powi(e as i32);

    let runs = 2000u64;
    let mut caught_at = Vec::new();
    for run in 0..runs {
        // Which 10 leaves this cheater threw away (its own choice, independent of the chain).
        let dropped: std::collections::BTreeSet<u64> = {
            let mut s = std::collections::BTreeSet::new();
            let mut x = run;
            while s.len() < 10 {
                x = u64::from_le_bytes(
                    blake3::hash(&x.to_le_bytes()).as_bytes()[..8]
                        .try_into()
                        .unwrap(),
                );
                s.insert(x % LEAVES);
            }
            s
        };
        // Its store answers kept bytes and zeros in place of dropped leaves.
        let read = |offset: u64, buf: &mut [u8]| -> std::io::Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                let at = offset + i as u64;
                *b = if dropped.contains(&(at / LEAF_LEN as u64)) {
                    0
                } else {
                    data[at as usize]
                };
            }
            Ok(())
        };
        let mut reader = ReadFn(read);
        let caught = (1..=200u64).find(|&epoch| {
            let hash = *blake3::hash(&[run.to_le_bytes(), epoch.to_le_bytes()].concat()).as_bytes();
            let ch = Challenge::derive(&hash, provider, epoch, &committed, &params).unwrap();
            let proofs = vec![
                StorageProof::prove_from_reader(&ch.items[0], &mut reader, Some(&cache)).unwrap(),
            ];
            verify_response(
                &ch,
                &ProofResponse {
                    epoch,
                    provider,
                    proofs,
                },
            )
            .is_err()
        });
        caught_at.push(caught.unwrap_or(u64::MAX));
    }
    let frac = |e: u64| caught_at.iter().filter(|&&t| t <= e).count() as f64 / runs as f64;
    for e in [1, 10, EPOCHS] {
        eprintln!(
            "caught within {e:2} epochs: simulated {:.4}, analytic {:.4}",
            frac(e),
            analytic(e)
        );
    }
    // Binomial standard deviation over 2 000 runs is at most 0.011; allow 3.5 of them.
    for e in [1, 10, EPOCHS] {
        assert!(
            (frac(e) - analytic(e)).abs() < 0.04,
            "E={e}: simulated {} vs analytic {}",
            frac(e),
            analytic(e)
        );
    }
    assert!(
        frac(EPOCHS) >= 0.98,
        "caught within {EPOCHS} epochs: {}",
        frac(EPOCHS)
    );
    let mean = caught_at.iter().sum::<u64>() as f64 / runs as f64;
    eprintln!("mean epochs to catch: {mean:.2}");
    assert!(
        (mean - 10.0).abs() < 0.8,
        "mean epochs to catch {mean}, geometric mean 10"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Mangled encodings (truncated, spliced, overwritten) decode to an error or to a proof that
    /// fails verification; nothing panics.
    #[test]
    fn mangled_responses_are_refused_without_panic(
        cut in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
    ) {
        let data = bytes(20 * 1024 + 3, 77);
        let item = ChallengeItem { shard: ShardId::of(&data), shard_len: data.len() as u64, leaves: vec![4, 20] };
        let ch = Challenge { epoch: 2, provider: AccountId([2; 32]), items: vec![item.clone()] };
        let resp = ProofResponse { epoch: 2, provider: ch.provider, proofs: vec![StorageProof::prove(&item, &data).unwrap()] };
        let enc = resp.to_bytes();
        let mut m = enc[..cut.index(enc.len())].to_vec();
        m.extend_from_slice(&junk);
        let pos = at.index(enc.len());
        let mut o = enc.clone();
        for (i, b) in junk.iter().enumerate() {
            if let Some(x) = o.get_mut(pos + i) { *x = *b; }
        }
        for bytes in [m, o] {
            if bytes == enc { continue; }
            if let Ok(r) = ProofResponse::from_bytes(&bytes) {
                prop_assert!(r == resp || verify_response(&ch, &r).is_err());
            }
        }
    }
}

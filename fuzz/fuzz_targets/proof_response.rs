//! Decoding arbitrary bytes as a proof response, a storage proof or a tree cache, and verifying
//! whatever decodes against a fixed challenge, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memo_core::proof::{
    Challenge, ChallengeItem, ProofResponse, StorageProof, TreeCache, verify, verify_response,
};
use memo_core::{AccountId, ShardId};

fuzz_target!(|data: &[u8]| {
    let shard = ShardId::of(b"fuzz shard");
    let item = ChallengeItem {
        shard,
        shard_len: 300 * 1024 + 7,
        leaves: vec![3, 299],
    };
    let challenge = Challenge {
        epoch: 1,
        provider: AccountId([1; 32]),
        items: vec![item.clone()],
    };
    if let Ok(resp) = ProofResponse::from_bytes(data) {
        let _ = verify_response(&challenge, &resp);
        for p in &resp.proofs {
            let _ = verify(&item, p);
        }
    }
    if let Ok(p) = StorageProof::from_bytes(data) {
        let _ = verify(&item, &p);
        let _ = verify(
            &ChallengeItem {
                shard: p.shard,
                shard_len: p.shard_len,
                leaves: vec![0],
            },
            &p,
        );
    }
    let _ = TreeCache::from_bytes(data, &shard);
});

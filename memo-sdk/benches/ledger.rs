//! Ledger throughput: transactions applied per second with signature checks (single strict vs
//! batch), and replay from genesis of a 100,000-transaction chain.
//!
//! `cargo bench -p memo-sdk --bench ledger` (set `LEDGER_TXS` to change the count).

use memo_core::AccountId;
use memo_core::contract::{
    Call, Challenge, Contract, Genesis, Params, ProofVerifier, SettlementCall, SigChecker,
    SignedTx, Tx,
};
use memo_core::identity::{Keypair, Signed};
use memo_sdk::ledger::{ChainConfig, LocalChain};
use std::sync::Arc;
use std::time::Instant;

struct NoProofs;
impl ProofVerifier for NoProofs {
    fn verify(&self, c: &Challenge, _: &[u8]) -> Result<(), memo_core::proof::ProofError> {
        // No proofs in this benchmark: every one fails.
        Err(memo_core::proof::ProofError::PathMismatch {
            shard: c.shard,
            index: 0,
        })
    }
}

const CHAIN: u64 = 1;
const SENDERS: usize = 1_000;
const BLOCK: usize = 1_000;

fn rate(n: usize, secs: f64) -> String {
    format!(
        "{:>9.0} tx/s  ({:>6.2} µs/tx)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    )
}

fn main() {
    let n: usize = std::env::var("LEDGER_TXS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    println!(
        "ledger benchmark: {n} transfer transactions from {SENDERS} accounts, blocks of {BLOCK}"
    );
    let keys: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::from_seed(&format!("bench-{i}")))
        .collect();
    let genesis = Genesis::new(
        CHAIN,
        Params {
            epoch_blocks: 10,
            ..Params::default()
        },
        keys.iter().map(|k| (k.account(), 1_000_000_000)),
    )
    .expect("genesis");
    // Pre-signed transfers to pseudo-random recipients (signing is the clients' cost).
    let t = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut nonces = vec![0u64; SENDERS];
    let txs: Vec<SignedTx> = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = i % SENDERS;
            let mut to = [0u8; 32];
            to[..8].copy_from_slice(&x.to_le_bytes());
            let call = Call::Settlement(SettlementCall::Transfer {
                to: AccountId(to),
                amount: 1 + x % 100,
            });
            let tx = Tx::new(CHAIN, nonces[from], call);
            nonces[from] += 1;
            Signed::sign(&keys[from], &tx)
        })
        .collect();
    println!(
        "  (signed {n} transactions in {:.2} s; not counted)",
        t.elapsed().as_secs_f64()
    );
    let blocks: Vec<&[SignedTx]> = txs.chunks(BLOCK).collect();

    // 1. Signature checks alone.
    let sample = &txs[..n.min(20_000)];
    let mut sc = SigChecker::new();
    for tx in &sample[..SENDERS.min(sample.len())] {
        sc.verify_one(tx); // warm the key cache, as a running ledger has it
    }
    let t = Instant::now();
    assert!(sample.iter().all(|tx| sc.verify_one(tx)));
    let single = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert!(sample.chunks(BLOCK).all(|b| sc.verify_batch(b)));
    let batch = t.elapsed().as_secs_f64();
    println!("signatures only, {} txs:", sample.len());
    println!("  strict single          {}", rate(sample.len(), single));
    println!("  batch of {BLOCK}          {}", rate(sample.len(), batch));

    // 2. The contract alone: without signatures, single strict, batch per block.
    let run = |mode: &str| -> f64 {
        let mut c = Contract::new(&genesis, Arc::new(NoProofs)).expect("contract");
        let mut parent = genesis.hash();
        let t = Instant::now();
        for (i, b) in blocks.iter().enumerate() {
            let h = i as u64 + 1;
            match mode {
                "batch" => {
                    c.apply_block(h, parent, b, None).expect("block");
                }
                _ => {
                    c.begin_block(h, parent).expect("begin");
                    for tx in b.iter() {
                        if mode == "single" {
                            c.apply(tx).expect("tx");
                        } else {
                            c.apply_verified(tx).expect("tx");
                        }
                    }
                    c.commit_block().expect("commit");
                }
            }
            parent = *blake3::hash(&c.state_root()).as_bytes();
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(c.total_money(), u128::from(c.supply()));
        secs
    };
    println!("contract state machine, {n} txs (state root per block included):");
    println!("  no signature checks    {}", rate(n, run("none")));
    println!("  strict single checks   {}", rate(n, run("single")));
    println!("  batch checks per block {}", rate(n, run("batch")));

    // 3. The local chain: sequencer (batching, signing, redb with fsync per block), then
    //    replay from genesis by reopening the store (every block verified again).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let seq_key = Keypair::from_seed("bench-sequencer");
    let chain =
        LocalChain::open_sequencer(&path, genesis.clone(), seq_key.clone(), Arc::new(NoProofs))
            .expect("open");
    let t = Instant::now();
    for (i, b) in blocks.iter().enumerate() {
        for tx in b.iter() {
            chain.submit_tx(tx.clone()).expect("submit");
        }
        let block = chain.produce_block(i as u64).expect("produce");
        assert_eq!(block.txs.len(), b.len());
    }
    let seq = t.elapsed().as_secs_f64();
    let head = chain.head_now();
    drop(chain);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "local chain, {n} txs in {} blocks ({:.1} MB on disk):",
        head.height,
        size as f64 / 1e6
    );
    println!("  sequencer              {}", rate(n, seq));
    let t = Instant::now();
    let config = ChainConfig {
        genesis: genesis.clone(),
        sequencer: seq_key.account(),
    };
    let replayed = LocalChain::open_follower(&path, config, Arc::new(NoProofs)).expect("replay");
    let replay = t.elapsed().as_secs_f64();
    assert_eq!(replayed.head_now(), head);
    println!(
        "  replay from genesis    {}  = {:.2} s",
        rate(n, replay),
        replay
    );
}

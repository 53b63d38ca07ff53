//! What the contract benchmarks share: a chain driven block by block.

use memo_core::contract::{Call, Contract, SignedTx, Tx};
use memo_core::{AccountId, Keypair, Signed};
use std::collections::HashMap;
use std::time::Instant;

/// A contract applied block by block, with each sender's next nonce.
pub struct Chain {
    pub c: Contract,
    pub chain: u64,
    pub height: u64,
    pub parent: [u8; 32],
    pub nonces: HashMap<AccountId, u64>,
}

impl Chain {
    /// The chain at genesis (`parent` is the genesis hash).
    pub fn new(c: Contract, parent: [u8; 32]) -> Self {
        Self {
            chain: c.chain(),
            c,
            height: 0,
            parent,
            nonces: HashMap::new(),
        }
    }

    /// `call` signed by `who` with its next nonce.
    pub fn tx(&mut self, who: &Keypair, call: Call) -> SignedTx {
        let n = self.nonces.entry(who.account()).or_insert(0);
        let tx = Signed::sign(who, &Tx::new(self.chain, *n, call));
        *n += 1;
        tx
    }

    /// Applies a block of `txs` (all must be valid); returns the seconds it took.
    pub fn block(&mut self, txs: &[SignedTx]) -> f64 {
        self.height += 1;
        let t = Instant::now();
        let root = self
            .c
            .apply_block(self.height, self.parent, txs, None)
            .expect("valid block");
        let s = t.elapsed().as_secs_f64();
        self.parent = *blake3::hash(&root).as_bytes();
        s
    }

    /// Empty blocks up to and including the first block of the next epoch; returns the
    /// seconds of that block (which settled the epoch).
    pub fn next_epoch(&mut self) -> f64 {
        let e = self.c.epoch();
        let mut last = 0.0;
        while self.c.epoch() == e {
            last = self.block(&[]);
        }
        last
    }
}

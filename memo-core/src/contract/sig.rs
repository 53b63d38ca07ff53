//! Signature checks with cached public keys, one at a time (strict) or many at once (batch):
//! for any [`Signable`] value (transactions, receipts, tickets).
//!
//! The rule for a block is batch verification: a block's signatures are valid iff
//! `ed25519_dalek::verify_batch` over its transactions, in block order, accepts. The batch's
//! random coefficients come from a transcript of its inputs, so every node reaches the same
//! answer for the same block. A sequencer only includes transactions that pass strict single
//! verification (which implies they pass any batch); single verification is also how it finds
//! the culprits when a batch fails. Decompressed public keys are cached per account.

use crate::id::AccountId;
use crate::identity::{Signable, Signed, signing_input};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;

/// Cached keys are dropped when the cache grows past this many accounts.
const CACHE_LIMIT: usize = 1 << 20;

/// Verifies signatures, caching decompressed public keys.
#[derive(Default, Debug, Clone)]
pub struct SigChecker {
    keys: HashMap<AccountId, VerifyingKey>,
}

impl SigChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, account: &AccountId) -> Option<VerifyingKey> {
        if let Some(k) = self.keys.get(account) {
            return Some(*k);
        }
        let k = VerifyingKey::from_bytes(&account.0).ok()?;
        if self.keys.len() >= CACHE_LIMIT {
            self.keys.clear();
        }
        self.keys.insert(*account, k);
        Some(k)
    }

    /// Strict single verification of one signed value (what [`Signed::verify`] checks).
    pub fn verify_one<T: Signable>(&mut self, tx: &Signed<T>) -> bool {
        let Some(key) = self.key(&tx.signer) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&tx.signature.0);
        key.verify_strict(&signing_input(T::CONTEXT, &tx.body), &sig)
            .is_ok()
    }

    /// Batch verification of all signatures (true for an empty list). Values that pass
    /// [`SigChecker::verify_one`] always pass; a failed batch names no culprit
    /// ([`SigChecker::find_invalid`] does).
    pub fn verify_batch<T: Signable>(&mut self, txs: &[Signed<T>]) -> bool {
        if txs.is_empty() {
            return true;
        }
        let mut keys = Vec::with_capacity(txs.len());
        for tx in txs {
            match self.key(&tx.signer) {
                Some(k) => keys.push(k),
                None => return false,
            }
        }
        let inputs: Vec<Vec<u8>> = txs
            .iter()
            .map(|t| signing_input(T::CONTEXT, &t.body))
            .collect();
        let msgs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let sigs: Vec<ed25519_dalek::Signature> = txs
            .iter()
            .map(|t| ed25519_dalek::Signature::from_bytes(&t.signature.0))
            .collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    }

    /// The positions of the values whose signatures fail strict verification.
    pub fn find_invalid<T: Signable>(&mut self, txs: &[Signed<T>]) -> Vec<usize> {
        (0..txs.len())
            .filter(|&i| !self.verify_one(&txs[i]))
            .collect()
    }
}

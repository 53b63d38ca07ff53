//! Placement: which providers receive a new chunk's shards.
//!
//! [`choose`] picks distinct providers for a chunk's shards with [`proof::place`]: weighted by
//! challenge score ([`Reputation`], kept by the keeper's challenger when there is a ledger),
//! uniform until there is history, providers scoring under the reputation's minimum left out
//! (unless too few remain, then the best scores are taken). Never two shards of a chunk on one
//! provider. The draw's seed comes from the keeper's [`Env`](crate::env::Env), so a
//! simulation places the same way every run.

use crate::keeper::challenger::Challenger;
use memo_core::AccountId;
use memo_core::contract::Epoch;
use memo_core::proof::{self, Reputation};
use std::sync::Arc;

/// Chooses `count` distinct providers for one chunk: [`proof::place`] by `reputation` at
/// `epoch`, drawing with `seed`; if too few are eligible, the best-scored ones. Empty if
/// there are fewer than `count` distinct providers.
pub fn choose_from(
    reputation: &Reputation,
    epoch: Epoch,
    providers: &[AccountId],
    count: usize,
    seed: &[u8; 32],
) -> Vec<AccountId> {
    let mut all = providers.to_vec();
    all.sort();
    all.dedup();
    if all.len() < count {
        return Vec::new();
    }
    match proof::place(reputation, &all, &[], count, epoch, seed) {
        Ok(v) => v,
        Err(_) => {
            all.sort_by_key(|p| std::cmp::Reverse(reputation.score(p, epoch)));
            all.truncate(count);
            all
        }
    }
}

/// Chooses with a keeper's challenger if it has one, else uniformly (no history).
pub fn choose(
    challenger: Option<&Arc<Challenger>>,
    providers: &[AccountId],
    count: usize,
    seed: &[u8; 32],
) -> Vec<AccountId> {
    match challenger {
        Some(c) => c.choose(providers, count, seed),
        None => choose_from(&Reputation::default(), 0, providers, count, seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::proof::Outcome;
    use std::collections::{BTreeMap, BTreeSet};

    fn acct(i: u8) -> AccountId {
        AccountId([i; 32])
    }

    fn seed(i: u64) -> [u8; 32] {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn choice_is_distinct_and_avoids_bad_history() {
        let providers: Vec<AccountId> = (1..=6).map(acct).collect();
        let mut rep = Reputation::default();
        rep.record(acct(1), 3, Outcome::Fail);
        for _ in 0..10 {
            rep.record(acct(2), 3, Outcome::Pass);
        }
        let mut counts = BTreeMap::new();
        for round in 0..400 {
            let c = choose_from(&rep, 3, &providers, 3, &seed(round));
            assert_eq!(c.len(), 3);
            let set: BTreeSet<_> = c.iter().collect();
            assert_eq!(set.len(), 3, "never two shards on one provider");
            for p in c {
                *counts.entry(p).or_insert(0u32) += 1;
            }
        }
        assert_eq!(
            counts.get(&acct(1)),
            None,
            "a failed provider is not eligible"
        );
        // acct(2) scores 11/12 against ½ for the others: it is drawn far more often.
        let good = counts[&acct(2)];
        for i in 3..=6 {
            assert!(good > counts[&acct(i)], "{counts:?}");
        }
        // Too few eligible: the best scores fill up; too few providers: nothing.
        assert_eq!(choose_from(&rep, 3, &providers, 6, &seed(0)).len(), 6);
        assert!(choose_from(&rep, 3, &providers[..2], 3, &seed(0)).is_empty());
        let only_bad = choose_from(&rep, 3, &[acct(1), acct(2), acct(3)], 3, &seed(0));
        assert_eq!(only_bad.len(), 3);
    }
}

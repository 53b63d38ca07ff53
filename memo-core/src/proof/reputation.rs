//! Provider reputation from proof history, and score-weighted placement.
//!
//! # The score
//!
//! Each provider's record holds decayed counts of its outcomes: passes `P`, failed proofs `F`,
//! missed deadlines `M` and failed liveness probes `O`. The score is the mean of a Beta
//! posterior whose "success" evidence is the passes and whose "failure" evidence is the weighted
//! bad outcomes:
//!
//! ```text
//! score = (α₀ + P) / (α₀ + β₀ + P + w_F·F + w_M·M + w_O·O)
//! ```
//!
//! with prior `α₀ = β₀ = 1` and weights `w_F = 8` (a wrong proof means lost or altered data),
//! `w_M = 2` (no answer by the deadline), `w_O = 1` (unreachable when probed). Before every update
//! or read, the counts decay by `λ^Δ` for the `Δ` epochs since the record was last touched
//! (`λ = 0.98`, a half-life of about 34 epochs), so recent behaviour dominates and old faults are
//! forgiven. Without evidence the score is the prior mean, ½.
//!
//! Arithmetic is integer fixed point in parts per million ([`PPM`]): counts are stored in
//! millionths of an observation, `λ^Δ` is computed by square-and-multiply rounding down at each
//! step, the quotient is rounded down. Every node computes the same scores bit for bit.
//!
//! # Placement
//!
//! [`place`] picks distinct providers for a chunk's `k + m` shards: eligible providers (score at
//! least `min_score`, ¼ by default, and not excluded) are drawn without replacement with
//! probability proportional to their score, from a seed given by the caller. Before any history
//! exists every score is the prior mean, so the draw is uniform: "random until there is history,
//! then weighted by score" falls out of the formula.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::challenge::SeedStream;
use super::error::PlacementError;
use crate::id::AccountId;

/// Fixed-point one: scores and counts are in millionths.
pub const PPM: u64 = 1_000_000;

/// The default λ in ppm: 0.98 of the evidence kept per epoch. The contract decays the records
/// it keeps by it.
pub const DEFAULT_DECAY_PPM: u32 = 980_000;

/// A provider's score in parts per million (0 = never trusted, 1 000 000 = perfect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Score(pub u32);

/// The result of one challenge or probe, as recorded by the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// A proof verified.
    Pass,
    /// A proof was submitted and failed verification.
    Fail,
    /// No proof by the deadline.
    Miss,
    /// A liveness probe (e.g. a keeper's ping or a read) went unanswered.
    Offline,
}

/// Parameters of the score (see the module docs). Out-of-range values are clamped where used:
/// `decay_ppm` to at most [`PPM`], priors to at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationParams {
    /// λ, the share of evidence kept per epoch, in ppm. Default 980 000.
    pub decay_ppm: u32,
    /// α₀ in ppm of an observation. Default 1 000 000.
    pub prior_pass: u32,
    /// β₀ in ppm of an observation. Default 1 000 000.
    pub prior_fail: u32,
    /// Weight of a failed proof. Default 8.
    pub fail_weight: u32,
    /// Weight of a missed deadline. Default 2.
    pub miss_weight: u32,
    /// Weight of a failed liveness probe. Default 1.
    pub offline_weight: u32,
    /// Lowest score eligible for new shards, in ppm. Default 250 000.
    pub min_score: u32,
}

impl Default for ReputationParams {
    fn default() -> Self {
        Self {
            decay_ppm: DEFAULT_DECAY_PPM,
            prior_pass: 1_000_000,
            prior_fail: 1_000_000,
            fail_weight: 8,
            miss_weight: 2,
            offline_weight: 1,
            min_score: 250_000,
        }
    }
}

/// One provider's decayed outcome counts, in millionths of an observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRecord {
    /// Decayed passes.
    pub passes: u64,
    /// Decayed failed proofs.
    pub fails: u64,
    /// Decayed missed deadlines.
    pub misses: u64,
    /// Decayed failed liveness probes.
    pub offline: u64,
    /// Outcomes ever recorded (not decayed).
    pub observations: u64,
    /// The epoch the counts are decayed to.
    pub epoch: u64,
}

/// `base^exp` in ppm, rounding down at each step.
fn pow_ppm(base: u64, mut exp: u64) -> u64 {
    let (mut result, mut b) = (PPM, base.min(PPM));
    while exp > 0 && result > 0 {
        if exp & 1 == 1 {
            result = result * b / PPM;
        }
        b = b * b / PPM;
        exp >>= 1;
    }
    result
}

impl ProviderRecord {
    /// Records `outcome` at `epoch`, after decaying the counts to it by `decay_ppm` per epoch
    /// (a fresh record starts at `epoch`). What the contract does at each settlement, and what
    /// [`Reputation::record`] does.
    pub fn record(&mut self, epoch: u64, outcome: Outcome, decay_ppm: u32) {
        if self.observations == 0 {
            self.epoch = self.epoch.max(epoch);
        }
        let mut r = self.decayed(epoch, decay_ppm);
        let slot = match outcome {
            Outcome::Pass => &mut r.passes,
            Outcome::Fail => &mut r.fails,
            Outcome::Miss => &mut r.misses,
            Outcome::Offline => &mut r.offline,
        };
        *slot = slot.saturating_add(PPM);
        r.observations = r.observations.saturating_add(1);
        *self = r;
    }

    /// The record decayed to `epoch` (unchanged if `epoch` is not later than the record's).
    fn decayed(&self, epoch: u64, decay_ppm: u32) -> Self {
        let d = epoch.saturating_sub(self.epoch);
        if d == 0 {
            return *self;
        }
        let f = pow_ppm(decay_ppm.into(), d);
        let scale = |v: u64| ((v as u128 * f as u128) / PPM as u128) as u64;
        Self {
            passes: scale(self.passes),
            fails: scale(self.fails),
            misses: scale(self.misses),
            offline: scale(self.offline),
            observations: self.observations,
            epoch,
        }
    }
}

/// Every provider's record, keyed by account (ordered, so it encodes canonically).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reputation {
    params: ReputationParams,
    records: BTreeMap<AccountId, ProviderRecord>,
}

impl Default for Reputation {
    fn default() -> Self {
        Self::new(ReputationParams::default())
    }
}

impl Reputation {
    /// An empty book with `params`.
    pub fn new(params: ReputationParams) -> Self {
        Self {
            params,
            records: BTreeMap::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &ReputationParams {
        &self.params
    }

    /// Records `outcome` for `provider` at `epoch`. Outcomes are expected in epoch order; one for
    /// an earlier epoch than the record's is counted without decay.
    pub fn record(&mut self, provider: AccountId, epoch: u64, outcome: Outcome) {
        let decay = self.params.decay_ppm;
        let rec = self.records.entry(provider).or_insert(ProviderRecord {
            epoch,
            ..Default::default()
        });
        rec.record(epoch, outcome, decay);
    }

    /// Replaces `provider`'s record (e.g. with the one the ledger keeps).
    pub fn set_record(&mut self, provider: AccountId, record: ProviderRecord) {
        self.records.insert(provider, record);
    }

    /// `provider`'s record decayed to `epoch`, if it has any history.
    pub fn record_of(&self, provider: &AccountId, epoch: u64) -> Option<ProviderRecord> {
        self.records
            .get(provider)
            .map(|r| r.decayed(epoch, self.params.decay_ppm))
    }

    /// Whether `provider` has any recorded outcome.
    pub fn has_history(&self, provider: &AccountId) -> bool {
        self.records.contains_key(provider)
    }

    /// `provider`'s score at `epoch` (the prior mean if it has no history).
    pub fn score(&self, provider: &AccountId, epoch: u64) -> Score {
        let p = &self.params;
        let r = self.record_of(provider, epoch).unwrap_or_default();
        let alpha = u128::from(p.prior_pass.max(1));
        let beta = u128::from(p.prior_fail.max(1));
        let num = alpha + u128::from(r.passes);
        let den = num
            + beta
            + u128::from(p.fail_weight) * u128::from(r.fails)
            + u128::from(p.miss_weight) * u128::from(r.misses)
            + u128::from(p.offline_weight) * u128::from(r.offline);
        Score((num * u128::from(PPM) / den) as u32)
    }

    /// Whether `provider` may receive new shards at `epoch`.
    pub fn eligible(&self, provider: &AccountId, epoch: u64) -> bool {
        self.score(provider, epoch).0 >= self.params.min_score
    }
}

/// Chooses `count` distinct providers for one chunk's shards (index `i` gets shard `i`).
///
/// `candidates` are the providers able to take the shards (registered, with space), in any
/// order; `exclude` are providers that must not get one (e.g. those already holding a shard of
/// this chunk, when repairing). Eligible candidates are drawn without replacement with
/// probability proportional to their [`Score`] at `epoch`, from a stream seeded by `seed` (e.g.
/// derived from the chunk id and the block hash, so keepers agree). No provider is chosen twice.
pub fn place(
    reputation: &Reputation,
    candidates: &[AccountId],
    exclude: &[AccountId],
    count: usize,
    epoch: u64,
    seed: &[u8; 32],
) -> Result<Vec<AccountId>, PlacementError> {
    let mut pool: Vec<(AccountId, u64)> = {
        let mut c = candidates.to_vec();
        c.sort();
        c.dedup();
        c.into_iter()
            .filter(|a| !exclude.contains(a) && reputation.eligible(a, epoch))
            .map(|a| (a, u64::from(reputation.score(&a, epoch).0).max(1)))
            .collect()
    };
    if pool.len() < count {
        return Err(PlacementError::NotEnoughProviders {
            needed: count,
            eligible: pool.len(),
        });
    }
    let mut stream = SeedStream::new(seed, b"placement");
    let mut chosen = Vec::with_capacity(count);
    let mut total: u64 = pool.iter().map(|(_, w)| w).sum();
    for _ in 0..count {
        let mut ticket = stream.below(total);
        let pos = pool
            .iter()
            .position(|(_, w)| {
                if ticket < *w {
                    true
                } else {
                    ticket -= w;
                    false
                }
            })
            .unwrap_or(pool.len() - 1);
        let (account, w) = pool.remove(pos);
        total -= w;
        chosen.push(account);
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(i: u8) -> AccountId {
        AccountId([i; 32])
    }

    #[test]
    fn score_follows_the_formula() {
        let mut rep = Reputation::default();
        let a = acct(1);
        assert_eq!(rep.score(&a, 0), Score(500_000));
        assert!(!rep.has_history(&a));
        for e in 0..3 {
            rep.record(a, 10, if e < 2 { Outcome::Pass } else { Outcome::Miss });
        }
        // (1 + 2) / (1 + 1 + 2 + 2·1) = 0.5
        assert_eq!(rep.score(&a, 10), Score(500_000));
        rep.record(a, 10, Outcome::Pass);
        // (1 + 3) / (2 + 3 + 2) = 4/7
        assert_eq!(rep.score(&a, 10), Score(571_428));
        rep.record(acct(2), 10, Outcome::Fail);
        // 1 / (2 + 8) = 0.1, below the eligibility threshold
        assert_eq!(rep.score(&acct(2), 10), Score(100_000));
        assert!(!rep.eligible(&acct(2), 10));
        assert!(rep.eligible(&a, 10));
    }

    #[test]
    fn evidence_decays_toward_the_prior() {
        let mut rep = Reputation::default();
        let a = acct(1);
        rep.record(a, 0, Outcome::Fail);
        let r = rep.record_of(&a, 1).unwrap();
        assert_eq!(r.fails, 980_000);
        assert_eq!(rep.record_of(&a, 2).unwrap().fails, 960_400);
        // 0.98^34 = 0.50330; rounding down at each of the ~10 steps loses a few ppm.
        assert!((503_000..=503_300).contains(&pow_ppm(980_000, 34)));
        assert_eq!(pow_ppm(980_000, 0), PPM);
        assert_eq!(pow_ppm(980_000, 1), 980_000);
        assert_eq!(pow_ppm(980_000, 5000), 0);
        // A failed provider slowly becomes eligible again without new faults...
        assert!(!rep.eligible(&a, 20));
        assert!(rep.eligible(&a, 200));
        // ...and after a very long silence is back at the prior.
        assert_eq!(rep.score(&a, 100_000), Score(500_000));
        // A run of passes raises the score toward 1.
        let b = acct(2);
        for e in 0..100 {
            rep.record(b, e, Outcome::Pass);
        }
        assert!(rep.score(&b, 100).0 > 950_000);
    }

    #[test]
    fn book_round_trips_canonically_and_tolerates_late_outcomes() {
        let mut rep = Reputation::default();
        rep.record(acct(2), 5, Outcome::Pass);
        rep.record(acct(1), 9, Outcome::Offline);
        rep.record(acct(1), 3, Outcome::Pass); // late: counted, no decay, epoch kept at 9
        let r = rep.record_of(&acct(1), 9).unwrap();
        assert_eq!(
            (r.passes, r.offline, r.observations, r.epoch),
            (PPM, PPM, 2, 9)
        );
        let bytes = crate::wire::encode(&rep);
        let back: Reputation = crate::wire::decode(&bytes, 1 << 16, "reputation").unwrap();
        assert_eq!(back, rep);
        assert_eq!(crate::wire::encode(&back), bytes);
    }

    #[test]
    fn placement_is_distinct_deterministic_and_errors_when_short() {
        let rep = Reputation::default();
        let cands: Vec<_> = (1..=10).map(acct).collect();
        let p = place(&rep, &cands, &[], 6, 0, &[7; 32]).unwrap();
        let mut q = p.clone();
        q.sort();
        q.dedup();
        assert_eq!(q.len(), 6);
        let mut rev = cands.clone();
        rev.reverse();
        assert_eq!(
            place(&rep, &rev, &[], 6, 0, &[7; 32]).unwrap(),
            p,
            "input order is irrelevant"
        );
        assert_eq!(place(&rep, &cands, &[], 10, 0, &[1; 32]).unwrap().len(), 10);
        assert_eq!(
            place(&rep, &cands, &[acct(1)], 10, 0, &[1; 32]),
            Err(PlacementError::NotEnoughProviders {
                needed: 10,
                eligible: 9
            })
        );
        let dup = [acct(1), acct(1), acct(2)];
        assert!(place(&rep, &dup, &[], 3, 0, &[1; 32]).is_err());
        assert!(
            !place(&rep, &cands, &[acct(3)], 9, 0, &[2; 32])
                .unwrap()
                .contains(&acct(3))
        );
    }

    #[test]
    fn placement_is_uniform_without_history_and_weighted_with_it() {
        let cands: Vec<_> = (0..4).map(acct).collect();
        let count_first = |rep: &Reputation| {
            let mut hits = [0u32; 4];
            for s in 0..4000u32 {
                let seed = *blake3::hash(&s.to_le_bytes()).as_bytes();
                let p = place(rep, &cands, &[], 1, 50, &seed).unwrap();
                hits[p[0].0[0] as usize] += 1;
            }
            hits
        };
        let fresh = count_first(&Reputation::default());
        assert!(fresh.iter().all(|&h| (850..1150).contains(&h)), "{fresh:?}");
        // Provider 0 always passes, provider 3 fails now and then (still eligible).
        let mut rep = Reputation::default();
        for e in 0..50 {
            rep.record(acct(0), e, Outcome::Pass);
            rep.record(
                acct(3),
                e,
                if e % 2 == 0 {
                    Outcome::Miss
                } else {
                    Outcome::Pass
                },
            );
        }
        let s0 = rep.score(&acct(0), 50).0 as f64;
        let s3 = rep.score(&acct(3), 50).0 as f64;
        assert!(s0 > s3);
        let hits = count_first(&rep);
        let total = s0 + s3 + 1_000_000.0;
        let expect0 = 4000.0 * s0 / total;
        assert!(
            (hits[0] as f64 - expect0).abs() < 120.0,
            "{hits:?} vs {expect0}"
        );
        assert!(hits[0] > hits[1] && hits[1] > hits[3], "{hits:?}");
    }
}

//! Repair, its deterministic half: the keeper-signed operations that record health and new
//! placements in the shared log, liveness bookkeeping in probe rounds, the repair threshold,
//! which keeper repairs a chunk, and where rebuilt shards go.
//!
//! Nothing here reads a clock or draws randomness: liveness counts *probe rounds* (the caller
//! decides how long a round is), placement is rendezvous hashing over ids, and responsibility
//! is XOR distance between ids. The async loop that probes, fetches and uploads lives in
//! `memo_sdk::repair`.
//!
//! ## Health
//!
//! A placed shard is [`ShardHealth::Healthy`], [`ShardHealth::Suspect`] (its holder missed
//! probes: maybe a reboot, not given up yet) or [`ShardHealth::Lost`] (its holder is declared
//! gone, failed a storage proof for it, or served it altered or not at all). Health changes reach
//! every keeper as [`KeeperOp`]s in the shared log, so all keepers (and `memo stat` on any of
//! them) agree, and replaying the log gives the same health.
//!
//! ## Threshold
//!
//! With `n = k + m` shards, a chunk is repaired when its *available* shards (placed and not
//! Lost) fall to the threshold `t` ([`RepairThreshold`], `k <= t <= n - 1`): its Lost shards
//! are rebuilt. Suspect shards are rebuilt too once the chunk's Healthy shards fall to `k`
//! (no margin left). The default, [`RepairThreshold::Eager`], is `t = n - 1`: every Lost shard
//! is rebuilt at once; `Lazy(d)` waits until only `k + d` remain, trading risk for less
//! traffic when losses are often transient.

use crate::codec::MAX_SHARDS;
use crate::id::{AccountId, ChunkId, ShardId};
use crate::ownership::{ChunkEntry, ShardHealth};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most shard reports or moves one operation or request may carry.
pub const MAX_REPORTS: usize = 1024;

/// Why a shard or provider changed health (carried in the log for the node logs and `stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The provider stopped answering liveness probes.
    Unresponsive,
    /// The provider answers probes again.
    Answering,
    /// The ledger rejected or missed the provider's storage proof for the shard.
    FailedProof,
    /// The provider served bytes that do not match the shard id.
    Corrupt,
    /// The provider says it does not hold the shard.
    Missing,
}

/// One shard's new holder, recorded after the rebuilt shard was uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Shard index within the chunk.
    pub index: u16,
    /// The holder the keeper replaces (compare-and-swap: refused if the slot moved meanwhile).
    pub from: Option<AccountId>,
    /// The new holder.
    pub to: AccountId,
}

/// An operation only keepers may sign: health and placement changes found by monitoring and
/// repair. Applied by [`crate::objects::Objects::apply`] as an
/// [`ObjectOp::Keeper`](crate::objects::ObjectOp::Keeper).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeeperOp {
    /// A provider's liveness changed: Suspect or Lost marks its Healthy (resp. non-Lost)
    /// shards; Healthy turns its Suspect shards back to Healthy (Lost shards stay Lost).
    ProviderHealth {
        /// The provider.
        provider: AccountId,
        /// Its new health.
        health: ShardHealth,
        /// Why.
        reason: Reason,
    },
    /// One shard's health, as a proof failure or a verified failed read found it. Ignored
    /// (refused) if `holder` no longer holds the shard.
    MarkShard {
        /// The chunk.
        chunk: ChunkId,
        /// Shard index.
        index: u16,
        /// The holder the finding is about.
        holder: AccountId,
        /// New health.
        health: ShardHealth,
        /// Why.
        reason: Reason,
    },
    /// Rebuilt shards were uploaded to new holders: record them (each becomes Healthy).
    Replace {
        /// The chunk.
        chunk: ChunkId,
        /// One move per rebuilt shard.
        moves: Vec<Move>,
    },
    /// `user`'s `object` is no longer paid for (its storage orders lapsed, and the grace after
    /// the lapse ran out): every reference of `user` to it is dropped, as its deletes would;
    /// chunks left without an owner are purged.
    Evict {
        /// The owner whose data is unpaid.
        user: AccountId,
        /// The object.
        object: crate::id::ObjectId,
    },
}

/// A client's report of a shard it could not read, sent to a keeper, which checks it before
/// believing it (a client cannot make a keeper repair healthy data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardReport {
    /// The chunk.
    pub chunk: ChunkId,
    /// Shard index.
    pub index: u16,
    /// The provider that failed to serve it.
    pub holder: AccountId,
}

/// When a degraded chunk is repaired (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RepairThreshold {
    /// `t = k + m - 1`: repair as soon as one shard is Lost.
    #[default]
    Eager,
    /// `t = k + d` (clamped to `k..=k+m-1`): repair once only `k + d` shards are available.
    Lazy(u8),
}

impl RepairThreshold {
    /// The threshold `t` for a chunk with `k` data and `n` total shards (`k <= t <= n - 1`).
    pub fn resolve(&self, k: usize, n: usize) -> usize {
        let top = n.saturating_sub(1).max(k);
        match self {
            Self::Eager => top,
            Self::Lazy(d) => (k + *d as usize).min(top),
        }
    }
}

/// What to do for one degraded chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairPlan {
    /// Shard indices to rebuild and place anew.
    pub rebuild: Vec<usize>,
    /// Shard indices to read from, best first (Healthy, then Suspect), with their holders.
    pub sources: Vec<(usize, AccountId)>,
    /// Providers that must not receive a rebuilt shard (every current holder, lost or not).
    pub exclude: BTreeSet<AccountId>,
    /// Shards Healthy now.
    pub healthy: usize,
    /// Shards placed and not Lost now.
    pub available: usize,
}

/// The repair a chunk needs, or `None` if it needs none yet (see the module documentation).
/// `k` is the chunk's data-shard count.
pub fn plan(entry: &ChunkEntry, k: usize, threshold: RepairThreshold) -> Option<RepairPlan> {
    let n = entry.shards.len();
    if k == 0 || k >= n {
        return None;
    }
    let t = threshold.resolve(k, n);
    let mut lost = Vec::new();
    let mut suspect = Vec::new();
    let mut sources = Vec::new();
    let mut suspects = Vec::new();
    let mut exclude = BTreeSet::new();
    for (i, s) in entry.shards.iter().enumerate() {
        if let Some(h) = s.holder {
            exclude.insert(h);
        }
        match (s.holder, s.health) {
            (None, _) | (Some(_), ShardHealth::Lost) => lost.push(i),
            (Some(h), ShardHealth::Suspect) => {
                suspect.push(i);
                suspects.push((i, h));
            }
            (Some(h), ShardHealth::Healthy) => sources.push((i, h)),
        }
    }
    let healthy = sources.len();
    let available = n - lost.len();
    let mut rebuild = Vec::new();
    if !lost.is_empty() && available <= t {
        rebuild.extend(&lost);
    }
    if !suspect.is_empty() && healthy <= k {
        rebuild.extend(&suspect);
        rebuild.extend(&lost);
    }
    rebuild.sort_unstable();
    rebuild.dedup();
    if rebuild.is_empty() {
        return None;
    }
    sources.extend(suspects.into_iter().filter(|(i, _)| !rebuild.contains(i)));
    // Suspect shards being rebuilt can still serve as sources, last.
    sources.extend(
        entry
            .shards
            .iter()
            .enumerate()
            .filter(|(i, s)| s.health == ShardHealth::Suspect && rebuild.contains(i))
            .filter_map(|(i, s)| s.holder.map(|h| (i, h))),
    );
    Some(RepairPlan {
        rebuild,
        sources,
        exclude,
        healthy,
        available,
    })
}

fn xor_distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, x) in d.iter_mut().enumerate() {
        *x = a[i] ^ b[i];
    }
    d
}

/// This keeper's rank for `target` (a chunk or provider id) among `keepers`: 0 for the keeper
/// whose account is XOR-closest to it, which acts first; rank `r` takes over after the target
/// stayed unhandled for `r` grace periods (so a dead keeper's work is picked up). `None` if
/// `me` is not a keeper.
pub fn rank(keepers: &BTreeSet<AccountId>, me: &AccountId, target: &[u8; 32]) -> Option<usize> {
    if !keepers.contains(me) {
        return None;
    }
    let mine = xor_distance(me.as_bytes(), target);
    Some(
        keepers
            .iter()
            .filter(|k| xor_distance(k.as_bytes(), target) < mine)
            .count(),
    )
}

/// Candidates for shard `index` of `chunk`, best first, by rendezvous hashing: each provider's
/// score is blake3(chunk ‖ index ‖ provider). Deterministic, so a keeper that restarts mid-repair
/// picks the same holder again (its earlier upload is reused, nothing leaks), and stable when
/// providers come and go. `exclude`d providers are skipped.
pub fn rendezvous(
    chunk: &ChunkId,
    index: usize,
    providers: &[AccountId],
    exclude: &BTreeSet<AccountId>,
) -> Vec<AccountId> {
    let mut scored: Vec<([u8; 32], AccountId)> = providers
        .iter()
        .filter(|p| !exclude.contains(p))
        .map(|p| {
            let mut h = blake3::Hasher::new();
            h.update(b"memo/repair-placement/v1");
            h.update(chunk.as_bytes());
            h.update(&(index as u64).to_le_bytes());
            h.update(p.as_bytes());
            (*h.finalize().as_bytes(), *p)
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().map(|(_, p)| p).collect()
}

/// Liveness settings, in probe rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessPolicy {
    /// Consecutive missed probes after which a provider is Suspect (at least 1).
    pub suspect_after: u32,
    /// Consecutive missed probes after which it is Lost (at least `suspect_after`).
    pub lost_after: u32,
}

impl Default for LivenessPolicy {
    /// Suspect after 2 missed probes, Lost after 6.
    fn default() -> Self {
        Self {
            suspect_after: 2,
            lost_after: 6,
        }
    }
}

/// Counts each provider's consecutive missed probes and derives its health. One answer makes a
/// provider Healthy again.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    policy: LivenessPolicy,
    misses: std::collections::BTreeMap<AccountId, u32>,
}

impl Liveness {
    /// A tracker with `policy` (fixed up so `1 <= suspect_after <= lost_after`).
    pub fn new(policy: LivenessPolicy) -> Self {
        let suspect_after = policy.suspect_after.max(1);
        Self {
            policy: LivenessPolicy {
                suspect_after,
                lost_after: policy.lost_after.max(suspect_after),
            },
            misses: Default::default(),
        }
    }

    /// Records one probe of `provider` and returns its derived health.
    pub fn observe(&mut self, provider: AccountId, answered: bool) -> ShardHealth {
        let n = self.misses.entry(provider).or_insert(0);
        *n = if answered { 0 } else { n.saturating_add(1) };
        self.health(&provider)
    }

    /// The derived health of `provider` (Healthy if never probed).
    pub fn health(&self, provider: &AccountId) -> ShardHealth {
        match self.misses.get(provider).copied().unwrap_or(0) {
            n if n >= self.policy.lost_after => ShardHealth::Lost,
            n if n >= self.policy.suspect_after => ShardHealth::Suspect,
            _ => ShardHealth::Healthy,
        }
    }

    /// Consecutive probes `provider` missed.
    pub fn misses(&self, provider: &AccountId) -> u32 {
        self.misses.get(provider).copied().unwrap_or(0)
    }
}

/// Why a keeper operation is malformed ([`check_op`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperOpError {
    /// A replacement moves no shard, or more than a chunk has.
    #[error("{0} moves (1..={MAX_SHARDS})")]
    MoveCount(usize),
    /// A replacement names one shard index or one new holder twice.
    #[error("a shard index or new holder appears twice")]
    DuplicateMove,
    /// A mark tries to make a shard Healthy, which only a placement may.
    #[error("a shard becomes Healthy only by a placement")]
    MarkHealthy,
}

/// Checks a keeper operation's bounds before it is applied (sizes, indices).
pub fn check_op(op: &KeeperOp) -> Result<(), KeeperOpError> {
    match op {
        KeeperOp::Replace { moves, .. } => {
            if moves.is_empty() || moves.len() > MAX_SHARDS {
                return Err(KeeperOpError::MoveCount(moves.len()));
            }
            let idx: BTreeSet<u16> = moves.iter().map(|m| m.index).collect();
            let to: BTreeSet<AccountId> = moves.iter().map(|m| m.to).collect();
            if idx.len() != moves.len() || to.len() != moves.len() {
                return Err(KeeperOpError::DuplicateMove);
            }
            Ok(())
        }
        KeeperOp::MarkShard { health, .. } if *health == ShardHealth::Healthy => {
            Err(KeeperOpError::MarkHealthy)
        }
        _ => Ok(()),
    }
}

/// The shard id held at `index` of `entry`, if any.
pub fn shard_at(entry: &ChunkEntry, index: usize) -> Option<ShardId> {
    entry.shards.get(index).map(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::{ChunkInfo, ShardSlot};

    fn acct(i: u8) -> AccountId {
        AccountId([i; 32])
    }

    fn entry(health: &[(Option<u8>, ShardHealth)]) -> ChunkEntry {
        let info = ChunkInfo {
            id: ChunkId([9; 32]),
            stored_bytes: 60,
            shards: (0..health.len()).map(|i| ShardId([i as u8; 32])).collect(),
        };
        let mut e = ChunkEntry::unplaced(&info);
        for (s, (h, st)) in e.shards.iter_mut().zip(health) {
            *s = ShardSlot {
                id: s.id,
                holder: h.map(acct),
                health: *st,
            };
        }
        e
    }

    use ShardHealth::{Healthy as H, Lost as L, Suspect as S};

    #[test]
    fn thresholds_resolve_within_k_and_n_minus_one() {
        assert_eq!(RepairThreshold::Eager.resolve(4, 6), 5);
        assert_eq!(RepairThreshold::Lazy(0).resolve(4, 6), 4);
        assert_eq!(RepairThreshold::Lazy(1).resolve(4, 6), 5);
        assert_eq!(RepairThreshold::Lazy(9).resolve(4, 6), 5);
    }

    #[test]
    fn eager_repairs_the_first_lost_shard_only() {
        let e = entry(&[
            (Some(1), H),
            (Some(2), L),
            (Some(3), H),
            (Some(4), S),
            (Some(5), H),
            (Some(6), H),
        ]);
        let p = plan(&e, 3, RepairThreshold::Eager).unwrap();
        assert_eq!(p.rebuild, vec![1]);
        assert_eq!(p.healthy, 4);
        assert_eq!(p.available, 5);
        // Healthy first, then the suspect that is not being rebuilt.
        assert_eq!(p.sources.last(), Some(&(3, acct(4))));
        assert_eq!(p.sources.len(), 5);
        assert!(p.exclude.contains(&acct(2)));
        assert_eq!(plan(&e, 3, RepairThreshold::Lazy(0)), None);
        // With k = 4 the four Healthy shards are no margin: the suspect is rebuilt too.
        assert_eq!(
            plan(&e, 4, RepairThreshold::Eager).unwrap().rebuild,
            vec![1, 3]
        );
    }

    #[test]
    fn suspects_are_rebuilt_only_without_margin() {
        let two_suspect = entry(&[
            (Some(1), H),
            (Some(2), S),
            (Some(3), H),
            (Some(4), S),
            (Some(5), H),
            (Some(6), H),
        ]);
        let p = plan(&two_suspect, 4, RepairThreshold::Eager).unwrap();
        assert_eq!(p.rebuild, vec![1, 3]);
        let one_suspect = entry(&[
            (Some(1), H),
            (Some(2), S),
            (Some(3), H),
            (Some(4), H),
            (Some(5), H),
            (Some(6), H),
        ]);
        assert_eq!(plan(&one_suspect, 4, RepairThreshold::Eager), None);
        let healthy = entry(&[(Some(1), H), (Some(2), H), (Some(3), H)]);
        assert_eq!(plan(&healthy, 2, RepairThreshold::Eager), None);
    }

    #[test]
    fn lazy_waits_for_the_threshold() {
        let e = entry(&[
            (Some(1), L),
            (Some(2), L),
            (Some(3), H),
            (Some(4), H),
            (Some(5), H),
            (Some(6), H),
            (Some(7), H),
        ]);
        assert_eq!(plan(&e, 4, RepairThreshold::Lazy(0)), None);
        assert_eq!(
            plan(&e, 4, RepairThreshold::Lazy(1)).unwrap().rebuild,
            vec![0, 1]
        );
    }

    #[test]
    fn exactly_one_keeper_has_rank_zero() {
        let keepers: BTreeSet<AccountId> = (1..=5).map(acct).collect();
        for t in 0..50u8 {
            let target = *blake3::hash(&[t]).as_bytes();
            let ranks: BTreeSet<usize> = keepers
                .iter()
                .map(|k| rank(&keepers, k, &target).unwrap())
                .collect();
            assert_eq!(ranks, (0..5).collect());
        }
        assert_eq!(rank(&keepers, &acct(9), &[0; 32]), None);
    }

    #[test]
    fn rendezvous_is_deterministic_and_stable() {
        let providers: Vec<AccountId> = (1..=20).map(acct).collect();
        let none = BTreeSet::new();
        let c = ChunkId([7; 32]);
        let a = rendezvous(&c, 3, &providers, &none);
        assert_eq!(a, rendezvous(&c, 3, &providers, &none));
        assert_eq!(a.len(), 20);
        // Removing a provider that is not the winner keeps the winner.
        let loser = *a.last().unwrap();
        let fewer: Vec<AccountId> = providers.iter().copied().filter(|p| *p != loser).collect();
        assert_eq!(rendezvous(&c, 3, &fewer, &none)[0], a[0]);
        let ex: BTreeSet<AccountId> = [a[0]].into();
        assert_eq!(rendezvous(&c, 3, &providers, &ex)[0], a[1]);
    }

    #[test]
    fn liveness_counts_rounds() {
        let mut l = Liveness::new(LivenessPolicy {
            suspect_after: 2,
            lost_after: 4,
        });
        let p = acct(1);
        assert_eq!(l.observe(p, false), H);
        assert_eq!(l.observe(p, false), S);
        assert_eq!(l.observe(p, false), S);
        assert_eq!(l.observe(p, false), L);
        assert_eq!(l.misses(&p), 4);
        assert_eq!(l.observe(p, true), H);
        assert_eq!(l.health(&acct(2)), H);
    }

    #[test]
    fn ops_are_bounds_checked() {
        let mv = |i, to| Move {
            index: i,
            from: None,
            to: acct(to),
        };
        let ok = KeeperOp::Replace {
            chunk: ChunkId([0; 32]),
            moves: vec![mv(0, 1), mv(1, 2)],
        };
        assert!(check_op(&ok).is_ok());
        for bad in [vec![], vec![mv(0, 1), mv(0, 2)], vec![mv(0, 1), mv(1, 1)]] {
            let op = KeeperOp::Replace {
                chunk: ChunkId([0; 32]),
                moves: bad,
            };
            assert!(check_op(&op).is_err());
        }
        let heal = KeeperOp::MarkShard {
            chunk: ChunkId([0; 32]),
            index: 0,
            holder: acct(1),
            health: H,
            reason: Reason::Answering,
        };
        assert!(check_op(&heal).is_err());
    }
}

#[cfg(test)]
mod objects_tests {
    use super::*;
    use crate::id::ObjectId;
    use crate::objects::{Applied, KeeperApplied, ObjectError, ObjectOp, Objects};
    use crate::ownership::{ChunkInfo, MemoryMeta};
    use crate::protocol::ChunkPlacement;
    use crate::ticket::Receipt;

    fn key(i: u8) -> crate::Keypair {
        crate::Keypair::from_seed(&format!("repair-test-{i}"))
    }
    fn acct(i: u8) -> AccountId {
        key(i).account()
    }
    /// Each holder's receipt for its shard of each placed chunk, issued to `user`.
    fn receipts(user: u8, placements: &[ChunkPlacement]) -> Vec<crate::Signed<Receipt>> {
        let mut out = Vec::new();
        for p in placements {
            let c = info(p.chunk.0[0]);
            for (s, h) in c.shards.iter().zip(&p.holders) {
                let n = (1..=3).find(|n| Some(acct(*n)) == *h).unwrap();
                let r = Receipt {
                    shard: *s,
                    size: 10,
                    user: acct(user),
                    expires_ms: u64::MAX,
                };
                out.push(crate::Signed::sign(&key(n), &r));
            }
        }
        out
    }
    const KEEPER: u8 = 200;
    const USER: u8 = 100;

    fn info(c: u8) -> ChunkInfo {
        ChunkInfo {
            id: ChunkId([c; 32]),
            stored_bytes: 30,
            shards: (0..3).map(|i| ShardId([c * 10 + i; 32])).collect(),
        }
    }

    /// Two chunks (2 + 1 shards each) on providers 1, 2, 3; chunk 2 is the manifest.
    fn setup() -> (Objects<MemoryMeta>, Vec<ObjectOp>) {
        let o = Objects::new(MemoryMeta::new()).with_keepers([acct(KEEPER)]);
        o.ensure_account(acct(USER), 1 << 20).unwrap();
        let placements = [1, 2]
            .map(|c| ChunkPlacement {
                chunk: ChunkId([c; 32]),
                holders: vec![Some(acct(1)), Some(acct(2)), Some(acct(3))],
            })
            .to_vec();
        let put = ObjectOp::Put {
            object: ObjectId([2; 32]),
            size: 10,
            needed: 2,
            sealed: vec![],
            chunks: vec![info(1), info(2)],
            receipts: receipts(USER, &placements),
            placements,
            possession: vec![],
        };
        (o, vec![put])
    }

    fn run(o: &mut Objects<MemoryMeta>, signer: u8, op: &ObjectOp) -> Result<Applied, ObjectError> {
        o.apply(acct(signer), op)
    }

    fn healthy(o: &Objects<MemoryMeta>) -> Vec<u8> {
        o.stat(&acct(USER), &ObjectId([2; 32]))
            .unwrap()
            .unwrap()
            .1
            .iter()
            .map(|c| c.healthy)
            .collect()
    }

    fn provider(p: u8, health: ShardHealth) -> ObjectOp {
        ObjectOp::Keeper(KeeperOp::ProviderHealth {
            provider: acct(p),
            health,
            reason: Reason::Unresponsive,
        })
    }

    #[test]
    fn every_name_is_kept_and_a_named_delete_drops_its_own() {
        let (mut o, ops) = setup();
        let ObjectOp::Put {
            object,
            size,
            needed,
            chunks,
            ..
        } = ops[0].clone()
        else {
            panic!("setup puts first")
        };
        let put = |name: &[u8], placements: Vec<ChunkPlacement>| ObjectOp::Put {
            object,
            size,
            needed,
            sealed: name.to_vec(),
            chunks: chunks.clone(),
            receipts: receipts(USER, &placements),
            placements,
            possession: vec![],
        };
        let ObjectOp::Put { placements, .. } = ops[0].clone() else {
            panic!("setup puts first")
        };
        run(&mut o, USER, &put(b"first", placements)).unwrap();
        run(&mut o, USER, &put(b"second", vec![])).unwrap();
        run(&mut o, USER, &put(b"third", vec![])).unwrap();
        let names = |o: &Objects<MemoryMeta>| o.list(&acct(USER)).first().map(|e| e.sealed.clone());
        assert_eq!(
            names(&o),
            Some(vec![
                b"first".to_vec(),
                b"second".to_vec(),
                b"third".to_vec()
            ])
        );
        // A name the entry does not have is refused and changes nothing.
        let unknown = ObjectOp::DeleteNamed {
            object,
            sealed: b"fourth".to_vec(),
        };
        assert!(matches!(
            run(&mut o, USER, &unknown),
            Err(ObjectError::Invalid(_))
        ));
        assert_eq!(o.list(&acct(USER))[0].refs, 3);
        // A named delete drops that name; a plain one the newest.
        let named = ObjectOp::DeleteNamed {
            object,
            sealed: b"first".to_vec(),
        };
        run(&mut o, USER, &named).unwrap();
        assert_eq!(names(&o), Some(vec![b"second".to_vec(), b"third".to_vec()]));
        run(&mut o, USER, &ObjectOp::Delete { object }).unwrap();
        assert_eq!(names(&o), Some(vec![b"second".to_vec()]));
        assert_eq!(o.list(&acct(USER))[0].refs, 1);
        run(&mut o, USER, &ObjectOp::Delete { object }).unwrap();
        assert_eq!(names(&o), None);
    }

    #[test]
    fn a_serialized_state_applies_later_operations_as_the_original_does() {
        let (mut o, ops) = setup();
        let stamp =
            |op: &ObjectOp, nonce| crate::objects::OpEnvelope::new(op.clone(), nonce, 1_000);
        o.apply_signed(acct(USER), &stamp(&ops[0], 1)).unwrap();
        o.apply_signed(acct(KEEPER), &stamp(&provider(1, ShardHealth::Suspect), 2))
            .unwrap();
        let bytes = crate::wire::encode(&o);
        let mut copy: Objects<MemoryMeta> =
            crate::wire::decode(&bytes, bytes.len(), "state").unwrap();
        assert_eq!(copy, o);
        assert_eq!(copy.remembered_nonces(), 2);
        assert_eq!(copy.degraded().count(), 2);
        // The copy refuses a replayed nonce and applies the rest alike.
        let delete = ObjectOp::Delete {
            object: ObjectId([2; 32]),
        };
        for (signer, op, nonce) in [
            (USER, &ops[0], 1),
            (KEEPER, &provider(1, ShardHealth::Healthy), 3),
            (USER, &delete, 4),
        ] {
            let env = stamp(op, nonce);
            assert_eq!(
                copy.apply_signed(acct(signer), &env),
                o.apply_signed(acct(signer), &env)
            );
        }
        assert_eq!(copy, o);
        assert_eq!(o.chunk_count(), 0);
        assert_ne!(copy, setup().0);
    }

    #[test]
    fn only_keepers_sign_keeper_ops() {
        let (mut o, ops) = setup();
        run(&mut o, USER, &ops[0]).unwrap();
        let op = provider(1, ShardHealth::Lost);
        assert!(matches!(
            run(&mut o, USER, &op),
            Err(ObjectError::NotKeeper { .. })
        ));
        assert_eq!(healthy(&o), vec![3, 3]);
        assert_eq!(o.degraded().count(), 0);
        assert_eq!(o.data_shards(&ChunkId([1; 32])), Some(2));
        assert_eq!(o.held_by(&acct(2)).count(), 2);
    }

    #[test]
    fn provider_health_marks_and_unmarks_its_shards() {
        let (mut o, ops) = setup();
        run(&mut o, USER, &ops[0]).unwrap();
        let r = run(&mut o, KEEPER, &provider(1, ShardHealth::Suspect)).unwrap();
        assert_eq!(r, Applied::Keeper(KeeperApplied::Health { changed: 2 }));
        assert_eq!(healthy(&o), vec![2, 2]);
        assert_eq!(o.degraded().count(), 2);
        assert_eq!(o.provider_health(&acct(1)), ShardHealth::Suspect);
        run(&mut o, KEEPER, &provider(1, ShardHealth::Healthy)).unwrap();
        assert_eq!(healthy(&o), vec![3, 3]);
        assert_eq!(o.degraded().count(), 0);
        // Lost survives a later Healthy: the shards must be rebuilt.
        run(&mut o, KEEPER, &provider(2, ShardHealth::Lost)).unwrap();
        run(&mut o, KEEPER, &provider(2, ShardHealth::Healthy)).unwrap();
        assert_eq!(healthy(&o), vec![2, 2]);
        let e = o.ownership().chunk(&ChunkId([1; 32])).unwrap().unwrap();
        let p = plan(&e, 2, RepairThreshold::Eager).unwrap();
        assert_eq!(p.rebuild, vec![1]);
    }

    #[test]
    fn replace_is_compare_and_swap_and_keeps_holders_distinct() {
        let (mut o, ops) = setup();
        run(&mut o, USER, &ops[0]).unwrap();
        let c = ChunkId([1; 32]);
        run(&mut o, KEEPER, &provider(2, ShardHealth::Lost)).unwrap();
        let replace = |from: u8, to: u8| {
            ObjectOp::Keeper(KeeperOp::Replace {
                chunk: c,
                moves: vec![Move {
                    index: 1,
                    from: Some(acct(from)),
                    to: acct(to),
                }],
            })
        };
        assert!(matches!(
            run(&mut o, KEEPER, &replace(3, 4)),
            Err(ObjectError::Stale(_))
        ));
        assert!(matches!(
            run(&mut o, KEEPER, &replace(2, 3)),
            Err(ObjectError::Invalid(_))
        ));
        assert!(matches!(
            run(&mut o, USER, &replace(2, 4)),
            Err(ObjectError::NotKeeper { .. })
        ));
        assert_eq!(healthy(&o), vec![2, 2]);
        run(&mut o, KEEPER, &replace(2, 4)).unwrap();
        assert_eq!(healthy(&o), vec![3, 2]);
        let holders = o.locate(&c).unwrap().unwrap().holders;
        assert_eq!(holders, vec![Some(acct(1)), Some(acct(4)), Some(acct(3))]);
        assert_eq!(o.held_by(&acct(2)).count(), 1);
        assert_eq!(o.held_by(&acct(4)).count(), 1);
        assert_eq!(
            o.degraded().copied().collect::<Vec<_>>(),
            vec![ChunkId([2; 32])]
        );
        // A finding about the former holder is stale now.
        let mark = ObjectOp::Keeper(KeeperOp::MarkShard {
            chunk: c,
            index: 1,
            holder: acct(2),
            health: ShardHealth::Lost,
            reason: Reason::Corrupt,
        });
        assert!(matches!(
            run(&mut o, KEEPER, &mark),
            Err(ObjectError::Stale(_))
        ));
        // Placing on a provider declared Lost inherits its health.
        run(&mut o, KEEPER, &provider(5, ShardHealth::Lost)).unwrap();
        let to_lost = ObjectOp::Keeper(KeeperOp::Replace {
            chunk: ChunkId([2; 32]),
            moves: vec![Move {
                index: 1,
                from: Some(acct(2)),
                to: acct(5),
            }],
        });
        run(&mut o, KEEPER, &to_lost).unwrap();
        assert_eq!(healthy(&o), vec![3, 2]);
        assert_eq!(
            o.find_shard(&acct(5), &ShardId([21; 32])).unwrap(),
            Some((ChunkId([2; 32]), 1))
        );
    }

    #[test]
    fn purge_forgets_holdings_and_replay_is_deterministic() {
        let (mut o, mut ops) = setup();
        ops.push(provider(3, ShardHealth::Suspect));
        ops.push(ObjectOp::Keeper(KeeperOp::MarkShard {
            chunk: ChunkId([2; 32]),
            index: 0,
            holder: acct(1),
            health: ShardHealth::Lost,
            reason: Reason::FailedProof,
        }));
        let mut outcomes = Vec::new();
        for op in &ops {
            let signer = if matches!(op, ObjectOp::Keeper(_)) {
                KEEPER
            } else {
                USER
            };
            outcomes.push(run(&mut o, signer, op).is_ok());
        }
        let (mut again, _) = setup();
        for op in &ops {
            let signer = if matches!(op, ObjectOp::Keeper(_)) {
                KEEPER
            } else {
                USER
            };
            run(&mut again, signer, op).unwrap();
        }
        assert_eq!(healthy(&o), healthy(&again));
        assert_eq!(healthy(&o), vec![2, 1]);
        assert_eq!(
            o.degraded().collect::<Vec<_>>(),
            again.degraded().collect::<Vec<_>>()
        );
        run(
            &mut o,
            USER,
            &ObjectOp::Delete {
                object: ObjectId([2; 32]),
            },
        )
        .unwrap();
        assert_eq!(o.degraded().count(), 0);
        assert_eq!(o.holders().count(), 0);
        assert_eq!(o.data_shards(&ChunkId([1; 32])), None);
    }
}

//! A model of the ownership rules, checked against a real store after every step.

use super::account;
use crate::id::{AccountId, ChunkId, ShardId};
use crate::ownership::{
    Account, ChunkEntry, ChunkInfo, Holder, MemoryShardStore, MetaStore, ObjectChunks, Ownership,
    OwnershipError, Placement, ShardStore,
};
use std::collections::{BTreeMap, BTreeSet};

/// The bytes of shard `j` of universe chunk `i` (distinct for every (i, j)).
pub(crate) fn shard_bytes(i: usize, j: usize) -> Vec<u8> {
    format!("memo testkit chunk {i} shard {j};")
        .repeat(1 + i % 4)
        .into_bytes()
}

/// Chunk number `i` of the test universe: 3 to 5 shards of real bytes.
pub fn universe_chunk(i: usize) -> ChunkInfo {
    let shards: Vec<Vec<u8>> = (0..3 + i % 3).map(|j| shard_bytes(i, j)).collect();
    ChunkInfo {
        id: ChunkId::of(format!("memo testkit chunk {i}").as_bytes()),
        stored_bytes: shards.iter().map(|s| s.len() as u64).sum(),
        shards: shards.iter().map(|s| ShardId::of(s)).collect(),
    }
}

/// One step of a random sequence. User and chunk numbers index the checker's universe; a user
/// number past the last account is a user without an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `user` puts an object made of these chunks (repeats allowed).
    Put {
        /// User number.
        user: usize,
        /// Chunk numbers.
        chunks: Vec<usize>,
    },
    /// `user` deletes one of the objects it stored (number `pick` modulo how many it has).
    DeleteStored {
        /// User number.
        user: usize,
        /// Which stored object.
        pick: usize,
    },
    /// `user` deletes an arbitrary object (often refused).
    Delete {
        /// User number.
        user: usize,
        /// Chunk numbers.
        chunks: Vec<usize>,
    },
}

/// A deterministic pseudo-random sequence of `n` operations (splitmix64 from `seed`).
pub fn random_ops(seed: u64, n: usize, users: usize, chunks: usize) -> Vec<Op> {
    let mut s = seed;
    let mut next = move |bound: usize| -> usize {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % bound as u64) as usize
    };
    (0..n)
        .map(|_| {
            let user = if next(20) == 0 { users } else { next(users) };
            match next(10) {
                0..=4 => {
                    let len = 1 + next(5);
                    Op::Put {
                        user,
                        chunks: (0..len).map(|_| next(chunks)).collect(),
                    }
                }
                5..=8 => Op::DeleteStored {
                    user,
                    pick: next(8),
                },
                _ => {
                    let len = 1 + next(3);
                    Op::Delete {
                        user,
                        chunks: (0..len).map(|_| next(chunks)).collect(),
                    }
                }
            }
        })
        .collect()
}

/// Everything observable about the universe, for "nothing changed" comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    accounts: Vec<Option<Account>>,
    owners: Vec<Vec<(AccountId, u64)>>,
    entries: Vec<Option<ChunkEntry>>,
    held: Vec<Vec<ShardId>>,
}

/// Drives an [`Ownership`] over a store and a model side by side, playing the keeper (placing
/// new chunks round-robin on three holders and purging), and checks after every step:
/// owners(C) = {U | refcount(U,C) ≥ 1}, usage = Σ refcount × size, every owned chunk is
/// registered and fully placed, unowned chunks are gone from the registry and from every holder
/// (no purge while an owner remains), and refused operations change nothing.
pub struct ModelChecker<S> {
    own: Ownership<S>,
    users: usize,
    chunks: Vec<ChunkInfo>,
    quota: u64,
    holders: Vec<(AccountId, Holder<MemoryShardStore>)>,
    refs: BTreeMap<(usize, usize), u64>,
    objects: Vec<Vec<Vec<usize>>>,
    stats: Stats,
}

/// What a checked sequence exercised (so tests can assert it covered every outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Puts applied.
    pub puts: usize,
    /// Deletes applied.
    pub deletes: usize,
    /// Chunks purged.
    pub purges: usize,
    /// Chunks shared or re-referenced (no data moved).
    pub dedups: usize,
    /// Operations refused (any typed error).
    pub refused: usize,
    /// Of which quota refusals.
    pub quota_refused: usize,
}

impl<S: MetaStore> ModelChecker<S> {
    /// A checker with `users` accounts and a universe of `chunks` chunks over an empty store.
    pub fn new(store: S, users: usize, chunks: usize) -> Self {
        let own = Ownership::new(store);
        let chunks: Vec<ChunkInfo> = (0..chunks).map(universe_chunk).collect();
        // Room for about a dozen chunk references: quota refusals happen in long sequences.
        let quota = chunks.iter().map(|c| c.stored_bytes).max().unwrap_or(1) * 12;
        for u in 0..users {
            own.open_account(Self::user(u), quota)
                .expect("open account");
        }
        let holders = (0..3)
            .map(|i| {
                (
                    account(0xa0 + i),
                    Holder::new(MemoryShardStore::new(), u64::MAX),
                )
            })
            .collect();
        Self {
            own,
            users,
            chunks,
            quota,
            holders,
            refs: BTreeMap::new(),
            objects: vec![Vec::new(); users],
            stats: Stats::default(),
        }
    }

    /// The account id of user number `u`.
    pub fn user(u: usize) -> AccountId {
        account(10 + u as u8)
    }

    /// What the sequence so far exercised.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The state machine under test.
    pub fn ownership(&self) -> &Ownership<S> {
        &self.own
    }

    fn object(&self, chunks: &[usize]) -> ObjectChunks {
        ObjectChunks::new(chunks.iter().map(|&i| self.chunks[i].clone()).collect())
    }

    fn owned(&self, c: usize) -> bool {
        self.refs.iter().any(|(&(_, cc), _)| cc == c)
    }

    fn usage(&self, u: usize) -> u64 {
        self.refs
            .iter()
            .filter(|(k, _)| k.0 == u)
            .map(|(&(_, c), n)| n * self.chunks[c].stored_bytes)
            .sum()
    }

    /// Applies one operation to store and model, comparing outcomes, then checks every
    /// invariant.
    pub fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        match op {
            Op::Put { user, chunks } => self.put(*user, chunks, &before),
            Op::DeleteStored { user, pick } => {
                let Some(list) = self.objects.get(*user).filter(|l| !l.is_empty()) else {
                    return;
                };
                let chunks = list[pick % list.len()].clone();
                self.delete(*user, &chunks, &before);
            }
            Op::Delete { user, chunks } => self.delete(*user, chunks, &before),
        }
        self.check();
    }

    fn put(&mut self, user: usize, chunks: &[usize], before: &Snapshot) {
        let uid = Self::user(user);
        let result = self.own.put_object(uid, &self.object(chunks));
        if user >= self.users {
            assert_eq!(result, Err(OwnershipError::UnknownUser { user: uid }));
            assert_eq!(&self.snapshot(), before, "refused put changed state");
            self.stats.refused += 1;
            return;
        }
        let needed: u64 = chunks.iter().map(|&c| self.chunks[c].stored_bytes).sum();
        if self.usage(user) + needed > self.quota {
            assert!(
                matches!(result, Err(OwnershipError::QuotaExceeded { .. })),
                "{result:?}"
            );
            self.stats.quota_refused += 1;
            assert_eq!(&self.snapshot(), before, "refused put changed state");
            self.stats.refused += 1;
            return;
        }
        let plan = result.expect("put within quota by a known user succeeds");
        let distinct: BTreeSet<usize> = chunks.iter().copied().collect();
        let (mut new, mut shared, mut reref) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for &c in &distinct {
            let id = self.chunks[c].id;
            if !self.owned(c) {
                new.insert(id);
            } else if !self.refs.contains_key(&(user, c)) {
                shared.insert(id);
            } else {
                reref.insert(id);
            }
        }
        assert_eq!(
            plan.new.iter().map(|i| i.id).collect::<BTreeSet<_>>(),
            new,
            "new chunks"
        );
        assert_eq!(
            plan.shared.iter().copied().collect::<BTreeSet<_>>(),
            shared,
            "shared"
        );
        assert_eq!(
            plan.rereferenced.iter().copied().collect::<BTreeSet<_>>(),
            reref,
            "reref"
        );
        for &c in chunks {
            *self.refs.entry((user, c)).or_insert(0) += 1;
        }
        assert_eq!(plan.usage, self.usage(user));
        self.objects[user].push(chunks.to_vec());
        self.stats.puts += 1;
        self.stats.dedups += plan.shared.len() + plan.rereferenced.len();
        // Keeper: place and upload every new chunk.
        for info in &plan.new {
            let c = self
                .chunks
                .iter()
                .position(|x| x.id == info.id)
                .expect("universe chunk");
            let mut placements = Vec::new();
            for (j, shard) in info.shards.iter().enumerate() {
                let (holder, h) = &self.holders[(c + j) % self.holders.len()];
                h.accept(shard, &shard_bytes(c, j)).expect("upload");
                placements.push(Placement {
                    index: j,
                    shard: *shard,
                    holder: *holder,
                });
            }
            self.own
                .record_placement(info.id, &placements)
                .expect("record placement");
        }
    }

    fn delete(&mut self, user: usize, chunks: &[usize], before: &Snapshot) {
        let uid = Self::user(user);
        let result = self.own.delete_object(uid, &self.object(chunks));
        if user >= self.users {
            assert_eq!(result, Err(OwnershipError::UnknownUser { user: uid }));
            assert_eq!(&self.snapshot(), before, "refused delete changed state");
            self.stats.refused += 1;
            return;
        }
        let mut need: BTreeMap<ChunkId, (usize, u64)> = BTreeMap::new();
        for &c in chunks {
            need.entry(self.chunks[c].id).or_insert((c, 0)).1 += 1;
        }
        // The first refusal in chunk-id order, as the state machine checks them.
        for (id, &(c, n)) in &need {
            let held = self.refs.get(&(user, c)).copied().unwrap_or(0);
            let expect = if !self.owned(c) {
                Some(OwnershipError::UnknownChunk { chunk: *id })
            } else if held < n {
                Some(OwnershipError::NotOwner {
                    user: uid,
                    chunk: *id,
                    held,
                    needed: n,
                })
            } else {
                None
            };
            if let Some(e) = expect {
                assert_eq!(result, Err(e));
                assert_eq!(&self.snapshot(), before, "refused delete changed state");
                self.stats.refused += 1;
                return;
            }
        }
        let plan = result.expect("delete of held references succeeds");
        let mut purged_expect = BTreeSet::new();
        for &(c, n) in need.values() {
            let left = self.refs[&(user, c)] - n;
            if left == 0 {
                self.refs.remove(&(user, c));
            } else {
                self.refs.insert((user, c), left);
            }
            if !self.owned(c) {
                purged_expect.insert(c);
            }
        }
        if let Some(pos) = self.objects[user].iter().position(|o| o == chunks) {
            self.objects[user].remove(pos);
        }
        assert_eq!(plan.usage, self.usage(user));
        let purged: BTreeSet<ChunkId> = plan.purged.iter().map(|p| p.chunk).collect();
        let expect_ids: BTreeSet<ChunkId> =
            purged_expect.iter().map(|&c| self.chunks[c].id).collect();
        assert_eq!(
            purged, expect_ids,
            "purge exactly the chunks left without owner"
        );
        self.stats.deletes += 1;
        self.stats.purges += purged.len();
        for p in &plan.purged {
            let c = self
                .chunks
                .iter()
                .position(|x| x.id == p.chunk)
                .expect("universe chunk");
            assert_eq!(
                p.shards.len(),
                self.chunks[c].shards.len(),
                "every shard purged"
            );
            for (holder, shard) in &p.shards {
                let h = &self
                    .holders
                    .iter()
                    .find(|(a, _)| a == holder)
                    .expect("holder")
                    .1;
                assert_eq!(
                    h.purge(&[*shard]).expect("purge"),
                    1,
                    "holder held the shard"
                );
            }
        }
    }

    /// The metadata part of [`ModelChecker::snapshot`] (what a reopened store must show).
    pub fn snapshot_meta(&self) -> Snapshot {
        meta_snapshot(&self.own, self.users, self.chunks.len())
    }

    /// Everything observable about the universe.
    pub fn snapshot(&self) -> Snapshot {
        let users = (0..=self.users).map(Self::user).chain([account(0xee)]);
        Snapshot {
            accounts: users.map(|u| self.own.account(&u).expect("read")).collect(),
            owners: self
                .chunks
                .iter()
                .map(|c| self.own.owners(&c.id).expect("read"))
                .collect(),
            entries: self
                .chunks
                .iter()
                .map(|c| self.own.chunk(&c.id).expect("read"))
                .collect(),
            held: self
                .holders
                .iter()
                .map(|(_, h)| h.store().list().expect("list"))
                .collect(),
        }
    }

    /// Checks every invariant against the model.
    pub fn check(&self) {
        let mut placed: BTreeSet<(AccountId, ShardId)> = BTreeSet::new();
        for (c, info) in self.chunks.iter().enumerate() {
            let mut expect: Vec<(AccountId, u64)> = self
                .refs
                .iter()
                .filter(|(k, _)| k.1 == c)
                .map(|(&(u, _), &n)| (Self::user(u), n))
                .collect();
            expect.sort();
            let owners = self.own.owners(&info.id).expect("read owners");
            assert_eq!(owners, expect, "owners(C) = {{U | refcount(U,C) >= 1}}");
            for u in 0..=self.users {
                let n = self.refs.get(&(u, c)).copied().unwrap_or(0);
                assert_eq!(
                    self.own.refcount(&Self::user(u), &info.id).expect("read"),
                    n
                );
            }
            let entry = self.own.chunk(&info.id).expect("read entry");
            match (expect.is_empty(), entry) {
                (true, None) => {}
                (true, Some(_)) => panic!("chunk {c} has no owner but is still registered"),
                (false, None) => panic!("chunk {c} is owned but not registered"),
                (false, Some(e)) => {
                    assert!(e.matches(info), "registry entry describes the chunk");
                    assert!(e.is_placed(), "every owned chunk has a placement");
                    placed.extend(e.placed());
                }
            }
        }
        for u in 0..self.users {
            let a = self
                .own
                .account(&Self::user(u))
                .expect("read")
                .expect("account");
            assert_eq!(a.usage, self.usage(u), "usage = sum of refcount x size");
        }
        let mut held: BTreeSet<(AccountId, ShardId)> = BTreeSet::new();
        for (a, h) in &self.holders {
            held.extend(h.store().list().expect("list").into_iter().map(|s| (*a, s)));
        }
        assert_eq!(
            held, placed,
            "holders hold exactly the placed shards of owned chunks"
        );
    }
}

/// The metadata of a checker's universe (`users` accounts, `chunks` chunks) as seen through
/// `own`, with no holder state: for comparing a store before and after a reopen.
pub fn meta_snapshot<S: MetaStore>(own: &Ownership<S>, users: usize, chunks: usize) -> Snapshot {
    let users = (0..=users)
        .map(ModelChecker::<S>::user)
        .chain([account(0xee)]);
    let chunks: Vec<ChunkInfo> = (0..chunks).map(universe_chunk).collect();
    Snapshot {
        accounts: users.map(|u| own.account(&u).expect("read")).collect(),
        owners: chunks
            .iter()
            .map(|c| own.owners(&c.id).expect("read"))
            .collect(),
        entries: chunks
            .iter()
            .map(|c| own.chunk(&c.id).expect("read"))
            .collect(),
        held: Vec::new(),
    }
}

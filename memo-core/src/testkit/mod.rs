//! Conformance suites for memo's backend traits, shared by every backend (memory here; redb and
//! filesystem in memo-sdk; any user's own). Enabled by the `testkit` feature.
//!
//! The functions panic (with a message naming the broken contract) on the first violation, so
//! they are meant to be called from tests:
//!
//! ```
//! use memo_core::ownership::{MemoryMeta, MemoryShardStore};
//! // A backend's test passes a constructor of fresh, empty stores:
//! memo_core::testkit::meta_store_conformance(MemoryMeta::new);
//! memo_core::testkit::shard_store_conformance(MemoryShardStore::new);
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model;

pub use model::{ModelChecker, Op, Snapshot, Stats, meta_snapshot, random_ops, universe_chunk};

use crate::id::{AccountId, ChunkId, ShardId};
use crate::ownership::ObjectOp;
use crate::ownership::{
    Account, ChunkEntry, ChunkInfo, Holder, MemoryShardStore, MetaStore, ObjectChunks, Ownership,
    OwnershipError, Placement, ShardHealth, ShardStore, ShardStoreError, StoreError, Verified,
};

/// `len` deterministic pseudo-random bytes for `seed` (blake3's extendable output): test data
/// that is incompressible and different per seed.
pub fn random_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut v);
    v
}

/// `provider`'s signed storage receipts for `user`'s `shards`, each `size` bytes, as a
/// [`MarketCall::CreateOrder`](crate::contract::MarketCall) carries them.
pub fn store_receipts(
    provider: &crate::identity::Keypair,
    user: AccountId,
    size: u64,
    shards: &[ShardId],
) -> Vec<crate::identity::Signed<crate::ticket::Receipt>> {
    shards
        .iter()
        .map(|s| {
            crate::identity::Signed::sign(
                provider,
                &crate::ticket::Receipt {
                    shard: *s,
                    size,
                    user,
                    expires_ms: u64::MAX,
                },
            )
        })
        .collect()
}

/// A deterministic account id for tests.
pub fn account(n: u8) -> AccountId {
    AccountId([n; 32])
}

/// Runs every contract of [`MetaStore`] against fresh stores from `make`: raw reads and writes,
/// rollback of failed transactions, owner ranges, then the ownership state machine on top (the
/// seeds' scenario, every refusal leaving the state unchanged, and a seeded random sequence
/// checked against a model).
pub fn meta_store_conformance<S: MetaStore>(make: impl Fn() -> S) {
    raw_contract(&make());
    rollback_contract(&make());
    owner_range_contract(&make());
    seeds_scenario(make());
    refusals_leave_state_unchanged(make());
    placement_and_health(make());
    batch_equals_sequential(make(), make());
    let mut checker = ModelChecker::new(make(), 4, 12);
    for op in random_ops(7, 300, 4, 12) {
        checker.apply(&op);
    }
    let st = checker.stats();
    assert!(
        st.puts > 20 && st.deletes > 20 && st.purges > 5 && st.dedups > 20 && st.refused > 10,
        "the seeded sequence covers every outcome: {st:?}"
    );
}

fn entry(n: u8) -> ChunkEntry {
    ChunkEntry::unplaced(&universe_chunk(n as usize))
}

fn raw_contract<S: MetaStore>(s: &S) {
    let (u, c) = (account(1), ChunkId([9; 32]));
    s.read(|r| {
        assert_eq!(r.account(&u)?, None, "empty store has no account");
        assert_eq!(r.refcount(&c, &u)?, 0, "empty store has no reference");
        assert!(!r.has_owners(&c)?, "empty store has no owner");
        assert!(r.owners(&c)?.is_empty());
        assert_eq!(r.chunk(&c)?, None, "empty store has no chunk");
        Ok::<_, StoreError>(())
    })
    .unwrap();
    let acct = Account {
        usage: 5,
        quota: 10,
    };
    s.write(|t| {
        t.put_account(&u, &acct)?;
        t.set_refcount(&c, &u, 3)?;
        t.put_chunk(&c, &entry(1))?;
        assert_eq!(
            t.account(&u)?,
            Some(acct),
            "a transaction reads its own writes"
        );
        assert_eq!(t.refcount(&c, &u)?, 3, "a transaction reads its own writes");
        assert!(t.has_owners(&c)?);
        assert_eq!(t.chunk(&c)?, Some(entry(1)));
        Ok::<_, StoreError>(())
    })
    .unwrap();
    s.read(|r| {
        assert_eq!(r.account(&u)?, Some(acct), "committed account readable");
        assert_eq!(r.refcount(&c, &u)?, 3, "committed refcount readable");
        assert_eq!(r.owners(&c)?, vec![(u, 3)]);
        assert_eq!(r.chunk(&c)?, Some(entry(1)), "committed entry readable");
        Ok::<_, StoreError>(())
    })
    .unwrap();
    s.write(|t| {
        t.set_refcount(&c, &u, 0)?;
        t.remove_chunk(&c)?;
        t.remove_chunk(&ChunkId([0x77; 32]))?; // absent: no-op
        Ok::<_, StoreError>(())
    })
    .unwrap();
    s.read(|r| {
        assert_eq!(r.refcount(&c, &u)?, 0, "refcount 0 removes the reference");
        assert!(!r.has_owners(&c)?, "no owner after the last reference goes");
        assert!(r.owners(&c)?.is_empty());
        assert_eq!(r.chunk(&c)?, None, "removed entry is gone");
        Ok::<_, StoreError>(())
    })
    .unwrap();
}

fn rollback_contract<S: MetaStore>(s: &S) {
    let (u, c) = (account(1), ChunkId([9; 32]));
    let acct = Account { usage: 1, quota: 2 };
    s.write(|t| {
        t.put_account(&u, &acct)?;
        t.set_refcount(&c, &u, 1)?;
        t.put_chunk(&c, &entry(1))
    })
    .unwrap();
    let r: Result<(), StoreError> = s.write(|t| {
        t.put_account(&u, &Account { usage: 9, quota: 9 })?;
        t.put_account(&account(2), &acct)?;
        t.set_refcount(&c, &u, 0)?;
        t.set_refcount(&c, &account(2), 4)?;
        t.remove_chunk(&c)?;
        t.put_chunk(&ChunkId([8; 32]), &entry(2))?;
        Err(StoreError::Inconsistent("abort".into()))
    });
    assert!(r.is_err(), "the closure's error is returned");
    s.read(|r| {
        assert_eq!(
            r.account(&u)?,
            Some(acct),
            "aborted account write rolled back"
        );
        assert_eq!(
            r.account(&account(2))?,
            None,
            "aborted account creation rolled back"
        );
        assert_eq!(
            r.refcount(&c, &u)?,
            1,
            "aborted refcount removal rolled back"
        );
        assert_eq!(
            r.refcount(&c, &account(2))?,
            0,
            "aborted refcount rolled back"
        );
        assert_eq!(
            r.chunk(&c)?,
            Some(entry(1)),
            "aborted chunk removal rolled back"
        );
        assert_eq!(
            r.chunk(&ChunkId([8; 32]))?,
            None,
            "aborted chunk creation rolled back"
        );
        Ok::<_, StoreError>(())
    })
    .unwrap();
}

fn owner_range_contract<S: MetaStore>(s: &S) {
    // Neighbouring chunk ids must not leak owners into each other's ranges.
    let mut lo = [0x40; 32];
    lo[31] = 0x3f;
    let mut hi = [0x40; 32];
    hi[31] = 0x41;
    let (a, mid, b) = (ChunkId(lo), ChunkId([0x40; 32]), ChunkId(hi));
    s.write(|t| {
        t.set_refcount(&a, &account(0xff), 1)?;
        t.set_refcount(&b, &account(0x00), 2)?;
        t.set_refcount(&mid, &account(3), 5)?;
        t.set_refcount(&mid, &account(1), 7)
    })
    .unwrap();
    s.read(|r| {
        assert_eq!(
            r.owners(&mid)?,
            vec![(account(1), 7), (account(3), 5)],
            "owners are exactly the chunk's references, ordered by account"
        );
        assert_eq!(r.owners(&a)?, vec![(account(0xff), 1)]);
        assert_eq!(r.owners(&b)?, vec![(account(0), 2)]);
        Ok::<_, StoreError>(())
    })
    .unwrap();
    s.write(|t| {
        t.set_refcount(&mid, &account(1), 0)?;
        t.set_refcount(&mid, &account(3), 0)
    })
    .unwrap();
    s.read(|r| {
        assert!(
            !r.has_owners(&mid)?,
            "neighbours' references are not owners of this chunk"
        );
        assert!(r.has_owners(&a)? && r.has_owners(&b)?);
        Ok::<_, StoreError>(())
    })
    .unwrap();
}

/// Providers used by the scenarios.
fn providers() -> Vec<AccountId> {
    (0..3).map(|i| account(0xa0 + i)).collect()
}

/// Places every shard of a new chunk on the providers round-robin and uploads it.
fn place_and_upload<S: MetaStore>(
    own: &Ownership<S>,
    holders: &[(AccountId, Holder<MemoryShardStore>)],
    info: &ChunkInfo,
    chunk_no: usize,
) {
    let mut placements = Vec::new();
    for (j, shard) in info.shards.iter().enumerate() {
        let (holder, h) = &holders[(chunk_no + j) % holders.len()];
        let bytes = model::shard_bytes(chunk_no, j);
        assert!(h.accept(shard, &bytes).unwrap());
        placements.push(Placement {
            index: j,
            shard: *shard,
            holder: *holder,
        });
    }
    own.record_placement(info.id, &placements).unwrap();
}

/// The seeds' scenario, step by step, with three users and the holders' shard stores.
pub fn seeds_scenario<S: MetaStore>(store: S) {
    let own = Ownership::new(store);
    let (u1, u2, u3) = (account(1), account(2), account(3));
    for u in [u1, u2, u3] {
        own.open_account(u, 1 << 30).unwrap();
    }
    let holders: Vec<(AccountId, Holder<MemoryShardStore>)> = providers()
        .into_iter()
        .map(|p| (p, Holder::new(MemoryShardStore::new(), 1 << 20)))
        .collect();
    let held = |holders: &[(AccountId, Holder<MemoryShardStore>)]| -> usize {
        holders
            .iter()
            .map(|(_, h)| h.store().list().unwrap().len())
            .sum()
    };
    let info = universe_chunk(0);
    let x = ObjectChunks::new(vec![info.clone()]);
    let size = info.stored_bytes;

    // User 1 stores X: new chunk, placed and uploaded.
    let plan = own.put_object(u1, &x).unwrap();
    assert_eq!(
        plan.new,
        vec![info.clone()],
        "first store of X registers it as new"
    );
    assert_eq!(own.owners(&info.id).unwrap(), vec![(u1, 1)]);
    place_and_upload(&own, &holders, &info, 0);
    let shards = info.shards.len();
    assert_eq!(held(&holders), shards);

    // User 1 stores X again: refcount 2, no new copies.
    let plan = own.put_object(u1, &x).unwrap();
    assert!(plan.new.is_empty() && plan.shared.is_empty());
    assert_eq!(plan.rereferenced, vec![info.id]);
    assert_eq!(own.refcount(&u1, &info.id).unwrap(), 2);
    assert_eq!(own.account(&u1).unwrap().unwrap().usage, 2 * size);
    assert_eq!(held(&holders), shards, "no new copies");

    // User 2 stores X: two owners, same copies.
    let before = own.chunk(&info.id).unwrap();
    let plan = own.put_object(u2, &x).unwrap();
    assert!(!plan.moves_data());
    assert_eq!(plan.shared, vec![info.id]);
    assert_eq!(own.owners(&info.id).unwrap(), vec![(u1, 2), (u2, 1)]);
    assert_eq!(own.chunk(&info.id).unwrap(), before, "same placement");
    assert_eq!(held(&holders), shards);

    // User 3 deletes X: refused, nothing changes.
    let err = own.delete_object(u3, &x).unwrap_err();
    assert!(
        matches!(
            err,
            OwnershipError::NotOwner {
                held: 0,
                needed: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(own.owners(&info.id).unwrap(), vec![(u1, 2), (u2, 1)]);

    // User 1 deletes twice: refcount 1, then no longer an owner; data stays.
    let plan = own.delete_object(u1, &x).unwrap();
    assert_eq!(plan.dereferenced, vec![info.id]);
    assert_eq!(own.refcount(&u1, &info.id).unwrap(), 1);
    let plan = own.delete_object(u1, &x).unwrap();
    assert_eq!(plan.released, vec![info.id]);
    assert!(plan.purged.is_empty(), "no purge while an owner remains");
    assert_eq!(own.owners(&info.id).unwrap(), vec![(u2, 1)]);
    assert_eq!(own.account(&u1).unwrap().unwrap().usage, 0);
    assert_eq!(held(&holders), shards, "data stays");

    // User 1 deletes again: refused.
    let err = own.delete_object(u1, &x).unwrap_err();
    assert!(matches!(err, OwnershipError::NotOwner { .. }), "{err:?}");

    // User 2 deletes: purge, every holder drops its shards.
    let plan = own.delete_object(u2, &x).unwrap();
    assert_eq!(plan.purged.len(), 1);
    let purges = plan.purges();
    assert_eq!(purges.len(), shards, "every placed shard is purged");
    for (holder, h) in &holders {
        let mine: Vec<ShardId> = purges
            .iter()
            .filter(|(p, _)| p == holder)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(h.purge(&mine).unwrap(), mine.len());
        assert_eq!(h.store().used_bytes().unwrap(), 0, "space reclaimed");
    }
    assert_eq!(held(&holders), 0);
    assert_eq!(
        own.chunk(&info.id).unwrap(),
        None,
        "chunk left the registry"
    );
    assert!(own.owners(&info.id).unwrap().is_empty());
    let err = own.delete_object(u2, &x).unwrap_err();
    assert_eq!(err, OwnershipError::UnknownChunk { chunk: info.id });
}

/// Every refusal (unknown user, unknown chunk, non-owner, quota, mismatch, malformed object,
/// bad placement) returns its typed error and leaves the whole state unchanged.
pub fn refusals_leave_state_unchanged<S: MetaStore>(store: S) {
    let mut m = ModelChecker::new(store, 3, 6);
    m.apply(&Op::Put {
        user: 0,
        chunks: vec![0, 1, 1],
    });
    m.apply(&Op::Put {
        user: 1,
        chunks: vec![1, 2],
    });
    let own = m.ownership();
    let snap = m.snapshot();
    let c = |i: usize| universe_chunk(i);
    let obj = |v: &[usize]| ObjectChunks::new(v.iter().map(|&i| c(i)).collect());
    let stranger = account(0xee);

    let cases: Vec<(Result<(), OwnershipError>, &str)> = vec![
        (
            own.put_object(stranger, &obj(&[0])).map(|_| ()),
            "unknown user put",
        ),
        (
            own.delete_object(stranger, &obj(&[0])).map(|_| ()),
            "unknown user delete",
        ),
        (own.set_quota(stranger, 5), "unknown user quota"),
        (
            own.open_account(ModelChecker::<S>::user(0), 5),
            "account exists",
        ),
        (
            own.delete_object(ModelChecker::<S>::user(0), &obj(&[0, 5]))
                .map(|_| ()),
            "unknown chunk in object",
        ),
        (
            own.delete_object(ModelChecker::<S>::user(0), &obj(&[0, 2]))
                .map(|_| ()),
            "non-owner of one chunk",
        ),
        (
            own.delete_object(ModelChecker::<S>::user(0), &obj(&[0, 0]))
                .map(|_| ()),
            "too few references",
        ),
        (
            own.delete_object(ModelChecker::<S>::user(2), &obj(&[1]))
                .map(|_| ()),
            "non-owner",
        ),
        (
            own.put_object(ModelChecker::<S>::user(0), &ObjectChunks::default())
                .map(|_| ()),
            "empty object",
        ),
        (
            own.record_placement(c(5).id, &[]),
            "placement of unknown chunk",
        ),
        (
            own.mark_health(c(5).id, 0, ShardHealth::Lost).map(|_| ()),
            "health of unknown chunk",
        ),
        (
            own.mark_health(c(0).id, 99, ShardHealth::Lost).map(|_| ()),
            "health of bad index",
        ),
    ];
    for (r, what) in cases {
        assert!(r.is_err(), "{what} must be refused");
        assert_eq!(m.snapshot(), snap, "{what} changed the state");
    }
    let own = m.ownership();
    let mut other = c(3);
    other.stored_bytes += 1;
    let mixed = ObjectChunks::new(vec![c(4), other.clone(), c(3)]);
    assert!(matches!(
        own.put_object(ModelChecker::<S>::user(0), &mixed),
        Err(OwnershipError::InvalidObject(_))
    ));
    let mut wrong = c(1);
    wrong.shards.reverse();
    assert_eq!(
        own.put_object(
            ModelChecker::<S>::user(2),
            &ObjectChunks::new(vec![c(4), wrong])
        ),
        Err(OwnershipError::ChunkMismatch { chunk: c(1).id })
    );
    let bad = Placement {
        index: 0,
        shard: ShardId([1; 32]),
        holder: account(0xa0),
    };
    assert!(matches!(
        own.record_placement(c(0).id, &[bad]),
        Err(OwnershipError::InvalidPlacement { .. })
    ));
    let oob = Placement {
        index: 50,
        shard: c(0).shards[0],
        holder: account(0xa0),
    };
    assert!(matches!(
        own.record_placement(c(0).id, &[oob]),
        Err(OwnershipError::InvalidPlacement { .. })
    ));
    // Quota: the put is refused whole, even though its first chunks would fit.
    let usage = own
        .account(&ModelChecker::<S>::user(2))
        .unwrap()
        .unwrap()
        .usage;
    own.set_quota(
        ModelChecker::<S>::user(2),
        usage + c(3).stored_bytes + c(4).stored_bytes - 1,
    )
    .unwrap();
    let snap = m.snapshot();
    let own = m.ownership();
    let r = own.put_object(ModelChecker::<S>::user(2), &obj(&[3, 4]));
    assert!(
        matches!(r, Err(OwnershipError::QuotaExceeded { .. })),
        "{r:?}"
    );
    assert_eq!(m.snapshot(), snap, "a refused put changes nothing");
    // Exactly at quota is allowed.
    own.set_quota(
        ModelChecker::<S>::user(2),
        usage + c(3).stored_bytes + c(4).stored_bytes,
    )
    .unwrap();
    own.put_object(ModelChecker::<S>::user(2), &obj(&[3, 4]))
        .unwrap();
    assert_eq!(
        own.account(&ModelChecker::<S>::user(2))
            .unwrap()
            .unwrap()
            .usage,
        usage + c(3).stored_bytes + c(4).stored_bytes
    );
    // Overflowing arithmetic is a quota refusal, not a panic.
    let mut huge = c(5);
    huge.stored_bytes = u64::MAX;
    let r = own.put_object(
        ModelChecker::<S>::user(0),
        &ObjectChunks::new(vec![huge.clone(), huge]),
    );
    assert!(
        matches!(r, Err(OwnershipError::QuotaExceeded { .. })),
        "{r:?}"
    );
}

/// Placement recording and health marks.
pub fn placement_and_health<S: MetaStore>(store: S) {
    let own = Ownership::new(store);
    let u = account(1);
    own.open_account(u, u64::MAX).unwrap();
    let info = universe_chunk(3);
    let plan = own
        .put_object(u, &ObjectChunks::new(vec![info.clone()]))
        .unwrap();
    assert_eq!(plan.new.len(), 1);
    let e = own.chunk(&info.id).unwrap().unwrap();
    assert!(
        !e.is_placed() && e.healthy_shards() == 0,
        "new chunks start unplaced"
    );
    assert!(matches!(
        own.mark_health(info.id, 0, ShardHealth::Lost),
        Err(OwnershipError::InvalidPlacement { .. })
    ));
    let p: Vec<Placement> = info
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| Placement {
            index: i,
            shard: *s,
            holder: account(0xa0 + i as u8),
        })
        .collect();
    own.record_placement(info.id, &p).unwrap();
    let e = own.chunk(&info.id).unwrap().unwrap();
    assert!(e.is_placed());
    let n = info.shards.len();
    assert_eq!(e.healthy_shards(), n);
    assert_eq!(
        own.mark_health(info.id, 1, ShardHealth::Suspect).unwrap(),
        n - 1
    );
    assert_eq!(
        own.mark_health(info.id, 2, ShardHealth::Lost).unwrap(),
        n - 2
    );
    // Repair re-places shard 2 on another holder: healthy again.
    let moved = Placement {
        index: 2,
        shard: info.shards[2],
        holder: account(0xbb),
    };
    own.record_placement(info.id, &[moved]).unwrap();
    let e = own.chunk(&info.id).unwrap().unwrap();
    assert_eq!(e.healthy_shards(), n - 1);
    assert_eq!(e.shards[2].holder, Some(account(0xbb)));
    let plan = own
        .delete_object(u, &ObjectChunks::new(vec![info.clone()]))
        .unwrap();
    let mut expect: Vec<(AccountId, ShardId)> = p.iter().map(|p| (p.holder, p.shard)).collect();
    expect[2].0 = account(0xbb);
    assert_eq!(plan.purges(), expect, "purge names every current holder");
}

/// An in-memory shard store on a disk of `disk` bytes: it reports the free space left (plus
/// [`crate::ownership::DISK_RESERVE`], which a holder keeps) and refuses a write that does not
/// fit with [`ShardStoreError::NoSpace`], as a full file system does.
#[derive(Debug, Default)]
pub struct SmallDisk {
    inner: crate::ownership::MemoryShardStore,
    disk: Option<u64>,
}

impl SmallDisk {
    /// A store on a disk of `disk` bytes (`None`: unbounded, as the memory store).
    pub fn new(disk: Option<u64>) -> Self {
        Self {
            inner: Default::default(),
            disk,
        }
    }
}

impl ShardStore for SmallDisk {
    fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<bool, ShardStoreError> {
        if let Some(disk) = self.disk
            && self.inner.used_bytes()? + bytes.len() as u64 > disk
        {
            return Err(ShardStoreError::NoSpace {
                reason: "No space left on device".into(),
            });
        }
        self.inner.put(id, bytes)
    }
    fn get(&self, id: &ShardId) -> Result<Option<Vec<u8>>, ShardStoreError> {
        self.inner.get(id)
    }
    fn has(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        self.inner.has(id)
    }
    fn delete(&self, id: &ShardId) -> Result<bool, ShardStoreError> {
        self.inner.delete(id)
    }
    fn list(&self) -> Result<Vec<ShardId>, ShardStoreError> {
        self.inner.list()
    }
    fn used_bytes(&self) -> Result<u64, ShardStoreError> {
        self.inner.used_bytes()
    }
    fn free_bytes(&self) -> Result<Option<u64>, ShardStoreError> {
        let used = self.inner.used_bytes()?;
        Ok(self
            .disk
            .map(|d| (d + crate::ownership::DISK_RESERVE).saturating_sub(used)))
    }
}

/// Runs every contract of [`ShardStore`] against fresh stores from `make`.
pub fn shard_store_conformance<S: ShardStore>(make: impl Fn() -> S) {
    let s = make();
    let a = b"shard a".to_vec();
    let b = vec![7u8; 70_000];
    let (ia, ib) = (ShardId::of(&a), ShardId::of(&b));
    assert_eq!(s.used_bytes().unwrap(), 0, "a new store is empty");
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.shard_count().unwrap(), 0);
    assert_eq!(s.get(&ia).unwrap(), None);
    assert!(!s.has(&ia).unwrap());
    assert!(
        !s.delete(&ia).unwrap(),
        "deleting an absent shard reports false"
    );

    assert!(s.put(&ia, &a).unwrap(), "first put stores");
    assert!(!s.put(&ia, &a).unwrap(), "second put reports already held");
    assert!(s.put(&ib, &b).unwrap());
    assert_eq!(
        s.used_bytes().unwrap(),
        (a.len() + b.len()) as u64,
        "one copy each"
    );
    assert_eq!(s.get(&ia).unwrap(), Some(a.clone()));
    assert_eq!(s.get(&ib).unwrap(), Some(b.clone()));
    assert!(s.has(&ib).unwrap());
    let mut ids = vec![ia, ib];
    ids.sort();
    assert_eq!(s.list().unwrap(), ids, "list is every shard in id order");
    assert_eq!(s.shard_count().unwrap(), 2, "a second put is not counted");

    let err = s.put(&ia, &b).unwrap_err();
    assert_eq!(err, ShardStoreError::Mismatch { id: ia, actual: ib });
    let c = b"never stored".to_vec();
    let err = s.put(&ShardId([3; 32]), &c).unwrap_err();
    assert!(matches!(err, ShardStoreError::Mismatch { .. }));
    assert!(
        !s.has(&ShardId([3; 32])).unwrap(),
        "a refused put stores nothing"
    );
    assert_eq!(
        s.get(&ia).unwrap(),
        Some(a.clone()),
        "a refused put keeps the old shard"
    );

    assert!(s.delete(&ib).unwrap());
    assert!(!s.has(&ib).unwrap());
    assert_eq!(s.get(&ib).unwrap(), None);
    assert_eq!(
        s.used_bytes().unwrap(),
        a.len() as u64,
        "delete frees the space"
    );
    assert_eq!(s.list().unwrap(), vec![ia]);
    assert_eq!(s.shard_count().unwrap(), 1, "delete uncounts");
    assert!(!s.delete(&ib).unwrap());
    assert_eq!(
        s.shard_count().unwrap(),
        1,
        "a second delete uncounts nothing"
    );
    let empty: &[u8] = &[];
    assert!(
        s.put(&ShardId::of(empty), empty).unwrap(),
        "an empty shard is a shard"
    );
    assert_eq!(s.shard_count().unwrap(), 2);
    assert_eq!(s.get(&ShardId::of(empty)).unwrap(), Some(Vec::new()));

    // A verified put stores like a put; checking refuses what `put` refuses.
    let s = make();
    let v = Verified::check(&ib, &b).unwrap();
    assert!(s.put_verified(v).unwrap(), "a verified put stores");
    assert!(!s.put_verified(v).unwrap(), "a second reports already held");
    assert!(!s.put(&ib, &b).unwrap(), "as does a plain put");
    assert_eq!(s.get(&ib).unwrap(), Some(b.clone()));
    assert_eq!(s.used_bytes().unwrap(), b.len() as u64);
    assert_eq!(s.shard_count().unwrap(), 1, "counted once");
    assert_eq!(
        Verified::check(&ia, &b).unwrap_err(),
        ShardStoreError::Mismatch { id: ia, actual: ib }
    );

    // Many shards, then all gone.
    let s = make();
    let shards: Vec<Vec<u8>> = (0..50u32)
        .map(|i| i.to_le_bytes().repeat(i as usize + 1))
        .collect();
    for sh in &shards {
        assert!(s.put(&ShardId::of(sh), sh).unwrap());
    }
    assert_eq!(s.list().unwrap().len(), 50);
    assert_eq!(s.shard_count().unwrap(), 50);
    // Pages of `list_after`, whatever their size, add up to `list`.
    let all = s.list().unwrap();
    for max in [1, 7, 50, 64] {
        let mut paged = Vec::new();
        let mut after = None;
        for pages in 0.. {
            assert!(pages <= all.len(), "paging by {max} does not end");
            let page = s.list_after(after.as_ref(), max).unwrap();
            assert!(page.len() <= max, "a page holds at most max ids");
            paged.extend_from_slice(&page);
            if page.len() < max {
                break;
            }
            after = page.last().copied();
        }
        assert_eq!(paged, all, "pages of {max}");
    }
    let mid = ShardId([0x80; 32]);
    let above: Vec<ShardId> = all.iter().copied().filter(|id| *id > mid).collect();
    assert_eq!(
        s.list_after(Some(&mid), usize::MAX).unwrap(),
        above,
        "after an id that is not held"
    );
    assert!(s.list_after(all.last(), 10).unwrap().is_empty());
    assert!(s.list_after(None, 0).unwrap().is_empty());
    for sh in &shards {
        assert!(s.delete(&ShardId::of(sh)).unwrap());
    }
    assert_eq!(s.used_bytes().unwrap(), 0);
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.shard_count().unwrap(), 0);
}

/// [`Ownership::apply_batch`] gives the same results and the same state as applying the same
/// objects one transaction each, refusals included.
pub fn batch_equals_sequential<S: MetaStore>(one: S, other: S) {
    let (seq, batch) = (Ownership::new(one), Ownership::new(other));
    let quota = universe_chunk(0).stored_bytes * 40;
    for own in [&seq, &batch] {
        for u in 0..3 {
            own.open_account(ModelChecker::<S>::user(u), quota).unwrap();
        }
    }
    let obj = |v: &[usize]| ObjectChunks::new(v.iter().map(|&i| universe_chunk(i)).collect());
    let mut ops = Vec::new();
    let mut stored: Vec<Vec<(usize, Vec<usize>)>> = vec![Vec::new(); 4];
    for (i, op) in random_ops(99, 120, 3, 8).into_iter().enumerate() {
        let user = |u: usize| ModelChecker::<S>::user(u);
        ops.push(match op {
            Op::Put { user: u, chunks } => {
                stored[u].push((i, chunks.clone()));
                ObjectOp::Put {
                    user: user(u),
                    object: obj(&chunks),
                }
            }
            Op::DeleteStored { user: u, pick } => match stored[u].len() {
                0 => ObjectOp::Delete {
                    user: user(u),
                    object: obj(&[pick % 8]),
                },
                n => ObjectOp::Delete {
                    user: user(u),
                    object: obj(&stored[u][pick % n].1),
                },
            },
            Op::Delete { user: u, chunks } => ObjectOp::Delete {
                user: user(u),
                object: obj(&chunks),
            },
        });
    }
    let one_by_one: Vec<_> = ops
        .iter()
        .map(|op| match op {
            ObjectOp::Put { user, object } => seq
                .put_object(*user, object)
                .map(crate::ownership::Outcome::Put),
            ObjectOp::Delete { user, object } => seq
                .delete_object(*user, object)
                .map(crate::ownership::Outcome::Delete),
        })
        .collect();
    let together = batch.apply_batch(&ops).unwrap();
    assert_eq!(
        together, one_by_one,
        "a batch answers each object as if alone"
    );
    assert!(
        together.iter().filter(|r| r.is_err()).count() > 5,
        "the batch includes refusals"
    );
    assert!(together.iter().filter(|r| r.is_ok()).count() > 20);
    assert_eq!(
        meta_snapshot(&batch, 3, 8),
        meta_snapshot(&seq, 3, 8),
        "same state"
    );
}

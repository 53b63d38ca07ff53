use super::*;
use crate::testkit;

#[test]
fn memory_meta_store_conformance() {
    testkit::meta_store_conformance(MemoryMeta::new);
}

#[test]
fn memory_shard_store_conformance() {
    testkit::shard_store_conformance(MemoryShardStore::new);
}

mod props {
    use crate::ownership::MemoryMeta;
    use crate::testkit::{ModelChecker, Op};
    use proptest::prelude::*;

    const USERS: usize = 3;
    const CHUNKS: usize = 8;

    fn op() -> impl Strategy<Value = Op> {
        // USERS itself is a user without an account.
        let user = 0..=USERS;
        let chunks = proptest::collection::vec(0..CHUNKS, 1..5);
        prop_oneof![
            4 => (user.clone(), chunks.clone()).prop_map(|(user, chunks)| Op::Put { user, chunks }),
            4 => (user.clone(), 0..8usize).prop_map(|(user, pick)| Op::DeleteStored { user, pick }),
            1 => (user, chunks).prop_map(|(user, chunks)| Op::Delete { user, chunks }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut m = ModelChecker::new(MemoryMeta::new(), USERS, CHUNKS);
            for op in &ops {
                m.apply(op);
            }
        }
    }
}

#[test]
fn object_with_a_chunk_twice_references_it_twice() {
    let own = Ownership::new(MemoryMeta::new());
    let u = testkit::account(1);
    own.open_account(u, u64::MAX).unwrap();
    let c = testkit::universe_chunk(1);
    let obj = ObjectChunks::new(vec![c.clone(), testkit::universe_chunk(2), c.clone()]);
    let plan = own.put_object(u, &obj).unwrap();
    assert_eq!(plan.new.len(), 2, "a repeated chunk is new once");
    assert_eq!(own.refcount(&u, &c.id).unwrap(), 2);
    // Deleting an object naming it once leaves one reference; the repeated object then fails.
    own.delete_object(u, &ObjectChunks::new(vec![c.clone()]))
        .unwrap();
    assert_eq!(own.refcount(&u, &c.id).unwrap(), 1);
    let err = own.delete_object(u, &obj).unwrap_err();
    assert!(matches!(
        err,
        OwnershipError::NotOwner {
            held: 1,
            needed: 2,
            ..
        }
    ));
}

#[test]
fn records_round_trip_and_refuse_garbage() {
    let e = ChunkEntry::unplaced(&testkit::universe_chunk(4));
    assert_eq!(ChunkEntry::from_bytes(&e.to_bytes()).unwrap(), e);
    let b = e.to_bytes();
    assert!(matches!(
        ChunkEntry::from_bytes(&b[..b.len() - 1]),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        ChunkEntry::from_bytes(&[]),
        Err(StoreError::Corrupt { .. })
    ));
    let a = Account { usage: 3, quota: 9 };
    assert_eq!(Account::from_bytes(&a.to_bytes()).unwrap(), a);
    assert!(matches!(
        Account::from_bytes(&[9, 1, 2]),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(refcount_from_bytes(&refcount_to_bytes(5)).unwrap(), 5);
    assert!(refcount_from_bytes(&[1, 2, 3]).is_err());
    assert!(refcount_from_bytes(&[0; 8]).is_err());
    let k = ref_key(&ChunkId([1; 32]), &AccountId([2; 32]));
    assert_eq!((&k[..32], &k[32..]), (&[1u8; 32][..], &[2u8; 32][..]));
}

#[test]
fn holder_refuses_over_capacity_and_bad_bytes() {
    let h = Holder::new(MemoryShardStore::new(), 10);
    let a = b"12345678".to_vec();
    assert!(h.accept(&ShardId::of(&a), &a).unwrap());
    assert!(
        !h.accept(&ShardId::of(&a), &a).unwrap(),
        "already held: no space needed"
    );
    let b = b"abc".to_vec();
    assert!(matches!(
        h.accept(&ShardId::of(&b), &b),
        Err(HolderError::Full { room: 2, len: 3 })
    ));
    assert!(matches!(
        h.accept(&ShardId::of(&a), &b),
        Err(HolderError::Store(ShardStoreError::Mismatch { .. }))
    ));
    assert_eq!(h.purge(&[ShardId::of(&a), ShardId::of(&b)]).unwrap(), 1);
    assert!(h.accept(&ShardId::of(&b), &b).unwrap());
}

#[test]
fn holder_room_is_bounded_by_the_disk_as_well_as_the_capacity() {
    let h = Holder::new(testkit::SmallDisk::new(Some(10)), 1 << 30);
    assert_eq!(h.room().unwrap(), 10);
    let a = b"12345678".to_vec();
    assert!(h.accept(&ShardId::of(&a), &a).unwrap());
    assert_eq!(h.room().unwrap(), 2);
    let b = b"abc".to_vec();
    assert!(matches!(
        h.accept(&ShardId::of(&b), &b),
        Err(HolderError::Full { room: 2, len: 3 })
    ));
    assert!(!h.store().has(&ShardId::of(&b)).unwrap());
}

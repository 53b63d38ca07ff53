//! Every decoder of untrusted input never panics: arbitrary bytes, and valid encodings with
//! bytes flipped, truncated or extended, give a value or a typed error. (The cargo-fuzz targets
//! in `fuzz/` explore the same decoders further; these run in the normal test suite.)

use bytes::Bytes;
use memo_core::codec::{CodecParams, ConvergenceDomain, Encoder, Manifest, ObjectRef};
use memo_core::contract::{Call, Genesis, Params, RolesCall, SignedTx, Tx};
use memo_core::objects::{MAX_OP_BYTES, ObjectOp, Objects, OpEnvelope, SignedOp};
use memo_core::ownership::{
    Account, ChunkEntry, ChunkInfo, MemoryMeta, ShardHealth, refcount_from_bytes,
};
use memo_core::proof::{ProofResponse, StorageProof, TreeCache};
use memo_core::protocol::{ChunkPlacement, Grant, Request, Response};
use memo_core::repair::{KeeperOp, Move, ShardReport};
use memo_core::ticket::{Receipt, Ticket};
use memo_core::{AccountId, ChunkId, Keypair, ObjectId, ShardId, Signed, wire};
use proptest::prelude::*;

fn info() -> ChunkInfo {
    ChunkInfo {
        id: ChunkId([3; 32]),
        stored_bytes: 600,
        shards: (0..6).map(|i| ShardId([i; 32])).collect(),
    }
}

/// Valid encodings of every decoded type, as (decoder name, bytes).
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let kp = Keypair::from_seed("decoders");
    let put = ObjectOp::Put {
        object: ObjectId([3; 32]),
        size: 10,
        needed: 4,
        sealed: vec![1, 2, 3],
        chunks: vec![info()],
        placements: vec![ChunkPlacement {
            chunk: ChunkId([3; 32]),
            holders: vec![Some(kp.account()); 6],
        }],
        receipts: vec![Signed::sign(
            &kp,
            &Receipt {
                shard: ShardId([0; 32]),
                size: 100,
                user: kp.account(),
                expires_ms: 9,
            },
        )],
        possession: vec![],
    };
    let ticket = Signed::sign(
        &kp,
        &Ticket {
            chunk: ChunkId([1; 32]),
            shards: vec![(ShardId([1; 32]), AccountId([1; 32])); 2],
            size: 5,
            user: AccountId([2; 32]),
            expires_ms: 9,
        },
    );
    let replace = ObjectOp::Keeper(KeeperOp::Replace {
        chunk: ChunkId([3; 32]),
        moves: vec![Move {
            index: 2,
            from: Some(AccountId([1; 32])),
            to: AccountId([2; 32]),
        }],
    });
    let tx: SignedTx = Signed::sign(
        &kp,
        &Tx::new(
            7,
            0,
            Call::Roles(RolesCall::RegisterProvider {
                stake: 10,
                capacity: 1 << 30,
                price: 1,
                address: "/ip4/127.0.0.1/tcp/1".into(),
            }),
        ),
    );
    let genesis = Genesis::new(7, Params::default(), [(kp.account(), 1_000)])
        .unwrap()
        .to_toml();
    let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::with_shards(2, 1)).unwrap();
    let (obj, chunks) = enc.encode_bytes(b"decoders never panic").unwrap();
    // The last chunk is the manifest's own.
    let manifest = Manifest {
        size: 20,
        chunk_size: CodecParams::default().chunk_size,
        chunks: chunks[..chunks.len() - 1]
            .iter()
            .map(|c| c.chunk.clone())
            .collect(),
    };
    vec![
        (
            "request",
            Request::PutShard {
                shard: ShardId([1; 32]),
                ticket: Some(ticket.clone()),
                bytes: Bytes::from_static(b"shard"),
            }
            .to_bytes(),
        ),
        (
            "request",
            Request::Place {
                chunks: vec![info()],
                exclude: vec![AccountId([9; 32])],
            }
            .to_bytes(),
        ),
        (
            "request",
            Request::ReportShards {
                reports: vec![ShardReport {
                    chunk: ChunkId([3; 32]),
                    index: 1,
                    holder: AccountId([1; 32]),
                }],
            }
            .to_bytes(),
        ),
        (
            "response",
            Response::Placed(vec![
                None,
                Some(Grant {
                    placement: ChunkPlacement {
                        chunk: ChunkId([1; 32]),
                        holders: vec![None, Some(AccountId([5; 32]))],
                    },
                    ticket,
                }),
            ])
            .to_bytes(),
        ),
        (
            "op",
            wire::encode(&Signed::sign(&kp, &OpEnvelope::new(put, 1, 5))),
        ),
        (
            "op",
            wire::encode(&Signed::sign(&kp, &OpEnvelope::new(replace, 2, 5))),
        ),
        ("tx", wire::encode(&tx)),
        ("genesis", genesis.into_bytes()),
        ("entry", ChunkEntry::unplaced(&info()).to_bytes()),
        ("account", Account { usage: 5, quota: 9 }.to_bytes()),
        ("manifest", manifest.to_bytes()),
        ("object_ref", obj.to_bytes()),
        ("key_file", kp.to_key_file().into_bytes()),
    ]
}

/// Runs every decoder on `bytes`; nothing may panic. Values that decode are used further
/// (verified, applied, re-encoded) the way a node would.
fn decode_all(bytes: &[u8]) {
    if let Ok(r) = Request::from_bytes(bytes) {
        assert_eq!(r.to_bytes(), bytes, "request encoding is canonical");
    }
    if let Ok(r) = Response::from_bytes(bytes) {
        assert_eq!(r.to_bytes(), bytes, "response encoding is canonical");
    }
    if let Ok(s) = wire::decode::<SignedOp>(bytes, MAX_OP_BYTES + 256, "operation") {
        let _ = s.verify();
        if let Ok(op) = s.open() {
            let mut o = Objects::new(MemoryMeta::new()).with_keepers([s.signer]);
            let _ = o.ensure_account(s.signer, 1 << 30);
            let _ = o.check(s.signer, &op, 1);
            let _ = o.apply_signed(s.signer, &op);
        }
    }
    if let Ok(tx) = wire::decode::<SignedTx>(bytes, 1 << 20, "transaction") {
        let _ = tx.verify();
        let _ = tx.open();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Genesis::from_toml(text);
        let _ = Keypair::from_key_file(text);
        let _ = text.parse::<ObjectRef>();
    }
    if let Ok(e) = ChunkEntry::from_bytes(bytes) {
        assert_eq!(e.to_bytes(), bytes);
        let _ = e.healthy_shards();
        let _ = memo_core::repair::plan(&e, 2, Default::default());
    }
    let _ = Account::from_bytes(bytes);
    let _ = refcount_from_bytes(bytes);
    let _ = Manifest::from_bytes(bytes);
    let _ = ObjectRef::from_bytes(bytes);
    let _ = ProofResponse::from_bytes(bytes);
    let _ = StorageProof::from_bytes(bytes);
    let _ = TreeCache::from_bytes(bytes, &ShardId([0; 32]));
}

#[test]
fn samples_decode() {
    for (what, bytes) in samples() {
        let ok = match what {
            "request" => Request::from_bytes(&bytes).is_ok(),
            "response" => Response::from_bytes(&bytes).is_ok(),
            "op" => wire::decode::<SignedOp>(&bytes, MAX_OP_BYTES + 256, "op")
                .is_ok_and(|s| s.open().is_ok()),
            "tx" => wire::decode::<SignedTx>(&bytes, 1 << 20, "tx").is_ok_and(|s| s.open().is_ok()),
            "genesis" => Genesis::from_toml(std::str::from_utf8(&bytes).unwrap()).is_ok(),
            "entry" => ChunkEntry::from_bytes(&bytes)
                .is_ok_and(|e| e.shards[0].health == ShardHealth::Healthy),
            "account" => Account::from_bytes(&bytes).is_ok(),
            "manifest" => Manifest::from_bytes(&bytes).is_ok(),
            "object_ref" => ObjectRef::from_bytes(&bytes).is_ok(),
            "key_file" => Keypair::from_key_file(std::str::from_utf8(&bytes).unwrap()).is_ok(),
            _ => false,
        };
        assert!(ok, "sample {what} does not decode");
        decode_all(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
        mode in 0u8..3,
    ) {
        let all = samples();
        let (_, mut bytes) = all[which.index(all.len())].clone();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        match mode {
            0 => bytes.truncate(cut.index(bytes.len() + 1)),
            1 => bytes.extend_from_slice(&tail),
            _ => {}
        }
        decode_all(&bytes);
    }
}

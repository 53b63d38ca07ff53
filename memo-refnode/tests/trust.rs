//! The trust attacks of issue #18 across processes: a stranger's client, in this process, on a
//! devnet of real node processes, replays, claims, poisons and squats; every attempt is
//! refused, and alice's data stays whole.

mod common;

use common::Devnet;
use memo_core::objects::{ObjectOp, OpEnvelope, SignedOp};
use memo_core::protocol::{ErrorCode, Request, Response};
use memo_core::testkit::random_bytes;
use memo_core::{AccountId, ShardId, Signed, wire};
use memo_sdk::config::{ClientFile, load_key};
use memo_sdk::replication::{DurableOpLog, OpLog};
use memo_sdk::testkit::assert_refused as refused;
use memo_sdk::transport::rpc::call;

#[test]
fn a_stranger_cannot_replay_claim_poison_or_squat_on_a_devnet() {
    let net = Devnet::start(6, 2);
    let data = random_bytes(1_500_000, 3);
    let file = net.dir.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();
    net.json("alice", &["put", file, "--name", "a"]);
    net.json("alice", &["put", file, "--name", "b"]);
    net.json("alice", &["rm", "b"]);
    // What a stranger could have got hold of: alice's signed operations. (The log is no longer
    // readable over the network; the test reads a copy of the sequencer's file.)
    let copy = net.dir.path().join("oplog-copy.redb");
    std::fs::copy(net.dir.path().join("nodes/keeper-0/oplog.redb"), &copy).unwrap();
    let alice_cfg = ClientFile::load(&net.user("alice")).unwrap();
    let alice = load_key(&alice_cfg.key_file).unwrap().account();
    let keeper1: AccountId = net.node("keeper-1")["account"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let provider0: AccountId = net.node("provider-0")["account"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mallory_key = net.dir.path().join("mallory.key");
    memo_sdk::config::load_or_create_key(&mallory_key).unwrap();
    net.user_with_key("mallory", &mallory_key);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = DurableOpLog::open(&copy).unwrap();
        let n = log.known_len().unwrap() as usize;
        let entries = memo_sdk::testkit::opened_entries(&log, n).await;
        let by_alice = |delete: bool| {
            entries
                .iter()
                .filter(|(s, e)| {
                    s.signer == alice
                        && matches!(
                            (&e.op, delete),
                            (ObjectOp::Put { .. }, false)
                                | (ObjectOp::Delete { .. } | ObjectOp::DeleteNamed { .. }, true)
                        )
                })
                .map(|(s, e)| (s.clone(), e.clone()))
                .next_back()
                .unwrap()
        };
        let (delete, _) = by_alice(true);
        let (_, put) = by_alice(false);
        let mallory = ClientFile::load(&net.user("mallory"))
            .unwrap()
            .connect(|_| {})
            .await
            .unwrap();
        let t = mallory.transport().clone();
        let submit = |op: &SignedOp| Request::Submit {
            tx: wire::encode(op),
        };
        // Replay: alice's delete through the other keeper.
        refused(
            call(t.as_ref(), keeper1, &submit(&delete)).await,
            ErrorCode::Refused,
            "replayed",
        );
        // Claim: alice's put (her second, with her proofs of possession) re-signed by mallory:
        // the proofs were made under alice's key and nonce.
        let key = load_key(&mallory_key).unwrap();
        let now = memo_sdk::Env::real().unix_ms();
        let claim = Signed::sign(&key, &OpEnvelope::new(put.op.clone(), 1, now + 60_000));
        refused(
            call(t.as_ref(), keeper1, &submit(&claim)).await,
            ErrorCode::Refused,
            "proof of possession",
        );
        // Poisoning: new chunks registered with placements and no receipts.
        let ObjectOp::Put { mut chunks, .. } = put.op.clone() else {
            unreachable!()
        };
        for c in &mut chunks {
            c.id.0[0] ^= 0xff;
        }
        let object = memo_core::ObjectId(chunks.last().unwrap().id.0);
        let Ok(Response::Placed(grants)) = call(
            t.as_ref(),
            keeper1,
            &Request::Place {
                chunks: chunks.clone(),
                exclude: vec![],
            },
        )
        .await
        else {
            panic!("placed")
        };
        let poison = ObjectOp::Put {
            object,
            size: 1,
            needed: 4,
            sealed: vec![],
            chunks,
            placements: grants.into_iter().flatten().map(|g| g.placement).collect(),
            receipts: vec![],
            possession: vec![],
        };
        let poison = Signed::sign(&key, &OpEnvelope::new(poison, 2, now + 60_000));
        refused(
            call(t.as_ref(), keeper1, &submit(&poison)).await,
            ErrorCode::Refused,
            "has no receipt",
        );
        // Squatting: a shard on a provider without a ticket.
        let bytes = bytes::Bytes::from(random_bytes(100_000, 4));
        let squat = Request::PutShard {
            shard: ShardId::of(&bytes),
            ticket: None,
            bytes,
        };
        refused(
            call(t.as_ref(), provider0, &squat).await,
            ErrorCode::Forbidden,
            "ticket",
        );
    });
    // Alice still holds her reference and reads her file; the stranger owns nothing.
    assert_eq!(net.json("alice", &["stat", "a"])["refs"].as_u64(), Some(1));
    assert_eq!(net.get("alice", "a"), data);
    let listed = net.json("mallory", &["ls"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

//! Adversarial tests for the trust rules (issue #18): a stranger with a fresh key, written at
//! the protocol level, tries to destroy, claim or squat on other users' data. Each attack is
//! refused with a typed error, changes nothing, and leaves nothing in the op log.

use bytes::Bytes;
use memo_core::codec::{ConvergenceDomain, Encoder};
use memo_core::objects::{ObjectOp, OpEnvelope, SignedOp};
use memo_core::ownership::{ChunkInfo, MemoryShardStore, ShardStore};
use memo_core::protocol::{ErrorCode, Request, Response};
use memo_core::ticket::{Possession, Receipt, Ticket};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair, ShardId, Signed, wire};
use memo_sdk::local::{LocalNetwork, LocalSpec, memory_network};
use memo_sdk::testkit::assert_refused as refused;
use memo_sdk::transport::rpc::{RpcError, call};

mod common;
use common::spec;

use memo_core::testkit::random_bytes as data;

type Net = LocalNetwork<MemoryShardStore>;

/// The op log's entries, opened.
async fn entries(net: &Net) -> Vec<(SignedOp, OpEnvelope)> {
    memo_sdk::testkit::opened_entries(&net.log, net.log.len() as usize).await
}

/// How many entries in the op log users signed. Keepers append operations of their own in the
/// background (health, repair), so a refusal's trace is counted among users' entries.
async fn user_entries(net: &Net) -> usize {
    let keepers: Vec<AccountId> = net.keepers.iter().map(|k| k.account()).collect();
    entries(net)
        .await
        .iter()
        .filter(|(s, _)| !keepers.contains(&s.signer))
        .count()
}

/// The last entry signed by `who` whose operation `pick` accepts.
async fn last_by(net: &Net, who: AccountId, pick: fn(&ObjectOp) -> bool) -> SignedOp {
    entries(net)
        .await
        .into_iter()
        .rev()
        .find(|(s, e)| s.signer == who && pick(&e.op))
        .map(|(s, _)| s)
        .expect("the operation is in the log")
}

fn is_put(op: &ObjectOp) -> bool {
    matches!(op, ObjectOp::Put { .. })
}

fn is_delete(op: &ObjectOp) -> bool {
    matches!(op, ObjectOp::Delete { .. } | ObjectOp::DeleteNamed { .. })
}

/// A stranger on the network.
struct Stranger {
    key: Keypair,
    t: Box<dyn Transport>,
}

impl Stranger {
    fn join(mem: &MemoryNetwork, name: &str) -> Self {
        let key = Keypair::from_seed(name);
        Self {
            t: Box::new(mem.join(key.account())),
            key,
        }
    }

    async fn call(&self, to: AccountId, req: &Request) -> Result<Response, RpcError> {
        call(self.t.as_ref(), to, req).await
    }

    /// Submits a signed operation to `keeper`.
    async fn submit(&self, keeper: AccountId, op: &SignedOp) -> Result<Response, RpcError> {
        self.call(
            keeper,
            &Request::Submit {
                tx: wire::encode(op),
            },
        )
        .await
    }

    /// Signs `op` as the stranger, valid for a minute.
    fn sign(&self, op: ObjectOp, nonce: u64) -> SignedOp {
        let now = memo_sdk::Env::real().unix_ms();
        Signed::sign(&self.key, &OpEnvelope::new(op, nonce, now + 60_000))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_operations_are_refused_and_leave_no_trace() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let alice = net.user("alice").unwrap();
    let mallory = Stranger::join(&mem, "mallory");
    let keeper = net.keepers[1].account();
    let x = data(200_000, 1);
    alice.put_bytes("a.bin", &x).await.unwrap();
    alice.put_bytes("b.bin", &x).await.unwrap();
    alice.delete("b.bin").await.unwrap();
    let delete = last_by(&net, alice.account(), is_delete).await;
    let put = last_by(&net, alice.account(), is_put).await;
    let len = user_entries(&net).await;
    // Her delete, replayed through another keeper by anyone, is refused: her last reference
    // stays and the object reads back.
    refused(
        mallory.submit(keeper, &delete).await,
        ErrorCode::Refused,
        "replayed",
    );
    assert_eq!(alice.stat("a.bin").await.unwrap().object.refs, 1);
    assert_eq!(alice.get_bytes("a.bin").await.unwrap(), x);
    // Her last delete purges; replaying her old put afterwards brings back no ghost.
    alice.delete("a.bin").await.unwrap();
    let purge = last_by(&net, alice.account(), is_delete).await;
    let len_after_purge = user_entries(&net).await;
    refused(
        mallory.submit(keeper, &put).await,
        ErrorCode::Refused,
        "replayed",
    );
    assert!(alice.list().await.unwrap().is_empty(), "no ghost object");
    // She stores it again; replaying either older delete does not touch the new copy.
    alice.put_bytes("c.bin", &x).await.unwrap();
    let len_after_reput = user_entries(&net).await;
    for old in [&delete, &purge] {
        refused(
            mallory.submit(keeper, old).await,
            ErrorCode::Refused,
            "replayed",
        );
    }
    assert_eq!(alice.get_bytes("c.bin").await.unwrap(), x);
    assert_eq!(
        user_entries(&net).await,
        len_after_reput,
        "refusals leave no trace"
    );
    assert_eq!(len_after_purge, len + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_outside_their_window_and_forged_keeper_operations_are_refused() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let alice = net.user("alice").unwrap();
    let x = data(100_000, 2);
    let stored = alice.put_bytes("x.bin", &x).await.unwrap();
    let len = user_entries(&net).await;
    let keeper = net.keepers[0].account();
    let me = Stranger {
        key: Keypair::from_seed("user-alice"),
        t: Box::new(mem.join(Keypair::from_seed("alice-2nd-device").account())),
    };
    assert_eq!(me.key.account(), alice.account());
    let now = memo_sdk::Env::real().unix_ms();
    let delete = ObjectOp::Delete { object: stored.id };
    for expires in [now - 1, now + 3_600_000] {
        let op = Signed::sign(&me.key, &OpEnvelope::new(delete.clone(), 5, expires));
        refused(me.submit(keeper, &op).await, ErrorCode::Refused, "window");
    }
    // A keeper operation signed by a user: refused before it reaches the log.
    let mallory = Stranger::join(&mem, "mallory");
    let forged = mallory.sign(
        ObjectOp::Keeper(memo_core::repair::KeeperOp::ProviderHealth {
            provider: net.providers[0].account(),
            health: memo_core::ownership::ShardHealth::Lost,
            reason: memo_core::repair::Reason::Unresponsive,
        }),
        1,
    );
    refused(
        mallory.submit(keeper, &forged).await,
        ErrorCode::Forbidden,
        "not a keeper",
    );
    // Nor may a stranger append to or read the op log directly. (In one process the keepers
    // share the log and serve no log requests at all; between processes the log service
    // refuses non-keepers: `only_keepers_may_append_to_or_read_the_log` in replication.rs.)
    let append = Request::OpAppend {
        op: wire::encode(&forged),
    };
    let read = Request::OpRead {
        from: 0,
        max: 10,
        wait_ms: 0,
    };
    for req in [append, read] {
        refused(
            mallory.call(keeper, &req).await,
            ErrorCode::BadRequest,
            "does not serve",
        );
    }
    assert_eq!(user_entries(&net).await, len, "refusals leave no trace");
    assert_eq!(alice.get_bytes("x.bin").await.unwrap(), x);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_becomes_an_owner_without_the_data() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let bob = net.user("bob").unwrap();
    let carol = net.user("carol").unwrap();
    let mallory = Stranger::join(&mem, "mallory");
    let keeper = net.keepers[2].account();
    let y = data(300_000, 3);
    bob.put_bytes("y.bin", &y).await.unwrap();
    let put = last_by(&net, bob.account(), is_put).await.open().unwrap();
    let len = user_entries(&net).await;
    // Bob's put re-signed under mallory's key: his receipts name him, and his chunks are
    // stored, so she must prove she holds them. She cannot.
    refused(
        mallory
            .submit(keeper, &mallory.sign(put.op.clone(), 7))
            .await,
        ErrorCode::Refused,
        "show you hold",
    );
    // Proofs copied from nowhere (or from another operation) are wrong.
    let ObjectOp::Put {
        object,
        size,
        needed,
        chunks,
        ..
    } = put.op.clone()
    else {
        unreachable!()
    };
    let guessed: Vec<Possession> = chunks
        .iter()
        .map(|c| Possession {
            chunk: c.id,
            proofs: vec![[0; 32]; c.shards.len()],
        })
        .collect();
    let claim = ObjectOp::Put {
        object,
        size,
        needed,
        sealed: vec![],
        chunks: chunks.clone(),
        placements: vec![],
        receipts: vec![],
        possession: guessed,
    };
    refused(
        mallory.submit(keeper, &mallory.sign(claim, 8)).await,
        ErrorCode::Refused,
        "is wrong",
    );
    assert_eq!(user_entries(&net).await, len, "refusals leave no trace");
    let owners = net.keepers[0].inspect(|o| o.ownership().owners(&chunks[0].id).unwrap());
    assert_eq!(owners, vec![(bob.account(), 1)]);
    // Carol, who has the bytes, becomes a second owner with no data moved.
    let held: usize = net
        .providers
        .iter()
        .map(|p| p.service.store().shard_count().unwrap() as usize)
        .sum();
    let second = carol.put_bytes("mine.bin", &y).await.unwrap();
    assert_eq!((second.id, second.uploaded_chunks), (object, 0));
    assert_eq!(carol.get_bytes("mine.bin").await.unwrap(), y);
    let now_held: usize = net
        .providers
        .iter()
        .map(|p| p.service.store().shard_count().unwrap() as usize)
        .sum();
    assert_eq!(now_held, held);
    // A share handle is a read capability: storing it as one's own proves possession too.
    let copy = carol
        .put_existing("copy.bin", &second.object_ref.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(copy.uploaded_chunks, 0);
    assert_eq!(carol.stat("mine.bin").await.unwrap().object.refs, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_cannot_be_poisoned_with_shards_nobody_holds() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let alice = net.user("alice").unwrap();
    let mallory = Stranger::join(&mem, "mallory");
    let keeper = net.keepers[0].account();
    // A file everybody knows: its chunk ids are computable with convergent encryption.
    let z = data(250_000, 4);
    let enc = Encoder::new(ConvergenceDomain::global(), spec().params).unwrap();
    let (obj, encoded) = enc.encode_bytes(&z).unwrap();
    let chunks: Vec<ChunkInfo> = encoded.iter().map(|c| ChunkInfo::from(&c.chunk)).collect();
    // She asks for a placement (and gets tickets) but uploads nothing.
    let Response::Placed(grants) = mallory
        .call(
            keeper,
            &Request::Place {
                chunks: chunks.clone(),
                exclude: vec![],
            },
        )
        .await
        .unwrap()
    else {
        panic!("placed")
    };
    let placements: Vec<_> = grants.into_iter().flatten().map(|g| g.placement).collect();
    assert_eq!(placements.len(), chunks.len());
    let put = |receipts: Vec<Signed<Receipt>>| ObjectOp::Put {
        object: obj.id(),
        size: z.len() as u64,
        needed: 4,
        sealed: vec![],
        chunks: chunks.clone(),
        placements: placements.clone(),
        receipts,
        possession: vec![],
    };
    let len = user_entries(&net).await;
    refused(
        mallory.submit(keeper, &mallory.sign(put(vec![]), 1)).await,
        ErrorCode::Refused,
        "has no receipt",
    );
    // Receipts she signed herself are not the holders'.
    let forged: Vec<Signed<Receipt>> = chunks
        .iter()
        .flat_map(|c| c.shards.iter())
        .map(|s| {
            Signed::sign(
                &mallory.key,
                &Receipt {
                    shard: *s,
                    size: 1,
                    user: mallory.key.account(),
                    expires_ms: u64::MAX,
                },
            )
        })
        .collect();
    refused(
        mallory.submit(keeper, &mallory.sign(put(forged), 2)).await,
        ErrorCode::Refused,
        "has no receipt",
    );
    assert_eq!(user_entries(&net).await, len, "refusals leave no trace");
    // Alice's put of the file stores every chunk, and she reads it back.
    let report = alice.put_bytes("z.bin", &z).await.unwrap();
    assert_eq!(report.uploaded_chunks, report.chunks);
    assert_eq!(alice.get_bytes("z.bin").await.unwrap(), z);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_take_no_shard_without_a_valid_ticket() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let mallory = Stranger::join(&mem, "mallory");
    let (p0, p1) = (net.providers[0].account(), net.providers[1].account());
    let bytes = Bytes::from(data(100_000, 5));
    let shard = ShardId::of(&bytes);
    let now = memo_sdk::Env::real().unix_ms();
    let ticket = |signer: &Keypair, provider: AccountId, expires_ms: u64| {
        Some(Signed::sign(
            signer,
            &Ticket {
                chunk: memo_core::ChunkId([1; 32]),
                shards: vec![(shard, provider)],
                size: bytes.len() as u64,
                user: mallory.key.account(),
                expires_ms,
            },
        ))
    };
    let keeper = Keypair::from_seed("keeper-0");
    for (t, why) in [
        (None, "ticket"),
        (ticket(&mallory.key, p0, now + 60_000), "not a keeper"),
        (ticket(&keeper, p1, now + 60_000), "another provider"),
        (ticket(&keeper, p0, now - 1), "expired"),
    ] {
        let req = Request::PutShard {
            shard,
            ticket: t,
            bytes: bytes.clone(),
        };
        refused(mallory.call(p0, &req).await, ErrorCode::Forbidden, why);
    }
    assert_eq!(net.providers[0].service.store().shard_count().unwrap(), 0);
    // The keepers-only requests stay keepers-only.
    let ask = Request::ProvePossession {
        shards: vec![(shard, [1; 32])],
    };
    refused(
        mallory.call(p0, &ask).await,
        ErrorCode::Forbidden,
        "keepers",
    );
}

/// Shards uploaded under tickets that no put used (a client that died, or never meant to
/// register them) are deleted by their providers soon after the tickets expire; registered
/// shards stay. On virtual time: the minutes pass at once.
#[test]
fn shards_whose_tickets_expire_unused_are_reclaimed() {
    let rt = common::virtual_runtime();
    rt.block_on(async {
        let env = memo_sdk::Env::simulated(18);
        let spec = LocalSpec {
            env: env.clone(),
            ..spec()
        };
        let (mem, net) = memory_network(&spec).await.unwrap();
        let alice = net.user("alice").unwrap();
        let x = data(150_000, 6);
        alice.put_bytes("kept.bin", &x).await.unwrap();
        let held = |net: &Net| -> u64 {
            net.providers
                .iter()
                .map(|p| p.service.store().shard_count().unwrap())
                .sum()
        };
        let registered = held(&net);
        // Mallory places a file and uploads every shard under its tickets, then never puts.
        let mallory = Stranger::join(&mem, "mallory");
        let enc = Encoder::new(ConvergenceDomain::global(), spec.params).unwrap();
        let (_, encoded) = enc.encode_bytes(&data(120_000, 7)).unwrap();
        let chunks: Vec<ChunkInfo> = encoded.iter().map(|c| ChunkInfo::from(&c.chunk)).collect();
        let Response::Placed(grants) = mallory
            .call(
                net.keepers[0].account(),
                &Request::Place {
                    chunks,
                    exclude: vec![],
                },
            )
            .await
            .unwrap()
        else {
            panic!("placed")
        };
        let mut uploaded = 0;
        for (grant, chunk) in grants.into_iter().zip(&encoded) {
            let grant = grant.expect("a new chunk");
            for (holder, (id, bytes)) in grant
                .placement
                .holders
                .iter()
                .zip(chunk.chunk.shards.iter().zip(&chunk.shards))
            {
                let req = Request::PutShard {
                    shard: *id,
                    ticket: Some(grant.ticket.clone()),
                    bytes: bytes.clone(),
                };
                let r = mallory.call(holder.unwrap(), &req).await.unwrap();
                assert!(matches!(
                    r,
                    Response::Stored {
                        new: true,
                        receipt: Some(_)
                    }
                ));
                uploaded += 1;
            }
        }
        assert_eq!(held(&net), registered + uploaded);
        // Past the ticket's life, the grace and a reclaim round: only registered shards remain.
        let wait = std::time::Duration::from_millis(memo_core::ticket::TICKET_TTL_MS)
            + memo_sdk::provider::RECLAIM_GRACE
            + 2 * memo_sdk::provider::RECLAIM_EVERY;
        env.sleep(wait).await;
        assert_eq!(held(&net), registered);
        assert!(
            net.providers
                .iter()
                .all(|p| p.service.pending_tickets() == 0)
        );
        assert_eq!(alice.get_bytes("kept.bin").await.unwrap(), x);
    });
}

/// An uploader takes back its own unregistered uploads at once, but never a shard another
/// uploader still holds a ticket for, nor anyone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_deletes_only_what_nobody_else_uploaded_or_registered() {
    let (mem, net) = memory_network(&spec()).await.unwrap();
    let p0 = net.providers[0].account();
    let (ann, ben) = (Stranger::join(&mem, "ann"), Stranger::join(&mem, "ben"));
    let bytes = Bytes::from(data(50_000, 8));
    let shard = ShardId::of(&bytes);
    let keeper = Keypair::from_seed("keeper-0");
    let now = memo_sdk::Env::real().unix_ms();
    let put = |user: &Stranger| Request::PutShard {
        shard,
        ticket: Some(Signed::sign(
            &keeper,
            &Ticket {
                chunk: memo_core::ChunkId([2; 32]),
                shards: vec![(shard, p0)],
                size: bytes.len() as u64,
                user: user.key.account(),
                expires_ms: now + 60_000,
            },
        )),
        bytes: bytes.clone(),
    };
    let withdraw = Request::Withdraw {
        shards: vec![shard],
    };
    let has = || net.providers[0].service.store().has(&shard).unwrap();
    ann.call(p0, &put(&ann)).await.unwrap();
    ben.call(p0, &put(&ben)).await.unwrap();
    // A stranger's withdrawal, and ann's while ben still holds a ticket, delete nothing.
    let mallory = Stranger::join(&mem, "mallory");
    for who in [&mallory, &ann] {
        assert_eq!(who.call(p0, &withdraw).await.unwrap(), Response::Deleted(0));
        assert!(has());
    }
    // The last uploader's withdrawal deletes it (no put registered it).
    assert_eq!(ben.call(p0, &withdraw).await.unwrap(), Response::Deleted(1));
    assert!(!has());
    assert_eq!(net.providers[0].service.pending_tickets(), 0);
}

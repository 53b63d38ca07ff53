//! The shard lane: requests on it count as the account that opened it, shard bytes make the
//! round trip, connections are reused, and a stranger, a replayed ticket, an altered frame or
//! an oversize frame gets nothing. Clients fall back to the transport when a provider has no
//! lane or the lane fails.

use bytes::Bytes;
use memo_core::protocol::{LaneSecret, Request, Response};
use memo_core::transport::{MemoryNetwork, Transport};
use memo_core::{AccountId, Keypair, ShardId};
use memo_sdk::node::{Service, serve};
use memo_sdk::provider::Provider;
use memo_sdk::store::FsShardStore;
use memo_sdk::transport::lane::{LaneServer, Lanes, MAGIC};
use memo_sdk::transport::rpc::call;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A service that records who asked what and answers every shard request.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(AccountId, &'static str)>>,
}

/// What the recorder answers a shard put.
const STORED: Response = Response::Stored {
    new: true,
    receipt: None,
};

#[async_trait::async_trait]
impl Service for Recorder {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        let kind = req.kind();
        self.seen.lock().unwrap().push((from, kind));
        match req {
            Request::PutShard { .. } => Some(STORED),
            Request::GetShard { .. } => Some(Response::Shard(Some(Bytes::from_static(b"xyz")))),
            _ => None,
        }
    }
}

impl Recorder {
    /// The kinds of request seen, in order.
    fn kinds(&self) -> Vec<&'static str> {
        self.seen.lock().unwrap().iter().map(|s| s.1).collect()
    }
}

struct Net {
    client: Arc<dyn Transport>,
    provider: AccountId,
}

/// Whether the provider of [`recorded`] has a lane, and what address it gives clients.
enum Lane {
    No,
    Own,
    Advertise(&'static str),
}

/// A provider that serves a [`Recorder`], with or without a lane for it.
async fn recorded(lane: Lane) -> (Arc<Recorder>, Option<Arc<LaneServer>>, Net) {
    let rec = Arc::new(Recorder::default());
    let mut services: Vec<Arc<dyn Service>> = vec![rec.clone()];
    let advertise = match lane {
        Lane::No => return (rec, None, net(services)),
        Lane::Own => None,
        Lane::Advertise(a) => Some(a.to_string()),
    };
    let l = LaneServer::start(memo_sdk::Env::real(), "127.0.0.1:0", advertise, rec.clone())
        .await
        .unwrap();
    services.push(l.clone());
    (rec, Some(l), net(services))
}

/// A client and a provider on an in-memory network; the provider serves `services`.
fn net(services: Vec<Arc<dyn Service>>) -> Net {
    let network = MemoryNetwork::new();
    let provider = Keypair::from_seed("lane-provider").account();
    let client = Keypair::from_seed("lane-client").account();
    let p: Arc<dyn Transport> = Arc::new(network.join(provider));
    tokio::spawn(serve(p, services));
    Net {
        client: Arc::new(network.join(client)),
        provider,
    }
}

fn lanes_for(n: &Net) -> Arc<Lanes> {
    Lanes::new(
        memo_sdk::Env::real(),
        n.client.clone(),
        Duration::from_secs(10),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_travel_on_the_lane_as_the_opener_and_connections_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let network = MemoryNetwork::new();
    let (pk, ck) = (Keypair::from_seed("lane-p"), Keypair::from_seed("lane-c"));
    let pt: Arc<dyn Transport> = Arc::new(network.join(pk.account()));
    let store = FsShardStore::open(dir.path()).unwrap();
    // The provider takes a user's shard only with a keeper's ticket, on the lane too.
    let keeper = Keypair::from_seed("lane-k");
    let provider = Provider::new(
        memo_sdk::Env::real(),
        pk.clone(),
        pt.clone(),
        store,
        1 << 30,
        [keeper.account()],
    );
    let lane = LaneServer::start(memo_sdk::Env::real(), "127.0.0.1:0", None, provider.clone())
        .await
        .unwrap();
    tokio::spawn(serve(pt, vec![provider.clone(), lane.clone()]));
    let client: Arc<dyn Transport> = Arc::new(network.join(ck.account()));
    let lanes = Lanes::new(memo_sdk::Env::real(), client, Duration::from_secs(10));
    // A shard of 3 MiB: many TCP segments, one frame.
    let bytes = Bytes::from(memo_core::testkit::random_bytes(3 << 20, 7));
    let shard = ShardId::of(&bytes);
    let ticket = memo_core::Signed::sign(
        &keeper,
        &memo_core::ticket::Ticket {
            chunk: memo_core::ChunkId([1; 32]),
            shards: vec![(shard, pk.account())],
            size: bytes.len() as u64,
            user: ck.account(),
            expires_ms: u64::MAX,
        },
    );
    let put = Request::PutShard {
        shard,
        ticket: Some(ticket.clone()),
        bytes: bytes.clone(),
    };
    for new in [true, false] {
        match lanes.call(pk.account(), &put).await.unwrap() {
            Response::Stored {
                new: n,
                receipt: Some(r),
            } => {
                assert_eq!(n, new);
                assert_eq!(
                    r.open().unwrap().user,
                    ck.account(),
                    "a receipt for the opener"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let got = lanes
        .call(pk.account(), &Request::GetShard { shard })
        .await
        .unwrap();
    assert_eq!(got, Response::Shard(Some(bytes)));
    // Three calls in a row went over one connection, and its ticket was used up.
    assert_eq!(lanes.idle_connections(&pk.account()), 1);
    assert_eq!(lane.pending_tickets(), 0);
    // A shard that does not hash to its id is refused on the lane as on the transport.
    let bad = Request::PutShard {
        shard,
        ticket: None,
        bytes: Bytes::from_static(b"not the shard"),
    };
    let err = lanes.call(pk.account(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("ticket"), "{err}");
    let bad = Request::PutShard {
        shard,
        ticket: Some(ticket),
        bytes: Bytes::from_static(b"not the shard"),
    };
    let err = lanes.call(pk.account(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_shard_requests_use_the_lane_and_they_count_as_the_client() {
    let (rec, _lane, n) = recorded(Lane::Own).await;
    let lanes = lanes_for(&n);
    let me = n.client.local_id();
    let shard = ShardId::of(b"s");
    let got = lanes
        .call(n.provider, &Request::GetShard { shard })
        .await
        .unwrap();
    assert_eq!(got, Response::Shard(Some(Bytes::from_static(b"xyz"))));
    // ProviderStatus is not a lane request: it goes over the transport (the recorder does
    // not serve it, so the node refuses it there).
    assert!(
        lanes
            .call(n.provider, &Request::ProviderStatus)
            .await
            .is_err()
    );
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(me, "OpenLane"), (me, "GetShard"), (me, "ProviderStatus")]
    );
    assert_eq!(lanes.idle_connections(&n.provider), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lane_or_when_it_fails_requests_go_over_the_transport() {
    // No lane at all: OpenLane is refused, the put still succeeds, and later calls do not
    // ask again.
    let (rec, _, n) = recorded(Lane::No).await;
    let lanes = lanes_for(&n);
    let put = Request::PutShard {
        shard: ShardId::of(b"a"),
        ticket: None,
        bytes: Bytes::from_static(b"a"),
    };
    for _ in 0..2 {
        assert_eq!(lanes.call(n.provider, &put).await.unwrap(), STORED);
    }
    assert_eq!(rec.kinds(), vec!["OpenLane", "PutShard", "PutShard"]);
    assert_eq!(lanes.idle_connections(&n.provider), 0);

    // A lane that cannot be reached (it advertises a port nobody listens on): every request
    // goes over the transport after its connect fails.
    let (rec, _lane, n) = recorded(Lane::Advertise("127.0.0.1:1")).await;
    let lanes = lanes_for(&n);
    assert_eq!(lanes.call(n.provider, &put).await.unwrap(), STORED);
    assert_eq!(rec.kinds(), vec!["OpenLane", "PutShard"]);
    assert_eq!(lanes.idle_connections(&n.provider), 0);
}

/// Opens a ticket by hand: the secret, the lane address and the ticket.
async fn ticket(n: &Net) -> ([u8; 32], String, [u8; 16]) {
    let secret = [9u8; 32];
    match call(
        n.client.as_ref(),
        n.provider,
        &Request::OpenLane {
            secret: LaneSecret(secret),
        },
    )
    .await
    .unwrap()
    {
        Response::Lane { address, ticket } => (secret, address, ticket),
        other => panic!("{other:?}"),
    }
}

async fn hello(address: &str, ticket: &[u8; 16]) -> TcpStream {
    let mut s = TcpStream::connect(address).await.unwrap();
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(ticket);
    s.write_all(&h).await.unwrap();
    s
}

/// A frame sealed as the spec in `memo_sdk::transport::lane` says, counter `n`, client to provider.
fn frame(secret: &[u8; 32], n: u64, plain: &[u8]) -> Vec<u8> {
    let raw = blake3::derive_key("memo shard lane v1: client to provider", secret);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap());
    let header = ((plain.len() + 16) as u32).to_be_bytes();
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(header),
        &mut body,
    )
    .unwrap();
    let mut out = header.to_vec();
    out.extend_from_slice(&body);
    out
}

/// True if the provider closes `s` without sending anything.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_replays_altered_and_oversize_frames_get_nothing() {
    let (rec, lane, n) = recorded(Lane::Own).await;
    let lane = lane.unwrap();
    let get = Request::GetShard {
        shard: ShardId::of(b"s"),
    }
    .to_bytes();

    // A made-up ticket.
    let mut s = hello(lane.address(), &[1u8; 16]).await;
    s.write_all(&frame(&[9u8; 32], 0, &get)).await.unwrap();
    assert!(closed(&mut s).await);

    // A genuine ticket and frame are answered; the same ticket a second time is not.
    let (secret, address, t) = ticket(&n).await;
    let mut s = hello(&address, &t).await;
    s.write_all(&frame(&secret, 0, &get)).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    assert!(u32::from_be_bytes(len) > 16);
    let mut again = hello(&address, &t).await;
    again.write_all(&frame(&secret, 0, &get)).await.unwrap();
    assert!(closed(&mut again).await);

    // A frame replayed on its own connection (counter 0 again) ends it.
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut rest).await.unwrap();
    s.write_all(&frame(&secret, 0, &get)).await.unwrap();
    assert!(closed(&mut s).await);

    // One flipped bit ends the connection unanswered.
    let (secret, address, t) = ticket(&n).await;
    let mut s = hello(&address, &t).await;
    let mut f = frame(&secret, 0, &get);
    let last = f.len() - 20;
    f[last] ^= 1;
    s.write_all(&f).await.unwrap();
    assert!(closed(&mut s).await);

    // A length over the limit is refused before the body is read.
    let (_, address, t) = ticket(&n).await;
    let mut s = hello(&address, &t).await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);

    // The service only ever saw the genuine request (and the tickets).
    assert_eq!(
        rec.kinds(),
        vec!["OpenLane", "GetShard", "OpenLane", "OpenLane"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_lane_needs_an_advertised_address() {
    let rec: Arc<dyn Service> = Arc::new(Recorder::default());
    let err = LaneServer::start(memo_sdk::Env::real(), "0.0.0.0:0", None, rec.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("give an address"), "{err}");
    let lane = LaneServer::start(
        memo_sdk::Env::real(),
        "0.0.0.0:0",
        Some("127.0.0.1:9".into()),
        rec,
    )
    .await
    .unwrap();
    assert_eq!(lane.address(), "127.0.0.1:9");
}

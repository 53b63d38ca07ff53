//! Bounded resources per peer (issue #18, part 5): a flooding peer is refused beyond its caps,
//! on the p2p transport and on a shard lane, while known peers and other strangers still get
//! through; every permit is released once its request is answered, dropped, timed out or
//! abandoned by its sender, so the node's accounting returns to zero.
//!
//! The server holds the requests it admits until the test lets them go, so what is in flight
//! is decided by the test, not by timing.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use memo_core::protocol::{ErrorCode, LaneSecret, Request, Response};
use memo_core::transport::{MemoryNetwork, Transport, TransportError};
use memo_core::{AccountId, Keypair, ShardId};
use memo_sdk::node::{Service, serve};
use memo_sdk::transport::lane::{LaneServer, Lanes};
use memo_sdk::transport::limits::{Limits, Usage};
use memo_sdk::transport::p2p::{P2pConfig, P2pTransport};
use memo_sdk::transport::rpc::{RpcError, call};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const MIB: usize = 1024 * 1024;

async fn node(label: &str, limits: Limits, request_timeout: Duration) -> P2pTransport {
    let config = P2pConfig {
        request_timeout,
        dial_timeout: Duration::from_secs(10),
        limits,
        ..P2pConfig::default()
    };
    P2pTransport::start_with(&Keypair::from_seed(label), config)
        .await
        .unwrap()
}

/// Tells `a` where `b` listens (which also makes `b` a known peer of `a`).
fn introduce(a: &P2pTransport, b: &P2pTransport) {
    a.try_add_address(b.local_id(), &b.listen_addrs()[0].to_string())
        .unwrap();
}

/// Serves requests: `h...` is held until `release` turns true (each arrival is reported on
/// `arrived`), then answered `held`; `d` is dropped unanswered; anything else is answered with
/// its length.
fn serve_holding(
    t: &P2pTransport,
    release: watch::Receiver<bool>,
    arrived: mpsc::UnboundedSender<()>,
) {
    let t = t.clone();
    tokio::spawn(async move {
        while let Some(inc) = t.next_incoming().await {
            let mut release = release.clone();
            let arrived = arrived.clone();
            tokio::spawn(async move {
                match inc.body.first() {
                    Some(b'h') => {
                        let _ = arrived.send(());
                        let _ = release.wait_for(|go| *go).await;
                        let _ = inc.reply.send(Bytes::from_static(b"held"));
                    }
                    Some(b'd') => drop(inc.reply),
                    _ => {
                        let len = inc.body.len().to_string();
                        let _ = inc.reply.send(Bytes::from(len.into_bytes()));
                    }
                }
            });
        }
    });
}

/// A server with `limits` that holds requests as [`serve_holding`] does; with the switch that
/// releases them and the reports of their arrivals.
async fn holding_server(
    label: &str,
    limits: Limits,
    request_timeout: Duration,
) -> (
    P2pTransport,
    watch::Sender<bool>,
    mpsc::UnboundedReceiver<()>,
) {
    let server = node(label, limits, request_timeout).await;
    let (release, released) = watch::channel(false);
    let (arrived, arrivals) = mpsc::unbounded_channel();
    serve_holding(&server, released, arrived);
    (server, release, arrivals)
}

/// A client with default settings that knows where `server` listens.
async fn client_of(label: &str, server: &P2pTransport) -> P2pTransport {
    let client = node(label, Limits::default(), Duration::from_secs(20)).await;
    introduce(&client, server);
    client
}

/// A request of `len` bytes starting with `tag`.
fn body(tag: u8, len: usize) -> Bytes {
    let mut b = vec![0u8; len];
    b[0] = tag;
    Bytes::from(b)
}

/// The refusal inside a response, if it is one: an `Unavailable` error's message.
fn refusal(response: &[u8]) -> Option<String> {
    match Response::from_shared(&Bytes::copy_from_slice(response)) {
        Ok(Response::Error(e)) if e.code == ErrorCode::Unavailable => Some(e.message),
        _ => None,
    }
}

fn small_limits() -> Limits {
    Limits {
        peer_bytes: 64 * MIB,
        peer_requests: 64,
        stranger_bytes: 4 * MIB,
        stranger_requests: 8,
        strangers_bytes: 6 * MIB,
        total_bytes: 12 * MIB,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_stranger_is_refused_beyond_its_cap_while_others_get_through() {
    let (server, release, _arrivals) = holding_server(
        "limits-flood-server",
        small_limits(),
        Duration::from_secs(20),
    )
    .await;
    let flooder = client_of("limits-flood-flooder", &server).await;
    let honest = client_of("limits-flood-honest", &server).await;
    let other = client_of("limits-flood-other", &server).await;
    let sid = server.local_id();
    // The server knows `honest` (a keeper or provider, say); the other two are strangers.
    server.limiter().know(honest.local_id());

    // Ten held requests of 1 MiB at once: four fit the flooder's 4 MiB, six are refused.
    let mut flood: FuturesUnordered<_> = (0..10)
        .map(|_| {
            let f = flooder.clone();
            tokio::spawn(async move { f.request(sid, body(b'h', MIB)).await })
        })
        .collect();
    for _ in 0..6 {
        let answer = flood.next().await.unwrap().unwrap().unwrap();
        let why = refusal(&answer).expect("an Unavailable refusal");
        assert!(why.contains("this peer's"), "{why}");
    }
    assert_eq!(
        server.limiter().in_flight_from(&flooder.local_id()),
        Usage {
            bytes: 4 * MIB,
            requests: 4
        }
    );

    // A known peer is not held back by strangers: 5 MiB requests (over a stranger's cap) pass.
    for _ in 0..3 {
        let answer = honest.request(sid, body(b'e', 5 * MIB)).await.unwrap();
        assert_eq!(&answer[..], (5 * MIB).to_string().as_bytes());
    }
    // Another stranger has room of its own, but strangers together hold 4 of their 6 MiB.
    let answer = other.request(sid, body(b'e', MIB)).await.unwrap();
    assert_eq!(&answer[..], MIB.to_string().as_bytes());
    let answer = other.request(sid, body(b'e', 3 * MIB)).await.unwrap();
    let why = refusal(&answer).expect("refused by the strangers' pool");
    assert!(why.contains("unknown peers"), "{why}");

    // Once the held requests are answered, everything is released.
    release.send(true).unwrap();
    while let Some(answer) = flood.next().await {
        assert_eq!(&answer.unwrap().unwrap()[..], b"held");
    }
    server.limiter().idle().await;
    assert_eq!(server.limiter().in_flight(), Usage::default());
    // And the flooder may send again.
    let answer = flooder.request(sid, body(b'e', 4 * MIB)).await.unwrap();
    assert_eq!(&answer[..], (4 * MIB).to_string().as_bytes());
    for t in [&server, &flooder, &honest, &other] {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_client_at_full_speed_stays_under_the_default_caps() {
    // The default client's worst case at one provider: 8 chunks uploading, each with its 4 + 2
    // shards of a 4 MiB chunk (1 MiB and a little) in flight at once; all held at once here.
    let params = memo_core::codec::CodecParams::default();
    let in_flight = 8 * params.total_shards();
    let shard = (params.chunk_size as usize).div_ceil(params.data_shards as usize) + 4096;
    let (server, release, mut arrivals) = holding_server(
        "limits-honest-server",
        Limits::default(),
        Duration::from_secs(20),
    )
    .await;
    let client = client_of("limits-honest-client", &server).await;
    let sid = server.local_id();
    assert!(!server.limiter().is_known(&client.local_id()));
    let puts: Vec<_> = (0..in_flight)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.request(sid, body(b'h', shard)).await })
        })
        .collect();
    for _ in 0..in_flight {
        arrivals.recv().await.unwrap();
    }
    assert_eq!(
        server.limiter().in_flight_from(&client.local_id()),
        Usage {
            bytes: in_flight * shard,
            requests: in_flight
        }
    );
    release.send(true).unwrap();
    for p in puts {
        assert_eq!(&p.await.unwrap().unwrap()[..], b"held");
    }
    server.limiter().idle().await;
    server.shutdown().await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_are_released_on_every_path() {
    // The server answers within 1 s or gives the stream up; its node may take longer.
    let limits = Limits {
        stranger_requests: 2,
        ..small_limits()
    };
    let (server, release, mut arrivals) =
        holding_server("limits-paths-server", limits, Duration::from_secs(1)).await;
    let client = client_of("limits-paths-client", &server).await;
    let (sid, cid) = (server.local_id(), client.local_id());
    let limiter = server.limiter().clone();

    // Dropped by the node: the sender hears so, and the permit is back.
    let err = client.request(sid, body(b'd', MIB)).await.unwrap_err();
    assert_eq!(err, TransportError::Dropped(sid));
    assert_eq!(limiter.in_flight(), Usage::default());

    // Held past the stream's timeout: the sender gives up, but the node still holds the bytes,
    // so they still count.
    let err = client.request(sid, body(b'h', MIB)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Timeout(_) | TransportError::Dropped(_)),
        "{err:?}"
    );
    arrivals.recv().await.unwrap();
    assert_eq!(
        limiter.in_flight_from(&cid),
        Usage {
            bytes: MIB,
            requests: 1
        }
    );

    // Abandoned by the sender while held: still counted. With two in flight, a third request
    // is over the count cap, whatever its size.
    let abandoned = {
        let c = client.clone();
        tokio::spawn(async move { c.request(sid, body(b'h', 10)).await })
    };
    arrivals.recv().await.unwrap();
    abandoned.abort();
    assert_eq!(limiter.in_flight_from(&cid).requests, 2);
    let answer = client.request(sid, body(b'e', 1)).await.unwrap();
    let why = refusal(&answer).expect("refused by the count cap");
    assert!(why.contains("too many requests"), "{why}");

    // The node finishes with them: everything is released.
    release.send(true).unwrap();
    limiter.idle().await;
    assert_eq!(limiter.in_flight(), Usage::default());
    let answer = client.request(sid, body(b'e', 1)).await.unwrap();
    assert_eq!(&answer[..], b"1");
    server.shutdown().await;
    client.shutdown().await;
}

/// What [`Accept`] answers a shard put.
const STORED: Response = Response::Stored {
    new: true,
    receipt: None,
};

/// A provider stand-in: stores nothing, answers every shard put.
struct Accept;

#[async_trait::async_trait]
impl Service for Accept {
    async fn handle(&self, _: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::PutShard { .. } => Some(STORED),
            _ => None,
        }
    }
}

fn put(len: usize) -> Request {
    let bytes = Bytes::from(vec![5u8; len]);
    Request::PutShard {
        shard: ShardId::of(&bytes),
        ticket: None,
        bytes,
    }
}

fn unavailable(result: Result<Response, RpcError>) -> String {
    match result {
        Err(RpcError::Remote { error, .. }) if error.code == ErrorCode::Unavailable => {
            error.message
        }
        other => panic!("expected an Unavailable refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_refuses_frames_tickets_and_connections_over_the_caps() {
    let limits = Limits {
        stranger_bytes: MIB,
        lane_tickets_per_peer: 2,
        lane_connections_per_peer: 1,
        ..small_limits()
    };
    let network = MemoryNetwork::new();
    let provider = Keypair::from_seed("limits-lane-provider").account();
    let pt: Arc<dyn Transport> = Arc::new(network.join(provider));
    let limiter = memo_sdk::transport::limits::Limiter::new(limits);
    let lane = LaneServer::start_limited(
        memo_sdk::Env::real(),
        "127.0.0.1:0",
        None,
        Arc::new(Accept),
        limiter.clone(),
    )
    .await
    .unwrap();
    tokio::spawn(serve(pt, vec![Arc::new(Accept), lane.clone()]));
    let client = Keypair::from_seed("limits-lane-client").account();
    let ct: Arc<dyn Transport> = Arc::new(network.join(client));
    let lanes = Lanes::new(memo_sdk::Env::real(), ct.clone(), Duration::from_secs(10));

    // A 2 MiB shard is over the client's 1 MiB: refused on the lane, its bytes discarded.
    let why = unavailable(lanes.call(provider, &put(2 * MIB)).await);
    assert!(why.contains("this peer's"), "{why}");
    // The same connection carries the next frame: the refused one kept the nonces in step.
    assert_eq!(lanes.call(provider, &put(1000)).await.unwrap(), STORED);
    assert_eq!(lanes.idle_connections(&provider), 1);
    assert_eq!(lane.open_connections(&client), 1);

    // The client holds its one connection, so no more tickets for it.
    let open = Request::OpenLane {
        secret: LaneSecret([9; 32]),
    };
    let why = unavailable(call(ct.as_ref(), provider, &open).await);
    assert!(why.contains("lane connections"), "{why}");

    // Another account gets two tickets, and no third while those are unused.
    let other: Arc<dyn Transport> =
        Arc::new(network.join(Keypair::from_seed("limits-lane-other").account()));
    for _ in 0..2 {
        let got = call(other.as_ref(), provider, &open).await.unwrap();
        assert!(matches!(got, Response::Lane { .. }), "{got:?}");
    }
    let why = unavailable(call(other.as_ref(), provider, &open).await);
    assert!(why.contains("lane tickets"), "{why}");
    assert_eq!(lane.pending_tickets(), 2);

    limiter.idle().await;
    assert_eq!(limiter.in_flight(), Usage::default());
}

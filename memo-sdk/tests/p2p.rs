//! P2pTransport over loopback TCP (port 0, so tests run in parallel).

use bytes::Bytes;
use memo_core::transport::{MAX_MESSAGE, Transport, TransportError};
use memo_core::{AccountId, Keypair};
use memo_sdk::transport::p2p::{NetError, P2pConfig, P2pTransport};
use std::time::Duration;

fn test_config() -> P2pConfig {
    P2pConfig {
        request_timeout: Duration::from_secs(10),
        dial_timeout: Duration::from_secs(10),
        ..P2pConfig::default()
    }
}

async fn node_with(label: &str, config: P2pConfig) -> P2pTransport {
    P2pTransport::start_with(&Keypair::from_seed(label), config)
        .await
        .unwrap()
}

async fn node(label: &str) -> P2pTransport {
    node_with(label, test_config()).await
}

/// Tells `a` where `b` listens.
fn introduce(a: &P2pTransport, b: &P2pTransport) {
    a.try_add_address(b.local_id(), &b.listen_addrs()[0].to_string())
        .unwrap();
}

/// Serves requests: `e...` echoes `from ++ body`, `d` drops the reply, `s<ms>` answers after a
/// delay, `b<n>` answers with `n` bytes.
fn serve(t: &P2pTransport) {
    let t = t.clone();
    tokio::spawn(async move {
        while let Some(inc) = t.next_incoming().await {
            tokio::spawn(async move {
                match inc.body.first() {
                    Some(b'd') => drop(inc.reply),
                    Some(b's') => {
                        let ms: u64 = std::str::from_utf8(&inc.body[1..])
                            .unwrap()
                            .parse()
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let _ = inc.reply.send(Bytes::from_static(b"late"));
                    }
                    Some(b'b') => {
                        let n: usize = std::str::from_utf8(&inc.body[1..])
                            .unwrap()
                            .parse()
                            .unwrap();
                        let _ = inc.reply.send(Bytes::from(vec![7u8; n]));
                    }
                    _ => {
                        let mut out = inc.from.0.to_vec();
                        out.extend_from_slice(&inc.body);
                        let _ = inc.reply.send(Bytes::from(out));
                    }
                }
            });
        }
    });
}

/// Checks an echo response: the server saw `from` as sender and got `body` intact.
fn assert_echo(response: &[u8], from: AccountId, body: &[u8]) {
    assert_eq!(&response[..32], &from.0, "sender seen by the server");
    assert!(response[32..] == *body, "body intact");
}

fn closed_port_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("/ip4/127.0.0.1/tcp/{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_requests_with_authenticated_senders() {
    let a = node("p2p-a").await;
    let b = node("p2p-b").await;
    assert_eq!(a.local_id(), Keypair::from_seed("p2p-a").account());
    assert!(!a.listen_addrs().is_empty());
    serve(&a);
    serve(&b);
    introduce(&a, &b);
    let got = a.request(b.local_id(), Bytes::from_static(b"ehello")).await;
    assert_echo(&got.unwrap(), a.local_id(), b"ehello");
    // b never learned a's address: it reaches a back over the existing connection.
    let got = b.request(a.local_id(), Bytes::from_static(b"eback")).await;
    assert_echo(&got.unwrap(), b.local_id(), b"eback");
    // Empty bodies are messages too.
    let got = a.request(b.local_id(), Bytes::new()).await.unwrap();
    assert_echo(&got, a.local_id(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_reach_each_other() {
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(node(&format!("mesh-{i}")).await);
    }
    for x in &nodes {
        serve(x);
        for y in &nodes {
            if x.local_id() != y.local_id() {
                introduce(x, y);
            }
        }
    }
    let mut calls = Vec::new();
    for x in &nodes {
        for y in &nodes {
            if x.local_id() != y.local_id() {
                let (x, to) = (x.clone(), y.local_id());
                calls.push(async move {
                    let body = Bytes::from(format!("e{}", to.short()));
                    let got = x.request(to, body.clone()).await.unwrap();
                    assert_echo(&got, x.local_id(), &body);
                });
            }
        }
    }
    futures::future::join_all(calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mib_message_round_trips_both_ways() {
    let a = node("big-a").await;
    let b = node("big-b").await;
    serve(&b);
    introduce(&a, &b);
    let mut body = vec![b'e'];
    body.extend((0..8 * 1024 * 1024).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8));
    let body = Bytes::from(body);
    let got = a.request(b.local_id(), body.clone()).await.unwrap();
    assert_echo(&got, a.local_id(), &body);
    let got = a
        .request(b.local_id(), Bytes::from(format!("b{}", 8 << 20)))
        .await
        .unwrap();
    assert_eq!(got.len(), 8 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_are_refused() {
    let a = node("size-a").await;
    let small = P2pConfig {
        max_message: 1 << 20,
        ..test_config()
    };
    let b = node_with("size-b", small).await;
    serve(&a);
    serve(&b);
    introduce(&a, &b);
    introduce(&b, &a);

    // Over the global limit: refused locally, never sent.
    let huge = Bytes::from(vec![0u8; MAX_MESSAGE + 1]);
    assert_eq!(
        a.request(b.local_id(), huge).await,
        Err(TransportError::TooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        })
    );
    // Over the receiver's limit: b reads the length, refuses the frame, never serves it.
    let mut body = vec![b'e'];
    body.resize(2 << 20, 1);
    let refused = a.request(b.local_id(), Bytes::from(body)).await;
    assert!(
        matches!(refused, Err(TransportError::Dropped(p)) if p == b.local_id()),
        "{refused:?}"
    );
    // A response over the requester's limit is refused by the requester.
    let answer = b
        .request(a.local_id(), Bytes::from(format!("b{}", 2 << 20)))
        .await;
    assert_eq!(
        answer,
        Err(TransportError::TooLarge {
            len: 2 << 20,
            max: 1 << 20
        })
    );
    // Both still work for messages within the limits.
    let got = a
        .request(b.local_id(), Bytes::from_static(b"eok"))
        .await
        .unwrap();
    assert_echo(&got, a.local_id(), b"eok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peers_are_reported() {
    let a = node("lonely-a").await;
    // No address known.
    let nowhere = Keypair::from_seed("nowhere").account();
    assert_eq!(
        a.request(nowhere, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(nowhere))
    );
    // An address where nothing listens.
    let gone = Keypair::from_seed("gone").account();
    a.try_add_address(gone, &closed_port_address()).unwrap();
    assert_eq!(
        a.request(gone, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(gone))
    );
    // An account that is not an ed25519 point cannot be a peer.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    let bogus = AccountId(bytes);
    assert_eq!(
        a.request(bogus, Bytes::new()).await,
        Err(TransportError::Unreachable(bogus))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_validated() {
    let a = node("addr-a").await;
    let b = node("addr-b").await;
    serve(&b);
    assert!(matches!(
        a.try_add_address(b.local_id(), "not a multiaddr"),
        Err(NetError::BadAddress { .. })
    ));
    // Ignored with a warning through the trait.
    a.add_address(b.local_id(), "/ip4/999.0.0.1/tcp/1");
    // A /p2p suffix must name the same peer.
    let with_wrong_peer = format!("{}/p2p/{}", b.listen_addrs()[0], a.peer_id());
    assert!(matches!(
        a.try_add_address(b.local_id(), &with_wrong_peer),
        Err(NetError::BadAddress { .. })
    ));
    let with_peer = format!("{}/p2p/{}", b.listen_addrs()[0], b.peer_id());
    a.try_add_address(b.local_id(), &with_peer).unwrap();
    let got = a.request(b.local_id(), Bytes::from_static(b"ex")).await;
    assert_echo(&got.unwrap(), a.local_id(), b"ex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_survives_a_failed_dial() {
    // Reserve a port, learn it, and start b on it only after a dial to it failed.
    let port_addr = closed_port_address();
    let a = node("retry-a").await;
    let b_account = Keypair::from_seed("retry-b").account();
    a.try_add_address(b_account, &port_addr).unwrap();
    assert_eq!(
        a.request(b_account, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(b_account))
    );
    let b = node_with(
        "retry-b",
        P2pConfig {
            listen: vec![port_addr.parse().unwrap()],
            ..test_config()
        },
    )
    .await;
    serve(&b);
    let got = a.request(b_account, Bytes::from_static(b"eagain")).await;
    assert_echo(&got.unwrap(), a.local_id(), b"eagain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight() {
    let a = node("many-a").await;
    let b = node("many-b").await;
    let c = node("many-c").await;
    serve(&b);
    serve(&c);
    introduce(&a, &b);
    introduce(&a, &c);
    let calls = (0..96u32).map(|i| {
        let a = a.clone();
        let to = if i % 2 == 0 {
            b.local_id()
        } else {
            c.local_id()
        };
        async move {
            let mut body = format!("e{i}-").into_bytes();
            body.resize(body.len() + (i as usize % 7) * 10_000, i as u8);
            let got = a.request(to, Bytes::from(body.clone())).await.unwrap();
            assert_echo(&got, a.local_id(), &body);
        }
    });
    futures::future::join_all(calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_and_a_slow_peer_are_typed() {
    let a = node_with(
        "slow-a",
        P2pConfig {
            request_timeout: Duration::from_millis(300),
            ..test_config()
        },
    )
    .await;
    let b = node("slow-b").await;
    serve(&b);
    introduce(&a, &b);
    assert_eq!(
        a.request(b.local_id(), Bytes::from_static(b"d")).await,
        Err(TransportError::Dropped(b.local_id()))
    );
    assert_eq!(
        a.request(b.local_id(), Bytes::from_static(b"s3000")).await,
        Err(TransportError::Timeout(b.local_id()))
    );
    // The connection is still usable.
    let got = a.request(b.local_id(), Bytes::from_static(b"e1")).await;
    assert_echo(&got.unwrap(), a.local_id(), b"e1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_protocol_version_fails_negotiation() {
    let a = node("ver-a").await;
    let b = node_with(
        "ver-b",
        P2pConfig {
            protocol: "/memo/req/2".to_string(),
            ..test_config()
        },
    )
    .await;
    serve(&b);
    introduce(&a, &b);
    let got = a.request(b.local_id(), Bytes::from_static(b"e")).await;
    assert!(
        matches!(got, Err(TransportError::Protocol { peer, .. }) if peer == b.local_id()),
        "{got:?}"
    );
    assert!(matches!(
        P2pTransport::start_with(
            &Keypair::from_seed("ver-c"),
            P2pConfig {
                protocol: "no-slash".to_string(),
                ..test_config()
            }
        )
        .await,
        Err(NetError::BadProtocol(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_fails_requests_with_typed_errors() {
    let a = node("down-a").await;
    let b = node("down-b").await;
    serve(&a);
    serve(&b);
    introduce(&a, &b);
    introduce(&b, &a);
    let got = a.request(b.local_id(), Bytes::from_static(b"e1")).await;
    assert_echo(&got.unwrap(), a.local_id(), b"e1");

    // A request in flight when the node stops gets an error, not a hang.
    let in_flight = {
        let a = a.clone();
        let to = b.local_id();
        tokio::spawn(async move { a.request(to, Bytes::from_static(b"s5000")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.shutdown().await;
    let got = in_flight.await.unwrap();
    assert!(
        matches!(
            got,
            Err(TransportError::Unreachable(_) | TransportError::Dropped(_))
        ),
        "{got:?}"
    );
    assert!(b.listen_addrs().is_empty());
    // Requests to it: its port is closed.
    assert_eq!(
        a.request(b.local_id(), Bytes::from_static(b"e2")).await,
        Err(TransportError::Unreachable(b.local_id()))
    );
    // Its own handle is closed.
    assert_eq!(
        b.request(a.local_id(), Bytes::from_static(b"e3")).await,
        Err(TransportError::Closed)
    );
    assert!(b.next_incoming().await.is_none());
    assert!(matches!(
        b.try_add_address(a.local_id(), "/ip4/127.0.0.1/tcp/1"),
        Err(NetError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_node() {
    let a = node("drop-a").await;
    let b = node("drop-b").await;
    introduce(&a, &b);
    let b_id = b.local_id();
    let b_addr = b.listen_addrs()[0].clone();
    drop(b);
    // Wait until the port is released (the driver notices the drop asynchronously).
    let port = match b_addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::Tcp(port)) => port,
        other => panic!("unexpected address {other:?}"),
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        a.request(b_id, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(b_id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_incoming_queue_drops_requests() {
    let a = node("queue-a").await;
    let b = node_with(
        "queue-b",
        P2pConfig {
            incoming_queue: 1,
            ..test_config()
        },
    )
    .await;
    introduce(&a, &b);
    let send = |body: &'static [u8]| {
        let (a, to) = (a.clone(), b.local_id());
        tokio::spawn(async move { a.request(to, Bytes::from_static(body)).await })
    };
    let (first, second) = (send(b"e1"), send(b"e2"));
    // Nobody takes requests yet: one waits in the queue, the other is dropped.
    let (dropped, waiting) = match futures::future::select(first, second).await {
        futures::future::Either::Left((done, other)) => (done, other),
        futures::future::Either::Right((done, other)) => (done, other),
    };
    assert_eq!(dropped.unwrap(), Err(TransportError::Dropped(b.local_id())));
    let inc = b.next_incoming().await.unwrap();
    assert_eq!(inc.from, a.local_id());
    inc.reply.send(inc.body.clone()).unwrap();
    let answered = waiting.await.unwrap().unwrap();
    assert!(answered == Bytes::from_static(b"e1") || answered == Bytes::from_static(b"e2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_stream_limits_are_clamped() {
    for streams in [0, 1_000_000] {
        let config = P2pConfig {
            max_streams_per_connection: streams,
            ..test_config()
        };
        let a = node_with(&format!("clamp-a-{streams}"), config.clone()).await;
        let b = node_with(&format!("clamp-b-{streams}"), config).await;
        serve(&b);
        introduce(&a, &b);
        let got = a.request(b.local_id(), Bytes::from_static(b"e")).await;
        assert_echo(&got.unwrap(), a.local_id(), b"e");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_needs_no_listener_and_bad_listen_addresses_are_errors() {
    let server = node("listen-server").await;
    serve(&server);
    let client = node_with(
        "listen-client",
        P2pConfig {
            listen: Vec::new(),
            ..test_config()
        },
    )
    .await;
    assert!(client.listen_addrs().is_empty());
    introduce(&client, &server);
    let got = client
        .request(server.local_id(), Bytes::from_static(b"e"))
        .await;
    assert_echo(&got.unwrap(), client.local_id(), b"e");

    // An address that is not this host's (TEST-NET-1) cannot be listened on.
    let foreign = "/ip4/192.0.2.1/tcp/0";
    let again = P2pTransport::start(&Keypair::from_seed("listen-foreign"), foreign).await;
    assert!(matches!(again, Err(NetError::Listen { .. })), "{again:?}");
    let bad = P2pTransport::start(&Keypair::from_seed("listen-bad"), "tcp:4001").await;
    assert!(matches!(bad, Err(NetError::BadAddress { .. })), "{bad:?}");
}

//! The behaviour every `Transport` must share, checked against `MemoryNetwork` and
//! `P2pTransport` alike. Services are written against the trait, so these are the guarantees
//! they may rely on.

use bytes::Bytes;
use memo_core::Keypair;
use memo_core::transport::{MAX_MESSAGE, MemoryNetwork, Transport, TransportError};
use memo_sdk::net::{P2pConfig, P2pTransport};
use std::sync::Arc;
use std::time::Duration;

type Node = Arc<dyn Transport>;

/// Serves requests on `t`: a body starting with `d` has its reply dropped; any other body is
/// answered with `sender account ++ body`.
fn serve(t: Node) {
    tokio::spawn(async move {
        while let Some(inc) = t.next_incoming().await {
            if inc.body.first() == Some(&b'd') {
                continue; // dropping `inc` drops the reply
            }
            let mut out = inc.from.0.to_vec();
            out.extend_from_slice(&inc.body);
            let _ = inc.reply.send(Bytes::from(out));
        }
    });
}

async fn echo(from: &Node, to: &Node, body: Bytes) {
    let got = from.request(to.local_id(), body.clone()).await.unwrap();
    assert_eq!(&got[..32], &from.local_id().0, "authenticated sender");
    assert!(got[32..] == body[..], "body intact");
}

/// The shared checks. `nodes` (at least three) can all reach each other and nobody serves
/// them yet.
async fn transport_conformance(nodes: Vec<Node>) {
    assert!(nodes.len() >= 3);
    for n in &nodes {
        serve(n.clone());
    }
    // Every pair, both ways, with the authenticated sender.
    for x in &nodes {
        for y in &nodes {
            if x.local_id() != y.local_id() {
                echo(
                    x,
                    y,
                    Bytes::from(format!("e{}>{}", x.local_id(), y.local_id())),
                )
                .await;
            }
        }
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // Empty and large bodies.
    echo(a, b, Bytes::new()).await;
    echo(a, b, Bytes::from(vec![b'x'; 4 << 20])).await;
    // Many in flight at once, to several peers.
    let calls = (0..48u32).map(|i| {
        let to = if i % 2 == 0 { b } else { c };
        echo(a, to, Bytes::from(format!("e{i}").repeat(i as usize + 1)))
    });
    futures::future::join_all(calls).await;
    // A dropped reply.
    assert_eq!(
        a.request(b.local_id(), Bytes::from_static(b"d")).await,
        Err(TransportError::Dropped(b.local_id()))
    );
    // A peer nobody knows.
    let stranger = Keypair::from_seed("conformance-stranger").account();
    assert_eq!(
        a.request(stranger, Bytes::from_static(b"e")).await,
        Err(TransportError::Unreachable(stranger))
    );
    // Over the limit: refused before sending.
    assert_eq!(
        a.request(b.local_id(), Bytes::from(vec![0u8; MAX_MESSAGE + 1]))
            .await,
        Err(TransportError::TooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        })
    );
    // A node may address itself.
    echo(a, a, Bytes::from_static(b"eself")).await;
    assert_eq!(
        a.request(a.local_id(), Bytes::from_static(b"d")).await,
        Err(TransportError::Dropped(a.local_id()))
    );
    // Still healthy afterwards.
    echo(c, a, Bytes::from_static(b"eafter")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_network_conforms() {
    let net = MemoryNetwork::new();
    let nodes = (0..3)
        .map(|i| Arc::new(net.join(Keypair::from_seed(&format!("mem-{i}")).account())) as Node)
        .collect();
    transport_conformance(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_transport_conforms() {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let config = P2pConfig {
            dial_timeout: Duration::from_secs(10),
            ..P2pConfig::default()
        };
        let kp = Keypair::from_seed(&format!("p2p-conf-{i}"));
        nodes.push(P2pTransport::start_with(&kp, config).await.unwrap());
    }
    for x in &nodes {
        for y in &nodes {
            if x.local_id() != y.local_id() {
                // Through the trait, as services will do.
                Transport::add_address(x, y.local_id(), &y.listen_addrs()[0].to_string());
            }
        }
    }
    transport_conformance(nodes.into_iter().map(|n| Arc::new(n) as Node).collect()).await;
}

//! The behaviour every `Transport` must share ([`memo_sdk::testkit::transport_conformance`]),
//! checked against `MemoryNetwork`, `P2pTransport` and `FaultTransport` with no faults alike. Services are written against the trait, so these are the guarantees
//! they may rely on.

use memo_core::Keypair;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::testkit::transport_conformance;
use memo_sdk::transport::fault::{FaultConfig, FaultTransport};
use memo_sdk::transport::p2p::{P2pConfig, P2pTransport};
use std::sync::Arc;
use std::time::Duration;

type Node = Arc<dyn Transport>;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_transport_without_faults_conforms() {
    let net = MemoryNetwork::new();
    let nodes = (0..3)
        .map(|i| {
            let inner: Node =
                Arc::new(net.join(Keypair::from_seed(&format!("fault-{i}")).account()));
            Arc::new(FaultTransport::new(inner, FaultConfig::none(i))) as Node
        })
        .collect();
    transport_conformance(nodes).await;
}

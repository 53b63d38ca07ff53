//! Every ledger backend passes memo-sdk's `Ledger` conformance suite: the local chain, and the
//! same chain reached over the transport.

use memo_core::Keypair;
use memo_core::contract::{Challenge, Genesis, Params, ProofVerifier};
use memo_core::proof::ProofError;
use memo_core::transport::{MemoryNetwork, Transport};
use memo_sdk::Env;
use memo_sdk::ledger::{Ledger, LedgerService, LocalChain, RemoteLedger};
use memo_sdk::node::serve;
use memo_sdk::testkit::ledger_conformance;
use std::sync::Arc;
use std::time::Duration;

const CHAIN: u64 = 77;

struct NoProofs;
impl ProofVerifier for NoProofs {
    fn verify(&self, c: &Challenge, _: &[u8]) -> Result<(), ProofError> {
        Err(ProofError::PathMismatch {
            shard: c.shard,
            index: 0,
        })
    }
}

/// An in-memory chain sequenced by `sequencer`, producing a block every 5 ms.
fn chain(sequencer: &Keypair) -> Arc<LocalChain> {
    let genesis = Genesis::new(
        CHAIN,
        Params::default(),
        [(Keypair::from_seed("payer").account(), 1_000)],
    )
    .expect("genesis");
    let c = Arc::new(
        LocalChain::open_sequencer_in_memory(genesis, sequencer.clone(), Arc::new(NoProofs))
            .expect("chain"),
    );
    // Detached: the producer stops once the chain is dropped.
    drop(c.spawn_producer(Env::real(), Duration::from_millis(5)));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_chain_conforms() {
    let c = chain(&Keypair::from_seed("sequencer"));
    let payee = Keypair::from_seed("payee").account();
    ledger_conformance(c, CHAIN, &Keypair::from_seed("payer"), payee).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_ledger_conforms() {
    let net = MemoryNetwork::new();
    let seq = Keypair::from_seed("sequencer");
    let c = chain(&seq);
    let st: Arc<dyn Transport> = Arc::new(net.join(seq.account()));
    tokio::spawn(serve(st, vec![LedgerService::new(c as Arc<dyn Ledger>)]));
    let me: Arc<dyn Transport> = Arc::new(net.join(Keypair::from_seed("client").account()));
    let remote = RemoteLedger::new(me, seq.account(), Duration::from_millis(5));
    let payee = Keypair::from_seed("payee").account();
    ledger_conformance(remote, CHAIN, &Keypair::from_seed("payer"), payee).await;
}

//! The ledger of a local network: an in-memory [`LocalChain`] sequencer with the real proof
//! verifier, every node registered on it, and a block producer.
//!
//! [`LocalNetwork::attach_ledger`](crate::local::LocalNetwork::attach_ledger) builds it for a
//! started network:
//!
//! - genesis gives every keeper, provider and user [`LedgerSpec::balance`], and matches every
//!   keeper to every user (`keepers_per_user` = the number of keepers: they share one
//!   operation log, so each may end a user's purged orders);
//! - keepers register with [`LedgerSpec::stake`], providers with the stake, their capacity and
//!   [`LedgerSpec::price`], users as users, all in block 1;
//! - each keeper gets a [`Challenger`], each provider a [`Prover`], each user's client its
//!   storage orders;
//! - a producer makes a block every [`LedgerSpec::block_interval`]. Before the last block of
//!   each epoch it waits (up to [`LedgerSpec::gate_timeout`]) until every keeper has finished
//!   the challenges of the blocks so far, so proofs land in their epoch however loaded the
//!   machine is. A real chain does not wait; this keeps the simulation deterministic.

use crate::client::orders::OrderConfig;
use crate::client::{Client, ClientError, ledger_error};
use crate::env::Env;
use crate::keeper::Keeper;
use crate::keeper::challenger::{Challenger, ChallengerConfig, EpochReport};
use crate::ledger::tx::TxError;
use crate::ledger::{Head, Ledger, LocalChain, Pacer, TxStatus};
use crate::local::LocalProvider;
use crate::provider::prover::Prover;
use memo_core::contract::{Amount, Call, Epoch, Genesis, Height, Params, RolesCall, SignedTx, Tx};
use memo_core::proof::MerkleVerifier;
use memo_core::{Keypair, Signed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the local network's ledger runs.
#[derive(Debug, Clone)]
pub struct LedgerSpec {
    /// The chain id.
    pub chain: u64,
    /// Blocks per epoch (at least 2: proofs go in after the epoch's first block).
    pub epoch_blocks: u64,
    /// Time between blocks.
    pub block_interval: Duration,
    /// Genesis balance of every node.
    pub balance: Amount,
    /// Stake every keeper and provider posts.
    pub stake: Amount,
    /// Every provider's asking price per byte per epoch.
    pub price: Amount,
    /// Stake slashed per failed proof.
    pub slash_amount: Amount,
    /// Users' storage orders.
    pub orders: OrderConfig,
    /// Keepers' challengers.
    pub challenger: ChallengerConfig,
    /// Longest wait for keepers before an epoch's last block.
    pub gate_timeout: Duration,
}

impl Default for LedgerSpec {
    fn default() -> Self {
        Self {
            chain: 1,
            epoch_blocks: 5,
            block_interval: Duration::from_millis(50),
            balance: 1 << 50,
            stake: 100_000,
            price: 1,
            slash_amount: 100,
            orders: OrderConfig::default(),
            challenger: ChallengerConfig::default(),
            gate_timeout: Duration::from_secs(10),
        }
    }
}

/// The running ledger of a local network.
pub struct LocalLedger {
    /// The chain (the sequencer's view; every node reads and submits here).
    pub chain: Arc<LocalChain>,
    /// The sequencer's key.
    pub sequencer: Keypair,
    /// Each keeper's challenger, in keeper order.
    pub challengers: Vec<Arc<Challenger>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLedger")
            .field("head", &self.chain.head_now().height)
            .finish_non_exhaustive()
    }
}

impl LocalLedger {
    /// The head block.
    pub fn head(&self) -> Head {
        self.chain.head_now()
    }

    /// The ledger as a [`Ledger`].
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.chain.clone()
    }

    /// Waits until the head is in epoch `epoch` or later.
    pub async fn wait_epoch(&self, epoch: Epoch) -> Head {
        let mut blocks = self.chain.subscribe();
        loop {
            let head = self.chain.head_now();
            if head.epoch >= epoch {
                return head;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), blocks.recv()).await;
        }
    }

    /// The last settled epoch's challenge outcomes as the first keeper recorded them: per
    /// provider, orders challenged, passed (verified on the ledger and paid), failed
    /// (slashed) and missed. What `memo demo` shows.
    pub fn last_report(&self) -> Option<EpochReport> {
        self.challengers.first().and_then(|c| c.last_report())
    }

    /// Waits for epoch `epoch` to be settled and returns the first keeper's report of it.
    pub async fn wait_report(&self, epoch: Epoch) -> Option<EpochReport> {
        match self.challengers.first() {
            Some(c) => Some(c.wait_report(epoch).await),
            None => None,
        }
    }
}

impl Drop for LocalLedger {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Builds the ledger, registers every node, attaches challengers, provers and orders, and
/// starts the block producer.
pub(crate) async fn attach<S: memo_core::ownership::ShardStore + 'static>(
    spec: &LedgerSpec,
    provider_capacity: u64,
    keepers: &[(Keypair, Arc<Keeper>)],
    providers: &[LocalProvider<S>],
    users: &mut [(String, Client)],
) -> Result<LocalLedger, ClientError> {
    if let Some((kp, k)) = keepers.iter().find(|(kp, k)| kp.account() != k.account()) {
        return Err(ClientError::Refused(format!(
            "keeper key {} does not match keeper {}",
            kp.account().short(),
            k.account().short()
        )));
    }
    // The network's clock: block timestamps follow it (virtual time in simulations).
    let env = keepers
        .first()
        .map(|(_, k)| k.env().clone())
        .unwrap_or_default();
    let params = Params {
        epoch_blocks: spec.epoch_blocks.max(2),
        keepers_per_user: (keepers.len() as u32).max(1),
        slash_amount: spec.slash_amount,
        ..Params::default()
    };
    let accounts = keepers
        .iter()
        .map(|(k, _)| k.account())
        .chain(providers.iter().map(LocalProvider::account))
        .chain(users.iter().map(|(_, c)| c.account()));
    let genesis = Genesis::new(spec.chain, params, accounts.map(|a| (a, spec.balance)))
        .map_err(|e| ledger_error(crate::ledger::LedgerError::from(e)))?;
    let sequencer = Keypair::from_seed("local-sequencer");
    let chain = Arc::new(
        LocalChain::open_sequencer_in_memory(
            genesis,
            sequencer.clone(),
            Arc::new(MerkleVerifier::new()),
        )
        .map_err(ledger_error)?,
    );
    let ledger: Arc<dyn Ledger> = chain.clone();

    // Block 1: every role.
    let first =
        |kp: &Keypair, call: Call| -> SignedTx { Signed::sign(kp, &Tx::new(spec.chain, 0, call)) };
    let mut regs = Vec::new();
    for (kp, _) in keepers {
        regs.push(first(
            kp,
            Call::Roles(RolesCall::RegisterKeeper {
                stake: spec.stake,
                address: kp.account().to_hex(),
            }),
        ));
    }
    for p in providers {
        regs.push(first(
            &p.keypair,
            Call::Roles(RolesCall::RegisterProvider {
                stake: spec.stake,
                capacity: provider_capacity,
                price: spec.price,
                address: p.account().to_hex(),
            }),
        ));
    }
    let hashes: Vec<[u8; 32]> = regs
        .into_iter()
        .map(|tx| chain.submit_tx(tx))
        .collect::<Result<_, _>>()
        .map_err(ledger_error)?;
    chain.produce_block(env.unix_ms()).map_err(ledger_error)?;
    for h in hashes {
        if let TxStatus::Rejected(r) = chain.status_now(&h) {
            return Err(ledger_error(TxError::Rejected(r)));
        }
    }

    let mut tasks = Vec::new();
    let mut challengers = Vec::new();
    let mut gates = Vec::new();
    for (kp, k) in keepers {
        let c = Challenger::new(
            kp.clone(),
            k.transport().clone(),
            ledger.clone(),
            spec.challenger.clone(),
        );
        k.set_challenger(c.clone());
        gates.push(c.processed());
        tasks.push(c.spawn(Arc::downgrade(k)));
        challengers.push(c);
    }
    for p in providers {
        p.service
            .set_prover(Prover::new(p.keypair.clone(), ledger.clone()));
    }
    for (_, client) in users.iter_mut() {
        client.set_ledger(ledger.clone(), spec.orders.clone());
    }
    // Users register after the keepers exist, so the ledger matches them.
    // (A client whose key is not the local network's registers itself at its first order.)
    let user_regs: Vec<[u8; 32]> = users
        .iter()
        .map(|(name, c)| (Keypair::from_seed(&format!("user-{name}")), c.account()))
        .filter(|(kp, account)| kp.account() == *account)
        .map(|(kp, _)| chain.submit_tx(first(&kp, Call::Roles(RolesCall::RegisterUser))))
        .collect::<Result<_, _>>()
        .map_err(ledger_error)?;
    chain.produce_block(env.unix_ms()).map_err(ledger_error)?;
    for h in user_regs {
        if let TxStatus::Rejected(r) = chain.status_now(&h) {
            return Err(ledger_error(TxError::Rejected(r)));
        }
    }
    tasks.push(spawn_producer(
        env.clone(),
        chain.clone(),
        spec.block_interval,
        spec.epoch_blocks.max(2),
        gates,
        spec.gate_timeout,
    ));
    Ok(LocalLedger {
        chain,
        sequencer,
        challengers,
        tasks,
    })
}

/// Produces a block every `every`, and one early whenever transactions wait; before the last
/// timed block of an epoch, waits until every keeper has handled the head (bounded by
/// `gate_timeout`).
fn spawn_producer(
    env: Env,
    chain: Arc<LocalChain>,
    every: Duration,
    epoch_blocks: u64,
    mut gates: Vec<watch::Receiver<Height>>,
    gate_timeout: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pacer = Pacer::new(every);
        let mut early_ok = true;
        loop {
            let early = pacer.next(&chain, early_ok).await;
            let made = if early {
                chain.produce_early_block(env.unix_ms()).map(|_| ())
            } else {
                let head = chain.head_now();
                if (head.tick + 2).is_multiple_of(epoch_blocks) {
                    for g in &mut gates {
                        let _ =
                            tokio::time::timeout(gate_timeout, g.wait_for(|h| *h >= head.height))
                                .await;
                    }
                }
                chain.produce_block(env.unix_ms()).map(|_| ())
            };
            // After a failure, wait for the timer rather than retry at once.
            early_ok = made.is_ok();
            if let Err(e) = made {
                tracing::warn!(error = %e, "block production failed");
            }
        }
    })
}

//! The ledger on the keeper group's log: the leader builds each block, the group commits it
//! as a log entry, and every keeper imports it from there (`store.rs`). A change of leader
//! never forks the chain: a block lands only where the log puts it, and one that no longer
//! extends the head is refused the same way on every keeper.

use super::{Proposal, TypeConfig, account_of};
use crate::env::Env;
use crate::ledger::{Block, Head, Ledger, LedgerError, LocalChain, Pacer, RemoteLedger, TxStatus};
use async_trait::async_trait;
use memo_core::AccountId;
use memo_core::contract::{Answer, Height, Query, SignedTx};
use memo_core::transport::Transport;
use openraft::{Raft, ServerState};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::{debug, warn};

/// The chain of a keeper group, seen by one keeper: reads answer from the keeper's own copy
/// (every block in it was committed by the group and verified here); transactions go to the
/// leader's queue, forwarded when this keeper does not lead.
pub struct GroupLedger {
    chain: Arc<LocalChain>,
    raft: Raft<TypeConfig>,
    account: AccountId,
    transport: Arc<dyn Transport>,
    poll: Duration,
    leader: std::sync::Mutex<Option<Arc<RemoteLedger>>>,
}

impl std::fmt::Debug for GroupLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLedger")
            .field("account", &self.account.short())
            .field("head", &self.chain.head_now().height)
            .finish_non_exhaustive()
    }
}

/// Where a transaction should go: this keeper's queue, or the leader.
enum Route {
    Here,
    Leader(AccountId),
    Nobody,
}

impl GroupLedger {
    pub(super) fn new(
        chain: Arc<LocalChain>,
        raft: Raft<TypeConfig>,
        account: AccountId,
        transport: Arc<dyn Transport>,
        poll: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            chain,
            raft,
            account,
            transport,
            poll,
            leader: std::sync::Mutex::new(None),
        })
    }

    /// This keeper's copy of the chain.
    pub fn chain(&self) -> &Arc<LocalChain> {
        &self.chain
    }

    fn route(&self) -> Route {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return Route::Here;
        }
        match m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
            .as_ref()
            .and_then(account_of)
        {
            Some(a) if a == self.account => Route::Here,
            Some(a) => Route::Leader(a),
            None => Route::Nobody,
        }
    }

    /// The route, waiting up to [`LEADER_WAIT`] for a leader when the group has none (an
    /// election is under way).
    async fn route_when_led(&self) -> Route {
        if let r @ (Route::Here | Route::Leader(_)) = self.route() {
            return r;
        }
        let _ = self
            .raft
            .wait(Some(LEADER_WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await;
        self.route()
    }

    /// The leader's ledger service, kept while the same keeper leads.
    fn leader_ledger(&self, leader: AccountId) -> Arc<RemoteLedger> {
        let mut cached = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        match cached.as_ref() {
            Some(l) if l.peer() == leader => l.clone(),
            _ => {
                let l = RemoteLedger::new(self.transport.clone(), leader, self.poll);
                *cached = Some(l.clone());
                l
            }
        }
    }
}

/// How long a transaction waits for the group to elect a leader before it is refused.
const LEADER_WAIT: Duration = Duration::from_secs(5);

fn no_leader() -> LedgerError {
    LedgerError::Unreachable("the keeper group has no leader".into())
}

#[async_trait]
impl Ledger for GroupLedger {
    /// Queues `tx` with the leader: here when this keeper leads, else forwarded.
    async fn submit(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError> {
        let mut hashes = self.submit_all(vec![tx]).await?;
        hashes
            .pop()
            .ok_or_else(|| LedgerError::Malformed("the leader returned no hash".into()))
    }

    /// Queues `txs`, in order, with the leader: here when this keeper leads, else forwarded
    /// in one request.
    async fn submit_all(&self, txs: Vec<SignedTx>) -> Result<Vec<[u8; 32]>, LedgerError> {
        // A leader that died since this keeper last heard of it: once more, with the next.
        for _ in 0..2 {
            match self.route_when_led().await {
                Route::Here => {
                    return txs.into_iter().map(|tx| self.chain.submit_tx(tx)).collect();
                }
                Route::Leader(l) => match self.leader_ledger(l).submit_all(txs.clone()).await {
                    Err(LedgerError::Unreachable(e)) => {
                        debug!("forwarding transactions to the leader: {e}");
                        let _ = self
                            .raft
                            .wait(Some(LEADER_WAIT))
                            .metrics(
                                |m| m.current_leader.is_some_and(|id| id != super::node_id(&l)),
                                "a new leader",
                            )
                            .await;
                    }
                    other => return other,
                },
                Route::Nobody => return Err(no_leader()),
            }
        }
        Err(no_leader())
    }

    /// Included or rejected as known here; otherwise as the leader knows it (a transaction
    /// queued with a leader that died since is unknown to the next one, and is sent again by
    /// its sender, see [`crate::ledger::tx::TxSender::send_and_wait`]).
    async fn tx_status(&self, hash: [u8; 32]) -> Result<TxStatus, LedgerError> {
        let here = self.chain.status_now(&hash);
        if matches!(here, TxStatus::Included { .. } | TxStatus::Rejected(_)) {
            return Ok(here);
        }
        match self.route_when_led().await {
            Route::Here => Ok(here),
            Route::Leader(l) => match self.leader_ledger(l).tx_status(hash).await {
                Ok(s) => Ok(s),
                Err(e) => {
                    debug!("transaction status from the leader: {e}");
                    Ok(here)
                }
            },
            Route::Nobody => Ok(here),
        }
    }

    /// Waits here while this keeper leads (its chain builds the blocks and rejects what
    /// cannot go in), else with the leader, which alone learns of rejections.
    async fn await_txs(
        &self,
        hashes: &[[u8; 32]],
        within: Duration,
    ) -> Result<Vec<TxStatus>, LedgerError> {
        let here: Vec<TxStatus> = hashes.iter().map(|h| self.chain.status_now(h)).collect();
        if here.iter().all(TxStatus::is_final) {
            return Ok(here);
        }
        match self.route_when_led().await {
            Route::Leader(l) => match self.leader_ledger(l).await_txs(hashes, within).await {
                Ok(s) => Ok(s),
                Err(e) => {
                    debug!("transaction statuses from the leader: {e}");
                    Ok(hashes.iter().map(|h| self.chain.status_now(h)).collect())
                }
            },
            Route::Here | Route::Nobody => Ok(self.chain.await_statuses(hashes, within).await),
        }
    }

    async fn query(&self, query: Query) -> Result<Answer, LedgerError> {
        Ok(self.chain.query_now(&query))
    }

    async fn head(&self) -> Result<Head, LedgerError> {
        Ok(self.chain.head_now())
    }

    async fn block(&self, height: Height) -> Result<Option<Block>, LedgerError> {
        self.chain.block_at(height)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Block>> {
        self.chain.subscribe()
    }
}

/// While this keeper leads the group, builds a block from its queue every `every` (stamped
/// with `env`'s wall clock), and one early whenever transactions wait, and proposes it to the
/// group; one block is in flight at a time. Ends when the Raft node stops.
pub(super) async fn produce_blocks(
    raft: Raft<TypeConfig>,
    chain: Arc<LocalChain>,
    env: Env,
    every: Duration,
) {
    let mut pacer = Pacer::new(every);
    // The term in which this keeper's head is known to be the group's: blocks are built only
    // by the leader, one at a time, and each is applied here before its proposal returns.
    let mut caught_up: Option<u64> = None;
    // Whether to build early blocks: only right after this keeper, as leader, got a block
    // committed (so a follower, or a leader whose proposals fail, waits for the timer).
    let mut early_ok = false;
    loop {
        let early = pacer.next(&chain, early_ok).await;
        early_ok = false;
        let (state, term) = {
            let m = raft.metrics().borrow().clone();
            (m.state, m.current_term)
        };
        match state {
            ServerState::Leader => {}
            ServerState::Shutdown => return,
            _ => continue,
        }
        // Once per term: everything the group committed before is applied here first (a new
        // leader's own first entry commits its predecessors'), so the block extends the
        // group's head.
        if caught_up != Some(term) {
            if let Err(e) = raft.ensure_linearizable().await {
                debug!("not producing a block: {e}");
                continue;
            }
            caught_up = Some(term);
        }
        let built = if early {
            chain.build_early_block(env.unix_ms())
        } else {
            chain.build_block(env.unix_ms()).map(Some)
        };
        let block = match built {
            Ok(Some(b)) => b,
            Ok(None) => {
                early_ok = true;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "building a block failed");
                continue;
            }
        };
        let height = block.header.height;
        match raft.client_write(Proposal::Block(block.encode())).await {
            Ok(r) if r.data.first() == Some(&u64::MAX) => {
                caught_up = None;
                warn!(height, "the group refused the block this keeper built")
            }
            Ok(_) => early_ok = true,
            Err(e) => {
                caught_up = None;
                debug!(height, "block not committed: {e}")
            }
        }
    }
}

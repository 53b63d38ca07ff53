//! The provider's side of storage proofs: answer a keeper's prove request by proving, signing
//! and submitting the provider's own `SubmitProof` transactions.
//!
//! # Design: the provider submits its own proofs
//!
//! A keeper's [`Request::Prove`](memo_core::protocol::Request::Prove) carries a [`ProveRequest`]:
//! an epoch and the orders it wants proven. It is only a trigger. The provider:
//!
//! 1. reads its challenges **from the ledger** (`Query::Challenges`), never from the keeper, so
//!    a keeper cannot make it prove the wrong shard or leaves and get it slashed;
//! 2. builds each proof from its shard store ([`memo_core::proof::prove_order`]);
//! 3. signs `SettlementCall::SubmitProof` transactions with its own key (the contract accepts a
//!    proof only from the order's provider) and submits them to the ledger itself;
//! 4. answers the keeper with a [`ProveReport`] carrying the signed transactions, which the
//!    keeper may relay if they have not reached the ledger.
//!
//! The contract verifies every proof, so colluding keepers can neither fake a pass (they
//! cannot sign as the provider and the ledger checks the proof) nor fake a failure (the
//! provider's own transaction is judged by the ledger, and the keeper cannot suppress it: the
//! provider submits it directly). Outcomes are read back from the ledger, not from anyone's
//! report.
//!
//! A shard the provider no longer holds (lost, or unreadable) is answered with an empty proof:
//! it fails and is slashed at once, which records the loss on the ledger in the epoch it is
//! found (keepers repair from that) rather than as a silent miss at the deadline. A shard that
//! a keeper told it to delete (a purge) is never answered that way: the provider remembers
//! purged shards it no longer holds and skips their challenges ([`ProveResult::Purged`]), so
//! a keeper cannot purge and then challenge a provider into a slash.
//!
//! Each order is proven once per epoch; later requests for the same epoch (from the other
//! keepers) get the same answer.
//!
//! Proofs are built from the whole shard as [`ShardStore::get`] returns it (the trait has no
//! ranged read); at the default 256 KiB shards that costs one read and one hash of the shard
//! per challenged order. A store with ranged reads could keep a
//! [`TreeCache`](memo_core::proof::TreeCache) per shard and read 16 KiB instead.

use crate::env::blocking;
use crate::ledger::Ledger;
use crate::ledger::tx::{TxError, TxSender};
use memo_core::contract::{
    Answer, Call, Challenge, Epoch, OrderId, Query, SettlementCall, SignedTx, StorageProof,
};
use memo_core::ownership::ShardStore;
use memo_core::proof::MerkleVerifier;
use memo_core::protocol::{ErrorCode, Response};
use memo_core::{Keypair, ShardId, wire};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// Most orders one prove request may name.
pub const MAX_ORDERS_PER_REQUEST: usize = 4096;
/// Most purged shard ids remembered (oldest forgotten first).
const PURGED_LIMIT: usize = 1 << 20;

/// A keeper's request to prove orders in an epoch (the body of `Request::Prove`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProveRequest {
    /// The epoch; must be the ledger's current epoch.
    pub epoch: Epoch,
    /// The orders to prove.
    pub orders: Vec<OrderId>,
}

/// What became of one requested order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProveResult {
    /// A proof transaction was signed and submitted (the ledger decides if it passes).
    Submitted(SignedTx),
    /// The ledger has no challenge for this order now (not running, not committed, not ours).
    NotChallenged,
    /// The challenged shard was purged on a keeper's request; not proven.
    Purged,
    /// Submitting failed.
    Failed(String),
}

/// One order's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProveAnswer {
    /// The order.
    pub order: OrderId,
    /// The result.
    pub result: ProveResult,
}

/// The provider's answer to a [`ProveRequest`] (the body of `Response::Proof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProveReport {
    /// The epoch.
    pub epoch: Epoch,
    /// One answer per distinct requested order, in request order.
    pub answers: Vec<ProveAnswer>,
}

impl ProveRequest {
    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }
    /// Decodes a bounded request.
    pub fn from_bytes(b: &[u8]) -> Result<Self, wire::WireError> {
        wire::decode(b, 16 + 10 * MAX_ORDERS_PER_REQUEST, "prove request")
    }
}

impl ProveReport {
    /// Canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }
    /// Decodes a bounded report.
    pub fn from_bytes(b: &[u8]) -> Result<Self, wire::WireError> {
        wire::decode(b, memo_core::transport::MAX_MESSAGE, "prove report")
    }
}

/// Why a prove request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProverError {
    /// The request names another epoch than the ledger's current one.
    #[error("request for epoch {asked}, the ledger is in epoch {current}")]
    WrongEpoch {
        /// The epoch asked.
        asked: Epoch,
        /// The ledger's epoch.
        current: Epoch,
    },
    /// The request is too large.
    #[error("{0} orders in one request")]
    TooMany(usize),
    /// The ledger failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

#[derive(Default)]
struct Done {
    epoch: Epoch,
    answers: BTreeMap<OrderId, ProveResult>,
}

/// A provider's prover: its ledger sender and what it proved this epoch.
pub struct Prover {
    tx: TxSender,
    verifier: MerkleVerifier,
    done: tokio::sync::Mutex<Done>,
    purged: Mutex<(HashSet<ShardId>, std::collections::VecDeque<ShardId>)>,
    record: Mutex<Record>,
}

/// How many epochs of its proof record a prover keeps ([`Prover::epochs`]).
pub const EPOCHS_KEPT: usize = 16;

/// The provider's proof record, as the ledger keeps it: the totals last read and when, and the
/// change of each epoch since.
#[derive(Default)]
struct Record {
    last: Option<(u64, [u64; 3])>,
    epochs: std::collections::VecDeque<EpochRecord>,
}

/// What the ledger settled for one provider during one epoch: its proofs passed, failed and
/// missed (from the provider's `ProofStats` on the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EpochRecord {
    /// The epoch during which these were settled.
    pub epoch: u64,
    /// Proofs verified and paid.
    pub passed: u64,
    /// Proofs that failed verification.
    pub failed: u64,
    /// Challenges with no proof by the deadline.
    pub missed: u64,
}

impl std::fmt::Debug for Prover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prover")
            .field("provider", &self.tx.account())
            .finish_non_exhaustive()
    }
}

impl Prover {
    /// A prover signing with the provider's `keypair` on `ledger`.
    pub fn new(keypair: Keypair, ledger: Arc<dyn Ledger>) -> Arc<Self> {
        Arc::new(Self {
            tx: TxSender::new(keypair, ledger),
            verifier: MerkleVerifier::new(),
            record: Mutex::default(),
            done: tokio::sync::Mutex::new(Done::default()),
            purged: Mutex::new(Default::default()),
        })
    }

    /// Remembers shards deleted on a keeper's purge (their challenges are skipped).
    pub fn note_purged(&self, shards: &[ShardId]) {
        let mut p = self.purged.lock().unwrap_or_else(|p| p.into_inner());
        for s in shards {
            if p.0.insert(*s) {
                p.1.push_back(*s);
            }
        }
        while p.1.len() > PURGED_LIMIT {
            if let Some(old) = p.1.pop_front() {
                p.0.remove(&old);
            }
        }
    }

    fn was_purged(&self, shard: &ShardId) -> bool {
        self.purged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(shard)
    }

    /// Once an epoch: warns if the ledger no longer offers this provider for new orders (its
    /// stake fell below the minimum after slashes, it is leaving, or it is full), saying why.
    /// The ledger's settlements of this provider's proofs, per epoch, oldest first (the last
    /// [`EPOCHS_KEPT`] epochs in which it was asked to prove).
    pub fn epochs(&self) -> Vec<EpochRecord> {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .epochs
            .iter()
            .copied()
            .collect()
    }

    /// Reads this provider's proof totals on the ledger at the start of `epoch`, and records
    /// what changed since the previous reading as that epoch's settlements.
    async fn record_epoch(&self, epoch: u64) {
        let me = self.tx.account();
        let Ok(Answer::Role(Some(r))) = self.tx.ledger().query(Query::Role(me)).await else {
            return;
        };
        let memo_core::contract::RoleInfo::Provider { stats, .. } = r.info else {
            return;
        };
        let now = [stats.proven, stats.failed, stats.missed];
        let mut rec = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, before)) = rec.last
            && at < epoch
        {
            rec.epochs.push_back(EpochRecord {
                epoch: at,
                passed: now[0].saturating_sub(before[0]),
                failed: now[1].saturating_sub(before[1]),
                missed: now[2].saturating_sub(before[2]),
            });
            while rec.epochs.len() > EPOCHS_KEPT {
                rec.epochs.pop_front();
            }
        }
        rec.last = Some((epoch, now));
    }

    async fn check_standing(&self) {
        let me = self.tx.account();
        let ledger = self.tx.ledger();
        let offered = matches!(ledger.query(Query::Providers).await,
            Ok(Answer::Providers(v)) if v.iter().any(|o| o.provider == me));
        if offered {
            return;
        }
        if let Ok(Answer::Role(Some(r))) = ledger.query(Query::Role(me)).await
            && let memo_core::contract::RoleInfo::Provider {
                stake,
                capacity,
                used,
                ..
            } = r.info
        {
            warn!(
                stake,
                used,
                capacity,
                "this provider gets no new orders: the ledger no longer offers it (its stake is \
                 below the minimum after slashes for failed or missed proofs, it is leaving, \
                 or it is full); add stake to return to placement"
            );
        }
    }

    /// Proves the requested orders (see the module docs) and reports what it did.
    pub async fn answer(
        &self,
        req: &ProveRequest,
        store: &dyn ShardStore,
    ) -> Result<ProveReport, ProverError> {
        if req.orders.len() > MAX_ORDERS_PER_REQUEST {
            return Err(ProverError::TooMany(req.orders.len()));
        }
        let mut done = self.done.lock().await;
        let me = self.tx.account();
        let challenges = match self.tx.ledger().query(Query::Challenges(me)).await {
            Ok(Answer::Challenges(c)) => c,
            Ok(other) => return Err(TxError::Unexpected(format!("{other:?}")).into()),
            Err(e) => return Err(TxError::Ledger(e).into()),
        };
        let current = match challenges.first() {
            Some(c) => c.epoch,
            None => match self.tx.ledger().head().await {
                Ok(h) => h.epoch,
                Err(e) => return Err(TxError::Ledger(e).into()),
            },
        };
        if req.epoch != current {
            return Err(ProverError::WrongEpoch {
                asked: req.epoch,
                current,
            });
        }
        if done.epoch != current {
            self.record_epoch(current).await;
            self.check_standing().await;
            *done = Done {
                epoch: current,
                answers: BTreeMap::new(),
            };
        }
        let by_order: BTreeMap<OrderId, &Challenge> =
            challenges.iter().map(|c| (c.order, c)).collect();
        let mut calls = Vec::new();
        let mut proving = Vec::new();
        let mut seen = HashSet::new();
        for order in req.orders.iter().filter(|o| seen.insert(**o)) {
            if done.answers.contains_key(order) {
                continue;
            }
            let Some(c) = by_order.get(order) else {
                done.answers.insert(*order, ProveResult::NotChallenged);
                continue;
            };
            let held = blocking(|| store.get(&c.shard));
            let proof = match held {
                Ok(Some(bytes)) => self.verifier.prove(c, &bytes).unwrap_or_default(),
                Ok(None) if self.was_purged(&c.shard) => {
                    done.answers.insert(*order, ProveResult::Purged);
                    continue;
                }
                Ok(None) => Vec::new(),
                Err(e) => {
                    warn!(shard = %c.shard.short(), "shard unreadable, reporting it lost: {e}");
                    Vec::new()
                }
            };
            if proof.is_empty() {
                warn!(order, shard = %c.shard.short(), "challenged shard not held");
            }
            calls.push(Call::Settlement(SettlementCall::SubmitProof(
                StorageProof {
                    order: *order,
                    epoch: current,
                    shard: c.shard,
                    proof,
                },
            )));
            proving.push(*order);
        }
        if !calls.is_empty() {
            match self.tx.send(calls).await {
                Ok(txs) => {
                    debug!(provider = %me.label(), epoch = current, proofs = txs.len(), "proofs submitted");
                    for (order, tx) in proving.iter().zip(txs) {
                        done.answers.insert(*order, ProveResult::Submitted(tx));
                    }
                }
                Err(e) => {
                    warn!(provider = %me.label(), "submitting proofs failed: {e}");
                    for order in &proving {
                        done.answers
                            .insert(*order, ProveResult::Failed(e.to_string()));
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        let answers = req
            .orders
            .iter()
            .filter(|o| seen.insert(**o))
            .map(|o| ProveAnswer {
                order: *o,
                result: done
                    .answers
                    .get(o)
                    .cloned()
                    .unwrap_or(ProveResult::NotChallenged),
            })
            .collect();
        Ok(ProveReport {
            epoch: current,
            answers,
        })
    }

    /// Proves every challenge the ledger has for this provider now, without being asked (a
    /// provider that does not want to depend on keepers' requests calls this once per epoch).
    pub async fn prove_all(&self, store: &dyn ShardStore) -> Result<ProveReport, ProverError> {
        let me = self.tx.account();
        let challenges = match self.tx.ledger().query(Query::Challenges(me)).await {
            Ok(Answer::Challenges(c)) => c,
            Ok(other) => return Err(TxError::Unexpected(format!("{other:?}")).into()),
            Err(e) => return Err(TxError::Ledger(e).into()),
        };
        let epoch = match challenges.first() {
            Some(c) => c.epoch,
            None => {
                return Ok(ProveReport {
                    epoch: 0,
                    answers: Vec::new(),
                });
            }
        };
        let req = ProveRequest {
            epoch,
            orders: challenges.iter().map(|c| c.order).collect(),
        };
        self.answer(&req, store).await
    }
}

/// Serves a `Request::Prove` for a provider: `prover` is its prover (if it runs with a
/// ledger), `from_keeper` whether the sender is one of its keepers.
pub async fn serve(
    prover: Option<&Arc<Prover>>,
    from_keeper: bool,
    body: &[u8],
    store: &dyn ShardStore,
) -> Response {
    let error = Response::error;
    if !from_keeper {
        return error(
            ErrorCode::Forbidden,
            "only keepers may ask for proofs".into(),
        );
    }
    let Some(prover) = prover else {
        return error(
            ErrorCode::Unavailable,
            "this provider runs without a ledger".into(),
        );
    };
    let req = match ProveRequest::from_bytes(body) {
        Ok(r) => r,
        Err(e) => return error(ErrorCode::BadRequest, e.to_string()),
    };
    match prover.answer(&req, store).await {
        Ok(report) => Response::Proof(report.to_bytes()),
        Err(e @ (ProverError::WrongEpoch { .. } | ProverError::TooMany(_))) => {
            error(ErrorCode::BadRequest, e.to_string())
        }
        Err(e) => error(ErrorCode::Unavailable, e.to_string()),
    }
}

//! The keeper's side of storage proofs: each epoch, challenge the providers it watches, see
//! their proofs onto the ledger, read the ledger's verdicts into a [`Reputation`], and place
//! new shards by it.
//!
//! # How an epoch runs
//!
//! The [`Challenger`] follows the ledger's blocks ([`Ledger::subscribe`]). At every block it
//! asks the ledger for each watched provider's challenges (`Query::Challenges`: one per live,
//! committed order, seeded by the epoch's beacon) and sends each provider one
//! `Request::Prove` ([`ProveRequest`]) for the orders it has not asked about yet this epoch.
//! The provider proves from its store and submits its own signed `SubmitProof` transactions
//! ([`crate::provider::prover`]); it returns them, and the keeper relays any the ledger has not seen, so
//! the proofs reach the ledger before the epoch's last block.
//!
//! When the first block of the next epoch arrives (the ledger has settled the epoch: paid the
//! passes, marked the misses), the challenger reads each asked order's outcome **from the
//! ledger** (the status of the provider's proof transaction, or the order's proof mark) and
//! records it in its [`Reputation`]: pass, fail (a proof that did not verify, already slashed
//! by the contract), or miss (no proof by the deadline). The result is an [`EpochReport`]
//! ([`Challenger::last_report`]).
//!
//! No keeper's word is trusted: the verdicts are the contract's, so colluding keepers cannot
//! make a cheating provider pass or an honest one fail. Every keeper that watches a provider
//! challenges it; the provider proves each order once per epoch and gives later askers the same
//! answer.
//!
//! # Placement
//!
//! New shards go where [`Challenger::choose`] says: by score, through
//! [`crate::keeper::placement`].
//!
//! # Purges
//!
//! When the keeper applies a delete that purges chunks, [`Challenger::on_purge`] ends
//! (`MarketCall::EndOrder`) every order of the holders whose committed shards are all purged,
//! and stops challenging orders whose challenged shard is purged. The contract lets a user's
//! keepers end the user's orders, so this needs the keeper to be one of the user's keepers on
//! the ledger (the local network matches every keeper to every user). An order only partly
//! purged keeps running (its escrow still pays for the shards left) and its purged shards are
//! not challenged, which gives its provider a missed mark when one of them is drawn: a known
//! limitation until commitments can shrink.
//!
//! # Repairs
//!
//! When the keeper's [`Repairer`](crate::keeper::repair::Repairer) has moved shards to new providers,
//! [`Challenger::record_repairs`] tells the ledger: one `FilesCall::Reassign` per moved shard
//! that its former holder held under a committed order. The contract moves the shard and its
//! share of the escrow to a new order of the new provider (committed to that shard), so from
//! the next epoch the new provider is challenged for it (`Query::Challenges` lists the new
//! order) and paid; the former holder's stake pays the keeper a repair penalty.

use crate::keeper::{Keeper, placement};
use crate::ledger::tx::TxSender;
use crate::ledger::{Ledger, TxStatus};
use crate::provider::prover::{ProveReport, ProveRequest, ProveResult};
use crate::transport::rpc::call;
use memo_core::contract::{
    Amount, Answer, Call, Epoch, FilesCall, Height, MarketCall, Order, OrderId,
    Outcome as TxOutcome, ProofMark, Query,
};
use memo_core::ownership::Purge;
use memo_core::proof::{Outcome, Reputation, Score};
use memo_core::protocol::{Request, Response};
use memo_core::transport::Transport;
use memo_core::{AccountId, Keypair, ShardId, Signed};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Challenger settings.
#[derive(Debug, Clone)]
pub struct ChallengerConfig {
    /// How long to wait for a provider's answer.
    pub prove_timeout: Duration,
    /// Epoch reports kept.
    pub history: usize,
}

impl Default for ChallengerConfig {
    fn default() -> Self {
        Self {
            prove_timeout: Duration::from_secs(5),
            history: 64,
        }
    }
}

/// One provider's epoch, as the ledger judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderEpoch {
    /// The provider.
    pub provider: AccountId,
    /// Orders challenged.
    pub challenged: u32,
    /// Proofs that verified on the ledger (the epoch is paid).
    pub passed: u32,
    /// Proofs that failed verification (slashed).
    pub failed: u32,
    /// Orders with no proof by the deadline (unpaid, a missed mark).
    pub missed: u32,
    /// Gross pay for the passed orders (the provider gets it less the keepers' fee).
    pub earned: Amount,
    /// Stake slashed for failed proofs.
    pub slashed: Amount,
    /// The provider's balance after the epoch was settled.
    pub balance: Amount,
    /// Its stake after the epoch.
    pub stake: Amount,
    /// Its reputation score after the epoch.
    pub score: Score,
}

/// One epoch's challenges and their outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: Epoch,
    /// Each challenged provider, by account.
    pub providers: Vec<ProviderEpoch>,
}

impl EpochReport {
    /// The entry of one provider.
    pub fn provider(&self, p: &AccountId) -> Option<&ProviderEpoch> {
        self.providers.iter().find(|x| x.provider == *p)
    }
}

struct Asked {
    per_epoch: Amount,
    /// The challenged shard.
    shard: ShardId,
    tx: Option<[u8; 32]>,
}

#[derive(Default)]
struct Round {
    epoch: Option<Epoch>,
    asked: BTreeMap<AccountId, BTreeMap<OrderId, Asked>>,
}

/// A keeper's challenger: schedules challenges, records outcomes, scores providers.
pub struct Challenger {
    ledger: Arc<dyn Ledger>,
    tx: TxSender,
    transport: Arc<dyn Transport>,
    config: ChallengerConfig,
    reputation: Mutex<Reputation>,
    /// The key this keeper's beacon secrets derive from (one per epoch: nothing to store, and
    /// nothing to grind).
    beacon_key: [u8; 32],
    /// The providers the ledger offers for new orders (active, staked at least the minimum,
    /// with free capacity), as of the last block; `None` before the first read.
    offered: Mutex<Option<BTreeSet<AccountId>>>,
    /// Shards whose proof failed on the ledger, for the repairer ([`Self::take_failed_proofs`]).
    failed_proofs: Mutex<Vec<(AccountId, ShardId)>>,
    round: tokio::sync::Mutex<Round>,
    epoch: AtomicU64,
    processed: watch::Sender<Height>,
    finalized: watch::Sender<Option<Epoch>>,
    reports: Mutex<VecDeque<EpochReport>>,
    purged: Mutex<BTreeSet<ShardId>>,
    ended: Mutex<BTreeSet<OrderId>>,
    repairs: Arc<Mutex<VecDeque<RecordedRepair>>>,
    /// Proofs passed, failed and missed over every settled epoch.
    totals: [AtomicU64; 3],
}

/// Proof outcomes a challenger has counted over every epoch it settled
/// ([`Challenger::proof_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProofTotals {
    /// Proofs that verified on the ledger.
    pub passed: u64,
    /// Proofs that failed verification.
    pub failed: u64,
    /// Challenges with no proof by the deadline.
    pub missed: u64,
}

/// Most recorded repairs [`Challenger::repairs`] keeps (oldest dropped first).
pub const REPAIRS_KEPT: usize = 4096;

/// A repair this keeper recorded on the ledger (see [`Challenger::record_repairs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRepair {
    /// The order the shard was committed under.
    pub order: OrderId,
    /// Its provider, which lost the shard.
    pub from: AccountId,
    /// The shard.
    pub shard: ShardId,
    /// The provider that holds it now.
    pub to: AccountId,
    /// What the ledger did: `Outcome::Reassigned` (the new order, the escrow moved, the
    /// penalty paid) or why it refused.
    pub result: Result<TxOutcome, memo_core::contract::Rejection>,
}

impl std::fmt::Debug for Challenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenger")
            .field("keeper", &self.tx.account())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Challenger {
    /// The (provider, shard) pairs whose storage proof the ledger failed since the last call:
    /// the repairer marks them lost, so they are rebuilt elsewhere.
    pub fn take_failed_proofs(&self) -> Vec<(AccountId, ShardId)> {
        std::mem::take(&mut *lock(&self.failed_proofs))
    }

    /// The ledger this challenger follows.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// A challenger for the keeper with `keypair` (it signs the keeper's ledger transactions)
    /// on `transport`, following `ledger`. Attach it with [`Keeper::set_challenger`] and start
    /// it with [`Challenger::spawn`].
    pub fn new(
        keypair: Keypair,
        transport: Arc<dyn Transport>,
        ledger: Arc<dyn Ledger>,
        config: ChallengerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            beacon_key: keypair.derive_secret("memo beacon v1"),
            tx: TxSender::new(keypair, ledger.clone()),
            ledger,
            transport,
            config,
            reputation: Mutex::new(Reputation::default()),
            failed_proofs: Mutex::new(Vec::new()),
            offered: Mutex::new(None),
            round: tokio::sync::Mutex::new(Round::default()),
            epoch: AtomicU64::new(0),
            processed: watch::channel(0).0,
            finalized: watch::channel(None).0,
            reports: Mutex::new(VecDeque::new()),
            purged: Mutex::new(BTreeSet::new()),
            ended: Mutex::new(BTreeSet::new()),
            repairs: Arc::default(),
            totals: Default::default(),
        })
    }

    /// Proof outcomes over every epoch this challenger settled.
    pub fn proof_totals(&self) -> ProofTotals {
        let [p, f, m] = &self.totals;
        ProofTotals {
            passed: p.load(Ordering::Relaxed),
            failed: f.load(Ordering::Relaxed),
            missed: m.load(Ordering::Relaxed),
        }
    }

    /// The epoch of the last block handled.
    pub fn epoch(&self) -> Epoch {
        self.epoch.load(Ordering::Relaxed)
    }

    /// The keepers' scores so far (a copy).
    pub fn reputation(&self) -> Reputation {
        lock(&self.reputation).clone()
    }

    /// The report of the last settled epoch: per provider, challenges passed, failed and
    /// missed, pay earned and stake slashed, as the ledger recorded them.
    pub fn last_report(&self) -> Option<EpochReport> {
        lock(&self.reports).back().cloned()
    }

    /// The reports kept (oldest first).
    pub fn reports(&self) -> Vec<EpochReport> {
        lock(&self.reports).iter().cloned().collect()
    }

    /// Waits until epoch `epoch` is settled and reported, and returns its report (an empty one
    /// if nobody was challenged in it).
    pub async fn wait_report(&self, epoch: Epoch) -> EpochReport {
        let mut rx = self.finalized.subscribe();
        let _ = rx.wait_for(|f| f.is_some_and(|f| f >= epoch)).await;
        lock(&self.reports)
            .iter()
            .find(|r| r.epoch == epoch)
            .cloned()
            .unwrap_or(EpochReport {
                epoch,
                providers: Vec::new(),
            })
    }

    /// The height of the last block whose challenges have all been sent and answered (or
    /// timed out).
    pub fn processed(&self) -> watch::Receiver<Height> {
        self.processed.subscribe()
    }

    /// Chooses `count` distinct providers among `providers` for one chunk, by reputation,
    /// drawing with `seed` (see [`placement::choose_from`]).
    pub fn choose(&self, providers: &[AccountId], count: usize, seed: &[u8; 32]) -> Vec<AccountId> {
        let offered: Vec<AccountId> = match &*lock(&self.offered) {
            Some(set) => providers
                .iter()
                .filter(|p| set.contains(p))
                .copied()
                .collect(),
            None => providers.to_vec(),
        };
        let rep = lock(&self.reputation);
        placement::choose_from(&rep, self.epoch(), &offered, count, seed)
    }

    /// This keeper's beacon secret for epoch `e`.
    fn beacon_secret(&self, e: Epoch) -> [u8; 32] {
        *blake3::keyed_hash(&self.beacon_key, &e.to_le_bytes()).as_bytes()
    }

    /// Asks the ledger `q` and takes the answer apart with `pick` (which hands back an answer of
    /// another kind); a failure or an unexpected answer is logged and is `None`.
    async fn read<T>(
        &self,
        q: Query,
        pick: impl FnOnce(Answer) -> Result<T, Box<Answer>>,
    ) -> Option<T> {
        match self.ledger.query(q.clone()).await.map(pick) {
            Ok(Ok(t)) => Some(t),
            Ok(Err(other)) => {
                warn!("unexpected ledger answer to {q:?}: {other:?}");
                None
            }
            Err(e) => {
                warn!("the ledger cannot answer {q:?}: {e}");
                None
            }
        }
    }

    /// Once an epoch: reveals the beacon secret this keeper committed to earlier and commits
    /// to this epoch's (`SettlementCall::Beacon`), so the next epoch's challenges depend on
    /// secrets no block producer knows in time. Best effort: a failure is logged (and a
    /// commitment left unrevealed is slashed by the ledger).
    async fn beacon_step(&self, epoch: Epoch) {
        let me = self.tx.account();
        let Some(standing) = self
            .read(Query::BeaconCommit(me), |a| match a {
                Answer::BeaconCommit(c) => Ok(c),
                other => Err(Box::new(other)),
            })
            .await
        else {
            return;
        };
        let reveal = match standing {
            Some((made, _)) if made >= epoch => return,
            Some((made, _)) => Some(self.beacon_secret(made)),
            None => None,
        };
        let commit = *blake3::hash(&self.beacon_secret(epoch)).as_bytes();
        let call = Call::Settlement(memo_core::contract::SettlementCall::Beacon {
            epoch,
            reveal,
            commit,
        });
        if let Err(e) = self.tx.send(vec![call]).await {
            warn!(epoch, "could not send the beacon step: {e}");
        }
    }

    /// Reads the market from the ledger: which providers may take new orders (a provider whose
    /// stake fell below the minimum leaves placement) and every provider's reputation record,
    /// which the ledger keeps, so every keeper scores alike and a restart loses nothing.
    pub async fn refresh_market(&self) {
        let Some(offers) = self
            .read(Query::Providers, |a| match a {
                Answer::Providers(o) => Ok(o),
                other => Err(Box::new(other)),
            })
            .await
        else {
            return;
        };
        let mut rep = lock(&self.reputation);
        for o in &offers {
            if o.stats.record.observations > 0 {
                rep.set_record(o.provider, o.stats.record);
            }
        }
        drop(rep);
        let set: BTreeSet<AccountId> = offers.iter().map(|o| o.provider).collect();
        let mut offered = lock(&self.offered);
        if let Some(before) = offered.as_ref() {
            for gone in before.difference(&set) {
                info!(provider = %gone.label(), "provider left placement: the ledger no longer offers it (stake below the minimum, leaving, or full)");
            }
        }
        *offered = Some(set);
    }

    /// Follows the ledger in the background, challenging `keeper`'s providers each epoch.
    pub fn spawn(self: &Arc<Self>, keeper: Weak<Keeper>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut blocks = me.ledger.subscribe();
            loop {
                let Some(k) = keeper.upgrade() else { break };
                let providers = k.providers();
                drop(k);
                match me.ledger.head().await {
                    Ok(head) => me.on_head(head.height, head.epoch, &providers).await,
                    Err(e) => warn!("ledger head unavailable: {e}"),
                }
                match blocks.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
                // Act on the newest head only.
                while let Ok(_) | Err(TryRecvError::Lagged(_)) = blocks.try_recv() {}
            }
            debug!("challenger stopped");
        })
    }

    /// Handles the head block: settles the previous epoch's report when a new epoch began,
    /// then challenges every order not asked about yet this epoch.
    async fn on_head(&self, height: Height, epoch: Epoch, providers: &[AccountId]) {
        let mut round = self.round.lock().await;
        if round.epoch != Some(epoch) {
            if let Some(prev) = round.epoch {
                let report = self.finalize(prev, &round.asked).await;
                let sum =
                    |f: fn(&ProviderEpoch) -> u32| report.providers.iter().map(f).sum::<u32>();
                info!(
                    keeper = %self.tx.account().label(),
                    epoch = prev,
                    providers = report.providers.len(),
                    challenged = sum(|p| p.challenged),
                    passed = sum(|p| p.passed),
                    failed = sum(|p| p.failed),
                    missed = sum(|p| p.missed),
                    "epoch settled"
                );
                for (total, n) in self.totals.iter().zip([
                    sum(|p| p.passed),
                    sum(|p| p.failed),
                    sum(|p| p.missed),
                ]) {
                    total.fetch_add(u64::from(n), Ordering::Relaxed);
                }
                let mut reports = lock(&self.reports);
                reports.push_back(report);
                while reports.len() > self.config.history.max(1) {
                    reports.pop_front();
                }
                drop(reports);
                self.finalized.send_replace(Some(prev));
            }
            round.epoch = Some(epoch);
            round.asked.clear();
            self.epoch.store(epoch, Ordering::Relaxed);
            self.beacon_step(epoch).await;
        }
        // Every block: a provider registers, fills up or is slashed below the minimum at any
        // block, and placement must follow.
        self.refresh_market().await;
        let mut work = Vec::new();
        for p in providers {
            let challenges = match self.ledger.query(Query::Challenges(*p)).await {
                Ok(Answer::Challenges(c)) => c,
                _ => continue,
            };
            let asked = round.asked.entry(*p).or_default();
            let fresh: Vec<_> = {
                let (ended, purged) = (lock(&self.ended), lock(&self.purged));
                challenges
                    .into_iter()
                    .filter(|c| c.epoch == epoch && !asked.contains_key(&c.order))
                    .filter(|c| !ended.contains(&c.order) && !purged.contains(&c.shard))
                    .collect()
            };
            if fresh.is_empty() {
                continue;
            }
            let orders = self.orders_of(p).await;
            for c in &fresh {
                let per_epoch = orders.get(&c.order).map_or(0, Order::per_epoch);
                asked.insert(
                    c.order,
                    Asked {
                        per_epoch,
                        shard: c.shard,
                        tx: None,
                    },
                );
            }
            work.push((*p, fresh.iter().map(|c| c.order).collect::<Vec<_>>()));
        }
        let answers = futures::future::join_all(
            work.into_iter()
                .map(|(p, orders)| async move { (p, self.ask(p, epoch, orders).await) }),
        )
        .await;
        for (p, report) in answers {
            let Some(report) = report else { continue };
            let Some(asked) = round.asked.get_mut(&p) else {
                continue;
            };
            for a in report.answers {
                if let (ProveResult::Submitted(tx), Some(entry)) =
                    (a.result, asked.get_mut(&a.order))
                    && tx.signer == p
                {
                    let digest = tx.digest();
                    entry.tx = Some(digest);
                    if let Ok(TxStatus::Unknown) = self.ledger.tx_status(digest).await
                        && let Err(e) = self.ledger.submit(tx).await
                    {
                        debug!(provider = %p.label(), "relaying a proof failed: {e}");
                    }
                }
            }
        }
        drop(round);
        self.processed.send_replace(height);
    }

    async fn orders_of(&self, who: &AccountId) -> BTreeMap<OrderId, Order> {
        match self.ledger.query(Query::OrdersOf(*who)).await {
            Ok(Answer::Orders(list)) => list.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The orders `who` provides that `wanted` accepts, each with the shards committed under
    /// it, in order id order. Orders the ledger shows no commitment for are left out.
    async fn commitments_of(
        &self,
        who: &AccountId,
        wanted: impl Fn(&OrderId) -> bool,
    ) -> Vec<(OrderId, Vec<ShardId>)> {
        let mut out = Vec::new();
        for (id, o) in self.orders_of(who).await {
            if o.provider != *who || !wanted(&id) {
                continue;
            }
            if let Ok(Answer::Commitment(Some(c))) = self.ledger.query(Query::Commitment(id)).await
            {
                out.push((id, c.shards));
            }
        }
        out
    }

    /// Asks `provider` to prove `orders` in `epoch`; `None` if it did not answer.
    async fn ask(
        &self,
        provider: AccountId,
        epoch: Epoch,
        orders: Vec<OrderId>,
    ) -> Option<ProveReport> {
        let n = orders.len();
        let req = Request::Prove {
            challenge: ProveRequest { epoch, orders }.to_bytes(),
        };
        let t = self.transport.as_ref();
        match tokio::time::timeout(self.config.prove_timeout, call(t, provider, &req)).await {
            Ok(Ok(Response::Proof(body))) => match ProveReport::from_bytes(&body) {
                Ok(r) if r.epoch == epoch => Some(r),
                Ok(r) => {
                    debug!(provider = %provider.label(), "answered for epoch {}", r.epoch);
                    None
                }
                Err(e) => {
                    warn!(provider = %provider.label(), "malformed prove report: {e}");
                    None
                }
            },
            Ok(Ok(other)) => {
                warn!(provider = %provider.label(), "unexpected answer to Prove: {other:?}");
                None
            }
            Ok(Err(e)) => {
                debug!(provider = %provider.label(), orders = n, "prove request failed: {e}");
                None
            }
            Err(_) => {
                debug!(provider = %provider.label(), orders = n, "prove request timed out");
                None
            }
        }
    }

    /// Reads epoch `e`'s outcomes from the ledger, records them, and builds the report.
    async fn finalize(
        &self,
        e: Epoch,
        asked: &BTreeMap<AccountId, BTreeMap<OrderId, Asked>>,
    ) -> EpochReport {
        let mut providers = Vec::new();
        for (p, orders) in asked {
            if orders.is_empty() {
                continue;
            }
            let mut entry = ProviderEpoch {
                provider: *p,
                challenged: orders.len() as u32,
                passed: 0,
                failed: 0,
                missed: 0,
                earned: 0,
                slashed: 0,
                balance: 0,
                stake: 0,
                score: Score(0),
            };
            let mut outcomes = Vec::with_capacity(orders.len());
            for (id, a) in orders {
                let from_tx = match a.tx {
                    Some(h) => match self.ledger.tx_status(h).await {
                        Ok(TxStatus::Included { outcome, .. }) => match outcome {
                            TxOutcome::ProofPassed => Some((Outcome::Pass, 0)),
                            TxOutcome::ProofFailed { slashed, .. } => {
                                Some((Outcome::Fail, slashed))
                            }
                            _ => None,
                        },
                        _ => None,
                    },
                    None => None,
                };
                let (outcome, slashed) = match from_tx {
                    Some(o) => o,
                    None => match self.ledger.query(Query::Order(*id)).await {
                        Ok(Answer::Order(Some(o))) if o.proof == Some(ProofMark::Passed(e)) => {
                            (Outcome::Pass, 0)
                        }
                        Ok(Answer::Order(Some(o))) if o.proof == Some(ProofMark::Failed(e)) => {
                            (Outcome::Fail, 0)
                        }
                        _ => (Outcome::Miss, 0),
                    },
                };
                match outcome {
                    Outcome::Pass => {
                        entry.passed += 1;
                        entry.earned += a.per_epoch;
                    }
                    Outcome::Fail => {
                        entry.failed += 1;
                        entry.slashed += slashed;
                        lock(&self.failed_proofs).push((*p, a.shard));
                    }
                    _ => entry.missed += 1,
                }
                outcomes.push(outcome);
            }
            if let Ok(Answer::Account(acc)) = self.ledger.query(Query::Account(*p)).await {
                entry.balance = acc.balance;
            }
            let mut role = None;
            if let Ok(Answer::Role(Some(r))) = self.ledger.query(Query::Role(*p)).await {
                entry.stake = r.stake();
                role = Some(r.info);
            }
            let mut rep = lock(&self.reputation);
            match &role {
                // The ledger's record of the provider (recorded at the same settlement).
                Some(memo_core::contract::RoleInfo::Provider { stats, .. })
                    if stats.record.observations > 0 =>
                {
                    rep.set_record(*p, stats.record)
                }
                _ => {
                    for o in outcomes {
                        rep.record(*p, e, o);
                    }
                }
            }
            entry.score = rep.score(p, e);
            drop(rep);
            providers.push(entry);
        }
        EpochReport {
            epoch: e,
            providers,
        }
    }

    /// Notes shards a new placement uses again (a chunk stored anew after a purge).
    pub fn placing(&self, shards: &[ShardId]) {
        let mut purged = lock(&self.purged);
        if !purged.is_empty() {
            for s in shards {
                purged.remove(s);
            }
        }
    }

    /// Ends the orders whose shards are all purged now (see the module docs). Returns the
    /// orders it asked the ledger to end.
    pub async fn on_purge(&self, purged: &[Purge]) -> Vec<OrderId> {
        let mut holders = BTreeSet::new();
        {
            let mut set = lock(&self.purged);
            for p in purged {
                for (holder, shard) in &p.shards {
                    set.insert(*shard);
                    holders.insert(*holder);
                }
            }
        }
        let mut to_end = Vec::new();
        for h in holders {
            let committed = self
                .commitments_of(&h, |id| !lock(&self.ended).contains(id))
                .await;
            for (id, shards) in committed {
                if shards.iter().all(|s| lock(&self.purged).contains(s)) {
                    to_end.push(id);
                }
            }
        }
        if to_end.is_empty() {
            return to_end;
        }
        lock(&self.ended).extend(to_end.iter().copied());
        let calls = to_end
            .iter()
            .map(|id| Call::Market(MarketCall::EndOrder { order: *id }))
            .collect();
        info!(keeper = %self.tx.account().label(), orders = ?to_end, "ending purged orders");
        self.send_logged(calls, "ending a purged order").await;
        to_end
    }

    /// `user`'s delete left it owning none of `shards` (`(holder, shard)`, of chunks it
    /// released or purged): for each order in which it owned some of them, sends its
    /// `MarketCall::Unshare` so that its share of their cost ends and it is refunded (see
    /// `docs/economics.md`). Orders of `user`'s own that nobody else owns a shard of need
    /// nothing (the purge ends them). Call before [`Self::on_purge`]: a share must be left
    /// while its order runs. Returns the orders it sent a leave for.
    pub async fn on_leave(&self, user: AccountId, shards: &[(AccountId, ShardId)]) -> Vec<OrderId> {
        // (order) → (the shards `user` owns there, whether someone else owns any of them).
        let mut owned: BTreeMap<OrderId, (Vec<ShardId>, bool)> = BTreeMap::new();
        for batch in shards.chunks(memo_core::contract::MAX_HOLDINGS_QUERY) {
            let Ok(Answer::Holdings(rows)) =
                self.ledger.query(Query::Holdings(batch.to_vec())).await
            else {
                warn!("could not read which orders hold deleted shards");
                return Vec::new();
            };
            for ((_, shard), rows) in batch.iter().zip(rows) {
                for (id, owner, _) in &rows {
                    if *owner == user {
                        let others = rows.iter().any(|(o, q, _)| o == id && *q != user);
                        let e = owned.entry(*id).or_default();
                        e.0.push(*shard);
                        e.1 |= others;
                    }
                }
            }
        }
        let mut leave = Vec::new();
        for (id, (shards, others)) in owned {
            let mine = !others
                && matches!(
                    self.ledger.query(Query::Order(id)).await,
                    Ok(Answer::Order(Some(o))) if o.user == user
                );
            if !mine {
                leave.push((id, shards));
            }
        }
        if leave.is_empty() {
            return Vec::new();
        }
        let ids: Vec<OrderId> = leave.iter().map(|(id, _)| *id).collect();
        let calls = leave
            .into_iter()
            .map(|(order, shards)| {
                Call::Market(MarketCall::Unshare {
                    order,
                    user,
                    shards,
                })
            })
            .collect();
        info!(keeper = %self.tx.account().label(), user = %user.label(), orders = ?ids, "leaving deleted shares");
        self.send_logged(calls, "leaving a deleted share").await;
        ids
    }

    /// Sends `calls` and logs, in the background, any that the ledger rejects (`what`).
    async fn send_logged(&self, calls: Vec<Call>, what: &'static str) {
        match self.tx.send(calls).await {
            Ok(txs) => {
                let ledger = self.ledger.clone();
                let hashes: Vec<[u8; 32]> = txs.iter().map(Signed::digest).collect();
                tokio::spawn(async move {
                    let r = crate::ledger::tx::wait_all(
                        ledger.as_ref(),
                        &hashes,
                        Duration::from_secs(60),
                    );
                    if let Ok(results) = r.await {
                        for e in results.into_iter().filter_map(Result::err) {
                            warn!("{what} was rejected: {e}");
                        }
                    }
                });
            }
            Err(e) => warn!("{what} failed: {e}"),
        }
    }
}

impl Challenger {
    /// Records repaired shards on the ledger: for each `(from, shard, to)` where `from` holds
    /// `shard` under a committed order, sends a `FilesCall::Reassign` moving it to `to` (see
    /// the module docs). Shards without an order are skipped. Returns the number of
    /// transactions sent; their outcomes are logged and kept ([`Challenger::repairs`]) once
    /// included.
    pub async fn record_repairs(&self, moves: &[(AccountId, ShardId, AccountId)]) -> usize {
        // (order, from, shard, to) of each move made under a committed order.
        let mut found: Vec<(OrderId, AccountId, ShardId, AccountId)> = Vec::new();
        let froms: BTreeSet<AccountId> = moves.iter().map(|m| m.0).collect();
        for from in froms {
            let committed: BTreeMap<ShardId, OrderId> = self
                .commitments_of(&from, |_| true)
                .await
                .into_iter()
                .flat_map(|(id, shards)| shards.into_iter().map(move |s| (s, id)))
                .collect();
            for (f, shard, to) in moves.iter().filter(|m| m.0 == from) {
                match committed.get(shard) {
                    Some(order) => found.push((*order, *f, *shard, *to)),
                    None => {
                        debug!(shard = %shard.short(), from = %f.label(), "repaired shard has no order")
                    }
                }
            }
        }
        if found.is_empty() {
            return 0;
        }
        let calls = found
            .iter()
            .map(|&(order, _, shard, to)| Call::Files(FilesCall::Reassign { order, shard, to }))
            .collect();
        let txs = match self.tx.send(calls).await {
            Ok(txs) => txs,
            Err(e) => {
                warn!(keeper = %self.tx.account().label(), shards = found.len(), "recording repairs on the ledger failed: {e}");
                return 0;
            }
        };
        let sent = txs.len();
        let hashes: Vec<[u8; 32]> = txs.iter().map(Signed::digest).collect();
        let (ledger, repairs, keeper) =
            (self.ledger.clone(), self.repairs.clone(), self.tx.account());
        tokio::spawn(async move {
            let results = match crate::ledger::tx::wait_all(
                ledger.as_ref(),
                &hashes,
                Duration::from_secs(60),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(keeper = %keeper.label(), "recorded repairs not confirmed: {e}");
                    return;
                }
            };
            for ((order, from, shard, to), result) in found.into_iter().zip(results) {
                let r = RecordedRepair {
                    order,
                    from,
                    shard,
                    to,
                    result,
                };
                match &r.result {
                    Ok(TxOutcome::Reassigned {
                        order,
                        moved,
                        shortfall,
                        penalty,
                    }) => info!(
                        keeper = %keeper.label(),
                        shard = %r.shard.short(),
                        from = %r.from.label(),
                        to = %r.to.label(),
                        old_order = r.order,
                        new_order = order,
                        moved,
                        shortfall,
                        penalty,
                        "repair recorded on the ledger"
                    ),
                    Ok(other) => debug!("reassign: {other:?}"),
                    Err(e) => warn!(
                        keeper = %keeper.label(),
                        shard = %r.shard.short(),
                        order = r.order,
                        "the ledger refused a repair: {e}"
                    ),
                }
                let mut kept = lock(&repairs);
                kept.push_back(r);
                while kept.len() > REPAIRS_KEPT {
                    kept.pop_front();
                }
            }
        });
        sent
    }

    /// The repairs recorded on the ledger so far (the last [`REPAIRS_KEPT`]), with the
    /// ledger's outcome, oldest first.
    pub fn repairs(&self) -> Vec<RecordedRepair> {
        lock(&self.repairs).iter().cloned().collect()
    }
}

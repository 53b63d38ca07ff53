//! Detection and repair, the keeper's async side (the rules are in [`memo_core::repair`]).
//!
//! A [`Repairer`] runs beside a [`Keeper`] and works in *rounds* (one every
//! [`RepairConfig::probe_interval`]):
//!
//! 1. **Liveness.** It probes every provider with a `ProviderStatus` request (bounded by
//!    [`RepairConfig::rpc_timeout`]). A provider that misses `suspect_after` consecutive probes
//!    is declared Suspect, after `lost_after` Lost; one answer makes it Healthy again (its Lost
//!    shards stay Lost). Declarations are keeper-signed [`KeeperOp::ProviderHealth`] operations
//!    in the shared log, so every keeper and `memo stat` agree.
//! 2. **Reports.** Clients report shards they could not read (`Request::ReportShards`); the
//!    keeper fetches each reported shard itself and marks it Lost only if the holder answers
//!    without it or with altered bytes (so a client cannot trigger repairs of healthy data).
//!    Storage proofs that the ledger failed need no such check: the keeper's challenger
//!    collects them and each round marks their shards Lost at once
//!    ([`Repairer::report_failed_proof`]).
//! 3. **Audit.** Without a ledger nothing else reads data that no client reads, so keepers
//!    sample it: each round, every provider that answered is audited by one keeper (the keeper
//!    of rank `round mod keepers`, so a dead keeper only slows audits down), which fetches
//!    [`RepairConfig::audit_shards`] of the shards the provider holds, in chunk-id order from a
//!    per-keeper cursor (a deterministic sweep that starts at a keeper-and-provider-dependent
//!    place), and verifies each against its id. A shard served altered or not at all is marked
//!    Lost (reason Corrupt or Missing). A provider found with a bad shard is then swept in full,
//!    [`RepairConfig::audit_burst`] shards per round, by the keeper that found it. Audit reads
//!    are bounded by `audit_shards` (`audit_burst` under scrutiny) shard lengths per provider
//!    per round, and counted apart from repair reads ([`RepairStats::audit_bytes`]).
//! 4. **Repair.** For each degraded chunk whose plan ([`memo_core::repair::plan`]) asks for
//!    work, the responsible keeper (XOR-closest to the chunk id; the next ones take over after
//!    [`RepairConfig::takeover_rounds`] rounds each, so a dead keeper's chunks are still
//!    repaired) fetches k shards, verifies each against its id, rebuilds exactly the missing
//!    ones without the chunk's secret ([`memo_core::codec::rebuild_shards`]), uploads each to a
//!    new provider chosen by rendezvous hashing among Healthy providers that hold no shard of
//!    the chunk, and appends one [`KeeperOp::Replace`] (compare-and-swap on the old holders).
//!    With a ledger (the keeper has a [`Challenger`](crate::keeper::challenger::Challenger)), the
//!    winner of that append then records the moves on the ledger
//!    ([`Challenger::record_repairs`](crate::keeper::challenger::Challenger::record_repairs)): each
//!    shard's order share moves to its new holder, paid from the former holder's stake. Then
//!    it asks the former holders to delete their copies.
//!
//! Repair traffic is bounded: at most [`RepairConfig::max_concurrent`] chunks at once, and reads
//! paced by a token bucket of [`RepairConfig::bytes_per_sec`], so users' reads are not starved.
//!
//! A keeper killed mid-repair loses nothing: the log holds only completed replacements; its
//! successor (or itself, restarted and replayed) plans the same repair and rendezvous picks the
//! same new holders, whose upload is found already there, so no shard is left orphaned (unless
//! the chosen provider failed meanwhile; then its copy is orphaned on a provider that is gone).

use crate::keeper::Keeper;
use crate::provider::client as provider_client;
use crate::transport::rpc::{RpcError, call};
use bytes::Bytes;
use memo_core::codec::rebuild_shards;
use memo_core::contract::{Answer, LAPSE_MEMORY, Query};
use memo_core::id::{AccountId, ChunkId, ShardId};
use memo_core::objects::ObjectOp;
use memo_core::ownership::ShardHealth;
use memo_core::protocol::{Request, Response};
use memo_core::repair::{
    KeeperOp, Liveness, LivenessPolicy, MAX_REPORTS, Move, Reason, RepairThreshold, ShardReport,
    plan, rank, rendezvous,
};
use memo_core::{Keypair, Signed, wire};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Epochs after a lapse before unpaid data is evicted, by default ([`RepairConfig::lapse_grace`]):
/// two days of one-hour epochs.
pub const DEFAULT_LAPSE_GRACE: u64 = 48;

/// Most client reports a keeper queues between rounds; more are dropped.
pub const MAX_QUEUED_REPORTS: usize = 4096;

/// Repair settings. Thresholds count probe rounds; see [`RepairConfig::for_epoch`].
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// Time between rounds (probe, check reports, start repairs).
    pub probe_interval: Duration,
    /// How long a probe, a shard fetch or an upload may take before it counts as failed.
    pub rpc_timeout: Duration,
    /// Missed probes before a provider is Suspect / Lost.
    pub liveness: LivenessPolicy,
    /// When a degraded chunk is repaired.
    pub threshold: RepairThreshold,
    /// Rounds a chunk or provider may wait for its responsible keeper before the keeper of the
    /// next rank acts (rank r acts after r × this).
    pub takeover_rounds: u64,
    /// Chunks being repaired at once by this keeper.
    pub max_concurrent: usize,
    /// Shard bytes per second this keeper reads for repair (`None`: unbounded).
    pub bytes_per_sec: Option<u64>,
    /// Client reports checked per round.
    pub reports_per_round: usize,
    /// How long fetching or uploading one shard may take (repair and audit); probes use
    /// [`RepairConfig::rpc_timeout`].
    pub transfer_timeout: Duration,
    /// Shards of each provider audited per round, across all keepers (0: no audits).
    pub audit_shards: usize,
    /// Shards per round audited of a provider found serving a bad shard, until all it holds
    /// were checked.
    pub audit_burst: usize,
    /// Orphan sweeps: shards a provider holds that no chunk places there (an interrupted put,
    /// a put that lost a dedup race, a repair whose replacement lost) are deleted once nobody
    /// has stored them for this long (`None`: no sweeps). It must exceed the longest put (from
    /// its first upload to its operation applied): the provider keeps any shard stored within
    /// it, so a put or repair in progress never loses its uploads.
    pub orphan_grace: Option<Duration>,
    /// Rounds between two sweep steps; each step lists up to 4096 shards of each provider this
    /// keeper is responsible for (the XOR-closest keeper) and sweeps the unplaced ones.
    pub sweep_every: u64,
    /// With a ledger: epochs after a user's storage order lapsed (its balance could not renew
    /// it) before its unpaid objects are evicted ([`KeeperOp::Evict`]): each epoch, the objects
    /// of users with a lapse from this many epochs ago back to [`LAPSE_MEMORY`] are checked,
    /// and those with a chunk that no live order of theirs holds are evicted by the
    /// responsible keeper (XOR-closest to the user and object; the next ones an epoch later
    /// each, in case it is gone). `None`: unpaid data is kept (neither challenged nor
    /// repaired). Must be under [`LAPSE_MEMORY`] epochs to take effect.
    pub lapse_grace: Option<u64>,
}

impl Default for RepairConfig {
    /// [`RepairConfig::for_epoch`] of 60 seconds.
    fn default() -> Self {
        Self::for_epoch(Duration::from_secs(60))
    }
}

impl RepairConfig {
    /// Settings tuned to a ledger epoch: four probes (rounds) per epoch, each allowed a quarter
    /// epoch (at most 10 s); a provider is Suspect after missing two (half an epoch) and Lost
    /// after missing eight (two epochs: it also missed a challenge); a dead keeper's work is
    /// taken over after one epoch per rank. Repair reads at most 64 MiB/s with 4 chunks at
    /// once; a shard transfer may take four rounds (1 to 30 s). One shard per provider is
    /// audited per round, 16 per round once one was found bad.
    ///
    /// With a 1-second epoch (a devnet): probes every 250 ms, Suspect after 0.5 s, Lost after
    /// 2 s; with 60 s: every 15 s, Suspect after 30 s, Lost after 2 minutes.
    pub fn for_epoch(epoch: Duration) -> Self {
        let probe_interval = (epoch / 4).max(Duration::from_millis(1));
        Self {
            probe_interval,
            rpc_timeout: probe_interval.clamp(Duration::from_millis(1), Duration::from_secs(10)),
            transfer_timeout: (probe_interval * 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
            audit_shards: 1,
            audit_burst: 16,
            orphan_grace: Some(Duration::from_secs(3600)),
            sweep_every: 16,
            lapse_grace: Some(DEFAULT_LAPSE_GRACE),
            liveness: LivenessPolicy {
                suspect_after: 2,
                lost_after: 8,
            },
            threshold: RepairThreshold::Eager,
            takeover_rounds: 4,
            max_concurrent: 4,
            bytes_per_sec: Some(64 << 20),
            reports_per_round: 256,
        }
    }
}

/// Counters of one keeper's repair work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepairStats {
    /// Rounds this repairer has run (probe, audit, sweep, reports, repairs).
    pub rounds: u64,
    /// Chunks whose missing shards were rebuilt and placed.
    pub chunks_repaired: u64,
    /// Shards rebuilt and placed.
    pub shards_restored: u64,
    /// Bytes of rebuilt shards placed.
    pub bytes_restored: u64,
    /// Shard bytes read from providers for repair.
    pub bytes_read: u64,
    /// Repairs that did not complete (not enough shards, no target, refused).
    pub failures: u64,
    /// Health declarations and shard marks this keeper appended.
    pub marks: u64,
    /// Shards fetched and verified by audits.
    pub audited_shards: u64,
    /// Shard bytes read by audits (not in `bytes_read`).
    pub audit_bytes: u64,
    /// Audited shards found altered or missing (each then marked Lost).
    pub audit_failures: u64,
    /// Orphan shards that providers deleted on this keeper's sweeps.
    pub orphans_swept: u64,
    /// Unpaid objects this keeper evicted after their lapse's grace.
    #[serde(default)]
    pub evicted: u64,
    /// Repairs put off because no provider could take the rebuilt shards (too few healthy
    /// providers outside the chunk's holders): nothing was read for them.
    #[serde(default)]
    pub deferred: u64,
}

/// The longest a failed repair of a chunk is put off, in rounds: failures double the wait from
/// one round up to this.
pub const MAX_BACKOFF_ROUNDS: u64 = 64;

#[derive(Default)]
struct Counters {
    chunks: AtomicU64,
    shards: AtomicU64,
    restored: AtomicU64,
    read: AtomicU64,
    failures: AtomicU64,
    marks: AtomicU64,
    audited: AtomicU64,
    audit_bytes: AtomicU64,
    audit_failures: AtomicU64,
    swept: AtomicU64,
    deferred: AtomicU64,
    evicted: AtomicU64,
    /// The ledger epoch whose lapses were last checked, plus one (0: none yet).
    lapse_epoch: AtomicU64,
}

/// A chunk whose repair failed: how often in a row, and the round before which it is not
/// tried again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: u64,
}

/// Where this keeper's audit sweeps stand.
#[derive(Default)]
struct AuditState {
    /// Per provider, the chunk whose shard was audited last.
    cursor: BTreeMap<AccountId, ChunkId>,
    /// Providers found with a bad shard: shards left to audit in their full sweep.
    scrutiny: BTreeMap<AccountId, usize>,
}

/// One shard an audit fetches.
struct AuditPick {
    provider: AccountId,
    chunk: ChunkId,
    index: u16,
    id: ShardId,
}

/// Paces repair reads to a byte rate (a token bucket that may go into debt by one request).
struct Budget {
    rate: Option<u64>,
    state: tokio::sync::Mutex<(tokio::time::Instant, f64)>,
}

impl Budget {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            state: tokio::sync::Mutex::new((tokio::time::Instant::now(), 0.0)),
        }
    }

    async fn take(&self, bytes: u64) {
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return;
        };
        let mut st = self.state.lock().await;
        let now = tokio::time::Instant::now();
        // At most one second of burst.
        let refill = now.duration_since(st.0).as_secs_f64() * rate as f64;
        st.1 = (st.1 + refill).min(rate as f64) - bytes as f64;
        st.0 = now;
        if st.1 < 0.0 {
            let wait = Duration::from_secs_f64(-st.1 / rate as f64);
            tokio::time::sleep(wait).await;
            st.0 = tokio::time::Instant::now();
            st.1 = 0.0;
        }
    }
}

/// A keeper's monitor and repairer. Create with [`Repairer::new`] and drive with
/// [`Repairer::round`], or let [`Repairer::start`] run rounds in the background.
pub struct Repairer {
    keeper: Arc<Keeper>,
    keypair: Keypair,
    config: RepairConfig,
    liveness: Mutex<Liveness>,
    round: AtomicU64,
    /// Round in which a target (provider or chunk) was first seen needing action.
    waiting: Mutex<BTreeMap<[u8; 32], u64>>,
    in_flight: Mutex<BTreeSet<ChunkId>>,
    /// Chunks whose repair failed, put off with exponential backoff and jitter.
    backoff: Mutex<BTreeMap<ChunkId, Backoff>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    slots: Arc<Semaphore>,
    budget: Budget,
    counters: Counters,
    audit: Mutex<AuditState>,
    /// Per provider: the last shard id the sweep listed (`None`: start from the first).
    sweep: Mutex<BTreeMap<AccountId, ShardId>>,
}

/// Queues clients' reports on `keeper` for its repairer (bounded; extra reports are dropped).
pub(crate) fn queue_reports(keeper: &Keeper, reports: &[ShardReport]) {
    let mut q = keeper.reports.lock().unwrap_or_else(|p| p.into_inner());
    let room = MAX_QUEUED_REPORTS.saturating_sub(q.len());
    q.extend(reports.iter().take(room.min(MAX_REPORTS)).copied());
}

fn severity(h: ShardHealth) -> u8 {
    match h {
        ShardHealth::Healthy => 0,
        ShardHealth::Suspect => 1,
        ShardHealth::Lost => 2,
    }
}

/// Why a shard needed rebuilding, for the logs.
fn why(shard: ShardHealth, holder: Option<ShardHealth>) -> &'static str {
    match (shard, holder) {
        (_, None) => "never placed",
        (_, Some(ShardHealth::Lost)) => "holder declared lost (unresponsive)",
        (ShardHealth::Lost, _) => "shard lost (served altered or missing, or failed a proof)",
        (ShardHealth::Suspect, _) => "holder suspect and no margin left",
        (ShardHealth::Healthy, _) => "rebalanced",
    }
}

/// What a holder's answer to a fetch of shard `id` says: nothing wrong (`None`), or why the
/// shard is lost (not served, or served altered).
fn verdict(id: ShardId, got: Option<&[u8]>) -> Option<Reason> {
    match got {
        None => Some(Reason::Missing),
        Some(b) if ShardId::of(b) != id => Some(Reason::Corrupt),
        Some(_) => None,
    }
}

fn timeout_error(peer: AccountId) -> RpcError {
    RpcError::Transport(memo_core::transport::TransportError::Timeout(peer))
}

impl Repairer {
    /// A repairer for `keeper`, signing with the keeper's `keypair` (whose account must be in
    /// the keepers' [`KeeperConfig::keepers`](crate::keeper::KeeperConfig::keepers)).
    pub fn new(keeper: Arc<Keeper>, keypair: Keypair, config: RepairConfig) -> Arc<Self> {
        Arc::new(Self {
            keeper,
            liveness: Mutex::new(Liveness::new(config.liveness)),
            keypair,
            round: AtomicU64::new(0),
            waiting: Mutex::default(),
            in_flight: Mutex::default(),
            backoff: Mutex::default(),
            tasks: Mutex::default(),
            slots: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            budget: Budget::new(config.bytes_per_sec),
            counters: Counters::default(),
            audit: Mutex::default(),
            sweep: Mutex::default(),
            config,
        })
    }

    /// Runs a round every [`RepairConfig::probe_interval`] until the task is aborted.
    pub fn start(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.probe_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.round().await;
            }
        })
    }

    /// The keeper this repairer serves.
    pub fn keeper(&self) -> &Arc<Keeper> {
        &self.keeper
    }

    /// Counters so far.
    pub fn stats(&self) -> RepairStats {
        let c = &self.counters;
        RepairStats {
            rounds: self.round.load(Ordering::Relaxed),
            chunks_repaired: c.chunks.load(Ordering::Relaxed),
            shards_restored: c.shards.load(Ordering::Relaxed),
            bytes_restored: c.restored.load(Ordering::Relaxed),
            bytes_read: c.read.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            marks: c.marks.load(Ordering::Relaxed),
            audited_shards: c.audited.load(Ordering::Relaxed),
            audit_bytes: c.audit_bytes.load(Ordering::Relaxed),
            audit_failures: c.audit_failures.load(Ordering::Relaxed),
            orphans_swept: c.swept.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            deferred: c.deferred.load(Ordering::Relaxed),
        }
    }

    fn state(
        &self,
    ) -> std::sync::MutexGuard<'_, memo_core::objects::Objects<memo_core::ownership::MemoryMeta>>
    {
        self.keeper.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if this keeper should act on `target` in round `now` (see the module docs).
    fn my_turn(&self, target: &[u8; 32], now: u64) -> bool {
        let keepers = self.state().keepers().clone();
        let Some(r) = rank(&keepers, &self.keypair.account(), target) else {
            return false;
        };
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let first = *w.entry(*target).or_insert(now);
        now - first >= r as u64 * self.config.takeover_rounds
    }

    fn settled(&self, target: &[u8; 32]) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
    }

    /// Signs `op`, appends it to the log and waits until it is applied. `Ok(false)` if it was
    /// refused (for example stale).
    async fn append(&self, op: KeeperOp) -> bool {
        let env = crate::replication::stamp(
            self.keeper.env(),
            ObjectOp::Keeper(op),
            crate::replication::OP_VALIDITY,
        );
        let signed = Signed::sign(&self.keypair, &env);
        match self.keeper.submit(&wire::encode(&signed)).await {
            Response::Submitted { .. } => true,
            Response::Error(e) => {
                debug!(keeper = %self.keypair.account().label(), "keeper op refused: {e}");
                false
            }
            _ => false,
        }
    }

    async fn rpc(&self, peer: AccountId, req: &Request) -> Result<Response, RpcError> {
        self.rpc_within(self.config.rpc_timeout, peer, req).await
    }

    async fn rpc_within(
        &self,
        limit: Duration,
        peer: AccountId,
        req: &Request,
    ) -> Result<Response, RpcError> {
        let t = self.keeper.transport.as_ref();
        tokio::time::timeout(limit, call(t, peer, req))
            .await
            .unwrap_or_else(|_| Err(timeout_error(peer)))
    }

    /// Fetches one shard within [`RepairConfig::transfer_timeout`].
    async fn fetch(&self, peer: AccountId, shard: ShardId) -> Result<Response, RpcError> {
        self.rpc_within(
            self.config.transfer_timeout,
            peer,
            &Request::GetShard { shard },
        )
        .await
    }

    /// One round: probe providers, declare health changes, audit, check reports, start
    /// repairs. Returns without waiting for the repairs ([`Repairer::settle`] waits).
    pub async fn round(self: &Arc<Self>) {
        let now = self.round.fetch_add(1, Ordering::Relaxed);
        let answered = self.probe(now).await;
        self.audit(now, &answered).await;
        self.sweep(now, &answered).await;
        self.check_reports().await;
        self.check_failed_proofs().await;
        self.evict_unpaid().await;
        self.start_repairs(now);
    }

    /// Once per ledger epoch: evicts the objects whose payment lapsed more than
    /// [`RepairConfig::lapse_grace`] epochs ago (see there) and that this keeper is
    /// responsible for: the XOR-closest keeper to (user, object) at the grace, the next ones an
    /// epoch later each. A ledger that cannot be read evicts nothing.
    async fn evict_unpaid(&self) {
        let (Some(c), Some(grace)) = (self.keeper.challenger(), self.config.lapse_grace) else {
            return;
        };
        let Ok(head) = c.ledger().head().await else {
            return;
        };
        let epoch = head.epoch;
        if self.counters.lapse_epoch.swap(epoch + 1, Ordering::Relaxed) == epoch + 1 {
            return;
        }
        let Some(to) = epoch.checked_sub(grace) else {
            return;
        };
        let from = epoch.saturating_sub(LAPSE_MEMORY - 1);
        let Ok(Answer::LapsedUsers(users)) =
            c.ledger().query(Query::LapsedBetween { from, to }).await
        else {
            return;
        };
        let keepers = self.state().keepers().clone();
        let me = self.keypair.account();
        for user in users {
            // The user's earliest lapse still remembered.
            let Ok(Answer::Lapsed(lapses)) = c.ledger().query(Query::Lapsed(user)).await else {
                continue;
            };
            let Some(lapsed) = lapses.iter().map(|(e, _, _)| *e).min() else {
                continue;
            };
            for object in self.unpaid_objects(c.ledger().as_ref(), user, epoch).await {
                let mut target = *user.as_bytes();
                for (t, o) in target.iter_mut().zip(object.0) {
                    *t ^= o;
                }
                // The XOR-closest keeper evicts once the grace is over; each next one takes
                // over an epoch later, in case those before it are gone.
                let Some(r) = rank(&keepers, &me, &target) else {
                    continue;
                };
                if lapsed + grace + r as u64 > epoch {
                    continue;
                }
                if self.append(KeeperOp::Evict { user, object }).await {
                    self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                    info!(user = %user.label(), object = %object, "evicted an object whose storage orders lapsed");
                }
            }
        }
    }

    /// `user`'s objects with a chunk that no live order (paying past `epoch + 1`) of theirs
    /// holds a placed shard of.
    async fn unpaid_objects(
        &self,
        ledger: &dyn crate::ledger::Ledger,
        user: AccountId,
        epoch: u64,
    ) -> Vec<memo_core::ObjectId> {
        // Each object's chunks' placed shards, as (object index, chunk index) per pair.
        let (objects, pairs, at) = {
            let st = self.state();
            let objects: Vec<memo_core::ObjectId> = st.list(&user).iter().map(|e| e.id).collect();
            let mut pairs = Vec::new();
            let mut at = Vec::new();
            for (oi, o) in objects.iter().enumerate() {
                for (ci, chunk) in st
                    .object_chunks(&user, o)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    for pair in st.held_shards(chunk).unwrap_or_default() {
                        pairs.push(pair);
                        at.push((oi, ci));
                    }
                }
            }
            (objects, pairs, at)
        };
        let mut paid: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut chunks: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (batch, at) in pairs
            .chunks(memo_core::contract::MAX_HOLDINGS_QUERY)
            .zip(at.chunks(memo_core::contract::MAX_HOLDINGS_QUERY))
        {
            let Ok(Answer::Holdings(rows)) = ledger.query(Query::Holdings(batch.to_vec())).await
            else {
                return Vec::new();
            };
            for (rows, at) in rows.iter().zip(at) {
                chunks.insert(*at);
                if memo_core::contract::live_holdings(rows, epoch)
                    .any(|(_, owner, _)| *owner == user)
                {
                    paid.insert(*at);
                }
            }
        }
        let unpaid: BTreeSet<usize> = chunks.difference(&paid).map(|(oi, _)| *oi).collect();
        unpaid.into_iter().map(|oi| objects[oi]).collect()
    }

    /// Marks lost the shards whose storage proof the ledger failed (the keeper's challenger
    /// collects them), so a failed proof leads to repair.
    async fn check_failed_proofs(&self) {
        let Some(c) = self.keeper.challenger() else {
            return;
        };
        for (provider, shard) in c.take_failed_proofs() {
            if self.report_failed_proof(provider, shard).await {
                info!(provider = %provider.label(), shard = %shard.short(), "a failed storage proof marks its shard for repair");
            }
        }
    }

    /// Stops every repair in progress at whatever step it is (as if the keeper was killed).
    pub fn abort(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Waits until every repair started so far has finished.
    pub async fn settle(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> =
                std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    /// One step of the orphan sweep (see [`RepairConfig::orphan_grace`]): for each provider
    /// that answered and for which this keeper is the XOR-closest, list the next page of its
    /// shards and ask it to delete those no chunk places on it, if idle for the grace.
    async fn sweep(&self, now: u64, answered: &BTreeSet<AccountId>) {
        let Some(grace) = self.config.orphan_grace else {
            return;
        };
        if !now.is_multiple_of(self.config.sweep_every.max(1)) {
            return;
        }
        let me = self.keypair.account();
        let mine: Vec<AccountId> = {
            let st = self.state();
            answered
                .iter()
                .filter(|p| rank(st.keepers(), &me, p.as_bytes()) == Some(0))
                .copied()
                .collect()
        };
        const PAGE: u32 = 4096;
        for p in mine {
            let after = self
                .sweep
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p)
                .copied();
            let listed = match self.rpc(p, &Request::ListShards { after, max: PAGE }).await {
                Ok(Response::ShardList(ids)) => ids,
                Ok(_) | Err(_) => continue,
            };
            {
                let mut cursors = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
                match listed.last() {
                    Some(last) if listed.len() == PAGE as usize => cursors.insert(p, *last),
                    _ => cursors.remove(&p),
                };
            }
            if listed.is_empty() {
                continue;
            }
            // The shards the registry places on p (read after listing: anything placed
            // meanwhile is either here or was stored within the grace). A chunk that cannot
            // be read would make its shards look unplaced: sweep nothing on p this round.
            let placed: Result<std::collections::HashSet<ShardId>, _> = self
                .state()
                .shards_on(&p)
                .map(|r| r.map(|(_, _, s)| s.id))
                .collect();
            let placed = match placed {
                Ok(placed) => placed,
                Err(e) => {
                    warn!(provider = %p.label(), error = %e, "cannot read what this provider holds; no orphan sweep");
                    continue;
                }
            };
            let orphans: Vec<ShardId> = listed
                .into_iter()
                .filter(|id| !placed.contains(id))
                .collect();
            if orphans.is_empty() {
                continue;
            }
            let req = Request::SweepShards {
                shards: orphans,
                idle_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            };
            if let Ok(Response::Deleted(n)) = self.rpc(p, &req).await
                && n > 0
            {
                self.counters.swept.fetch_add(n, Ordering::Relaxed);
                info!(provider = %p.label(), shards = n, "swept orphan shards (placed by no chunk)");
            }
        }
    }

    /// Probes every provider; returns those that answered.
    async fn probe(&self, now: u64) -> BTreeSet<AccountId> {
        let mut providers: BTreeSet<AccountId> = self
            .keeper
            .providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        providers.extend(self.state().holders().copied());
        let probes = providers.iter().map(|p| async move {
            let ok = match self.rpc(*p, &Request::ProviderStatus).await {
                Ok(Response::ProviderStatus { room, .. }) => {
                    self.keeper.set_room(*p, room);
                    true
                }
                _ => false,
            };
            (*p, ok)
        });
        let results = futures::future::join_all(probes).await;
        let answered: BTreeSet<AccountId> = results
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(p, _)| *p)
            .collect();
        for (p, ok) in results {
            let derived = self
                .liveness
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(p, ok);
            let declared = self.state().provider_health(&p);
            // An answer heals at once; silence only escalates (a keeper that just started has
            // no history, and must not undo another keeper's declaration from it).
            let act = if ok {
                declared != ShardHealth::Healthy
            } else {
                severity(derived) > severity(declared)
            };
            if !act {
                self.settled(p.as_bytes());
                continue;
            }
            let derived = if ok { ShardHealth::Healthy } else { derived };
            if !self.my_turn(p.as_bytes(), now) {
                continue;
            }
            let reason = if ok {
                Reason::Answering
            } else {
                Reason::Unresponsive
            };
            let misses = self
                .liveness
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .misses(&p);
            info!(provider = %p.label(), from = ?declared, to = ?derived, misses, ?reason, "provider health changed");
            if self
                .append(KeeperOp::ProviderHealth {
                    provider: p,
                    health: derived,
                    reason,
                })
                .await
            {
                self.counters.marks.fetch_add(1, Ordering::Relaxed);
                self.settled(p.as_bytes());
            }
        }
        answered
    }

    /// The shards this keeper audits in round `now` (see the module docs), advancing its
    /// cursors.
    fn audit_picks(&self, now: u64, answered: &BTreeSet<AccountId>) -> Vec<AuditPick> {
        let me = self.keypair.account();
        let st = self.state();
        let keepers = st.keepers();
        let n = keepers.len().max(1) as u64;
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for p in answered {
            if st.provider_health(p) != ShardHealth::Healthy {
                continue;
            }
            let scrutiny = audit.scrutiny.get(p).copied();
            let want = match scrutiny {
                Some(_) => self.config.audit_burst.max(1),
                None => {
                    let Some(r) = rank(keepers, &me, p.as_bytes()) else {
                        return Vec::new();
                    };
                    if now % n != r as u64 % n {
                        continue;
                    }
                    self.config.audit_shards
                }
            };
            // Start where this keeper stopped last time (first: a place derived from both).
            let cursor = *audit.cursor.entry(*p).or_insert_with(|| {
                let mut h = blake3::Hasher::new();
                h.update(b"memo/audit-start/v1");
                h.update(me.as_bytes());
                h.update(p.as_bytes());
                ChunkId(*h.finalize().as_bytes())
            });
            let mut taken = 0usize;
            let mut last = None;
            for c in st.held_by_from(p, &cursor) {
                if taken >= want {
                    break;
                }
                last = Some(*c);
                if in_flight.contains(c) {
                    continue;
                }
                let Ok(Some(entry)) = st.ownership().chunk(c) else {
                    continue;
                };
                let slot = entry
                    .shards
                    .iter()
                    .enumerate()
                    .find(|(_, s)| s.holder == Some(*p) && s.health == ShardHealth::Healthy);
                let Some((i, s)) = slot else { continue };
                let Ok(index) = u16::try_from(i) else {
                    continue;
                };
                taken += 1;
                out.push(AuditPick {
                    provider: *p,
                    chunk: *c,
                    index,
                    id: s.id,
                });
            }
            if let Some(l) = last {
                audit.cursor.insert(*p, l);
            }
            if let Some(left) = scrutiny {
                let left = left.saturating_sub(taken.max(1));
                if left == 0 {
                    info!(provider = %p.label(), "full audit sweep done");
                    audit.scrutiny.remove(p);
                } else {
                    audit.scrutiny.insert(*p, left);
                }
            }
        }
        out
    }

    /// Audits a sample of the shards providers hold (see the module docs); marks those served
    /// altered or not at all Lost.
    async fn audit(&self, now: u64, answered: &BTreeSet<AccountId>) {
        if self.config.audit_shards == 0 && self.config.audit_burst == 0 {
            return;
        }
        let picks = self.audit_picks(now, answered);
        if picks.is_empty() {
            return;
        }
        let got = futures::future::join_all(
            picks
                .iter()
                .map(|a| async move { (a, self.fetch(a.provider, a.id).await) }),
        )
        .await;
        for (a, r) in got {
            let reason = match r {
                Ok(Response::Shard(bytes)) => {
                    self.counters.audited.fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = &bytes {
                        self.counters
                            .audit_bytes
                            .fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    match verdict(a.id, bytes.as_deref()) {
                        Some(reason) => reason,
                        None => continue,
                    }
                }
                _ => {
                    debug!(provider = %a.provider.label(), shard = %a.id.short(), "audit fetch failed");
                    continue;
                }
            };
            self.counters.audit_failures.fetch_add(1, Ordering::Relaxed);
            warn!(provider = %a.provider.label(), chunk = %a.chunk.short(), index = a.index, ?reason, "audit found a bad shard; sweeping the provider");
            let held = self.state().held_by(&a.provider).count();
            self.audit
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .scrutiny
                .insert(a.provider, held);
            self.mark_lost(a.chunk, a.index, a.provider, reason).await;
        }
    }

    /// Checks queued client reports: a shard is marked Lost only if its holder answers without
    /// it or with bytes that do not match its id.
    async fn check_reports(&self) {
        let batch: Vec<ShardReport> = {
            let mut q = self
                .keeper
                .reports
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(self.config.reports_per_round);
            let mut b: Vec<ShardReport> = q.drain(..n).collect();
            b.sort_unstable();
            b.dedup();
            b
        };
        for r in batch {
            let shard = {
                let st = self.state();
                match st.ownership().chunk(&r.chunk) {
                    Ok(Some(e)) => e
                        .shards
                        .get(r.index as usize)
                        .filter(|s| s.holder == Some(r.holder) && s.health != ShardHealth::Lost)
                        .map(|s| s.id),
                    _ => None,
                }
            };
            let Some(id) = shard else { continue };
            let Ok(Response::Shard(got)) = self.fetch(r.holder, id).await else {
                continue;
            };
            let Some(reason) = verdict(id, got.as_deref()) else {
                continue;
            };
            self.mark_lost(r.chunk, r.index, r.holder, reason).await;
        }
    }

    async fn mark_lost(&self, chunk: ChunkId, index: u16, holder: AccountId, reason: Reason) {
        warn!(chunk = %chunk.short(), index, holder = %holder.label(), ?reason, "shard lost");
        if self
            .append(KeeperOp::MarkShard {
                chunk,
                index,
                holder,
                health: ShardHealth::Lost,
                reason,
            })
            .await
        {
            self.counters.marks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The hook for storage proofs: `provider` failed the proof of `shard`, as the ledger
    /// verified (each round takes them from the keeper's challenger). Marks the shard Lost so
    /// it is rebuilt elsewhere. Returns false if the provider holds no such shard (nothing to
    /// do).
    pub async fn report_failed_proof(&self, provider: AccountId, shard: ShardId) -> bool {
        let found = self.state().find_shard(&provider, &shard).ok().flatten();
        let Some((chunk, index)) = found else {
            return false;
        };
        let Ok(index) = u16::try_from(index) else {
            return false;
        };
        self.mark_lost(chunk, index, provider, Reason::FailedProof)
            .await;
        true
    }

    fn start_repairs(self: &Arc<Self>, now: u64) {
        let degraded: Vec<ChunkId> = self.state().degraded().copied().collect();
        // A chunk repaired meanwhile (by another keeper) is not put off any more.
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c, _| degraded.binary_search(c).is_ok());
        self.keeper.forget_notes(&degraded);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        for chunk in degraded {
            if self.needs_repair(&chunk).is_none() {
                self.settled(chunk.as_bytes());
                continue;
            }
            if !self.my_turn(chunk.as_bytes(), now) {
                continue;
            }
            let put_off = self
                .backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&chunk)
                .is_some_and(|b| b.until > now);
            if put_off {
                continue;
            }
            if !self
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(chunk)
            {
                continue;
            }
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = me.slots.clone().acquire_owned().await else {
                    return;
                };
                match me.repair_chunk(chunk).await {
                    Ok(()) => {
                        me.settled(chunk.as_bytes());
                        me.backoff
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&chunk);
                        me.keeper.note_degraded(chunk, None);
                    }
                    Err(why) => {
                        me.counters.failures.fetch_add(1, Ordering::Relaxed);
                        me.put_off(chunk, now, &why);
                        me.keeper.note_degraded(chunk, Some(why));
                    }
                }
                me.in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&chunk);
            }));
        }
    }

    /// Puts off the next repair of `chunk` after a failure in round `now`: 2^failures rounds,
    /// up to [`MAX_BACKOFF_ROUNDS`], less a random quarter (so keepers do not retry in step).
    fn put_off(&self, chunk: ChunkId, now: u64, why: &str) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let b = backoff.entry(chunk).or_insert(Backoff {
            failures: 0,
            until: now,
        });
        b.failures = b.failures.saturating_add(1);
        let wait = (1u64 << b.failures.min(6)).min(MAX_BACKOFF_ROUNDS);
        let jitter = self.keeper.env().below(wait / 4 + 1);
        b.until = now + wait - jitter;
        if b.failures == 1 || wait == MAX_BACKOFF_ROUNDS && (b.failures - 1).is_multiple_of(8) {
            warn!(chunk = %chunk.short(), failures = b.failures, rounds = wait - jitter, "repair failed ({why}); trying again later");
        } else {
            debug!(chunk = %chunk.short(), failures = b.failures, rounds = wait - jitter, "repair failed ({why}); trying again later");
        }
    }

    /// Chunks whose repair is put off, with the failures in a row so far.
    pub fn backing_off(&self) -> Vec<(ChunkId, u32)> {
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(c, b)| (*c, b.failures))
            .collect()
    }

    /// Whether a live storage order on the ledger holds any shard of the chunk (always true
    /// without a ledger, or when the ledger cannot be read: an outage must not stop repair).
    async fn is_paid(&self, snap: &Snapshot) -> bool {
        let Some(c) = self.keeper.challenger() else {
            return true;
        };
        let pairs: Vec<(AccountId, ShardId)> = snap
            .holders
            .iter()
            .zip(&snap.ids)
            .filter_map(|(h, s)| h.map(|h| (h, *s)))
            .collect();
        match c
            .ledger()
            .query(memo_core::contract::Query::Holdings(pairs))
            .await
        {
            Ok(memo_core::contract::Answer::Holdings(h)) => h.iter().any(|o| !o.is_empty()),
            _ => true,
        }
    }

    fn needs_repair(&self, chunk: &ChunkId) -> Option<(memo_core::repair::RepairPlan, Snapshot)> {
        let st = self.state();
        let entry = st.ownership().chunk(chunk).ok().flatten()?;
        let k = st.data_shards(chunk)? as usize;
        let p = plan(&entry, k, self.config.threshold)?;
        let eligible: Vec<AccountId> = self
            .keeper
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| st.provider_health(p) == ShardHealth::Healthy)
            .copied()
            .collect();
        Some((
            p,
            Snapshot {
                k,
                ids: entry.shards.iter().map(|s| s.id).collect(),
                holders: entry.shards.iter().map(|s| s.holder).collect(),
                health: entry.shards.iter().map(|s| s.health).collect(),
                holder_health: entry
                    .shards
                    .iter()
                    .map(|s| s.holder.map(|h| st.provider_health(&h)))
                    .collect(),
                stored_bytes: entry.stored_bytes,
                eligible,
            },
        ))
    }

    /// Repairs one chunk: `Ok` if every shard of its plan was rebuilt and recorded, or why not.
    async fn repair_chunk(&self, chunk: ChunkId) -> Result<(), String> {
        let Some((plan, snap)) = self.needs_repair(&chunk) else {
            return Ok(());
        };
        let n = snap.ids.len() as u64;
        if snap.stored_bytes % n != 0 {
            return Err("its stored bytes are not a multiple of its shard count".into());
        }
        let slen = (snap.stored_bytes / n) as usize;
        // Read nothing if the rebuilt shards could go nowhere (too few providers outside the
        // chunk's holders): that read would be thrown away, round after round.
        let targets = snap
            .eligible
            .iter()
            .filter(|p| !plan.exclude.contains(p))
            .count();
        if targets < plan.rebuild.len() {
            self.counters.deferred.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "no provider to place its rebuilt shards on ({targets} healthy providers hold no \
                 shard of it, {} needed)",
                plan.rebuild.len()
            ));
        }
        if !self.is_paid(&snap).await {
            self.counters.deferred.fetch_add(1, Ordering::Relaxed);
            return Err(
                "no live storage order pays for any of its shards: unpaid data is not \
                        repaired"
                    .into(),
            );
        }
        let started = self.keeper.env().now();
        // Fetch k verified shards, k at a time from the best sources.
        let mut have: Vec<(usize, Bytes)> = Vec::new();
        let mut sources = plan.sources.iter();
        while have.len() < snap.k {
            let wave: Vec<(usize, AccountId)> = sources
                .by_ref()
                .take(snap.k - have.len())
                .copied()
                .collect();
            if wave.is_empty() {
                break;
            }
            self.budget.take((wave.len() * slen) as u64).await;
            let ids = &snap.ids;
            let got = futures::future::join_all(
                wave.iter()
                    .map(|&(i, h)| async move { (i, h, self.fetch(h, ids[i]).await) }),
            )
            .await;
            for (i, h, r) in got {
                match r {
                    Ok(Response::Shard(Some(b))) => {
                        self.counters
                            .read
                            .fetch_add(b.len() as u64, Ordering::Relaxed);
                        if b.len() == slen && ShardId::of(&b) == snap.ids[i] {
                            have.push((i, b));
                        } else {
                            self.mark_lost(chunk, i as u16, h, Reason::Corrupt).await;
                        }
                    }
                    Ok(Response::Shard(None)) => {
                        self.mark_lost(chunk, i as u16, h, Reason::Missing).await;
                    }
                    _ => {
                        debug!(chunk = %chunk.short(), index = i, holder = %h.label(), "source unreachable")
                    }
                }
            }
        }
        if have.len() < snap.k {
            return Err(format!(
                "only {} of the {} shards needed to rebuild it could be read",
                have.len(),
                snap.k
            ));
        }
        let (k, ids, want) = (snap.k, snap.ids.clone(), plan.rebuild.clone());
        let rebuilt = self
            .keeper
            .env()
            .blocking(move || rebuild_shards(chunk, k, &ids, slen, &have, &want))
            .await;
        let rebuilt = match rebuilt {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("rebuilding it failed: {e}")),
            Err(e) => return Err(format!("the rebuild task failed: {e}")),
        };
        // Place each rebuilt shard on a new, distinct, healthy provider.
        let mut exclude = plan.exclude.clone();
        let mut moves = Vec::new();
        for (i, bytes) in &rebuilt.shards {
            let candidates = rendezvous(&chunk, *i, &snap.eligible, &exclude);
            let mut placed = None;
            for cand in candidates.into_iter().take(4) {
                let t = self.keeper.transport.as_ref();
                let put = tokio::time::timeout(
                    self.config.transfer_timeout,
                    provider_client::put_shard(t.into(), cand, snap.ids[*i], None, bytes.clone()),
                )
                .await;
                match put {
                    Ok(Ok(_)) => {
                        placed = Some(cand);
                        break;
                    }
                    Ok(Err(e)) => {
                        debug!(chunk = %chunk.short(), index = i, to = %cand.label(), "upload failed: {e}")
                    }
                    Err(_) => {
                        debug!(chunk = %chunk.short(), index = i, to = %cand.label(), "upload timed out")
                    }
                }
            }
            let Some(to) = placed else {
                debug!(chunk = %chunk.short(), index = i, "no provider accepted the rebuilt shard");
                continue;
            };
            exclude.insert(to);
            moves.push(Move {
                index: *i as u16,
                from: snap.holders[*i],
                to,
            });
        }
        if moves.is_empty() {
            return Err("no provider accepted its rebuilt shards".into());
        }
        let complete = moves.len() == plan.rebuild.len();
        if !self
            .append(KeeperOp::Replace {
                chunk,
                moves: moves.clone(),
            })
            .await
        {
            // Someone else repaired first: drop uploads the registry does not point to.
            self.drop_orphans(chunk, &moves, &snap.ids).await;
            return Err("another keeper repaired it first".into());
        }
        let restored: u64 = moves.len() as u64 * slen as u64;
        self.counters.chunks.fetch_add(1, Ordering::Relaxed);
        self.counters
            .shards
            .fetch_add(moves.len() as u64, Ordering::Relaxed);
        self.counters
            .restored
            .fetch_add(restored, Ordering::Relaxed);
        for m in &moves {
            let i = m.index as usize;
            info!(
                chunk = %chunk.short(),
                index = i,
                from = %m.from.map(|f| f.short()).unwrap_or_default(),
                to = %m.to.label(),
                was = ?snap.health[i],
                why = why(snap.health[i], snap.holder_health[i]),
                healthy_before = plan.healthy,
                "repaired shard"
            );
        }
        info!(
            chunk = %chunk.short(),
            shards = moves.len(),
            bytes = restored,
            healthy_before = plan.healthy,
            took_ms = started.elapsed().as_millis() as u64,
            "chunk repaired"
        );
        // The shards that changed holder: (former holder, shard, new holder).
        let moved: Vec<(AccountId, ShardId, AccountId)> = moves
            .iter()
            .filter_map(|m| {
                m.from
                    .filter(|f| *f != m.to)
                    .map(|f| (f, snap.ids[m.index as usize], m.to))
            })
            .collect();
        // With a ledger, move the shards' orders to their new holders (paid from the former
        // holders' stakes).
        if let Some(ch) = self.keeper.challenger()
            && !moved.is_empty()
        {
            ch.record_repairs(&moved).await;
        }
        // The former holders' copies are no longer referenced: ask them to delete (best effort).
        for (from, shard, _) in &moved {
            let _ = self
                .rpc(
                    *from,
                    &Request::DeleteShards {
                        shards: vec![*shard],
                    },
                )
                .await;
        }
        if complete {
            Ok(())
        } else {
            Err("some of its rebuilt shards found no provider".into())
        }
    }

    async fn drop_orphans(&self, chunk: ChunkId, moves: &[Move], ids: &[ShardId]) {
        let holders: Vec<Option<AccountId>> = match self.state().locate(&chunk) {
            Ok(Some(p)) => p.holders,
            _ => Vec::new(),
        };
        for m in moves {
            let i = m.index as usize;
            if holders.get(i).copied().flatten() != Some(m.to) {
                let _ = self
                    .rpc(
                        m.to,
                        &Request::DeleteShards {
                            shards: vec![ids[i]],
                        },
                    )
                    .await;
            }
        }
    }
}

/// What repair needs of a chunk's entry, copied out of the state lock.
struct Snapshot {
    k: usize,
    ids: Vec<ShardId>,
    holders: Vec<Option<AccountId>>,
    health: Vec<ShardHealth>,
    /// The declared health of each shard's holder.
    holder_health: Vec<Option<ShardHealth>>,
    stored_bytes: u64,
    eligible: Vec<AccountId>,
}

impl Keeper {
    /// Starts detection and repair on this keeper (signing with its `keypair`); returns the
    /// repairer, whose background rounds run until its task is aborted.
    pub fn enable_repair(
        self: &Arc<Self>,
        keypair: Keypair,
        config: RepairConfig,
    ) -> (Arc<Repairer>, JoinHandle<()>) {
        let r = Repairer::new(self.clone(), keypair, config);
        let task = r.start();
        (r, task)
    }
}

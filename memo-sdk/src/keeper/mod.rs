//! The keeper service: places chunks, keeps ownership metadata in sync through the shared
//! [`OpLog`], answers users' queries and cascades purges to providers.

pub mod challenger;
pub mod checkpoint;
pub mod node;
pub mod placement;
pub mod repair;

use crate::env::Env;
use crate::node::Service;
use crate::provider::client as provider_client;
use crate::replication::OpLog;
use futures::StreamExt;
use memo_core::id::{AccountId, ChunkId};
use memo_core::objects::{Applied, ObjectError, Objects, OpEnvelope, PossessionCheck, SignedOp};
use memo_core::ownership::{ChunkInfo, MemoryMeta};
use memo_core::protocol::{
    AccountStatus, ChunkPlacement, ErrorCode, Grant, RemoteError, Request, Response,
};
use memo_core::ticket::{TICKET_TTL_MS, Ticket};
use memo_core::transport::Transport;
use memo_core::{Keypair, ShardId, Signed, wire};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Keeper settings.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// Quota given to each user's account, in stored bytes.
    pub default_quota: u64,
    /// Every keeper's account: only they may sign health and placement changes
    /// ([`memo_core::repair::KeeperOp`]). Must be the same on every keeper.
    pub keepers: Vec<AccountId>,
    /// How long a chunk purged by the last owner's delete through *another* keeper is not
    /// placed again here. Placing it meanwhile could let a new upload find the old shards still
    /// there, answer "already stored", and then lose them to the purge in flight. The keeper
    /// that delivers a purge holds the chunk back until delivery is done, however long.
    pub purge_grace: std::time::Duration,
    /// The clock and randomness this keeper asks (placement draws, purge holds, catch-up
    /// waits); shared with its repairer and challenger.
    pub env: Env,
    /// How long a placement ticket this keeper signs stays valid. Uploads under a ticket that
    /// no put registered are reclaimed by their providers after it expires (see
    /// [`crate::provider::Provider::reclaim_expired`]), so this bounds how long a killed
    /// client's uploads stay on disk; a put must finish its uploads within it.
    pub ticket_ttl: std::time::Duration,
    /// With a checkpoint file ([`Keeper::checkpoint_to`], which [`node::KeeperNode`] sets in
    /// its data dir): write a checkpoint every this many applied operations (and at a clean
    /// [`node::KeeperNode::shutdown`]); 0: only at shutdown. See [`checkpoint`].
    pub checkpoint_every: u64,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            default_quota: 64 << 30,
            keepers: Vec::new(),
            purge_grace: std::time::Duration::from_secs(1),
            env: Env::real(),
            ticket_ttl: std::time::Duration::from_millis(TICKET_TTL_MS),
            checkpoint_every: checkpoint::DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

/// Longest a keeper holds back a chunk whose purge it is delivering (a bound on delivery).
const PURGE_HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(120);
/// The longest a read or placement waits for this keeper to apply the log it knows of; past
/// it, the keeper answers from what it has applied.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);
/// How many applied operations' outcomes (and digests, for duplicates) a keeper keeps.
const OUTCOME_WINDOW: usize = 65_536;

/// How long a keeper waits for its view of the ledger to show a put's orders.
pub const PAY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How many new blocks a keeper waits for a put's orders to appear in its view of the ledger
/// (a follower's view may lag the producer's by a few blocks).
pub const PAY_BLOCKS: u32 = 10;

/// Longest a keeper waits for a holder's proof of possession.
const POSSESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An operation in flight through this keeper, released when dropped.
struct Pending<'a> {
    set: &'a Mutex<HashSet<(AccountId, u64)>>,
    key: (AccountId, u64),
}

impl<'a> Pending<'a> {
    /// Claims the operation with this (signer, nonce); `None` if it is in flight.
    fn claim(set: &'a Mutex<HashSet<(AccountId, u64)>>, key: (AccountId, u64)) -> Option<Self> {
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
            .then_some(Self { set, key })
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// The op log from some position on, as the keeper applies it.
type LogStream = futures::stream::BoxStream<'static, crate::replication::LogEntry>;

/// The outcome of the operation at one log position: `Ok` or the refusal's text.
type Outcome = Result<(), RemoteError>;

/// A keeper node.
pub struct Keeper {
    key: Keypair,
    pub(crate) transport: Arc<dyn Transport>,
    log: Arc<dyn OpLog>,
    config: KeeperConfig,
    pub(crate) state: Mutex<Objects<MemoryMeta>>,
    pub(crate) providers: RwLock<Vec<AccountId>>,
    /// Clients' failed-read reports, checked by [`crate::keeper::repair::Repairer`].
    pub(crate) reports: Mutex<Vec<memo_core::repair::ShardReport>>,
    outcomes: Mutex<BTreeMap<u64, (Outcome, Option<Applied>)>>,
    applied: watch::Sender<u64>,
    challenger: std::sync::OnceLock<Arc<crate::keeper::challenger::Challenger>>,
    /// Chunks purged by an applied delete whose purge may still be on its way to the holders,
    /// with when to stop waiting for it (see [`KeeperConfig::purge_grace`]).
    purging: Mutex<HashMap<ChunkId, tokio::time::Instant>>,
    /// Operations (signer, nonce) being checked or appended through this keeper: a copy
    /// submitted meanwhile is refused as a replay before it reaches the log.
    pending: Mutex<HashSet<(AccountId, u64)>>,
    /// The room each provider reported at its last probe ([`Keeper::set_room`]).
    rooms: RwLock<HashMap<AccountId, u64>>,
    /// Checks receipts' signatures, with providers' keys cached.
    sigs: Mutex<memo_core::contract::SigChecker>,
    /// Why this keeper's repairer could not repair a degraded chunk, for `stat`.
    notes: Mutex<HashMap<ChunkId, String>>,
    /// Where this keeper keeps its checkpoint, if it does.
    checkpoints: std::sync::OnceLock<Checkpoints>,
    /// The log position the state was loaded from at start (0: replayed from the start).
    resumed_from: std::sync::atomic::AtomicU64,
    /// How many entries have been applied, and the digest of the last one.
    tip: Mutex<(u64, [u8; 32])>,
}

/// A keeper's checkpoint file and its writer.
#[derive(Clone)]
struct Checkpoints {
    path: std::path::PathBuf,
    /// Held while a checkpoint is written.
    writer: Arc<Mutex<()>>,
    /// The position of the checkpoint last written or loaded.
    written: Arc<watch::Sender<u64>>,
    /// A background write is under way (the next periodic one is skipped meanwhile).
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpoints {
    /// Writes `bytes` (the checkpoint at `position`) unless a later one was written; logs a
    /// failure (the next checkpoint tries again).
    fn write(&self, position: u64, bytes: &[u8]) {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if position <= *self.written.borrow() {
            return;
        }
        match checkpoint::write(&self.path, bytes) {
            Ok(()) => {
                self.written.send_replace(position);
                debug!(position, bytes = bytes.len(), "keeper checkpoint written");
            }
            Err(e) => warn!("keeper checkpoint at {position} not written: {e}"),
        }
    }
}

impl Keeper {
    /// A keeper on `transport`, following `log`, signing placement tickets with `key` (the
    /// transport's account). Call [`Keeper::start`] to serve.
    pub fn new(
        key: Keypair,
        transport: Arc<dyn Transport>,
        log: Arc<dyn OpLog>,
        config: KeeperConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            key,
            transport,
            log,
            config: config.clone(),
            state: Mutex::new(
                Objects::new(MemoryMeta::new()).with_keepers(config.keepers.iter().copied()),
            ),
            providers: RwLock::new(Vec::new()),
            reports: Mutex::new(Vec::new()),
            outcomes: Mutex::new(BTreeMap::new()),
            applied: watch::channel(0).0,
            challenger: std::sync::OnceLock::new(),
            purging: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            rooms: RwLock::new(HashMap::new()),
            sigs: Mutex::default(),
            notes: Mutex::default(),
            checkpoints: std::sync::OnceLock::new(),
            resumed_from: std::sync::atomic::AtomicU64::new(0),
            tip: Mutex::new((0, [0; 32])),
        })
    }

    /// Keeps checkpoints of this keeper's state in the file `path` (see [`checkpoint`]):
    /// [`Keeper::start`] loads it and follows the log from its position, and the keeper writes
    /// one every [`KeeperConfig::checkpoint_every`] applied operations. Call before
    /// [`Keeper::start`], once.
    pub fn checkpoint_to(&self, path: std::path::PathBuf) {
        let _ = self.checkpoints.set(Checkpoints {
            path,
            writer: Arc::default(),
            written: Arc::new(watch::channel(0).0),
            busy: Arc::default(),
        });
    }

    /// The log position this keeper's state was loaded from at start: the checkpoint's, or 0
    /// when it replayed the log from the start.
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until this keeper's checkpoint (written or loaded) is at `position` or later, and
    /// returns its position; 0 at once for a keeper without a checkpoint file.
    pub async fn wait_checkpointed(&self, position: u64) -> u64 {
        let Some(c) = self.checkpoints.get() else {
            return 0;
        };
        let mut rx = c.written.subscribe();
        let at = rx.wait_for(|&p| p >= position).await.map(|p| *p);
        at.unwrap_or(0)
    }

    /// Loads the checkpoint, if there is one that fits this keeper and its log, and returns
    /// the log stream to apply from there on (from 0 without one). A checkpoint that does not
    /// read, was built with other settings, or is not a prefix of this log is ignored with a
    /// warning naming the file.
    async fn resume(&self) -> LogStream {
        let Some(c) = self.checkpoints.get() else {
            return self.log.follow(0);
        };
        let file = c.path.display().to_string();
        let (loaded, entries) = match self.fitting_checkpoint(c).await {
            Ok(Some(found)) => found,
            Ok(None) => return self.log.follow(0),
            Err(why) => {
                warn!(%file, "keeper checkpoint ignored, replaying the log from 0: {why}");
                return self.log.follow(0);
            }
        };
        let header = loaded.header;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = loaded.state;
        *self.tip.lock().unwrap_or_else(|p| p.into_inner()) = (header.position, header.last);
        c.written.send_replace(header.position);
        self.resumed_from
            .store(header.position, std::sync::atomic::Ordering::Release);
        self.applied.send_replace(header.position);
        info!(%file, position = header.position, "keeper state loaded from its checkpoint");
        entries
    }

    /// Reads `c`'s checkpoint and checks that it fits this keeper and its log: the checkpoint
    /// and the log stream from its position on; `None` without a checkpoint; why it does not
    /// fit otherwise.
    async fn fitting_checkpoint(
        &self,
        c: &Checkpoints,
    ) -> Result<Option<(checkpoint::Checkpoint, LogStream)>, String> {
        let path = c.path.clone();
        let Some(loaded) = tokio::task::spawn_blocking(move || checkpoint::read(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let header = &loaded.header;
        let keepers: BTreeSet<AccountId> = self.config.keepers.iter().copied().collect();
        let len = self.log.known_len();
        if header.position == 0 {
            return Err("it is at position 0".into());
        }
        if header.default_quota != self.config.default_quota {
            return Err(format!(
                "it was built with a default quota of {} bytes, this keeper's is {}",
                header.default_quota, self.config.default_quota
            ));
        }
        if *loaded.state.keepers() != keepers {
            return Err("it was built with another keeper set".into());
        }
        if len.is_none_or(|len| len < header.position) {
            return Err(format!(
                "it is at position {} but the op log holds {} entries",
                header.position,
                len.map_or("an unknown number of".into(), |l| l.to_string())
            ));
        }
        // The entry before the checkpoint must be the one it was taken after.
        let mut entries = self.log.follow(header.position - 1);
        match entries.next().await {
            Some((pos, op)) if pos + 1 == header.position && op.digest() == header.last => {
                Ok(Some((loaded, entries)))
            }
            _ => Err(format!(
                "the op log's entry before position {} is not the one it was taken after",
                header.position
            )),
        }
    }

    /// A copy of the state at the tip, taken under its lock, with its checkpoint header; `None`
    /// without a checkpoint file, with nothing applied, or with nothing new since the last
    /// checkpoint. Call from the log follower, or once it stopped: the state must be that of
    /// the tip. The copy is serialized outside the lock ([`Self::write_checkpoint`]).
    fn checkpoint_copy(&self) -> Option<(checkpoint::CheckpointHeader, Objects<MemoryMeta>)> {
        let c = self.checkpoints.get()?;
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (position, last) = *self.tip.lock().unwrap_or_else(|p| p.into_inner());
        let written = *c.written.borrow();
        if position == 0 || position <= written {
            return None;
        }
        let header = checkpoint::CheckpointHeader {
            position,
            last,
            default_quota: self.config.default_quota,
        };
        Some((header, state.clone()))
    }

    /// Serializes a copy of the state and writes it as the checkpoint, on a blocking thread
    /// (`background`: a periodic one, which clears [`Checkpoints::busy`] when done).
    fn write_checkpoint(
        c: &Checkpoints,
        header: checkpoint::CheckpointHeader,
        state: Objects<MemoryMeta>,
        background: bool,
    ) -> tokio::task::JoinHandle<()> {
        let c = c.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = checkpoint::encode(&header, &state);
            drop(state);
            c.write(header.position, &bytes);
            if background {
                c.busy.store(false, std::sync::atomic::Ordering::Release);
            }
        })
    }

    /// Starts writing a checkpoint of the state at the tip in the background, unless one is
    /// being written: the state is copied here, under its lock, and serialized and written
    /// outside it.
    fn checkpoint_in_background(&self) {
        let Some(c) = self.checkpoints.get() else {
            return;
        };
        if c.busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        match self.checkpoint_copy() {
            Some((header, state)) => {
                Self::write_checkpoint(c, header, state, true);
            }
            None => c.busy.store(false, std::sync::atomic::Ordering::Release),
        }
    }

    /// Writes a checkpoint of the state at the tip now, if there is anything new since the last
    /// one (a clean shutdown). Call only once the log follower stopped.
    pub(crate) async fn checkpoint_now(&self) {
        let Some(c) = self.checkpoints.get() else {
            return;
        };
        // Writes are serialized, and one at an older position than the last written is
        // skipped (`Checkpoints::write`), so a periodic one still on its way does no harm.
        if let Some((header, state)) = self.checkpoint_copy() {
            let _ = Self::write_checkpoint(c, header, state, false).await;
        }
    }

    /// Records why `chunk` could not be repaired (`None`: it was), for `stat`.
    pub(crate) fn note_degraded(&self, chunk: ChunkId, why: Option<String>) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        match why {
            Some(w) => notes.insert(chunk, w),
            None => notes.remove(&chunk),
        };
    }

    /// Forgets the notes of chunks that are no longer degraded (`degraded` in id order).
    pub(crate) fn forget_notes(&self, degraded: &[ChunkId]) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c, _| degraded.binary_search(c).is_ok());
    }

    /// Records the bytes `provider` said it can still take: placement skips it for shards
    /// larger than that until it reports more.
    pub fn set_room(&self, provider: AccountId, room: u64) {
        self.rooms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(provider, room);
    }

    /// Reads the keeper's derived state (ownership, placement, health) under its lock: for
    /// status pages, tests and tools. Keep `f` short: it blocks the log follower.
    pub fn inspect<R>(
        &self,
        f: impl FnOnce(&memo_core::objects::Objects<memo_core::ownership::MemoryMeta>) -> R,
    ) -> R {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The clock and randomness this keeper and its repairer and challenger ask.
    pub fn env(&self) -> &Env {
        &self.config.env
    }

    /// This keeper's account.
    pub fn account(&self) -> AccountId {
        self.transport.local_id()
    }

    /// How many log entries this keeper has applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Makes a provider eligible for placement.
    pub fn add_provider(&self, provider: AccountId) {
        let mut p = self.providers.write().unwrap_or_else(|p| p.into_inner());
        if !p.contains(&provider) {
            p.push(provider);
        }
    }

    /// The transport this keeper serves on.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The providers eligible for placement (and watched by the challenger).
    pub fn providers(&self) -> Vec<AccountId> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs challenges with `challenger` and places by its reputation (see
    /// [`crate::keeper::challenger`]); set once, then start it with `Challenger::spawn`.
    pub fn set_challenger(&self, challenger: Arc<crate::keeper::challenger::Challenger>) {
        let _ = self.challenger.set(challenger);
    }

    /// The challenger, if this keeper runs with a ledger.
    pub fn challenger(&self) -> Option<&Arc<crate::keeper::challenger::Challenger>> {
        self.challenger.get()
    }

    /// Removes a provider from placement (it stopped or left).
    pub fn remove_provider(&self, provider: &AccountId) {
        self.providers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != provider);
    }

    /// Waits until this keeper has applied at least `len` log entries.
    pub async fn wait_applied(&self, len: u64) {
        let _ = self.applied.subscribe().wait_for(|&n| n >= len).await;
    }

    /// Starts applying the shared log in the background (call once).
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().follow())
    }

    /// Follows the log and serves requests on its transport until it closes (a node with only
    /// this service).
    pub async fn run(self: Arc<Self>) {
        let follower = self.start();
        let t = self.transport.clone();
        crate::node::serve(t, vec![self.clone() as Arc<dyn Service>]).await;
        follower.abort();
        info!(keeper = %self.account().label(), "transport closed; keeper stopped");
    }

    /// Applies the log in order, forever: from the checkpoint's position if one was loaded
    /// ([`Keeper::checkpoint_to`]), else from 0.
    async fn follow(self: Arc<Self>) {
        let mut entries = self.resume().await;
        let every = self.config.checkpoint_every;
        // Recently applied operations by digest, oldest first: a copy of one appended again
        // (a forwarded append retried across a change of leader) is refused as a replay when
        // applied, and its submitter is answered the first copy's outcome instead.
        let mut recent: (HashMap<[u8; 32], u64>, VecDeque<[u8; 32]>) = Default::default();
        while let Some((pos, op)) = entries.next().await {
            let digest = op.digest();
            let mut outcome = self.apply(&op);
            let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
            match (&outcome.0, recent.0.get(&digest)) {
                (Err(_), Some(&first)) => {
                    outcome = outcomes.get(&first).cloned().unwrap_or((Ok(()), None));
                }
                (Ok(()), _) => {
                    recent.0.insert(digest, pos);
                    recent.1.push_back(digest);
                    if recent.1.len() > OUTCOME_WINDOW
                        && let Some(old) = recent.1.pop_front()
                    {
                        recent.0.remove(&old);
                    }
                }
                _ => {}
            }
            outcomes.insert(pos, outcome);
            // Outcomes are taken by the keeper that submitted the operation, at once; those
            // submitted elsewhere are dropped once they are this old.
            while outcomes.len() > OUTCOME_WINDOW {
                outcomes.pop_first();
            }
            drop(outcomes);
            *self.tip.lock().unwrap_or_else(|p| p.into_inner()) = (pos + 1, digest);
            self.applied.send_replace(pos + 1);
            if every > 0 && (pos + 1) % every == 0 {
                self.checkpoint_in_background();
            }
        }
    }

    fn apply(&self, signed: &SignedOp) -> (Outcome, Option<Applied>) {
        let envelope = match signed.open() {
            Ok(op) => op,
            Err(e) => {
                return (
                    Err(RemoteError::new(ErrorCode::BadRequest, e.to_string())),
                    None,
                );
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = state.ensure_account(signed.signer, self.config.default_quota) {
            return (
                Err(RemoteError::new(ErrorCode::Internal, e.to_string())),
                None,
            );
        }
        match state.apply_signed(signed.signer, &envelope) {
            Ok(applied) => {
                if let Applied::Delete(plan) = &applied
                    && !plan.purged.is_empty()
                {
                    self.hold(&plan.purged, self.config.purge_grace);
                }
                (Ok(()), Some(applied))
            }
            Err(e) => (
                Err(RemoteError::new(ErrorCode::Refused, e.to_string())),
                None,
            ),
        }
    }

    /// Waits (up to [`CATCH_UP`]) until this keeper has applied every operation acknowledged
    /// before this call ([`OpLog::sync_len`]: a read index in a keeper group), so that an
    /// answer reflects operations acknowledged through another keeper: a user storing data
    /// that another user stored through another keeper is told its chunks exist (no shard
    /// traffic), and a put is visible at once wherever it is read.
    ///
    /// Errors when the group cannot confirm what was acknowledged (it has no quorum) or this
    /// keeper cannot catch up in time: the answer would be stale, and says so.
    async fn caught_up(&self) -> Result<(), String> {
        let synced = tokio::time::timeout(CATCH_UP, async {
            match self.log.sync_len().await {
                Ok(Some(len)) => {
                    self.wait_applied(len).await;
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match synced {
            Ok(r) => r,
            Err(_) => Err(format!(
                "this keeper could not confirm the group's latest state within {CATCH_UP:?}"
            )),
        }
    }

    /// Handles one keeper request from `from`.
    pub async fn handle_request(&self, from: AccountId, req: Request) -> Response {
        if matches!(
            req,
            Request::Place { .. }
                | Request::Locate { .. }
                | Request::ListObjects
                | Request::StatObject { .. }
                | Request::Account
                | Request::Registered { .. }
        ) && let Err(why) = self.caught_up().await
        {
            // Where shards are does not go stale in a harmful way (a read checks every
            // shard's id), so a get still works without a quorum; everything else says so.
            if !matches!(req, Request::Locate { .. }) {
                return Response::error(
                    ErrorCode::NoQuorum,
                    format!("the keeper group has no quorum: {why}"),
                );
            }
            warn!("answering a lookup without the group's confirmation: {why}");
        }
        match req {
            Request::Place { chunks, exclude } => {
                self.purged_chunks_settled(&chunks).await;
                self.place(from, &chunks, &exclude)
            }
            Request::Locate { chunks } => {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let mut out = Vec::with_capacity(chunks.len());
                for c in &chunks {
                    match state.locate(c) {
                        Ok(p) => out.push(p),
                        Err(e) => return Response::error(ErrorCode::Internal, e.to_string()),
                    }
                }
                Response::Located(out)
            }
            Request::Submit { tx } => self.submit(&tx).await,
            Request::ListObjects => Response::Objects(
                self.state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .list(&from),
            ),
            Request::StatObject { id } => {
                match self
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stat(&from, &id)
                {
                    Ok(Some((entry, mut chunks))) => {
                        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
                        for c in &mut chunks {
                            c.why = notes.get(&c.chunk).cloned();
                        }
                        Response::Object { entry, chunks }
                    }
                    Ok(None) => Response::error(
                        ErrorCode::NotFound,
                        format!("no object {id} in your index"),
                    ),
                    Err(e) => Response::error(ErrorCode::Internal, e.to_string()),
                }
            }
            Request::ReportShards { reports } => {
                crate::keeper::repair::queue_reports(self, &reports);
                Response::Done
            }
            Request::Registered { shards } => {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let mut placed = HashSet::new();
                for found in state.shards_on(&from) {
                    match found {
                        Ok((_, _, slot)) => {
                            placed.insert(slot.id);
                        }
                        Err(e) => return Response::error(ErrorCode::Internal, e.to_string()),
                    }
                }
                Response::Registered(shards.iter().map(|s| placed.contains(s)).collect())
            }
            Request::Account => {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let account = state.ownership().account(&from).ok().flatten();
                Response::Account(AccountStatus {
                    user: from,
                    balance: 0,
                    stored_bytes: account.map(|a| a.usage).unwrap_or(0),
                    quota: account
                        .map(|a| a.quota)
                        .unwrap_or(self.config.default_quota),
                    objects: state.count(&from),
                    lapsed_orders: 0,
                })
            }
            other => Response::error(
                ErrorCode::BadRequest,
                format!("a keeper does not serve {}", other.kind()),
            ),
        }
    }

    /// Holds the chunks of `purged` back from placement for `hold` from now (see
    /// [`Keeper::purged_chunks_settled`]), forgetting holds that have run out.
    fn hold(&self, purged: &[memo_core::ownership::Purge], hold: std::time::Duration) {
        let now = self.config.env.now();
        let until = now + hold;
        let mut purging = self.purging.lock().unwrap_or_else(|p| p.into_inner());
        purging.retain(|_, t| *t > now);
        for p in purged {
            purging.insert(p.chunk, until);
        }
    }

    /// Ends the holds on the chunks of `purged`.
    fn release(&self, purged: &[memo_core::ownership::Purge]) {
        let mut purging = self.purging.lock().unwrap_or_else(|p| p.into_inner());
        for p in purged {
            purging.remove(&p.chunk);
        }
    }

    /// Waits until no chunk of `chunks` has a purge in flight (at most the purge grace).
    async fn purged_chunks_settled(&self, chunks: &[ChunkInfo]) {
        loop {
            let wait = {
                let purging = self.purging.lock().unwrap_or_else(|p| p.into_inner());
                let now = self.config.env.now();
                chunks
                    .iter()
                    .filter_map(|c| purging.get(&c.id))
                    .any(|until| *until > now)
            };
            if !wait {
                return;
            }
            self.config
                .env
                .sleep(std::time::Duration::from_millis(10))
                .await;
        }
    }

    /// Chooses k + m distinct providers for each chunk not yet registered, with a ticket for
    /// `user` to upload each shard there: healthy providers with room for a shard, but none of
    /// `exclude`.
    fn place(&self, user: AccountId, chunks: &[ChunkInfo], exclude: &[AccountId]) -> Response {
        let ttl = u64::try_from(self.config.ticket_ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = self.config.env.unix_ms().saturating_add(ttl);
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let providers: Vec<AccountId> = self
            .providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|p| state.provider_health(p) == memo_core::ownership::ShardHealth::Healthy)
            .filter(|p| !exclude.contains(p))
            .copied()
            .collect();
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            match state.ownership().chunk(&c.id) {
                Ok(Some(_)) => out.push(None),
                Ok(None) => {
                    let size = c.stored_bytes / c.shards.len().max(1) as u64;
                    let eligible: Vec<AccountId> = providers
                        .iter()
                        .filter(|p| rooms.get(p).is_none_or(|room| *room >= size))
                        .copied()
                        .collect();
                    if eligible.len() < c.shards.len() {
                        return Response::error(
                            ErrorCode::Unavailable,
                            format!(
                                "no room: {} shards of {size} bytes need as many providers with \
                                 room; {} of {} healthy providers have it ({} more excluded by \
                                 the client)",
                                c.shards.len(),
                                eligible.len(),
                                providers.len(),
                                exclude.len()
                            ),
                        );
                    }
                    let chosen = placement::choose(
                        self.challenger.get(),
                        &eligible,
                        c.shards.len(),
                        &self.config.env.random(),
                    );
                    if let Some(ch) = self.challenger.get() {
                        ch.placing(&c.shards);
                    }
                    let ticket = Signed::sign(
                        &self.key,
                        &Ticket {
                            chunk: c.id,
                            shards: c
                                .shards
                                .iter()
                                .copied()
                                .zip(chosen.iter().copied())
                                .collect(),
                            size,
                            user,
                            expires_ms,
                        },
                    );
                    out.push(Some(Grant {
                        placement: ChunkPlacement {
                            chunk: c.id,
                            holders: chosen.into_iter().map(Some).collect(),
                        },
                        ticket,
                    }));
                }
                Err(e) => return Response::error(ErrorCode::Internal, e.to_string()),
            }
        }
        Response::Placed(out)
    }

    /// Admits a signed operation into the log: its signature, its validity window and nonce,
    /// its signer's authority, the state rules, its receipts and, for chunks the user claims
    /// without uploading them, its proofs of possession, checked with their holders. A refused
    /// operation never reaches the log.
    async fn admit(&self, signed: &SignedOp, envelope: &OpEnvelope) -> Result<(), Response> {
        let refused = |e: ObjectError| {
            let code = match e {
                ObjectError::NotKeeper { .. } => ErrorCode::Forbidden,
                _ => ErrorCode::Refused,
            };
            info!(signer = %signed.signer.label(), "refused an operation: {e}");
            Response::error(code, e.to_string())
        };
        let now = self.config.env.unix_ms();
        {
            let mut sigs = self.sigs.lock().unwrap_or_else(|p| p.into_inner());
            envelope.verify_receipts(now, &mut sigs).map_err(refused)?;
        }
        let admission = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.check(signed.signer, envelope, now)
        }
        .map_err(refused)?;
        // Possession first: a claim made with someone else's proofs is refused as such, at
        // once, rather than after waiting for the ledger to show a payment.
        self.verify_possession(&admission.possession)
            .await
            .map_err(refused)?;
        self.check_paid(signed.signer, envelope, &admission.possession)
            .await
            .map_err(refused)
    }

    /// With a ledger, a put is admitted only if it is paid for (`Query::Holdings`): every
    /// shard it uploaded is held by a live storage order of its signer that pays at least the
    /// next epoch, and every chunk it `claims` (stored already, deduplicated) is co-owned by
    /// the signer: it owns each of the chunk's shards that a live order holds, and at least
    /// one. The client orders and shares before it submits. A client that just did may be a
    /// block ahead of this keeper's view of the ledger, so what is missing is looked for again
    /// at each of the next [`PAY_BLOCKS`] blocks, for up to [`PAY_WAIT`].
    async fn check_paid(
        &self,
        signer: AccountId,
        envelope: &OpEnvelope,
        claims: &[PossessionCheck],
    ) -> Result<(), ObjectError> {
        let Some(ledger) = self.challenger().map(|c| c.ledger().clone()) else {
            return Ok(());
        };
        let memo_core::objects::ObjectOp::Put { receipts, .. } = &envelope.op else {
            return Ok(());
        };
        let mut pairs: Vec<(AccountId, ShardId)> = receipts
            .iter()
            .filter_map(|r| r.open_unverified().ok().map(|b| (r.signer, b.shard)))
            .collect();
        let uploaded = pairs.len();
        // Each claimed chunk's placed shards, after the uploads: (chunk, first pair, end).
        let mut chunks = Vec::with_capacity(claims.len());
        for c in claims {
            let first = pairs.len();
            pairs.extend(c.shards.iter().filter_map(|(s, h)| h.map(|h| (h, *s))));
            chunks.push((c.chunk, first, pairs.len()));
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let unreadable = |e: crate::ledger::LedgerError| {
            ObjectError::Unpaid(format!("the ledger cannot be read to check payment: {e}"))
        };
        let mut blocks = ledger.subscribe();
        let deadline = tokio::time::Instant::now() + PAY_WAIT;
        let mut seen = 0;
        loop {
            let epoch = ledger.head().await.map_err(unreadable)?.epoch;
            let holdings = match ledger
                .query(memo_core::contract::Query::Holdings(pairs.clone()))
                .await
                .map_err(unreadable)?
            {
                memo_core::contract::Answer::Holdings(h) => h,
                other => {
                    return Err(ObjectError::Unpaid(format!(
                        "unexpected ledger answer {other:?}"
                    )));
                }
            };
            let live = |i: usize| {
                let rows = holdings.get(i).map_or(&[][..], Vec::as_slice);
                memo_core::contract::live_holdings(rows, epoch)
            };
            let owns = |i: usize| live(i).any(|(_, owner, _)| *owner == signer);
            let shard_unpaid = |i: usize| {
                let (provider, shard) = pairs[i];
                format!(
                    "shard {} on provider {} is not held by a storage order you own or co-own",
                    shard.short(),
                    provider.short()
                )
            };
            let unpaid_upload = (0..uploaded).find(|i| !owns(*i)).map(shard_unpaid);
            let unpaid_claim = || {
                chunks.iter().find_map(|&(chunk, first, end)| {
                    match (first..end).find(|i| live(*i).next().is_some() && !owns(*i)) {
                        Some(i) => Some(shard_unpaid(i)),
                        None if !(first..end).any(owns) => Some(format!(
                            "chunk {} is stored already, but no storage order holds it for you",
                            chunk.short()
                        )),
                        None => None,
                    }
                })
            };
            let Some(unpaid) = unpaid_upload.or_else(unpaid_claim) else {
                return Ok(());
            };
            let wait = tokio::time::timeout_at(deadline, blocks.recv()).await;
            seen += 1;
            if seen > PAY_BLOCKS
                || matches!(
                    wait,
                    Err(_) | Ok(Err(tokio::sync::broadcast::error::RecvError::Closed))
                )
            {
                return Err(ObjectError::Unpaid(format!(
                    "{unpaid} on the ledger; a put must be paid for before it is stored (is \
                     `ledger` set in your config, and is your balance enough?)"
                )));
            }
        }
    }

    /// Checks proofs of possession with the shards' holders: for each chunk, shards picked at
    /// random until two holders confirm (or every holder was asked); any proof that differs
    /// from its holder's is refused, and so is a chunk no holder could confirm.
    async fn verify_possession(&self, checks: &[PossessionCheck]) -> Result<(), ObjectError> {
        const CONFIRMATIONS: usize = 2;
        // Each check's shards in a random order, and how many holders confirmed so far.
        let mut order: Vec<(Vec<usize>, usize)> = checks
            .iter()
            .map(|c| {
                let mut idx: Vec<usize> = (0..c.shards.len())
                    .filter(|i| c.shards[*i].1.is_some())
                    .collect();
                for i in (1..idx.len()).rev() {
                    let j = self.config.env.below(i as u64 + 1) as usize;
                    idx.swap(i, j);
                }
                (idx, 0)
            })
            .collect();
        loop {
            let mut asks: BTreeMap<AccountId, Vec<(usize, usize)>> = BTreeMap::new();
            for (ci, (idx, confirmed)) in order.iter_mut().enumerate() {
                let want = CONFIRMATIONS.saturating_sub(*confirmed);
                for _ in 0..want {
                    let Some(i) = idx.pop() else { break };
                    if let Some(h) = checks[ci].shards[i].1 {
                        asks.entry(h).or_default().push((ci, i));
                    }
                }
            }
            if asks.is_empty() {
                break;
            }
            let checks = &checks;
            let calls = asks.into_iter().map(|(holder, items)| async move {
                let shards = items
                    .iter()
                    .map(|(ci, i)| (checks[*ci].shards[*i].0, checks[*ci].key))
                    .collect();
                let answer = tokio::time::timeout(
                    POSSESSION_TIMEOUT,
                    provider_client::prove_possession(self.transport.as_ref(), holder, shards),
                )
                .await;
                (holder, items, answer)
            });
            for (holder, items, answer) in futures::future::join_all(calls).await {
                let Ok(Ok(proofs)) = answer else {
                    debug!(holder = %holder.label(), "no proof of possession from holder");
                    continue;
                };
                for ((ci, i), theirs) in items.into_iter().zip(proofs) {
                    let Some(theirs) = theirs else { continue };
                    if checks[ci].proofs.get(i) != Some(&theirs) {
                        return Err(ObjectError::Possession(format!(
                            "the proof for shard {i} of chunk {} is wrong",
                            checks[ci].chunk.short()
                        )));
                    }
                    order[ci].1 += 1;
                }
            }
        }
        match order.iter().position(|(_, confirmed)| *confirmed == 0) {
            Some(ci) => Err(ObjectError::Possession(format!(
                "no holder of chunk {} could confirm the proof; try again later",
                checks[ci].chunk.short()
            ))),
            None => Ok(()),
        }
    }

    /// Admits a signed operation ([`Keeper::admit`]), appends it to the log, waits until it is
    /// applied here, and reports its outcome; a purge is cascaded to the holders.
    pub(crate) async fn submit(&self, tx: &[u8]) -> Response {
        let signed: SignedOp =
            match wire::decode(tx, memo_core::objects::MAX_OP_BYTES + 256, "operation") {
                Ok(s) => s,
                Err(e) => return Response::error(ErrorCode::BadRequest, e.to_string()),
            };
        let envelope = match signed.open() {
            Ok(e) => e,
            Err(e) => return Response::error(ErrorCode::Forbidden, e.to_string()),
        };
        let Some(_pending) = Pending::claim(&self.pending, (signed.signer, envelope.nonce)) else {
            return Response::error(
                ErrorCode::Refused,
                "replayed: this operation is already being submitted",
            );
        };
        // A user's operation is admitted against the state (is a chunk stored, so that
        // possession must be proven rather than receipts shown? was this nonce used, by a
        // delete another keeper applied?): read it as of now, not as this keeper last applied
        // it. Without a quorum the append below fails and says so.
        if !matches!(envelope.op, memo_core::objects::ObjectOp::Keeper(_))
            && let Err(why) = self.caught_up().await
        {
            debug!("admitting without the group's confirmation: {why}");
        }
        if let Err(refusal) = self.admit(&signed, &envelope).await {
            return refusal;
        }
        let digest = signed.digest();
        // Whose references a delete drops: its signer's, or an eviction's user's.
        let owner = match &envelope.op {
            memo_core::objects::ObjectOp::Keeper(memo_core::repair::KeeperOp::Evict {
                user,
                ..
            }) => *user,
            _ => signed.signer,
        };
        let pos = match self.log.append(signed).await {
            Ok(p) => p,
            Err(e) => {
                return Response::error(
                    ErrorCode::NoQuorum,
                    format!("log refused the operation: {e}"),
                );
            }
        };
        let mut applied = self.applied.subscribe();
        if applied.wait_for(|&n| n > pos).await.is_err() {
            return Response::error(ErrorCode::Internal, "keeper stopped");
        }
        let outcome = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pos);
        match outcome {
            Some((Ok(()), applied)) => {
                if let Some(Applied::Delete(plan)) = applied {
                    // This keeper delivers the purge: hold the chunks back until it is done.
                    self.hold(&plan.purged, PURGE_HOLD_MAX);
                    self.cascade_purge(&plan.purged).await;
                    self.release(&plan.purged);
                    if let Some(ch) = self.challenger.get() {
                        let left = self.shards_left(&plan);
                        ch.on_leave(owner, &left).await;
                        ch.on_purge(&plan.purged).await;
                    }
                }
                Response::Submitted {
                    tx: digest,
                    height: pos,
                }
            }
            Some((Err(e), _)) => Response::Error(e),
            None => Response::error(ErrorCode::Internal, "outcome lost"),
        }
    }

    /// The placed shards, `(holder, shard)`, of the chunks a delete left its signer owning no
    /// more: those it released (others still own them) and those it purged.
    fn shards_left(&self, plan: &memo_core::ownership::DeletePlan) -> Vec<(AccountId, ShardId)> {
        let mut out = plan.purges();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for c in &plan.released {
            match state.held_shards(c) {
                Ok(held) => out.extend(held),
                Err(e) => warn!(chunk = %c.short(), "cannot read a released chunk: {e}"),
            }
        }
        out
    }

    /// Tells every holder of purged chunks to delete their shards.
    async fn cascade_purge(&self, purged: &[memo_core::ownership::Purge]) {
        let mut by_holder: BTreeMap<AccountId, BTreeSet<ShardId>> = BTreeMap::new();
        for p in purged {
            for (holder, shard) in &p.shards {
                by_holder.entry(*holder).or_default().insert(*shard);
            }
        }
        let calls = by_holder.into_iter().map(|(holder, shards)| async move {
            let n = shards.len();
            match provider_client::delete_shards(
                self.transport.as_ref(),
                holder,
                shards.into_iter().collect(),
            )
            .await
            {
                Ok(deleted) => debug!(holder = %holder.label(), deleted, "purge delivered"),
                Err(e) => warn!(holder = %holder.label(), shards = n, "purge not delivered: {e}"),
            }
        });
        futures::future::join_all(calls).await;
    }
}

#[async_trait::async_trait]
impl Service for Keeper {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::Place { .. }
            | Request::Locate { .. }
            | Request::Submit { .. }
            | Request::ListObjects
            | Request::StatObject { .. }
            | Request::ReportShards { .. }
            | Request::Registered { .. }
            | Request::Account => Some(self.handle_request(from, req.clone()).await),
            _ => None,
        }
    }
}

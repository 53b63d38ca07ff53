//! The provider service: holds shards and serves them, over any transport and shard store.

pub mod prover;

use crate::env::{Env, blocking};
use crate::node::Service;
use crate::transport::rpc::unexpected;
use bytes::Bytes;
use memo_core::ownership::{Holder, HolderError, ShardStore, ShardStoreError};
use memo_core::protocol::{ErrorCode, Request, Response};
use memo_core::ticket::{Receipt, Ticket, check_ticket, possession_proof};
use memo_core::transport::Transport;
use memo_core::{AccountId, Keypair, Signed};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// A provider node: stores shards within its capacity, serves reads, deletes on a keeper's
/// purge, and answers challenges.
///
/// Reads are verified by the store against the shard id; a shard found corrupt is answered as
/// absent (`Shard(None)`) and deleted, so altered bytes are never served and keepers that
/// audit or check a client's report mark it Lost and rebuild it elsewhere.
pub struct Provider<S> {
    env: Env,
    key: Keypair,
    transport: Arc<dyn Transport>,
    holder: Holder<S>,
    keepers: RwLock<BTreeSet<AccountId>>,
    prover: std::sync::OnceLock<Arc<crate::provider::prover::Prover>>,
    /// When each shard was last stored (new or again) since this provider started; shards
    /// not in it count from `started`. A sweep deletes only shards idle for its whole window.
    stored_at: std::sync::Mutex<std::collections::HashMap<memo_core::ShardId, Instant>>,
    started: Instant,
    /// Shards stored under a user's ticket, with the ticket's expiry (unix ms), until the
    /// keepers say whether a put registered them ([`Provider::reclaim_expired`]).
    ticketed: std::sync::Mutex<std::collections::HashMap<memo_core::ShardId, Uploaders>>,
    /// Checks tickets' signatures, with the keepers' keys cached.
    sigs: std::sync::Mutex<memo_core::contract::SigChecker>,
    /// Where shard traffic is counted, once set.
    metrics: std::sync::OnceLock<Arc<crate::node::metrics::NodeMetrics>>,
    /// The reclaim grace, once set (else [`RECLAIM_GRACE`]).
    reclaim_grace: std::sync::OnceLock<Duration>,
}

/// Who uploaded a shard under a ticket, each with the ticket's expiry (unix ms).
type Uploaders = std::collections::BTreeMap<AccountId, u64>;

/// How long after a ticket expires a provider waits before asking the keepers whether a put
/// registered its shard: the admitting keeper refuses receipts of expired tickets, so by then
/// any put that used it is in the log.
pub const RECLAIM_GRACE: Duration = Duration::from_secs(60);
/// How often a provider looks for shards whose tickets expired.
pub const RECLAIM_EVERY: Duration = Duration::from_secs(30);
/// How long a provider waits for a keeper's answer when reclaiming.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(10);

impl<S: ShardStore + 'static> Provider<S> {
    /// A provider offering `capacity` bytes of `store` on `transport`, on `env`'s clock,
    /// signing receipts with `key` (the transport's account). Only `keepers` may delete shards
    /// or challenge it, and users store shards only with a ticket from one of them.
    pub fn new(
        env: Env,
        key: Keypair,
        transport: Arc<dyn Transport>,
        store: S,
        capacity: u64,
        keepers: impl IntoIterator<Item = AccountId>,
    ) -> Arc<Self> {
        Arc::new(Self {
            started: env.now(),
            env,
            key,
            transport,
            holder: Holder::new(store, capacity),
            keepers: RwLock::new(keepers.into_iter().collect()),
            prover: std::sync::OnceLock::new(),
            stored_at: std::sync::Mutex::new(std::collections::HashMap::new()),
            ticketed: std::sync::Mutex::new(std::collections::HashMap::new()),
            sigs: std::sync::Mutex::default(),
            metrics: std::sync::OnceLock::new(),
            reclaim_grace: std::sync::OnceLock::new(),
        })
    }

    /// Counts the shards this provider stores and serves in `metrics` from now on (the first
    /// call wins).
    pub fn set_metrics(&self, metrics: Arc<crate::node::metrics::NodeMetrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Bytes this provider offers.
    pub fn capacity(&self) -> u64 {
        self.holder.capacity()
    }

    /// Shards stored under tickets whose fate the provider does not know yet.
    pub fn pending_tickets(&self) -> usize {
        self.ticketed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Deletes the shards stored under tickets that expired [`RECLAIM_GRACE`] ago and that no
    /// put registered here: an upload whose put never came (a killed client, a refused put, a
    /// lost race). A majority of the keepers must answer, and every answer must say the shard
    /// is not registered; otherwise it waits for the next round. Returns the shards deleted.
    pub async fn reclaim_expired(&self) -> usize {
        let grace = u64::try_from(self.reclaim_grace().as_millis()).unwrap_or(u64::MAX);
        let now = self.env.unix_ms();
        let due: Vec<(memo_core::ShardId, Option<Uploaders>)> = self
            .ticketed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, u)| u.values().all(|exp| exp.saturating_add(grace) <= now))
            .map(|(s, u)| (*s, Some(u.clone())))
            .take(memo_core::protocol::MAX_CHUNKS_PER_REQUEST)
            .collect();
        self.reclaim(due, "reclaimed shards whose tickets expired unused")
            .await
    }

    /// Deletes the shards of `due` that no put registered here (a majority of the keepers
    /// answering, none saying it is registered), unless their uploaders changed since `due`
    /// was taken (`None`: no uploader was left).
    async fn reclaim(
        &self,
        due: Vec<(memo_core::ShardId, Option<Uploaders>)>,
        what: &'static str,
    ) -> usize {
        if due.is_empty() {
            return 0;
        }
        let keepers: Vec<AccountId> = self
            .keepers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let req = Request::Registered {
            shards: due.iter().map(|(s, _)| *s).collect(),
        };
        let asks = keepers.iter().map(|k| {
            tokio::time::timeout(
                RECLAIM_TIMEOUT,
                crate::transport::rpc::call(self.transport.as_ref(), *k, &req),
            )
        });
        let answers: Vec<Vec<bool>> = futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|a| match a {
                Ok(Ok(Response::Registered(v))) if v.len() == due.len() => Some(v),
                _ => None,
            })
            .collect();
        if answers.len() < keepers.len() / 2 + 1 {
            debug!(
                answered = answers.len(),
                keepers = keepers.len(),
                "too few keepers answered; reclaiming later"
            );
            return 0;
        }
        blocking(|| self.reclaim_due(&due, &answers, what))
    }

    /// Deletes the shards of `due` that no answer says are registered, unless stored again
    /// meanwhile.
    fn reclaim_due(
        &self,
        due: &[(memo_core::ShardId, Option<Uploaders>)],
        answers: &[Vec<bool>],
        what: &'static str,
    ) -> usize {
        // Under the lock: a shard stored again meanwhile (a new ticket) is not due any more.
        let mut ticketed = self.ticketed.lock().unwrap_or_else(|p| p.into_inner());
        let mut orphans = Vec::new();
        for (i, (shard, uploaders)) in due.iter().enumerate() {
            if ticketed.get(shard) != uploaders.as_ref() {
                continue;
            }
            ticketed.remove(shard);
            if !answers.iter().any(|a| a[i]) {
                orphans.push(*shard);
            }
        }
        if orphans.is_empty() {
            return 0;
        }
        match self.delete(&orphans, |_| {}) {
            Response::Deleted(n) => {
                info!(count = n, "{what}");
                n as usize
            }
            _ => 0,
        }
    }

    /// Takes back `user`'s uploads of `shards` (its put failed and will not use them): a shard
    /// no other uploader holds a ticket for here, and that no put registered, is deleted at
    /// once. Returns the shards deleted.
    pub async fn withdraw(&self, user: AccountId, shards: &[memo_core::ShardId]) -> usize {
        let mut due = Vec::new();
        {
            let mut ticketed = self.ticketed.lock().unwrap_or_else(|p| p.into_inner());
            for s in shards
                .iter()
                .take(memo_core::protocol::MAX_CHUNKS_PER_REQUEST)
            {
                let Some(uploaders) = ticketed.get_mut(s) else {
                    continue;
                };
                if uploaders.remove(&user).is_some() && uploaders.is_empty() {
                    ticketed.remove(s);
                    due.push((*s, None));
                }
            }
        }
        self.reclaim(due, "deleted shards their uploader withdrew")
            .await
    }

    /// How long after a ticket expires this provider asks whether a put registered its shards.
    pub fn reclaim_grace(&self) -> Duration {
        self.reclaim_grace.get().copied().unwrap_or(RECLAIM_GRACE)
    }

    /// Sets the reclaim grace (before [`Provider::spawn_reclaimer`]; once). It must cover the
    /// time from a ticket's expiry until a put admitted just before it is in the keepers' log:
    /// a few seconds on one machine, [`RECLAIM_GRACE`] by default. Reclaims then run every
    /// half grace, at most every [`RECLAIM_EVERY`].
    pub fn set_reclaim_grace(&self, grace: Duration) {
        let _ = self.reclaim_grace.set(grace);
    }

    /// How often the reclaimer runs: every [`RECLAIM_EVERY`], or every half grace when that
    /// is shorter (at least every second).
    pub fn reclaim_every(&self) -> Duration {
        (self.reclaim_grace() / 2).clamp(Duration::from_secs(1), RECLAIM_EVERY)
    }

    /// Runs [`Provider::reclaim_expired`] every [`Provider::reclaim_every`] of this provider's
    /// clock.
    pub fn spawn_reclaimer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.env.sleep(me.reclaim_every()).await;
                me.reclaim_expired().await;
            }
        })
    }

    /// This provider's account.
    pub fn account(&self) -> AccountId {
        self.transport.local_id()
    }

    /// Trusts one more keeper (e.g. one that registered on the ledger later).
    pub fn add_keeper(&self, keeper: AccountId) {
        self.keepers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(keeper);
    }

    /// Answers keepers' prove requests with `prover` (see [`crate::provider::prover`]); set once.
    pub fn set_prover(&self, prover: Arc<crate::provider::prover::Prover>) {
        let _ = self.prover.set(prover);
    }

    /// The prover, if the provider runs with a ledger.
    pub fn prover(&self) -> Option<&Arc<crate::provider::prover::Prover>> {
        self.prover.get()
    }

    /// The shard store.
    pub fn store(&self) -> &S {
        self.holder.store()
    }

    /// Serves requests on its transport until it closes (a node with only this service).
    pub async fn run(self: Arc<Self>) {
        let t = self.transport.clone();
        crate::node::serve(t, vec![self as Arc<dyn Service>]).await;
    }

    fn is_keeper(&self, who: &AccountId) -> bool {
        self.keepers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(who)
    }

    /// Stores a shard: a keeper's without more ado (repair), a user's only under a valid
    /// ticket for exactly this shard, size, uploader and provider, answered with a receipt.
    fn put_shard(
        &self,
        from: AccountId,
        shard: memo_core::ShardId,
        ticket: Option<&Signed<Ticket>>,
        bytes: &[u8],
    ) -> Response {
        let ticket = match ticket {
            None if self.is_keeper(&from) => None,
            None => {
                warn!(from = %from.label(), shard = %shard.short(), "refused a shard without a ticket");
                return Response::error(
                    ErrorCode::Forbidden,
                    "a shard needs a keeper's ticket (ask a keeper to place the chunk)",
                );
            }
            Some(t) => match check_ticket(
                t,
                |k| self.is_keeper(k),
                &mut self.sigs.lock().unwrap_or_else(|p| p.into_inner()),
                &shard,
                bytes.len() as u64,
                &from,
                &self.account(),
                self.env.unix_ms(),
            ) {
                Ok(t) => {
                    // Recorded before the bytes are written: a reclaim that runs meanwhile
                    // sees the new expiry and leaves the shard alone.
                    self.ticketed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(shard)
                        .or_default()
                        .insert(t.user, t.expires_ms);
                    Some(t)
                }
                Err(e) => {
                    warn!(from = %from.label(), shard = %shard.short(), "refused a shard: {e}");
                    return Response::error(ErrorCode::Forbidden, e.to_string());
                }
            },
        };
        match self.holder.accept(&shard, bytes) {
            Ok(new) => {
                debug!(shard = %shard.short(), from = %from.label(), new, "stored shard");
                let receipt = ticket.map(|t| {
                    Signed::sign(
                        &self.key,
                        &Receipt {
                            shard,
                            size: t.size,
                            user: t.user,
                            expires_ms: t.expires_ms,
                        },
                    )
                });
                Response::Stored { new, receipt }
            }
            Err(e @ HolderError::Full { .. }) => {
                warn!(shard = %shard.short(), "refused a shard: {e}");
                Response::error(ErrorCode::Unavailable, format!("provider is full: {e}"))
            }
            Err(e) => Response::error(ErrorCode::BadRequest, e.to_string()),
        }
    }

    /// Deletes `shards` (the prover stops proving them first) and answers how many it deleted;
    /// `log` reports that count.
    fn delete(&self, shards: &[memo_core::ShardId], log: impl FnOnce(usize)) -> Response {
        if let Some(p) = self.prover.get() {
            p.note_purged(shards);
        }
        match self.holder.purge(shards) {
            Ok(n) => {
                log(n);
                Response::Deleted(n as u64)
            }
            Err(e) => Response::error(ErrorCode::Internal, e.to_string()),
        }
    }

    /// Handles one provider request (blocking: it touches the disk).
    pub fn handle_blocking(&self, from: AccountId, req: Request) -> Response {
        match req {
            Request::PutShard {
                shard,
                ticket,
                bytes,
            } => {
                // Stamped before it is stored: a sweep that runs meanwhile sees it as fresh.
                let stamps = || self.stored_at.lock().unwrap_or_else(|p| p.into_inner());
                let now = self.env.now();
                let before = stamps().insert(shard, now);
                let response = self.put_shard(from, shard, ticket.as_ref(), &bytes);
                if let (Response::Stored { .. }, Some(m)) = (&response, self.metrics.get()) {
                    m.shard_in(bytes.len());
                }
                // A refused put stored nothing: take its stamp back (unless another put of the
                // shard stamped it since), so refused puts do not pile up stamps.
                if matches!(response, Response::Error(_)) {
                    let mut stamps = stamps();
                    if stamps.get(&shard) == Some(&now) {
                        match before {
                            Some(t) => stamps.insert(shard, t),
                            None => stamps.remove(&shard),
                        };
                    }
                }
                response
            }
            Request::GetShard { shard } => match self.holder.read(&shard) {
                Ok(b) => {
                    if let (Some(b), Some(m)) = (&b, self.metrics.get()) {
                        m.shard_out(b.len());
                    }
                    Response::Shard(b.map(Bytes::from))
                }
                Err(HolderError::Store(ShardStoreError::Corrupt { reason, .. })) => {
                    // The store verified it against its id: never serve it, and drop it so
                    // its space is freed and a good copy can be stored again.
                    let dropped = self.holder.purge(&[shard]);
                    warn!(shard = %shard.short(), %reason, dropped = ?dropped, "shard on disk is corrupt; dropped it");
                    Response::Shard(None)
                }
                Err(e) => {
                    warn!(shard = %shard.short(), "read failed: {e}");
                    Response::Shard(None)
                }
            },
            Request::DeleteShards { shards } => {
                if !self.is_keeper(&from) {
                    return Response::error(ErrorCode::Forbidden, "only keepers may delete shards");
                }
                self.delete(&shards, |n| {
                    info!(count = n, keeper = %from.label(), "purged shards");
                })
            }
            Request::ListShards { after, max } => {
                if !self.is_keeper(&from) {
                    return Response::error(ErrorCode::Forbidden, "only keepers may list shards");
                }
                match self.holder.store().list_after(after.as_ref(), max as usize) {
                    Ok(ids) => Response::ShardList(ids),
                    Err(e) => Response::error(ErrorCode::Internal, e.to_string()),
                }
            }
            Request::SweepShards { shards, idle_ms } => {
                if !self.is_keeper(&from) {
                    return Response::error(ErrorCode::Forbidden, "only keepers may sweep shards");
                }
                // Under the lock, so no store of these shards can slip between the idle check
                // and the delete (a store stamps first, then writes).
                let mut stamps = self.stored_at.lock().unwrap_or_else(|p| p.into_inner());
                let idle = Duration::from_millis(idle_ms);
                let now = self.env.now();
                let old: Vec<memo_core::ShardId> = shards
                    .into_iter()
                    .filter(|id| {
                        let at = stamps.get(id).copied().unwrap_or(self.started);
                        now.saturating_duration_since(at) >= idle
                    })
                    .collect();
                let answer = self.delete(&old, |n| {
                    if n > 0 {
                        info!(count = n, keeper = %from.label(), "swept orphan shards");
                    }
                });
                for id in &old {
                    stamps.remove(id);
                }
                // Stamps older than a day (or the window) say no more than `started` does.
                let keep = idle.max(Duration::from_secs(24 * 3600));
                stamps.retain(|_, at| now.saturating_duration_since(*at) < keep);
                answer
            }
            Request::ProvePossession { shards } => {
                if !self.is_keeper(&from) {
                    return Response::error(
                        ErrorCode::Forbidden,
                        "only keepers may ask for proofs of possession",
                    );
                }
                Response::Possession(
                    shards
                        .iter()
                        .map(|(id, key)| match self.holder.read(id) {
                            Ok(Some(b)) => Some(possession_proof(key, &b)),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Request::ProviderStatus => {
                let store = self.holder.store();
                let status = (|| -> Result<Response, HolderError> {
                    Ok(Response::ProviderStatus {
                        capacity: self.holder.capacity(),
                        used: store.used_bytes()?,
                        shards: store.shard_count()?,
                        room: self.holder.room()?,
                    })
                })();
                status.unwrap_or_else(|e| Response::error(ErrorCode::Internal, e.to_string()))
            }
            other => Response::error(
                ErrorCode::BadRequest,
                format!("a provider does not serve {}", other.kind()),
            ),
        }
    }
}

#[async_trait::async_trait]
impl<S: ShardStore + 'static> Service for Provider<S> {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        if let Request::Withdraw { shards } = req {
            return Some(Response::Deleted(self.withdraw(from, shards).await as u64));
        }
        if let Request::Prove { challenge } = req {
            let (prover, store) = (self.prover.get(), self.holder.store());
            return Some(
                crate::provider::prover::serve(prover, self.is_keeper(&from), challenge, store)
                    .await,
            );
        }
        if !matches!(
            req,
            Request::PutShard { .. }
                | Request::GetShard { .. }
                | Request::DeleteShards { .. }
                | Request::ProvePossession { .. }
                | Request::ProviderStatus
                | Request::ListShards { .. }
                | Request::SweepShards { .. }
        ) {
            return None;
        }
        let req = req.clone();
        Some(blocking(|| self.handle_blocking(from, req)))
    }
}

/// Client side of the provider protocol.
pub mod client {
    use super::*;
    use crate::transport::lane::Via;
    use crate::transport::rpc::{RpcError, call};
    use memo_core::ShardId;

    /// Uploads one shard under `ticket` (a keeper's own uploads need none); returns whether
    /// it was new there and the provider's receipt.
    pub async fn put_shard(
        via: Via<'_>,
        provider: AccountId,
        shard: ShardId,
        ticket: Option<Signed<Ticket>>,
        bytes: Bytes,
    ) -> Result<(bool, Option<Signed<Receipt>>), RpcError> {
        let req = Request::PutShard {
            shard,
            ticket,
            bytes,
        };
        match via.call(provider, &req).await? {
            Response::Stored { new, receipt } => Ok((new, receipt)),
            other => Err(unexpected(provider, "PutShard", &other)),
        }
    }

    /// Takes back this client's uploads of `shards` to `provider` (a put that failed before it
    /// was submitted); returns how many the provider deleted.
    pub async fn withdraw(
        t: &dyn Transport,
        provider: AccountId,
        shards: Vec<ShardId>,
    ) -> Result<u64, RpcError> {
        match call(t, provider, &Request::Withdraw { shards }).await? {
            Response::Deleted(n) => Ok(n),
            other => Err(unexpected(provider, "Withdraw", &other)),
        }
    }

    /// Asks a provider for proofs of possession of `shards` under their keys (keepers only);
    /// `None` for a shard it does not hold.
    pub async fn prove_possession(
        t: &dyn Transport,
        provider: AccountId,
        shards: Vec<(ShardId, [u8; 32])>,
    ) -> Result<Vec<Option<[u8; 32]>>, RpcError> {
        let n = shards.len();
        match call(t, provider, &Request::ProvePossession { shards }).await? {
            Response::Possession(p) if p.len() == n => Ok(p),
            other => Err(unexpected(provider, "ProvePossession", &other)),
        }
    }

    /// Downloads one shard (unverified: check it against its id).
    pub async fn get_shard(
        via: Via<'_>,
        provider: AccountId,
        shard: ShardId,
    ) -> Result<Option<Bytes>, RpcError> {
        match via.call(provider, &Request::GetShard { shard }).await? {
            Response::Shard(b) => Ok(b),
            other => Err(unexpected(provider, "GetShard", &other)),
        }
    }

    /// Asks a provider to delete shards (keepers only).
    pub async fn delete_shards(
        t: &dyn Transport,
        provider: AccountId,
        shards: Vec<ShardId>,
    ) -> Result<u64, RpcError> {
        match call(t, provider, &Request::DeleteShards { shards }).await? {
            Response::Deleted(n) => Ok(n),
            other => Err(unexpected(provider, "DeleteShards", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::ShardId;
    use memo_core::ownership::MemoryShardStore;
    use memo_core::transport::MemoryNetwork;

    fn provider(keepers: &[AccountId], capacity: u64) -> Arc<Provider<MemoryShardStore>> {
        let net = MemoryNetwork::new();
        let key = Keypair::from_seed("stamp-provider");
        Provider::new(
            Env::simulated(1),
            key.clone(),
            Arc::new(net.join(key.account())),
            MemoryShardStore::new(),
            capacity,
            keepers.iter().copied(),
        )
    }

    fn put(shard: ShardId, ticket: Option<Signed<Ticket>>, bytes: &'static [u8]) -> Request {
        Request::PutShard {
            shard,
            ticket,
            bytes: Bytes::from_static(bytes),
        }
    }

    #[test]
    fn refused_puts_leave_no_upload_stamp() {
        // A keeper's puts (repair) need no ticket.
        let keeper = AccountId([1; 32]);
        let p = provider(&[keeper], 10);
        let stamped = |id: &ShardId| p.stored_at.lock().unwrap().contains_key(id);
        let id = ShardId::of(b"shard");
        // Bytes that do not hash to the id, and a shard over the capacity: both refused.
        let wrong = put(id, None, b"other");
        assert!(matches!(
            p.handle_blocking(keeper, wrong),
            Response::Error(_)
        ));
        assert!(!stamped(&id));
        let big_id = ShardId::of(b"elevenbytes");
        let full = put(big_id, None, b"elevenbytes");
        assert!(matches!(
            p.handle_blocking(keeper, full),
            Response::Error(_)
        ));
        assert!(!stamped(&big_id));
        // A stored shard keeps its stamp, and a refused put of it afterwards keeps it too.
        assert_eq!(
            p.handle_blocking(keeper, put(id, None, b"shard")),
            Response::Stored {
                new: true,
                receipt: None
            }
        );
        let first = p.stored_at.lock().unwrap()[&id];
        let wrong = put(id, None, b"other");
        assert!(matches!(
            p.handle_blocking(keeper, wrong),
            Response::Error(_)
        ));
        assert_eq!(p.stored_at.lock().unwrap().get(&id), Some(&first));
    }

    #[test]
    fn users_store_only_under_a_valid_ticket_and_get_a_receipt() {
        let keeper = Keypair::from_seed("ticket-keeper");
        let p = provider(&[keeper.account()], 1 << 20);
        let user = AccountId([7; 32]);
        let id = ShardId::of(b"shard");
        let now = p.env.unix_ms();
        let ticket = |signer: &Keypair, user: AccountId, expires_ms: u64| {
            Some(Signed::sign(
                signer,
                &Ticket {
                    chunk: memo_core::ChunkId([1; 32]),
                    shards: vec![(id, p.account())],
                    size: 5,
                    user,
                    expires_ms,
                },
            ))
        };
        let refused = |req: Request| match p.handle_blocking(user, req) {
            Response::Error(e) => e.code == ErrorCode::Forbidden,
            _ => false,
        };
        // No ticket, a stranger's ticket, someone else's ticket, an expired ticket.
        assert!(refused(put(id, None, b"shard")));
        let stranger = Keypair::from_seed("stranger");
        assert!(refused(put(
            id,
            ticket(&stranger, user, now + 1000),
            b"shard"
        )));
        assert!(refused(put(
            id,
            ticket(&keeper, AccountId([8; 32]), now + 1000),
            b"shard"
        )));
        assert!(refused(put(id, ticket(&keeper, user, now), b"shard")));
        assert_eq!(p.store().shard_count().unwrap(), 0, "nothing was stored");
        // A valid ticket: stored, with a receipt the provider signed for this user.
        let Response::Stored {
            new: true,
            receipt: Some(r),
        } = p.handle_blocking(user, put(id, ticket(&keeper, user, now + 1000), b"shard"))
        else {
            panic!("a ticketed put is stored");
        };
        assert_eq!(r.signer, p.account());
        let body = r.open().unwrap();
        assert_eq!((body.shard, body.size, body.user), (id, 5, user));
        // Proofs of possession are for keepers only, and match the holder's bytes.
        let ask = Request::ProvePossession {
            shards: vec![(id, [3; 32]), (ShardId::of(b"absent"), [3; 32])],
        };
        assert!(refused(ask.clone()));
        assert_eq!(
            p.handle_blocking(keeper.account(), ask),
            Response::Possession(vec![Some(possession_proof(&[3; 32], b"shard")), None])
        );
    }
}

//! The ledger over a transport: a node serving its chain ([`LedgerService`]), the client
//! side ([`RemoteLedger`]), and a verifying follower that keeps a local chain in step with a
//! sequencer ([`ChainFollower`]).

use super::block::{Block, Head, MAX_BLOCK_BYTES};
use super::local::LocalChain;
use super::{Ledger, LedgerError, TxStatus};
use crate::node::Service;
use crate::transport::rpc::{RpcError, call, unexpected};
use async_trait::async_trait;
use memo_core::contract::{Answer, Height, Outcome, Query, Rejection, SignedTx, Tx};
use memo_core::identity::Signable;
use memo_core::protocol::{
    ErrorCode, MAX_ENTRIES_PER_READ, MAX_TXS_PER_SUBMIT, RemoteError, Request, Response,
};
use memo_core::transport::{MAX_MESSAGE, Transport};
use memo_core::{AccountId, wire};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Bytes of blocks one [`Request::LedgerBlocks`] answer carries at most (at least one block
/// is always sent).
pub const MAX_BLOCKS_BYTES: usize = 16 << 20;
/// Blocks a [`RemoteLedger`] fetches ahead when asked for one.
const PREFETCH: u32 = 64;
/// Largest encoded query, answer, head or status accepted.
const MAX_SMALL: usize = 4 << 20;
/// Largest encoded signed transaction accepted.
const MAX_TX_ENVELOPE: usize = Tx::MAX_BYTES + 256;

// ---------------------------------------------------------------------------------------------
// Wire forms of the ledger's answers that are not serde types themselves.

/// [`TxStatus`] on the wire.
#[derive(serde::Serialize, serde::Deserialize)]
enum WireStatus {
    Pending,
    Included {
        height: Height,
        index: u64,
        outcome: Outcome,
    },
    Rejected(WireRejection),
    Unknown,
}

/// [`Rejection`] on the wire. `Other` carries the text of a kind this build does not know.
#[derive(serde::Serialize, serde::Deserialize)]
enum WireRejection {
    BadSignature,
    Malformed(String),
    WrongChain {
        expected: u64,
        got: u64,
    },
    NonceReplayed {
        expected: u64,
        got: u64,
    },
    NonceGap {
        expected: u64,
        got: u64,
    },
    UnknownModule(memo_core::contract::ModuleAddress),
    WrongModule(memo_core::contract::Module),
    AlreadyRegistered(memo_core::contract::RoleKind),
    NotRegistered(AccountId),
    WrongRole(AccountId, memo_core::contract::RoleKind),
    Leaving(AccountId),
    InsufficientBalance {
        needed: u64,
        available: u64,
    },
    StakeTooLow {
        stake: u64,
        minimum: u64,
    },
    CapacityExceeded {
        free: u64,
        requested: u64,
    },
    PriceBelowAsk {
        ask: u64,
        offered: u64,
    },
    Invalid(String),
    Overflow,
    UnknownOrder(u64),
    NotOrderParty(u64),
    BadStorageReceipt {
        index: u32,
        reason: String,
    },
    NotCommitted(u64),
    OrderNotRunning {
        order: u64,
        epoch: u64,
    },
    WrongEpoch {
        current: u64,
        got: u64,
    },
    WrongShard {
        expected: memo_core::ShardId,
        got: memo_core::ShardId,
    },
    AlreadyProven(u64),
    BadReceipt,
    NotReceiptProvider(AccountId),
    ReceiptAlreadySettled,
    ReceiptExpired(u64),
    ReceiptTooLong(u64),
    NoOpenBlock,
    Other(String),
}

/// The field names the contract uses in [`Rejection::Invalid`] (a `&'static str`).
const INVALID_FIELDS: &[&str] = &[
    "address (too long)",
    "amount (zero)",
    "capacity (zero)",
    "duration",
    "shard count",
    "shard share (zero bytes)",
    "beacon (already sent this epoch)",
    "beacon reveal (does not match)",
    "beacon reveal (missing)",
    "beacon reveal (nothing committed)",
];

/// The reasons the contract gives in [`Rejection::BadStorageReceipt`].
const RECEIPT_REASONS: &[&str] = &[
    "not signed by the order's provider",
    "bad signature",
    "malformed",
    "issued to another user",
    "shard sizes differ or are zero",
    "shard listed twice",
];

/// The `&'static str` in `known` equal to `s`, or `fallback`.
fn known_str(known: &[&'static str], s: &str, fallback: &'static str) -> &'static str {
    known.iter().find(|k| **k == s).copied().unwrap_or(fallback)
}

impl From<&Rejection> for WireRejection {
    fn from(r: &Rejection) -> Self {
        use Rejection as R;
        use WireRejection as W;
        match r {
            R::BadSignature => W::BadSignature,
            R::Malformed(m) => W::Malformed(m.clone()),
            R::WrongChain { expected, got } => W::WrongChain {
                expected: *expected,
                got: *got,
            },
            R::NonceReplayed { expected, got } => W::NonceReplayed {
                expected: *expected,
                got: *got,
            },
            R::NonceGap { expected, got } => W::NonceGap {
                expected: *expected,
                got: *got,
            },
            R::UnknownModule(a) => W::UnknownModule(*a),
            R::WrongModule { call } => W::WrongModule(*call),
            R::AlreadyRegistered(k) => W::AlreadyRegistered(*k),
            R::NotRegistered(a) => W::NotRegistered(*a),
            R::WrongRole { account, needed } => W::WrongRole(*account, *needed),
            R::Leaving(a) => W::Leaving(*a),
            R::InsufficientBalance { needed, available } => W::InsufficientBalance {
                needed: *needed,
                available: *available,
            },
            R::StakeTooLow { stake, minimum } => W::StakeTooLow {
                stake: *stake,
                minimum: *minimum,
            },
            R::CapacityExceeded { free, requested } => W::CapacityExceeded {
                free: *free,
                requested: *requested,
            },
            R::PriceBelowAsk { ask, offered } => W::PriceBelowAsk {
                ask: *ask,
                offered: *offered,
            },
            R::Invalid(f) => W::Invalid((*f).to_string()),
            R::Overflow => W::Overflow,
            R::UnknownOrder(o) => W::UnknownOrder(*o),
            R::NotOrderParty(o) => W::NotOrderParty(*o),
            R::BadStorageReceipt { index, reason } => W::BadStorageReceipt {
                index: *index,
                reason: (*reason).to_string(),
            },
            R::NotCommitted(o) => W::NotCommitted(*o),
            R::OrderNotRunning { order, epoch } => W::OrderNotRunning {
                order: *order,
                epoch: *epoch,
            },
            R::WrongEpoch { current, got } => W::WrongEpoch {
                current: *current,
                got: *got,
            },
            R::WrongShard { expected, got } => W::WrongShard {
                expected: *expected,
                got: *got,
            },
            R::AlreadyProven(o) => W::AlreadyProven(*o),
            R::BadReceipt => W::BadReceipt,
            R::NotReceiptProvider(a) => W::NotReceiptProvider(*a),
            R::ReceiptAlreadySettled => W::ReceiptAlreadySettled,
            R::ReceiptExpired(e) => W::ReceiptExpired(*e),
            R::ReceiptTooLong(e) => W::ReceiptTooLong(*e),
            R::NoOpenBlock => W::NoOpenBlock,
            other => W::Other(other.to_string()),
        }
    }
}

impl From<WireRejection> for Rejection {
    fn from(w: WireRejection) -> Self {
        use Rejection as R;
        use WireRejection as W;
        match w {
            W::BadSignature => R::BadSignature,
            W::Malformed(m) => R::Malformed(m),
            W::WrongChain { expected, got } => R::WrongChain { expected, got },
            W::NonceReplayed { expected, got } => R::NonceReplayed { expected, got },
            W::NonceGap { expected, got } => R::NonceGap { expected, got },
            W::UnknownModule(a) => R::UnknownModule(a),
            W::WrongModule(call) => R::WrongModule { call },
            W::AlreadyRegistered(k) => R::AlreadyRegistered(k),
            W::NotRegistered(a) => R::NotRegistered(a),
            W::WrongRole(account, needed) => R::WrongRole { account, needed },
            W::Leaving(a) => R::Leaving(a),
            W::InsufficientBalance { needed, available } => {
                R::InsufficientBalance { needed, available }
            }
            W::StakeTooLow { stake, minimum } => R::StakeTooLow { stake, minimum },
            W::CapacityExceeded { free, requested } => R::CapacityExceeded { free, requested },
            W::PriceBelowAsk { ask, offered } => R::PriceBelowAsk { ask, offered },
            W::Invalid(f) => R::Invalid(known_str(INVALID_FIELDS, &f, "field")),
            W::Overflow => R::Overflow,
            W::UnknownOrder(o) => R::UnknownOrder(o),
            W::NotOrderParty(o) => R::NotOrderParty(o),
            W::BadStorageReceipt { index, reason } => R::BadStorageReceipt {
                index,
                reason: known_str(RECEIPT_REASONS, &reason, "invalid"),
            },
            W::NotCommitted(o) => R::NotCommitted(o),
            W::OrderNotRunning { order, epoch } => R::OrderNotRunning { order, epoch },
            W::WrongEpoch { current, got } => R::WrongEpoch { current, got },
            W::WrongShard { expected, got } => R::WrongShard { expected, got },
            W::AlreadyProven(o) => R::AlreadyProven(o),
            W::BadReceipt => R::BadReceipt,
            W::NotReceiptProvider(a) => R::NotReceiptProvider(a),
            W::ReceiptAlreadySettled => R::ReceiptAlreadySettled,
            W::ReceiptExpired(e) => R::ReceiptExpired(e),
            W::ReceiptTooLong(e) => R::ReceiptTooLong(e),
            W::NoOpenBlock => R::NoOpenBlock,
            // A kind this build does not know: keep its text.
            W::Other(m) => R::Malformed(m),
        }
    }
}

fn encode_status(s: &TxStatus) -> Vec<u8> {
    let w = match s {
        TxStatus::Pending => WireStatus::Pending,
        TxStatus::Included {
            height,
            index,
            outcome,
        } => WireStatus::Included {
            height: *height,
            index: *index as u64,
            outcome: outcome.clone(),
        },
        TxStatus::Rejected(r) => WireStatus::Rejected(r.into()),
        _ => WireStatus::Unknown,
    };
    wire::encode(&w)
}

fn decode_status(bytes: &[u8]) -> Result<TxStatus, LedgerError> {
    let w: WireStatus = wire::decode(bytes, MAX_SMALL, "transaction status")
        .map_err(|e| LedgerError::Malformed(e.to_string()))?;
    Ok(match w {
        WireStatus::Pending => TxStatus::Pending,
        WireStatus::Included {
            height,
            index,
            outcome,
        } => TxStatus::Included {
            height,
            index: usize::try_from(index)
                .map_err(|_| LedgerError::Malformed("transaction index".into()))?,
            outcome,
        },
        WireStatus::Rejected(r) => TxStatus::Rejected(r.into()),
        WireStatus::Unknown => TxStatus::Unknown,
    })
}

// ---------------------------------------------------------------------------------------------
// Serving.

/// The longest a [`Request::LedgerTxWait`] is held (a longer wait is asked again).
pub const MAX_TX_WAIT: Duration = Duration::from_secs(2);

/// Serves a [`Ledger`] to other nodes: [`Request::LedgerSubmit`],
/// [`Request::LedgerSubmitAll`], [`Request::LedgerTxStatus`],
/// [`Request::LedgerTxWait`], [`Request::LedgerQuery`], [`Request::LedgerHead`] and
/// [`Request::LedgerBlocks`].
///
/// Anyone may call it: transactions carry their senders' signatures and reads need no
/// identity. Served by the sequencer, it takes transactions; served by a follower, submits are
/// refused (the follower's ledger answers [`LedgerError::NotSequencer`]) and reads work.
pub struct LedgerService {
    ledger: Arc<dyn Ledger>,
}

impl LedgerService {
    /// Serves `ledger`.
    pub fn new(ledger: Arc<dyn Ledger>) -> Arc<Self> {
        Arc::new(Self { ledger })
    }

    async fn answer(&self, req: &Request) -> Result<Response, LedgerError> {
        Ok(match req {
            Request::LedgerSubmit { tx } => {
                let tx: SignedTx = wire::decode(tx, MAX_TX_ENVELOPE, "transaction")
                    .map_err(|e| LedgerError::Malformed(e.to_string()))?;
                Response::LedgerSubmitted(self.ledger.submit(tx).await?)
            }
            Request::LedgerTxStatus { hash } => {
                Response::LedgerTxStatus(encode_status(&self.ledger.tx_status(*hash).await?))
            }
            Request::LedgerSubmitAll { txs } => {
                let txs = txs
                    .iter()
                    .map(|tx| wire::decode(tx, MAX_TX_ENVELOPE, "transaction"))
                    .collect::<Result<Vec<SignedTx>, _>>()
                    .map_err(|e| LedgerError::Malformed(e.to_string()))?;
                Response::LedgerSubmittedAll(self.ledger.submit_all(txs).await?)
            }
            Request::LedgerTxWait { hashes, within_ms } => {
                let within = Duration::from_millis(u64::from(*within_ms)).min(MAX_TX_WAIT);
                let statuses = self.ledger.await_txs(hashes, within).await?;
                Response::LedgerTxStatuses(statuses.iter().map(encode_status).collect())
            }
            Request::LedgerQuery { query } => {
                let q: Query = wire::decode(query, MAX_SMALL, "query")
                    .map_err(|e| LedgerError::Malformed(e.to_string()))?;
                Response::LedgerAnswer(wire::encode(&self.ledger.query(q).await?))
            }
            Request::LedgerHead => Response::LedgerHead(wire::encode(&self.ledger.head().await?)),
            Request::LedgerBlocks { from, max } => {
                let max = (*max).clamp(1, MAX_ENTRIES_PER_READ);
                let mut out: Vec<Vec<u8>> = Vec::new();
                let mut bytes = 0usize;
                // Heights from `from` on, stopping at the last one a u64 holds (a peer may ask
                // for any height; `from..` would overflow past u64::MAX).
                for h in (0..u64::from(max)).map_while(|i| from.checked_add(i)) {
                    let Some(b) = self.ledger.block(h).await? else {
                        break;
                    };
                    let raw = b.encode();
                    if raw.len() + 1024 > MAX_MESSAGE {
                        return Err(LedgerError::TooLarge(raw.len()));
                    }
                    if !out.is_empty() && bytes + raw.len() > MAX_BLOCKS_BYTES {
                        break;
                    }
                    bytes += raw.len();
                    out.push(raw);
                }
                Response::LedgerBlocks(out)
            }
            _ => return Err(LedgerError::Malformed("not a ledger request".into())),
        })
    }
}

fn remote_error(e: &LedgerError) -> RemoteError {
    let code = match e {
        LedgerError::NotSequencer | LedgerError::MempoolFull | LedgerError::Unreachable(_) => {
            ErrorCode::Unavailable
        }
        LedgerError::TooLarge(_) | LedgerError::Malformed(_) => ErrorCode::BadRequest,
        LedgerError::Remote(r) => r.code,
        _ => ErrorCode::Internal,
    };
    RemoteError::new(code, e.to_string())
}

#[async_trait]
impl Service for LedgerService {
    async fn handle(&self, _from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::LedgerSubmit { .. }
            | Request::LedgerTxStatus { .. }
            | Request::LedgerTxWait { .. }
            | Request::LedgerSubmitAll { .. }
            | Request::LedgerQuery { .. }
            | Request::LedgerHead
            | Request::LedgerBlocks { .. } => Some(
                self.answer(req)
                    .await
                    .unwrap_or_else(|e| Response::Error(remote_error(&e))),
            ),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side.

fn rpc_error(e: RpcError) -> LedgerError {
    match e {
        RpcError::Remote { error, .. } => LedgerError::Remote(error),
        other => LedgerError::Unreachable(other.to_string()),
    }
}

/// A [`Ledger`] served by another node's [`LedgerService`], or by the first of several that
/// answers ([`RemoteLedger::with_peers`]: the keepers of a group, which all serve its chain).
///
/// Blocks come back as the server sent them, unverified: a [`LocalChain`] follower (see
/// [`ChainFollower`]) checks each one as it imports it. [`Ledger::subscribe`] polls the
/// server's head every poll interval while anyone subscribes, fetches the new blocks and
/// broadcasts them. [`Ledger::block`] fetches a window of blocks ahead and serves the next
/// heights from it, so a follower catching up pays one round trip per window, not per block.
pub struct RemoteLedger {
    transport: Arc<dyn Transport>,
    peers: Vec<AccountId>,
    current: std::sync::atomic::AtomicUsize,
    poll: Duration,
    events: broadcast::Sender<Arc<Block>>,
    prefetched: Mutex<BTreeMap<Height, Block>>,
    poller: Mutex<Option<JoinHandle<()>>>,
    this: Weak<RemoteLedger>,
}

impl std::fmt::Debug for RemoteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLedger")
            .field("peer", &self.peer())
            .finish_non_exhaustive()
    }
}

impl RemoteLedger {
    /// The ledger served by `peer`, reached over `transport`; subscriptions poll its head
    /// every `poll`.
    pub fn new(transport: Arc<dyn Transport>, peer: AccountId, poll: Duration) -> Arc<Self> {
        Self::with_peers(transport, vec![peer], poll)
    }

    /// The ledger served by each of `peers` (in a keeper group, every keeper serves its
    /// chain). Requests go to the peer that answered last; one that cannot be reached, or
    /// answers that it cannot serve now (no leader, not the sequencer), passes the request to
    /// the next. `peers` must not be empty.
    pub fn with_peers(
        transport: Arc<dyn Transport>,
        mut peers: Vec<AccountId>,
        poll: Duration,
    ) -> Arc<Self> {
        let mut seen = std::collections::HashSet::new();
        peers.retain(|p| seen.insert(*p));
        Arc::new_cyclic(|this| Self {
            transport,
            peers,
            current: std::sync::atomic::AtomicUsize::new(0),
            poll,
            events: broadcast::channel(1024).0,
            prefetched: Mutex::new(BTreeMap::new()),
            poller: Mutex::new(None),
            this: this.clone(),
        })
    }

    /// The node serving the ledger (the one that answered last).
    pub fn peer(&self) -> AccountId {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        self.peers[i % self.peers.len().max(1)]
    }

    async fn call(&self, req: &Request) -> Result<Response, LedgerError> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.peers.len();
        let first = self.current.load(Relaxed);
        let mut last = LedgerError::Unreachable("no ledger peer configured".into());
        for i in 0..n {
            let at = (first + i) % n;
            match call(self.transport.as_ref(), self.peers[at], req).await {
                Ok(r) => {
                    self.current.store(at, Relaxed);
                    return Ok(r);
                }
                Err(e) => {
                    let e = rpc_error(e);
                    let next = match &e {
                        LedgerError::Unreachable(_) => true,
                        LedgerError::Remote(r) => r.code == ErrorCode::Unavailable,
                        _ => false,
                    };
                    if !next {
                        return Err(e);
                    }
                    debug!(peer = %self.peers[at].label(), "ledger peer: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn unexpected(&self, asked: &'static str, got: &Response) -> LedgerError {
        LedgerError::Unreachable(unexpected(self.peer(), asked, got).to_string())
    }

    /// Up to `max` blocks from height `from` on (fewer at the head), unverified, checked only
    /// to be the heights asked.
    pub async fn blocks(&self, from: Height, max: u32) -> Result<Vec<Block>, LedgerError> {
        let req = Request::LedgerBlocks {
            from,
            max: max.min(MAX_ENTRIES_PER_READ),
        };
        let raw = match self.call(&req).await? {
            Response::LedgerBlocks(b) => b,
            other => return Err(self.unexpected("LedgerBlocks", &other)),
        };
        let mut out = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            if bytes.len() > MAX_BLOCK_BYTES {
                return Err(LedgerError::Malformed("block too large".into()));
            }
            let b = Block::decode(bytes).map_err(|e| LedgerError::Malformed(e.to_string()))?;
            let expected = from.saturating_add(i as u64);
            if b.header.height != expected {
                return Err(LedgerError::WrongHeight {
                    expected,
                    got: b.header.height,
                });
            }
            out.push(b);
        }
        Ok(out)
    }

    fn lock_prefetched(&self) -> std::sync::MutexGuard<'_, BTreeMap<Height, Block>> {
        self.prefetched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ensure_poller(&self) {
        let mut poller = self.poller.lock().unwrap_or_else(|p| p.into_inner());
        if poller.is_some() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *poller = Some(rt.spawn(poll_loop(self.this.clone(), self.poll)));
    }
}

impl Drop for RemoteLedger {
    fn drop(&mut self) {
        if let Some(t) = self
            .poller
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

/// Broadcasts the server's new blocks while anyone subscribes.
async fn poll_loop(this: Weak<RemoteLedger>, every: Duration) {
    let mut next: Option<Height> = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(me) = this.upgrade() else { return };
        if me.events.receiver_count() == 0 {
            next = None;
            continue;
        }
        let head = match me.head().await {
            Ok(h) => h,
            Err(e) => {
                debug!(peer = %me.peer().label(), "ledger poll: {e}");
                continue;
            }
        };
        let mut at = *next.get_or_insert(head.height + 1);
        while at <= head.height {
            match me.blocks(at, PREFETCH).await {
                Ok(blocks) if !blocks.is_empty() => {
                    for b in blocks {
                        at += 1;
                        let _ = me.events.send(Arc::new(b));
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    debug!(peer = %me.peer().label(), "ledger poll: {e}");
                    break;
                }
            }
        }
        next = Some(at);
    }
}

#[async_trait]
impl Ledger for RemoteLedger {
    async fn submit(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError> {
        match self
            .call(&Request::LedgerSubmit {
                tx: wire::encode(&tx),
            })
            .await?
        {
            Response::LedgerSubmitted(h) => Ok(h),
            other => Err(self.unexpected("LedgerSubmit", &other)),
        }
    }

    async fn submit_all(&self, txs: Vec<SignedTx>) -> Result<Vec<[u8; 32]>, LedgerError> {
        let mut hashes = Vec::with_capacity(txs.len());
        for batch in txs.chunks(MAX_TXS_PER_SUBMIT) {
            let req = Request::LedgerSubmitAll {
                txs: batch.iter().map(wire::encode).collect(),
            };
            match self.call(&req).await? {
                Response::LedgerSubmittedAll(h) if h.len() == batch.len() => hashes.extend(h),
                other => return Err(self.unexpected("LedgerSubmitAll", &other)),
            }
        }
        Ok(hashes)
    }

    async fn tx_status(&self, hash: [u8; 32]) -> Result<TxStatus, LedgerError> {
        match self.call(&Request::LedgerTxStatus { hash }).await? {
            Response::LedgerTxStatus(s) => decode_status(&s),
            other => Err(self.unexpected("LedgerTxStatus", &other)),
        }
    }

    async fn await_txs(
        &self,
        hashes: &[[u8; 32]],
        within: Duration,
    ) -> Result<Vec<TxStatus>, LedgerError> {
        let within_ms = within.min(MAX_TX_WAIT).as_millis() as u32;
        let mut statuses = Vec::with_capacity(hashes.len());
        for batch in hashes.chunks(MAX_TXS_PER_SUBMIT) {
            let req = Request::LedgerTxWait {
                hashes: batch.to_vec(),
                within_ms,
            };
            match self.call(&req).await? {
                Response::LedgerTxStatuses(s) if s.len() == batch.len() => {
                    for raw in s {
                        statuses.push(decode_status(&raw)?);
                    }
                }
                other => return Err(self.unexpected("LedgerTxWait", &other)),
            }
        }
        Ok(statuses)
    }

    async fn query(&self, query: Query) -> Result<Answer, LedgerError> {
        match self
            .call(&Request::LedgerQuery {
                query: wire::encode(&query),
            })
            .await?
        {
            Response::LedgerAnswer(a) => wire::decode(&a, MAX_SMALL, "answer")
                .map_err(|e| LedgerError::Malformed(e.to_string())),
            other => Err(self.unexpected("LedgerQuery", &other)),
        }
    }

    async fn head(&self) -> Result<Head, LedgerError> {
        match self.call(&Request::LedgerHead).await? {
            Response::LedgerHead(h) => wire::decode(&h, MAX_SMALL, "head")
                .map_err(|e| LedgerError::Malformed(e.to_string())),
            other => Err(self.unexpected("LedgerHead", &other)),
        }
    }

    async fn block(&self, height: Height) -> Result<Option<Block>, LedgerError> {
        {
            let mut p = self.lock_prefetched();
            // Taken, not copied: a block that failed to import is fetched afresh next time.
            if let Some(b) = p.remove(&height) {
                p.retain(|h, _| *h > height);
                return Ok(Some(b));
            }
        }
        let mut blocks = self.blocks(height, PREFETCH).await?.into_iter();
        let first = blocks.next();
        if first.is_some() {
            let mut p = self.lock_prefetched();
            p.clear();
            p.extend(blocks.map(|b| (b.header.height, b)));
        }
        Ok(first)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Block>> {
        let rx = self.events.subscribe();
        self.ensure_poller();
        rx
    }
}

// ---------------------------------------------------------------------------------------------
// Following.

/// Progress of a [`ChainFollower`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStatus {
    /// The follower's head height.
    pub height: Height,
    /// The last failure (cleared by the next successful sync).
    pub last_error: Option<LedgerError>,
    /// Blocks refused because they did not verify (counted per attempt).
    pub rejected: u64,
}

/// Keeps a follower [`LocalChain`] (its own redb) in step with a source ledger (usually a
/// [`RemoteLedger`] to the sequencer): imports every new block, verifying each (sequencer
/// signature, parent hash, height, transaction root, every transaction, state root) before
/// storing it. A block that does not verify is refused and the follower stays at its head,
/// retrying with backoff and reporting the error in [`ChainFollower::status`]; it never skips.
///
/// The chain opened from its data dir resumes at its stored head, so a restarted follower
/// fetches only the blocks it lacks. Dropping the `ChainFollower` stops the loop.
pub struct ChainFollower {
    chain: Arc<LocalChain>,
    status: watch::Receiver<FollowStatus>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ChainFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainFollower")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl ChainFollower {
    /// Starts following `source` into `chain` (opened with [`LocalChain::open_follower`]). It
    /// syncs at once, then whenever `source` announces a block, and at least every `poll`.
    pub fn start(chain: Arc<LocalChain>, source: Arc<dyn Ledger>, poll: Duration) -> Self {
        let (tx, status) = watch::channel(FollowStatus {
            height: chain.head_now().height,
            ..FollowStatus::default()
        });
        let task = tokio::spawn(follow_loop(chain.clone(), source, poll, tx));
        Self {
            chain,
            status,
            task: Some(task),
        }
    }

    /// Stops following and waits until the loop is gone; returns the chain.
    pub async fn stop(mut self) -> Arc<LocalChain> {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.chain.clone()
    }

    /// The follower's chain (serve it with a [`LedgerService`] for reads).
    pub fn chain(&self) -> &Arc<LocalChain> {
        &self.chain
    }

    /// Progress, updated as it changes.
    pub fn status(&self) -> watch::Receiver<FollowStatus> {
        self.status.clone()
    }

    /// Waits until the follower's head is at least `height`.
    pub async fn wait_height(&self, height: Height) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|s| s.height >= height).await;
    }
}

impl Drop for ChainFollower {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Whether an error means the block did not verify (as opposed to a network or disk failure).
fn is_verification_error(e: &LedgerError) -> bool {
    !matches!(
        e,
        LedgerError::Unreachable(_) | LedgerError::Remote(_) | LedgerError::Storage(_)
    )
}

async fn follow_loop(
    chain: Arc<LocalChain>,
    source: Arc<dyn Ledger>,
    poll: Duration,
    status: watch::Sender<FollowStatus>,
) {
    let mut blocks = source.subscribe();
    let mut backoff = poll;
    loop {
        match chain.sync_from(source.as_ref()).await {
            Ok(height) => {
                backoff = poll;
                status.send_modify(|s| {
                    s.height = height;
                    s.last_error = None;
                });
                tokio::select! {
                    _ = blocks.recv() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                // Whatever else was announced is fetched by the next sync.
                while blocks.try_recv().is_ok() {}
            }
            Err(e) => {
                let bad = is_verification_error(&e);
                if bad {
                    warn!("refused a block from the sequencer: {e}");
                } else {
                    debug!("chain sync: {e}");
                }
                let height = chain.head_now().height;
                status.send_modify(|s| {
                    s.height = height;
                    s.rejected += u64::from(bad);
                    s.last_error = Some(e);
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5).max(poll));
            }
        }
    }
}

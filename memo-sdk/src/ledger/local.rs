//! The local chain: one sequencer, redb persistence, verifying followers.

use super::block::{Block, BlockHeader, Head, tx_root, tx_root_of};
use super::{Ledger, LedgerError, TxStatus};
use async_trait::async_trait;
use memo_core::AccountId;
use memo_core::contract::{
    Answer, Contract, Genesis, Height, ProofVerifier, Query, Rejection, SignedTx, Tx,
};
use memo_core::identity::{Keypair, Signable};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Most transactions waiting for a block.
const MEMPOOL_LIMIT: usize = 1 << 20;
/// Statuses remembered.
const STATUS_LIMIT: usize = 1 << 20;

fn storage(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Storage(e.to_string())
}

/// What a local chain needs to know: its genesis and its sequencer's account.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// The genesis.
    pub genesis: Genesis,
    /// The account whose signature every block must carry.
    pub sequencer: AccountId,
}

struct Inner {
    contract: Contract,
    db: Database,
    head: Head,
    key: Option<Keypair>,
    mempool: Vec<SignedTx>,
    statuses: HashMap<[u8; 32], TxStatus>,
    status_order: VecDeque<[u8; 32]>,
    chain: u64,
    /// The accounts whose blocks this chain accepts: the sequencer, or a keeper group's
    /// members (which of them leads is the group log's business, checked by its caller).
    producers: Vec<AccountId>,
}

/// The embedded ledger: blocks in redb, applied by the contract state machine.
///
/// A sequencer (opened with its key) takes transactions and produces blocks; a follower (opened
/// without) imports blocks and rejects any that does not verify. Both replay their stored
/// blocks on open, verifying each one again. A keeper group's chain
/// ([`LocalChain::open_group`]) accepts blocks from any member: its leader builds them
/// ([`LocalChain::build_block`]) and every member imports them in the order of the group's
/// log.
pub struct LocalChain {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Block>>,
    /// Woken when a transaction is queued (see [`LocalChain::transactions_waiting`]).
    queued: tokio::sync::Notify,
    /// Woken when transactions may have been included or rejected.
    settled: tokio::sync::Notify,
}

impl std::fmt::Debug for LocalChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChain").finish_non_exhaustive()
    }
}

impl LocalChain {
    /// Opens (or creates) the sequencer's chain at `path`, replaying the stored blocks.
    pub fn open_sequencer(
        path: &Path,
        genesis: Genesis,
        key: Keypair,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        let config = ChainConfig {
            genesis,
            sequencer: key.account(),
        };
        Self::open(path, config, Some(key), verifier)
    }

    /// Opens (or creates) a keeper group's chain at `path`, replaying the stored blocks. Blocks
    /// signed by any of `producers` (the group's keepers) are accepted; `key` is this keeper's,
    /// for the blocks it builds while it leads.
    pub fn open_group(
        path: &Path,
        genesis: Genesis,
        producers: Vec<AccountId>,
        key: Keypair,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        let db = Database::create(path).map_err(storage)?;
        Self::open_db(db, genesis, producers, Some(key), verifier)
    }

    /// Opens (or creates) a follower's chain at `path`, replaying the stored blocks.
    pub fn open_follower(
        path: &Path,
        config: ChainConfig,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        Self::open(path, config, None, verifier)
    }

    /// A sequencer whose blocks live in memory only (for simulations and local networks).
    pub fn open_sequencer_in_memory(
        genesis: Genesis,
        key: Keypair,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        let sequencer = key.account();
        Self::open_db(db, genesis, vec![sequencer], Some(key), verifier)
    }

    fn open(
        path: &Path,
        config: ChainConfig,
        key: Option<Keypair>,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        let db = Database::create(path).map_err(storage)?;
        Self::open_db(db, config.genesis, vec![config.sequencer], key, verifier)
    }

    fn open_db(
        db: Database,
        genesis: Genesis,
        mut producers: Vec<AccountId>,
        key: Option<Keypair>,
        verifier: Arc<dyn ProofVerifier>,
    ) -> Result<Self, LedgerError> {
        producers.sort();
        producers.dedup();
        let contract = Contract::new(&genesis, verifier)?;
        let genesis_hash = genesis.hash();
        // The store is bound to its genesis and its producers: one sequencer's account, or a
        // hash of the group's.
        let mut seq_id = [0u8; 64];
        seq_id[..32].copy_from_slice(&genesis_hash);
        match producers.as_slice() {
            [one] => seq_id[32..].copy_from_slice(&one.0),
            many => {
                let mut h = blake3::Hasher::new_derive_key("memo 2026 chain producers v1");
                for p in many {
                    h.update(&p.0);
                }
                seq_id[32..].copy_from_slice(h.finalize().as_bytes());
            }
        }
        {
            let w = db.begin_write().map_err(storage)?;
            {
                let mut meta = w.open_table(META).map_err(storage)?;
                let stored = meta
                    .get("genesis")
                    .map_err(storage)?
                    .map(|v| v.value().to_vec());
                match stored {
                    Some(s) if s != seq_id => return Err(LedgerError::GenesisMismatch),
                    Some(_) => {}
                    None => {
                        meta.insert("genesis", seq_id.as_slice()).map_err(storage)?;
                    }
                }
                w.open_table(BLOCKS).map_err(storage)?;
            }
            w.commit().map_err(storage)?;
        }
        let head = Head {
            height: 0,
            tick: 0,
            epoch: 0,
            hash: genesis_hash,
            state_root: contract.state_root(),
            time_ms: 0,
        };
        let (events, _) = broadcast::channel(1024);
        let mut inner = Inner {
            contract,
            db,
            head,
            key,
            mempool: Vec::new(),
            statuses: HashMap::new(),
            status_order: VecDeque::new(),
            chain: genesis.chain,
            producers,
        };
        inner.replay()?;
        Ok(Self {
            inner: Mutex::new(inner),
            events,
            queued: tokio::sync::Notify::new(),
            settled: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the contract half-applied (blocks are
        // applied atomically), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a signed transaction; returns its hash.
    pub fn submit_tx(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError> {
        let mut s = self.lock();
        if s.key.is_none() {
            return Err(LedgerError::NotSequencer);
        }
        if tx.body.len() > Tx::MAX_BYTES {
            return Err(LedgerError::TooLarge(tx.body.len()));
        }
        if s.mempool.len() >= MEMPOOL_LIMIT {
            return Err(LedgerError::MempoolFull);
        }
        let hash = tx.digest();
        // Sent again (e.g. after a change of group leader): it is in, or already queued.
        if let Some(TxStatus::Included { .. } | TxStatus::Pending) = s.statuses.get(&hash) {
            return Ok(hash);
        }
        s.set_status(hash, TxStatus::Pending);
        s.mempool.push(tx);
        drop(s);
        self.queued.notify_waiters();
        Ok(hash)
    }

    /// Produces the next block from the queued transactions (an empty block if none, which
    /// still advances height and epochs). `time_ms` is the caller's clock; a time before the
    /// head's is raised to it. Invalid transactions are left out and marked rejected.
    pub fn produce_block(&self, time_ms: u64) -> Result<Arc<Block>, LedgerError> {
        let block = {
            let mut s = self.lock();
            s.assemble(time_ms, false)
                .and_then(|a| s.commit_assembled(a))
        };
        self.settled.notify_waiters();
        let block = block?;
        let _ = self.events.send(block.clone());
        Ok(block)
    }

    /// Produces a block early, at the head's tick, from the queued transactions: none if no
    /// transaction waits or none of them can go in. Epochs count ticks, so early blocks
    /// shorten a transaction's wait without shortening epochs.
    pub fn produce_early_block(&self, time_ms: u64) -> Result<Option<Arc<Block>>, LedgerError> {
        let block = {
            let mut s = self.lock();
            match s.assemble_early(time_ms) {
                Ok(Some(a)) => s.commit_assembled(a).map(Some),
                other => other.map(|_| None),
            }
        };
        self.settled.notify_waiters();
        let block = block?;
        if let Some(b) = &block {
            let _ = self.events.send(b.clone());
        }
        Ok(block)
    }

    /// Returns once a transaction waits in the queue (at once if one does).
    pub async fn transactions_waiting(&self) {
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.lock().mempool.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Builds the next block from the queued transactions without applying it (a group
    /// leader's path: the block is proposed to the group, and every member, this one included,
    /// imports it once the group committed it). Transactions that cannot go in are dropped and
    /// marked rejected; the others stay queued until a block including them is imported.
    pub fn build_block(&self, time_ms: u64) -> Result<Block, LedgerError> {
        let block = {
            let mut s = self.lock();
            s.assemble(time_ms, false).map(|a| s.requeue_built(a))
        };
        self.settled.notify_waiters();
        block
    }

    /// Like [`Self::build_block`], early (at the head's tick, see
    /// [`Self::produce_early_block`]): none if no queued transaction can go in.
    pub fn build_early_block(&self, time_ms: u64) -> Result<Option<Block>, LedgerError> {
        let block = {
            let mut s = self.lock();
            s.assemble_early(time_ms)
                .map(|a| a.map(|a| s.requeue_built(a)))
        };
        self.settled.notify_waiters();
        block
    }

    /// What became of `hashes`, once every one is included or rejected here or `within` has
    /// passed; in order.
    pub async fn await_statuses(
        &self,
        hashes: &[[u8; 32]],
        within: std::time::Duration,
    ) -> Vec<TxStatus> {
        let deadline = tokio::time::Instant::now() + within;
        let now = |c: &Self| -> Vec<TxStatus> { hashes.iter().map(|h| c.status_now(h)).collect() };
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let statuses = now(self);
            if statuses.iter().all(TxStatus::is_final) {
                return statuses;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return now(self);
            }
        }
    }

    /// Whether `block` is already part of this chain (the same hash at its height).
    pub fn contains(&self, block: &Block) -> Result<bool, LedgerError> {
        let s = self.lock();
        if block.header.height == 0 || block.header.height > s.head.height {
            return Ok(false);
        }
        Ok(s.load(block.header.height)?
            .is_some_and(|b| b.hash() == block.hash()))
    }

    /// Verifies and imports the next block (a follower's path). Any failure leaves the chain
    /// unchanged.
    pub fn import_block(&self, block: Block) -> Result<(), LedgerError> {
        let block = Arc::new(block);
        self.lock().import(&block, true)?;
        self.settled.notify_waiters();
        let _ = self.events.send(block);
        Ok(())
    }

    /// Imports every block this chain lacks from `source` (a follower catching up).
    pub async fn sync_from(&self, source: &dyn Ledger) -> Result<Height, LedgerError> {
        loop {
            let next = self.lock().head.height + 1;
            match source.block(next).await? {
                Some(b) => self.import_block(b)?,
                None => return Ok(next - 1),
            }
        }
    }

    /// Produces a block every `every`, and one early whenever transactions wait (one block at
    /// a time), stamped with `env`'s wall clock, until the chain is dropped. Errors are logged
    /// and production continues.
    pub fn spawn_producer(
        self: &Arc<Self>,
        env: crate::env::Env,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut pacer = Pacer::new(every);
            let mut early_ok = true;
            loop {
                let Some(chain) = weak.upgrade() else { break };
                let early = pacer.next(&chain, early_ok).await;
                let made = if early {
                    chain
                        .produce_early_block(env.unix_ms())
                        .map(|b| b.is_some())
                } else {
                    chain.produce_block(env.unix_ms()).map(|_| true)
                };
                // After a failure, wait for the timer rather than retry at once.
                early_ok = made.is_ok();
                if let Err(e) = made {
                    tracing::warn!(error = %e, "block production failed");
                }
            }
        })
    }

    /// The head.
    pub fn head_now(&self) -> Head {
        self.lock().head.clone()
    }

    /// Reads the state.
    pub fn query_now(&self, q: &Query) -> Answer {
        self.lock().contract.query(q)
    }

    /// The status of a submitted transaction.
    pub fn status_now(&self, hash: &[u8; 32]) -> TxStatus {
        self.lock()
            .statuses
            .get(hash)
            .cloned()
            .unwrap_or(TxStatus::Unknown)
    }

    /// A stored block.
    pub fn block_at(&self, height: Height) -> Result<Option<Block>, LedgerError> {
        self.lock().load(height)
    }

    /// Runs `f` on the contract state (read-only).
    pub fn with_contract<R>(&self, f: impl FnOnce(&Contract) -> R) -> R {
        f(&self.lock().contract)
    }
}

impl Inner {
    fn set_status(&mut self, hash: [u8; 32], status: TxStatus) {
        if self.statuses.insert(hash, status).is_none() {
            self.status_order.push_back(hash);
            if self.status_order.len() > STATUS_LIMIT
                && let Some(old) = self.status_order.pop_front()
            {
                self.statuses.remove(&old);
            }
        }
    }

    fn load(&self, height: Height) -> Result<Option<Block>, LedgerError> {
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(BLOCKS).map_err(storage)?;
        let Some(bytes) = t.get(height).map_err(storage)? else {
            return Ok(None);
        };
        Block::decode(bytes.value())
            .map(Some)
            .map_err(|e| LedgerError::Corrupt {
                height,
                reason: Box::new(LedgerError::Malformed(e.to_string())),
            })
    }

    fn replay(&mut self) -> Result<(), LedgerError> {
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(BLOCKS).map_err(storage)?;
        for entry in t.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let height = k.value();
            let block = Block::decode(v.value()).map_err(|e| LedgerError::Corrupt {
                height,
                reason: Box::new(LedgerError::Malformed(e.to_string())),
            })?;
            self.import(&block, false)
                .map_err(|e| LedgerError::Corrupt {
                    height,
                    reason: Box::new(e),
                })?;
        }
        Ok(())
    }

    /// Checks a block against the head and the sequencer, applies it, and (if `persist`)
    /// stores it before committing. Nothing changes on error.
    fn import(&mut self, block: &Block, persist: bool) -> Result<(), LedgerError> {
        let h = &block.header;
        if h.chain != self.chain {
            return Err(LedgerError::WrongChain(h.chain));
        }
        if !self.producers.contains(&h.sequencer) {
            return Err(LedgerError::WrongSequencer);
        }
        let expected = self.head.height + 1;
        if h.height != expected {
            return Err(LedgerError::WrongHeight {
                expected,
                got: h.height,
            });
        }
        if h.parent != self.head.hash {
            return Err(LedgerError::BadParent);
        }
        if h.time_ms < self.head.time_ms {
            return Err(LedgerError::TimeWentBack);
        }
        if !block.signature_ok() {
            return Err(LedgerError::BadSignature);
        }
        if tx_root(&block.txs) != h.tx_root {
            return Err(LedgerError::BadTxRoot);
        }
        let (_, outcomes) = self.contract.execute_block_outcomes(
            h.height,
            h.tick,
            h.parent,
            &block.txs,
            Some(h.state_root),
        )?;
        if persist && let Err(e) = self.store(block) {
            self.contract.abort_block();
            return Err(e);
        }
        self.contract.commit_block()?;
        self.advance(block);
        if persist {
            self.included(block, outcomes);
        }
        Ok(())
    }

    /// Records the transactions of an imported block as included and takes them off the
    /// queue (a group member may hold some it was sent before the block's builder did).
    fn included(&mut self, block: &Block, outcomes: Vec<memo_core::contract::Outcome>) {
        let digests: Vec<[u8; 32]> = block.txs.iter().map(SignedTx::digest).collect();
        for (index, (digest, outcome)) in digests.iter().zip(outcomes).enumerate() {
            self.set_status(
                *digest,
                TxStatus::Included {
                    height: block.header.height,
                    index,
                    outcome,
                },
            );
        }
        if !self.mempool.is_empty() {
            let done: std::collections::HashSet<[u8; 32]> = digests.into_iter().collect();
            self.mempool.retain(|t| !done.contains(&t.digest()));
        }
    }

    fn store(&self, block: &Block) -> Result<(), LedgerError> {
        let w = self.db.begin_write().map_err(storage)?;
        {
            let mut t = w.open_table(BLOCKS).map_err(storage)?;
            t.insert(block.header.height, block.encode().as_slice())
                .map_err(storage)?;
        }
        w.commit().map_err(storage)
    }

    fn advance(&mut self, block: &Block) {
        self.head = Head {
            height: block.header.height,
            tick: block.header.tick,
            epoch: self.contract.epoch(),
            hash: block.hash(),
            state_root: block.header.state_root,
            time_ms: block.header.time_ms,
        };
    }

    /// Assembles the next block from the queue and leaves it open in the contract: the
    /// block, each included transaction's outcome, and the transactions left out (with why).
    /// The queue is emptied; on error it is restored and nothing changed.
    fn assemble(&mut self, time_ms: u64, early: bool) -> Result<Assembled, LedgerError> {
        let Some(key) = self.key.clone() else {
            return Err(LedgerError::NotSequencer);
        };
        let height = self.head.height + 1;
        let tick = self.head.tick + u64::from(!early);
        let parent = self.head.hash;
        let mut candidates = std::mem::take(&mut self.mempool);
        let (txs, outcomes, mut rejected) = loop {
            if let Err(e) = self.contract.begin_block_at(height, tick, parent) {
                self.mempool = candidates;
                return Err(e.into());
            }
            let mut txs = Vec::with_capacity(candidates.len());
            let mut outcomes = Vec::with_capacity(candidates.len());
            let mut rejected: Vec<([u8; 32], Rejection)> = Vec::new();
            for tx in &candidates {
                // Signatures are checked below, in one batch over exactly the block's list.
                match self.contract.apply_verified(tx) {
                    Ok(o) => {
                        txs.push(tx.clone());
                        outcomes.push(o);
                    }
                    Err(r) => {
                        // Report a forgery as such rather than by its state failure.
                        let r = if self.contract.sig_checker().verify_one(tx) {
                            r
                        } else {
                            Rejection::BadSignature
                        };
                        rejected.push((tx.digest(), r));
                    }
                }
            }
            if self.contract.sig_checker().verify_batch(&txs) {
                break (txs, outcomes, rejected);
            }
            // Some signature is bad: undo, drop the culprits (found one by one), and redo.
            self.contract.abort_block();
            let bad: Vec<[u8; 32]> = self
                .contract
                .sig_checker()
                .find_invalid(&txs)
                .into_iter()
                .map(|i| txs[i].digest())
                .collect();
            for h in &bad {
                self.set_status(*h, TxStatus::Rejected(Rejection::BadSignature));
            }
            candidates.retain(|t| !bad.contains(&t.digest()));
        };
        let state_root = match self.contract.end_block() {
            Ok(r) => r,
            Err(e) => {
                self.contract.abort_block();
                self.mempool = candidates;
                return Err(e.into());
            }
        };
        let digests: Vec<[u8; 32]> = txs.iter().map(SignedTx::digest).collect();
        let header = BlockHeader {
            chain: self.chain,
            height,
            tick,
            parent,
            time_ms: time_ms.max(self.head.time_ms),
            tx_root: tx_root_of(&digests),
            state_root,
            sequencer: key.account(),
        };
        // A duplicate of an included transaction does not hide its inclusion.
        rejected.retain(|(h, _)| !matches!(self.statuses.get(h), Some(TxStatus::Included { .. })));
        Ok(Assembled {
            block: Block::seal(header, txs, &key),
            outcomes,
            rejected,
        })
    }

    /// An early block, assembled and left open: none if no transaction waits or none of
    /// them can go in (those are marked rejected).
    fn assemble_early(&mut self, time_ms: u64) -> Result<Option<Assembled>, LedgerError> {
        if self.mempool.is_empty() {
            return Ok(None);
        }
        let assembled = self.assemble(time_ms, true)?;
        if assembled.block.txs.is_empty() {
            self.contract.abort_block();
            self.reject(assembled.rejected);
            return Ok(None);
        }
        Ok(Some(assembled))
    }

    /// Stores and commits an assembled block (a sequencer's path).
    fn commit_assembled(&mut self, assembled: Assembled) -> Result<Arc<Block>, LedgerError> {
        let Assembled {
            block,
            outcomes,
            rejected,
        } = assembled;
        if let Err(e) = self.store(&block) {
            self.contract.abort_block();
            self.mempool = block.txs;
            return Err(e);
        }
        self.contract.commit_block()?;
        self.advance(&block);
        self.included(&block, outcomes);
        self.reject(rejected);
        Ok(Arc::new(block))
    }

    fn reject(&mut self, rejected: Vec<([u8; 32], Rejection)>) {
        for (h, r) in rejected {
            self.set_status(h, TxStatus::Rejected(r));
        }
    }

    /// Undoes an assembled block and keeps its transactions queued (a group leader's path:
    /// the block is proposed, and applied when the group committed it).
    fn requeue_built(&mut self, assembled: Assembled) -> Block {
        let Assembled {
            block, rejected, ..
        } = assembled;
        self.contract.abort_block();
        // The block's transactions wait in the queue until the block is imported (they go
        // into the next one the leader builds if the group never commits this one).
        let mut queue = block.txs.clone();
        queue.append(&mut self.mempool);
        self.mempool = queue;
        self.reject(rejected);
        block
    }
}

/// When a producer makes its next block: every `every` on its timer, and early as soon as
/// transactions wait. One block is made at a time, so the transactions that arrive while a
/// block is being made (in a group, replicated and fsync'd on every keeper) share the next
/// one. (A pause of a quarter interval after each block, to gather more, was measured: it
/// made single puts 15–20 ms slower and did not make bursts measurably faster.)
pub(crate) struct Pacer {
    tick: tokio::time::Interval,
}

impl Pacer {
    /// A pacer for blocks every `every`.
    pub(crate) fn new(every: std::time::Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { tick }
    }

    /// Waits for the next block: `false` when the timer says a timed block is due, `true`
    /// when an early one may be built (only if `early_ok`, and only once transactions wait
    /// in `chain`'s queue).
    pub(crate) async fn next(&mut self, chain: &LocalChain, early_ok: bool) -> bool {
        if !early_ok {
            self.tick.tick().await;
            return false;
        }
        tokio::select! {
            biased;
            _ = self.tick.tick() => false,
            _ = chain.transactions_waiting() => true,
        }
    }
}

/// A block assembled and left open in the contract.
struct Assembled {
    block: Block,
    outcomes: Vec<memo_core::contract::Outcome>,
    rejected: Vec<([u8; 32], Rejection)>,
}

#[async_trait]
impl Ledger for LocalChain {
    async fn submit(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError> {
        self.submit_tx(tx)
    }

    async fn tx_status(&self, hash: [u8; 32]) -> Result<TxStatus, LedgerError> {
        Ok(self.status_now(&hash))
    }

    async fn await_txs(
        &self,
        hashes: &[[u8; 32]],
        within: std::time::Duration,
    ) -> Result<Vec<TxStatus>, LedgerError> {
        Ok(self.await_statuses(hashes, within).await)
    }

    async fn query(&self, query: Query) -> Result<Answer, LedgerError> {
        Ok(self.query_now(&query))
    }

    async fn head(&self) -> Result<Head, LedgerError> {
        Ok(self.head_now())
    }

    async fn block(&self, height: Height) -> Result<Option<Block>, LedgerError> {
        self.block_at(height)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Block>> {
        self.events.subscribe()
    }
}

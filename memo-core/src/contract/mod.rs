//! The contract: a deterministic state machine over signed transactions.
//!
//! It holds what memo must be able to trust: who plays which role (users, keepers, providers)
//! and their stakes; storage orders with their escrow; the commitments (shard ids) that storage
//! proofs are checked against; payments, penalties and the repair fund; epochs and a randomness
//! beacon. Anyone who replays the same blocks from the same [`Genesis`] reaches the same state
//! and the same [`Contract::state_root`].
//!
//! # Modules and transactions
//!
//! The contract has four modules, each at an address fixed at genesis ([`Module::address`]):
//! **roles** ([`RolesCall`]), **market** ([`MarketCall`]), **files** ([`FilesCall`]) and
//! **settlement** ([`SettlementCall`]). A [`Tx`] names the module's address, the call, the chain
//! and the sender's next nonce, and travels signed ([`SignedTx`]). Reads ([`Query`]) need no
//! identity. An invalid transaction is rejected with a [`Rejection`] and changes nothing (every
//! table is journaled and rolled back).
//!
//! # Blocks and epochs
//!
//! The caller drives blocks: [`Contract::begin_block`] (height, [`Tick`] and parent hash; no
//! clock here), transactions, [`Contract::end_block`] (the state root), then
//! [`Contract::commit_block`] or [`Contract::abort_block`]. A block's tick is its parent's (a
//! block produced early, for waiting transactions) or one more (a block on the producer's
//! timer). Epoch `e` spans ticks `e·epoch_blocks ..`; when a block opens a new epoch, the
//! ledger first settles the previous one:
//!
//! - an order's provider is paid `bytes × price` for the epoch only if its proof passed; the
//!   user's keepers get `keeper_fee_bps` of it, split equally (their pay for coordinating);
//! - no proof → no pay and a `missed` mark; past [`Params::missed_grace`] consecutive misses,
//!   each miss is slashed like a failed proof. A slash takes [`Params::slash_epochs`] epochs
//!   of the order's pay (at least [`Params::slash_amount`]) from the provider's stake into the
//!   order's forfeit, which pays for repairing the order's shards; unpaid epochs refund the
//!   user;
//! - the beacon becomes `blake3(previous beacon, parent block hash, epoch)`; it seeds the
//!   epoch's challenges and the keepers matched to users registering in the epoch;
//! - roles whose notice ended leave (stakes return; their remaining orders end and refund);
//! - expired download receipts are forgotten (they can no longer be settled anyway).
//!
//! # Orders come from receipts
//!
//! [`MarketCall::CreateOrder`] carries the provider's signed storage receipt for every shard
//! (see [`crate::ticket`]), and the order is committed to exactly those shards in the same
//! transaction: there is no order without receipts, and a provider is only ever challenged on
//! shards it signed for.
//!
//! # Repairs
//!
//! When a keeper has rebuilt a lost shard on a new provider, it sends
//! [`FilesCall::Reassign`]: the shard leaves its order's commitment, and the shard's share of
//! the escrow for the later epochs moves to a new order of the new provider, committed to that
//! shard, so the new provider is challenged and paid from the next epoch. The shard's share of
//! the order's forfeit, then the failed provider's stake, cover a higher asking price (then the
//! repair fund) and pay [`Params::repair_penalty`] to the keeper; the rest of the share tops up
//! the new order's escrow. A forfeit no repair used goes to the repair fund when its order ends.

mod error;
mod genesis;
mod sig;
mod state;
mod types;

pub use error::{BlockError, GenesisError, Rejection};
pub use genesis::{Genesis, MAX_SHARDS_PER_ORDER, Params};
pub use sig::SigChecker;
pub use types::*;

use crate::id::AccountId;
use serde::Serialize;
use state::{LtHash, Table};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The hook that checks storage proofs. The contract calls it for each proof transaction with
/// the challenge it derived (the committed shard and the epoch's seed); the proofs module
/// supplies the real blake3-Merkle verifier.
pub trait ProofVerifier: Send + Sync {
    /// `Ok` if `proof` answers `challenge`; otherwise why not. Must be deterministic.
    fn verify(&self, challenge: &Challenge, proof: &[u8]) -> Result<(), crate::proof::ProofError>;
}

/// The scalar part of the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Globals {
    height: Height,
    tick: Tick,
    epoch: Epoch,
    beacon: [u8; 32],
    next_order: OrderId,
    repair_fund: Amount,
    supply: Amount,
    /// The keepers' beacon reveals of the current epoch, mixed (order-independent).
    mix: [u8; 32],
}

struct OpenBlock {
    globals: Globals,
    acc: LtHash,
}

#[derive(Clone, Copy)]
struct Marks([usize; 12]);

/// The contract's state and its transition function.
pub struct Contract {
    chain: u64,
    genesis_hash: [u8; 32],
    params: Params,
    modules: [ModuleAddress; 4],
    g: Globals,
    accounts: Table<AccountId, Account>,
    roles: Table<AccountId, Role>,
    keepers: Table<AccountId, ()>,
    orders: Table<OrderId, Order>,
    commitments: Table<OrderId, Commitment>,
    receipts: Table<[u8; 32], Epoch>,
    receipt_expiry: Table<(Epoch, [u8; 32]), ()>,
    leaving: Table<(Epoch, AccountId), ()>,
    /// Which orders commit which provider to which shard: (provider, shard, order).
    holdings: Table<(AccountId, crate::id::ShardId, OrderId), ()>,
    /// Each keeper's standing beacon commitment: (epoch made, blake3 of the secret).
    beacon_commits: Table<AccountId, (Epoch, [u8; 32])>,
    /// Orders that could not renew: (epoch lapsed, user, order) → provider.
    lapsed: Table<(Epoch, AccountId, OrderId), AccountId>,
    /// The owners of a committed shard of an order, where they are not the order's user
    /// alone (co-owners of deduplicated data, see [`MarketCall::Share`]): (order, shard) →
    /// owners, sorted. Empty once every owner left (the shard awaits its purge).
    owners: Table<(OrderId, crate::id::ShardId), Vec<AccountId>>,
    acc: LtHash,
    root: [u8; 32],
    open: Option<OpenBlock>,
    verifier: Arc<dyn ProofVerifier>,
    sigs: SigChecker,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("chain", &self.chain)
            .field("height", &self.g.height)
            .field("epoch", &self.g.epoch)
            .field("root", &hex::encode(&self.root[..8]))
            .finish_non_exhaustive()
    }
}

macro_rules! tables {
    ($s:expr, $f:ident $(, $arg:expr)*) => {{
        $s.accounts.$f($($arg),*);
        $s.roles.$f($($arg),*);
        $s.keepers.$f($($arg),*);
        $s.orders.$f($($arg),*);
        $s.commitments.$f($($arg),*);
        $s.receipts.$f($($arg),*);
        $s.receipt_expiry.$f($($arg),*);
        $s.leaving.$f($($arg),*);
        $s.holdings.$f($($arg),*);
        $s.beacon_commits.$f($($arg),*);
        $s.lapsed.$f($($arg),*);
        $s.owners.$f($($arg),*);
    }};
}

impl Contract {
    /// The state at genesis (height 0, epoch 0).
    pub fn new(genesis: &Genesis, verifier: Arc<dyn ProofVerifier>) -> Result<Self, GenesisError> {
        genesis.params.validate()?;
        let genesis_hash = genesis.hash();
        let beacon = derive("memo 2026 beacon v1", &[&genesis_hash]);
        let mut c = Self {
            chain: genesis.chain,
            genesis_hash,
            params: genesis.params.clone(),
            modules: Module::ALL.map(|m| m.address(genesis.chain)),
            g: Globals {
                height: 0,
                tick: 0,
                epoch: 0,
                beacon,
                next_order: 0,
                repair_fund: 0,
                supply: 0,
                mix: [0; 32],
            },
            accounts: Table::new(1),
            roles: Table::new(2),
            keepers: Table::new(3),
            orders: Table::new(4),
            commitments: Table::new(5),
            receipts: Table::new(6),
            receipt_expiry: Table::new(7),
            leaving: Table::new(8),
            holdings: Table::new(9),
            beacon_commits: Table::new(10),
            lapsed: Table::new(11),
            owners: Table::new(12),
            acc: LtHash::default(),
            root: [0; 32],
            open: None,
            verifier,
            sigs: SigChecker::new(),
        };
        let mut supply: Amount = 0;
        for (a, amount) in &genesis.balances {
            supply = supply.checked_add(*amount).ok_or(GenesisError::Overflow)?;
            c.accounts.insert(
                *a,
                Account {
                    balance: *amount,
                    nonce: 0,
                },
            );
        }
        c.g.supply = supply;
        let mut acc = LtHash::default();
        tables!(c, fold, &mut acc);
        tables!(c, commit);
        c.acc = acc;
        c.root = c.compute_root();
        Ok(c)
    }

    fn compute_root(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 state root v1");
        h.update(&self.genesis_hash);
        h.update(&crate::wire::encode(&self.g));
        h.update(&self.acc.bytes());
        *h.finalize().as_bytes()
    }

    /// The state root after the last committed block (or the last [`Self::end_block`]).
    pub fn state_root(&self) -> [u8; 32] {
        self.root
    }

    /// The state root recomputed from every entry (slow; for audits and tests). Equals
    /// [`Self::state_root`] outside a block.
    pub fn recompute_root(&self) -> [u8; 32] {
        let mut acc = LtHash::default();
        tables!(self, fold_all, &mut acc);
        let mut h = blake3::Hasher::new_derive_key("memo 2026 state root v1");
        h.update(&self.genesis_hash);
        h.update(&crate::wire::encode(&self.g));
        h.update(&acc.bytes());
        *h.finalize().as_bytes()
    }

    /// The chain id.
    pub fn chain(&self) -> u64 {
        self.chain
    }

    /// The genesis hash (the parent of block 1).
    pub fn genesis_hash(&self) -> [u8; 32] {
        self.genesis_hash
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The height of the last block begun.
    pub fn height(&self) -> Height {
        self.g.height
    }

    /// The tick of the last block begun.
    pub fn tick(&self) -> Tick {
        self.g.tick
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.g.epoch
    }

    /// The current epoch's beacon.
    pub fn beacon(&self) -> [u8; 32] {
        self.g.beacon
    }

    /// Whether a block is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The address of a module by name (`roles`, `market`, `files`, `settlement`).
    pub fn module_address(&self, name: &str) -> Option<ModuleAddress> {
        Module::from_name(name).map(|m| m.address(self.chain))
    }

    /// The money held in balances, escrows, forfeits, stakes and the repair fund. Equals the genesis
    /// supply in every state: money moves, it is never made or lost.
    pub fn total_money(&self) -> u128 {
        let balances: u128 = self
            .accounts
            .iter()
            .map(|(_, a)| u128::from(a.balance))
            .sum();
        let escrows: u128 = self
            .orders
            .iter()
            .map(|(_, o)| u128::from(o.escrow) + u128::from(o.forfeit))
            .sum();
        let stakes: u128 = self.roles.iter().map(|(_, r)| u128::from(r.stake())).sum();
        balances + escrows + stakes + u128::from(self.g.repair_fund)
    }

    /// The money minted at genesis.
    pub fn supply(&self) -> Amount {
        self.g.supply
    }

    // ----- blocks -----

    /// Opens block `height` (the next one) whose parent has hash `parent`, one tick after its
    /// parent (a block on the producer's timer; see [`Self::begin_block_at`]).
    pub fn begin_block(&mut self, height: Height, parent: [u8; 32]) -> Result<(), BlockError> {
        self.begin_block_at(height, self.g.tick + 1, parent)
    }

    /// Opens block `height` (the next one) at `tick`, whose parent has hash `parent`. The tick
    /// is the parent's (a block produced early, for waiting transactions) or one more. If it
    /// starts a new epoch, the previous epoch is settled first. The ledger checks that blocks
    /// link up; the state does not depend on `parent` (nor on anything else the block producer
    /// can vary freely, so it cannot grind the challenge beacon).
    pub fn begin_block_at(
        &mut self,
        height: Height,
        tick: Tick,
        parent: [u8; 32],
    ) -> Result<(), BlockError> {
        let _ = parent;
        if self.open.is_some() {
            return Err(BlockError::AlreadyOpen);
        }
        let expected = self.g.height + 1;
        if height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: height,
            });
        }
        if tick != self.g.tick && tick != self.g.tick + 1 {
            return Err(BlockError::WrongTick {
                parent: self.g.tick,
                got: tick,
            });
        }
        self.open = Some(OpenBlock {
            globals: self.g.clone(),
            acc: self.acc.clone(),
        });
        self.g.height = height;
        self.g.tick = tick;
        let new_epoch = tick / self.params.epoch_blocks;
        if new_epoch != self.g.epoch {
            let old = self.g.epoch;
            self.settle_epoch(old);
            self.g.epoch = new_epoch;
            // The block's contents and hash do not enter the beacon: the block producer
            // cannot grind it. Only the keepers' reveals do (see `beacon_step`).
            self.g.beacon = derive(
                "memo 2026 beacon v2",
                &[&self.g.beacon, &new_epoch.to_le_bytes(), &self.g.mix],
            );
            self.g.mix = [0; 32];
            self.expire_beacon_commits(new_epoch);
            self.process_leaving(new_epoch);
            self.prune_receipts(new_epoch);
            self.prune_lapsed(new_epoch);
        }
        Ok(())
    }

    /// Folds the block's changes into the root and returns it. The block stays open (it can
    /// still be aborted, e.g. when the root differs from the one a block claims).
    pub fn end_block(&mut self) -> Result<[u8; 32], BlockError> {
        if self.open.is_none() {
            return Err(BlockError::NotOpen);
        }
        let mut acc = std::mem::take(&mut self.acc);
        tables!(self, fold, &mut acc);
        self.acc = acc;
        self.root = self.compute_root();
        Ok(self.root)
    }

    /// Commits the open block and returns the state root.
    pub fn commit_block(&mut self) -> Result<[u8; 32], BlockError> {
        let root = self.end_block()?;
        tables!(self, commit);
        self.open = None;
        Ok(root)
    }

    /// Undoes everything since [`Self::begin_block`].
    pub fn abort_block(&mut self) {
        if let Some(open) = self.open.take() {
            tables!(self, rollback, 0);
            tables!(self, clear_dirty);
            self.g = open.globals;
            self.acc = open.acc;
            self.root = self.compute_root();
        }
    }

    /// Applies a whole block, one tick after its parent: batch-verifies the signatures,
    /// applies every transaction (all must be valid), checks the state root if one is claimed,
    /// and commits. On any failure the state is left exactly as before.
    pub fn apply_block(
        &mut self,
        height: Height,
        parent: [u8; 32],
        txs: &[SignedTx],
        claimed_root: Option<[u8; 32]>,
    ) -> Result<[u8; 32], BlockError> {
        self.execute_block(height, parent, txs, claimed_root)?;
        self.commit_block()
    }

    /// Like [`Self::apply_block`] but leaves the block open on success, so the caller can
    /// persist it first and then [`Self::commit_block`] (or [`Self::abort_block`]).
    pub fn execute_block(
        &mut self,
        height: Height,
        parent: [u8; 32],
        txs: &[SignedTx],
        claimed_root: Option<[u8; 32]>,
    ) -> Result<[u8; 32], BlockError> {
        self.execute_block_outcomes(height, self.g.tick + 1, parent, txs, claimed_root)
            .map(|(root, _)| root)
    }

    /// Like [`Self::execute_block`] at `tick` (see [`Self::begin_block_at`]), also returning
    /// each transaction's outcome, in order.
    pub fn execute_block_outcomes(
        &mut self,
        height: Height,
        tick: Tick,
        parent: [u8; 32],
        txs: &[SignedTx],
        claimed_root: Option<[u8; 32]>,
    ) -> Result<([u8; 32], Vec<Outcome>), BlockError> {
        if self.open.is_some() {
            return Err(BlockError::AlreadyOpen);
        }
        if !self.sigs.verify_batch(txs) {
            let index = self.sigs.find_invalid(txs).first().copied().unwrap_or(0);
            return Err(BlockError::InvalidTx {
                index,
                reason: Rejection::BadSignature,
            });
        }
        self.begin_block_at(height, tick, parent)?;
        let mut outcomes = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            match self.apply_verified(tx) {
                Ok(o) => outcomes.push(o),
                Err(reason) => {
                    self.abort_block();
                    return Err(BlockError::InvalidTx { index, reason });
                }
            }
        }
        let root = self.end_block()?;
        if claimed_root.is_some_and(|c| c != root) {
            self.abort_block();
            return Err(BlockError::StateRoot);
        }
        Ok((root, outcomes))
    }

    /// The signature checker (with its key cache), for batch checks by a sequencer.
    pub fn sig_checker(&mut self) -> &mut SigChecker {
        &mut self.sigs
    }

    // ----- transactions -----

    /// Checks the signature (strictly), then applies the transaction.
    pub fn apply(&mut self, tx: &SignedTx) -> Result<Outcome, Rejection> {
        if self.open.is_none() {
            return Err(Rejection::NoOpenBlock);
        }
        if !self.sigs.verify_one(tx) {
            return Err(Rejection::BadSignature);
        }
        self.apply_verified(tx)
    }

    /// Applies a transaction whose signature the caller has already checked (e.g. in a batch).
    pub fn apply_verified(&mut self, tx: &SignedTx) -> Result<Outcome, Rejection> {
        if self.open.is_none() {
            return Err(Rejection::NoOpenBlock);
        }
        let body: Tx =
            crate::wire::decode(&tx.body, <Tx as crate::Signable>::MAX_BYTES, "transaction")
                .map_err(|e| Rejection::Malformed(e.to_string()))?;
        if body.chain != self.chain {
            return Err(Rejection::WrongChain {
                expected: self.chain,
                got: body.chain,
            });
        }
        let module = Module::ALL
            .into_iter()
            .zip(self.modules)
            .find(|(_, a)| *a == body.module)
            .map(|(m, _)| m)
            .ok_or(Rejection::UnknownModule(body.module))?;
        if module != body.call.module() {
            return Err(Rejection::WrongModule {
                call: body.call.module(),
            });
        }
        let sender = tx.signer;
        let expected = self.accounts.get(&sender).map_or(0, |a| a.nonce);
        if body.nonce < expected {
            return Err(Rejection::NonceReplayed {
                expected,
                got: body.nonce,
            });
        }
        if body.nonce > expected {
            return Err(Rejection::NonceGap {
                expected,
                got: body.nonce,
            });
        }
        let marks = self.marks();
        let globals = self.g.clone();
        match self.dispatch(sender, &body.call) {
            Ok(outcome) => {
                self.accounts.upsert(&sender, |a| a.nonce += 1);
                Ok(outcome)
            }
            Err(r) => {
                self.rollback(marks);
                self.g = globals;
                Err(r)
            }
        }
    }

    fn marks(&self) -> Marks {
        Marks([
            self.accounts.mark(),
            self.roles.mark(),
            self.keepers.mark(),
            self.orders.mark(),
            self.commitments.mark(),
            self.receipts.mark(),
            self.receipt_expiry.mark(),
            self.leaving.mark(),
            self.holdings.mark(),
            self.beacon_commits.mark(),
            self.lapsed.mark(),
            self.owners.mark(),
        ])
    }

    fn rollback(&mut self, m: Marks) {
        self.accounts.rollback(m.0[0]);
        self.roles.rollback(m.0[1]);
        self.keepers.rollback(m.0[2]);
        self.orders.rollback(m.0[3]);
        self.commitments.rollback(m.0[4]);
        self.receipts.rollback(m.0[5]);
        self.receipt_expiry.rollback(m.0[6]);
        self.leaving.rollback(m.0[7]);
        self.holdings.rollback(m.0[8]);
        self.beacon_commits.rollback(m.0[9]);
        self.lapsed.rollback(m.0[10]);
        self.owners.rollback(m.0[11]);
    }

    /// Records order `id`'s commitment (and indexes its shards under its provider).
    fn commit_shards(&mut self, id: OrderId, provider: AccountId, c: Commitment) {
        for s in &c.shards {
            self.holdings.insert((provider, *s, id), ());
        }
        self.commitments.insert(id, c);
    }

    /// Removes order `id`'s commitment, or one shard of it.
    fn uncommit(&mut self, id: OrderId, provider: AccountId, only: Option<crate::id::ShardId>) {
        let Some(c) = self.commitments.get(&id).cloned() else {
            return;
        };
        match only {
            Some(shard) => {
                self.holdings.remove(&(provider, shard, id));
                let rest: Vec<crate::id::ShardId> =
                    c.shards.into_iter().filter(|s| *s != shard).collect();
                if rest.is_empty() {
                    self.commitments.remove(&id);
                } else {
                    self.commitments.update(&id, |c| c.shards = rest);
                }
            }
            None => {
                for s in &c.shards {
                    self.holdings.remove(&(provider, *s, id));
                }
                self.commitments.remove(&id);
            }
        }
    }

    fn dispatch(&mut self, sender: AccountId, call: &Call) -> Result<Outcome, Rejection> {
        match call {
            Call::Roles(RolesCall::RegisterUser) => self.register_user(sender),
            Call::Roles(RolesCall::RegisterKeeper { stake, address }) => {
                self.register_keeper(sender, *stake, address)
            }
            Call::Roles(RolesCall::RegisterProvider {
                stake,
                capacity,
                price,
                address,
            }) => self.register_provider(sender, *stake, *capacity, *price, address),
            Call::Roles(RolesCall::AddStake { amount }) => self.add_stake(sender, *amount),
            Call::Roles(RolesCall::Leave) => self.leave(sender),
            Call::Roles(RolesCall::SetAddress { address }) => self.set_address(sender, address),
            Call::Market(MarketCall::CreateOrder {
                provider,
                price,
                duration,
                receipts,
            }) => self.create_order(sender, *provider, *price, *duration, receipts),
            Call::Market(MarketCall::EndOrder { order }) => self.end_order(sender, *order),
            Call::Market(MarketCall::Share { order, shards }) => self.share(sender, *order, shards),
            Call::Market(MarketCall::Unshare {
                order,
                user,
                shards,
            }) => self.unshare(sender, *order, *user, shards),
            Call::Files(FilesCall::Reassign { order, shard, to }) => {
                self.reassign(sender, *order, *shard, *to)
            }
            Call::Settlement(SettlementCall::Transfer { to, amount }) => {
                self.transfer(sender, *to, *amount)
            }
            Call::Settlement(SettlementCall::SubmitProof(p)) => self.submit_proof(sender, p),
            Call::Settlement(SettlementCall::SettleReceipt(r)) => self.settle_receipt(sender, r),
            Call::Settlement(SettlementCall::Beacon {
                epoch,
                reveal,
                commit,
            }) => self.beacon_step(sender, *epoch, *reveal, *commit),
        }
    }

    // ----- money helpers -----

    fn debit(&mut self, who: AccountId, amount: Amount) -> Result<(), Rejection> {
        let available = self.accounts.get(&who).map_or(0, |a| a.balance);
        if available < amount {
            return Err(Rejection::InsufficientBalance {
                needed: amount,
                available,
            });
        }
        self.accounts.upsert(&who, |a| a.balance -= amount);
        Ok(())
    }

    /// Credits `amount`. Balances never exceed the supply, which fits in an `Amount`, so this
    /// cannot overflow; it saturates rather than panic.
    fn credit(&mut self, who: AccountId, amount: Amount) {
        if amount > 0 {
            self.accounts
                .upsert(&who, |a| a.balance = a.balance.saturating_add(amount));
        }
    }

    // ----- roles -----

    fn require_unregistered(&self, who: AccountId) -> Result<(), Rejection> {
        match self.roles.get(&who) {
            Some(r) => Err(Rejection::AlreadyRegistered(r.kind())),
            None => Ok(()),
        }
    }

    /// A provider that may take new storage: registered as a provider (see `require_role`)
    /// with at least the minimum stake. Returns its free capacity and its asking price.
    fn open_provider(&self, provider: AccountId) -> Result<(u64, Amount), Rejection> {
        let p = self.require_role(provider, RoleKind::Provider)?;
        let RoleInfo::Provider {
            stake,
            capacity,
            used,
            price: ask,
            ..
        } = &p.info
        else {
            return Err(Rejection::WrongRole {
                account: provider,
                needed: RoleKind::Provider,
            });
        };
        if *stake < self.params.min_provider_stake {
            return Err(Rejection::StakeTooLow {
                stake: *stake,
                minimum: self.params.min_provider_stake,
            });
        }
        Ok((capacity.saturating_sub(*used), *ask))
    }

    fn require_role(&self, who: AccountId, needed: RoleKind) -> Result<&Role, Rejection> {
        let role = self.roles.get(&who).ok_or(Rejection::NotRegistered(who))?;
        if role.kind() != needed {
            return Err(Rejection::WrongRole {
                account: who,
                needed,
            });
        }
        if role.status != Status::Active {
            return Err(Rejection::Leaving(who));
        }
        Ok(role)
    }

    fn check_address(&self, address: &str) -> Result<(), Rejection> {
        if address.len() > self.params.max_address_len as usize {
            return Err(Rejection::Invalid("address (too long)"));
        }
        Ok(())
    }

    /// Picks up to `keepers_per_user` active keepers for `user`, seeded by the beacon.
    fn match_keepers(&self, user: &AccountId) -> Vec<AccountId> {
        let mut list: Vec<AccountId> = self.keepers.iter().map(|(k, _)| *k).collect();
        let want = (self.params.keepers_per_user as usize).min(list.len());
        let mut xof = blake3::Hasher::new_derive_key("memo 2026 keeper match v1")
            .update(&self.g.beacon)
            .update(&user.0)
            .finalize_xof();
        for i in 0..want {
            let mut b = [0u8; 8];
            xof.fill(&mut b);
            let j = i + (u64::from_le_bytes(b) % (list.len() - i) as u64) as usize;
            list.swap(i, j);
        }
        list.truncate(want);
        list
    }

    fn register_user(&mut self, sender: AccountId) -> Result<Outcome, Rejection> {
        self.require_unregistered(sender)?;
        let keepers = self.match_keepers(&sender);
        let role = Role {
            info: RoleInfo::User {
                keepers: keepers.clone(),
            },
            status: Status::Active,
            since: self.g.epoch,
        };
        self.roles.insert(sender, role);
        Ok(Outcome::Matched(keepers))
    }

    fn register_keeper(
        &mut self,
        sender: AccountId,
        stake: Amount,
        address: &str,
    ) -> Result<Outcome, Rejection> {
        self.require_unregistered(sender)?;
        self.check_address(address)?;
        check_stake(stake, self.params.min_keeper_stake)?;
        self.debit(sender, stake)?;
        let role = Role {
            info: RoleInfo::Keeper {
                stake,
                address: address.to_string(),
            },
            status: Status::Active,
            since: self.g.epoch,
        };
        self.roles.insert(sender, role);
        self.keepers.insert(sender, ());
        Ok(Outcome::Done)
    }

    fn register_provider(
        &mut self,
        sender: AccountId,
        stake: Amount,
        capacity: u64,
        price: Amount,
        address: &str,
    ) -> Result<Outcome, Rejection> {
        self.require_unregistered(sender)?;
        self.check_address(address)?;
        if capacity == 0 {
            return Err(Rejection::Invalid("capacity (zero)"));
        }
        check_stake(stake, self.params.min_provider_stake)?;
        self.debit(sender, stake)?;
        let role = Role {
            info: RoleInfo::Provider {
                stake,
                capacity,
                used: 0,
                price,
                address: address.to_string(),
                stats: ProofStats::default(),
            },
            status: Status::Active,
            since: self.g.epoch,
        };
        self.roles.insert(sender, role);
        Ok(Outcome::Done)
    }

    /// `sender`'s role, which must be a keeper's or a provider's (a node's, with a stake and
    /// an address).
    fn node_role(&self, sender: AccountId) -> Result<&Role, Rejection> {
        let role = self
            .roles
            .get(&sender)
            .ok_or(Rejection::NotRegistered(sender))?;
        if role.kind() == RoleKind::User {
            return Err(Rejection::WrongRole {
                account: sender,
                needed: RoleKind::Provider,
            });
        }
        Ok(role)
    }

    fn add_stake(&mut self, sender: AccountId, amount: Amount) -> Result<Outcome, Rejection> {
        if amount == 0 {
            return Err(Rejection::Invalid("amount (zero)"));
        }
        let role = self.node_role(sender)?;
        role.stake()
            .checked_add(amount)
            .ok_or(Rejection::Overflow)?;
        self.debit(sender, amount)?;
        self.roles.update(&sender, |r| match &mut r.info {
            RoleInfo::Keeper { stake, .. } | RoleInfo::Provider { stake, .. } => *stake += amount,
            RoleInfo::User { .. } => {}
        });
        Ok(Outcome::Done)
    }

    fn set_address(&mut self, sender: AccountId, address: &str) -> Result<Outcome, Rejection> {
        self.check_address(address)?;
        self.node_role(sender)?;
        self.roles.update(&sender, |r| match &mut r.info {
            RoleInfo::Keeper { address: a, .. } | RoleInfo::Provider { address: a, .. } => {
                *a = address.to_string()
            }
            RoleInfo::User { .. } => {}
        });
        Ok(Outcome::Done)
    }

    fn leave(&mut self, sender: AccountId) -> Result<Outcome, Rejection> {
        let role = self
            .roles
            .get(&sender)
            .ok_or(Rejection::NotRegistered(sender))?;
        if role.status != Status::Active {
            return Err(Rejection::Leaving(sender));
        }
        let effective = self
            .g
            .epoch
            .saturating_add(self.params.notice_epochs.max(1));
        self.roles
            .update(&sender, |r| r.status = Status::Leaving { effective });
        self.leaving.insert((effective, sender), ());
        self.keepers.remove(&sender);
        Ok(Outcome::Done)
    }

    fn process_leaving(&mut self, epoch: Epoch) {
        let due: Vec<(Epoch, AccountId)> = self
            .leaving
            .range(..=(epoch, AccountId([0xff; 32])))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.leaving.remove(&key);
            let who = key.1;
            let Some(role) = self.roles.get(&who).cloned() else {
                continue;
            };
            let ending: Vec<OrderId> = self
                .orders
                .iter()
                .filter(|(_, o)| o.user == who || o.provider == who)
                .map(|(id, _)| *id)
                .collect();
            for id in ending {
                self.finish_order(id);
            }
            self.roles.remove(&who);
            self.keepers.remove(&who);
            self.credit(who, role.stake());
        }
    }

    // ----- market -----

    fn is_users_keeper(&self, user: &AccountId, who: &AccountId) -> bool {
        matches!(self.roles.get(user), Some(Role { info: RoleInfo::User { keepers }, .. }) if keepers.contains(who))
    }

    /// The shards `receipts` prove `provider` stored for `user`, and their common size. Every
    /// receipt must verify, be signed by `provider`, name `user`, and have the same non-zero
    /// size; no shard may appear twice.
    fn receipted_shards(
        &mut self,
        user: AccountId,
        provider: AccountId,
        receipts: &[crate::identity::Signed<crate::ticket::Receipt>],
    ) -> Result<(u64, Vec<crate::id::ShardId>), Rejection> {
        if receipts.is_empty() || receipts.len() > self.params.max_shards_per_commit as usize {
            return Err(Rejection::Invalid("shard count"));
        }
        let bad = |index: usize, reason: &'static str| Rejection::BadStorageReceipt {
            index: index as u32,
            reason,
        };
        if let Some(i) = receipts.iter().position(|r| r.signer != provider) {
            return Err(bad(i, "not signed by the order's provider"));
        }
        if !self.sigs.verify_batch(receipts) {
            let i = self
                .sigs
                .find_invalid(receipts)
                .first()
                .copied()
                .unwrap_or(0);
            return Err(bad(i, "bad signature"));
        }
        let mut shards = Vec::with_capacity(receipts.len());
        let mut seen = std::collections::HashSet::with_capacity(receipts.len());
        let mut size = None;
        for (i, signed) in receipts.iter().enumerate() {
            let r = signed.open_unverified().map_err(|_| bad(i, "malformed"))?;
            if r.user != user {
                return Err(bad(i, "issued to another user"));
            }
            if r.size == 0 || size.is_some_and(|s| s != r.size) {
                return Err(bad(i, "shard sizes differ or are zero"));
            }
            size = Some(r.size);
            if !seen.insert(r.shard) {
                return Err(bad(i, "shard listed twice"));
            }
            shards.push(r.shard);
        }
        Ok((size.unwrap_or(0), shards))
    }

    fn create_order(
        &mut self,
        sender: AccountId,
        provider: AccountId,
        price: Amount,
        duration: u64,
        receipts: &[crate::identity::Signed<crate::ticket::Receipt>],
    ) -> Result<Outcome, Rejection> {
        self.require_role(sender, RoleKind::User)?;
        if duration == 0 || duration > self.params.max_order_epochs {
            return Err(Rejection::Invalid("duration"));
        }
        let (shard_len, shards) = self.receipted_shards(sender, provider, receipts)?;
        let bytes = shard_len
            .checked_mul(shards.len() as u64)
            .ok_or(Rejection::Overflow)?;
        let (free, ask) = self.open_provider(provider)?;
        if price < ask {
            return Err(Rejection::PriceBelowAsk {
                ask,
                offered: price,
            });
        }
        if bytes > free {
            return Err(Rejection::CapacityExceeded {
                free,
                requested: bytes,
            });
        }
        let escrow = bytes
            .checked_mul(price)
            .and_then(|x| x.checked_mul(duration))
            .ok_or(Rejection::Overflow)?;
        self.debit(sender, escrow)?;
        let start = self.g.epoch + 1;
        let id = self.open_order(Order {
            user: sender,
            provider,
            bytes,
            price,
            start,
            end: start + duration,
            escrow,
            proof: None,
            missed: 0,
            forfeit: 0,
            term: duration,
        });
        self.commit_shards(id, provider, Commitment { shard_len, shards });
        Ok(Outcome::OrderCreated(id))
    }

    /// Records a new order under the next order id; its provider's space is taken.
    fn open_order(&mut self, order: Order) -> OrderId {
        let bytes = order.bytes;
        self.roles.update(&order.provider, |r| {
            if let RoleInfo::Provider { used, .. } = &mut r.info {
                *used += bytes;
            }
        });
        let id = self.g.next_order;
        self.g.next_order += 1;
        self.orders.insert(id, order);
        id
    }

    fn end_order(&mut self, sender: AccountId, id: OrderId) -> Result<Outcome, Rejection> {
        let user = self
            .orders
            .get(&id)
            .ok_or(Rejection::UnknownOrder(id))?
            .user;
        if sender != user && !self.is_users_keeper(&user, &sender) {
            return Err(Rejection::NotOrderParty(id));
        }
        self.end_now(id);
        Ok(Outcome::Done)
    }

    /// Ends order `id` now: before its start it is removed at once ([`Self::finish_order`]);
    /// while it runs it ends after the current epoch, and the later epochs' escrow returns to
    /// the user.
    fn end_now(&mut self, id: OrderId) {
        let Some(order) = self.orders.get(&id) else {
            return;
        };
        let (user, start, end, per_epoch, escrow) = (
            order.user,
            order.start,
            order.end,
            order.per_epoch(),
            order.escrow,
        );
        let cur = self.g.epoch;
        if start > cur {
            self.finish_order(id);
            return;
        }
        self.orders.update(&id, |o| o.term = 0);
        let new_end = cur + 1;
        if end > new_end {
            let refund = (end - new_end).saturating_mul(per_epoch).min(escrow);
            self.orders.update(&id, |o| {
                o.end = new_end;
                o.escrow -= refund;
            });
            self.credit(user, refund);
        }
    }

    /// Removes an order: the remaining escrow returns to the user, a forfeit no repair used
    /// goes to the repair fund, the provider's space frees.
    fn finish_order(&mut self, id: OrderId) {
        let Some(order) = self.orders.remove(&id) else {
            return;
        };
        if let Some(c) = self.commitments.get(&id).cloned() {
            for s in c.shards {
                self.owners.remove(&(id, s));
            }
        }
        self.uncommit(id, order.provider, None);
        self.credit(order.user, order.escrow);
        self.g.repair_fund = self.g.repair_fund.saturating_add(order.forfeit);
        self.roles.update(&order.provider, |r| {
            if let RoleInfo::Provider { used, .. } = &mut r.info {
                *used = used.saturating_sub(order.bytes);
            }
        });
    }

    fn settle_epoch(&mut self, e: Epoch) {
        let due: Vec<OrderId> = self
            .orders
            .iter()
            .filter(|(_, o)| o.start <= e && e < o.end)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(order) = self.orders.get(&id).cloned() else {
                continue;
            };
            let pay = order.per_epoch().min(order.escrow);
            let committed = self.commitments.contains(&id);
            match order.proof {
                Some(ProofMark::Passed(x)) if x == e => {
                    self.pay_provider(&order, pay);
                    self.provider_stats(&order.provider, |s| {
                        s.proven += 1;
                        s.record.record(e, crate::proof::Outcome::Pass, DECAY_PPM);
                    });
                    self.orders.update(&id, |o| o.missed = 0);
                }
                Some(ProofMark::Failed(x)) if x == e => {
                    self.provider_stats(&order.provider, |s| {
                        s.record.record(e, crate::proof::Outcome::Fail, DECAY_PPM);
                    });
                    self.credit(order.user, pay);
                }
                _ => {
                    if committed {
                        self.provider_stats(&order.provider, |s| {
                            s.missed += 1;
                            s.record.record(e, crate::proof::Outcome::Miss, DECAY_PPM);
                        });
                        let missed = order.missed.saturating_add(1);
                        self.orders.update(&id, |o| o.missed = missed);
                        if missed > self.params.missed_grace {
                            self.slash(id);
                        }
                    }
                    self.credit(order.user, pay);
                }
            }
            self.orders.update(&id, |o| o.escrow -= pay);
            if order.end <= e + 1 {
                self.renew_or_finish(id, e);
            }
        }
    }

    /// Order `id` has run out after epoch `e`: it renews for its term from the user's balance
    /// (the escrow for the whole term is taken now), or, if it was ended or the balance does not
    /// cover the term, it finishes; an order that could not renew is recorded as lapsed.
    fn renew_or_finish(&mut self, id: OrderId, e: Epoch) {
        let Some(o) = self.orders.get(&id).cloned() else {
            return;
        };
        let committed = self.commitments.contains(&id);
        if o.term > 0 && committed && o.bytes > 0 {
            let needed = o.per_epoch().saturating_mul(o.term);
            let collected = self.collect_shares(id, &o, e);
            if self.debit(o.user, needed).is_ok() {
                self.orders.update(&id, |x| {
                    x.end = e + 1 + o.term;
                    x.escrow += needed;
                });
                return;
            }
            // The order lapses: the co-owners' shares of the new term go back.
            for (q, amount) in collected {
                self.move_money(o.user, q, amount);
            }
            self.lapsed.insert((e + 1, o.user, id), o.provider);
        }
        self.finish_order(id);
    }

    /// Forgets lapses older than [`LAPSE_MEMORY`] epochs.
    fn prune_lapsed(&mut self, epoch: Epoch) {
        let Some(before) = epoch.checked_sub(LAPSE_MEMORY) else {
            return;
        };
        let old: Vec<(Epoch, AccountId, OrderId)> = self
            .lapsed
            .range(..(before + 1, AccountId([0; 32]), 0))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.lapsed.remove(&k);
        }
    }

    /// Slashes order `id`'s provider for a failed or missed proof: `slash_epochs` epochs of the
    /// order's pay, at least `slash_amount`, capped at the stake held. The stake taken becomes
    /// the order's forfeit, which pays for repairing its shards. Returns the amount.
    fn slash(&mut self, id: OrderId) -> Amount {
        let Some(order) = self.orders.get(&id) else {
            return 0;
        };
        let provider = order.provider;
        let want = order
            .per_epoch()
            .saturating_mul(self.params.slash_epochs)
            .max(self.params.slash_amount);
        let mut slashed = 0;
        self.roles.update(&provider, |r| {
            if let RoleInfo::Provider { stake, .. } = &mut r.info {
                slashed = want.min(*stake);
                *stake -= slashed;
            }
        });
        self.orders
            .update(&id, |o| o.forfeit = o.forfeit.saturating_add(slashed));
        slashed
    }

    fn provider_stats(&mut self, provider: &AccountId, f: impl FnOnce(&mut ProofStats)) {
        self.roles.update(provider, |r| {
            if let RoleInfo::Provider { stats, .. } = &mut r.info {
                f(stats);
            }
        });
    }

    /// Pays one epoch: the keepers' fee share split among the user's registered keepers, the
    /// rest (and any remainder of the split) to the provider.
    fn pay_provider(&mut self, order: &Order, pay: Amount) {
        let keepers: Vec<AccountId> = match self.roles.get(&order.user) {
            Some(Role {
                info: RoleInfo::User { keepers },
                ..
            }) => keepers
                .iter()
                .filter(|k| matches!(self.roles.get(k), Some(r) if r.kind() == RoleKind::Keeper))
                .copied()
                .collect(),
            _ => Vec::new(),
        };
        let mut to_provider = pay;
        if !keepers.is_empty() {
            let fee = (u128::from(pay) * u128::from(self.params.keeper_fee_bps) / 10_000) as Amount;
            let share = fee / keepers.len() as Amount;
            for k in keepers {
                self.credit(k, share);
                to_provider -= share;
            }
        }
        self.credit(order.provider, to_provider);
    }

    // ----- co-ownership of deduplicated data -----

    /// The owners of shard `s` of order `id` (whose user is `user`).
    fn owners_of(&self, id: OrderId, user: AccountId, s: crate::id::ShardId) -> Vec<AccountId> {
        self.owners
            .get(&(id, s))
            .cloned()
            .unwrap_or_else(|| vec![user])
    }

    /// Records the owners of shard `s` of order `id`: no entry when the order's user owns it
    /// alone, so an order nobody shares costs no state.
    fn set_owners(
        &mut self,
        id: OrderId,
        user: AccountId,
        s: crate::id::ShardId,
        mut owners: Vec<AccountId>,
    ) {
        owners.sort();
        if owners == [user] {
            self.owners.remove(&(id, s));
        } else {
            self.owners.insert((id, s), owners);
        }
    }

    /// Moves `amount` from `from`'s balance to `to`'s, or as much of it as `from` has; returns
    /// what moved.
    fn move_money(&mut self, from: AccountId, to: AccountId, amount: Amount) -> Amount {
        let amount = amount.min(self.account(&from).balance);
        if amount > 0 && self.debit(from, amount).is_ok() {
            self.credit(to, amount);
            return amount;
        }
        0
    }

    /// Order `id` and, for co-owning its `shards`, its commitment's shard length and the value
    /// of one shard for the rest of the term (`V` of [`MarketCall::Share`]). Each shard must be
    /// committed under the order and listed once.
    fn shard_value(
        &self,
        id: OrderId,
        shards: &[crate::id::ShardId],
    ) -> Result<(Order, Amount), Rejection> {
        let order = self
            .orders
            .get(&id)
            .ok_or(Rejection::UnknownOrder(id))?
            .clone();
        let c = self
            .commitments
            .get(&id)
            .ok_or(Rejection::NotCommitted(id))?;
        if shards.is_empty() || shards.len() > c.shards.len() {
            return Err(Rejection::Invalid("shards"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in shards {
            if !c.shards.contains(s) {
                return Err(Rejection::ShardNotCommitted {
                    order: id,
                    shard: *s,
                });
            }
            if !seen.insert(*s) {
                return Err(Rejection::Invalid("shards (one listed twice)"));
            }
        }
        let left = order.end.saturating_sub(order.start.max(self.g.epoch + 1));
        let value = c
            .shard_len
            .checked_mul(order.price)
            .and_then(|x| x.checked_mul(left))
            .ok_or(Rejection::Overflow)?;
        Ok((order, value))
    }

    /// `sender` co-owns `shards` of order `id` (see [`MarketCall::Share`]).
    fn share(
        &mut self,
        sender: AccountId,
        id: OrderId,
        shards: &[crate::id::ShardId],
    ) -> Result<Outcome, Rejection> {
        self.require_role(sender, RoleKind::User)?;
        let (order, value) = self.shard_value(id, shards)?;
        if order.term == 0 || value == 0 {
            return Err(Rejection::OrderNotRunning {
                order: id,
                epoch: self.g.epoch,
            });
        }
        let mut pays: BTreeMap<AccountId, Amount> = BTreeMap::new();
        for s in shards {
            let mut owners = self.owners_of(id, order.user, *s);
            if owners.contains(&sender) {
                return Err(Rejection::AlreadyOwner {
                    order: id,
                    shard: *s,
                });
            }
            let n = owners.len() as Amount;
            if n == 0 {
                *pays.entry(order.user).or_default() += value;
            } else {
                let each = value / (n * (n + 1));
                for q in &owners {
                    *pays.entry(*q).or_default() += each;
                }
            }
            owners.push(sender);
            self.set_owners(id, order.user, *s, owners);
        }
        let total = pays
            .values()
            .try_fold(0 as Amount, |a, b| a.checked_add(*b))
            .ok_or(Rejection::Overflow)?;
        self.debit(sender, total)?;
        for (q, amount) in pays {
            self.credit(q, amount);
        }
        Ok(Outcome::Shared(total))
    }

    /// `user` leaves `shards` of order `id` (see [`MarketCall::Unshare`]).
    fn unshare(
        &mut self,
        sender: AccountId,
        id: OrderId,
        user: AccountId,
        shards: &[crate::id::ShardId],
    ) -> Result<Outcome, Rejection> {
        if sender != user && !self.is_users_keeper(&user, &sender) {
            return Err(Rejection::NotOrderParty(id));
        }
        let (order, value) = self.shard_value(id, shards)?;
        let mut refunded: Amount = 0;
        for s in shards {
            let mut owners = self.owners_of(id, order.user, *s);
            let Some(at) = owners.iter().position(|q| *q == user) else {
                return Err(Rejection::NotOwner {
                    order: id,
                    shard: *s,
                });
            };
            owners.remove(at);
            let n = owners.len() as Amount + 1;
            if n >= 2 {
                let each = value / (n * (n - 1));
                for q in owners.clone() {
                    refunded += self.move_money(q, user, each);
                }
            } else if order.user != user {
                refunded += self.move_money(order.user, user, value);
            }
            self.set_owners(id, order.user, *s, owners);
        }
        Ok(Outcome::Unshared(refunded))
    }

    /// Before order `id` (`o`) renews after epoch `e`: each co-owner of a shared shard pays
    /// the order's user its share of the new term, `shard length × price × term / owners`.
    /// An owner whose balance does not cover its share stops owning the shard (its lapse is
    /// recorded, [`Query::Lapsed`]) and the others' shares grow. Returns what was paid, by
    /// payer.
    fn collect_shares(&mut self, id: OrderId, o: &Order, e: Epoch) -> Vec<(AccountId, Amount)> {
        let Some(c) = self.commitments.get(&id).cloned() else {
            return Vec::new();
        };
        let value = c.shard_len.saturating_mul(o.price).saturating_mul(o.term);
        let mut paid = Vec::new();
        for s in c.shards {
            let Some(mut owners) = self.owners.get(&(id, s)).cloned() else {
                continue;
            };
            loop {
                let n = owners.len() as Amount;
                if n == 0 {
                    break;
                }
                let each = value / n;
                let short = owners
                    .iter()
                    .find(|q| **q != o.user && self.account(q).balance < each)
                    .copied();
                match short {
                    Some(q) => {
                        owners.retain(|x| *x != q);
                        self.lapsed.insert((e + 1, q, id), o.provider);
                    }
                    None => {
                        for q in owners.iter().filter(|q| **q != o.user) {
                            paid.push((*q, self.move_money(*q, o.user, each)));
                        }
                        break;
                    }
                }
            }
            self.set_owners(id, o.user, s, owners);
        }
        paid
    }

    // ----- files -----

    /// Moves committed shard `shard` of order `id` to provider `to` (see
    /// [`FilesCall::Reassign`]).
    fn reassign(
        &mut self,
        sender: AccountId,
        id: OrderId,
        shard: crate::id::ShardId,
        to: AccountId,
    ) -> Result<Outcome, Rejection> {
        self.require_role(sender, RoleKind::Keeper)?;
        let order = self
            .orders
            .get(&id)
            .ok_or(Rejection::UnknownOrder(id))?
            .clone();
        if !self.is_users_keeper(&order.user, &sender) {
            return Err(Rejection::NotOrderParty(id));
        }
        let (shard_len, n) = {
            let c = self
                .commitments
                .get(&id)
                .ok_or(Rejection::NotCommitted(id))?;
            if !c.shards.contains(&shard) {
                return Err(Rejection::ShardNotCommitted { order: id, shard });
            }
            (c.shard_len, c.shards.len() as u64)
        };
        let epoch = self.g.epoch;
        // The new order runs from the next epoch (or the order's start) to the order's end.
        let start = order.start.max(epoch + 1);
        if start >= order.end {
            return Err(Rejection::OrderNotRunning { order: id, epoch });
        }
        if to == order.provider {
            return Err(Rejection::SameProvider(to));
        }
        let (free, ask) = self.open_provider(to)?;
        if let Some(held) = self.holders_of(to, shard).next() {
            return Err(Rejection::AlreadyHolds(held));
        }
        let bytes = order.bytes / n;
        if bytes == 0 {
            return Err(Rejection::Invalid("shard share (zero bytes)"));
        }
        if bytes > free {
            return Err(Rejection::CapacityExceeded {
                free,
                requested: bytes,
            });
        }
        let price = order.price.max(ask);
        let needed = bytes
            .checked_mul(price)
            .and_then(|x| x.checked_mul(order.end - start))
            .ok_or(Rejection::Overflow)?;
        // The escrow for the epochs after this one; the shard's share of it moves. (What this
        // epoch's pay loses with the shard returns to the user when the order ends.)
        let future = order
            .per_epoch()
            .saturating_mul(order.end - start)
            .min(order.escrow);
        let moved = (u128::from(future) * u128::from(bytes) / u128::from(order.bytes)) as Amount;
        // The shard's share of the order's forfeit (stake already slashed for its faults), then
        // the failed provider's stake, then the repair fund, cover a higher price; the forfeit
        // share, then the stake, pay the keeper's reward. What is left of the share tops up the
        // new order's escrow (it returns to the user when that order ends).
        let share =
            (u128::from(order.forfeit) * u128::from(bytes) / u128::from(order.bytes)) as Amount;
        let failed_stake = self.roles.get(&order.provider).map_or(0, Role::stake);
        let wanted = needed.saturating_sub(moved);
        let from_forfeit = wanted.min(share);
        let from_stake = (wanted - from_forfeit).min(failed_stake);
        let from_fund = (wanted - from_forfeit - from_stake).min(self.g.repair_fund);
        let reward_forfeit = self.params.repair_penalty.min(share - from_forfeit);
        let reward_stake =
            (self.params.repair_penalty - reward_forfeit).min(failed_stake - from_stake);
        let penalty = reward_forfeit + reward_stake;
        let rest = share - from_forfeit - reward_forfeit;
        let taken = from_stake + reward_stake;
        self.roles.update(&order.provider, |r| {
            if let RoleInfo::Provider { stake, used, .. } = &mut r.info {
                *stake -= taken;
                *used = used.saturating_sub(bytes);
            }
        });
        self.g.repair_fund -= from_fund;
        self.credit(sender, penalty);
        self.orders.update(&id, |o| {
            o.bytes -= bytes;
            o.escrow -= moved;
            o.forfeit -= share;
        });
        self.uncommit(id, order.provider, Some(shard));
        if n == 1 {
            // Nothing left to hold: the order ends (after this epoch, if it runs now). It holds
            // no bytes any more, so ending it refunds nothing: its escrow past this epoch moved.
            self.end_now(id);
        }
        let new_id = self.open_order(Order {
            user: order.user,
            provider: to,
            bytes,
            price,
            start,
            end: order.end,
            escrow: moved + from_forfeit + from_stake + from_fund + rest,
            proof: None,
            missed: 0,
            forfeit: 0,
            term: order.term,
        });
        self.commit_shards(
            new_id,
            to,
            Commitment {
                shard_len,
                shards: vec![shard],
            },
        );
        // The shard's owners (and their shares) move with it.
        if let Some(owners) = self.owners.remove(&(id, shard)) {
            self.owners.insert((new_id, shard), owners);
        }
        Ok(Outcome::Reassigned {
            order: new_id,
            moved,
            shortfall: from_forfeit + from_stake + from_fund,
            penalty,
        })
    }

    // ----- settlement -----

    fn transfer(
        &mut self,
        sender: AccountId,
        to: AccountId,
        amount: Amount,
    ) -> Result<Outcome, Rejection> {
        if amount == 0 {
            return Err(Rejection::Invalid("amount (zero)"));
        }
        self.debit(sender, amount)?;
        self.credit(to, amount);
        Ok(Outcome::Done)
    }

    /// The challenge order `id`'s provider must answer in the current epoch: the committed
    /// shard chosen by the seed `blake3(chain, beacon, provider, epoch, order)`. `None` if the
    /// order is not live this epoch or has no commitment.
    pub fn challenge(&self, id: OrderId) -> Option<Challenge> {
        let order = self.orders.get(&id)?;
        let epoch = self.g.epoch;
        if !(order.start <= epoch && epoch < order.end) {
            return None;
        }
        let c = self.commitments.get(&id)?;
        let seed = derive(
            "memo 2026 challenge v1",
            &[
                &self.chain.to_le_bytes(),
                &self.g.beacon,
                &order.provider.0,
                &epoch.to_le_bytes(),
                &id.to_le_bytes(),
            ],
        );
        let mut first = [0u8; 8];
        first.copy_from_slice(&seed[..8]);
        let index = (u64::from_le_bytes(first) % c.shards.len() as u64) as usize;
        Some(Challenge {
            chain: self.chain,
            provider: order.provider,
            order: id,
            epoch,
            seed,
            shard: c.shards[index],
            shard_len: c.shard_len,
        })
    }

    fn submit_proof(&mut self, sender: AccountId, p: &StorageProof) -> Result<Outcome, Rejection> {
        let order = self
            .orders
            .get(&p.order)
            .ok_or(Rejection::UnknownOrder(p.order))?;
        if order.provider != sender {
            return Err(Rejection::NotOrderParty(p.order));
        }
        let epoch = self.g.epoch;
        if p.epoch != epoch {
            return Err(Rejection::WrongEpoch {
                current: epoch,
                got: p.epoch,
            });
        }
        if !(order.start <= epoch && epoch < order.end) {
            return Err(Rejection::OrderNotRunning {
                order: p.order,
                epoch,
            });
        }
        if matches!(order.proof, Some(ProofMark::Passed(e) | ProofMark::Failed(e)) if e == epoch) {
            return Err(Rejection::AlreadyProven(p.order));
        }
        let challenge = self
            .challenge(p.order)
            .ok_or(Rejection::NotCommitted(p.order))?;
        if challenge.shard != p.shard {
            return Err(Rejection::WrongShard {
                expected: challenge.shard,
                got: p.shard,
            });
        }
        match self.verifier.verify(&challenge, &p.proof) {
            Ok(()) => {
                self.orders
                    .update(&p.order, |o| o.proof = Some(ProofMark::Passed(epoch)));
                Ok(Outcome::ProofPassed)
            }
            Err(reason) => {
                self.orders
                    .update(&p.order, |o| o.proof = Some(ProofMark::Failed(epoch)));
                self.provider_stats(&sender, |s| s.failed += 1);
                let slashed = self.slash(p.order);
                Ok(Outcome::ProofFailed {
                    reason: reason.to_string(),
                    slashed,
                })
            }
        }
    }

    fn settle_receipt(
        &mut self,
        sender: AccountId,
        signed: &crate::identity::Signed<Receipt>,
    ) -> Result<Outcome, Rejection> {
        self.require_role_any_status(sender, RoleKind::Provider)?;
        let r = signed.open().map_err(|_| Rejection::BadReceipt)?;
        if r.user != signed.signer {
            return Err(Rejection::BadReceipt);
        }
        if r.chain != self.chain {
            return Err(Rejection::WrongChain {
                expected: self.chain,
                got: r.chain,
            });
        }
        if r.provider != sender {
            return Err(Rejection::NotReceiptProvider(r.provider));
        }
        let epoch = self.g.epoch;
        if r.expires < epoch {
            return Err(Rejection::ReceiptExpired(r.expires));
        }
        if r.expires > epoch.saturating_add(self.params.max_receipt_epochs) {
            return Err(Rejection::ReceiptTooLong(r.expires));
        }
        let id = Receipt::id_of(signed);
        if self.receipts.contains(&id) {
            return Err(Rejection::ReceiptAlreadySettled);
        }
        let amount = r.bytes.checked_mul(r.price).ok_or(Rejection::Overflow)?;
        self.debit(r.user, amount)?;
        self.credit(sender, amount);
        self.receipts.insert(id, r.expires);
        self.receipt_expiry.insert((r.expires, id), ());
        Ok(Outcome::ReceiptSettled(amount))
    }

    /// A keeper's beacon step (see [`SettlementCall::Beacon`]).
    fn beacon_step(
        &mut self,
        sender: AccountId,
        at: Epoch,
        reveal: Option<[u8; 32]>,
        commit: [u8; 32],
    ) -> Result<Outcome, Rejection> {
        self.require_role(sender, RoleKind::Keeper)?;
        let epoch = self.g.epoch;
        if at != epoch {
            return Err(Rejection::WrongEpoch {
                current: epoch,
                got: at,
            });
        }
        match (self.beacon_commits.get(&sender).copied(), reveal) {
            (Some((made, _)), _) if made >= epoch => {
                return Err(Rejection::Invalid("beacon (already sent this epoch)"));
            }
            (Some((_, hash)), Some(secret)) => {
                if *blake3::hash(&secret).as_bytes() != hash {
                    return Err(Rejection::Invalid("beacon reveal (does not match)"));
                }
                let part = derive("memo 2026 beacon reveal v1", &[&sender.0, &secret]);
                for (m, p) in self.g.mix.iter_mut().zip(part) {
                    *m ^= p;
                }
            }
            (Some(_), None) => return Err(Rejection::Invalid("beacon reveal (missing)")),
            (None, Some(_)) => return Err(Rejection::Invalid("beacon reveal (nothing committed)")),
            (None, None) => {}
        }
        self.beacon_commits.insert(sender, (epoch, commit));
        Ok(Outcome::Done)
    }

    /// At the turn into `epoch`: a commitment whose reveal epoch has passed is dropped, and its
    /// keeper (if still one) slashed `slash_amount` into the repair fund: withholding a reveal
    /// to steer the beacon costs stake.
    fn expire_beacon_commits(&mut self, epoch: Epoch) {
        let due: Vec<AccountId> = self
            .beacon_commits
            .iter()
            .filter(|(_, (made, _))| made.saturating_add(2) <= epoch)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.beacon_commits.remove(&k);
            let mut slashed = 0;
            let amount = self.params.slash_amount;
            self.roles.update(&k, |r| {
                if let RoleInfo::Keeper { stake, .. } = &mut r.info {
                    slashed = amount.min(*stake);
                    *stake -= slashed;
                }
            });
            self.g.repair_fund += slashed;
        }
    }

    fn require_role_any_status(&self, who: AccountId, needed: RoleKind) -> Result<(), Rejection> {
        let role = self.roles.get(&who).ok_or(Rejection::NotRegistered(who))?;
        if role.kind() != needed {
            return Err(Rejection::WrongRole {
                account: who,
                needed,
            });
        }
        Ok(())
    }

    fn prune_receipts(&mut self, epoch: Epoch) {
        let old: Vec<(Epoch, [u8; 32])> = self
            .receipt_expiry
            .range(..(epoch, [0u8; 32]))
            .map(|(k, _)| *k)
            .collect();
        for key in old {
            self.receipt_expiry.remove(&key);
            self.receipts.remove(&key.1);
        }
    }

    // ----- reads -----

    /// Answers a read. Reads need no identity.
    pub fn query(&self, q: &Query) -> Answer {
        match q {
            Query::Module(name) => Answer::Module(self.module_address(name)),
            Query::Account(a) => Answer::Account(self.account(a)),
            Query::Role(a) => Answer::Role(self.role(a).cloned()),
            Query::Keepers(a) => Answer::Keepers(self.keepers_of(a)),
            Query::Providers => Answer::Providers(self.providers()),
            Query::Order(id) => Answer::Order(self.order(*id).cloned()),
            Query::Commitment(id) => Answer::Commitment(self.commitments.get(id).cloned()),
            Query::Challenge(id) => Answer::Challenge(self.challenge(*id)),
            Query::ReceiptSettled(id) => Answer::ReceiptSettled(self.receipts.contains(id)),
            Query::Status => Answer::Status(self.status()),
            Query::Challenges(p) => Answer::Challenges(self.challenges_of(p)),
            Query::Holdings(pairs) => Answer::Holdings(
                pairs
                    .iter()
                    .take(MAX_HOLDINGS_QUERY)
                    .map(|(p, s)| {
                        self.holders_of(*p, *s)
                            .filter_map(|id| self.orders.get(&id).map(|o| (id, o)))
                            .flat_map(|(id, o)| {
                                self.owners_of(id, o.user, *s)
                                    .into_iter()
                                    .map(move |u| (id, u, o.end))
                            })
                            .collect()
                    })
                    .collect(),
            ),
            Query::BeaconCommit(k) => Answer::BeaconCommit(self.beacon_commits.get(k).copied()),
            Query::Lapsed(user) => Answer::Lapsed(
                self.lapsed
                    .iter()
                    .filter(|(k, _)| k.1 == *user)
                    .map(|(k, p)| (k.0, k.2, *p))
                    .collect(),
            ),
            Query::LapsedBetween { from, to } => {
                let mut users: Vec<AccountId> = if from <= to {
                    self.lapsed
                        .range(
                            (*from, AccountId([0; 32]), 0)
                                ..=(*to, AccountId([0xff; 32]), OrderId::MAX),
                        )
                        .map(|(k, _)| k.1)
                        .collect()
                } else {
                    Vec::new()
                };
                users.sort();
                users.dedup();
                Answer::LapsedUsers(users)
            }
            Query::OrdersOf(a) => Answer::Orders(
                self.orders()
                    .filter(|(_, o)| o.user == *a || o.provider == *a)
                    .map(|(id, o)| (id, o.clone()))
                    .collect(),
            ),
        }
    }

    /// The live orders that commit `provider` to `shard`.
    pub fn holders_of(
        &self,
        provider: AccountId,
        shard: crate::id::ShardId,
    ) -> impl Iterator<Item = OrderId> + '_ {
        self.holdings
            .range((provider, shard, 0)..=(provider, shard, OrderId::MAX))
            .map(|(k, _)| k.2)
    }

    /// The challenges `provider` must answer in the current epoch, by order id: one for each
    /// of its orders that runs this epoch and has a commitment.
    pub fn challenges_of(&self, provider: &AccountId) -> Vec<Challenge> {
        self.orders()
            .filter(|(_, o)| o.provider == *provider)
            .filter_map(|(id, _)| self.challenge(id))
            .collect()
    }

    /// An account (zero balance and nonce if never seen).
    pub fn account(&self, a: &AccountId) -> Account {
        self.accounts.get(a).copied().unwrap_or_default()
    }

    /// An account's role.
    pub fn role(&self, a: &AccountId) -> Option<&Role> {
        self.roles.get(a)
    }

    /// The keepers matched to a user.
    pub fn keepers_of(&self, a: &AccountId) -> Vec<AccountId> {
        match self.roles.get(a) {
            Some(Role {
                info: RoleInfo::User { keepers },
                ..
            }) => keepers.clone(),
            _ => Vec::new(),
        }
    }

    /// A live order.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Every live order, by id.
    pub fn orders(&self) -> impl Iterator<Item = (OrderId, &Order)> {
        self.orders.iter().map(|(id, o)| (*id, o))
    }

    /// Active providers that can take orders.
    pub fn providers(&self) -> Vec<ProviderOffer> {
        self.roles
            .iter()
            .filter_map(|(a, r)| match &r.info {
                RoleInfo::Provider {
                    stake,
                    capacity,
                    used,
                    price,
                    address,
                    stats,
                } if r.status == Status::Active
                    && *stake >= self.params.min_provider_stake
                    && capacity > used =>
                {
                    Some(ProviderOffer {
                        provider: *a,
                        price: *price,
                        free: capacity - used,
                        address: address.clone(),
                        stats: *stats,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Height, epoch, beacon and funds.
    pub fn status(&self) -> ChainStatus {
        ChainStatus {
            chain: self.chain,
            height: self.g.height,
            epoch: self.g.epoch,
            beacon: self.g.beacon,
            repair_fund: self.g.repair_fund,
            supply: self.g.supply,
            orders: self.orders.len() as u64,
        }
    }
}

/// The decay of the reputation records the contract keeps (the default score's).
const DECAY_PPM: u32 = crate::proof::DEFAULT_DECAY_PPM;

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(&(p.len() as u32).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests;

/// A stake posted at registration must be positive and at least the genesis minimum.
fn check_stake(stake: Amount, minimum: Amount) -> Result<(), Rejection> {
    if stake < minimum || stake == 0 {
        return Err(Rejection::StakeTooLow { stake, minimum });
    }
    Ok(())
}

//! Why a transaction, a block or a genesis was refused.

use super::types::{Amount, Epoch, Height, Module, ModuleAddress, OrderId, RoleKind, Tick};
use crate::id::{AccountId, ShardId};

/// Why a transaction was rejected. A rejected transaction changes nothing, not even the nonce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The signature does not verify for the sender.
    #[error("bad signature")]
    BadSignature,
    /// The body is not a valid transaction encoding.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The transaction names another chain.
    #[error("transaction for chain {got}, this is chain {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The transaction's chain.
        got: u64,
    },
    /// The nonce was already used (a replay).
    #[error("nonce {got} already used (next is {expected})")]
    NonceReplayed {
        /// The next nonce.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
    /// The nonce skips ahead (out of order).
    #[error("nonce {got} is ahead of the next nonce {expected}")]
    NonceGap {
        /// The next nonce.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
    /// No module has this address.
    #[error("no module at address {0}")]
    UnknownModule(ModuleAddress),
    /// The call does not belong to the module addressed.
    #[error("the call belongs to module {call:?}, not to the module addressed")]
    WrongModule {
        /// The call's module.
        call: Module,
    },
    /// The sender already has a role.
    #[error("account already registered as {0}")]
    AlreadyRegistered(RoleKind),
    /// The account has no role.
    #[error("account {0:?} has no role")]
    NotRegistered(AccountId),
    /// The account has another role than the one needed.
    #[error("account {account:?} must be a {needed}")]
    WrongRole {
        /// The account.
        account: AccountId,
        /// The role needed.
        needed: RoleKind,
    },
    /// The role is serving its notice period.
    #[error("account {0:?} is leaving")]
    Leaving(AccountId),
    /// The balance is too small.
    #[error("balance {available} is less than {needed}")]
    InsufficientBalance {
        /// Amount needed.
        needed: Amount,
        /// Balance available.
        available: Amount,
    },
    /// The stake is below the minimum (at registration, or a provider taking an order).
    #[error("stake {stake} is below the minimum {minimum}")]
    StakeTooLow {
        /// Stake offered or held.
        stake: Amount,
        /// The minimum.
        minimum: Amount,
    },
    /// The provider does not have that much free capacity.
    #[error("provider has {free} bytes free, {requested} requested")]
    CapacityExceeded {
        /// Free bytes.
        free: u64,
        /// Bytes requested.
        requested: u64,
    },
    /// The offered price is under the provider's asking price.
    #[error("price {offered} is below the asking price {ask}")]
    PriceBelowAsk {
        /// Asking price.
        ask: Amount,
        /// Offered price.
        offered: Amount,
    },
    /// A field is out of range (zero amount, empty list, too long, ...).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The amounts overflow.
    #[error("amount overflow")]
    Overflow,
    /// No live order has this id.
    #[error("no order {0}")]
    UnknownOrder(OrderId),
    /// The sender is not a party allowed to act on the order.
    #[error("sender may not act on order {0}")]
    NotOrderParty(OrderId),
    /// A storage receipt of an order does not back its shard.
    #[error("storage receipt {index}: {reason}")]
    BadStorageReceipt {
        /// Its position in the order.
        index: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The order has no commitment to prove against.
    #[error("order {0} has no commitment")]
    NotCommitted(OrderId),
    /// The order does not run in this epoch.
    #[error("order {order} does not run in epoch {epoch}")]
    OrderNotRunning {
        /// The order.
        order: OrderId,
        /// The epoch.
        epoch: Epoch,
    },
    /// A proof names another epoch than the current one.
    #[error("proof for epoch {got} in epoch {current}")]
    WrongEpoch {
        /// The current epoch.
        current: Epoch,
        /// The epoch named.
        got: Epoch,
    },
    /// A proof names another shard than the challenged one.
    #[error("challenged shard is {expected:?}, proof names {got:?}")]
    WrongShard {
        /// The challenged shard.
        expected: ShardId,
        /// The shard named.
        got: ShardId,
    },
    /// The order already has a proof outcome for this epoch.
    #[error("order {0} already has a proof this epoch")]
    AlreadyProven(OrderId),
    /// The receipt's user signature does not verify.
    #[error("receipt signature does not verify")]
    BadReceipt,
    /// The receipt names another provider than the sender.
    #[error("receipt is payable to {0:?}, not to the sender")]
    NotReceiptProvider(AccountId),
    /// The receipt was settled already.
    #[error("receipt already settled")]
    ReceiptAlreadySettled,
    /// The receipt expired.
    #[error("receipt expired in epoch {0}")]
    ReceiptExpired(Epoch),
    /// The receipt's expiry is further ahead than the ledger remembers receipts.
    #[error("receipt expiry {0} is too far ahead")]
    ReceiptTooLong(Epoch),
    /// The sender already owns this shard of the order.
    #[error("already an owner of shard {shard:?} of order {order}")]
    AlreadyOwner {
        /// The order.
        order: OrderId,
        /// The shard.
        shard: ShardId,
    },
    /// The account does not own this shard of the order.
    #[error("not an owner of shard {shard:?} of order {order}")]
    NotOwner {
        /// The order.
        order: OrderId,
        /// The shard.
        shard: ShardId,
    },
    /// The shard is not in the order's commitment.
    #[error("shard {shard:?} is not committed under order {order}")]
    ShardNotCommitted {
        /// The order.
        order: OrderId,
        /// The shard.
        shard: ShardId,
    },
    /// A shard cannot be reassigned to the provider that already holds the order.
    #[error("provider {0:?} already holds order the shard is moved from")]
    SameProvider(AccountId),
    /// The new provider already holds the shard, committed under this (other) order.
    #[error("the provider already holds the shard under order {0}")]
    AlreadyHolds(OrderId),
    /// No block is open: call `begin_block` first.
    #[error("no block is open")]
    NoOpenBlock,
}

/// Why a block could not be begun, applied or committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// Blocks must come at the next height.
    #[error("expected block at height {expected}, got {got}")]
    WrongHeight {
        /// The next height.
        expected: Height,
        /// The height given.
        got: Height,
    },
    /// A block's tick must be its parent's or the next.
    #[error("block tick {got} is neither its parent's ({parent}) nor the next")]
    WrongTick {
        /// The parent's tick.
        parent: Tick,
        /// The tick given.
        got: Tick,
    },
    /// A block is already open.
    #[error("a block is already open")]
    AlreadyOpen,
    /// No block is open.
    #[error("no block is open")]
    NotOpen,
    /// A transaction in the block was rejected.
    #[error("transaction {index} rejected: {reason}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: Rejection,
    },
    /// The state root after the block differs from the one claimed.
    #[error("state root mismatch")]
    StateRoot,
}

/// Why a genesis configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The TOML did not parse.
    #[error("genesis config: {0}")]
    Toml(String),
    /// A parameter is out of range.
    #[error("genesis parameter {0} is out of range")]
    Param(&'static str),
    /// An account id is not 64 hex digits.
    #[error("genesis account {0:?} is not 64 hex digits")]
    Account(String),
    /// An account appears twice.
    #[error("genesis account {0} appears twice")]
    Duplicate(String),
    /// The total supply overflows.
    #[error("genesis balances overflow")]
    Overflow,
}

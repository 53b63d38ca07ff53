//! The ledger: the [`Ledger`] trait and the local chain backend.
//!
//! A ledger orders signed transactions into hash-chained blocks and applies them with the
//! contract state machine ([`memo_core::contract`]). Every block carries the state root after
//! it, so anyone replaying the blocks from genesis can check each step.
//!
//! [`LocalChain`] is the embedded backend: one sequencer (a keeper's key) batches submitted
//! transactions into blocks when the caller asks (or on an interval), stores each block in redb
//! before applying it for good, and followers replay and verify every block. Restarting either
//! replays the stored blocks and resumes exactly at the last committed one.

mod block;
mod local;
mod remote;
pub mod tx;

pub use block::{Block, BlockHeader, Head, tx_root};
pub(crate) use local::Pacer;
pub use local::{ChainConfig, LocalChain};
pub use remote::{ChainFollower, FollowStatus, LedgerService, RemoteLedger};

use async_trait::async_trait;
use memo_core::contract::{
    Answer, BlockError, GenesisError, Height, Outcome, Query, Rejection, SignedTx,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often [`Ledger::await_txs`]'s default asks again when no block arrives.
pub const STATUS_POLL: Duration = Duration::from_millis(50);

/// What became of a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxStatus {
    /// Waiting for the next block.
    Pending,
    /// In block `height` at `index`, with this outcome.
    Included {
        /// The block.
        height: Height,
        /// Position in the block.
        index: usize,
        /// What it did.
        outcome: Outcome,
    },
    /// Rejected; it changed nothing.
    Rejected(Rejection),
    /// Not known (never submitted, or forgotten).
    Unknown,
}

impl TxStatus {
    /// Whether this is final: included or rejected.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Included { .. } | Self::Rejected(_))
    }
}

/// Why a ledger operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The block store failed.
    #[error("block store: {0}")]
    Storage(String),
    /// A stored block does not verify: the store is corrupt or was tampered with.
    #[error("stored block {height} does not verify: {reason}")]
    Corrupt {
        /// The height.
        height: Height,
        /// Why.
        reason: Box<LedgerError>,
    },
    /// The store belongs to another genesis.
    #[error("the block store was created for another genesis")]
    GenesisMismatch,
    /// The genesis is invalid.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// This node does not sequence: it cannot take transactions or produce blocks.
    #[error("this node is a follower; submit to the sequencer")]
    NotSequencer,
    /// Too many transactions wait.
    #[error("too many pending transactions")]
    MempoolFull,
    /// The transaction is too large.
    #[error("transaction of {0} bytes is too large")]
    TooLarge(usize),
    /// A block is for another chain.
    #[error("block for chain {0}")]
    WrongChain(u64),
    /// A block was not produced by the chain's sequencer.
    #[error("block not produced by the sequencer")]
    WrongSequencer,
    /// A block is not the next one.
    #[error("expected block {expected}, got {got}")]
    WrongHeight {
        /// The next height.
        expected: Height,
        /// The height given.
        got: Height,
    },
    /// A block's parent hash is not the head's hash.
    #[error("block does not extend the head")]
    BadParent,
    /// A block's time is before its parent's.
    #[error("block time goes backwards")]
    TimeWentBack,
    /// The sequencer's signature does not verify.
    #[error("bad sequencer signature")]
    BadSignature,
    /// The transaction list does not match the header's transaction root.
    #[error("transaction root mismatch")]
    BadTxRoot,
    /// A block does not decode.
    #[error("malformed block: {0}")]
    Malformed(String),
    /// Applying the block failed (an invalid transaction, a state-root mismatch...).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The ledger node could not be reached or answered garbage (retry later).
    #[error("ledger node unreachable: {0}")]
    Unreachable(String),
    /// The remote ledger node refused or failed the request.
    #[error("ledger node refused: {0}")]
    Remote(memo_core::protocol::RemoteError),
}

/// A ledger: submit transactions, read state, follow blocks.
///
/// Reads need no identity. State-changing calls travel as signed transactions.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Queues a transaction for the next block; returns its hash (see [`Ledger::tx_status`]).
    async fn submit(&self, tx: SignedTx) -> Result<[u8; 32], LedgerError>;
    /// Queues transactions in this order (one sender's consecutive nonces, say); returns
    /// their hashes. On an error, the ones before the failing one may be queued. The default
    /// submits one after another; a remote ledger sends them in one round trip.
    async fn submit_all(&self, txs: Vec<SignedTx>) -> Result<Vec<[u8; 32]>, LedgerError> {
        let mut hashes = Vec::with_capacity(txs.len());
        for tx in txs {
            hashes.push(self.submit(tx).await?);
        }
        Ok(hashes)
    }
    /// What became of a submitted transaction.
    async fn tx_status(&self, hash: [u8; 32]) -> Result<TxStatus, LedgerError>;
    /// What became of submitted transactions, once every one is included or rejected or
    /// `within` has passed, whichever comes first; in order. The default asks
    /// [`Ledger::tx_status`] at each new block and every [`STATUS_POLL`]; backends that see
    /// their blocks answer at once.
    async fn await_txs(
        &self,
        hashes: &[[u8; 32]],
        within: Duration,
    ) -> Result<Vec<TxStatus>, LedgerError> {
        let mut blocks = self.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut statuses = Vec::with_capacity(hashes.len());
            for h in hashes {
                statuses.push(self.tx_status(*h).await?);
            }
            if statuses.iter().all(TxStatus::is_final) || tokio::time::Instant::now() >= deadline {
                return Ok(statuses);
            }
            let poll = deadline.min(tokio::time::Instant::now() + STATUS_POLL);
            tokio::select! {
                r = blocks.recv() => if let Err(broadcast::error::RecvError::Closed) = r {
                    tokio::time::sleep_until(poll).await;
                },
                _ = tokio::time::sleep_until(poll) => {}
            }
        }
    }
    /// Reads the state after the head block.
    async fn query(&self, query: Query) -> Result<Answer, LedgerError>;
    /// The head block: height, epoch, hash and state root.
    async fn head(&self) -> Result<Head, LedgerError>;
    /// A committed block by height.
    async fn block(&self, height: Height) -> Result<Option<Block>, LedgerError>;
    /// New blocks as they are committed.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Block>>;
}

#[cfg(test)]
mod tests;

//! The ordered log of signed object operations that keepers share.
//!
//! Every keeper applies the same operations in the same order, so all keepers hold the same
//! ownership metadata; a keeper that restarts replays the log. [`MemoryOpLog`] serves keepers in
//! one process (tests, `memo demo`). Between processes, one keeper sequences: its
//! [`DurableOpLog`] (redb, fsync'd before an append returns) is served by an [`OpLogService`],
//! and the other keepers follow it through a [`RemoteOpLog`] (optionally with a durable local
//! replica, so a restarting follower replays locally before it asks the sequencer).

mod durable;
mod raft;
mod remote;
mod service;

pub use durable::DurableOpLog;
pub use raft::{
    GroupChain, GroupConfig, GroupLedger, GroupStatus, RAFT_FILE, RaftOpLog, RaftService,
    group_status,
};
pub use remote::{RemoteOpLog, RemoteOpLogConfig, SyncStatus};
pub use service::{MAX_READ_BYTES, MAX_WAIT, OpLogService, client};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use memo_core::objects::SignedOp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How long an operation signed here stays valid by default (well under
/// [`memo_core::objects::MAX_OP_VALIDITY_MS`]).
pub const OP_VALIDITY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// `op` with a fresh random nonce from `env`, valid for `validity` from `env`'s wall clock
/// (at most [`memo_core::objects::MAX_OP_VALIDITY_MS`]).
pub fn stamp(
    env: &crate::Env,
    op: memo_core::objects::ObjectOp,
    validity: std::time::Duration,
) -> memo_core::objects::OpEnvelope {
    let validity = u64::try_from(validity.as_millis())
        .unwrap_or(u64::MAX)
        .min(memo_core::objects::MAX_OP_VALIDITY_MS);
    memo_core::objects::OpEnvelope::new(op, env.next_u64(), env.unix_ms().saturating_add(validity))
}

/// One operation at its position in the log.
pub type LogEntry = (u64, SignedOp);

/// An ordered, shared log of signed object operations.
#[async_trait]
pub trait OpLog: Send + Sync + 'static {
    /// Appends `op` (already verified by the caller); returns its position once ordered.
    ///
    /// Errors: [`OpLogError::Storage`] or [`OpLogError::TooLarge`] when the log cannot store it,
    /// [`OpLogError::Forward`] when the keeper that orders the log did not take it,
    /// [`OpLogError::Closed`] when the log is shutting down. Nothing was appended.
    async fn append(&self, op: SignedOp) -> Result<u64, OpLogError>;
    /// Every entry from position `from` on, in order, then new ones as they come. Never skips.
    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry>;
    /// The number of entries known here, if the log can tell cheaply.
    fn known_len(&self) -> Option<u64> {
        None
    }
    /// A length that every operation acknowledged before this call is within, if the log
    /// can tell: a replicated log confirms it with its group (a read index), so a reader that
    /// waits until it applied this many entries reads its own and others' acknowledged
    /// writes. Fails when the group cannot confirm it (no quorum).
    async fn sync_len(&self) -> Result<Option<u64>, OpLogError> {
        Ok(self.known_len())
    }
}

/// Why a log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpLogError {
    /// The log's store failed (I/O, disk full...); nothing was appended.
    #[error("op log store: {0}")]
    Storage(String),
    /// A stored record does not decode: the store is corrupt or was tampered with.
    #[error("op log record {position} is corrupt: {reason}")]
    Corrupt {
        /// The record's position.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store was written by a newer format.
    #[error("op log format {found} is not supported (this build reads {supported})")]
    Format {
        /// The format found.
        found: u64,
        /// The format this build reads.
        supported: u64,
    },
    /// Entries were offered at a position other than the log's end.
    #[error("entries offered at position {got}, the log ends at {expected}")]
    Gap {
        /// The log's length.
        expected: u64,
        /// The position offered.
        got: u64,
    },
    /// An operation is too large to store.
    #[error("operation of {0} bytes is too large")]
    TooLarge(usize),
    /// An operation's signature does not verify.
    #[error("operation at position {position} is not validly signed")]
    BadSignature {
        /// Its position.
        position: u64,
    },
    /// The log's writer stopped.
    #[error("op log is closed")]
    Closed,
    /// The keeper that orders the log did not take a forwarded operation (unreachable, or it
    /// refused).
    #[error("sequencer: {0}")]
    Forward(String),
}

/// A log that can take entries at known positions: the local replica of a follower.
#[async_trait]
pub(crate) trait Replica: OpLog {
    /// Entries stored.
    fn len(&self) -> u64;
    /// Stores `ops` (already verified) at positions `from`, `from + 1`, ...; `from` must be
    /// [`Replica::len`].
    async fn extend(&self, from: u64, ops: Vec<SignedOp>) -> Result<(), OpLogError>;
}

/// An in-process [`OpLog`].
#[derive(Clone)]
pub struct MemoryOpLog {
    entries: Arc<Mutex<Vec<SignedOp>>>,
    len: watch::Sender<u64>,
}

impl Default for MemoryOpLog {
    fn default() -> Self {
        Self {
            entries: Arc::default(),
            len: watch::channel(0).0,
        }
    }
}

impl MemoryOpLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the log.
    pub fn len(&self) -> u64 {
        *self.len.borrow()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Replica for MemoryOpLog {
    fn len(&self) -> u64 {
        MemoryOpLog::len(self)
    }

    async fn extend(&self, from: u64, ops: Vec<SignedOp>) -> Result<(), OpLogError> {
        let mut log = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let expected = log.len() as u64;
        if from != expected {
            return Err(OpLogError::Gap {
                expected,
                got: from,
            });
        }
        log.extend(ops);
        self.len.send_replace(log.len() as u64);
        Ok(())
    }
}

#[async_trait]
impl OpLog for MemoryOpLog {
    async fn append(&self, op: SignedOp) -> Result<u64, OpLogError> {
        let mut log = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let pos = log.len() as u64;
        log.push(op);
        self.len.send_replace(pos + 1);
        Ok(pos)
    }

    fn known_len(&self) -> Option<u64> {
        Some(self.len())
    }

    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry> {
        let entries = self.entries.clone();
        let rx = self.len.subscribe();
        futures::stream::unfold(
            (from, rx, VecDeque::new()),
            move |(mut next, mut rx, mut buf)| {
                let entries = entries.clone();
                async move {
                    loop {
                        if let Some(e) = buf.pop_front() {
                            return Some((e, (next, rx, buf)));
                        }
                        {
                            let log = entries.lock().unwrap_or_else(|p| p.into_inner());
                            for (i, op) in log.iter().enumerate().skip(next as usize) {
                                buf.push_back((i as u64, op.clone()));
                            }
                            next = log.len() as u64;
                        }
                        if buf.is_empty() && rx.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            },
        )
        .boxed()
    }
}

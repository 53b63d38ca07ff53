//! The ordered log of signed object operations that keepers share.
//!
//! Every keeper applies the same operations in the same order, so all keepers hold the same
//! ownership metadata; a keeper that restarts replays the log. [`MemoryOpLog`] serves keepers in
//! one process (tests, `memo demo`); the ledger carries the log between processes.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use memo_core::Signed;
use memo_core::objects::ObjectOp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One operation at its position in the log.
pub type LogEntry = (u64, Signed<ObjectOp>);

/// An ordered, shared log of signed object operations.
#[async_trait]
pub trait OpLog: Send + Sync + 'static {
    /// Appends `op` (already verified by the caller); returns its position once ordered.
    async fn append(&self, op: Signed<ObjectOp>) -> Result<u64, String>;
    /// Every entry from position `from` on, in order, then new ones as they come. Never skips.
    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry>;
}

/// An in-process [`OpLog`].
#[derive(Clone)]
pub struct MemoryOpLog {
    entries: Arc<Mutex<Vec<Signed<ObjectOp>>>>,
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
}

#[async_trait]
impl OpLog for MemoryOpLog {
    async fn append(&self, op: Signed<ObjectOp>) -> Result<u64, String> {
        let mut log = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let pos = log.len() as u64;
        log.push(op);
        self.len.send_replace(pos + 1);
        Ok(pos)
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

//! A follower's view of the sequencer's op log, over any transport.

use super::durable::MAX_ENTRY_BYTES;
use super::service::client;
use super::{LogEntry, MemoryOpLog, OpLog, OpLogError, Replica};
use async_trait::async_trait;
use futures::stream::BoxStream;
use memo_core::objects::SignedOp;
use memo_core::transport::Transport;
use memo_core::{AccountId, wire};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::DurableOpLog;

/// How a [`RemoteOpLog`] pulls.
#[derive(Debug, Clone)]
pub struct RemoteOpLogConfig {
    /// Most entries asked for per read.
    pub batch: u32,
    /// How long the sequencer may hold a read at its log's end (the long poll).
    pub wait: Duration,
    /// First pause after a failed read; doubled after each further failure.
    pub min_backoff: Duration,
    /// Longest pause between retries.
    pub max_backoff: Duration,
}

impl Default for RemoteOpLogConfig {
    fn default() -> Self {
        Self {
            batch: 1024,
            wait: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// How far a [`RemoteOpLog`] has replicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Entries held locally (and available to [`OpLog::follow`]).
    pub replicated: u64,
    /// The sequencer's length as last reported.
    pub sequencer_len: u64,
    /// The last failure (cleared by the next success): unreachable sequencer, a bad entry...
    pub last_error: Option<String>,
}

/// A follower keeper's op log: appends go to the sequencer; entries are pulled from it in
/// order, checked (decoding, position, user signature), stored in a local replica, and
/// followed from there.
///
/// One background task pulls with long polls (see
/// [`OpLogService`](super::OpLogService)); after a failure it retries with exponential
/// backoff and never skips a position. A bad entry from the sequencer (a forged signature, a
/// wrong position) is never stored: the follower stops there and reports it in
/// [`RemoteOpLog::status`] until the sequencer serves a valid entry.
///
/// With a [`DurableOpLog`] as replica, a restarting follower replays its own copy first and
/// asks the sequencer only for what it lacks. Dropping the `RemoteOpLog` stops the task.
pub struct RemoteOpLog {
    transport: Arc<dyn Transport>,
    sequencer: AccountId,
    replica: Arc<dyn Replica>,
    status: watch::Receiver<SyncStatus>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RemoteOpLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOpLog")
            .field("sequencer", &self.sequencer)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl RemoteOpLog {
    /// Follows `sequencer`'s log over `transport`, keeping the replica in memory.
    pub fn start(transport: Arc<dyn Transport>, sequencer: AccountId) -> Self {
        Self::start_with(transport, sequencer, None, RemoteOpLogConfig::default())
    }

    /// Follows `sequencer`'s log over `transport`, keeping the replica in `cache` (resumed
    /// from its length) if given, else in memory.
    pub fn start_with(
        transport: Arc<dyn Transport>,
        sequencer: AccountId,
        cache: Option<DurableOpLog>,
        config: RemoteOpLogConfig,
    ) -> Self {
        let replica: Arc<dyn Replica> = match cache {
            Some(d) => Arc::new(d),
            None => Arc::new(MemoryOpLog::new()),
        };
        let (tx, status) = watch::channel(SyncStatus {
            replicated: replica.len(),
            ..SyncStatus::default()
        });
        let task = tokio::spawn(pull(
            transport.clone(),
            sequencer,
            replica.clone(),
            config,
            tx,
        ));
        Self {
            transport,
            sequencer,
            replica,
            status,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Stops pulling and waits until the puller is gone (it then holds no reference to the
    /// replica). Following still serves what was replicated.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// The sequencer followed.
    pub fn sequencer(&self) -> AccountId {
        self.sequencer
    }

    /// Replication progress, updated as it changes (e.g. wait with `wait_for`).
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// Waits until at least `len` entries are held locally.
    pub async fn wait_replicated(&self, len: u64) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|s| s.replicated >= len).await;
    }
}

impl Drop for RemoteOpLog {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

#[async_trait]
impl OpLog for RemoteOpLog {
    /// Forwards `op` to the sequencer; returns the position it got there.
    async fn append(&self, op: SignedOp) -> Result<u64, OpLogError> {
        client::append(self.transport.as_ref(), self.sequencer, &op)
            .await
            .map_err(|e| OpLogError::Forward(e.to_string()))
    }

    fn follow(&self, from: u64) -> BoxStream<'static, LogEntry> {
        self.replica.follow(from)
    }

    fn known_len(&self) -> Option<u64> {
        Some(self.replica.len())
    }
}

/// Decodes and checks a batch that claims to start at `from`.
fn check_batch(from: u64, entries: &[Vec<u8>]) -> Result<Vec<SignedOp>, OpLogError> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, raw) in entries.iter().enumerate() {
        let position = from + i as u64;
        let op: SignedOp = wire::decode(raw, MAX_ENTRY_BYTES, "op log entry").map_err(|e| {
            OpLogError::Corrupt {
                position,
                reason: e.to_string(),
            }
        })?;
        op.verify()
            .map_err(|_| OpLogError::BadSignature { position })?;
        out.push(op);
    }
    Ok(out)
}

async fn pull(
    transport: Arc<dyn Transport>,
    sequencer: AccountId,
    replica: Arc<dyn Replica>,
    config: RemoteOpLogConfig,
    status: watch::Sender<SyncStatus>,
) {
    let mut backoff = config.min_backoff;
    loop {
        let next = replica.len();
        let outcome = match client::read(
            transport.as_ref(),
            sequencer,
            next,
            config.batch,
            config.wait,
        )
        .await
        {
            Err(e) => Err(format!("reading from the sequencer: {e}")),
            Ok(b) if b.from != next => Err(format!(
                "the sequencer answered from position {} to a read from {next}",
                b.from
            )),
            Ok(b) => match check_batch(next, &b.entries) {
                Err(e) => Err(format!("the sequencer sent a bad entry: {e}")),
                Ok(ops) => {
                    let n = ops.len() as u64;
                    match replica.extend(next, ops).await {
                        Ok(()) => Ok((n, b.len)),
                        Err(e) => Err(format!("storing replicated entries: {e}")),
                    }
                }
            },
        };
        match outcome {
            Ok((n, sequencer_len)) => {
                backoff = config.min_backoff;
                status.send_replace(SyncStatus {
                    replicated: next + n,
                    sequencer_len,
                    last_error: None,
                });
                if n > 0 {
                    debug!(from = next, n, "replicated op log entries");
                } else {
                    // An empty answer ends a long poll; pause briefly so that a sequencer
                    // that does not hold reads cannot make this loop spin.
                    tokio::time::sleep(config.min_backoff).await;
                }
            }
            Err(e) => {
                warn!(sequencer = %sequencer.label(), "op log sync: {e}");
                status.send_modify(|s| s.last_error = Some(e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

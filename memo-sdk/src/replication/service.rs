//! Serving an op log to other nodes, and the client side of that protocol.

use super::durable::MAX_ENTRY_BYTES;
use super::{LogEntry, OpLog};
use crate::node::Service;
use futures::{FutureExt, StreamExt};
use memo_core::objects::SignedOp;
use memo_core::protocol::{ErrorCode, MAX_ENTRIES_PER_READ, Request, Response};
use memo_core::{AccountId, wire};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest a read request is held waiting for a first entry (the long poll), whatever the
/// caller asks. Well under the transports' request timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Most bytes of entries in one read response (at least one entry is always sent).
pub const MAX_READ_BYTES: usize = 8 << 20;

/// Serves a log to the keeper group: [`Request::OpAppend`] and [`Request::OpRead`].
///
/// Only members (the keepers) may append or read: users submit operations through a keeper,
/// which checks them before they enter the log, and read their own objects through it. An
/// append must still carry a valid signature.
///
/// Reads are long polls: a read at the log's end is held until an entry arrives or the
/// caller's wait (at most [`MAX_WAIT`]) passes, so followers learn of a new entry at once
/// without polling in a loop. A response carries at most [`MAX_ENTRIES_PER_READ`] entries and
/// [`MAX_READ_BYTES`] bytes.
pub struct OpLogService {
    log: Arc<dyn OpLog>,
    members: RwLock<BTreeSet<AccountId>>,
}

impl OpLogService {
    /// Serves `log` to `members`.
    pub fn new(log: Arc<dyn OpLog>, members: impl IntoIterator<Item = AccountId>) -> Arc<Self> {
        Arc::new(Self {
            log,
            members: RwLock::new(members.into_iter().collect()),
        })
    }

    /// Admits one more member (a keeper that joined).
    pub fn admit(&self, who: AccountId) {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(who);
    }

    fn is_member(&self, who: &AccountId) -> bool {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(who)
    }

    async fn append(&self, from: AccountId, op: &[u8]) -> Response {
        if !self.is_member(&from) {
            return Response::error(ErrorCode::Forbidden, "only keepers append to this log");
        }
        let signed: SignedOp = match wire::decode(op, MAX_ENTRY_BYTES, "operation") {
            Ok(s) => s,
            Err(e) => return Response::error(ErrorCode::BadRequest, e.to_string()),
        };
        if let Err(e) = signed.verify() {
            return Response::error(ErrorCode::Forbidden, e.to_string());
        }
        match self.log.append(signed).await {
            Ok(pos) => Response::OpAppended(pos),
            Err(e) => Response::error(ErrorCode::Unavailable, format!("log refused: {e}")),
        }
    }

    async fn read(&self, from: u64, max: u32, wait_ms: u32) -> Response {
        let max = max.clamp(1, MAX_ENTRIES_PER_READ) as usize;
        let wait = Duration::from_millis(wait_ms.into()).min(MAX_WAIT);
        let mut stream = self.log.follow(from);
        let first = match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(e)) => e,
            Ok(None) => return Response::error(ErrorCode::Internal, "the log cannot be read"),
            Err(_) => {
                return Response::OpEntries {
                    from,
                    entries: Vec::new(),
                    len: self.log.known_len().unwrap_or(from),
                };
            }
        };
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut next: Option<LogEntry> = Some(first);
        while let Some((pos, op)) = next.take() {
            if pos != from + entries.len() as u64 {
                return Response::error(ErrorCode::Internal, "the log skipped a position");
            }
            let raw = wire::encode(&op);
            if !entries.is_empty() && bytes + raw.len() > MAX_READ_BYTES {
                break;
            }
            bytes += raw.len();
            entries.push(raw);
            if entries.len() >= max {
                break;
            }
            next = stream.next().now_or_never().flatten();
        }
        let len = self
            .log
            .known_len()
            .unwrap_or(0)
            .max(from + entries.len() as u64);
        Response::OpEntries { from, entries, len }
    }
}

#[async_trait::async_trait]
impl Service for OpLogService {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::OpAppend { op } => Some(self.append(from, op).await),
            Request::OpRead { .. } if !self.is_member(&from) => Some(Response::error(
                ErrorCode::Forbidden,
                "only keepers read this log; list your objects through a keeper",
            )),
            Request::OpRead {
                from: pos,
                max,
                wait_ms,
            } => Some(self.read(*pos, *max, *wait_ms).await),
            _ => None,
        }
    }
}

/// Client side of the op-log protocol.
pub mod client {
    use super::*;
    use crate::transport::rpc::{RpcError, call, unexpected};
    use memo_core::transport::Transport;

    /// Asks the log at `peer` to append `op`; returns its position.
    pub async fn append(
        t: &dyn Transport,
        peer: AccountId,
        op: &SignedOp,
    ) -> Result<u64, RpcError> {
        match call(
            t,
            peer,
            &Request::OpAppend {
                op: wire::encode(op),
            },
        )
        .await?
        {
            Response::OpAppended(pos) => Ok(pos),
            other => Err(unexpected(peer, "OpAppend", &other)),
        }
    }

    /// A batch of entries read from `peer`'s log.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadBatch {
        /// Position of the first entry.
        pub from: u64,
        /// The entries, still encoded (decode them bounded, verify them).
        pub entries: Vec<Vec<u8>>,
        /// The peer's log length.
        pub len: u64,
    }

    /// Reads up to `max` entries from position `from` of `peer`'s log, waiting up to `wait`
    /// for the first one.
    pub async fn read(
        t: &dyn Transport,
        peer: AccountId,
        from: u64,
        max: u32,
        wait: Duration,
    ) -> Result<ReadBatch, RpcError> {
        let req = Request::OpRead {
            from,
            max: max.min(MAX_ENTRIES_PER_READ),
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        match call(t, peer, &req).await? {
            Response::OpEntries { from, entries, len } => Ok(ReadBatch { from, entries, len }),
            other => Err(unexpected(peer, "OpRead", &other)),
        }
    }
}

//! Raft messages over memo's authenticated transport: the engine's network on the sending
//! side, [`RaftService`] on the receiving side.

use super::{GroupStatus, TypeConfig, account_of, node_id};
use crate::node::Service;
use crate::replication::DurableOpLog;
use crate::transport::rpc::{RpcError, call, unexpected};
use memo_core::protocol::{ErrorCode, Request, Response};
use memo_core::transport::{MAX_MESSAGE, Transport};
use memo_core::{AccountId, wire};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::warn;

type NodeId = u64;

/// A message to a member.
#[derive(Serialize, Deserialize)]
enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// The leader's read index (see [`super::RaftOpLog`]'s `sync_len`).
    ReadIndex,
}

/// A member's answer.
#[derive(Serialize, Deserialize)]
enum RaftReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    ReadIndex(Result<u64, String>),
}

/// Room left in a message for the framing around a batch of entries.
const MESSAGE_MARGIN: usize = 64 << 10;

/// The longest wait before retrying an unreachable member.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a message to a member failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answer does not decode: {0}")]
    Decode(String),
    #[error("node {0} has no account address")]
    NoAddress(NodeId),
}

async fn send(
    t: &dyn Transport,
    to: AccountId,
    msg: &RaftRpc,
    ttl: Duration,
) -> Result<RaftReply, SendError> {
    let req = Request::Raft {
        rpc: wire::encode(msg),
    };
    let resp = tokio::time::timeout(ttl, call(t, to, &req))
        .await
        .map_err(|_| SendError::Timeout(ttl))??;
    match resp {
        Response::Raft(bytes) => wire::decode(&bytes, MAX_MESSAGE, "raft reply")
            .map_err(|e| SendError::Decode(e.to_string())),
        other => Err(SendError::Rpc(unexpected(to, "Raft", &other))),
    }
}

/// Asks `leader` for its read index.
pub(super) async fn read_index(t: &dyn Transport, leader: AccountId) -> Result<u64, RpcError> {
    let reply = send(t, leader, &RaftRpc::ReadIndex, Duration::from_secs(5))
        .await
        .map_err(|e| match e {
            SendError::Rpc(e) => e,
            other => RpcError::Remote {
                peer: leader,
                error: memo_core::protocol::RemoteError::new(
                    ErrorCode::Unavailable,
                    other.to_string(),
                ),
            },
        })?;
    match reply {
        RaftReply::ReadIndex(Ok(i)) => Ok(i),
        RaftReply::ReadIndex(Err(e)) => Err(RpcError::Remote {
            peer: leader,
            error: memo_core::protocol::RemoteError::new(ErrorCode::Unavailable, e),
        }),
        _ => Err(RpcError::Unexpected {
            peer: leader,
            asked: "ReadIndex",
            got: "another raft reply".into(),
        }),
    }
}

/// The engine's network: one [`Peer`] per member it talks to.
pub(super) struct Network {
    transport: Arc<dyn Transport>,
}

impl Network {
    pub(super) fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            transport: self.transport.clone(),
            target,
            to: account_of(node),
        }
    }
}

/// A connection to one member.
pub(super) struct Peer {
    transport: Arc<dyn Transport>,
    target: NodeId,
    to: Option<AccountId>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl Peer {
    async fn send<E: std::error::Error>(
        &self,
        msg: &RaftRpc,
        option: &RPCOption,
    ) -> Result<RaftReply, RpcErr<E>> {
        let to = self.to.ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&SendError::NoAddress(self.target)))
        })?;
        send(self.transport.as_ref(), to, msg, option.hard_ttl())
            .await
            .map_err(|e| match e {
                SendError::Decode(_) => RPCError::Network(NetworkError::new(&e)),
                _ => RPCError::Unreachable(Unreachable::new(&e)),
            })
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcErr<E> {
        RPCError::Network(NetworkError::new(&SendError::Decode(
            "a reply of another kind".into(),
        )))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    /// After a failed message the leader waits before trying a member again: 250 ms, doubling
    /// up to 5 s while it stays unreachable (openraft's default is a constant 500 ms, which
    /// logs several lines a second for every member that is down).
    fn backoff(&self) -> openraft::network::Backoff {
        let waits = (0..).map(|i: u32| Duration::from_millis(250 << i.min(5)).min(MAX_BACKOFF));
        openraft::network::Backoff::new(waits)
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let n = rpc.entries.len() as u64;
        let msg = RaftRpc::Append(rpc);
        if n > 1 && wire::encode(&msg).len() > MAX_MESSAGE - MESSAGE_MARGIN {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(n / 2),
            ));
        }
        match self.send(&msg, &option).await? {
            RaftReply::Append(Ok(r)) => Ok(r),
            RaftReply::Append(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self.send(&RaftRpc::Snapshot(rpc), &option).await? {
            RaftReply::Snapshot(Ok(r)) => Ok(r),
            RaftReply::Snapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.send(&RaftRpc::Vote(rpc), &option).await? {
            RaftReply::Vote(Ok(r)) => Ok(r),
            RaftReply::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected()),
        }
    }
}

/// Asks `keeper` how it sees its group.
pub async fn group_status(t: &dyn Transport, keeper: AccountId) -> Result<GroupStatus, RpcError> {
    match call(t, keeper, &Request::GroupStatus).await? {
        Response::Group(g) => Ok(g),
        other => Err(unexpected(keeper, "GroupStatus", &other)),
    }
}

/// Answers [`Request::Raft`] for a keeper's Raft node.
///
/// Only members are heard: the group's current members, and the founding keepers this one
/// was configured with (so that a keeper joining the group hears the leader before its first
/// membership entry arrives). A member may speak only for itself: a vote, an append or a
/// snapshot whose vote names another node is refused as forged. Every refusal is a typed
/// error and a warning in the log; the node is not disturbed.
pub struct RaftService {
    raft: Raft<TypeConfig>,
    log: DurableOpLog,
    seeds: RwLock<BTreeSet<AccountId>>,
}

impl RaftService {
    pub(super) fn new(
        raft: Raft<TypeConfig>,
        log: DurableOpLog,
        seeds: impl IntoIterator<Item = AccountId>,
    ) -> Arc<Self> {
        Arc::new(Self {
            raft,
            log,
            seeds: RwLock::new(seeds.into_iter().collect()),
        })
    }

    fn is_member(&self, who: &AccountId) -> bool {
        if self
            .seeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(who)
        {
            return true;
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&node_id(who))
            .and_then(account_of)
            .is_some_and(|a| a == *who)
    }

    async fn answer(&self, from: AccountId, rpc: &[u8]) -> Response {
        if !self.is_member(&from) {
            warn!(peer = %from.label(), "refused a raft message from a non-member");
            return Response::error(ErrorCode::Forbidden, "not a member of the keeper group");
        }
        let msg: RaftRpc = match wire::decode(rpc, MAX_MESSAGE, "raft message") {
            Ok(m) => m,
            Err(e) => {
                warn!(peer = %from.label(), "malformed raft message: {e}");
                return Response::error(ErrorCode::BadRequest, e.to_string());
            }
        };
        let speaker = match &msg {
            RaftRpc::Append(r) => r.vote.leader_id().voted_for(),
            RaftRpc::Vote(r) => r.vote.leader_id().voted_for(),
            RaftRpc::Snapshot(r) => r.vote.leader_id().voted_for(),
            RaftRpc::ReadIndex => Some(node_id(&from)),
        };
        if speaker != Some(node_id(&from)) {
            warn!(peer = %from.label(), "refused a forged raft message (it speaks for another node)");
            return Response::error(
                ErrorCode::Forbidden,
                "forged raft message: a member may only speak for itself",
            );
        }
        let reply = match msg {
            RaftRpc::Append(r) => RaftReply::Append(self.raft.append_entries(r).await),
            RaftRpc::Vote(r) => RaftReply::Vote(self.raft.vote(r).await),
            RaftRpc::Snapshot(r) => RaftReply::Snapshot(self.raft.install_snapshot(r).await),
            RaftRpc::ReadIndex => RaftReply::ReadIndex(
                self.raft
                    .ensure_linearizable()
                    .await
                    .map(|l| l.map(|l| l.index).unwrap_or(0))
                    .map_err(|e| e.to_string()),
            ),
        };
        Response::Raft(wire::encode(&reply))
    }
}

#[async_trait::async_trait]
impl Service for RaftService {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::Raft { rpc } => Some(self.answer(from, rpc).await),
            // Anyone may ask how the group stands (its members' accounts are public).
            Request::GroupStatus => Some(Response::Group(super::status_of(
                &self.raft,
                self.log.len(),
            ))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{GroupConfig, RaftOpLog};
    use memo_core::Keypair;
    use memo_core::transport::MemoryNetwork;
    use openraft::{LogId, Vote};

    /// A group of one keeper on a memory network, and its Raft service.
    async fn group_of_one(dir: &std::path::Path) -> (Arc<RaftOpLog>, Arc<RaftService>) {
        let net = MemoryNetwork::new();
        let me = Keypair::from_seed("raft-service-keeper").account();
        let log = RaftOpLog::open(
            me,
            Arc::new(net.join(me)),
            dir,
            &[me],
            GroupConfig::default(),
        )
        .await
        .unwrap();
        assert!(log.wait_leader(Duration::from_secs(10)).await.is_some());
        let service = log.service();
        (log, service)
    }

    fn vote_from(candidate: &AccountId, term: u64) -> Vec<u8> {
        wire::encode(&RaftRpc::Vote(VoteRequest::new(
            Vote::new(term, node_id(candidate)),
            Some(LogId::new(
                openraft::CommittedLeaderId::new(term, node_id(candidate)),
                100,
            )),
        )))
    }

    async fn code(service: &RaftService, from: AccountId, rpc: Vec<u8>) -> Option<ErrorCode> {
        match service.handle(from, &Request::Raft { rpc }).await {
            Some(Response::Error(e)) => Some(e.code),
            Some(Response::Raft(_)) => None,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strangers_forgers_and_garbage_are_refused_and_the_group_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (log, service) = group_of_one(dir.path()).await;
        let me = Keypair::from_seed("raft-service-keeper").account();
        let stranger = Keypair::from_seed("stranger").account();
        let before = log.status();
        // A non-member asking for votes at a higher term would depose the leader if heard.
        assert_eq!(
            code(&service, stranger, vote_from(&stranger, before.term + 5)).await,
            Some(ErrorCode::Forbidden)
        );
        // A member (here the keeper itself) speaking for another node: forged.
        assert_eq!(
            code(&service, me, vote_from(&stranger, before.term + 5)).await,
            Some(ErrorCode::Forbidden)
        );
        // Bytes that are no Raft message.
        assert_eq!(
            code(&service, me, b"not a raft message".to_vec()).await,
            Some(ErrorCode::BadRequest)
        );
        // Anyone may ask for the status; the leader is still the leader, in the same term.
        match service.handle(stranger, &Request::GroupStatus).await {
            Some(Response::Group(g)) => {
                assert_eq!((g.role.as_str(), g.term), ("leader", before.term));
            }
            other => panic!("{other:?}"),
        }
        crate::replication::OpLog::append(log.as_ref(), crate::testkit::numbered_op(0))
            .await
            .unwrap();
        log.shutdown().await;
    }

    /// A Raft log record damaged on disk: the keeper does not start, with a typed error that
    /// names the record, and its applied operations are untouched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_raft_log_record_is_a_typed_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _service) = group_of_one(dir.path()).await;
        for i in 0..3 {
            crate::replication::OpLog::append(log.as_ref(), crate::testkit::numbered_op(i))
                .await
                .unwrap();
        }
        let last = log.status().last_log_index.unwrap();
        log.shutdown().await;
        drop(log);
        drop(_service);
        {
            let db = redb::Database::create(dir.path().join(super::super::RAFT_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            {
                let table: redb::TableDefinition<u64, &[u8]> =
                    redb::TableDefinition::new("raft_log");
                let mut t = w.open_table(table).unwrap();
                t.insert(last, b"garbage".as_slice()).unwrap();
            }
            w.commit().unwrap();
        }
        let net = MemoryNetwork::new();
        let me = Keypair::from_seed("raft-service-keeper").account();
        let reopened = RaftOpLog::open(
            me,
            Arc::new(net.join(me)),
            dir.path(),
            &[me],
            GroupConfig::default(),
        )
        .await;
        match reopened {
            Err(crate::replication::OpLogError::Storage(m)) => {
                assert!(m.contains("corrupt"), "{m}");
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("a keeper started from a corrupt Raft log"),
        }
        let ops = crate::replication::DurableOpLog::open(&dir.path().join("oplog.redb")).unwrap();
        assert_eq!(ops.len(), 3);
    }
}

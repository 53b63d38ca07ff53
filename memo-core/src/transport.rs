//! The network as memo sees it: authenticated request/response between accounts.
//!
//! A [`Transport`] carries opaque, size-bounded byte messages between nodes named by their
//! [`AccountId`]. Whoever implements it guarantees that `Incoming::from` is the authenticated
//! sender (the libp2p transport gets this from Noise, whose peer id is the account's ed25519
//! key), so services can authorize a request by its sender. Message framing, versioning and
//! meaning live above it, in [`crate::wire`] and the services.
//!
//! [`MemoryNetwork`] connects any number of in-process nodes with no sockets and no clock; it is
//! runtime-agnostic (futures channels), so simulations can drive it from a deterministic
//! executor.

use crate::id::AccountId;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::lock::Mutex as AsyncMutex;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The largest message any transport carries (a shard of the largest chunk, with framing).
pub const MAX_MESSAGE: usize = 40 * 1024 * 1024;

/// Why a request did not get a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No route to the peer: unknown address, refused connection, or the peer is gone.
    #[error("peer {0:?} is unreachable")]
    Unreachable(AccountId),
    /// The peer did not answer in time.
    #[error("peer {0:?} did not answer in time")]
    Timeout(AccountId),
    /// The message exceeds [`MAX_MESSAGE`]; it was not sent (or was dropped unread).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Message size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer speaks a protocol version this node does not.
    #[error("peer {peer:?} speaks an incompatible protocol: {detail}")]
    Protocol {
        /// The peer.
        peer: AccountId,
        /// What did not match.
        detail: String,
    },
    /// The peer accepted the request but dropped it without answering.
    #[error("peer {0:?} dropped the request")]
    Dropped(AccountId),
    /// The local transport has shut down.
    #[error("transport is closed")]
    Closed,
}

/// A request from a peer, with the means to answer it.
pub struct Incoming {
    /// The authenticated sender.
    pub from: AccountId,
    /// The request bytes (at most [`MAX_MESSAGE`]).
    pub body: Bytes,
    /// Send the response here; dropping it tells the peer the request was dropped.
    pub reply: oneshot::Sender<Bytes>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Incoming(from {:?}, {} bytes)",
            self.from,
            self.body.len()
        )
    }
}

/// Authenticated request/response between accounts.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This node's account.
    fn local_id(&self) -> AccountId;

    /// Tells the transport where `peer` can be reached (for example a multiaddr from the
    /// ledger). Transports that need no addresses ignore it.
    fn add_address(&self, peer: AccountId, address: &str);

    /// Sends `body` to `peer` and waits for its response.
    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError>;

    /// The next request from a peer, or `None` once the transport has shut down. Meant to be
    /// called from one loop per node.
    async fn next_incoming(&self) -> Option<Incoming>;
}

#[derive(Default)]
struct NetState {
    nodes: BTreeMap<AccountId, mpsc::Sender<Incoming>>,
    down: std::collections::BTreeSet<AccountId>,
}

/// An in-process network: every node joined to it can reach every other by account id.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins a node; replaces any earlier node with the same id.
    pub fn join(&self, id: AccountId) -> MemoryTransport {
        let (tx, rx) = mpsc::channel(64);
        self.lock().nodes.insert(id, tx);
        MemoryTransport {
            id,
            net: self.clone(),
            inbox: Arc::new(AsyncMutex::new(rx)),
        }
    }

    /// Makes `id` unreachable (its requests and requests to it fail) until [`Self::set_up`].
    pub fn set_down(&self, id: AccountId) {
        self.lock().down.insert(id);
    }

    /// Makes `id` reachable again.
    pub fn set_up(&self, id: AccountId) {
        self.lock().down.remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One node's end of a [`MemoryNetwork`].
#[derive(Clone)]
pub struct MemoryTransport {
    id: AccountId,
    net: MemoryNetwork,
    inbox: Arc<AsyncMutex<mpsc::Receiver<Incoming>>>,
}

#[async_trait]
impl Transport for MemoryTransport {
    fn local_id(&self) -> AccountId {
        self.id
    }

    fn add_address(&self, _peer: AccountId, _address: &str) {}

    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError> {
        if body.len() > MAX_MESSAGE {
            return Err(TransportError::TooLarge {
                len: body.len(),
                max: MAX_MESSAGE,
            });
        }
        let sender = {
            let st = self.net.lock();
            if st.down.contains(&peer) || st.down.contains(&self.id) {
                return Err(TransportError::Unreachable(peer));
            }
            st.nodes.get(&peer).cloned()
        };
        let mut sender = sender.ok_or(TransportError::Unreachable(peer))?;
        let (reply, response) = oneshot::channel();
        futures::SinkExt::send(
            &mut sender,
            Incoming {
                from: self.id,
                body,
                reply,
            },
        )
        .await
        .map_err(|_| TransportError::Unreachable(peer))?;
        let out = response.await.map_err(|_| TransportError::Dropped(peer))?;
        if self.net.lock().down.contains(&peer) {
            return Err(TransportError::Unreachable(peer));
        }
        Ok(out)
    }

    async fn next_incoming(&self) -> Option<Incoming> {
        self.inbox.lock().await.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn requests_reach_the_named_peer_and_carry_the_sender() {
        futures::executor::block_on(async {
            let net = MemoryNetwork::new();
            let a = Keypair::from_seed("a").account();
            let b = Keypair::from_seed("b").account();
            let c = Keypair::from_seed("c").account();
            let ta = net.join(a);
            let tb = net.join(b);
            let server = async {
                let inc = tb.next_incoming().await.unwrap();
                assert_eq!(inc.from, a);
                let mut r = inc.body.to_vec();
                r.reverse();
                inc.reply.send(r.into()).unwrap();
            };
            let client = async { ta.request(b, Bytes::from_static(b"abc")).await };
            let (_, got) = futures::join!(server, client);
            assert_eq!(got.unwrap(), Bytes::from_static(b"cba"));
            assert_eq!(
                ta.request(c, Bytes::new()).await,
                Err(TransportError::Unreachable(c))
            );
            net.set_down(b);
            assert_eq!(
                ta.request(b, Bytes::new()).await,
                Err(TransportError::Unreachable(b))
            );
            let big = Bytes::from(vec![0u8; MAX_MESSAGE + 1]);
            assert!(matches!(
                ta.request(b, big).await,
                Err(TransportError::TooLarge { .. })
            ));
        });
    }

    #[test]
    fn a_dropped_reply_is_reported() {
        futures::executor::block_on(async {
            let net = MemoryNetwork::new();
            let a = Keypair::from_seed("a").account();
            let b = Keypair::from_seed("b").account();
            let ta = net.join(a);
            let tb = net.join(b);
            let server = async { drop(tb.next_incoming().await) };
            let (_, got) = futures::join!(server, ta.request(b, Bytes::new()));
            assert_eq!(got, Err(TransportError::Dropped(b)));
        });
    }
}

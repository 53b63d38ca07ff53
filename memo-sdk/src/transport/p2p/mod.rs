//! The real network: [`P2pTransport`], memo's [`Transport`] over rust-libp2p.
//!
//! - **Identity.** A node's ed25519 account key is its libp2p identity ([`identity`]): the
//!   peer id embeds the account's public key, and Noise authenticates it on every connection,
//!   so [`Incoming::from`] is the authenticated remote account.
//! - **Stack.** TCP (no Nagle) + Noise XX + yamux, one request-response protocol,
//!   [`PROTOCOL`] (`/memo/req/1`); a peer speaking another version fails negotiation and the
//!   request fails with [`TransportError::Protocol`].
//! - **Framing.** One frame per request and per response: a 4-byte big-endian length, then the
//!   bytes ([`codec`]). The length is checked against the limit ([`MAX_MESSAGE`] by default)
//!   before anything is allocated.
//! - **Caps.** A request's length is admitted against its sender's caps ([`P2pConfig::limits`],
//!   [`crate::transport::limits`]) before its bytes are read; over a cap the bytes are
//!   discarded and the sender gets an `Unavailable` error response. Peers this node was given
//!   an address for ([`P2pTransport::try_add_address`]) are known peers; see
//!   [`P2pTransport::limiter`] to mark others.
//! - **Driving.** A spawned tokio task owns the libp2p `Swarm`; [`P2pTransport`] handles talk
//!   to it over channels. Any number of requests may be in flight. [`P2pTransport::shutdown`],
//!   or dropping the last handle, stops the task and closes every connection.

pub mod codec;
mod driver;
pub mod identity;

use crate::transport::limits::{Limiter, Limits};
use bytes::Bytes;
use futures::channel::oneshot;
use libp2p::StreamProtocol;
use memo_core::transport::{Incoming, MAX_MESSAGE, Transport, TransportError};
use memo_core::{AccountId, Keypair};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub use identity::{PeerIdError, account_of, libp2p_keypair, peer_id_of};
pub use libp2p::{Multiaddr, PeerId};

/// The request-response protocol id; the version is part of it.
pub const PROTOCOL: &str = "/memo/req/1";

/// Settings of a [`P2pTransport`].
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Where to listen, e.g. `/ip4/0.0.0.0/tcp/4001` (default `/ip4/127.0.0.1/tcp/0`); empty
    /// for a client that only dials. libp2p-tcp sets `SO_REUSEPORT` on its sockets, so a port
    /// held by another libp2p listener of the same user is shared rather than refused (Noise
    /// still rejects a connection that reaches the wrong peer).
    pub listen: Vec<Multiaddr>,
    /// The whole life of one request on its stream (send, remote work, response).
    pub request_timeout: Duration,
    /// Dialing a peer: TCP connect plus the Noise and yamux handshakes.
    pub dial_timeout: Duration,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// The largest request or response this node sends or accepts.
    pub max_message: usize,
    /// Streams (requests in flight, both ways) per connection; clamped to 1..=4096.
    pub max_streams_per_connection: usize,
    /// Received requests waiting for [`Transport::next_incoming`]; beyond that, requests are
    /// dropped (their senders get [`TransportError::Dropped`]).
    pub incoming_queue: usize,
    /// The protocol id; change it only to test version negotiation.
    pub protocol: String,
    /// Caps on the requests peers may have in flight at this node: bytes and requests per
    /// peer, for unknown peers, and node-wide ([`Limits`]; the defaults let an honest client
    /// at full speed through).
    pub limits: Limits,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec![loopback()],
            request_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_message: MAX_MESSAGE,
            max_streams_per_connection: 256,
            incoming_queue: 256,
            protocol: PROTOCOL.to_string(),
            limits: Limits::default(),
        }
    }
}

fn loopback() -> Multiaddr {
    Multiaddr::from(std::net::Ipv4Addr::LOCALHOST).with(libp2p::multiaddr::Protocol::Tcp(0))
}

/// Why a [`P2pTransport`] did not start, or an address was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A listen or peer address is not a valid multiaddr.
    #[error("bad multiaddr {text:?}: {reason}")]
    BadAddress {
        /// The text given.
        text: String,
        /// Why it did not parse.
        reason: String,
    },
    /// The transport cannot listen on this address.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The protocol id is not a valid libp2p protocol name (must start with `/`).
    #[error("bad protocol id {0:?}")]
    BadProtocol(String),
    /// The Noise keys could not be set up.
    #[error("noise setup failed: {0}")]
    Noise(String),
    /// The account cannot be a libp2p peer.
    #[error(transparent)]
    Peer(#[from] PeerIdError),
    /// The transport has shut down.
    #[error("transport is closed")]
    Closed,
}

/// Messages from handles to the driver task.
enum Command {
    Request {
        peer: PeerId,
        account: AccountId,
        body: Bytes,
        reply: oneshot::Sender<Result<Bytes, TransportError>>,
    },
    AddAddress {
        peer: PeerId,
        address: Multiaddr,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

struct Inner {
    account: AccountId,
    peer_id: PeerId,
    config: P2pConfig,
    commands: mpsc::UnboundedSender<Command>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    limiter: Arc<Limiter>,
}

/// memo's [`Transport`] over libp2p (TCP + Noise + yamux, request-response).
///
/// Cheap to clone; every clone drives the same node. The node stops when
/// [`P2pTransport::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct P2pTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for P2pTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P2pTransport({:?})", self.inner.account)
    }
}

impl P2pTransport {
    /// Starts a node with `keypair` as its identity, listening on `listen` (e.g.
    /// `/ip4/127.0.0.1/tcp/0`), with default settings. Returns the node and the addresses it
    /// actually listens on. Must be called inside a tokio runtime.
    pub async fn start(
        keypair: &Keypair,
        listen: &str,
    ) -> Result<(P2pTransport, Vec<Multiaddr>), NetError> {
        let address = parse_address(listen)?;
        let config = P2pConfig {
            listen: vec![address],
            ..P2pConfig::default()
        };
        let node = Self::start_with(keypair, config).await?;
        let addrs = node.listen_addrs();
        Ok((node, addrs))
    }

    /// Starts a node with explicit settings; returns once it listens on every configured
    /// address (see [`Self::listen_addrs`]).
    pub async fn start_with(keypair: &Keypair, config: P2pConfig) -> Result<Self, NetError> {
        let protocol = StreamProtocol::try_from_owned(config.protocol.clone())
            .map_err(|_| NetError::BadProtocol(config.protocol.clone()))?;
        let key = libp2p_keypair(keypair);
        let peer_id = key.public().to_peer_id();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_queue.max(1));
        let listen = Arc::new(Mutex::new(Vec::new()));
        let limiter = Limiter::new(config.limits);
        let ready = driver::start(
            &key,
            protocol,
            &config,
            limiter.clone(),
            command_rx,
            incoming_tx,
            listen.clone(),
        )?;
        ready.await.map_err(|_| NetError::Closed)??;
        Ok(Self {
            inner: Arc::new(Inner {
                account: keypair.account(),
                peer_id,
                config,
                commands,
                incoming: tokio::sync::Mutex::new(incoming_rx),
                listen,
                limiter,
            }),
        })
    }

    /// The addresses this node listens on (with the actual ports).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner
            .listen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The settings this node runs with.
    pub fn config(&self) -> &P2pConfig {
        &self.inner.config
    }

    /// The accounting of request bytes in flight at this node ([`P2pConfig::limits`]): mark
    /// known peers with [`Limiter::know`], read what is held with [`Limiter::in_flight`], or
    /// share it with a lane ([`crate::transport::lane::LaneServer::start_limited`]) so that
    /// the node-wide bound covers both.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.inner.limiter
    }

    /// Records that `peer` can be reached at `address` (a multiaddr, with or without a
    /// trailing `/p2p/<peer id>`), and makes it a known peer for the caps. Addresses are kept
    /// until shutdown; failed dials do not remove them.
    pub fn try_add_address(&self, peer: AccountId, address: &str) -> Result<(), NetError> {
        let mut address = parse_address(address)?;
        let peer_id = peer_id_of(&peer)?;
        if let Some(libp2p::multiaddr::Protocol::P2p(id)) = address.iter().last() {
            if id != peer_id {
                return Err(NetError::BadAddress {
                    text: address.to_string(),
                    reason: format!("names peer {id}, not {peer_id}"),
                });
            }
            address.pop();
        }
        self.inner.limiter.know(peer);
        self.inner
            .commands
            .send(Command::AddAddress {
                peer: peer_id,
                address,
            })
            .map_err(|_| NetError::Closed)
    }

    /// Stops the node: closes its connections and listeners. In-flight and later requests
    /// fail with [`TransportError::Closed`], and [`Transport::next_incoming`] returns `None`
    /// once queued requests are taken. Waits until the node has stopped.
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self.inner.commands.send(Command::Shutdown { done }).is_ok() {
            let _ = stopped.await;
        }
    }
}

fn parse_address(text: &str) -> Result<Multiaddr, NetError> {
    text.parse::<Multiaddr>().map_err(|e| NetError::BadAddress {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

#[async_trait::async_trait]
impl Transport for P2pTransport {
    fn local_id(&self) -> AccountId {
        self.inner.account
    }

    fn add_address(&self, peer: AccountId, address: &str) {
        if let Err(e) = self.try_add_address(peer, address) {
            tracing::warn!(peer = %peer.label(), address, error = %e, "ignoring peer address");
        }
    }

    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError> {
        let max = self.inner.config.max_message;
        if body.len() > max {
            return Err(TransportError::TooLarge {
                len: body.len(),
                max,
            });
        }
        let peer_id = peer_id_of(&peer).map_err(|_| TransportError::Unreachable(peer))?;
        let (reply, response) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Request {
                peer: peer_id,
                account: peer,
                body,
                reply,
            })
            .map_err(|_| TransportError::Closed)?;
        // libp2p enforces both timeouts; this is a backstop in case an event never arrives.
        let limit = self.inner.config.dial_timeout
            + self.inner.config.request_timeout
            + Duration::from_secs(15);
        match tokio::time::timeout(limit, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TransportError::Closed),
            Err(_) => Err(TransportError::Timeout(peer)),
        }
    }

    async fn next_incoming(&self) -> Option<Incoming> {
        self.inner.incoming.lock().await.recv().await
    }
}

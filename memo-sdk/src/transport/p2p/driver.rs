//! The task that owns the libp2p `Swarm` of one [`super::P2pTransport`].

use super::codec::{Bound, Frame, FrameCodec, FrameError};
use super::{Command, NetError, P2pConfig, account_of};
use crate::transport::limits::{Limiter, Permit};
use bytes::Bytes;
use futures::channel::oneshot;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::Transport as _;
use libp2p::core::upgrade;
use libp2p::request_response::{
    self, InboundFailure, Message, OutboundFailure, OutboundRequestId, ProtocolSupport,
    ResponseChannel,
};
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identity, noise, tcp, yamux};
use memo_core::AccountId;
use memo_core::protocol::{ErrorCode, Response};
use memo_core::transport::{Incoming, TransportError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type Behaviour = request_response::Behaviour<FrameCodec>;
type Event = request_response::Event<Frame, Bytes>;
type PendingReply = Pin<Box<dyn Future<Output = (ResponseChannel<Bytes>, Option<Bytes>)> + Send>>;

/// Builds the swarm, starts listening and spawns the driver. The returned receiver resolves
/// once every listener reported its first address (or failed).
pub(super) fn start(
    key: &identity::Keypair,
    protocol: StreamProtocol,
    config: &P2pConfig,
    limiter: Arc<Limiter>,
    commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::Sender<Incoming>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
) -> Result<oneshot::Receiver<Result<(), NetError>>, NetError> {
    let noise = noise::Config::new(key).map_err(|e| NetError::Noise(e.to_string()))?;
    // yamux requires 256 KiB (its initial window) per stream within its 1 GiB connection
    // window, so at most 4096 streams; it asserts otherwise.
    let streams = config.max_streams_per_connection.clamp(1, 4096);
    let mut yamux = yamux::Config::default();
    yamux.set_max_num_streams(streams);
    let transport = NewPorts(tcp::tokio::Transport::new(
        tcp::Config::default().nodelay(true),
    ))
    .upgrade(upgrade::Version::V1Lazy)
    .authenticate(noise)
    .multiplex(yamux)
    .timeout(config.dial_timeout)
    .boxed();
    let codec = FrameCodec::new(config.max_message, limiter);
    let behaviour = Bound::new(
        Behaviour::with_codec(
            codec.clone(),
            [(protocol, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(streams),
        ),
        &codec,
    );
    let swarm_config = libp2p::swarm::Config::with_tokio_executor()
        .with_idle_connection_timeout(config.idle_timeout);
    let mut swarm = Swarm::new(
        transport,
        behaviour,
        key.public().to_peer_id(),
        swarm_config,
    );
    let mut listeners = Vec::new();
    for address in &config.listen {
        let id = swarm
            .listen_on(address.clone())
            .map_err(|e| NetError::Listen {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        listeners.push((id, address.clone()));
    }
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut driver = Driver {
        swarm,
        commands,
        incoming,
        listen,
        addresses: HashMap::new(),
        pending: HashMap::new(),
        replies: FuturesUnordered::new(),
        max_message: config.max_message,
        request_timeout: config.request_timeout,
        local: key.public().to_peer_id(),
        waiting_listeners: listeners,
        ready: Some(ready_tx),
    };
    // A node without listeners (a pure client) is ready at once.
    driver.check_ready();
    tokio::spawn(driver.run());
    Ok(ready_rx)
}

/// TCP that dials from a fresh port. libp2p dials from the listening port by default (for NAT
/// hole punching, which memo does not use); two nodes that then dial each other at the same
/// moment get one TCP connection by simultaneous open, on which both start Noise as the
/// initiator, and the handshake fails.
struct NewPorts(tcp::tokio::Transport);

impl libp2p::core::Transport for NewPorts {
    type Output = <tcp::tokio::Transport as libp2p::core::Transport>::Output;
    type Error = <tcp::tokio::Transport as libp2p::core::Transport>::Error;
    type ListenerUpgrade = <tcp::tokio::Transport as libp2p::core::Transport>::ListenerUpgrade;
    type Dial = <tcp::tokio::Transport as libp2p::core::Transport>::Dial;

    fn listen_on(
        &mut self,
        id: libp2p::core::transport::ListenerId,
        addr: Multiaddr,
    ) -> Result<(), libp2p::core::transport::TransportError<Self::Error>> {
        self.0.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: libp2p::core::transport::ListenerId) -> bool {
        self.0.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        mut opts: libp2p::core::transport::DialOpts,
    ) -> Result<Self::Dial, libp2p::core::transport::TransportError<Self::Error>> {
        opts.port_use = libp2p::core::transport::PortUse::New;
        self.0.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<libp2p::core::transport::TransportEvent<Self::ListenerUpgrade, Self::Error>>
    {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// An outbound request waiting for its response.
struct Pending {
    account: AccountId,
    peer: PeerId,
    /// The body, kept for one resend if the dial fails while a connection to the peer exists
    /// (two nodes dialling each other at once); `None` once resent.
    resend: Option<Bytes>,
    reply: oneshot::Sender<Result<Bytes, TransportError>>,
}

struct Driver {
    swarm: Swarm<Bound>,
    commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::Sender<Incoming>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    /// Our own address book: libp2p forgets addresses whose dial failed, we do not.
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    pending: HashMap<OutboundRequestId, Pending>,
    replies: FuturesUnordered<PendingReply>,
    max_message: usize,
    request_timeout: Duration,
    local: PeerId,
    waiting_listeners: Vec<(libp2p::core::transport::ListenerId, Multiaddr)>,
    ready: Option<oneshot::Sender<Result<(), NetError>>>,
}

impl Driver {
    async fn run(mut self) {
        let mut done = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break,
                    Some(Command::Shutdown { done: ack }) => {
                        done = Some(ack);
                        break;
                    }
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((channel, response)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.on_reply(channel, response);
                }
            }
        }
        for (_, Pending { reply, .. }) in self.pending.drain() {
            let _ = reply.send(Err(TransportError::Closed));
        }
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(NetError::Closed));
        }
        self.listen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // Dropping the swarm closes every connection and listener.
        drop(self.swarm);
        drop(self.incoming);
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                account,
                body,
                reply,
            } if peer == self.local => self.request_self(account, body, reply),
            Command::Request {
                peer,
                account,
                body,
                reply,
            } => {
                let addresses = self.addresses.get(&peer).cloned().unwrap_or_default();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .inner
                    .send_request_with_addresses(&peer, outbound(body.clone()), addresses);
                self.pending.insert(
                    id,
                    Pending {
                        account,
                        peer,
                        resend: Some(body),
                        reply,
                    },
                );
            }
            Command::AddAddress { peer, address } => {
                let known = self.addresses.entry(peer).or_default();
                if !known.contains(&address) {
                    known.push(address);
                }
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn on_reply(&mut self, channel: ResponseChannel<Bytes>, response: Option<Bytes>) {
        match response {
            Some(body) if body.len() <= self.max_message => {
                // Err means the stream is already gone (timeout, closed); the failure event
                // reports it.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .inner
                    .send_response(channel, body);
            }
            Some(body) => {
                tracing::warn!(
                    len = body.len(),
                    max = self.max_message,
                    "dropping an oversize response"
                );
            }
            None => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<Event>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::debug!(%address, "listening");
                self.listen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(address);
                self.waiting_listeners.retain(|(id, _)| *id != listener_id);
                self.check_ready();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(pos) = self
                    .waiting_listeners
                    .iter()
                    .position(|(id, _)| *id == listener_id)
                {
                    let (_, address) = self.waiting_listeners.remove(pos);
                    if let Some(ready) = self.ready.take() {
                        let reason = match reason {
                            Ok(()) => "listener closed".to_string(),
                            Err(e) => e.to_string(),
                        };
                        let _ = ready.send(Err(NetError::Listen { address, reason }));
                    }
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::warn!(?listener_id, %error, "listener error");
            }
            _ => {}
        }
    }

    fn check_ready(&mut self) {
        if self.waiting_listeners.is_empty()
            && let Some(ready) = self.ready.take()
        {
            let _ = ready.send(Ok(()));
        }
    }

    fn on_behaviour_event(&mut self, event: Event) {
        match event {
            Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => match request {
                    Frame::Body { body, permit } => self.on_request(peer, body, permit, channel),
                    Frame::Refused { len, why } => {
                        tracing::warn!(%peer, len, %why, "refusing a request over the caps");
                        let refusal = Response::error(ErrorCode::Unavailable, why.to_string());
                        self.on_reply(channel, Some(Bytes::from(refusal.to_bytes())));
                    }
                },
                Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(p) = self.pending.remove(&request_id) {
                        let _ = p.reply.send(Ok(response));
                    }
                }
            },
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                let Some(mut p) = self.pending.remove(&request_id) else {
                    return;
                };
                // A dial failure means the request was never sent; if a connection exists
                // anyway (the peer dialled us meanwhile), send it once more over that one.
                if matches!(error, OutboundFailure::DialFailure)
                    && self.swarm.is_connected(&p.peer)
                    && let Some(body) = p.resend.take()
                {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .inner
                        .send_request(&p.peer, outbound(body));
                    self.pending.insert(id, p);
                    return;
                }
                let _ = p.reply.send(Err(outbound_error(p.account, error)));
            }
            Event::InboundFailure { peer, error, .. } => match error {
                InboundFailure::ResponseOmission => {}
                error => tracing::debug!(%peer, %error, "inbound request failed"),
            },
            Event::ResponseSent { .. } => {}
        }
    }

    /// Hands an admitted request to the node; `permit` holds its bytes against the sender's
    /// caps until the node answers or drops it (even after the stream timed out).
    fn on_request(
        &mut self,
        peer: PeerId,
        body: Bytes,
        permit: Option<Permit>,
        channel: ResponseChannel<Bytes>,
    ) {
        // Noise authenticated `peer`; its id embeds the remote's ed25519 key.
        let from = match account_of(&peer) {
            Ok(account) => account,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "dropping a request from a non-memo peer");
                return;
            }
        };
        let (reply, mut response) = oneshot::channel();
        match self.incoming.try_send(Incoming { from, body, reply }) {
            Ok(()) => {
                // The remote gives up after the request timeout; so do we, so that a reply
                // that never comes does not pin the channel forever. The permit stays with
                // the request until the node is done with it.
                let timeout = self.request_timeout;
                self.replies.push(
                    async move {
                        match tokio::time::timeout(timeout, &mut response).await {
                            Ok(r) => {
                                drop(permit);
                                (channel, r.ok())
                            }
                            Err(_) => {
                                tokio::spawn(async move {
                                    let _ = response.await;
                                    drop(permit);
                                });
                                (channel, None)
                            }
                        }
                    }
                    .boxed(),
                );
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%peer, "incoming queue full, dropping a request");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A request this node sends.
fn outbound(body: Bytes) -> Frame {
    Frame::Body { body, permit: None }
}

impl Driver {
    /// A request to this node itself: delivered to its own queue, like any other.
    fn request_self(
        &mut self,
        account: AccountId,
        body: Bytes,
        reply: oneshot::Sender<Result<Bytes, TransportError>>,
    ) {
        let (incoming_reply, response) = oneshot::channel();
        let incoming = Incoming {
            from: account,
            body,
            reply: incoming_reply,
        };
        if self.incoming.try_send(incoming).is_err() {
            let _ = reply.send(Err(TransportError::Dropped(account)));
            return;
        }
        let (timeout, max) = (self.request_timeout, self.max_message);
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, response).await {
                Ok(Ok(body)) if body.len() <= max => Ok(body),
                Ok(Ok(body)) => Err(TransportError::TooLarge {
                    len: body.len(),
                    max,
                }),
                Ok(Err(_)) => Err(TransportError::Dropped(account)),
                Err(_) => Err(TransportError::Timeout(account)),
            };
            let _ = reply.send(result);
        });
    }
}

/// The typed error for a failed outbound request.
fn outbound_error(peer: AccountId, error: OutboundFailure) -> TransportError {
    match error {
        OutboundFailure::DialFailure | OutboundFailure::ConnectionClosed => {
            TransportError::Unreachable(peer)
        }
        OutboundFailure::Timeout => TransportError::Timeout(peer),
        OutboundFailure::UnsupportedProtocols => TransportError::Protocol {
            peer,
            detail: "the peer does not support this memo request protocol version".to_string(),
        },
        OutboundFailure::Io(e) => match FrameError::from_io(&e) {
            Some(FrameError::TooLarge { len, max }) => TransportError::TooLarge {
                len: usize::try_from(*len).unwrap_or(usize::MAX),
                max: *max,
            },
            _ => {
                tracing::debug!(peer = %peer.label(), error = %e, "request stream failed");
                TransportError::Dropped(peer)
            }
        },
    }
}

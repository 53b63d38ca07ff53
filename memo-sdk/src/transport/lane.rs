//! The shard lane: a direct TCP channel from a client to a provider for shard bytes.
//!
//! Every request can travel over the authenticated [`Transport`]. On libp2p that means Noise,
//! whose ChaCha20-Poly1305 costs about 4x what AES-256-GCM costs on a CPU with AES
//! instructions (`cargo bench -p memo-sdk --bench lane_cipher`: 2597 against 9767 MiB/s on
//! the 2-core build VM), plus yamux framing and copies. Shards are most of the bytes a client moves, so
//! providers may also offer a lane for [`Request::PutShard`] and [`Request::GetShard`] only:
//!
//! 1. The client sends [`Request::OpenLane`] with a fresh random secret over the transport,
//!    which authenticates it; the provider answers its lane's address and a single-use ticket
//!    ([`Response::Lane`]), valid for [`TICKET_TTL`].
//! 2. The client connects, sends [`MAGIC`] and the ticket, and from then on each side sends
//!    frames: a 4-byte big-endian length, then an AES-256-GCM ciphertext of one encoded
//!    [`Request`] or [`Response`]. Keys are derived from the secret per direction
//!    (blake3 `derive_key`); nonces count frames, so a frame cannot be replayed, reordered or
//!    moved to another connection; the length is authenticated as associated data and bounded
//!    before anything is allocated.
//! 3. The provider treats a lane request exactly as the same request from the account that
//!    opened the ticket.
//!
//! A lane counts against the same caps as the transport ([`crate::transport::limits`]): a
//! frame's length is admitted for the ticket's account before its bytes are read (over a cap
//! they are discarded and the answer is an `Unavailable` error), and each account holds at
//! most [`Limits::lane_tickets_per_peer`] tickets and [`Limits::lane_connections_per_peer`]
//! connections.
//!
//! The bytes stay encrypted on the wire: shards of a shared convergence domain are the same
//! ciphertext for everyone who stores the same data, so a network observer who saw them in
//! clear could confirm who stores a known file. A client ([`Lanes`]) falls back to the
//! transport for providers without a lane and for any request whose lane fails.

use crate::env::Env;
use crate::node::{Service, respond};
use crate::transport::limits::{Limiter, Limits};
use crate::transport::rpc::{RpcError, call, remote};
use bytes::{BufMut, Bytes, BytesMut};
use memo_core::AccountId;
use memo_core::protocol::{ErrorCode, LaneSecret, Request, Response};
use memo_core::transport::{MAX_MESSAGE, Transport};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, warn};

/// The first bytes a client sends on a lane connection (then the 16-byte ticket).
pub const MAGIC: &[u8; 8] = b"memolan1";
/// How long a ticket from [`Request::OpenLane`] stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// AES-GCM tag length.
const TAG: usize = 16;
/// The largest frame: a message of [`MAX_MESSAGE`] bytes and its tag.
const MAX_FRAME: usize = MAX_MESSAGE + TAG;
/// Tickets a provider holds at once (issued, not yet used).
const MAX_TICKETS: usize = 4096;
/// Lane connections a provider serves at once.
const MAX_CONNECTIONS: usize = 256;
/// A connection with no request for this long is closed by the provider.
const IDLE: Duration = Duration::from_secs(60);
/// A client reuses a pooled connection only if it was used this recently (under [`IDLE`]).
const REUSE: Duration = Duration::from_secs(45);
/// Idle connections a client keeps per provider.
const POOL: usize = 32;
/// After a provider refuses [`Request::OpenLane`], its requests use the transport this long.
const NO_LANE: Duration = Duration::from_secs(60);
/// The buffer through which a refused frame's bytes are discarded.
const DISCARD: usize = 16 * 1024;

/// True for the requests a lane carries.
pub fn on_lane(req: &Request) -> bool {
    matches!(req, Request::PutShard { .. } | Request::GetShard { .. })
}

/// Why a lane exchange failed (the client then uses the transport).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaneError {
    /// The socket failed or closed.
    #[error("lane i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's length is outside the allowed range.
    #[error("lane frame of {len} bytes is outside 16..={max}")]
    FrameSize {
        /// The length announced.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A frame failed authentication: altered, replayed, reordered or from the wrong key.
    #[error("lane frame failed authentication")]
    Auth,
    /// A frame decrypted but does not hold a valid message.
    #[error("lane message is malformed: {0}")]
    Malformed(memo_core::wire::WireError),
    /// The exchange took longer than the request timeout.
    #[error("lane request timed out")]
    Timeout,
    /// Opening the lane over the transport failed.
    #[error(transparent)]
    Open(#[from] RpcError),
    /// The provider has no lane (it answered `OpenLane` with something else).
    #[error("the provider offers no lane")]
    Unsupported,
    /// The peer already holds its maximum of lane connections.
    #[error("too many lane connections from this peer")]
    Busy,
}

/// One direction's key and frame counter.
struct Half {
    key: LessSafeKey,
    count: u64,
}

impl Half {
    fn new(secret: &[u8; 32], context: &str) -> Self {
        let raw = blake3::derive_key(context, secret);
        // A 32-byte key is always accepted by AES-256-GCM.
        let key = UnboundKey::new(&AES_256_GCM, &raw).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(key),
            count: 0,
        }
    }

    fn nonce(&mut self) -> Result<Nonce, LaneError> {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.count.to_be_bytes());
        // 2^64 frames never happen; refuse rather than reuse a nonce.
        self.count = self.count.checked_add(1).ok_or(LaneError::Auth)?;
        Ok(Nonce::assume_unique_for_key(n))
    }
}

const TO_PROVIDER: &str = "memo shard lane v1: client to provider";
const TO_CLIENT: &str = "memo shard lane v1: provider to client";

/// An established lane connection, either end.
struct Conn {
    stream: TcpStream,
    send: Half,
    recv: Half,
    /// Receive buffer: each frame is split off it and handed on as shared bytes (a shard in a
    /// message is sliced, not copied); its allocation is taken back once they are dropped.
    buf: BytesMut,
    used: Instant,
}

impl Conn {
    fn new(stream: TcpStream, secret: &[u8; 32], client: bool) -> Self {
        let (send, recv) = if client {
            (TO_PROVIDER, TO_CLIENT)
        } else {
            (TO_CLIENT, TO_PROVIDER)
        };
        Self {
            stream,
            send: Half::new(secret, send),
            recv: Half::new(secret, recv),
            buf: BytesMut::new(),
            used: Instant::now(),
        }
    }

    /// Seals `plain` (consumed as the buffer) and sends it as one frame.
    async fn send(&mut self, mut plain: Vec<u8>) -> Result<(), LaneError> {
        let len = plain.len() + TAG;
        if len > MAX_FRAME {
            return Err(LaneError::FrameSize {
                len,
                max: MAX_FRAME,
            });
        }
        // MAX_FRAME fits in a u32.
        let header = (len as u32).to_be_bytes();
        let nonce = self.send.nonce()?;
        self.send
            .key
            .seal_in_place_append_tag(nonce, Aad::from(header), &mut plain)
            .map_err(|_| LaneError::Auth)?;
        let mut frame = bytes::Buf::chain(&header[..], &plain[..]);
        self.stream.write_all_buf(&mut frame).await?;
        Ok(())
    }

    /// Receives one frame and returns its plaintext, or `None` if the peer closed the
    /// connection between frames.
    async fn recv(&mut self) -> Result<Option<Bytes>, LaneError> {
        match self.recv_header().await? {
            Some((header, len)) => self.recv_body(header, len).await.map(Some),
            None => Ok(None),
        }
    }

    /// Receives a frame's header and returns it with the frame's length, or `None` if the peer
    /// closed the connection between frames.
    async fn recv_header(&mut self) -> Result<Option<([u8; 4], usize)>, LaneError> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(header) as usize;
        if !(TAG..=MAX_FRAME).contains(&len) {
            return Err(LaneError::FrameSize {
                len,
                max: MAX_FRAME,
            });
        }
        Ok(Some((header, len)))
    }

    /// Receives the `len` bytes of the frame with this header and returns its plaintext.
    async fn recv_body(&mut self, header: [u8; 4], len: usize) -> Result<Bytes, LaneError> {
        // Reclaims the allocation if every earlier frame has been dropped; reads into it
        // without zeroing it first.
        self.buf.clear();
        self.buf.reserve(len);
        while self.buf.len() < len {
            let want = len - self.buf.len();
            if self
                .stream
                .read_buf(&mut (&mut self.buf).limit(want))
                .await?
                == 0
            {
                return Err(LaneError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        let nonce = self.recv.nonce()?;
        let plain = self
            .recv
            .key
            .open_in_place(nonce, Aad::from(header), &mut self.buf)
            .map_err(|_| LaneError::Auth)?
            .len();
        self.used = Instant::now();
        let mut frame = self.buf.split_to(len);
        frame.truncate(plain);
        Ok(frame.freeze())
    }

    /// Reads and drops the `len` bytes of a frame through a small buffer, unopened; the
    /// frame's nonce is spent, so the next frame still opens.
    async fn skip(&mut self, len: usize) -> Result<(), LaneError> {
        let mut buf = vec![0u8; DISCARD.min(len)];
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len());
            let n = self.stream.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(LaneError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            left -= n;
        }
        self.recv.nonce()?;
        Ok(())
    }
}

/// A message's bytes, encoded into a buffer that also has room for the frame's tag: a shard is
/// copied once, and sealing it in place does not reallocate.
fn with_room_for_tag(hint: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut plain = Vec::with_capacity(hint + TAG);
    encode(&mut plain);
    plain
}

struct Ticket {
    from: AccountId,
    secret: [u8; 32],
    issued: Instant,
}

/// A provider's lane: listens for lane connections and hands their requests to a
/// [`Service`] (the provider). Serve it beside that service so that it answers
/// [`Request::OpenLane`]; it stops listening once the last handle is dropped.
pub struct LaneServer {
    env: Env,
    address: String,
    service: Arc<dyn Service>,
    tickets: Mutex<HashMap<[u8; 16], Ticket>>,
    connections: Arc<tokio::sync::Semaphore>,
    /// Open connections per account.
    open: Mutex<HashMap<AccountId, usize>>,
    limiter: Arc<Limiter>,
    /// Where lane requests are counted, once set.
    metrics: std::sync::OnceLock<Arc<crate::node::metrics::NodeMetrics>>,
    _stop: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for LaneServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LaneServer({})", self.address)
    }
}

impl LaneServer {
    /// Listens on `bind` (e.g. `127.0.0.1:0`) and serves lane requests with `service`.
    /// Clients are told to connect to `advertise`, or to the bound address when it is `None`
    /// (which must then not be a wildcard like `0.0.0.0`). Tickets are drawn from `env`. Call
    /// inside a tokio runtime. The lane enforces the default [`Limits`] with a limiter of its
    /// own; [`Self::start_limited`] shares one with the node's transport.
    pub async fn start(
        env: Env,
        bind: &str,
        advertise: Option<String>,
        service: Arc<dyn Service>,
    ) -> std::io::Result<Arc<Self>> {
        Self::start_limited(
            env,
            bind,
            advertise,
            service,
            Limiter::new(Limits::default()),
        )
        .await
    }

    /// [`Self::start`], counting lane requests with `limiter` (e.g. the transport's,
    /// [`crate::transport::p2p::P2pTransport::limiter`]), whose caps it enforces.
    pub async fn start_limited(
        env: Env,
        bind: &str,
        advertise: Option<String>,
        service: Arc<dyn Service>,
        limiter: Arc<Limiter>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind(bind).await?;
        let local = listener.local_addr()?;
        let address = match advertise {
            Some(a) => a,
            None if local.ip().is_unspecified() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("lane bound to {local}: give an address clients can reach"),
                ));
            }
            None => local.to_string(),
        };
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        let server = Arc::new(Self {
            env,
            address,
            service,
            tickets: Mutex::new(HashMap::new()),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            open: Mutex::new(HashMap::new()),
            limiter,
            metrics: std::sync::OnceLock::new(),
            _stop: stop,
        });
        let weak = Arc::downgrade(&server);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => accept(&weak, stream, peer),
                        Err(e) => {
                            debug!(error = %e, "lane accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        });
        Ok(server)
    }

    /// Counts the requests served on this lane in `metrics` from now on (the first call
    /// wins), as the node's metered transport counts the others.
    pub fn set_metrics(&self, metrics: Arc<crate::node::metrics::NodeMetrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The address clients connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Tickets issued and not yet used or expired.
    pub fn pending_tickets(&self) -> usize {
        self.lock().len()
    }

    /// Lane connections `peer` holds open.
    pub fn open_connections(&self, peer: &AccountId) -> usize {
        self.lock_open().get(peer).copied().unwrap_or(0)
    }

    /// The accounting its caps are enforced with.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection for `peer` until the returned guard drops, or refuses it when the
    /// peer holds its maximum.
    fn hold(&self, peer: AccountId) -> Option<Held<'_>> {
        let mut open = self.lock_open();
        if open.get(&peer).copied().unwrap_or(0) >= self.limiter.limits().lane_connections_per_peer
        {
            return None;
        }
        *open.entry(peer).or_default() += 1;
        Some(Held { server: self, peer })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Ticket>> {
        self.tickets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self, from: AccountId, secret: &LaneSecret) -> Response {
        let mut tickets = self.lock();
        tickets.retain(|_, t| t.issued.elapsed() < TICKET_TTL);
        if tickets.len() >= MAX_TICKETS {
            return Response::error(ErrorCode::Unavailable, "too many lane tickets outstanding");
        }
        let limits = self.limiter.limits();
        let held = tickets.values().filter(|t| t.from == from).count();
        if held >= limits.lane_tickets_per_peer {
            return refuse_ticket(from, "lane tickets", held, limits.lane_tickets_per_peer);
        }
        let open = self.open_connections(&from);
        if open >= limits.lane_connections_per_peer {
            return refuse_ticket(
                from,
                "lane connections",
                open,
                limits.lane_connections_per_peer,
            );
        }
        let ticket: [u8; 16] = self.env.random();
        tickets.insert(
            ticket,
            Ticket {
                from,
                secret: secret.0,
                issued: self.env.now(),
            },
        );
        Response::Lane {
            address: self.address.clone(),
            ticket,
        }
    }

    fn redeem(&self, ticket: &[u8; 16]) -> Option<Ticket> {
        self.lock()
            .remove(ticket)
            .filter(|t| t.issued.elapsed() < TICKET_TTL)
    }

    /// Serves one connection: the hello, then request frames until the client closes it, it
    /// idles out, or a frame fails.
    async fn serve(self: Arc<Self>, mut stream: TcpStream) -> Result<(), LaneError> {
        let _ = stream.set_nodelay(true);
        let mut hello = [0u8; 24];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut hello))
            .await
            .map_err(|_| LaneError::Timeout)??;
        let mut ticket = [0u8; 16];
        ticket.copy_from_slice(&hello[8..]);
        let Some(t) = (hello[..8] == MAGIC[..])
            .then(|| self.redeem(&ticket))
            .flatten()
        else {
            return Err(LaneError::Auth);
        };
        let Some(_held) = self.hold(t.from) else {
            warn!(peer = %t.from.label(), "closing a lane connection over the per-peer cap");
            return Err(LaneError::Busy);
        };
        let mut conn = Conn::new(stream, &t.secret, false);
        loop {
            let (header, len) = match tokio::time::timeout(IDLE, conn.recv_header()).await {
                Err(_) | Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Some(h))) => h,
            };
            // The frame's length is admitted before its bytes are read; the permit is held
            // until the answer is sent.
            let (response, permit) = match self.limiter.admit(t.from, len) {
                Ok(permit) => {
                    let plain = tokio::time::timeout(IDLE, conn.recv_body(header, len))
                        .await
                        .map_err(|_| LaneError::Timeout)??;
                    let timer = self.metrics.get().map(|m| (m, m.start(&plain)));
                    let response = match Request::from_shared(&plain) {
                        Ok(req) if on_lane(&req) => {
                            respond(std::slice::from_ref(&self.service), t.from, &req).await
                        }
                        Ok(_) => Response::error(
                            ErrorCode::BadRequest,
                            "only shard puts and gets travel on a lane",
                        ),
                        Err(e) => Response::error(ErrorCode::BadRequest, e.to_string()),
                    };
                    if let Some((m, t)) = timer {
                        t.finish(m, matches!(response, Response::Error(_)));
                    }
                    (response, Some(permit))
                }
                Err(why) => {
                    tokio::time::timeout(IDLE, conn.skip(len))
                        .await
                        .map_err(|_| LaneError::Timeout)??;
                    warn!(peer = %t.from.label(), len, %why, "refusing a lane request over the caps");
                    (
                        Response::error(ErrorCode::Unavailable, why.to_string()),
                        None,
                    )
                }
            };
            conn.send(with_room_for_tag(response.encoded_len_hint(), |b| {
                response.encode_into(b)
            }))
            .await?;
            drop(permit);
            // The request's allocation goes with it: an idle connection holds no frame.
            conn.buf = BytesMut::new();
        }
    }
}

/// The answer to an `OpenLane` from `peer`, which holds `held` of `what` (its cap: `limit`).
fn refuse_ticket(peer: AccountId, what: &str, held: usize, limit: usize) -> Response {
    warn!(peer = %peer.label(), held, limit, "refusing a lane ticket: the peer holds its {what}");
    Response::error(
        ErrorCode::Unavailable,
        format!("this peer holds {held} {what} (limit {limit})"),
    )
}

/// One open lane connection of `peer`, counted until dropped.
struct Held<'a> {
    server: &'a LaneServer,
    peer: AccountId,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut open = self.server.lock_open();
        if let Some(n) = open.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

fn accept(server: &Weak<LaneServer>, stream: TcpStream, peer: std::net::SocketAddr) {
    let Some(server) = server.upgrade() else {
        return;
    };
    // Beyond the limit, the connection is closed at once and the client uses the transport.
    let Ok(permit) = server.connections.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = server.serve(stream).await {
            debug!(%peer, error = %e, "lane connection ended");
        }
        drop(permit);
    });
}

#[async_trait::async_trait]
impl Service for LaneServer {
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::OpenLane { secret } => Some(self.issue(from, secret)),
            _ => None,
        }
    }
}

/// A client's lanes: sends shard puts and gets to providers on their lanes, with a pool of
/// open connections per provider, and everything else (or anything a lane fails) over the
/// transport. Cheap to share; one per client.
pub struct Lanes {
    env: Env,
    transport: Arc<dyn Transport>,
    idle: Mutex<HashMap<AccountId, Vec<Conn>>>,
    no_lane: Mutex<HashMap<AccountId, Instant>>,
    timeout: Duration,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lanes")
    }
}

impl Lanes {
    /// Lanes for a client on `transport`; one lane request may take `timeout` in all. Lane
    /// secrets are drawn from `env`.
    pub fn new(env: Env, transport: Arc<dyn Transport>, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            env,
            transport,
            idle: Mutex::new(HashMap::new()),
            no_lane: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// Sends `req` to `peer` like [`crate::transport::rpc::call`]: on the peer's lane if `req` travels on
    /// lanes ([`on_lane`]) and the peer has one, else (or if the lane fails) over the
    /// transport.
    pub async fn call(&self, peer: AccountId, req: &Request) -> Result<Response, RpcError> {
        if on_lane(req) && !self.skip(&peer) {
            match self.try_lane(peer, req).await {
                Ok(r) => return remote(peer, r),
                Err(LaneError::Unsupported) => {
                    self.lock_no_lane().insert(peer, self.env.now());
                }
                Err(e) => {
                    debug!(peer = %peer.label(), error = %e, "lane failed; using the transport")
                }
            }
        }
        call(self.transport.as_ref(), peer, req).await
    }

    /// Pooled connections to `peer` (for tests and diagnostics).
    pub fn idle_connections(&self, peer: &AccountId) -> usize {
        self.lock_idle().get(peer).map_or(0, Vec::len)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Vec<Conn>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_no_lane(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Instant>> {
        self.no_lane.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn skip(&self, peer: &AccountId) -> bool {
        let mut no_lane = self.lock_no_lane();
        match no_lane.get(peer) {
            Some(since) if since.elapsed() < NO_LANE => true,
            Some(_) => {
                no_lane.remove(peer);
                false
            }
            None => false,
        }
    }

    async fn try_lane(&self, peer: AccountId, req: &Request) -> Result<Response, LaneError> {
        let pooled = {
            let mut idle = self.lock_idle();
            let conns = idle.entry(peer).or_default();
            conns.retain(|c| c.used.elapsed() < REUSE);
            conns.pop()
        };
        let exchange = async {
            let mut conn = match pooled {
                Some(c) => c,
                None => self.open(peer).await?,
            };
            conn.send(with_room_for_tag(req.encoded_len_hint(), |b| {
                req.encode_into(b)
            }))
            .await?;
            let response = match conn.recv().await? {
                Some(plain) => Response::from_shared(&plain).map_err(LaneError::Malformed)?,
                None => return Err(LaneError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            };
            Ok((conn, response))
        };
        let (conn, response) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| LaneError::Timeout)??;
        let mut idle = self.lock_idle();
        let conns = idle.entry(peer).or_default();
        if conns.len() < POOL {
            conns.push(conn);
        }
        Ok(response)
    }

    async fn open(&self, peer: AccountId) -> Result<Conn, LaneError> {
        let secret = LaneSecret(self.env.random());
        let (address, ticket) = match call(
            self.transport.as_ref(),
            peer,
            &Request::OpenLane {
                secret: secret.clone(),
            },
        )
        .await
        {
            Ok(Response::Lane { address, ticket }) => (address, ticket),
            Ok(_) | Err(RpcError::Remote { .. }) => return Err(LaneError::Unsupported),
            Err(e) => return Err(e.into()),
        };
        let mut stream = TcpStream::connect(address.as_str()).await?;
        stream.set_nodelay(true)?;
        let mut hello = [0u8; 24];
        hello[..8].copy_from_slice(MAGIC);
        hello[8..].copy_from_slice(&ticket);
        stream.write_all(&hello).await?;
        Ok(Conn::new(stream, &secret.0, true))
    }
}

/// How a caller reaches a peer: over the transport, or through [`Lanes`], which
/// sends shard puts and gets on providers' lanes and the rest over the transport.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// Every request over the transport.
    Transport(&'a dyn Transport),
    /// Shard requests on lanes where providers offer them.
    Lanes(&'a Lanes),
}

impl Via<'_> {
    /// [`call`] through this way.
    pub async fn call(self, peer: AccountId, req: &Request) -> Result<Response, RpcError> {
        match self {
            Via::Transport(t) => call(t, peer, req).await,
            Via::Lanes(l) => l.call(peer, req).await,
        }
    }
}

impl<'a> From<&'a dyn Transport> for Via<'a> {
    fn from(t: &'a dyn Transport) -> Self {
        Via::Transport(t)
    }
}

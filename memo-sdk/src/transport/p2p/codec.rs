//! Framing of requests and responses on a libp2p stream: a 4-byte big-endian length, then the
//! bytes. The length is checked against the limit before anything is allocated, and the buffer
//! grows with the bytes that actually arrive, so a peer that announces a huge frame and sends
//! nothing costs nothing. A request's length is also admitted against the sender's caps
//! ([`crate::transport::limits`]) before its bytes are read; a refused request's bytes are
//! read through a small buffer and dropped ([`Frame::Refused`]).

use super::account_of;
use crate::transport::limits::{Limiter, Permit, Refusal};
use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::request_response;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use memo_core::AccountId;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Buffer growth step while a frame arrives.
const GROWTH: usize = 256 * 1024;
/// The buffer through which a refused request's bytes are discarded.
const DISCARD: usize = 16 * 1024;

/// Why a frame was not read or written; carried inside `io::Error` through libp2p.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced (or given) length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended before a frame started: the peer closed it without answering.
    #[error("the stream ended without a frame")]
    Empty,
    /// The stream ended inside a frame (or inside its 4-byte header).
    #[error("the stream ended after {got} of {len} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Announced length.
        len: usize,
    },
}

impl FrameError {
    /// The `FrameError` inside an `io::Error`, if that is what it carries.
    pub fn from_io(e: &io::Error) -> Option<&FrameError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<FrameError>())
    }

    fn into_io(self) -> io::Error {
        let kind = match self {
            FrameError::TooLarge { .. } => io::ErrorKind::InvalidData,
            FrameError::Empty | FrameError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
        };
        io::Error::new(kind, self)
    }
}

/// Reads a frame's 4-byte header: the length of the bytes that follow.
async fn read_header<R: AsyncRead + Unpin>(io: &mut R) -> io::Result<usize> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        let n = io.read(&mut header[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Empty.into_io()
            } else {
                FrameError::Truncated { got, len: 4 }.into_io()
            });
        }
        got += n;
    }
    Ok(u32::from_be_bytes(header) as usize)
}

/// Reads a frame's `len` bytes, growing the buffer as they arrive.
async fn read_body<R: AsyncRead + Unpin>(io: &mut R, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == buf.len() {
            let grow = buf.len().max(GROWTH).min(len - buf.len());
            buf.resize(buf.len() + grow, 0);
        }
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated { got: filled, len }.into_io());
        }
        filled += n;
    }
    Ok(Bytes::from(buf))
}

/// Reads and drops a frame's `len` bytes through a small buffer, so that the peer, which
/// writes its whole request before it reads, gets to the answer.
async fn discard<R: AsyncRead + Unpin>(io: &mut R, len: usize) -> io::Result<()> {
    let mut buf = vec![0u8; DISCARD.min(len)];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len());
        let n = io.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: len - left,
                len,
            }
            .into_io());
        }
        left -= n;
    }
    Ok(())
}

fn check_len(len: usize, max: usize) -> io::Result<()> {
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        }
        .into_io());
    }
    Ok(())
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R, max: usize) -> io::Result<Bytes> {
    let len = read_header(io).await?;
    check_len(len, max)?;
    read_body(io, len).await
}

/// Writes one frame; refuses a body over `max` bytes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    body: &[u8],
    max: usize,
) -> io::Result<()> {
    if body.len() > max || u32::try_from(body.len()).is_err() {
        return Err(FrameError::TooLarge {
            len: body.len() as u64,
            max,
        }
        .into_io());
    }
    io.write_all(&(body.len() as u32).to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

/// A request as the codec carries it: bytes this node sends, or what it read from a peer.
#[derive(Debug)]
pub enum Frame {
    /// A request's bytes; on the receiving side, with the permit that counts them against the
    /// sender's caps until the request is answered.
    Body {
        /// The request.
        body: Bytes,
        /// Its share of the caps (`None` for a request this node sends).
        permit: Option<Permit>,
    },
    /// A request read from a peer and refused by the caps; its bytes were discarded unkept.
    Refused {
        /// Its announced length.
        len: usize,
        /// The cap it would have exceeded.
        why: Refusal,
    },
}

/// The account whose connection handler is being built (see [`Bound`]).
type Binding = Arc<Mutex<Option<AccountId>>>;

/// The request-response codec: one frame each way, bounded by `max`; a request's length is
/// admitted by the node's [`Limiter`] before its bytes are read.
///
/// libp2p clones the codec once per connection, and that clone once per stream; the
/// connection's clone is made while the transport's behaviour names the connection's peer,
/// and remembers it.
#[derive(Debug)]
pub struct FrameCodec {
    max: usize,
    limiter: Arc<Limiter>,
    /// The remote account of this connection; `None` on the behaviour's own codec or for a
    /// peer that is not a memo account (its requests are dropped).
    peer: Option<AccountId>,
    binding: Binding,
}

impl FrameCodec {
    /// A codec for frames of at most `max` bytes, admitting requests through `limiter`.
    pub fn new(max: usize, limiter: Arc<Limiter>) -> Self {
        Self {
            max,
            limiter,
            peer: None,
            binding: Arc::default(),
        }
    }
}

impl Clone for FrameCodec {
    fn clone(&self) -> Self {
        let peer = self
            .peer
            .or_else(|| *self.binding.lock().unwrap_or_else(|p| p.into_inner()));
        Self {
            max: self.max,
            limiter: self.limiter.clone(),
            peer,
            binding: self.binding.clone(),
        }
    }
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Bytes;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let len = read_header(io).await?;
        check_len(len, self.max)?;
        let Some(peer) = self.peer else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "request from a peer that is not a memo account",
            ));
        };
        match self.limiter.admit(peer, len) {
            // On an error the permit is dropped here, and released.
            Ok(permit) => Ok(Frame::Body {
                body: read_body(io, len).await?,
                permit: Some(permit),
            }),
            Err(why) => {
                discard(io, len).await?;
                Ok(Frame::Refused { len, why })
            }
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Frame::Body { body, .. } => write_frame(io, &body, self.max).await,
            Frame::Refused { .. } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a refused request is not sent",
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max).await
    }
}

type Inner = request_response::Behaviour<FrameCodec>;

/// The request-response behaviour, with each connection's codec bound to the connection's
/// remote account: the peer id is known when the connection handler is built, and libp2p
/// clones the codec into the handler right then.
pub(super) struct Bound {
    /// The request-response behaviour itself.
    pub(super) inner: Inner,
    binding: Binding,
}

impl Bound {
    /// Wraps `inner`, whose codec is `codec` (a clone of it, sharing its binding).
    pub(super) fn new(inner: Inner, codec: &FrameCodec) -> Self {
        Self {
            inner,
            binding: codec.binding.clone(),
        }
    }

    /// Runs `build` with the codec bound to `peer`.
    fn bound<T>(&mut self, peer: PeerId, build: impl FnOnce(&mut Inner) -> T) -> T {
        let account = account_of(&peer).ok();
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = account;
        let out = build(&mut self.inner);
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = None;
        out
    }
}

impl NetworkBehaviour for Bound {
    type ConnectionHandler = <Inner as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = <Inner as NetworkBehaviour>::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.bound(peer, |inner| {
            inner.handle_established_inbound_connection(id, peer, local, remote)
        })
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        address: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.bound(peer, |inner| {
            inner.handle_established_outbound_connection(id, peer, address, role, port_use)
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip() {
        block_on(async {
            for len in [0usize, 1, 1000, GROWTH, GROWTH + 1, 3 * GROWTH + 17] {
                let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut out = Vec::new();
                write_frame(&mut out, &body, 4 * GROWTH).await.unwrap();
                assert_eq!(out.len(), 4 + len);
                let got = read_frame(&mut Cursor::new(out), 4 * GROWTH).await.unwrap();
                assert_eq!(&got[..], &body[..]);
            }
        });
    }

    #[test]
    fn a_huge_announced_length_is_refused_from_the_header_alone() {
        block_on(async {
            // Announces 4 GiB - 1 and sends nothing more: refused without reading or allocating.
            let wire = u32::MAX.to_be_bytes().to_vec();
            let err = read_frame(&mut Cursor::new(wire), 1024).await.unwrap_err();
            assert_eq!(
                FrameError::from_io(&err),
                Some(&FrameError::TooLarge {
                    len: u32::MAX as u64,
                    max: 1024
                })
            );
        });
    }

    #[test]
    fn writing_over_the_limit_is_refused_before_any_byte() {
        block_on(async {
            let mut out = Vec::new();
            let err = write_frame(&mut out, &[0u8; 11], 10).await.unwrap_err();
            assert!(matches!(
                FrameError::from_io(&err),
                Some(FrameError::TooLarge { len: 11, max: 10 })
            ));
            assert!(out.is_empty());
        });
    }

    #[test]
    fn a_request_over_the_caps_is_discarded_unkept_and_the_next_one_is_read() {
        use crate::transport::limits::{Limits, Usage};
        use request_response::Codec as _;
        block_on(async {
            let limiter = Limiter::new(Limits {
                stranger_bytes: 10,
                ..Limits::default()
            });
            let peer = memo_core::Keypair::from_seed("codec-peer").account();
            let mut codec = FrameCodec::new(100, limiter.clone());
            let protocol = StreamProtocol::new(crate::transport::p2p::PROTOCOL);
            let mut wire = Vec::new();
            write_frame(&mut wire, &[1u8; 20], 100).await.unwrap();
            write_frame(&mut wire, &[2u8; 5], 100).await.unwrap();
            // Not bound to a memo account: nothing is read.
            let err = codec
                .read_request(&protocol, &mut Cursor::new(wire.clone()))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            *codec.binding.lock().unwrap() = Some(peer);
            let mut codec = codec.clone();
            let mut io = Cursor::new(wire);
            let first = codec.read_request(&protocol, &mut io).await.unwrap();
            assert!(matches!(first, Frame::Refused { len: 20, .. }), "{first:?}");
            assert_eq!(io.position(), 24, "the refused frame's bytes were consumed");
            let Frame::Body { body, permit } =
                codec.read_request(&protocol, &mut io).await.unwrap()
            else {
                panic!("the second frame fits");
            };
            assert_eq!(&body[..], &[2u8; 5]);
            assert_eq!(
                limiter.in_flight(),
                Usage {
                    bytes: 5,
                    requests: 1
                }
            );
            drop(permit);
            assert_eq!(limiter.in_flight(), Usage::default());
        });
    }

    #[test]
    fn short_streams_are_typed() {
        block_on(async {
            let err = read_frame(&mut Cursor::new(Vec::new()), 10)
                .await
                .unwrap_err();
            assert_eq!(FrameError::from_io(&err), Some(&FrameError::Empty));
            let err = read_frame(&mut Cursor::new(vec![0, 0]), 10)
                .await
                .unwrap_err();
            assert!(matches!(
                FrameError::from_io(&err),
                Some(FrameError::Truncated { .. })
            ));
            let mut wire = 5u32.to_be_bytes().to_vec();
            wire.extend_from_slice(b"abc");
            let err = read_frame(&mut Cursor::new(wire), 10).await.unwrap_err();
            assert_eq!(
                FrameError::from_io(&err),
                Some(&FrameError::Truncated { got: 3, len: 5 })
            );
        });
    }
}

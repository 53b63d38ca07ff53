//! Framing of requests and responses on a libp2p stream: a 4-byte big-endian length, then the
//! bytes. The length is checked against the limit before anything is allocated, and the buffer
//! grows with the bytes that actually arrive, so a peer that announces a huge frame and sends
//! nothing costs nothing.

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use std::io;

/// Buffer growth step while a frame arrives.
const GROWTH: usize = 256 * 1024;

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

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R, max: usize) -> io::Result<Bytes> {
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
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        }
        .into_io());
    }
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

/// The request-response codec: one frame each way, bounded by `max`.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    /// The largest frame read or written.
    pub max: usize,
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Bytes;
    type Response = Bytes;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await
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
        req: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max).await
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

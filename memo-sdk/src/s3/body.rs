//! Request and response bodies: an S3 request body read as the client's `AsyncRead` (hashing
//! and counting as it goes), and a response body fed by a task writing an object.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why reading a request body stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyStop {
    /// It grew past the size limit.
    TooLarge,
    /// The client's stream failed (it disconnected, or a chunk signature was wrong).
    Broken(String),
}

/// What a fully read body was.
#[derive(Debug, Clone)]
pub(crate) struct BodyDigest {
    pub(crate) len: u64,
    pub(crate) md5: [u8; 16],
}

/// A request body as an `AsyncRead`: hashes (MD5, for the ETag) and counts what passes, and
/// fails with an error once more than `limit` bytes came.
pub(crate) struct BodyReader {
    stream: StreamingBlob,
    chunk: Bytes,
    md5: Md5,
    len: u64,
    limit: u64,
    ended: bool,
    stop: Arc<Mutex<Option<BodyStop>>>,
    done: Arc<Mutex<Option<BodyDigest>>>,
}

/// What a [`BodyReader`] reports once the client's put returned.
#[derive(Clone)]
pub(crate) struct BodyOutcome {
    stop: Arc<Mutex<Option<BodyStop>>>,
    done: Arc<Mutex<Option<BodyDigest>>>,
}

impl BodyOutcome {
    /// Why the body stopped early, if it did.
    pub(crate) fn stop(&self) -> Option<BodyStop> {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The digest of the whole body, once its end was read.
    pub(crate) fn digest(&self) -> Option<BodyDigest> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl BodyReader {
    pub(crate) fn new(stream: StreamingBlob, limit: u64) -> (Self, BodyOutcome) {
        let stop = Arc::new(Mutex::new(None));
        let done = Arc::new(Mutex::new(None));
        let outcome = BodyOutcome {
            stop: stop.clone(),
            done: done.clone(),
        };
        let reader = Self {
            stream,
            chunk: Bytes::new(),
            md5: Md5::new(),
            len: 0,
            limit,
            ended: false,
            stop,
            done,
        };
        (reader, outcome)
    }

    fn fail(&self, why: BodyStop) -> io::Error {
        let msg = match &why {
            BodyStop::TooLarge => "request body over the size limit".to_string(),
            BodyStop::Broken(e) => format!("request body: {e}"),
        };
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        io::Error::other(msg)
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.chunk.is_empty() {
            if this.ended {
                // After an error, every read fails again: a reader never sees a clean end.
                return Poll::Ready(
                    match this.stop.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                        None => Ok(()),
                        Some(_) => Err(io::Error::other("request body failed")),
                    },
                );
            }
            match this.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.ended = true;
                    let md5: [u8; 16] = this.md5.clone().finalize().into();
                    *this.done.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(BodyDigest { len: this.len, md5 });
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    return Poll::Ready(Err(this.fail(BodyStop::Broken(e.to_string()))));
                }
                Poll::Ready(Some(Ok(b))) => {
                    this.len += b.len() as u64;
                    if this.len > this.limit {
                        this.ended = true;
                        return Poll::Ready(Err(this.fail(BodyStop::TooLarge)));
                    }
                    this.md5.update(&b);
                    this.chunk = b;
                }
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// The writing end of a response body: each write becomes one `Bytes` sent down a bounded
/// channel (one copy, and at most a few writes in flight).
pub(crate) struct ChannelWriter {
    tx: futures::channel::mpsc::Sender<io::Result<Bytes>>,
}

impl ChannelWriter {
    /// Ends the body with an error (the response then ends in an error, not short).
    pub(crate) async fn fail(mut self, why: String) {
        use futures::SinkExt;
        let _ = self.tx.send(Err(io::Error::other(why))).await;
    }
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.tx.poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Ready(Ok(())) => {}
        }
        match this.tx.start_send(Ok(Bytes::copy_from_slice(buf))) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.close_channel();
        Poll::Ready(Ok(()))
    }
}

/// A response body fed by a [`ChannelWriter`]: the writer for a task, and the body's stream.
pub(crate) fn channel_body() -> (
    ChannelWriter,
    futures::channel::mpsc::Receiver<io::Result<Bytes>>,
) {
    let (tx, rx) = futures::channel::mpsc::channel(2);
    (ChannelWriter { tx }, rx)
}

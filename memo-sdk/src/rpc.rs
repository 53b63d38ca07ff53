//! Calling another node: encode a [`Request`], send it, decode the [`Response`].

use bytes::Bytes;
use memo_core::AccountId;
use memo_core::protocol::{RemoteError, Request, Response};
use memo_core::transport::{Transport, TransportError};
use memo_core::wire::WireError;

/// A call to another node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The message did not get through.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The answer was not a valid response.
    #[error("peer {peer:?} sent a malformed response: {error}")]
    Malformed {
        /// The peer.
        peer: AccountId,
        /// What was wrong.
        error: WireError,
    },
    /// The peer refused the request.
    #[error("peer {peer:?} refused: {error}")]
    Remote {
        /// The peer.
        peer: AccountId,
        /// Its reason.
        error: RemoteError,
    },
    /// The peer answered with a response of the wrong kind.
    #[error("peer {peer:?} answered {got} to {asked}")]
    Unexpected {
        /// The peer.
        peer: AccountId,
        /// The request kind.
        asked: &'static str,
        /// The response kind.
        got: String,
    },
}

/// Sends `req` to `peer` and returns its response; a [`Response::Error`] becomes
/// [`RpcError::Remote`].
pub async fn call(
    transport: &dyn Transport,
    peer: AccountId,
    req: &Request,
) -> Result<Response, RpcError> {
    let raw = transport.request(peer, Bytes::from(req.to_bytes())).await?;
    match Response::from_shared(&raw) {
        Ok(r) => remote(peer, r),
        Err(error) => Err(RpcError::Malformed { peer, error }),
    }
}

/// `response` from `peer`, with a [`Response::Error`] turned into [`RpcError::Remote`].
pub fn remote(peer: AccountId, response: Response) -> Result<Response, RpcError> {
    match response {
        Response::Error(error) => Err(RpcError::Remote { peer, error }),
        r => Ok(r),
    }
}

/// How a caller reaches a peer: over the transport, or through [`crate::lane::Lanes`], which
/// sends shard puts and gets on providers' lanes and the rest over the transport.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// Every request over the transport.
    Transport(&'a dyn Transport),
    /// Shard requests on lanes where providers offer them.
    Lanes(&'a crate::lane::Lanes),
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

/// The error for a response of the wrong kind.
pub fn unexpected(peer: AccountId, asked: &'static str, got: &Response) -> RpcError {
    let got = format!("{got:?}");
    RpcError::Unexpected {
        peer,
        asked,
        got: got.chars().take(60).collect(),
    }
}

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

/// The error for a response of the wrong kind.
pub fn unexpected(peer: AccountId, asked: &'static str, got: &Response) -> RpcError {
    let got = format!("{got:?}");
    RpcError::Unexpected {
        peer,
        asked,
        got: got.chars().take(60).collect(),
    }
}

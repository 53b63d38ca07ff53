//! One node, several services: routes each incoming request to the service that serves it
//! ([`serve`], [`Service`]), and builds a whole keeper or provider process from its config
//! ([`Node`], in [`builder`]), with its metrics ([`metrics`]) and status server ([`status`]).

pub mod builder;
pub mod directory;
pub mod metrics;
pub mod status;

pub use builder::{Node, NodeError};

use async_trait::async_trait;
use bytes::Bytes;
use memo_core::AccountId;
use memo_core::protocol::{ErrorCode, Request, Response};
use memo_core::transport::{Incoming, Transport};
use std::sync::Arc;
use tracing::debug;

/// Something a node serves: keeper, provider, ledger...
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Answers `req` from the authenticated `from`, or `None` if this service does not serve
    /// this kind of request (the next service is asked).
    async fn handle(&self, from: AccountId, req: &Request) -> Option<Response>;
}

/// Serves `services` on `transport` until it closes; each request runs in its own task.
pub async fn serve(transport: Arc<dyn Transport>, services: Vec<Arc<dyn Service>>) {
    let services = Arc::new(services);
    while let Some(incoming) = transport.next_incoming().await {
        let services = services.clone();
        tokio::spawn(async move { dispatch(&services, incoming).await });
    }
    debug!(node = %transport.local_id().label(), "transport closed");
}

/// Answers one request with the first of `services` that serves it (for callers that run their
/// own accept loop, e.g. to cancel requests in flight on shutdown).
pub async fn dispatch(services: &[Arc<dyn Service>], incoming: Incoming) {
    let Incoming { from, body, reply } = incoming;
    let response = match Request::from_shared(&body) {
        Ok(req) => respond(services, from, &req).await,
        Err(e) => Response::error(ErrorCode::BadRequest, e.to_string()),
    };
    let _ = reply.send(Bytes::from(response.to_bytes()));
}

/// The answer of the first of `services` that serves `req`, or a refusal naming the request
/// kind if none does.
pub async fn respond(services: &[Arc<dyn Service>], from: AccountId, req: &Request) -> Response {
    for s in services {
        if let Some(r) = s.handle(from, req).await {
            return r;
        }
    }
    Response::error(
        ErrorCode::BadRequest,
        format!("this node does not serve {}", req.kind()),
    )
}

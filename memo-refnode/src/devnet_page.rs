//! The devnet's page: one page for the whole devnet, served by `memo devnet`, that polls every
//! node's `/api/status` (each node's status server allows that from another origin) and shows
//! each node's health, or that it is down.
//!
//! `/` is the page, `/api/nodes` the nodes it polls (name, role and status page of each);
//! anything else is a 404.

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

/// The page.
const PAGE: &str = include_str!("devnet.html");

/// A node the page shows.
#[derive(serde::Serialize, Clone, Debug)]
pub struct PageNode {
    /// Its name.
    pub name: String,
    /// `keeper` or `provider`.
    pub role: String,
    /// Its status page (`http://HOST:PORT/`).
    pub status: String,
}

/// Serves the devnet page for `nodes` on `bind` in the background; returns its address.
pub async fn start(bind: &str, nodes: Vec<PageNode>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("the devnet page on {bind}"))?;
    let addr = listener.local_addr()?;
    let nodes = Arc::new(nodes);
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/api/nodes",
            get(move || {
                let nodes = nodes.clone();
                async move { axum::Json((*nodes).clone()) }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "no such page; try / or /api/nodes"})),
            )
                .into_response()
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the devnet page stopped");
        }
    });
    Ok(addr)
}

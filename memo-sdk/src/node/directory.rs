//! A keeper's directory ([`Request::Directory`]): the nodes it knows and where they listen,
//! and which node serves the ledger, so that a client configured with one keeper finds the
//! other keepers and the providers.

use super::Service;
use crate::ledger::Ledger;
use async_trait::async_trait;
use memo_core::AccountId;
use memo_core::contract::{Answer, Query, RoleInfo};
use memo_core::protocol::{PeerEntry, Request, Response};
use std::sync::Arc;

/// Answers [`Request::Directory`]: the nodes of a keeper's config (itself first) and every
/// provider registered on the ledger. Where the ledger has an address for a node (its
/// registration, or the new address it announced after a restart), that one is given; else
/// the config's.
pub struct DirectoryService {
    peers: Vec<PeerEntry>,
    ledger: Option<Arc<dyn Ledger>>,
    ledger_node: Option<AccountId>,
}

impl std::fmt::Debug for DirectoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryService")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl DirectoryService {
    /// Serves `peers` (this node first; an empty address is looked up on `ledger`), the
    /// providers registered on `ledger`, and the ledger node `ledger_node`.
    pub fn new(
        peers: Vec<PeerEntry>,
        ledger: Option<Arc<dyn Ledger>>,
        ledger_node: Option<AccountId>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peers,
            ledger,
            ledger_node,
        })
    }

    async fn peers(&self) -> Vec<PeerEntry> {
        let mut peers = self.peers.clone();
        let Some(ledger) = &self.ledger else {
            peers.retain(|p| !p.address.is_empty());
            return peers;
        };
        let offers = match ledger.query(Query::Providers).await {
            Ok(Answer::Providers(offers)) => offers,
            _ => Vec::new(),
        };
        for p in peers.iter_mut() {
            if let Some(o) = offers.iter().find(|o| o.provider == p.account) {
                if !o.address.is_empty() {
                    p.address = o.address.clone();
                }
            } else if let Ok(Answer::Role(Some(role))) = ledger.query(Query::Role(p.account)).await
            {
                match role.info {
                    RoleInfo::Keeper { address, .. } | RoleInfo::Provider { address, .. }
                        if !address.is_empty() =>
                    {
                        p.address = address
                    }
                    _ => {}
                }
            }
        }
        for o in offers {
            if !peers.iter().any(|p| p.account == o.provider) {
                peers.push(PeerEntry {
                    name: format!("provider-{}", o.provider.short()),
                    keeper: false,
                    account: o.provider,
                    address: o.address,
                });
            }
        }
        peers.retain(|p| !p.address.is_empty());
        peers
    }
}

#[async_trait]
impl Service for DirectoryService {
    async fn handle(&self, _from: AccountId, req: &Request) -> Option<Response> {
        match req {
            Request::Directory => Some(Response::Directory {
                peers: self.peers().await,
                ledger: self.ledger_node,
            }),
            _ => None,
        }
    }
}

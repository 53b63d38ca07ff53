//! A keeper's directory ([`Request::Directory`]): the nodes it knows and where they listen,
//! and which node serves the ledger, so that a client configured with one keeper finds the
//! other keepers and the providers; and a node's address book kept in step with the ledger,
//! where nodes announce their addresses ([`spawn_address_book`]).

use super::Service;
use crate::env::Env;
use crate::ledger::Ledger;
use async_trait::async_trait;
use memo_core::AccountId;
use memo_core::contract::{Answer, Query};
use memo_core::protocol::{PeerEntry, Request, Response};
use memo_core::transport::Transport;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{debug, info};

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
        if let Some(ledger) = &self.ledger {
            let accounts: Vec<AccountId> = peers.iter().map(|p| p.account).collect();
            for (account, address) in ledger_addresses(ledger.as_ref(), &accounts).await {
                match peers.iter_mut().find(|p| p.account == account) {
                    Some(p) => p.address = address,
                    // Not in the config: a provider that registered on the ledger.
                    None => peers.push(PeerEntry {
                        name: format!("provider-{}", account.short()),
                        keeper: false,
                        account,
                        address,
                    }),
                }
            }
        }
        peers.retain(|p| !p.address.is_empty());
        peers
    }
}

/// The addresses the ledger has: every provider it offers, and each of `others` that is not
/// among them (by its registered role). Empty addresses are left out.
async fn ledger_addresses(ledger: &dyn Ledger, others: &[AccountId]) -> Vec<(AccountId, String)> {
    let mut found: Vec<(AccountId, String)> = match ledger.query(Query::Providers).await {
        Ok(Answer::Providers(offers)) => offers
            .into_iter()
            .map(|o| (o.provider, o.address))
            .collect(),
        _ => Vec::new(),
    };
    for a in others {
        if found.iter().any(|(f, _)| f == a) {
            continue;
        }
        if let Ok(Answer::Role(Some(role))) = ledger.query(Query::Role(*a)).await {
            found.push((*a, role.address().to_string()));
        }
    }
    found.retain(|(_, address)| !address.is_empty());
    found
}

/// How often a node looks up its peers' addresses on the ledger.
pub const ADDRESS_BOOK_EVERY: Duration = Duration::from_secs(5);

/// Keeps `transport`'s addresses of the providers and of `keepers` in step with the ledger,
/// every [`ADDRESS_BOOK_EVERY`] of `env`'s clock: a node that came back on another address
/// announced it there. `known` are the addresses the node started with (its config's).
pub fn spawn_address_book(
    env: Env,
    transport: Arc<dyn Transport>,
    ledger: Arc<dyn Ledger>,
    keepers: Vec<AccountId>,
    mut known: HashMap<AccountId, String>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            env.sleep(ADDRESS_BOOK_EVERY).await;
            for (peer, address) in ledger_addresses(ledger.as_ref(), &keepers).await {
                if known.get(&peer) == Some(&address) {
                    continue;
                }
                match known.insert(peer, address.clone()) {
                    Some(was) => {
                        info!(peer = %peer.label(), %address, %was, "a peer announced a new address")
                    }
                    None => debug!(peer = %peer.label(), %address, "learned a peer's address"),
                }
                transport.add_address(peer, &address);
            }
        }
    })
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

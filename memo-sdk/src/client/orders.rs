//! Storage orders for uploaded data: before a put's object operation goes to the keepers,
//! the user orders storage from each provider that received its shards, with the providers'
//! receipts as the orders' commitments.
//!
//! # Who submits, and when
//!
//! The user's client: it signs (an order moves the user's money into escrow) and it holds the
//! balance. It orders after the uploads and *before* the object operation, and keepers with a
//! ledger admit a put only when every shard it uploaded is held by a live order of that user
//! (`Query::Holdings`): nothing becomes visible unpaid. If the operation is then refused, the
//! client ends the orders again (they have not started, so the whole escrow returns). Chunks
//! the network already had move no data and get no new order.
//!
//! # Shape
//!
//! One order per (provider, shard length) per put, because a commitment has one shard length:
//! shards of an object's full chunks share a length, the last chunk's and the manifest's
//! usually differ. Each order carries the provider's receipts for its shards (the contract
//! checks them), is for `shards × shard_len` bytes at the provider's asking price (from its
//! registration, read once per client), for [`OrderConfig::duration`] epochs. Large groups are split at
//! [`OrderConfig::max_shards_per_order`] shards. All orders of a put go in one batch, so a put
//! waits for one block.
//!
//! # Ending
//!
//! When the last owner deletes a chunk, the keeper that applied the delete ends the orders
//! whose shards are all purged (`MarketCall::EndOrder`, allowed to the user's keepers); see
//! [`crate::keeper::challenger`].

use crate::ledger::tx::{TxError, TxSender};
use crate::ledger::{Ledger, LedgerError};
use memo_core::contract::{
    Amount, Answer, Call, MarketCall, OrderId, Outcome, Query, Rejection, RoleInfo, RolesCall,
};
use memo_core::ticket::Receipt;
use memo_core::{AccountId, Keypair, ShardId, Signed};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a client orders storage.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// Epochs each order runs (the escrow covers them all).
    pub duration: u64,
    /// Most shards in one order (and one commitment).
    pub max_shards_per_order: usize,
    /// How long to wait for each batch to be included.
    pub wait: Duration,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            duration: 1_000,
            max_shards_per_order: 512,
            wait: Duration::from_secs(30),
        }
    }
}

/// Ordering storage failed. The put stops there: its uploads are withdrawn and its object
/// operation is never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// Sending or following a transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The ledger rejected an order or a commitment.
    #[error("the ledger rejected {what} for provider {provider:?}: {reason}")]
    Rejected {
        /// "order", "share" or "registration".
        what: &'static str,
        /// The provider concerned.
        provider: AccountId,
        /// Why.
        reason: Rejection,
    },
    /// A provider chosen by a keeper is not registered as a provider on the ledger.
    #[error("provider {0:?} is not registered on the ledger")]
    UnknownProvider(AccountId),
    /// A provider's receipt does not decode.
    #[error("a receipt from provider {0:?} does not decode")]
    BadReceipt(AccountId),
}

impl From<LedgerError> for OrderError {
    fn from(e: LedgerError) -> Self {
        OrderError::Tx(TxError::Ledger(e))
    }
}

/// One order to create: `receipts` (each for a shard of `shard_len` bytes) signed by
/// `provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPlan {
    /// The provider.
    pub provider: AccountId,
    /// Length of each shard.
    pub shard_len: u64,
    /// The provider's receipts for the shards it holds, in the put's order.
    pub receipts: Vec<Signed<Receipt>>,
}

impl OrderPlan {
    /// Bytes ordered.
    pub fn bytes(&self) -> u64 {
        self.shard_len * self.receipts.len() as u64
    }
}

/// Groups a put's receipts into orders: one per (provider, shard length), split at `max`
/// shards. A receipt that does not decode is an error.
pub fn plan(receipts: &[Signed<Receipt>], max: usize) -> Result<Vec<OrderPlan>, OrderError> {
    let mut groups: BTreeMap<(AccountId, u64), Vec<Signed<Receipt>>> = BTreeMap::new();
    for r in receipts {
        let body = r
            .open_unverified()
            .map_err(|_| OrderError::BadReceipt(r.signer))?;
        groups
            .entry((r.signer, body.size))
            .or_default()
            .push(r.clone());
    }
    let max = max.max(1);
    Ok(groups
        .into_iter()
        .flat_map(|((provider, shard_len), receipts)| {
            receipts
                .chunks(max)
                .map(|r| OrderPlan {
                    provider,
                    shard_len,
                    receipts: r.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

/// A user's storage orders on a ledger.
#[derive(Debug)]
pub struct Orders {
    tx: TxSender,
    config: OrderConfig,
    registered: AtomicBool,
    /// Providers' asking prices as this client last read them from the ledger, reused by its
    /// later puts (the files of one `put -r`, say). A price is set at registration; if a
    /// provider registered again at a higher one, its order is refused, and the put reads the
    /// prices again and orders once more.
    prices: std::sync::Mutex<BTreeMap<AccountId, Amount>>,
}

impl Orders {
    /// Orders for `keypair`'s account on `ledger`.
    pub fn new(keypair: Keypair, ledger: Arc<dyn Ledger>, config: OrderConfig) -> Self {
        Self {
            tx: TxSender::new(keypair, ledger),
            config,
            registered: AtomicBool::new(false),
            prices: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        self.tx.ledger()
    }

    /// Registers the user on the ledger if it is not yet.
    async fn ensure_registered(&self) -> Result<(), OrderError> {
        if self.registered.load(Ordering::Relaxed) {
            return Ok(());
        }
        let me = self.tx.account();
        if let Answer::Role(None) = self.ledger().query(Query::Role(me)).await? {
            let r = self
                .tx
                .send_and_wait(vec![Call::Roles(RolesCall::RegisterUser)], self.config.wait)
                .await?;
            match r.into_iter().next() {
                Some(Ok(_)) | Some(Err(Rejection::AlreadyRegistered(_))) => {}
                Some(Err(reason)) => {
                    return Err(OrderError::Rejected {
                        what: "registration",
                        provider: me,
                        reason,
                    });
                }
                None => {}
            }
        }
        self.registered.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The asking prices of `providers`: those this client knows, and the others read from
    /// the ledger (all of them when `fresh`).
    async fn prices(
        &self,
        providers: &std::collections::BTreeSet<AccountId>,
        fresh: bool,
    ) -> Result<BTreeMap<AccountId, Amount>, OrderError> {
        let missing: Vec<AccountId> = {
            let cache = self.prices.lock().unwrap_or_else(|e| e.into_inner());
            providers
                .iter()
                .filter(|p| fresh || !cache.contains_key(p))
                .copied()
                .collect()
        };
        let asked = futures::future::join_all(missing.iter().map(|p| self.price(*p))).await;
        let mut cache = self.prices.lock().unwrap_or_else(|e| e.into_inner());
        for (p, price) in missing.into_iter().zip(asked) {
            cache.insert(p, price?);
        }
        providers
            .iter()
            .map(|p| {
                cache
                    .get(p)
                    .map(|price| (*p, *price))
                    .ok_or(OrderError::UnknownProvider(*p))
            })
            .collect()
    }

    async fn price(&self, provider: AccountId) -> Result<Amount, OrderError> {
        match self.ledger().query(Query::Role(provider)).await? {
            Answer::Role(Some(r)) => match r.info {
                RoleInfo::Provider { price, .. } => Ok(price),
                _ => Err(OrderError::UnknownProvider(provider)),
            },
            _ => Err(OrderError::UnknownProvider(provider)),
        }
    }

    /// Orders storage for the shards of a put from their providers' receipts (see the
    /// module docs), in one batch. Returns the order ids, in plan order. If any order is
    /// refused, the ones created are ended again (they have not started: the whole escrow
    /// returns) and the refusal is the error.
    pub async fn order_put(
        &self,
        receipts: &[Signed<Receipt>],
    ) -> Result<Vec<OrderId>, OrderError> {
        let plans = plan(receipts, self.config.max_shards_per_order)?;
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_registered().await?;
        let providers: std::collections::BTreeSet<AccountId> =
            plans.iter().map(|p| p.provider).collect();
        // Known prices first; if one was raised since, read them all again and order once more.
        let mut fresh = false;
        loop {
            let prices = self.prices(&providers, fresh).await?;
            let creates = plans
                .iter()
                .map(|p| {
                    Call::Market(MarketCall::CreateOrder {
                        provider: p.provider,
                        price: prices[&p.provider],
                        duration: self.config.duration,
                        receipts: p.receipts.clone(),
                    })
                })
                .collect();
            let created = self.tx.send_and_wait(creates, self.config.wait).await?;
            let mut ids = Vec::with_capacity(plans.len());
            let mut refused = None;
            let mut stale = false;
            for (p, r) in plans.iter().zip(created) {
                match r {
                    Ok(Outcome::OrderCreated(id)) => ids.push(id),
                    Ok(other) => {
                        refused.get_or_insert(TxError::Unexpected(format!("{other:?}")).into());
                    }
                    Err(reason) => {
                        stale |= matches!(reason, Rejection::PriceBelowAsk { .. });
                        refused.get_or_insert(OrderError::Rejected {
                            what: "order",
                            provider: p.provider,
                            reason,
                        });
                    }
                }
            }
            match refused {
                None => return Ok(ids),
                Some(e) => {
                    self.cancel(&ids).await;
                    if stale && !fresh {
                        fresh = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Ends orders this client made for a put that did not go through. Best effort: an order
    /// left running is paid for data nobody references, and its provider reclaims the shards
    /// when their ticket expires.
    pub async fn cancel(&self, ids: &[OrderId]) {
        let calls = ids
            .iter()
            .map(|id| (*id, Call::Market(MarketCall::EndOrder { order: *id })))
            .collect();
        self.undo(calls, "end an unused order").await;
    }

    /// Sends `calls` (each about an order) for a put that did not go through, and logs those
    /// that fail (`what` was tried). Best effort.
    async fn undo(&self, calls: Vec<(OrderId, Call)>, what: &str) {
        if calls.is_empty() {
            return;
        }
        let (ids, calls): (Vec<OrderId>, Vec<Call>) = calls.into_iter().unzip();
        match self.tx.send_and_wait(calls, self.config.wait).await {
            Ok(rs) => {
                for (id, r) in ids.iter().zip(rs) {
                    if let Err(e) = r {
                        tracing::warn!(order = id, "could not {what}: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!(orders = ids.len(), "could not {what}: {e}"),
        }
    }
}

/// Shards of other users' orders that a put co-owns: each order with its shards.
pub type Shares = Vec<(OrderId, Vec<ShardId>)>;

impl Orders {
    /// Co-owns, on the ledger, the shards `held` (each `(provider, shard)`) of chunks a put
    /// claims without uploading them (deduplicated data): one `MarketCall::Share` per order
    /// that holds some of them, in one batch, paying the other owners this user's share (see
    /// `docs/economics.md`). Shards this user already owns, or that no live order holds, are
    /// left out. Returns what it co-owns now; if a share is refused, the others are left
    /// again and the refusal is the error.
    pub async fn share(&self, held: &[(AccountId, ShardId)]) -> Result<Shares, OrderError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_registered().await?;
        let me = self.tx.account();
        let epoch = self.ledger().head().await?.epoch;
        let mut wanted: BTreeMap<OrderId, (AccountId, std::collections::BTreeSet<ShardId>)> =
            BTreeMap::new();
        for batch in held.chunks(memo_core::contract::MAX_HOLDINGS_QUERY) {
            let Answer::Holdings(rows) =
                self.ledger().query(Query::Holdings(batch.to_vec())).await?
            else {
                return Err(
                    TxError::Unexpected("the ledger did not answer Holdings".into()).into(),
                );
            };
            for ((provider, shard), rows) in batch.iter().zip(rows) {
                let live: Vec<&memo_core::contract::Holding> =
                    memo_core::contract::live_holdings(&rows, epoch).collect();
                if live.iter().any(|(_, owner, _)| *owner == me) {
                    continue;
                }
                if let Some((id, _, _)) = live.first() {
                    wanted
                        .entry(*id)
                        .or_insert_with(|| (*provider, Default::default()))
                        .1
                        .insert(*shard);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let calls = wanted
            .iter()
            .map(|(order, (_, shards))| {
                Call::Market(MarketCall::Share {
                    order: *order,
                    shards: shards.iter().copied().collect(),
                })
            })
            .collect();
        let results = self.tx.send_and_wait(calls, self.config.wait).await?;
        let mut shared = Vec::new();
        let mut refused = None;
        for ((order, (provider, shards)), r) in wanted.into_iter().zip(results) {
            match r {
                Ok(_) => shared.push((order, shards.into_iter().collect())),
                Err(reason) => {
                    refused.get_or_insert(OrderError::Rejected {
                        what: "share",
                        provider,
                        reason,
                    });
                }
            }
        }
        match refused {
            None => Ok(shared),
            Some(e) => {
                self.unshare(&shared).await;
                Err(e)
            }
        }
    }

    /// Leaves shares this client took for a put that did not go through (best effort: the
    /// other owners refund them).
    pub async fn unshare(&self, shares: &Shares) {
        let user = self.tx.account();
        let calls = shares
            .iter()
            .map(|(order, shards)| {
                let call = Call::Market(MarketCall::Unshare {
                    order: *order,
                    user,
                    shards: shards.clone(),
                });
                (*order, call)
            })
            .collect();
        self.undo(calls, "leave an unused share").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(provider: &str, size: u64, shards: std::ops::Range<u8>) -> Vec<Signed<Receipt>> {
        let shards: Vec<memo_core::ShardId> =
            shards.map(|i| memo_core::ShardId::of(&[i])).collect();
        memo_core::testkit::store_receipts(
            &Keypair::from_seed(provider),
            Keypair::from_seed("u").account(),
            size,
            &shards,
        )
    }

    #[test]
    fn receipts_group_by_provider_and_length_and_split() {
        let mut all = receipts("p1", 100, 0..2);
        all.extend(receipts("p2", 100, 2..4));
        all.extend(receipts("p1", 7, 4..5));
        all.extend(receipts("p1", 100, 5..6));
        let plans = plan(&all, 10).unwrap();
        assert_eq!(plans.len(), 3, "p1 × 2 lengths, p2 × 1");
        let p1 = Keypair::from_seed("p1").account();
        let of = |p: &OrderPlan| (p.provider, p.shard_len, p.receipts.len(), p.bytes());
        let mut got: Vec<_> = plans.iter().map(of).collect();
        got.sort();
        let mut want = vec![
            (p1, 7, 1, 7),
            (p1, 100, 3, 300),
            (Keypair::from_seed("p2").account(), 100, 2, 200),
        ];
        want.sort();
        assert_eq!(got, want);
        // Split at the limit; nothing lost.
        let split = plan(&all, 1).unwrap();
        assert_eq!(split.len(), 6);
        assert!(split.iter().all(|p| p.receipts.len() == 1));
        assert_eq!(plan(&[], 10), Ok(vec![]));
        // A receipt that does not decode is refused.
        let mut bad = all[0].clone();
        bad.body.truncate(3);
        assert_eq!(plan(&[bad], 10), Err(OrderError::BadReceipt(p1)));
    }
}

//! Storage orders for placed data: after a put stores new chunks, the user orders storage from
//! each provider that received shards and commits the shard ids those providers must prove.
//!
//! # Who submits
//!
//! The user's client: it signs (an order moves the user's money into escrow) and it holds the
//! balance. It does so right after its object operation is applied, so an order never pays for
//! data that no object references. Chunks the network already had move no data and get no new
//! order (the uploader's orders keep paying for them).
//!
//! # Shape
//!
//! One order per (provider, shard length) per put, because a commitment has one shard length:
//! shards of an object's full chunks share a length, the last chunk's and the manifest's
//! usually differ. Each order is for `shards × shard_len` bytes at the provider's asking price
//! (from its registration), for [`OrderConfig::duration`] epochs, and is committed with its
//! shard ids in one `FilesCall::Commit`. Large groups are split at
//! [`OrderConfig::max_shards_per_order`] shards. All orders of a put are created in one batch
//! (one block), then all commitments in a second batch.
//!
//! # Ending
//!
//! When the last owner deletes a chunk, the keeper that applied the delete ends the orders
//! whose shards are all purged (`MarketCall::EndOrder`, allowed to the user's keepers); see
//! [`crate::keeper::challenger`].

use crate::ledger::tx::{TxError, TxSender};
use crate::ledger::{Ledger, LedgerError};
use memo_core::contract::{
    Amount, Answer, Call, FilesCall, MarketCall, OrderId, Outcome, Query, Rejection, RoleInfo,
    RolesCall,
};
use memo_core::ownership::ChunkInfo;
use memo_core::protocol::ChunkPlacement;
use memo_core::{AccountId, ChunkId, Keypair, ShardId};
use std::collections::{BTreeMap, HashMap};
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
            max_shards_per_order: 1_024,
            wait: Duration::from_secs(30),
        }
    }
}

/// Ordering storage failed. The object operation was applied already; its data is stored but
/// (partly) unpaid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// Sending or following a transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The ledger rejected an order or a commitment.
    #[error("the ledger rejected {what} for provider {provider:?}: {reason}")]
    Rejected {
        /// "order" or "commitment" or "registration".
        what: &'static str,
        /// The provider concerned.
        provider: AccountId,
        /// Why.
        reason: Rejection,
    },
    /// A provider chosen by a keeper is not registered as a provider on the ledger.
    #[error("provider {0:?} is not registered on the ledger")]
    UnknownProvider(AccountId),
    /// A placement does not fit its chunk (wrong shard count or a missing holder).
    #[error("placement of chunk {0} does not match its shards")]
    BadPlacement(ChunkId),
}

impl From<LedgerError> for OrderError {
    fn from(e: LedgerError) -> Self {
        OrderError::Tx(TxError::Ledger(e))
    }
}

/// One order to create: `shards` (each `shard_len` bytes) held by `provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPlan {
    /// The provider.
    pub provider: AccountId,
    /// Length of each shard.
    pub shard_len: u64,
    /// The shards it holds, in placement order.
    pub shards: Vec<ShardId>,
}

impl OrderPlan {
    /// Bytes ordered.
    pub fn bytes(&self) -> u64 {
        self.shard_len * self.shards.len() as u64
    }
}

/// Groups newly placed shards into orders: one per (provider, shard length), split at `max`
/// shards. `placements` name chunks of `chunks`; a placement for an unknown chunk, with another
/// shard count, or with a missing holder is an error.
pub fn plan(
    chunks: &[ChunkInfo],
    placements: &[ChunkPlacement],
    max: usize,
) -> Result<Vec<OrderPlan>, OrderError> {
    let by_id: HashMap<ChunkId, &ChunkInfo> = chunks.iter().map(|c| (c.id, c)).collect();
    let mut groups: BTreeMap<(AccountId, u64), Vec<ShardId>> = BTreeMap::new();
    for p in placements {
        let info = by_id
            .get(&p.chunk)
            .ok_or(OrderError::BadPlacement(p.chunk))?;
        let n = info.shards.len() as u64;
        if n == 0 || p.holders.len() != info.shards.len() || info.stored_bytes % n != 0 {
            return Err(OrderError::BadPlacement(p.chunk));
        }
        let shard_len = info.stored_bytes / n;
        for (holder, shard) in p.holders.iter().zip(&info.shards) {
            let holder = holder.ok_or(OrderError::BadPlacement(p.chunk))?;
            groups.entry((holder, shard_len)).or_default().push(*shard);
        }
    }
    let max = max.max(1);
    Ok(groups
        .into_iter()
        .flat_map(|((provider, shard_len), shards)| {
            shards
                .chunks(max)
                .map(|s| OrderPlan {
                    provider,
                    shard_len,
                    shards: s.to_vec(),
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
}

impl Orders {
    /// Orders for `keypair`'s account on `ledger`.
    pub fn new(keypair: Keypair, ledger: Arc<dyn Ledger>, config: OrderConfig) -> Self {
        Self {
            tx: TxSender::new(keypair, ledger),
            config,
            registered: AtomicBool::new(false),
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

    async fn price(&self, provider: AccountId) -> Result<Amount, OrderError> {
        match self.ledger().query(Query::Role(provider)).await? {
            Answer::Role(Some(r)) => match r.info {
                RoleInfo::Provider { price, .. } => Ok(price),
                _ => Err(OrderError::UnknownProvider(provider)),
            },
            _ => Err(OrderError::UnknownProvider(provider)),
        }
    }

    /// Orders and commits storage for the new chunks of a put (see the module docs). Returns
    /// the order ids, in plan order.
    pub async fn order_put(
        &self,
        chunks: &[ChunkInfo],
        placements: &[ChunkPlacement],
    ) -> Result<Vec<OrderId>, OrderError> {
        let plans = plan(chunks, placements, self.config.max_shards_per_order)?;
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_registered().await?;
        let mut prices: BTreeMap<AccountId, Amount> = BTreeMap::new();
        for p in &plans {
            if let std::collections::btree_map::Entry::Vacant(v) = prices.entry(p.provider) {
                v.insert(self.price(p.provider).await?);
            }
        }
        let creates = plans
            .iter()
            .map(|p| {
                Call::Market(MarketCall::CreateOrder {
                    provider: p.provider,
                    bytes: p.bytes(),
                    price: prices[&p.provider],
                    duration: self.config.duration,
                })
            })
            .collect();
        let created = self.tx.send_and_wait(creates, self.config.wait).await?;
        let mut ids = Vec::with_capacity(plans.len());
        for (p, r) in plans.iter().zip(created) {
            match r {
                Ok(Outcome::OrderCreated(id)) => ids.push(id),
                Ok(other) => {
                    return Err(TxError::Unexpected(format!("{other:?}")).into());
                }
                Err(reason) => {
                    return Err(OrderError::Rejected {
                        what: "order",
                        provider: p.provider,
                        reason,
                    });
                }
            }
        }
        let commits = plans
            .iter()
            .zip(&ids)
            .map(|(p, id)| {
                Call::Files(FilesCall::Commit {
                    order: *id,
                    shard_len: p.shard_len,
                    shards: p.shards.clone(),
                })
            })
            .collect();
        let committed = self.tx.send_and_wait(commits, self.config.wait).await?;
        for (p, r) in plans.iter().zip(committed) {
            if let Err(reason) = r {
                return Err(OrderError::Rejected {
                    what: "commitment",
                    provider: p.provider,
                    reason,
                });
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(seed: u8, n: usize, shard_len: u64) -> ChunkInfo {
        ChunkInfo {
            id: ChunkId::of(&[seed]),
            stored_bytes: shard_len * n as u64,
            shards: (0..n).map(|i| ShardId::of(&[seed, i as u8])).collect(),
        }
    }

    fn acct(i: u8) -> AccountId {
        AccountId([i; 32])
    }

    #[test]
    fn shards_group_by_provider_and_length_and_split() {
        let a = info(1, 3, 100);
        let b = info(2, 3, 100);
        let m = info(3, 3, 7);
        let place = |c: &ChunkInfo, hs: [u8; 3]| ChunkPlacement {
            chunk: c.id,
            holders: hs.iter().map(|h| Some(acct(*h))).collect(),
        };
        let ps = vec![
            place(&a, [1, 2, 3]),
            place(&b, [2, 3, 1]),
            place(&m, [1, 2, 3]),
        ];
        let plans = plan(&[a.clone(), b.clone(), m.clone()], &ps, 10).unwrap();
        assert_eq!(plans.len(), 6, "3 providers × 2 lengths");
        let p1: Vec<&OrderPlan> = plans.iter().filter(|p| p.provider == acct(1)).collect();
        assert_eq!(p1[0].shard_len, 7);
        assert_eq!(p1[0].shards, vec![m.shards[0]]);
        assert_eq!(p1[1].shard_len, 100);
        assert_eq!(p1[1].shards, vec![a.shards[0], b.shards[2]]);
        assert_eq!(p1[1].bytes(), 200);
        let total: usize = plans.iter().map(|p| p.shards.len()).sum();
        assert_eq!(total, 9);
        // Split at the limit.
        let split = plan(&[a.clone(), b.clone()], &ps[..2], 1).unwrap();
        assert_eq!(split.len(), 6);
        assert!(split.iter().all(|p| p.shards.len() == 1));
    }

    #[test]
    fn inconsistent_placements_are_refused() {
        let a = info(1, 3, 100);
        let short = ChunkPlacement {
            chunk: a.id,
            holders: vec![Some(acct(1)), Some(acct(2))],
        };
        assert_eq!(
            plan(std::slice::from_ref(&a), &[short], 10),
            Err(OrderError::BadPlacement(a.id))
        );
        let hole = ChunkPlacement {
            chunk: a.id,
            holders: vec![Some(acct(1)), None, Some(acct(2))],
        };
        assert!(plan(std::slice::from_ref(&a), &[hole], 10).is_err());
        let unknown = ChunkPlacement {
            chunk: ChunkId::of(b"x"),
            holders: vec![],
        };
        assert!(plan(&[a], &[unknown], 10).is_err());
        assert_eq!(plan(&[], &[], 10), Ok(vec![]));
    }
}

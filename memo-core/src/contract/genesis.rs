//! Genesis: the chain id, the parameters and the initial balances, from a TOML file.
//!
//! ```toml
//! chain = 7
//!
//! [params]
//! epoch_blocks = 10          # ticks (timed blocks) per epoch
//! min_keeper_stake = 1000
//! min_provider_stake = 1000
//! notice_epochs = 2          # a leaving role ends this many epochs later
//! keeper_fee_bps = 500       # share of each storage payment paid to the user's keepers
//! slash_amount = 100         # the least stake slashed per failed or missed proof
//! slash_epochs = 10          # a failed or missed proof slashes this many epochs of the order's pay
//! missed_grace = 2           # unproven epochs forgiven before misses are slashed
//! keepers_per_user = 2       # keepers matched to each user at registration
//! max_receipt_epochs = 64    # how far ahead a receipt may expire
//! max_order_epochs = 10000
//! max_shards_per_commit = 512 # most shards (receipts) in one order, at most 800
//! max_address_len = 256
//! repair_penalty = 50        # slashed per reassigned shard, paid to the repairing keeper
//!
//! [[balances]]
//! account = "<64 hex digits>"
//! amount = 1000000
//! ```

use super::error::GenesisError;
use super::types::Amount;
use crate::id::{AccountId, parse_hex32};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The contract's parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Ticks per epoch (at least 1): the blocks produced on the producer's timer, not those
    /// produced early for waiting transactions (see [`super::Tick`]).
    pub epoch_blocks: u64,
    /// Minimum stake of a keeper.
    pub min_keeper_stake: Amount,
    /// Minimum stake of a provider, to register and to take new orders.
    pub min_provider_stake: Amount,
    /// Epochs between a `Leave` and the end of the role.
    pub notice_epochs: u64,
    /// Share of each storage payment paid to the user's keepers, in basis points (≤ 10000).
    pub keeper_fee_bps: u32,
    /// The least stake slashed for a failed or missed proof (capped at the stake held).
    pub slash_amount: Amount,
    /// A failed or missed proof slashes this many epochs of the order's pay (at least
    /// `slash_amount`): the penalty scales with the value at risk. Optional in genesis files.
    #[serde(default = "default_slash_epochs")]
    pub slash_epochs: u64,
    /// Consecutive epochs a committed order may go unproven before each further miss is
    /// slashed like a failed proof. Optional in genesis files.
    #[serde(default = "default_missed_grace")]
    pub missed_grace: u32,
    /// Keepers matched to each user at registration.
    pub keepers_per_user: u32,
    /// A receipt may expire at most this many epochs after the current one.
    pub max_receipt_epochs: u64,
    /// Longest order, in epochs.
    pub max_order_epochs: u64,
    /// Most shard ids in one commitment.
    pub max_shards_per_commit: u32,
    /// Longest network address string.
    pub max_address_len: u32,
    /// Stake slashed from a failed provider per shard a keeper reassigns away from it
    /// (`FilesCall::Reassign`), paid to that keeper (capped at the stake held, after any
    /// shortfall of the new provider's price). Optional in genesis files.
    #[serde(default = "default_repair_penalty")]
    pub repair_penalty: Amount,
}

fn default_repair_penalty() -> Amount {
    50
}

fn default_slash_epochs() -> u64 {
    10
}

fn default_missed_grace() -> u32 {
    2
}

impl Default for Params {
    fn default() -> Self {
        Self {
            epoch_blocks: 10,
            min_keeper_stake: 1_000,
            min_provider_stake: 1_000,
            notice_epochs: 2,
            keeper_fee_bps: 500,
            slash_amount: 100,
            slash_epochs: default_slash_epochs(),
            missed_grace: default_missed_grace(),
            keepers_per_user: 2,
            max_receipt_epochs: 64,
            max_order_epochs: 10_000,
            max_shards_per_commit: 512,
            max_address_len: 256,
            repair_penalty: default_repair_penalty(),
        }
    }
}

/// The most shards (receipts) one order may carry: that many receipts keep a
/// [`MarketCall::CreateOrder`](super::MarketCall) under the transaction size limit.
pub const MAX_SHARDS_PER_ORDER: u32 = 800;

impl Params {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.epoch_blocks == 0 {
            return Err(GenesisError::Param("epoch_blocks"));
        }
        if self.keeper_fee_bps > 10_000 {
            return Err(GenesisError::Param("keeper_fee_bps"));
        }
        if self.max_order_epochs == 0 {
            return Err(GenesisError::Param("max_order_epochs"));
        }
        if self.max_shards_per_commit == 0 || self.max_shards_per_commit > MAX_SHARDS_PER_ORDER {
            // An order carries one signed receipt per shard; this many fit in a transaction.
            return Err(GenesisError::Param("max_shards_per_commit"));
        }
        Ok(())
    }
}

/// The chain's starting point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain id, carried by every transaction and receipt.
    pub chain: u64,
    /// Parameters.
    pub params: Params,
    /// Initial balances, sorted by account, each account once. Their sum is the supply.
    pub balances: Vec<(AccountId, Amount)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    chain: u64,
    #[serde(default)]
    params: Params,
    #[serde(default)]
    balances: Vec<BalanceLine>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceLine {
    account: String,
    amount: Amount,
}

impl Genesis {
    /// A genesis with these balances (validated, sorted).
    pub fn new(
        chain: u64,
        params: Params,
        balances: impl IntoIterator<Item = (AccountId, Amount)>,
    ) -> Result<Self, GenesisError> {
        params.validate()?;
        let mut list: Vec<(AccountId, Amount)> = balances.into_iter().collect();
        list.sort();
        let mut seen = BTreeSet::new();
        let mut total: Amount = 0;
        for (a, amount) in &list {
            if !seen.insert(*a) {
                return Err(GenesisError::Duplicate(a.to_hex()));
            }
            total = total.checked_add(*amount).ok_or(GenesisError::Overflow)?;
        }
        Ok(Self {
            chain,
            params,
            balances: list,
        })
    }

    /// Parses a genesis TOML file.
    pub fn from_toml(text: &str) -> Result<Self, GenesisError> {
        let file: GenesisFile =
            toml::from_str(text).map_err(|e| GenesisError::Toml(e.message().to_string()))?;
        let mut balances = Vec::with_capacity(file.balances.len());
        for line in file.balances {
            let a = parse_hex32(&line.account)
                .map_err(|_| GenesisError::Account(line.account.clone()))?;
            balances.push((AccountId(a), line.amount));
        }
        Self::new(file.chain, file.params, balances)
    }

    /// Renders this genesis as TOML (parses back to the same value).
    pub fn to_toml(&self) -> String {
        let file = GenesisFile {
            chain: self.chain,
            params: self.params.clone(),
            balances: self
                .balances
                .iter()
                .map(|(a, amount)| BalanceLine {
                    account: a.to_hex(),
                    amount: *amount,
                })
                .collect(),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// The total money minted.
    pub fn supply(&self) -> Amount {
        self.balances
            .iter()
            .map(|(_, a)| *a)
            .fold(0, Amount::saturating_add)
    }

    /// The genesis hash: the parent of block 1.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 genesis v1");
        h.update(&crate::wire::encode(self));
        *h.finalize().as_bytes()
    }
}

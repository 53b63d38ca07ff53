//! Transactions, calls, records and queries of the contract.

use crate::id::{AccountId, ShardId};
use crate::identity::{Signable, Signed};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of the ledger's token (the smallest unit).
pub type Amount = u64;
/// An epoch number: `tick / epoch_blocks` (see [`Tick`]).
pub type Epoch = u64;
/// A block height. Genesis is height 0; the first block is height 1.
pub type Height = u64;
/// The ledger's clock, in block intervals. A block produced on the producer's timer advances
/// it by one; a block produced early, because transactions were waiting, keeps its parent's
/// tick. Epochs count ticks, so they keep their length however many blocks a busy ledger
/// produces in between.
pub type Tick = u64;
/// A storage order's number, assigned by the ledger in creation order.
pub type OrderId = u64;

/// The address of one of the contract's modules, fixed at genesis.
///
/// It is `blake3::derive_key("memo 2026 contract module v1", chain ‖ name)`, so every chain has
/// its own addresses and a transaction for one chain cannot call another's modules.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModuleAddress(pub [u8; 32]);

impl fmt::Debug for ModuleAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleAddress({})", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for ModuleAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The contract's modules.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Module {
    /// Roles: registration, stakes, lookup, leaving.
    Roles,
    /// The storage market: orders and their escrow.
    Market,
    /// File records: the commitments (shard ids) of each placement.
    Files,
    /// Settlement: transfers, storage proofs, download receipts.
    Settlement,
}

impl Module {
    /// Every module, in address-derivation order.
    pub const ALL: [Module; 4] = [
        Module::Roles,
        Module::Market,
        Module::Files,
        Module::Settlement,
    ];

    /// The module's name, as used to look its address up.
    pub fn name(self) -> &'static str {
        match self {
            Module::Roles => "roles",
            Module::Market => "market",
            Module::Files => "files",
            Module::Settlement => "settlement",
        }
    }

    /// The module with this name.
    pub fn from_name(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.name() == name)
    }

    /// This module's address on chain `chain`.
    pub fn address(self, chain: u64) -> ModuleAddress {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 contract module v1");
        h.update(&chain.to_le_bytes());
        h.update(self.name().as_bytes());
        ModuleAddress(*h.finalize().as_bytes())
    }
}

/// A transaction: the body its sender signs (the sender is the [`Signed`] envelope's signer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    /// The chain this transaction is for (from genesis); other chains refuse it.
    pub chain: u64,
    /// The sender's transaction count so far: exactly the next expected nonce.
    pub nonce: u64,
    /// The address of the module called.
    pub module: ModuleAddress,
    /// The call. It must belong to the module at `module`.
    pub call: Call,
}

impl Signable for Tx {
    const CONTEXT: &'static str = "memo/contract/tx/v1";
    const MAX_BYTES: usize = 192 * 1024;
}

/// A signed transaction, as submitted and as carried in blocks.
pub type SignedTx = Signed<Tx>;

impl Tx {
    /// A transaction calling `call` on its module's address for `chain`.
    pub fn new(chain: u64, nonce: u64, call: Call) -> Self {
        let module = call.module().address(chain);
        Self {
            chain,
            nonce,
            module,
            call,
        }
    }
}

/// A call to one module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// A call to the roles module.
    Roles(RolesCall),
    /// A call to the market module.
    Market(MarketCall),
    /// A call to the file-records module.
    Files(FilesCall),
    /// A call to the settlement module.
    Settlement(SettlementCall),
}

impl Call {
    /// The module this call belongs to.
    pub fn module(&self) -> Module {
        match self {
            Call::Roles(_) => Module::Roles,
            Call::Market(_) => Module::Market,
            Call::Files(_) => Module::Files,
            Call::Settlement(_) => Module::Settlement,
        }
    }
}

/// Calls of the roles module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolesCall {
    /// Register as a user. The ledger assigns keepers at random among the active ones.
    RegisterUser,
    /// Register as a keeper, moving `stake` from the balance into stake.
    RegisterKeeper {
        /// Stake posted; at least the genesis minimum.
        stake: Amount,
        /// Where the keeper is reached (free-form, e.g. a multiaddr).
        address: String,
    },
    /// Register as a provider, moving `stake` from the balance into stake.
    RegisterProvider {
        /// Stake posted; at least the genesis minimum.
        stake: Amount,
        /// Bytes offered.
        capacity: u64,
        /// Asking price per byte per epoch.
        price: Amount,
        /// Where the provider is reached (free-form, e.g. a multiaddr).
        address: String,
    },
    /// Move `amount` more from the balance into stake (keepers and providers).
    AddStake {
        /// Amount added.
        amount: Amount,
    },
    /// Start leaving: after the notice period the role ends and any stake returns.
    Leave,
    /// Announce a new network address (keepers and providers): a node that came back on
    /// another address after a restart says where it is now.
    SetAddress {
        /// Where the node is reached (free-form, e.g. a multiaddr).
        address: String,
    },
}

/// Calls of the market module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketCall {
    /// A user orders storage of shards a provider already holds. Each shard comes with the
    /// provider's signed [`StoreReceipt`](crate::ticket::Receipt) for this user, all of one size,
    /// and the order is committed to exactly those shards: a provider is only ever challenged
    /// on shards it signed for, and no order exists without receipts. The escrow
    /// `bytes × price × duration` (`bytes` = shards × size) is taken from the user's balance
    /// now; the order runs for the `duration` epochs after this one.
    CreateOrder {
        /// The provider, the signer of every receipt.
        provider: AccountId,
        /// Price per byte per epoch; at least the provider's asking price.
        price: Amount,
        /// Epochs.
        duration: u64,
        /// One receipt per shard, in commitment order.
        receipts: Vec<Signed<crate::ticket::Receipt>>,
    },
    /// The data was purged: the order ends after the current epoch and the escrow for the
    /// later epochs returns to the user.
    EndOrder {
        /// The order.
        order: OrderId,
    },
    /// The sender becomes a co-owner of `shards` of another user's order: its put of
    /// deduplicated data, which uploads nothing. The owners of a shard share its cost equally
    /// for the rest of the order's term: the sender pays each current owner
    /// `V / (n × (n + 1))`, where `V = shard length × price × epochs left` and `n` owners held
    /// the shard (the order's user `V` when nobody does). See `docs/economics.md`.
    Share {
        /// The order holding the shards.
        order: OrderId,
        /// Committed shards of the order, each at most once.
        shards: Vec<ShardId>,
    },
    /// `user` stops owning `shards` of `order` (its last reference to their chunk was
    /// deleted). Sent by the user or one of its keepers. Each remaining owner refunds the
    /// user `V / (n × (n − 1))`, as far as its balance goes; when no owner remains, the
    /// order's user (who funds the escrow and gets it back when the order ends) refunds it
    /// `V`.
    Unshare {
        /// The order holding the shards.
        order: OrderId,
        /// The owner leaving.
        user: AccountId,
        /// Shards it owned, each at most once.
        shards: Vec<ShardId>,
    },
}

/// Calls of the file-records module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilesCall {
    /// A keeper repaired a shard: move committed shard `shard` of `order` from the order's
    /// (failed) provider to `to`. Sent by one of the order's user's keepers while the order
    /// still has epochs to run. The shard leaves the order's commitment, and the shard's share
    /// of the escrow for the epochs after this one moves to a new order with `to` (committed
    /// to that shard alone, so `to` is challenged and paid for it). The shard's share of the
    /// order's forfeit (stake slashed for its faults), then the failed provider's stake, covers
    /// any shortfall of `to`'s asking price and pays `repair_penalty` to the sender; what is
    /// left of the share tops up the new order's escrow.
    Reassign {
        /// The order whose provider lost the shard.
        order: OrderId,
        /// The committed shard moved.
        shard: ShardId,
        /// The provider that now holds it.
        to: AccountId,
    },
}

/// Calls of the settlement module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettlementCall {
    /// Pay `amount` to `to`.
    Transfer {
        /// The payee.
        to: AccountId,
        /// Amount paid.
        amount: Amount,
    },
    /// A provider's storage proof for one order in the current epoch.
    SubmitProof(StorageProof),
    /// A provider collects a download receipt signed by a user.
    SettleReceipt(Signed<Receipt>),
    /// A keeper's part of the challenge beacon, once per epoch: it reveals the secret it
    /// committed to in an earlier epoch (required when it has such a commitment) and commits
    /// to the next one (`blake3(secret)`). The reveals of an epoch are mixed into the next
    /// epoch's beacon; a commitment not revealed in the epoch after it was made is slashed.
    Beacon {
        /// The current epoch: a step included in another epoch is refused (the keeper derives
        /// its secrets from the epoch they are committed in).
        epoch: Epoch,
        /// The secret of this keeper's standing commitment.
        reveal: Option<[u8; 32]>,
        /// `blake3` of the secret it will reveal next epoch.
        commit: [u8; 32],
    },
}

/// A storage proof transaction's payload. The proof bytes are opaque to the contract: the
/// [`ProofVerifier`](super::ProofVerifier) interprets them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    /// The order proven.
    pub order: OrderId,
    /// The epoch it answers; must be the current epoch.
    pub epoch: Epoch,
    /// The challenged shard (see [`Contract::challenge`](super::Contract::challenge)).
    pub shard: ShardId,
    /// The proof.
    pub proof: Vec<u8>,
}

/// A user's signed promise to pay a provider for bytes served, settled by that provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The chain.
    pub chain: u64,
    /// The payer.
    pub user: AccountId,
    /// The payee: the only account that may settle it.
    pub provider: AccountId,
    /// The user's serial number, making each receipt distinct.
    pub serial: u64,
    /// Bytes served.
    pub bytes: u64,
    /// Price per byte.
    pub price: Amount,
    /// Last epoch in which it may be settled.
    pub expires: Epoch,
}

impl Signable for Receipt {
    const CONTEXT: &'static str = "memo/contract/receipt/v1";
    const MAX_BYTES: usize = 256;
}

impl Receipt {
    /// The receipt's id: blake3 of its signed body. A settled id is remembered until expiry.
    pub fn id_of(signed: &Signed<Receipt>) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 receipt id v1");
        h.update(&signed.body);
        *h.finalize().as_bytes()
    }
}

/// An account: its balance and transaction count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable balance.
    pub balance: Amount,
    /// Transactions applied from this account; the next transaction carries this nonce.
    pub nonce: u64,
}

/// The three roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleKind {
    /// Stores, reads and deletes files.
    User,
    /// Coordinates users and providers.
    Keeper,
    /// Offers disk space.
    Provider,
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleKind::User => "user",
            RoleKind::Keeper => "keeper",
            RoleKind::Provider => "provider",
        })
    }
}

/// Whether a role is active or serving its notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Active.
    Active,
    /// Leaving: the role ends when epoch `effective` begins.
    Leaving {
        /// The first epoch without the role.
        effective: Epoch,
    },
}

/// A provider's challenge record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStats {
    /// Order-epochs proven and paid.
    pub proven: u64,
    /// Proofs that failed verification (each slashed).
    pub failed: u64,
    /// Committed order-epochs with no proof by the deadline (unpaid).
    pub missed: u64,
    /// The decayed outcome counts the placement score is computed from
    /// ([`crate::proof::Reputation`]), recorded at each settlement with the default
    /// [`ReputationParams`](crate::proof::ReputationParams) decay: every keeper reads the same
    /// reputation from the ledger, and it survives restarts.
    pub record: crate::proof::ProviderRecord,
}

/// What a role holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleInfo {
    /// A user and the keepers the ledger matched to it.
    User {
        /// Keepers assigned at registration (beacon-seeded random choice).
        keepers: Vec<AccountId>,
    },
    /// A keeper.
    Keeper {
        /// Stake posted.
        stake: Amount,
        /// Network address.
        address: String,
    },
    /// A provider.
    Provider {
        /// Stake posted (reduced by slashing).
        stake: Amount,
        /// Bytes offered.
        capacity: u64,
        /// Bytes under live orders.
        used: u64,
        /// Asking price per byte per epoch.
        price: Amount,
        /// Network address.
        address: String,
        /// Challenge record.
        stats: ProofStats,
    },
}

/// A registered role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role and its data.
    pub info: RoleInfo,
    /// Active or leaving.
    pub status: Status,
    /// Epoch of registration.
    pub since: Epoch,
}

impl Role {
    /// Which role this is.
    pub fn kind(&self) -> RoleKind {
        match self.info {
            RoleInfo::User { .. } => RoleKind::User,
            RoleInfo::Keeper { .. } => RoleKind::Keeper,
            RoleInfo::Provider { .. } => RoleKind::Provider,
        }
    }

    /// The stake held (0 for users).
    pub fn stake(&self) -> Amount {
        match self.info {
            RoleInfo::User { .. } => 0,
            RoleInfo::Keeper { stake, .. } | RoleInfo::Provider { stake, .. } => stake,
        }
    }

    /// The network address (empty for users).
    pub fn address(&self) -> &str {
        match &self.info {
            RoleInfo::User { .. } => "",
            RoleInfo::Keeper { address, .. } | RoleInfo::Provider { address, .. } => address,
        }
    }
}

/// The outcome of an order's proof in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProofMark {
    /// The proof for this epoch verified.
    Passed(Epoch),
    /// The proof for this epoch failed (the provider was slashed).
    Failed(Epoch),
}

/// A storage order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Who pays.
    pub user: AccountId,
    /// Who stores.
    pub provider: AccountId,
    /// Bytes stored.
    pub bytes: u64,
    /// Price per byte per epoch.
    pub price: Amount,
    /// First epoch paid.
    pub start: Epoch,
    /// First epoch not paid (exclusive end).
    pub end: Epoch,
    /// Escrow left: the pay for the epochs not yet settled.
    pub escrow: Amount,
    /// The latest proof outcome.
    pub proof: Option<ProofMark>,
    /// Consecutive settled epochs without a proof; past [`Params::missed_grace`](super::Params)
    /// each one is slashed like a failed proof.
    pub missed: u32,
    /// Stake slashed from the provider for this order's faults, held to pay for repairing its
    /// shards ([`FilesCall::Reassign`]); what no repair used goes to the repair fund when the
    /// order ends.
    pub forfeit: Amount,
    /// Epochs the order renews for when it runs out: from the user's balance, as long as it
    /// covers them (else the order lapses, see [`Query::Lapsed`]). 0 once the order was ended.
    pub term: u64,
}

impl Order {
    /// The pay for one epoch: `bytes × price` (checked at creation).
    pub fn per_epoch(&self) -> Amount {
        self.bytes.saturating_mul(self.price)
    }
}

/// The commitment of one placement: the shards an order's provider must hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Length in bytes of each shard.
    pub shard_len: u64,
    /// The shard ids.
    pub shards: Vec<ShardId>,
}

/// What the proof verifier checks: the challenged shard and the epoch's seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The chain.
    pub chain: u64,
    /// The provider challenged.
    pub provider: AccountId,
    /// The order.
    pub order: OrderId,
    /// The epoch.
    pub epoch: Epoch,
    /// The challenge seed: from the epoch's beacon, the provider, the epoch and the order. It
    /// chose `shard` and selects the leaves inside it.
    pub seed: [u8; 32],
    /// The committed shard that must be proven.
    pub shard: ShardId,
    /// The shard's committed length in bytes.
    pub shard_len: u64,
}

/// What a successfully applied transaction did, when it is worth telling the sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// Applied.
    Done,
    /// A user registered and was matched to these keepers.
    Matched(Vec<AccountId>),
    /// An order was created.
    OrderCreated(OrderId),
    /// A proof verified; the epoch will be paid.
    ProofPassed,
    /// A proof failed verification: the provider was slashed this much.
    ProofFailed {
        /// Why the verifier refused it.
        reason: String,
        /// Stake moved to the order's forfeit (it pays for repairing the order's shards).
        slashed: Amount,
    },
    /// A receipt was settled for this amount.
    ReceiptSettled(Amount),
    /// The sender became a co-owner and paid the other owners this much in all.
    Shared(Amount),
    /// An owner left and was refunded this much in all.
    Unshared(Amount),
    /// A shard was reassigned to a new order.
    Reassigned {
        /// The new order (held by the new provider, committed to the moved shard).
        order: OrderId,
        /// Escrow moved from the old order.
        moved: Amount,
        /// Taken from the failed provider's stake to cover the new provider's higher price.
        shortfall: Amount,
        /// Taken from the failed provider's stake and paid to the keeper.
        penalty: Amount,
    },
}

/// A read of the contract's state. Reads need no identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The address of a module, by name.
    Module(String),
    /// An account's balance and nonce.
    Account(AccountId),
    /// An account's role.
    Role(AccountId),
    /// The keepers matched to a user.
    Keepers(AccountId),
    /// Active providers with their stake above the minimum (the market's offer).
    Providers,
    /// An order.
    Order(OrderId),
    /// An order's commitment.
    Commitment(OrderId),
    /// The challenge an order's provider must answer in the current epoch.
    Challenge(OrderId),
    /// Whether a receipt id has been settled (and is not yet expired).
    ReceiptSettled([u8; 32]),
    /// Height, epoch, beacon, funds.
    Status,
    /// The challenges a provider must answer in the current epoch: one per live, committed
    /// order it holds (see [`Contract::challenge`](super::Contract::challenge)).
    Challenges(AccountId),
    /// The live orders in which an account is the user or the provider, by id.
    OrdersOf(AccountId),
    /// A keeper's standing beacon commitment: the epoch it was made in and the hash.
    BeaconCommit(AccountId),
    /// A user's orders that lapsed (could not renew from its balance) in the last
    /// [`LAPSE_MEMORY`] epochs: the user's data there is unpaid.
    Lapsed(AccountId),
    /// The users with an order that lapsed in epochs `from..=to` (each once, sorted): whose
    /// data keepers check for being unpaid, and purge after a grace period.
    LapsedBetween {
        /// First epoch.
        from: Epoch,
        /// Last epoch.
        to: Epoch,
    },
    /// For each (provider, shard), the live orders committing that provider to that shard:
    /// how a keeper checks that a put is paid for. At most [`MAX_HOLDINGS_QUERY`] pairs are
    /// answered.
    Holdings(Vec<(AccountId, ShardId)>),
}

/// How many epochs the ledger remembers a lapsed order ([`Query::Lapsed`]).
pub const LAPSE_MEMORY: Epoch = 64;

/// One row of an [`Answer::Holdings`] answer: (order, owner, first epoch not paid).
pub type Holding = (OrderId, AccountId, Epoch);

/// The rows of a holdings answer whose order pays past the epoch after `epoch`: an order a
/// put can be admitted on (or a share taken in) in epoch `epoch`.
pub fn live_holdings(rows: &[Holding], epoch: Epoch) -> impl Iterator<Item = &Holding> {
    rows.iter().filter(move |(_, _, end)| *end > epoch + 1)
}

/// The most (provider, shard) pairs one [`Query::Holdings`] answers.
pub const MAX_HOLDINGS_QUERY: usize = 65_536;

/// The ledger's clock and funds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// The chain id.
    pub chain: u64,
    /// Height of the last block begun (0 at genesis).
    pub height: Height,
    /// Current epoch.
    pub epoch: Epoch,
    /// The current epoch's beacon.
    pub beacon: [u8; 32],
    /// Slashed stake waiting to pay for repair.
    pub repair_fund: Amount,
    /// Money in existence (minted at genesis; constant).
    pub supply: Amount,
    /// Orders live.
    pub orders: u64,
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Answer {
    /// A module address, if the name exists.
    Module(Option<ModuleAddress>),
    /// The account (default: zero balance, nonce 0).
    Account(Account),
    /// The role, if registered.
    Role(Option<Role>),
    /// Keepers matched to the user (empty if not a user).
    Keepers(Vec<AccountId>),
    /// Providers that can take orders: account, price, free bytes, address.
    Providers(Vec<ProviderOffer>),
    /// The order, if live.
    Order(Option<Order>),
    /// The commitment, if recorded.
    Commitment(Option<Commitment>),
    /// The challenge, if the order is live this epoch and committed.
    Challenge(Option<Challenge>),
    /// Whether the receipt is settled.
    ReceiptSettled(bool),
    /// Clock and funds.
    Status(ChainStatus),
    /// A provider's challenges this epoch, by order id.
    Challenges(Vec<Challenge>),
    /// Orders with their ids.
    Orders(Vec<(OrderId, Order)>),
    /// A keeper's standing beacon commitment, if any: (epoch made, hash).
    BeaconCommit(Option<(Epoch, [u8; 32])>),
    /// Lapsed orders: (the epoch it lapsed in, order id, provider).
    Lapsed(Vec<(Epoch, OrderId, AccountId)>),
    /// Users with a lapse in the epochs asked ([`Query::LapsedBetween`]).
    LapsedUsers(Vec<AccountId>),
    /// For each pair asked, the live orders holding it: (order, owner, first epoch not paid),
    /// one row per owner of the shard in that order (see [`MarketCall::Share`]).
    Holdings(Vec<Vec<Holding>>),
}

/// A provider's offer as listed by [`Query::Providers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderOffer {
    /// The provider.
    pub provider: AccountId,
    /// Asking price per byte per epoch.
    pub price: Amount,
    /// Bytes free.
    pub free: u64,
    /// Network address.
    pub address: String,
    /// Challenge record.
    pub stats: ProofStats,
}

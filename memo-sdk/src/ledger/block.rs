//! Blocks: a header signed by the sequencer and the transactions.

use memo_core::AccountId;
use memo_core::contract::{Epoch, Height, SignedTx, Tick};
use memo_core::identity::{self, Keypair, Signature};
use memo_core::wire::{self, WireError};
use serde::{Deserialize, Serialize};

/// Format version of stored and sent blocks.
const BLOCK_VERSION: u8 = 2;
/// Largest accepted encoded block.
pub(crate) const MAX_BLOCK_BYTES: usize = 256 << 20;
const HEADER_CONTEXT: &str = "memo/chain/block-header/v1";

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain id.
    pub chain: u64,
    /// Height (block 1 follows genesis).
    pub height: Height,
    /// The ledger's clock: the parent's tick for a block produced early (transactions were
    /// waiting), one more for a block on the producer's timer. Epochs count ticks.
    pub tick: Tick,
    /// Hash of the previous block (the genesis hash for block 1).
    pub parent: [u8; 32],
    /// Milliseconds since the Unix epoch, as the sequencer's caller supplied; never decreasing.
    pub time_ms: u64,
    /// [`tx_root`] of the transactions.
    pub tx_root: [u8; 32],
    /// The contract's state root after this block.
    pub state_root: [u8; 32],
    /// Who produced it.
    pub sequencer: AccountId,
}

/// A block: the header, the sequencer's signature of it, and the transactions in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The sequencer's signature of the header's canonical encoding.
    pub signature: Signature,
    /// The transactions, in the order they were applied.
    pub txs: Vec<SignedTx>,
}

/// The commitment to a block's transactions and their order: blake3 over their digests.
pub fn tx_root(txs: &[SignedTx]) -> [u8; 32] {
    let digests: Vec<[u8; 32]> = txs.iter().map(SignedTx::digest).collect();
    tx_root_of(&digests)
}

/// [`tx_root`] from the transactions' digests.
pub(crate) fn tx_root_of(digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("memo 2026 block tx root v1");
    h.update(&(digests.len() as u64).to_le_bytes());
    for d in digests {
        h.update(d);
    }
    *h.finalize().as_bytes()
}

impl BlockHeader {
    /// The block hash: blake3 of the header's canonical encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("memo 2026 block hash v1");
        h.update(&wire::encode(self));
        *h.finalize().as_bytes()
    }
}

impl Block {
    /// Signs `header` with the sequencer's key.
    pub fn seal(header: BlockHeader, txs: Vec<SignedTx>, key: &Keypair) -> Self {
        let signature = key.sign(HEADER_CONTEXT, &wire::encode(&header));
        Self {
            header,
            signature,
            txs,
        }
    }

    /// The block hash (of the header).
    pub fn hash(&self) -> [u8; 32] {
        self.header.hash()
    }

    /// Whether the header's signature is the sequencer's.
    pub fn signature_ok(&self) -> bool {
        identity::verify(
            &self.header.sequencer,
            HEADER_CONTEXT,
            &wire::encode(&self.header),
            &self.signature,
        )
        .is_ok()
    }

    /// The versioned canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode_versioned(BLOCK_VERSION, self)
    }

    /// Decodes a block, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_versioned(bytes, BLOCK_VERSION, MAX_BLOCK_BYTES, "block")
    }
}

/// The head of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Height of the last committed block (0: genesis only).
    pub height: Height,
    /// Its tick (see [`BlockHeader::tick`]).
    pub tick: Tick,
    /// The epoch at that height.
    pub epoch: Epoch,
    /// Its hash (the genesis hash at height 0).
    pub hash: [u8; 32],
    /// The state root after it.
    pub state_root: [u8; 32],
    /// Its time.
    pub time_ms: u64,
}

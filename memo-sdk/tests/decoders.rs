//! Decoding untrusted bytes as a block (what followers receive from the sequencer) never
//! panics: arbitrary bytes, and a valid block's encoding with bytes flipped or cut.

use memo_core::contract::{Call, RolesCall, SignedTx, Tx};
use memo_core::identity::Signature;
use memo_core::{AccountId, Keypair, Signed};
use memo_sdk::ledger::{Block, BlockHeader, tx_root};
use proptest::prelude::*;

fn block() -> Vec<u8> {
    let kp = Keypair::from_seed("sequencer");
    let txs: Vec<SignedTx> = (0..2)
        .map(|n| {
            Signed::sign(
                &kp,
                &Tx::new(
                    1,
                    n,
                    Call::Roles(RolesCall::RegisterProvider {
                        stake: 5,
                        capacity: 10,
                        price: 1,
                        address: String::new(),
                    }),
                ),
            )
        })
        .collect();
    Block {
        header: BlockHeader {
            chain: 1,
            height: 1,
            tick: 1,
            parent: [0; 32],
            time_ms: 5,
            tx_root: tx_root(&txs),
            state_root: [1; 32],
            sequencer: AccountId([2; 32]),
        },
        signature: Signature([0; 64]),
        txs,
    }
    .encode()
}

fn decode(bytes: &[u8]) {
    if let Ok(b) = Block::decode(bytes) {
        // Not `b.encode() == bytes`: postcard also reads overlong varints, so a decodable
        // input need not be the canonical encoding; the value must survive a round trip.
        let again = Block::decode(&b.encode()).expect("an encoded block decodes");
        assert_eq!((again.hash(), again.encode()), (b.hash(), b.encode()));
        let _ = b.signature_ok();
        let _ = b.hash();
        let _ = tx_root(&b.txs);
    }
}

#[test]
fn a_valid_block_decodes() {
    let b = block();
    assert!(Block::decode(&b).is_ok());
}

/// Found by the `block` fuzz target: the decoder reads overlong varints. Such an input must
/// either be refused or mean the same block (same hash, canonical re-encoding).
#[test]
fn an_overlong_varint_is_refused_or_means_the_same_block() {
    let b = block();
    let canonical = Block::decode(&b).unwrap();
    // Byte 1 is the header's chain id (1, a one-byte varint); write it in two bytes.
    assert_eq!(b[1], 1);
    let mut long = vec![b[0], 0x81, 0x00];
    long.extend_from_slice(&b[2..]);
    if let Ok(decoded) = Block::decode(&long) {
        assert_eq!(decoded.hash(), canonical.hash());
        assert_eq!(decoded.encode(), b);
    }
    decode(&long);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode(&bytes);
    }

    #[test]
    fn mutated_blocks_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut b = block();
        for (at, x) in &flips {
            let i = at.index(b.len());
            b[i] ^= x;
        }
        if truncate {
            b.truncate(cut.index(b.len() + 1));
        }
        decode(&b);
    }
}

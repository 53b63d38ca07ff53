use super::*;
use memo_core::contract::{
    Call, Challenge, Genesis, Params, ProofVerifier, Receipt, RolesCall, SettlementCall, Tx,
};
use memo_core::identity::{Keypair, Signed};
use std::path::PathBuf;

struct AcceptAll;
impl ProofVerifier for AcceptAll {
    fn verify(&self, _: &Challenge, _: &[u8]) -> Result<(), memo_core::proof::ProofError> {
        Ok(())
    }
}

const CHAIN: u64 = 9;

fn kp(n: &str) -> Keypair {
    Keypair::from_seed(n)
}

fn genesis() -> Genesis {
    let params = Params {
        epoch_blocks: 3,
        ..Params::default()
    };
    Genesis::new(
        CHAIN,
        params,
        ["a", "b", "p"].iter().map(|n| (kp(n).account(), 1_000_000)),
    )
    .unwrap()
}

fn seq(path: &std::path::Path) -> LocalChain {
    LocalChain::open_sequencer(path, genesis(), kp("sequencer"), Arc::new(AcceptAll)).unwrap()
}

fn follower(path: &std::path::Path) -> LocalChain {
    let config = ChainConfig {
        genesis: genesis(),
        sequencer: kp("sequencer").account(),
    };
    LocalChain::open_follower(path, config, Arc::new(AcceptAll)).unwrap()
}

fn pay(from: &str, nonce: u64, amount: u64) -> SignedTx {
    let call = Call::Settlement(SettlementCall::Transfer {
        to: kp("b").account(),
        amount,
    });
    Signed::sign(&kp(from), &Tx::new(CHAIN, nonce, call))
}

fn db(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Five blocks with transfers from `a` (nonces 0..10).
fn five_blocks(c: &LocalChain) {
    for b in 0..5u64 {
        c.submit_tx(pay("a", 2 * b, 1)).unwrap();
        c.submit_tx(pay("a", 2 * b + 1, 2)).unwrap();
        c.produce_block(1_000 * b).unwrap();
    }
}

#[tokio::test]
async fn follower_replays_to_the_same_root_and_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let s = seq(&db(&dir, "s"));
    let mut sub = s.subscribe();
    five_blocks(&s);
    assert_eq!(sub.recv().await.unwrap().header.height, 1);
    let head = s.head_now();
    assert_eq!(head.height, 5);
    assert_eq!(head.epoch, 1);
    let f = follower(&db(&dir, "f"));
    assert_eq!(f.sync_from(&s).await.unwrap(), 5);
    assert_eq!(f.head_now(), head);
    assert_eq!(f.with_contract(|c| c.recompute_root()), head.state_root);
    assert_eq!(
        f.query_now(&Query::Account(kp("b").account())),
        Answer::Account(memo_core::contract::Account {
            balance: 1_000_015,
            nonce: 0
        })
    );
    // Drop both (a crash between blocks) and reopen: same head, and the chain continues.
    drop(s);
    drop(f);
    let s = seq(&db(&dir, "s"));
    assert_eq!(s.head_now(), head);
    let f = follower(&db(&dir, "f"));
    assert_eq!(f.head_now(), head);
    s.submit_tx(pay("a", 10, 5)).unwrap();
    s.produce_block(9_000).unwrap();
    assert_eq!(f.sync_from(&s).await.unwrap(), 6);
    assert_eq!(f.head_now(), s.head_now());
    // Another genesis cannot open this store.
    let other = Genesis::new(CHAIN + 1, Params::default(), []).unwrap();
    let e = LocalChain::open_sequencer(
        &db(&dir, "s2"),
        genesis(),
        kp("sequencer"),
        Arc::new(AcceptAll),
    );
    drop(e);
    drop(s);
    assert!(matches!(
        LocalChain::open_sequencer(&db(&dir, "s"), other, kp("sequencer"), Arc::new(AcceptAll)),
        Err(LedgerError::GenesisMismatch)
    ));
}

#[test]
fn sequencer_leaves_out_invalid_transactions_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let s = seq(&db(&dir, "s"));
    let good = s.submit_tx(pay("a", 0, 1)).unwrap();
    let mut forged = pay("a", 1, 500);
    forged.signer = kp("b").account();
    let forged = s.submit_tx(forged).unwrap();
    let replay = s.submit_tx(pay("a", 0, 1)).unwrap();
    assert_eq!(replay, good, "the same transaction has the same hash");
    let stale = s.submit_tx(pay("a", 0, 3)).unwrap();
    let gap = s.submit_tx(pay("a", 7, 1)).unwrap();
    let next = s.submit_tx(pay("a", 1, 2)).unwrap();
    assert_eq!(s.status_now(&good), TxStatus::Pending);
    let block = s.produce_block(5).unwrap();
    assert_eq!(block.txs.len(), 2);
    assert!(matches!(
        s.status_now(&good),
        TxStatus::Included {
            height: 1,
            index: 0,
            ..
        }
    ));
    assert!(matches!(
        s.status_now(&next),
        TxStatus::Included {
            height: 1,
            index: 1,
            ..
        }
    ));
    assert_eq!(
        s.status_now(&forged),
        TxStatus::Rejected(Rejection::BadSignature)
    );
    assert_eq!(
        s.status_now(&stale),
        TxStatus::Rejected(Rejection::NonceReplayed {
            expected: 1,
            got: 0
        })
    );
    assert!(matches!(
        s.status_now(&gap),
        TxStatus::Rejected(Rejection::NonceGap { .. })
    ));
    assert_eq!(s.status_now(&[0; 32]), TxStatus::Unknown);
    // The block verifies for a follower.
    let f = follower(&db(&dir, "f"));
    f.import_block((*block).clone()).unwrap();
    assert_eq!(f.head_now(), s.head_now());
    // A follower takes no transactions.
    assert_eq!(f.submit_tx(pay("a", 2, 1)), Err(LedgerError::NotSequencer));
}

#[test]
fn tampered_reordered_or_forged_blocks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = seq(&db(&dir, "s"));
    s.produce_block(1).unwrap();
    for n in 0..4 {
        s.submit_tx(pay("a", n, n + 1)).unwrap();
    }
    let b2 = (*s.produce_block(2).unwrap()).clone();
    let f = follower(&db(&dir, "f"));
    f.import_block(s.block_at(1).unwrap().unwrap()).unwrap();
    let before = f.head_now();
    let key = kp("sequencer");
    let resign = |mut b: Block| {
        b.header.tx_root = tx_root(&b.txs);
        Block::seal(b.header, b.txs, &key)
    };

    // A transaction's bytes changed: the tx root no longer matches.
    let mut t = b2.clone();
    t.txs[1].body[3] ^= 1;
    assert_eq!(f.import_block(t.clone()), Err(LedgerError::BadTxRoot));
    // ...and re-signed by the sequencer, the transaction signature fails.
    assert!(matches!(
        f.import_block(resign(t)),
        Err(LedgerError::Block(BlockError::InvalidTx {
            index: 1,
            reason: Rejection::BadSignature
        }))
    ));
    // Reordered transactions (re-signed): the nonces break.
    let mut t = b2.clone();
    t.txs.swap(0, 2);
    assert_eq!(f.import_block(t.clone()), Err(LedgerError::BadTxRoot));
    assert!(matches!(
        f.import_block(resign(t)),
        Err(LedgerError::Block(BlockError::InvalidTx { .. }))
    ));
    // A wrong state root, even signed by the sequencer.
    let mut t = b2.clone();
    t.header.state_root[0] ^= 1;
    assert_eq!(f.import_block(t.clone()), Err(LedgerError::BadSignature));
    assert_eq!(
        f.import_block(resign(t)),
        Err(LedgerError::Block(BlockError::StateRoot))
    );
    // A block signed by someone else, or extending another parent, or skipping a height.
    let mut t = b2.clone();
    t.header.sequencer = kp("mallory").account();
    assert_eq!(
        f.import_block(Block::seal(t.header, t.txs, &kp("mallory"))),
        Err(LedgerError::WrongSequencer)
    );
    let mut t = b2.clone();
    t.header.parent = [7; 32];
    assert_eq!(f.import_block(resign(t)), Err(LedgerError::BadParent));
    let mut t = b2.clone();
    t.header.height = 3;
    assert!(matches!(
        f.import_block(resign(t)),
        Err(LedgerError::WrongHeight {
            expected: 2,
            got: 3
        })
    ));
    // Nothing of the above changed the follower; the genuine block imports.
    assert_eq!(f.head_now(), before);
    f.import_block(b2).unwrap();
    assert_eq!(f.head_now(), s.head_now());
}

#[test]
fn a_tampered_block_store_is_detected_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir, "s");
    let s = seq(&path);
    five_blocks(&s);
    let mut b3 = s.block_at(3).unwrap().unwrap();
    drop(s);
    // Rewrite block 3 on disk with a changed transfer amount (and a matching tx root).
    b3.txs[0] = pay("a", 4, 1_000);
    b3.header.tx_root = tx_root(&b3.txs);
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w
                .open_table(TableDefinition::<u64, &[u8]>::new("blocks"))
                .unwrap();
            t.insert(3u64, b3.encode().as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let err = LocalChain::open_sequencer(&path, genesis(), kp("sequencer"), Arc::new(AcceptAll))
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::Corrupt { height: 3, .. }),
        "{err}"
    );
}

use redb::TableDefinition;

#[test]
fn receipts_cannot_be_settled_twice_through_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = seq(&db(&dir, "s"));
    let reg = Call::Roles(RolesCall::RegisterProvider {
        stake: 1_000,
        capacity: 1 << 30,
        price: 1,
        address: "p".into(),
    });
    s.submit_tx(Signed::sign(&kp("p"), &Tx::new(CHAIN, 0, reg)))
        .unwrap();
    s.produce_block(1).unwrap();
    let r = Receipt {
        chain: CHAIN,
        user: kp("a").account(),
        provider: kp("p").account(),
        serial: 1,
        bytes: 10,
        price: 3,
        expires: 5,
    };
    let signed = Signed::sign(&kp("a"), &r);
    let settle = |nonce| {
        Signed::sign(
            &kp("p"),
            &Tx::new(
                CHAIN,
                nonce,
                Call::Settlement(SettlementCall::SettleReceipt(signed.clone())),
            ),
        )
    };
    let first = s.submit_tx(settle(1)).unwrap();
    let second = s.submit_tx(settle(2)).unwrap();
    let by_other = s
        .submit_tx(Signed::sign(
            &kp("b"),
            &Tx::new(
                CHAIN,
                0,
                Call::Settlement(SettlementCall::SettleReceipt(signed.clone())),
            ),
        ))
        .unwrap();
    s.produce_block(2).unwrap();
    assert!(matches!(s.status_now(&first), TxStatus::Included { .. }));
    assert_eq!(
        s.status_now(&second),
        TxStatus::Rejected(Rejection::ReceiptAlreadySettled)
    );
    assert!(matches!(
        s.status_now(&by_other),
        TxStatus::Rejected(Rejection::NotRegistered(_))
    ));
    let third = s.submit_tx(settle(2)).unwrap();
    s.produce_block(3).unwrap();
    assert_eq!(
        s.status_now(&third),
        TxStatus::Rejected(Rejection::ReceiptAlreadySettled)
    );
    let Answer::Account(a) = s.query_now(&Query::Account(kp("a").account())) else {
        panic!()
    };
    assert_eq!(a.balance, 1_000_000 - 30);
}

#[tokio::test]
async fn interval_producer_advances_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(seq(&db(&dir, "s")));
    let mut sub = s.subscribe();
    let task = s.spawn_producer(crate::env::Env::real(), std::time::Duration::from_millis(5));
    s.submit(pay("a", 0, 1)).await.unwrap();
    let mut included = false;
    for _ in 0..50 {
        let b = sub.recv().await.unwrap();
        if !b.txs.is_empty() {
            included = true;
            break;
        }
    }
    task.abort();
    assert!(included);
    assert!(s.head().await.unwrap().height >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_transaction_gets_an_early_block_that_leaves_the_epochs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(seq(&db(&dir, "s")));
    let hour = std::time::Duration::from_secs(3600);
    let start = tokio::time::Instant::now();
    let task = s.spawn_producer(crate::env::Env::simulated(1), hour);
    // The timer's first block comes at once (tick 1); the next is an hour away.
    let mut sub = s.subscribe();
    let first = sub.recv().await.unwrap();
    assert_eq!((first.header.height, first.header.tick), (1, 1));
    let hash = s.submit(pay("a", 0, 1)).await.unwrap();
    let block = sub.recv().await.unwrap();
    // Early: at the parent's tick, not on the timer.
    assert_eq!((block.header.height, block.header.tick), (2, 1));
    assert_eq!(
        block.txs.iter().map(|t| t.digest()).collect::<Vec<_>>(),
        [hash]
    );
    assert!(matches!(s.status_now(&hash), TxStatus::Included { .. }));
    // Transactions queued while no block is being made share one early block.
    let burst = [
        s.submit(pay("a", 1, 1)).await.unwrap(),
        s.submit(pay("a", 2, 1)).await.unwrap(),
    ];
    let block = sub.recv().await.unwrap();
    assert_eq!((block.header.height, block.header.tick), (3, 1));
    assert_eq!(
        block.txs.iter().map(|t| t.digest()).collect::<Vec<_>>(),
        burst
    );
    assert!(start.elapsed() < hour);
    assert_eq!(s.head_now().epoch, 0);
    // A transaction that cannot go in makes no block: it is rejected at once.
    let replay = s.submit(pay("a", 0, 2)).await.unwrap();
    assert!(matches!(
        s.await_statuses(&[replay], hour).await.as_slice(),
        [TxStatus::Rejected(_)]
    ));
    assert_eq!(s.head_now().height, 3);
    assert!(start.elapsed() < hour);
    // The timer still advances the tick, and with it the epochs (3 ticks each).
    for tick in 2..=3 {
        let b = sub.recv().await.unwrap();
        assert_eq!((b.header.tick, b.txs.len()), (tick, 0));
    }
    assert_eq!(s.head_now().epoch, 1);
    task.abort();
    // A follower verifies and imports early blocks like any other.
    let f = follower(&db(&dir, "f"));
    assert_eq!(f.sync_from(s.as_ref()).await.unwrap(), 5);
    assert_eq!(f.head_now(), s.head_now());
}

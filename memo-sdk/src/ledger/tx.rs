//! Sending ledger transactions from one account: signing, nonces, and waiting for inclusion.
//!
//! Each node that writes to the ledger (a user's client ordering storage, a provider proving,
//! a keeper ending orders) owns one [`TxSender`]. It numbers its transactions itself so a batch
//! can be queued at once (consecutive nonces in one block), and falls back on the ledger's
//! nonce whenever none of its earlier transactions is still pending, so a rejected transaction
//! (e.g. a proof that came too late) never leaves it stuck behind a gap.

use crate::ledger::{Ledger, LedgerError, TxStatus};
use memo_core::contract::{Answer, Call, Outcome, Query, Rejection, SignedTx, Tx};
use memo_core::{AccountId, Keypair, Signed};
use std::sync::Arc;
use std::time::Duration;

/// A ledger transaction could not be sent or did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The ledger refused or failed the call.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger rejected the transaction; it changed nothing.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// No block included (or rejected) it in time.
    #[error("transaction not included within {0:?}")]
    Timeout(Duration),
    /// The ledger answered a query with something unexpected.
    #[error("unexpected ledger answer: {0}")]
    Unexpected(String),
}

/// How often [`TxSender::send_and_wait`] resends calls whose nonces another sender took.
pub const NONCE_RETRIES: usize = 8;

#[derive(Default)]
struct NonceState {
    chain: Option<u64>,
    next: u64,
    /// Transactions sent and not known to be settled: hash and nonce, in nonce order.
    pending: Vec<([u8; 32], u64)>,
    /// One past the highest nonce of a transaction of ours seen included.
    used: u64,
}

/// Signs and submits one account's transactions.
pub struct TxSender {
    keypair: Keypair,
    ledger: Arc<dyn Ledger>,
    state: tokio::sync::Mutex<NonceState>,
}

impl std::fmt::Debug for TxSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSender")
            .field("account", &self.keypair.account())
            .finish_non_exhaustive()
    }
}

impl TxSender {
    /// A sender for `keypair`'s account on `ledger`.
    pub fn new(keypair: Keypair, ledger: Arc<dyn Ledger>) -> Self {
        Self {
            keypair,
            ledger,
            state: tokio::sync::Mutex::new(NonceState::default()),
        }
    }

    /// The sending account.
    pub fn account(&self) -> AccountId {
        self.keypair.account()
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Signs `calls` with consecutive nonces and queues them, in order, in one
    /// [`Ledger::submit_all`]. Returns the signed transactions (their [`Signed::digest`] is
    /// the hash to follow). If the ledger refuses one, the ones before it may stay queued.
    pub async fn send(&self, calls: Vec<Call>) -> Result<Vec<SignedTx>, TxError> {
        let mut st = self.state.lock().await;
        let chain = match st.chain {
            Some(c) => c,
            None => {
                let c = chain_id(self.ledger.as_ref()).await?;
                st.chain = Some(c);
                c
            }
        };
        // Drop the transactions sent earlier that are no longer pending, oldest first, up to
        // the first one still pending: nonces are included in order, so the ones after it
        // wait too. (Asking about every pending transaction at each send made many
        // concurrent senders of one account ask the ledger quadratically often.)
        let mut still = std::mem::take(&mut st.pending);
        let mut done = 0;
        for (h, nonce) in &still {
            match self.ledger.tx_status(*h).await? {
                TxStatus::Pending => break,
                TxStatus::Included { .. } => st.used = st.used.max(nonce + 1),
                _ => {}
            }
            done += 1;
        }
        still.drain(..done);
        if still.is_empty() {
            // The ledger's next nonce, unless the copy asked has not yet applied a block that
            // included one of ours (a keeper group's member may lag its leader by a block).
            st.next = match self.ledger.query(Query::Account(self.account())).await? {
                Answer::Account(a) => a.nonce.max(st.used),
                other => return Err(TxError::Unexpected(format!("{other:?}"))),
            };
        }
        st.pending = still;
        let first = st.next;
        let out: Vec<SignedTx> = calls
            .into_iter()
            .zip(first..)
            .map(|(call, nonce)| Signed::sign(&self.keypair, &Tx::new(chain, nonce, call)))
            .collect();
        // One round trip for them all. If it fails, some may be queued all the same: the
        // next send asks the ledger for the nonce again, and a nonce taken twice is resent
        // by [`Self::send_and_wait`].
        let hashes = match self.ledger.submit_all(out.clone()).await {
            Ok(h) => h,
            Err(e) => {
                st.pending.clear();
                return Err(e.into());
            }
        };
        st.pending.extend(hashes.into_iter().zip(first..));
        st.next = first + out.len() as u64;
        Ok(out)
    }

    /// Sends `calls` and waits until each is included or rejected; returns each one's result.
    ///
    /// Another sender of the same account (the user's other client, in another process) may
    /// take a nonce first. A call rejected for its nonce changed nothing, so it is signed again
    /// with the ledger's next nonce and resent, up to [`NONCE_RETRIES`] times.
    pub async fn send_and_wait(
        &self,
        calls: Vec<Call>,
        timeout: Duration,
    ) -> Result<Vec<Result<Outcome, Rejection>>, TxError> {
        let mut results: Vec<Option<Result<Outcome, Rejection>>> = vec![None; calls.len()];
        let mut todo: Vec<usize> = (0..calls.len()).collect();
        for attempt in 0..=NONCE_RETRIES {
            let txs = self
                .send(todo.iter().map(|i| calls[*i].clone()).collect())
                .await?;
            let got = wait_txs(self.ledger.as_ref(), &txs, timeout).await?;
            let mut again = Vec::new();
            for (i, r) in todo.into_iter().zip(got) {
                let raced = matches!(
                    r,
                    Err(Rejection::NonceReplayed { .. } | Rejection::NonceGap { .. })
                );
                if raced && attempt < NONCE_RETRIES {
                    again.push(i);
                } else {
                    results[i] = Some(r);
                }
            }
            if again.is_empty() {
                break;
            }
            tracing::debug!(
                calls = again.len(),
                "nonces taken by another sender; resending"
            );
            todo = again;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Rejection::NoOpenBlock)))
            .collect())
    }
}

/// Registers `keypair`'s account in a role with `call` (a [`memo_core::contract::RolesCall`]),
/// unless it already has one. Retries every `retry` while the ledger cannot be reached (a node
/// may start before the node that serves the ledger), until `deadline` passes; returns whether
/// this call registered it. A rejection (e.g. too little balance for the stake) is an error.
pub async fn register(
    keypair: &Keypair,
    ledger: Arc<dyn Ledger>,
    call: Call,
    retry: Duration,
    deadline: Duration,
) -> Result<bool, TxError> {
    let sender = TxSender::new(keypair.clone(), ledger);
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let attempt = async {
            if let Answer::Role(Some(_)) =
                sender.ledger().query(Query::Role(sender.account())).await?
            {
                return Ok(false);
            }
            match sender
                .send_and_wait(vec![call.clone()], Duration::from_secs(30))
                .await?
                .pop()
            {
                Some(Ok(_)) => Ok(true),
                Some(Err(r)) => Err(TxError::Rejected(r)),
                None => Err(TxError::Unexpected("no result".into())),
            }
        };
        match attempt.await {
            Err(TxError::Ledger(e)) if tokio::time::Instant::now() < give_up => {
                tracing::debug!(error = %e, "ledger not reachable yet; retrying registration");
                tokio::time::sleep(retry).await;
            }
            other => return other,
        }
    }
}

/// The ledger's chain id.
pub async fn chain_id(ledger: &dyn Ledger) -> Result<u64, TxError> {
    match ledger.query(Query::Status).await? {
        Answer::Status(s) => Ok(s.chain),
        other => Err(TxError::Unexpected(format!("{other:?}"))),
    }
}

/// Waits until every transaction in `hashes` is included or rejected (or `timeout` passes).
pub async fn wait_all(
    ledger: &dyn Ledger,
    hashes: &[[u8; 32]],
    timeout: Duration,
) -> Result<Vec<Result<Outcome, Rejection>>, TxError> {
    wait_for(ledger, hashes, None, timeout).await
}

/// Like [`wait_all`] for transactions this caller sent: one the ledger no longer knows (it was
/// queued with a keeper group's leader that died before building a block) is submitted again,
/// at most every [`RESUBMIT_EVERY`]. Sending it twice is safe: its nonce lets it in once.
pub async fn wait_txs(
    ledger: &dyn Ledger,
    txs: &[SignedTx],
    timeout: Duration,
) -> Result<Vec<Result<Outcome, Rejection>>, TxError> {
    let hashes: Vec<[u8; 32]> = txs.iter().map(Signed::digest).collect();
    wait_for(ledger, &hashes, Some(txs), timeout).await
}

/// How often [`wait_txs`] submits again a transaction the ledger does not know.
pub const RESUBMIT_EVERY: Duration = Duration::from_millis(500);

async fn wait_for(
    ledger: &dyn Ledger,
    hashes: &[[u8; 32]],
    txs: Option<&[SignedTx]>,
    timeout: Duration,
) -> Result<Vec<Result<Outcome, Rejection>>, TxError> {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut resent = start;
    let mut done: Vec<Option<Result<Outcome, Rejection>>> = vec![None; hashes.len()];
    loop {
        let todo: Vec<usize> = (0..hashes.len()).filter(|i| done[*i].is_none()).collect();
        if todo.is_empty() {
            return Ok(done.into_iter().flatten().collect());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(TxError::Timeout(timeout));
        }
        // One wait for all that are left: it returns once every one is settled.
        let asked: Vec<[u8; 32]> = todo.iter().map(|i| hashes[*i]).collect();
        let within = (deadline - now).min(RESUBMIT_EVERY);
        let statuses = ledger.await_txs(&asked, within).await?;
        let mut lost = None;
        for (i, status) in todo.into_iter().zip(statuses) {
            match status {
                TxStatus::Included { outcome, .. } => done[i] = Some(Ok(outcome)),
                TxStatus::Rejected(r) => done[i] = Some(Err(r)),
                TxStatus::Unknown => {
                    lost.get_or_insert(i);
                }
                TxStatus::Pending => {}
            }
        }
        let Some(first) = lost else { continue };
        let now = tokio::time::Instant::now();
        if let Some(rest) = txs.and_then(|t| t.get(first..))
            && now >= resent + RESUBMIT_EVERY
        {
            tracing::debug!("the ledger lost a queued transaction; sending it again");
            // It and the ones after it, in nonce order (a copy of one still queued or
            // included changes nothing). A refusal shows in the next round.
            let _ = ledger.submit_all(rest.to_vec()).await;
            resent = now;
        } else {
            // Not known yet (a ledger that answers at once): ask again shortly.
            tokio::time::sleep(crate::ledger::STATUS_POLL.min(deadline - now)).await;
        }
    }
}

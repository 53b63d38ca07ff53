//! A fault-injecting [`Transport`] for simulations: wraps any transport and, driven by a seeded
//! RNG, drops, delays, duplicates, reorders and corrupts messages.
//!
//! Faults on requests this node sends: a *dropped* request either never arrives or arrives but
//! its response is lost (the caller sees a timeout in both cases, as on a real network); a
//! *duplicated* request is delivered twice (the second copy's response is discarded), which
//! tests idempotency; a *reordered* request is held back for a random delay so later requests
//! overtake it; *corruption* flips one bit of the request or of its response. Faults on replies
//! this node serves ([`FaultConfig::corrupt_replies`]) make it a Byzantine server, for example
//! a provider that serves altered shards.
//!
//! The RNG is seeded, so a simulation's fault decisions are reproducible given the same order of
//! calls (task scheduling may still interleave them differently).

use async_trait::async_trait;
use bytes::Bytes;
use memo_core::AccountId;
use memo_core::transport::{Incoming, Transport, TransportError};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which faults to inject, each as a probability per message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// A sent request (or its response) is lost.
    pub drop: f64,
    /// A sent request is delivered twice.
    pub duplicate: f64,
    /// A sent request is held back by a random delay up to [`FaultConfig::max_delay`].
    pub reorder: f64,
    /// Longest delay for reordered requests.
    pub max_delay: Duration,
    /// A sent request, or the response to it, has one bit flipped.
    pub corrupt: f64,
    /// A reply this node serves has one bit flipped in its payload (Byzantine server).
    pub corrupt_replies: f64,
}

impl FaultConfig {
    /// No faults (add some with struct update syntax).
    pub fn none(seed: u64) -> Self {
        Self {
            seed,
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            max_delay: Duration::from_millis(5),
            corrupt: 0.0,
            corrupt_replies: 0.0,
        }
    }
}

/// How many faults were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests or responses dropped.
    pub dropped: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Requests held back.
    pub reordered: u64,
    /// Messages with a flipped bit.
    pub corrupted: u64,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
}

/// A transport that injects faults into another (see the module documentation).
pub struct FaultTransport {
    inner: Arc<dyn Transport>,
    config: Mutex<FaultConfig>,
    rng: Arc<Mutex<StdRng>>,
    counters: Arc<Counters>,
}

/// Flips one bit of `b`, in its last three quarters (the payload, for large messages).
fn flip(rng: &Mutex<StdRng>, b: &Bytes) -> Bytes {
    if b.is_empty() {
        return b.clone();
    }
    let mut v = b.to_vec();
    let mut r = rng.lock().unwrap_or_else(|p| p.into_inner());
    let from = v.len() / 4;
    let at = r.random_range(from..v.len());
    let bit = r.random_range(0..8u32);
    v[at] ^= 1 << bit;
    Bytes::from(v)
}

impl FaultTransport {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Transport>, config: FaultConfig) -> Self {
        Self {
            inner,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(config.seed))),
            config: Mutex::new(config),
            counters: Arc::default(),
        }
    }

    /// Changes the faults from now on (the RNG keeps its state).
    pub fn set_config(&self, config: FaultConfig) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Faults injected so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.counters;
        FaultStats {
            dropped: c.dropped.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
            corrupted: c.corrupted.load(Ordering::Relaxed),
        }
    }

    fn config(&self) -> FaultConfig {
        *self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random_bool(p.min(1.0))
    }

    fn delay(&self, max: Duration) -> Duration {
        let max = max.as_micros().min(u64::MAX as u128) as u64;
        let us = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..=max);
        Duration::from_micros(us)
    }
}

#[async_trait]
impl Transport for FaultTransport {
    fn local_id(&self) -> AccountId {
        self.inner.local_id()
    }

    fn add_address(&self, peer: AccountId, address: &str) {
        self.inner.add_address(peer, address)
    }

    async fn request(&self, peer: AccountId, mut body: Bytes) -> Result<Bytes, TransportError> {
        let cfg = self.config();
        let c = &self.counters;
        if self.roll(cfg.reorder) {
            c.reordered.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.delay(cfg.max_delay)).await;
        }
        if self.roll(cfg.drop) {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            if self.roll(0.5) {
                // Delivered, but the response is lost.
                let _ = self.inner.request(peer, body).await;
            }
            return Err(TransportError::Timeout(peer));
        }
        if self.roll(cfg.corrupt) {
            c.corrupted.fetch_add(1, Ordering::Relaxed);
            body = flip(&self.rng, &body);
        }
        if self.roll(cfg.duplicate) {
            c.duplicated.fetch_add(1, Ordering::Relaxed);
            let (inner, copy) = (self.inner.clone(), body.clone());
            tokio::spawn(async move {
                let _ = inner.request(peer, copy).await;
            });
        }
        let resp = self.inner.request(peer, body).await?;
        if self.roll(cfg.corrupt) {
            c.corrupted.fetch_add(1, Ordering::Relaxed);
            return Ok(flip(&self.rng, &resp));
        }
        Ok(resp)
    }

    async fn next_incoming(&self) -> Option<Incoming> {
        let inc = self.inner.next_incoming().await?;
        let p = self.config().corrupt_replies;
        if p <= 0.0 {
            return Some(inc);
        }
        let Incoming { from, body, reply } = inc;
        let (tx, rx) = futures::channel::oneshot::channel::<Bytes>();
        let (rng, counters) = (self.rng.clone(), self.counters.clone());
        tokio::spawn(async move {
            if let Ok(out) = rx.await {
                let bad = rng
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .random_bool(p.min(1.0));
                let out = if bad {
                    counters.corrupted.fetch_add(1, Ordering::Relaxed);
                    flip(&rng, &out)
                } else {
                    out
                };
                let _ = reply.send(out);
            }
        });
        Some(Incoming {
            from,
            body,
            reply: tx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memo_core::Keypair;
    use memo_core::transport::MemoryNetwork;

    async fn echo(t: Arc<dyn Transport>) {
        while let Some(inc) = t.next_incoming().await {
            let _ = inc.reply.send(inc.body);
        }
    }

    #[tokio::test]
    async fn injects_each_fault_and_passes_through_otherwise() {
        let net = MemoryNetwork::new();
        let a = Keypair::from_seed("a").account();
        let b = Keypair::from_seed("b").account();
        let server: Arc<dyn Transport> = Arc::new(net.join(b));
        tokio::spawn(echo(server));
        let t = FaultTransport::new(Arc::new(net.join(a)), FaultConfig::none(7));
        let msg = Bytes::from(vec![0x55u8; 64]);
        assert_eq!(t.request(b, msg.clone()).await.unwrap(), msg);
        assert_eq!(t.stats(), FaultStats::default());

        t.set_config(FaultConfig {
            drop: 1.0,
            ..FaultConfig::none(7)
        });
        assert_eq!(
            t.request(b, msg.clone()).await,
            Err(TransportError::Timeout(b))
        );
        t.set_config(FaultConfig {
            corrupt: 1.0,
            ..FaultConfig::none(7)
        });
        let got = t.request(b, msg.clone()).await.unwrap();
        // Request and response each lose one bit: at most two bits differ, at least one may
        // have been flipped back.
        let diff: u32 = got
            .iter()
            .zip(msg.iter())
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert!(diff <= 2);
        t.set_config(FaultConfig {
            duplicate: 1.0,
            reorder: 1.0,
            ..FaultConfig::none(7)
        });
        assert_eq!(t.request(b, msg.clone()).await.unwrap(), msg);
        let s = t.stats();
        assert_eq!(
            (s.dropped, s.corrupted, s.duplicated, s.reordered),
            (1, 2, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_byzantine_server_alters_its_replies() {
        let net = MemoryNetwork::new();
        let a = Keypair::from_seed("a").account();
        let b = Keypair::from_seed("b").account();
        let server = Arc::new(FaultTransport::new(
            Arc::new(net.join(b)),
            FaultConfig {
                corrupt_replies: 1.0,
                ..FaultConfig::none(1)
            },
        ));
        tokio::spawn(echo(server.clone()));
        let t = net.join(a);
        let msg = Bytes::from(vec![0u8; 100]);
        let got = t.request(b, msg.clone()).await.unwrap();
        assert_ne!(got, msg);
        assert_eq!(got.len(), msg.len());
        assert_eq!(server.stats().corrupted, 1);
    }
}

//! A node's metrics: counters and latency histograms kept in atomics, recorded without locks on
//! the request path, and encoded in the Prometheus text format (through `prometheus-client`)
//! when `/metrics` is scraped.
//!
//! What records into [`NodeMetrics`]:
//! - [`MeteredTransport`], wrapped round a node's transport: every request the node serves,
//!   by kind (the request's wire tag, named the first time it is seen), whether it was
//!   answered with an error, and how long it took; and when each configured peer was last
//!   heard from;
//! - the shard lane ([`crate::transport::lane::LaneServer::set_metrics`]), for the shard puts
//!   and gets that travel on it;
//! - the provider ([`crate::provider::Provider::set_metrics`]): shard bytes in and out.
//!
//! Gauges that are read rather than counted (disk, ledger height, repair queue, chunk health)
//! come from the node's status at scrape time ([`crate::node::status`]).

use crate::config::{PeerInfo, Role};
use async_trait::async_trait;
use bytes::Bytes;
use memo_core::AccountId;
use memo_core::protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response};
use memo_core::transport::{Incoming, Transport, TransportError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Request kinds a node tells apart: wire tags below this; anything else is `invalid`.
const SLOTS: usize = 64;
/// The slot of requests that do not decode.
const INVALID: usize = SLOTS - 1;

/// Upper bounds of the latency histograms' buckets, in seconds (the last bucket is `+Inf`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram in atomics.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with their upper bounds).
    pub(crate) fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(b, c)| (b, c.load(Ordering::Relaxed)))
            .collect();
        (
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

#[derive(Default)]
struct KindSlot {
    name: OnceLock<&'static str>,
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// A configured peer and when it was last heard from.
struct PeerSlot {
    name: String,
    role: Role,
    account: AccountId,
    /// Milliseconds since the node started, plus one (0: never).
    last_heard: AtomicU64,
}

/// Counters of one request kind, as read by [`NodeMetrics::requests`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KindCounts {
    /// The request kind (`PutShard`, `Place`, ...; `invalid` for requests that do not decode).
    pub kind: &'static str,
    /// Requests served.
    pub requests: u64,
    /// Requests answered with an error (or dropped unanswered).
    pub errors: u64,
    /// Mean latency in milliseconds.
    pub mean_ms: f64,
}

/// A configured peer as [`NodeMetrics::peers`] reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerSeen {
    /// Its name in this node's config.
    pub name: String,
    /// `keeper` or `provider`.
    pub role: &'static str,
    /// Its account id.
    pub account: String,
    /// Seconds since this node last heard from it (a request from it, or an answer to one of
    /// this node's requests), if it ever did.
    pub last_heard_secs: Option<f64>,
}

/// Shard traffic of a provider, as read by [`NodeMetrics::shards`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShardCounts {
    /// Shards stored (new or again).
    pub shards_in: u64,
    /// Bytes of the shards stored.
    pub bytes_in: u64,
    /// Shards served.
    pub shards_out: u64,
    /// Bytes of the shards served.
    pub bytes_out: u64,
}

/// One node's counters and histograms. Cheap to record into: atomics only.
pub struct NodeMetrics {
    kinds: Box<[KindSlot]>,
    error_tag: Option<u8>,
    shards_in: AtomicU64,
    bytes_in: AtomicU64,
    shards_out: AtomicU64,
    bytes_out: AtomicU64,
    peers: Vec<PeerSlot>,
    peer_index: HashMap<AccountId, usize>,
    started: Instant,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl NodeMetrics {
    /// Metrics for the node `me` whose config names `peers` (`me` itself, and peers whose
    /// account does not parse, are left out).
    pub fn new(me: AccountId, peers: &[PeerInfo]) -> Arc<Self> {
        let peers: Vec<PeerSlot> = peers
            .iter()
            .filter_map(|p| {
                Some(PeerSlot {
                    name: p.name.clone(),
                    role: p.role,
                    account: p.account_id().ok().filter(|a| *a != me)?,
                    last_heard: AtomicU64::new(0),
                })
            })
            .collect();
        let peer_index = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.account, i))
            .collect();
        let kinds: Box<[KindSlot]> = (0..SLOTS).map(|_| KindSlot::default()).collect();
        let _ = kinds[INVALID].name.set("invalid");
        Arc::new(Self {
            kinds,
            error_tag: Response::error(ErrorCode::BadRequest, "")
                .to_bytes()
                .get(1)
                .copied(),
            shards_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            shards_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            peers,
            peer_index,
            started: Instant::now(),
        })
    }

    /// The slot of the request `body` (its wire tag), naming the slot the first time.
    fn slot(&self, body: &Bytes) -> usize {
        let tag = match body.as_ref() {
            [PROTOCOL_VERSION, t, ..] if (*t as usize) < INVALID => *t as usize,
            _ => return INVALID,
        };
        let slot = &self.kinds[tag];
        if slot.name.get().is_some() {
            return tag;
        }
        match Request::from_shared(body) {
            Ok(req) => {
                let _ = slot.name.set(req.kind());
                tag
            }
            Err(_) => INVALID,
        }
    }

    /// Starts timing a request whose wire bytes are `body`.
    pub fn start(&self, body: &Bytes) -> RequestTimer {
        RequestTimer {
            slot: self.slot(body),
            started: Instant::now(),
        }
    }

    /// Whether the response bytes `body` are an error.
    pub fn is_error(&self, body: &[u8]) -> bool {
        match (body, self.error_tag) {
            ([PROTOCOL_VERSION, t, ..], Some(e)) => *t == e,
            _ => true,
        }
    }

    /// Notes that `peer` was heard from just now (nothing if it is not a configured peer).
    pub fn heard(&self, peer: &AccountId) {
        if let Some(&i) = self.peer_index.get(peer) {
            let ms = self.started.elapsed().as_millis() as u64 + 1;
            self.peers[i].last_heard.store(ms, Ordering::Relaxed);
        }
    }

    /// Counts a shard of `bytes` bytes stored.
    pub fn shard_in(&self, bytes: usize) {
        self.shards_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a shard of `bytes` bytes served.
    pub fn shard_out(&self, bytes: usize) {
        self.shards_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Shard traffic so far.
    pub fn shards(&self) -> ShardCounts {
        ShardCounts {
            shards_in: self.shards_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            shards_out: self.shards_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }

    /// Every request kind seen so far, with its counts.
    pub fn requests(&self) -> Vec<KindCounts> {
        self.named_slots()
            .map(|(name, s)| {
                let (sum, count, _) = s.latency.snapshot();
                KindCounts {
                    kind: name,
                    requests: s.requests.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                    mean_ms: if count == 0 {
                        0.0
                    } else {
                        sum * 1e3 / count as f64
                    },
                }
            })
            .collect()
    }

    fn named_slots(&self) -> impl Iterator<Item = (&'static str, &KindSlot)> {
        self.kinds.iter().filter_map(|s| {
            let name = *s.name.get()?;
            (s.requests.load(Ordering::Relaxed) > 0).then_some((name, s))
        })
    }

    /// The configured peers, with when each was last heard from.
    pub fn peers(&self) -> Vec<PeerSeen> {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        self.peers
            .iter()
            .map(|p| {
                let at = p.last_heard.load(Ordering::Relaxed);
                PeerSeen {
                    name: p.name.clone(),
                    role: role_name(p.role),
                    account: p.account.to_hex(),
                    last_heard_secs: (at > 0).then(|| now.saturating_sub(at) as f64 / 1e3),
                }
            })
            .collect()
    }

    /// Writes the request and peer families (`memo_requests_total`,
    /// `memo_request_errors_total`, `memo_request_seconds`, `memo_peer_last_heard_seconds`)
    /// and, with `shards`, the shard families (`memo_shard_bytes_*_total`,
    /// `memo_shards_*_total`) to `enc`.
    pub(crate) fn encode(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder,
        shards: bool,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::NoLabelSet;
        use prometheus_client::metrics::MetricType;
        type Ex = prometheus_client::metrics::exemplar::Exemplar<NoLabelSet, u64>;
        let slots: Vec<_> = self.named_slots().collect();
        // One counter family by request kind.
        let mut by_kind = |name: &str, help: &str, value: &dyn Fn(&KindSlot) -> u64| {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (kind, s) in &slots {
                let labels = [("kind", *kind)];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&value(s), None::<&Ex>)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        by_kind("memo_requests", "Requests served, by kind", &|s| {
            s.requests.load(Ordering::Relaxed)
        })?;
        by_kind(
            "memo_request_errors",
            "Requests answered with an error or dropped, by kind",
            &|s| s.errors.load(Ordering::Relaxed),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "memo_request_seconds",
                "Time from a request's arrival to its answer, by kind",
                None,
                MetricType::Histogram,
            )?;
            for (name, s) in &slots {
                let labels = [("kind", *name)];
                let (sum, count, buckets) = s.latency.snapshot();
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        if shards {
            let counts = self.shards();
            for (name, help, v) in [
                (
                    "memo_shard_bytes_in",
                    "Shard bytes stored on this provider",
                    counts.bytes_in,
                ),
                (
                    "memo_shard_bytes_out",
                    "Shard bytes served by this provider",
                    counts.bytes_out,
                ),
                (
                    "memo_shards_in",
                    "Shards stored on this provider",
                    counts.shards_in,
                ),
                (
                    "memo_shards_out",
                    "Shards served by this provider",
                    counts.shards_out,
                ),
            ] {
                enc.encode_descriptor(name, help, None, MetricType::Counter)?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None::<&Ex>)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "memo_peer_last_heard_seconds",
                "Seconds since each configured peer was last heard from (absent: never)",
                None,
                MetricType::Gauge,
            )?;
            for p in self.peers() {
                if let Some(secs) = p.last_heard_secs {
                    let labels = [("peer", p.name.as_str()), ("role", p.role)];
                    m.encode_family(&labels)?.encode_gauge(&secs)?;
                }
            }
        }
        Ok(())
    }
}

/// `keeper` or `provider`.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Keeper => "keeper",
        Role::Provider => "provider",
    }
}

/// A request being timed ([`NodeMetrics::start`]).
#[derive(Debug)]
#[must_use = "finish it to record the request"]
pub struct RequestTimer {
    slot: usize,
    started: Instant,
}

impl RequestTimer {
    /// Records the request in `metrics`: answered with an error or not.
    pub fn finish(self, metrics: &NodeMetrics, error: bool) {
        let s = &metrics.kinds[self.slot];
        s.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
        s.latency.observe(self.started.elapsed().as_secs_f64());
    }
}

/// A transport that records every request it delivers, and its answer, in [`NodeMetrics`].
pub struct MeteredTransport {
    inner: Arc<dyn Transport>,
    metrics: Arc<NodeMetrics>,
}

impl MeteredTransport {
    /// `inner`, recording into `metrics`.
    pub fn wrap(inner: Arc<dyn Transport>, metrics: Arc<NodeMetrics>) -> Arc<dyn Transport> {
        Arc::new(Self { inner, metrics })
    }
}

#[async_trait]
impl Transport for MeteredTransport {
    fn local_id(&self) -> AccountId {
        self.inner.local_id()
    }

    fn add_address(&self, peer: AccountId, address: &str) {
        self.inner.add_address(peer, address)
    }

    async fn request(&self, peer: AccountId, body: Bytes) -> Result<Bytes, TransportError> {
        let r = self.inner.request(peer, body).await;
        if r.is_ok() {
            self.metrics.heard(&peer);
        }
        r
    }

    async fn next_incoming(&self) -> Option<Incoming> {
        let mut incoming = self.inner.next_incoming().await?;
        self.metrics.heard(&incoming.from);
        let timer = self.metrics.start(&incoming.body);
        // The service answers into `tx`; the answer is timed and passed on to the peer. A peer
        // that goes away drops `rx`, which the service sees as it would have before.
        let (tx, rx) = futures::channel::oneshot::channel::<Bytes>();
        let mut outer = std::mem::replace(&mut incoming.reply, tx);
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            tokio::select! {
                answer = rx => match answer {
                    Ok(bytes) => {
                        timer.finish(&metrics, metrics.is_error(&bytes));
                        let _ = outer.send(bytes);
                    }
                    Err(_) => timer.finish(&metrics, true),
                },
                _ = outer.cancellation() => timer.finish(&metrics, true),
            }
        });
        Some(incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_kind_and_errors_told_apart() {
        let m = NodeMetrics::new(AccountId([0; 32]), &[]);
        let body = Bytes::from(Request::ListObjects.to_bytes());
        m.start(&body).finish(&m, false);
        m.start(&body).finish(&m, true);
        m.start(&Bytes::from_static(b"\x02\x3egarbage"))
            .finish(&m, true);
        m.start(&Bytes::new()).finish(&m, true);
        let counts = m.requests();
        let list = counts.iter().find(|k| k.kind == "ListObjects").unwrap();
        assert_eq!((list.requests, list.errors), (2, 1));
        let invalid = counts.iter().find(|k| k.kind == "invalid").unwrap();
        assert_eq!((invalid.requests, invalid.errors), (2, 2));
        assert!(m.is_error(&Response::error(ErrorCode::Refused, "no").to_bytes()));
        assert!(!m.is_error(&Response::Done.to_bytes()));
        assert!(m.is_error(b""));
    }
}

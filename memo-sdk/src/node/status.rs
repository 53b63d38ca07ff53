//! A node's status server: HTTP on the address of the config's `status` key.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the status page (static HTML that polls `/api/status`) |
//! | `/api/status` | [`Status`] as JSON |
//! | `/health` | [`Health`] as JSON: 200 when ready, 503 when not |
//! | `/metrics` | the Prometheus text format |
//!
//! Anything else is a 404 with a JSON error; a request body over [`MAX_BODY`] bytes is refused
//! with 413 (nothing here takes a body). The server reads the node's parts when asked and keeps
//! nothing of its own but the [`NodeMetrics`] counters.
//!
//! A keeper in a Raft group reports the group through a [`GroupHook`] (see
//! [`crate::node::Node::set_group_status`]); `group` is `null` until one is set.

use crate::config::Role;
use crate::keeper::Keeper;
use crate::keeper::repair::{RepairStats, Repairer};
use crate::ledger::{Ledger, LocalChain};
use crate::node::metrics::{KindCounts, NodeMetrics, PeerSeen, ShardCounts, role_name};
use crate::provider::Provider;
use crate::replication::GroupStatus;
use crate::store::FsShardStore;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use memo_core::AccountId;
use memo_core::contract::{Answer, Query, RoleInfo};
use memo_core::ownership::{MemoryMeta, ShardHealth};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The status page, served at `/`.
pub const PAGE: &str = include_str!("status.html");

/// The largest request body the server reads; anything larger gets 413.
pub const MAX_BODY: usize = 16 * 1024;

/// How long a status request waits for the ledger before leaving its figures out.
const LEDGER_PATIENCE: Duration = Duration::from_secs(1);

/// Degraded chunks a status request examines at most (the rest are counted as at risk).
const CHUNKS_EXAMINED: usize = 100_000;

/// Reports a keeper's Raft group for the status page and `/health`: `None` while there is
/// none. Cheap and non-blocking: it is called on every status request.
pub type GroupHook = Arc<dyn Fn() -> Option<GroupStatus> + Send + Sync>;

/// The node parts the status server reads.
pub(crate) struct Sources {
    pub name: String,
    pub role: Role,
    pub account: AccountId,
    pub listen: String,
    pub metrics: Arc<NodeMetrics>,
    pub provider: Option<Arc<Provider<FsShardStore>>>,
    pub keeper: Option<Arc<Keeper>>,
    pub repairer: Option<Arc<Repairer>>,
    /// The ledger the node uses (its own chain on the sequencer, the sequencer's otherwise).
    pub ledger: Option<Arc<dyn Ledger>>,
    /// A following keeper's own copy of the chain, to tell its lag.
    pub local_chain: Option<Arc<LocalChain>>,
    /// A keeper's part in sequencing without a group: `sequencer` or `follower`.
    pub keeper_role: Option<&'static str>,
    pub group: Arc<RwLock<Option<GroupHook>>>,
    pub started: Instant,
}

/// What `/api/status` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The node's name.
    pub name: String,
    /// `keeper` or `provider`.
    pub role: &'static str,
    /// Its account id.
    pub account: String,
    /// The address its transport listens on.
    pub listen: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Whether it is ready to serve (see [`Health::ready`]).
    pub ready: bool,
    /// A keeper's part: `sequencer` or `follower` without a group, else the group's role.
    pub keeper_role: Option<String>,
    /// The ledger as this node sees it, if it runs with one.
    pub ledger: Option<LedgerStatus>,
    /// A provider's disk.
    pub disk: Option<DiskStatus>,
    /// A provider's shard traffic.
    pub shards: Option<ShardCounts>,
    /// Requests served, by kind.
    pub requests: Vec<KindCounts>,
    /// The peers in the node's config, with what this node knows of them.
    pub peers: Vec<PeerStatus>,
    /// A keeper's repair queue and counters.
    pub repair: Option<RepairStatus>,
    /// Proofs of storage: settled by a keeper's challenger, or answered by a provider.
    pub proofs: Option<ProofStatus>,
    /// A keeper's chunks by health.
    pub chunks: Option<ChunkHealth>,
    /// A keeper's Raft group, when it has one.
    pub group: Option<GroupStatus>,
}

/// The ledger as a node sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerStatus {
    /// The ledger's height (the sequencer's), if it answered.
    pub height: Option<u64>,
    /// Its epoch.
    pub epoch: Option<u64>,
    /// The height of this node's own copy (a following keeper).
    pub local_height: Option<u64>,
    /// Blocks this node's copy is behind the ledger.
    pub lag: Option<u64>,
    /// This node's balance.
    pub balance: Option<u64>,
    /// Its stake, once registered.
    pub stake: Option<u64>,
    /// Whether its role is registered.
    pub registered: Option<bool>,
    /// A provider's live storage orders.
    pub orders: Option<u64>,
}

/// A provider's disk.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiskStatus {
    /// Bytes offered.
    pub capacity: u64,
    /// Bytes of shards held.
    pub used: u64,
    /// Shards held.
    pub shards: u64,
}

/// A configured peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Name, role, account and when it was last heard from.
    #[serde(flatten)]
    pub seen: PeerSeen,
    /// A keeper's view of a provider: `healthy`, `suspect` or `lost`.
    pub health: Option<&'static str>,
}

/// A keeper's repair.
#[derive(Debug, Clone, Serialize)]
pub struct RepairStatus {
    /// Chunks with a shard that is not healthy: what repair works through.
    pub queue: u64,
    /// The repairer's counters, when this keeper repairs.
    pub stats: Option<RepairStats>,
}

/// Proofs of storage.
#[derive(Debug, Clone, Serialize)]
pub struct ProofStatus {
    /// Passed, over the epochs settled (a keeper) or answered (a provider).
    pub passed: u64,
    /// Failed verification (a keeper), or refused to answer (a provider).
    pub failed: u64,
    /// Challenges with no proof by the deadline (a keeper).
    pub missed: u64,
    /// The last settled epochs, oldest first: a keeper's settlements of its providers, or
    /// what the ledger settled for this provider during each epoch.
    pub epochs: Vec<EpochProofs>,
}

/// One settled epoch's proofs.
#[derive(Debug, Clone, Serialize)]
pub struct EpochProofs {
    /// The epoch.
    pub epoch: u64,
    /// Proofs passed.
    pub passed: u32,
    /// Proofs failed.
    pub failed: u32,
    /// Challenges missed.
    pub missed: u32,
}

/// A keeper's chunks by health.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ChunkHealth {
    /// Chunks registered.
    pub total: u64,
    /// Every shard healthy.
    pub healthy: u64,
    /// Some shard not healthy, but at least k healthy: readable, repairable.
    pub at_risk: u64,
    /// Fewer than k healthy shards.
    pub lost: u64,
}

/// What `/health` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The process answers.
    pub live: bool,
    /// It is ready to serve: registered on the ledger when it runs with one, and a keeper in a
    /// group knows its leader.
    pub ready: bool,
    /// The ledger's height, when the node runs with one and it answered.
    pub ledger_height: Option<u64>,
    /// Blocks this node's copy of the ledger is behind (a following keeper).
    pub ledger_lag: Option<u64>,
    /// A keeper's role (see [`Status::keeper_role`]).
    pub keeper_role: Option<String>,
}

async fn patient<T, E>(f: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(LEDGER_PATIENCE, f).await.ok()?.ok()
}

impl Sources {
    fn group(&self) -> Option<GroupStatus> {
        let hook = self
            .group
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        hook()
    }

    async fn ledger(&self) -> Option<LedgerStatus> {
        let ledger = self.ledger.as_ref()?;
        let me = self.account;
        let provider = self.role == Role::Provider;
        let (head, account, role, orders) = tokio::join!(
            patient(ledger.head()),
            patient(ledger.query(Query::Account(me))),
            patient(ledger.query(Query::Role(me))),
            async {
                if provider {
                    patient(ledger.query(Query::OrdersOf(me))).await
                } else {
                    None
                }
            },
        );
        let mut s = LedgerStatus {
            height: head.as_ref().map(|h| h.height),
            epoch: head.as_ref().map(|h| h.epoch),
            ..LedgerStatus::default()
        };
        if let Some(Answer::Orders(o)) = orders {
            s.orders = Some(o.len() as u64);
        }
        if let Some(Answer::Account(a)) = account {
            s.balance = Some(a.balance);
        }
        if let Some(Answer::Role(r)) = role {
            s.registered = Some(r.is_some());
            s.stake = r.and_then(|r| match r.info {
                RoleInfo::Keeper { stake, .. } | RoleInfo::Provider { stake, .. } => Some(stake),
                RoleInfo::User { .. } => None,
            });
        }
        if let Some(local) = &self.local_chain {
            let h = local.head_now().height;
            s.local_height = Some(h);
            s.lag = s.height.map(|top| top.saturating_sub(h));
        } else if s.height.is_some() {
            s.lag = Some(0);
        }
        Some(s)
    }

    /// The node's status now.
    pub(crate) async fn status(&self) -> Status {
        let ledger = self.ledger().await;
        let group = self.group();
        let ready = ledger.as_ref().is_none_or(|l| l.registered == Some(true))
            && group.as_ref().is_none_or(|g| g.leader.is_some());
        let disk = self.provider.as_ref().map(|p| {
            use memo_core::ownership::ShardStore;
            let store = p.store();
            DiskStatus {
                capacity: p.capacity(),
                used: store.used_bytes().unwrap_or(0),
                shards: store.shard_count().unwrap_or(0),
            }
        });
        let mut peers: Vec<PeerStatus> = self
            .metrics
            .peers()
            .into_iter()
            .map(|seen| PeerStatus { seen, health: None })
            .collect();
        let (mut repair, mut chunks, mut proofs) = (None, None, None);
        if let Some(k) = &self.keeper {
            let (queue, health) = k.inspect(|o| {
                for p in &mut peers {
                    if p.seen.role == "provider"
                        && let Ok(a) = p.seen.account.parse::<AccountId>()
                    {
                        p.health = Some(health_name(o.provider_health(&a)));
                    }
                }
                chunk_health(o)
            });
            repair = Some(RepairStatus {
                queue,
                stats: self.repairer.as_ref().map(|r| r.stats()),
            });
            chunks = Some(health);
            if let Some(c) = k.challenger() {
                let t = c.proof_totals();
                proofs = Some(ProofStatus {
                    passed: t.passed,
                    failed: t.failed,
                    missed: t.missed,
                    epochs: c
                        .reports()
                        .iter()
                        .map(|r| EpochProofs {
                            epoch: r.epoch,
                            passed: r.providers.iter().map(|p| p.passed).sum(),
                            failed: r.providers.iter().map(|p| p.failed).sum(),
                            missed: r.providers.iter().map(|p| p.missed).sum(),
                        })
                        .collect(),
                });
            }
        }
        let requests = self.metrics.requests();
        if let Some(p) = &self.provider {
            let prove = requests.iter().find(|k| k.kind == "Prove");
            proofs = Some(ProofStatus {
                passed: prove.map_or(0, |k| k.requests - k.errors),
                failed: prove.map_or(0, |k| k.errors),
                missed: 0,
                // What the ledger settled for this provider, epoch by epoch.
                epochs: p
                    .prover()
                    .map(|pr| {
                        pr.epochs()
                            .into_iter()
                            .map(|e| EpochProofs {
                                epoch: e.epoch,
                                passed: u32::try_from(e.passed).unwrap_or(u32::MAX),
                                failed: u32::try_from(e.failed).unwrap_or(u32::MAX),
                                missed: u32::try_from(e.missed).unwrap_or(u32::MAX),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        let keeper_role = group
            .as_ref()
            .map(|g| g.role.clone())
            .or(self.keeper_role.map(str::to_string));
        Status {
            name: self.name.clone(),
            role: role_name(self.role),
            account: self.account.to_hex(),
            listen: self.listen.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            ready,
            keeper_role,
            ledger,
            disk,
            shards: self.provider.as_ref().map(|_| self.metrics.shards()),
            requests,
            peers,
            repair,
            proofs,
            chunks,
            group,
        }
    }

    /// The Prometheus text of the node's metrics and `status`'s gauges.
    fn prometheus(&self, status: &Status) -> Result<String, std::fmt::Error> {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Scrape {
            metrics: self.metrics.clone(),
            status: status.clone(),
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

fn health_name(h: ShardHealth) -> &'static str {
    match h {
        ShardHealth::Healthy => "healthy",
        ShardHealth::Suspect => "suspect",
        ShardHealth::Lost => "lost",
    }
}

/// The repair queue (degraded chunks) and the chunks by health.
fn chunk_health(o: &memo_core::objects::Objects<MemoryMeta>) -> (u64, ChunkHealth) {
    let total = o.chunk_count() as u64;
    let (mut queue, mut at_risk, mut lost) = (0u64, 0u64, 0u64);
    for (i, c) in o.degraded().enumerate() {
        queue += 1;
        if i >= CHUNKS_EXAMINED {
            at_risk += 1;
            continue;
        }
        let k = o.data_shards(c).unwrap_or(1) as usize;
        let healthy = match o.ownership().chunk(c) {
            Ok(Some(e)) => e
                .shards
                .iter()
                .filter(|s| s.holder.is_some() && s.health == ShardHealth::Healthy)
                .count(),
            _ => 0,
        };
        if healthy >= k {
            at_risk += 1;
        } else {
            lost += 1;
        }
    }
    let health = ChunkHealth {
        total,
        healthy: total.saturating_sub(queue),
        at_risk,
        lost,
    };
    (queue, health)
}

/// One scrape: the node's counters and a status snapshot, encoded by `prometheus-client`.
#[derive(Debug)]
struct Scrape {
    metrics: Arc<NodeMetrics>,
    status: Status,
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::NoLabelSet;
        use prometheus_client::metrics::MetricType;
        type Ex = prometheus_client::metrics::exemplar::Exemplar<NoLabelSet, u64>;
        self.metrics
            .encode(&mut enc, self.status.shards.is_some())?;
        let s = &self.status;
        let mut gauge = |name: &str, help: &str, v: Option<u64>| -> std::fmt::Result {
            if let Some(v) = v {
                enc.encode_descriptor(name, help, None, MetricType::Gauge)?
                    .encode_gauge(&v)?;
            }
            Ok(())
        };
        gauge("memo_up", "1 while the node serves", Some(1))?;
        gauge(
            "memo_ready",
            "1 when the node is ready",
            Some(s.ready as u64),
        )?;
        let l = s.ledger.clone().unwrap_or_default();
        gauge("memo_ledger_height", "The ledger's height", l.height)?;
        gauge(
            "memo_ledger_local_height",
            "The height of this keeper's own copy of the ledger",
            l.local_height,
        )?;
        gauge(
            "memo_ledger_lag_blocks",
            "Blocks this node's copy of the ledger is behind",
            l.lag,
        )?;
        gauge(
            "memo_balance",
            "This node's balance on the ledger",
            l.balance,
        )?;
        gauge("memo_stake", "This node's stake on the ledger", l.stake)?;
        gauge("memo_orders", "A provider's live storage orders", l.orders)?;
        gauge(
            "memo_disk_capacity_bytes",
            "Bytes this provider offers",
            s.disk.map(|d| d.capacity),
        )?;
        gauge(
            "memo_disk_used_bytes",
            "Bytes of shards this provider holds",
            s.disk.map(|d| d.used),
        )?;
        gauge(
            "memo_disk_shards",
            "Shards this provider holds",
            s.disk.map(|d| d.shards),
        )?;
        gauge(
            "memo_peers",
            "Peers in this node's config",
            Some(s.peers.len() as u64),
        )?;
        gauge(
            "memo_peers_heard",
            "Peers heard from in the last minute",
            Some(
                s.peers
                    .iter()
                    .filter(|p| p.seen.last_heard_secs.is_some_and(|t| t < 60.0))
                    .count() as u64,
            ),
        )?;
        gauge(
            "memo_repair_queue_chunks",
            "Chunks with a shard that is not healthy",
            s.repair.as_ref().map(|r| r.queue),
        )?;
        if let Some(c) = &s.chunks {
            let mut m = enc.encode_descriptor(
                "memo_chunks",
                "Chunks registered, by health",
                None,
                MetricType::Gauge,
            )?;
            for (h, v) in [
                ("healthy", c.healthy),
                ("at_risk", c.at_risk),
                ("lost", c.lost),
            ] {
                m.encode_family(&[("health", h)])?.encode_gauge(&v)?;
            }
        }
        if let Some(r) = s.repair.as_ref().and_then(|r| r.stats) {
            for (name, help, v) in [
                (
                    "memo_repaired_bytes",
                    "Bytes of rebuilt shards placed",
                    r.bytes_restored,
                ),
                (
                    "memo_repair_read_bytes",
                    "Shard bytes read for repair",
                    r.bytes_read,
                ),
                (
                    "memo_repaired_chunks",
                    "Chunks whose missing shards were rebuilt",
                    r.chunks_repaired,
                ),
                (
                    "memo_repair_failures",
                    "Repairs that did not complete",
                    r.failures,
                ),
            ] {
                enc.encode_descriptor(name, help, None, MetricType::Counter)?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None::<&Ex>)?;
            }
        }
        if let Some(p) = &s.proofs {
            let mut m = enc.encode_descriptor(
                "memo_proofs",
                "Proofs of storage by outcome (settled by a keeper, answered by a provider)",
                None,
                MetricType::Counter,
            )?;
            for (o, v) in [
                ("passed", p.passed),
                ("failed", p.failed),
                ("missed", p.missed),
            ] {
                m.encode_family(&[("outcome", o)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None::<&Ex>)?;
            }
        }
        Ok(())
    }
}

fn json_error(code: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    (
        code,
        axum::Json(Error {
            error: message.into(),
        }),
    )
        .into_response()
}

type Ctx = State<Arc<Sources>>;

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

async fn api_status(State(s): Ctx) -> Response {
    with_cors(axum::Json(s.status().await).into_response())
}

async fn health(State(s): Ctx) -> Response {
    let st = s.status().await;
    let h = Health {
        live: true,
        ready: st.ready,
        ledger_height: st.ledger.as_ref().and_then(|l| l.height),
        ledger_lag: st.ledger.as_ref().and_then(|l| l.lag),
        keeper_role: st.keeper_role,
    };
    let code = if h.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_cors((code, axum::Json(h)).into_response())
}

/// The JSON endpoints may be read by a page from another origin (the devnet's page).
fn with_cors(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    r
}

async fn metrics(State(s): Ctx) -> Response {
    let status = s.status().await;
    match s.prometheus(&status) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics"),
    }
}

async fn not_found(req: Request) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!(
            "no such page: {}; try /, /api/status, /health or /metrics",
            req.uri().path()
        ),
    )
}

/// Refuses request bodies over [`MAX_BODY`] bytes, declared or sent.
async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are limited to {MAX_BODY} bytes"),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(_) => too_large(),
    }
}

fn router(sources: Arc<Sources>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(api_status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(limit_body))
        .with_state(sources)
}

/// Binds the status address `addr` (`host:port`).
pub(crate) async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let parsed: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a host:port address ({e})"),
        )
    })?;
    tokio::net::TcpListener::bind(parsed).await
}

/// Serves the status server on `listener` until the task is aborted.
pub(crate) fn spawn(listener: tokio::net::TcpListener, sources: Arc<Sources>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(sources)).await {
            tracing::warn!(error = %e, "the status server stopped");
        }
    })
}

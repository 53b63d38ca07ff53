//! The user's client: put, get, delete, list, stat and account over the network.
//!
//! A put streams the input through the codec and uploads each new chunk's shards to the
//! providers a keeper chose, in parallel, straight from the pipeline; chunks the network already
//! has move no data. The object becomes visible only when the user's signed operation is
//! applied, so an interrupted put leaves no object and no references behind.

pub mod orders;
pub mod pipeline;
mod report;

use crate::client::pipeline::{
    AsyncShardSource, decode_manifest_async, encode_async, read_manifest_async,
};
use crate::env::run_blocking;
use crate::provider::client as provider_client;
use crate::transport::rpc::{RpcError, call, unexpected};
use async_trait::async_trait;
use bytes::Bytes;
use memo_core::codec::{
    ChunkRef, CodecError, CodecParams, ConvergenceDomain, EncodedChunk, Encoder, ObjectRef,
    Parallelism, Progress, siv,
};
use memo_core::id::{AccountId, ObjectId};
use memo_core::objects::{ObjectOp, OpEnvelope};
use memo_core::ownership::ChunkInfo;
use memo_core::protocol::{
    AccountStatus, ChunkPlacement, ChunkStatus, ErrorCode, ObjectEntry, Request, Response,
};
use memo_core::ticket::{Possession, Receipt};
use memo_core::transport::{Transport, TransportError};
use memo_core::{ChunkId, Keypair, ShardId, Signed, wire};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};

/// A client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No keeper could be reached.
    #[error("no keeper reachable (tried {tried}): {last}")]
    NoKeeper {
        /// How many keepers were tried.
        tried: usize,
        /// The last error.
        last: String,
    },
    /// A keeper or provider refused or failed a request.
    #[error(transparent)]
    Rpc(Box<RpcError>),
    /// The ownership rules refused the operation (not an owner, quota exceeded, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// No object with this id or name is in the user's index.
    #[error("no object named {0} in your index")]
    NotFound(String),
    /// A name (or id prefix) that several of the user's objects have.
    #[error("{what} names {} objects ({}); use an id", ids.len(), ids.iter().map(|i| i.short()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The name or prefix given.
        what: String,
        /// The objects it matches.
        ids: Vec<ObjectId>,
    },
    /// Encoding, decoding or verifying data failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Uploading a shard failed.
    #[error("uploading shard {index} of chunk {chunk} to {provider:?} failed: {error}")]
    Upload {
        /// The chunk.
        chunk: String,
        /// The shard index.
        index: usize,
        /// The provider.
        provider: AccountId,
        /// Why.
        error: Box<RpcError>,
    },
    /// Local input or output failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// Ordering storage on the ledger failed; the put was not made.
    #[error("storage orders: {0}")]
    Orders(Box<crate::client::orders::OrderError>),
}

impl ClientError {
    /// Whether a keeper refused the request outright (it changed nothing), as opposed to a
    /// failure after which the request may or may not have been applied.
    pub fn is_refusal(&self) -> bool {
        match self {
            ClientError::Refused(_) => true,
            ClientError::Rpc(e) => matches!(&**e, RpcError::Remote { error, .. }
                if matches!(error.code, ErrorCode::Refused | ErrorCode::Forbidden | ErrorCode::BadRequest)),
            _ => false,
        }
    }
}

impl From<RpcError> for ClientError {
    fn from(e: RpcError) -> Self {
        ClientError::Rpc(Box::new(e))
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Keepers to talk to, in order of preference (the next is tried when one is unreachable).
    pub keepers: Vec<AccountId>,
    /// Chunking and erasure coding for new objects.
    pub params: CodecParams,
    /// Coding threads and window.
    pub parallelism: Parallelism,
    /// Chunks uploading at once.
    pub uploads: usize,
    /// Convergence domain: `None` for the global one.
    pub domain: Option<ConvergenceDomain>,
    /// How long one request to a keeper or provider may take before it counts as failed,
    /// whatever the transport (a provider that crashed mid-request never answers on the
    /// in-memory network, which has no timeout of its own). Default 30 s.
    pub request_timeout: std::time::Duration,
    /// The clock and randomness this client asks: index entries' creation time, operations'
    /// nonces and expiry.
    pub env: crate::env::Env,
    /// How long a signed operation stays valid for the keepers (its expiry after signing);
    /// at most [`memo_core::objects::MAX_OP_VALIDITY_MS`]. Default 5 minutes.
    pub op_validity: std::time::Duration,
}

impl ClientConfig {
    /// Defaults for these keepers.
    pub fn new(keepers: Vec<AccountId>) -> Self {
        Self {
            keepers,
            params: CodecParams::default(),
            parallelism: Parallelism::default(),
            uploads: 8,
            domain: None,
            request_timeout: std::time::Duration::from_secs(30),
            env: crate::env::Env::real(),
            op_validity: crate::replication::OP_VALIDITY,
        }
    }
}

/// Whether an upload failed because the provider had no room (or no capacity for this client
/// now), rather than being unreachable.
fn refused_for_room(e: &ClientError) -> bool {
    matches!(e, ClientError::Upload { error, .. }
        if matches!(&**error, RpcError::Remote { error, .. } if error.code == ErrorCode::Unavailable))
}

/// How many placements a chunk gets before its put fails (each without the providers that
/// refused or failed its shards before).
pub const PLACE_ATTEMPTS: usize = 3;

/// What uploading one chunk gave a put.
enum Uploaded {
    /// Uploaded: where, the holders' receipts and the bytes sent.
    New {
        placement: ChunkPlacement,
        receipts: Vec<Signed<Receipt>>,
        bytes: u64,
    },
    /// Already stored: the proof that this user holds it.
    Known(Possession),
}

/// What a put's uploads gave, gathered for its operation.
#[derive(Default)]
struct Uploads {
    placements: Vec<ChunkPlacement>,
    receipts: Vec<Signed<Receipt>>,
    possession: Vec<Possession>,
    chunks: usize,
    bytes: u64,
}

impl Uploads {
    fn add(&mut self, u: Uploaded) {
        match u {
            Uploaded::New {
                placement,
                receipts,
                bytes,
            } => {
                self.placements.push(placement);
                self.receipts.extend(receipts);
                self.chunks += 1;
                self.bytes += bytes;
            }
            Uploaded::Known(p) => {
                if !self.possession.iter().any(|q| q.chunk == p.chunk) {
                    self.possession.push(p);
                }
            }
        }
    }
}

/// What a put did.
#[derive(Debug, Clone, Serialize)]
pub struct PutReport {
    /// The object id.
    pub id: ObjectId,
    /// The name stored in the user's index.
    pub name: String,
    /// The object's size.
    pub size: u64,
    /// Chunks (manifest included).
    pub chunks: usize,
    /// Chunks whose shards were uploaded (the rest were already stored).
    pub uploaded_chunks: usize,
    /// Shard bytes sent to providers.
    pub uploaded_bytes: u64,
    /// Handle that reads the object (keep it secret; share it to share the object).
    pub object_ref: String,
    /// Storage orders created on the ledger for the uploaded shards (empty without a ledger).
    pub orders: Vec<u64>,
    /// Other users' orders whose shards this put co-owns: the data was stored already, and
    /// this user pays its share of it (empty without a ledger).
    pub shared: Vec<u64>,
}

/// An object in the user's index.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectInfo {
    /// The object id.
    pub id: ObjectId,
    /// The user's name for it (the first of [`ObjectInfo::names`]).
    pub name: String,
    /// The name of each of the user's references, oldest first (a name given twice appears
    /// twice).
    pub names: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// This user's reference count.
    pub refs: u64,
    /// When the oldest reference was stored, in seconds since the Unix epoch (`None` for
    /// entries written before puts recorded it).
    pub created: Option<u64>,
    /// The read handle.
    #[serde(skip)]
    pub object_ref: ObjectRef,
}

/// An object with its chunks' health.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectStat {
    /// The object.
    pub object: ObjectInfo,
    /// Each chunk, manifest last.
    pub chunks: Vec<ChunkStatus>,
}

/// A sealed index entry as first written: a name and the read handle.
#[derive(Serialize, Deserialize)]
struct IndexEntryV1 {
    name: String,
    object_ref: Vec<u8>,
}

/// A sealed index entry: a name, the read handle and when it was stored (seconds since the
/// Unix epoch). A [`IndexEntryV1`] decodes as neither, so the two never mix up.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    object_ref: Vec<u8>,
    created: u64,
}

/// What [`Client::remove`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    /// The object.
    pub id: ObjectId,
    /// The name whose reference was dropped (`None` when removed by id).
    pub name: Option<String>,
    /// The user's references left.
    pub refs_left: u64,
    /// What happened to the object's data.
    pub outcome: RemoveOutcome,
}

/// What a removal did to an object's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveOutcome {
    /// The user still holds references: nothing else changed.
    Kept,
    /// The user holds no reference now; other owners keep the object stored.
    Released,
    /// No owner is left: the keeper purged the object's shards from the providers.
    Purged,
}

/// A memo user: stores and reads files through keepers and providers.
pub struct Client {
    keypair: Keypair,
    transport: Arc<dyn Transport>,
    config: ClientConfig,
    encoder: Encoder,
    index_key: [u8; 32],
    orders: Option<crate::client::orders::Orders>,
    lanes: Option<Arc<crate::transport::lane::Lanes>>,
}

impl Client {
    /// A client for `keypair` on `transport`.
    pub fn new(
        keypair: Keypair,
        transport: Arc<dyn Transport>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let domain = config.domain.clone().unwrap_or_default();
        let encoder = Encoder::new(domain, config.params)?.with_parallelism(config.parallelism);
        let index_key = keypair.derive_secret("memo index v1");
        Ok(Self {
            keypair,
            transport,
            config,
            encoder,
            index_key,
            orders: None,
            lanes: None,
        })
    }

    /// Moves shard bytes on providers' lanes where they offer one (see [`crate::transport::lane`]),
    /// instead of over the transport; the transport still carries everything else and any
    /// shard request whose lane fails.
    pub fn use_lanes(&mut self, lanes: Arc<crate::transport::lane::Lanes>) {
        self.lanes = Some(lanes);
    }

    /// How shard requests reach providers.
    fn via(&self) -> crate::transport::lane::Via<'_> {
        match &self.lanes {
            Some(l) => crate::transport::lane::Via::Lanes(l),
            None => crate::transport::lane::Via::Transport(self.transport.as_ref()),
        }
    }

    /// Pays for what this client stores: after each put, storage orders and commitments for
    /// the new shards go to `ledger` (see [`crate::client::orders`]).
    pub fn set_ledger(
        &mut self,
        ledger: Arc<dyn crate::ledger::Ledger>,
        config: crate::client::orders::OrderConfig,
    ) {
        self.orders = Some(crate::client::orders::Orders::new(
            self.keypair.clone(),
            ledger,
            config,
        ));
    }

    /// This user's account id.
    pub fn account(&self) -> AccountId {
        self.keypair.account()
    }

    /// The transport in use.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The keepers this client talks to, in order of preference.
    pub fn keepers(&self) -> &[AccountId] {
        &self.config.keepers
    }

    /// `request`, failed with a timeout after [`ClientConfig::request_timeout`].
    async fn bounded<T>(
        &self,
        peer: AccountId,
        request: impl std::future::Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        tokio::time::timeout(self.config.request_timeout, request)
            .await
            .unwrap_or(Err(RpcError::Transport(TransportError::Timeout(peer))))
    }

    /// How each configured keeper sees its consensus group, in the config's order: its
    /// answer, or why it gave none (unreachable, or a keeper without a group).
    pub async fn keeper_groups(
        &self,
    ) -> Vec<(AccountId, Result<crate::replication::GroupStatus, RpcError>)> {
        let asks = self.config.keepers.iter().map(|k| async move {
            let status = self
                .bounded(
                    *k,
                    crate::replication::group_status(self.transport.as_ref(), *k),
                )
                .await;
            (*k, status)
        });
        futures::future::join_all(asks).await
    }

    /// The nodes the first reachable keeper knows (with their addresses) and the node that
    /// serves the ledger ([`Request::Directory`]).
    pub async fn directory(
        &self,
    ) -> Result<(Vec<memo_core::protocol::PeerEntry>, Option<AccountId>), ClientError> {
        match self.keeper(&Request::Directory).await? {
            (_, Response::Directory { peers, ledger }) => Ok((peers, ledger)),
            (keeper, other) => Err(unexpected(keeper, "Directory", &other).into()),
        }
    }

    /// Calls the first reachable keeper.
    async fn keeper(&self, req: &Request) -> Result<(AccountId, Response), ClientError> {
        let mut last = String::from("no keepers configured");
        for k in &self.config.keepers {
            match self
                .bounded(*k, call(self.transport.as_ref(), *k, req))
                .await
            {
                Ok(r) => return Ok((*k, r)),
                Err(RpcError::Transport(
                    e @ (TransportError::Unreachable(_)
                    | TransportError::Timeout(_)
                    | TransportError::Dropped(_)),
                )) => {
                    last = e.to_string();
                }
                Err(RpcError::Remote { error, .. }) if error.code == ErrorCode::Refused => {
                    return Err(ClientError::Refused(error.message));
                }
                // A keeper cut off from its group's quorum: another may reach it. Sending a
                // signed operation again is safe; a copy that lands twice is answered the
                // first copy's outcome.
                Err(RpcError::Remote { error, .. }) if error.code == ErrorCode::NoQuorum => {
                    last = format!("{k}: {}", error.message);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClientError::NoKeeper {
            tried: self.config.keepers.len(),
            last,
        })
    }

    /// Stores everything `reader` yields under `name`. `size` (if known) feeds progress.
    ///
    /// # Errors
    /// [`ClientError::Io`] if `reader` fails; [`ClientError::NoKeeper`] if no keeper answers;
    /// [`ClientError::Upload`] if a provider does not take a shard (or times out, see
    /// [`ClientConfig::request_timeout`]); [`ClientError::Refused`] if the ownership rules
    /// refuse the put (quota); [`ClientError::Codec`] for an object the codec cannot hold. In
    /// each case no object and no reference was added. [`ClientError::Orders`]: the object was
    /// stored, but paying for it on the ledger failed.
    pub async fn put<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        reader: R,
        size: Option<u64>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<PutReport, ClientError> {
        // The operation's nonce is chosen first: proofs of possession are bound to it.
        let nonce = self.config.env.next_u64();
        let began = self.config.env.now();
        let uploads: Mutex<Uploads> = Mutex::new(Uploads::default());
        let all: Mutex<Vec<ChunkInfo>> = Mutex::new(Vec::new());
        // Every shard this put stored, to take back if it fails before its operation goes out.
        let stored: Mutex<Vec<(AccountId, ShardId)>> = Mutex::new(Vec::new());
        let obj = encode_async(
            &self.encoder,
            self.config.parallelism,
            self.config.uploads,
            reader,
            size,
            progress,
            |chunk: EncodedChunk| {
                all.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ChunkInfo::from(&chunk.chunk));
                let (uploads, stored) = (&uploads, &stored);
                async move {
                    let done = self
                        .upload(chunk, nonce, stored)
                        .await
                        .map_err(io::Error::other)?;
                    uploads.lock().unwrap_or_else(|p| p.into_inner()).add(done);
                    Ok(())
                }
            },
        )
        .await
        .map_err(|e| match e {
            CodecError::Io(io) => match io.downcast::<ClientError>() {
                Ok(ce) => ce,
                Err(io) => ClientError::Codec(CodecError::Io(io)),
            },
            other => ClientError::Codec(other),
        });
        let stored = stored.into_inner().unwrap_or_else(|p| p.into_inner());
        let obj = match obj {
            Ok(obj) => obj,
            Err(e) => {
                self.withdraw(stored).await;
                return Err(e);
            }
        };
        let chunks = all.into_inner().unwrap_or_else(|p| p.into_inner());
        tracing::debug!(elapsed = ?self.config.env.now() - began, chunks = chunks.len(), "put: uploaded");
        let sealed = self.seal_entry(name, &obj);
        let mut up = uploads.into_inner().unwrap_or_else(|p| p.into_inner());
        // Uploads finish in any order; the operation lists them by chunk id (and receipts by
        // signer and shard), so one put always signs the same bytes.
        up.placements.sort_by_key(|p| p.chunk);
        up.receipts
            .sort_by(|a, b| (a.signer, &a.body).cmp(&(b.signer, &b.body)));
        up.possession.sort_by_key(|p| p.chunk);
        // Pay first: keepers with a ledger admit the put only when its shards are ordered.
        let orders = match &self.orders {
            Some(o) => match o.order_put(&up.receipts).await {
                Ok(ids) => ids,
                Err(e) => {
                    self.withdraw(stored).await;
                    return Err(ClientError::Orders(Box::new(e)));
                }
            },
            None => Vec::new(),
        };
        tracing::debug!(elapsed = ?self.config.env.now() - began, orders = orders.len(), "put: ordered");
        // Chunks stored already are paid for too: this user co-owns their orders.
        let claimed: Vec<&ChunkInfo> = chunks
            .iter()
            .filter(|c| up.possession.iter().any(|p| p.chunk == c.id))
            .collect();
        let shares = match self.share_claimed(&self.source(), &claimed).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(o) = &self.orders {
                    o.cancel(&orders).await;
                }
                self.withdraw(stored).await;
                return Err(e);
            }
        };
        let op = ObjectOp::Put {
            object: obj.id(),
            size: obj.size,
            needed: self.config.params.data_shards,
            sealed,
            chunks: chunks.clone(),
            placements: up.placements,
            receipts: up.receipts,
            possession: up.possession,
        };
        if let Err(e) = self.submit_with(op, nonce).await {
            // Refused for certain: nothing references the uploads, take them and their orders
            // back. (After a lost answer the put may have gone through; keep everything.)
            if e.is_refusal() {
                if let Some(o) = &self.orders {
                    o.cancel(&orders).await;
                    o.unshare(&shares).await;
                }
                self.withdraw(stored).await;
            }
            return Err(e);
        }
        tracing::debug!(elapsed = ?self.config.env.now() - began, "put: submitted");
        let (uploaded_chunks, uploaded_bytes) = (up.chunks, up.bytes);
        Ok(PutReport {
            id: obj.id(),
            name: name.to_string(),
            size: obj.size,
            chunks: chunks.len(),
            uploaded_chunks,
            uploaded_bytes,
            object_ref: obj.to_string(),
            orders,
            shared: shares.iter().map(|(id, _)| *id).collect(),
        })
    }

    /// Stores a byte slice.
    pub async fn put_bytes(&self, name: &str, data: &[u8]) -> Result<PutReport, ClientError> {
        self.put(name, data, Some(data.len() as u64), &mut |_| {})
            .await
    }

    /// Stores an object the network already holds again under `name`, moving no shard data:
    /// reads its manifest and gives every chunk one more reference from this user (what a
    /// second [`Client::put`] of the same bytes would do, without reading or encoding them).
    pub async fn put_existing(
        &self,
        name: &str,
        obj: &ObjectRef,
    ) -> Result<PutReport, ClientError> {
        let source = self.source();
        source.locate(&[obj.manifest.id]).await?;
        let manifest = read_manifest_async(&source, obj).await?;
        let mut refs: Vec<ChunkRef> = manifest.chunks.clone();
        refs.push(obj.manifest.clone());
        source
            .locate(&refs.iter().map(|c| c.id).collect::<Vec<_>>())
            .await?;
        // Becoming an owner takes proof of holding the content: read each distinct chunk
        // once and prove its shards (nothing is uploaded).
        let nonce = self.config.env.next_u64();
        let mut possession: Vec<Possession> = Vec::new();
        for c in &refs {
            if possession.iter().any(|p| p.chunk == c.id) {
                continue;
            }
            let mut dec = memo_core::codec::ChunkDecoder::new(c);
            for i in 0..c.shards.len() {
                if dec.is_ready() {
                    break;
                }
                if let Ok(Some(b)) = source.fetch(c, i).await {
                    dec.add(i, b);
                }
            }
            let all: Vec<usize> = (0..c.shards.len()).collect();
            let chunk = c.clone();
            let shards = run_blocking(move || {
                let ciphertext = dec.ciphertext()?;
                memo_core::codec::reencode_shards(&chunk, &ciphertext, &all)
            })
            .await
            .map_err(|e| ClientError::Io(io::Error::other(e)))??;
            let bytes: Vec<Bytes> = shards.into_iter().map(|(_, b)| b).collect();
            possession.push(Possession::prove(&self.account(), nonce, c.id, &bytes));
        }
        possession.sort_by_key(|p| p.chunk);
        let chunks: Vec<ChunkInfo> = refs.iter().map(ChunkInfo::from).collect();
        let shares = self
            .share_claimed(&source, &chunks.iter().collect::<Vec<_>>())
            .await?;
        let op = ObjectOp::Put {
            object: obj.id(),
            size: obj.size,
            needed: u8::try_from(obj.manifest.k()).unwrap_or(self.config.params.data_shards),
            sealed: self.seal_entry(name, obj),
            chunks: chunks.clone(),
            placements: Vec::new(),
            receipts: Vec::new(),
            possession,
        };
        if let Err(e) = self.submit_with(op, nonce).await {
            if e.is_refusal()
                && let Some(o) = &self.orders
            {
                o.unshare(&shares).await;
            }
            return Err(e);
        }
        Ok(PutReport {
            id: obj.id(),
            name: name.to_string(),
            size: obj.size,
            chunks: chunks.len(),
            uploaded_chunks: 0,
            uploaded_bytes: 0,
            object_ref: obj.to_string(),
            orders: Vec::new(),
            shared: shares.iter().map(|(id, _)| *id).collect(),
        })
    }

    /// Co-owns on the ledger the shards of `claimed`, chunks the network stores already that
    /// this put claims without uploading them ([`crate::client::orders::Orders::share`]).
    /// Nothing to do without a ledger.
    async fn share_claimed(
        &self,
        source: &NetworkSource<'_>,
        claimed: &[&ChunkInfo],
    ) -> Result<crate::client::orders::Shares, ClientError> {
        let Some(o) = &self.orders else {
            return Ok(Vec::new());
        };
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<ChunkId> = claimed.iter().map(|c| c.id).collect();
        source.locate(&ids).await?;
        let held: Vec<(AccountId, ShardId)> = claimed
            .iter()
            .flat_map(|c| {
                c.shards
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| source.holder_of(&c.id, i).map(|h| (h, *s)))
            })
            .collect();
        o.share(&held)
            .await
            .map_err(|e| ClientError::Orders(Box::new(e)))
    }

    /// Drops one of the user's references to object `id`, without looking it up in the index
    /// first (the keeper refuses a user holding none).
    pub async fn delete_id(&self, id: ObjectId) -> Result<(), ClientError> {
        self.submit(ObjectOp::Delete { object: id }).await?;
        Ok(())
    }

    /// Asks a keeper where to put a chunk and uploads its shards there under the keeper's
    /// tickets, in parallel, collecting the providers' receipts. A chunk already stored is not
    /// uploaded: the put proves possession of it instead, under the operation's `nonce`. If a
    /// provider refuses or fails a shard (full, gone), the chunk is placed again without it,
    /// up to [`PLACE_ATTEMPTS`] times; the put fails only when no placement works.
    async fn upload(
        &self,
        chunk: EncodedChunk,
        nonce: u64,
        stored: &Mutex<Vec<(AccountId, ShardId)>>,
    ) -> Result<Uploaded, ClientError> {
        let info = ChunkInfo::from(&chunk.chunk);
        let mut exclude: Vec<AccountId> = Vec::new();
        let mut attempt = 0;
        // Why the previous placement failed: the error to report if no other one is possible.
        let mut previous: Option<ClientError> = None;
        loop {
            attempt += 1;
            let place = Request::Place {
                chunks: vec![info.clone()],
                exclude: exclude.clone(),
            };
            let (keeper, resp) = match (self.keeper(&place).await, previous.take()) {
                (Ok(answer), _) => answer,
                // Providers were full, and the keeper has no others with room: it says so.
                (Err(_), Some(upload)) if !refused_for_room(&upload) => return Err(upload),
                (Err(e), _) => return Err(e),
            };
            let grant = match resp {
                Response::Placed(mut v) if v.len() == 1 => match v.pop().flatten() {
                    None => {
                        return Ok(Uploaded::Known(Possession::prove(
                            &self.account(),
                            nonce,
                            chunk.chunk.id,
                            &chunk.shards,
                        )));
                    }
                    Some(g) => g,
                },
                other => return Err(unexpected(keeper, "Place", &other).into()),
            };
            let n = chunk.shards.len();
            if grant.placement.holders.len() != n
                || grant.placement.holders.iter().any(Option::is_none)
            {
                return Err(RpcError::Unexpected {
                    peer: keeper,
                    asked: "Place",
                    got: "an incomplete placement".into(),
                }
                .into());
            }
            let via = self.via();
            let sends = chunk
                .chunk
                .shards
                .iter()
                .zip(&chunk.shards)
                .zip(&grant.placement.holders)
                .enumerate()
                .map(|(index, ((id, bytes), holder))| {
                    let ticket = grant.ticket.clone();
                    let provider = holder.unwrap_or(AccountId([0; 32]));
                    let (id, bytes) = (*id, bytes.clone());
                    let failed = move |error: RpcError| {
                        (
                            provider,
                            ClientError::Upload {
                                chunk: chunk.chunk.id.short(),
                                index,
                                provider,
                                error: Box::new(error),
                            },
                        )
                    };
                    async move {
                        let put =
                            provider_client::put_shard(via, provider, id, Some(ticket), bytes);
                        let (_, receipt) = self.bounded(provider, put).await.map_err(failed)?;
                        stored
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((provider, id));
                        receipt.ok_or_else(|| {
                            failed(RpcError::Unexpected {
                                peer: provider,
                                asked: "PutShard",
                                got: "no receipt".into(),
                            })
                        })
                    }
                });
            let mut receipts = Vec::with_capacity(n);
            let mut refused = Vec::new();
            for r in futures::future::join_all(sends).await {
                match r {
                    Ok(receipt) => receipts.push(receipt),
                    Err(f) => refused.push(f),
                }
            }
            let Some((_, last)) = refused.pop() else {
                return Ok(Uploaded::New {
                    placement: grant.placement,
                    receipts,
                    bytes: chunk.chunk.stored_bytes(),
                });
            };
            if attempt >= PLACE_ATTEMPTS {
                return Err(last);
            }
            tracing::info!(chunk = %chunk.chunk.id.short(), attempt, "placing the chunk again: {last}");
            // What this placement stored will not be registered: take it back now.
            let wasted: Vec<(AccountId, ShardId)> = receipts
                .iter()
                .filter_map(|r| Some((r.signer, r.open_unverified().ok()?.shard)))
                .collect();
            stored
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| !wasted.contains(s));
            self.withdraw(wasted).await;
            exclude.extend(refused.into_iter().map(|(p, _)| p));
            if let ClientError::Upload { provider, .. } = &last {
                exclude.push(*provider);
            }
            previous = Some(last);
        }
    }

    /// Takes back shards this client stored for a put that will not be registered (best
    /// effort: what a provider does not delete now it reclaims when the ticket expires).
    async fn withdraw(&self, shards: Vec<(AccountId, ShardId)>) {
        let mut by_provider: HashMap<AccountId, Vec<ShardId>> = HashMap::new();
        for (p, s) in shards {
            by_provider.entry(p).or_default().push(s);
        }
        let calls = by_provider.into_iter().map(|(p, shards)| async move {
            let t = self.transport.as_ref();
            match self
                .bounded(p, provider_client::withdraw(t, p, shards))
                .await
            {
                Ok(n) => tracing::debug!(provider = %p.label(), deleted = n, "withdrew uploads"),
                Err(e) => tracing::debug!(provider = %p.label(), "withdrawing uploads failed: {e}"),
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Signs `op` with a fresh nonce and submits it.
    async fn submit(&self, op: ObjectOp) -> Result<u64, ClientError> {
        let nonce = self.config.env.next_u64();
        self.submit_with(op, nonce).await
    }

    /// Signs `op` with `nonce`, valid for [`ClientConfig::op_validity`], and submits it.
    async fn submit_with(&self, op: ObjectOp, nonce: u64) -> Result<u64, ClientError> {
        let validity = u64::try_from(self.config.op_validity.as_millis())
            .unwrap_or(u64::MAX)
            .min(memo_core::objects::MAX_OP_VALIDITY_MS);
        let envelope = OpEnvelope::new(
            op,
            nonce,
            self.config.env.unix_ms().saturating_add(validity),
        );
        let signed = Signed::sign(&self.keypair, &envelope);
        let (keeper, resp) = self
            .keeper(&Request::Submit {
                tx: wire::encode(&signed),
            })
            .await?;
        match resp {
            Response::Submitted { height, .. } => Ok(height),
            other => Err(unexpected(keeper, "Submit", &other).into()),
        }
    }

    fn seal_entry(&self, name: &str, obj: &ObjectRef) -> Vec<u8> {
        let created = self.config.env.unix_ms() / 1000;
        let mut buf = wire::encode(&IndexEntry {
            name: name.to_string(),
            object_ref: obj.to_bytes(),
            created,
        });
        let len = buf.len() as u32;
        siv::seal(&self.index_key, &mut buf);
        let mut out = len.to_le_bytes().to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// One sealed name: the name, the read handle and when it was stored.
    fn open_name(&self, sealed: &[u8]) -> Option<(String, ObjectRef, Option<u64>)> {
        let len = u32::from_le_bytes(sealed.get(..4)?.try_into().ok()?) as usize;
        let mut buf = sealed.get(4..)?.to_vec();
        if !siv::open(&self.index_key, &mut buf, len) {
            return None;
        }
        let (name, object_ref, created) =
            match wire::decode::<IndexEntry>(&buf, 64 * 1024, "index entry") {
                Ok(e) => (e.name, e.object_ref, Some(e.created)),
                Err(_) => {
                    let e: IndexEntryV1 = wire::decode(&buf, 64 * 1024, "index entry").ok()?;
                    (e.name, e.object_ref, None)
                }
            };
        Some((name, ObjectRef::from_bytes(&object_ref).ok()?, created))
    }

    /// An entry's names that open with this user's key and belong to its object: each name
    /// with its sealed bytes (as listed), and the read handle.
    fn open_names(&self, entry: &ObjectEntry) -> Vec<(String, Vec<u8>, ObjectRef, Option<u64>)> {
        entry
            .sealed
            .iter()
            .filter_map(|s| {
                let (name, object_ref, created) = self.open_name(s)?;
                (object_ref.id() == entry.id).then(|| (name, s.clone(), object_ref, created))
            })
            .collect()
    }

    fn open_entry(&self, entry: &ObjectEntry) -> Option<ObjectInfo> {
        let names = self.open_names(entry);
        let (name, _, object_ref, created) = names.first()?.clone();
        Some(ObjectInfo {
            id: entry.id,
            name,
            names: names.into_iter().map(|n| n.0).collect(),
            size: entry.size,
            refs: entry.refs,
            created,
            object_ref,
        })
    }

    /// The user's index entries as the keeper lists them.
    async fn entries(&self) -> Result<Vec<ObjectEntry>, ClientError> {
        let (keeper, resp) = self.keeper(&Request::ListObjects).await?;
        match resp {
            Response::Objects(entries) => Ok(entries),
            other => Err(unexpected(keeper, "ListObjects", &other).into()),
        }
    }

    /// The user's objects.
    ///
    /// # Errors
    /// [`ClientError::NoKeeper`] or [`ClientError::Rpc`] if no keeper answers the listing.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, ClientError> {
        let entries = self.entries().await?;
        Ok(entries.iter().filter_map(|e| self.open_entry(e)).collect())
    }

    /// Finds an object in the user's index by id (full or a unique hex prefix) or by any of
    /// its names.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] if nothing matches, [`ClientError::Ambiguous`] if several
    /// objects do, and the errors of [`Client::list`].
    pub async fn find(&self, id_or_name: &str) -> Result<ObjectInfo, ClientError> {
        find_in(&self.list().await?, id_or_name)
    }

    /// Writes an object (or a byte range of it) to `writer`. `what` is an id, a name, or a
    /// shared `memo-obj1:` handle. Everything written was verified against the object's ids.
    ///
    /// # Errors
    /// The errors of [`Client::find`]; [`ClientError::Codec`] if a chunk has fewer than k
    /// good shards reachable (the bad ones are reported to a keeper); [`ClientError::Io`] if
    /// `writer` fails. What was written before the error is a verified prefix.
    pub async fn get<W: AsyncWrite + Unpin + Send>(
        &self,
        what: &str,
        range: Option<Range<u64>>,
        writer: &mut W,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<u64, ClientError> {
        let obj = self.resolve(what).await?;
        let source = self.source();
        let result = async {
            source.locate(&[obj.manifest.id]).await?;
            // The manifest is read once: to locate just the chunks in range, then to decode.
            let manifest = read_manifest_async(&source, &obj).await?;
            let (start, end) = range
                .clone()
                .map_or((0, manifest.size), |r| (r.start, r.end));
            let ids: Vec<ChunkId> = manifest
                .chunks_in_range(start, end)
                .map(|(_, c)| c.id)
                .collect();
            source.locate(&ids).await?;
            Ok(decode_manifest_async(
                &source,
                &manifest,
                range,
                self.config.parallelism,
                progress,
                writer,
            )
            .await?)
        }
        .await;
        report::send_reports(self, source.bad.into_inner().unwrap_or_default()).await;
        result
    }

    /// The object `what` names: a shared `memo-obj1:` handle, or an id or name in the index.
    async fn resolve(&self, what: &str) -> Result<ObjectRef, ClientError> {
        match what.parse::<ObjectRef>() {
            Ok(r) => Ok(r),
            Err(_) => Ok(self.find(what).await?.object_ref),
        }
    }

    /// A fresh source of shards for one read.
    fn source(&self) -> NetworkSource<'_> {
        NetworkSource {
            client: self,
            holders: Mutex::new(HashMap::new()),
            bad: Mutex::new(Vec::new()),
        }
    }

    /// How many leading bytes of `local` (an earlier, interrupted read of the object) are the
    /// object's own, and the object's size. Only whole chunks count: each is checked by
    /// encrypting it again with its secret from the manifest and comparing the chunk id, so a
    /// read can resume after them. `what` is as for [`Client::get`].
    pub async fn verified_prefix<R: AsyncRead + Unpin + Send>(
        &self,
        what: &str,
        mut local: R,
    ) -> Result<(u64, u64), ClientError> {
        use tokio::io::AsyncReadExt as _;
        let obj = self.resolve(what).await?;
        let source = self.source();
        source.locate(&[obj.manifest.id]).await?;
        let manifest = read_manifest_async(&source, &obj).await?;
        let mut verified = 0u64;
        for c in &manifest.chunks {
            let mut buf = vec![0u8; c.size as usize];
            match local.read_exact(&mut buf).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            siv::seal(&c.secret, &mut buf);
            if ChunkId::of(&buf) != c.id {
                break;
            }
            verified += u64::from(c.size);
        }
        Ok((verified, manifest.size))
    }

    /// Reads a whole object into memory.
    pub async fn get_bytes(&self, what: &str) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.get(what, None, &mut out, &mut |_| {}).await?;
        Ok(out)
    }

    /// Drops one of the user's references to an object; the last owner's last delete purges it
    /// from every provider.
    ///
    /// # Errors
    /// The errors of [`Client::find`]; [`ClientError::Refused`] if the user holds no
    /// reference (nothing changes); [`ClientError::NoKeeper`] if no keeper answers.
    pub async fn delete(&self, id_or_name: &str) -> Result<ObjectId, ClientError> {
        Ok(self.remove(id_or_name).await?.id)
    }

    /// Drops one of the user's references to an object and says what that did: by name, the
    /// reference stored under that name; by id, the one stored last. The last owner's last
    /// removal purges the object from every provider.
    pub async fn remove(&self, id_or_name: &str) -> Result<RemoveReport, ClientError> {
        let entries = self.entries().await?;
        let list: Vec<ObjectInfo> = entries.iter().filter_map(|e| self.open_entry(e)).collect();
        let q = id_or_name.trim();
        let (id, named, refs) = match find_in(&list, q) {
            Ok(o) => {
                let named = entries
                    .iter()
                    .filter(|e| e.id == o.id)
                    .flat_map(|e| self.open_names(e))
                    .find(|n| n.0 == q)
                    .map(|n| (n.0, n.1));
                (o.id, named, o.refs)
            }
            Err(ClientError::NotFound(q)) => match q.parse::<ObjectId>() {
                // Not in our index: the keeper decides (and refuses a non-owner).
                Ok(object) => (object, None, 0),
                Err(_) => return Err(ClientError::NotFound(q)),
            },
            Err(e) => return Err(e),
        };
        let (op, name) = match named {
            Some((name, sealed)) => (ObjectOp::DeleteNamed { object: id, sealed }, Some(name)),
            None => (ObjectOp::Delete { object: id }, None),
        };
        self.submit(op).await?;
        let refs_left = refs.saturating_sub(1);
        let outcome = if refs_left > 0 {
            RemoveOutcome::Kept
        } else {
            // The manifest chunk is the object's own: registered while anyone owns the object.
            let (keeper, resp) = self
                .keeper(&Request::Locate {
                    chunks: vec![ChunkId(id.0)],
                })
                .await?;
            match resp {
                Response::Located(found) if found.first().is_some_and(Option::is_some) => {
                    RemoveOutcome::Released
                }
                Response::Located(_) => RemoveOutcome::Purged,
                other => return Err(unexpected(keeper, "Locate", &other).into()),
            }
        };
        Ok(RemoveReport {
            id,
            name,
            refs_left,
            outcome,
        })
    }

    /// An object with its chunks' health.
    ///
    /// # Errors
    /// The errors of [`Client::find`], and [`ClientError::Rpc`] if the keeper cannot say.
    pub async fn stat(&self, id_or_name: &str) -> Result<ObjectStat, ClientError> {
        let object = self.find(id_or_name).await?;
        let (keeper, resp) = self.keeper(&Request::StatObject { id: object.id }).await?;
        match resp {
            Response::Object { entry, chunks } => Ok(ObjectStat {
                object: ObjectInfo {
                    refs: entry.refs,
                    ..object
                },
                chunks,
            }),
            other => Err(unexpected(keeper, "StatObject", &other).into()),
        }
    }

    /// The user's account: usage and objects from a keeper, and the balance from the ledger
    /// when the client has one ([`Client::set_ledger`]; 0 otherwise).
    pub async fn account_status(&self) -> Result<AccountStatus, ClientError> {
        let (keeper, resp) = self.keeper(&Request::Account).await?;
        let mut status = match resp {
            Response::Account(a) => a,
            other => return Err(unexpected(keeper, "Account", &other).into()),
        };
        if let Some(orders) = &self.orders {
            let q = memo_core::contract::Query::Account(self.account());
            match orders.ledger().query(q).await {
                Ok(memo_core::contract::Answer::Account(a)) => status.balance = a.balance,
                Ok(_) => {}
                Err(e) => return Err(ledger_error(e)),
            }
            let q = memo_core::contract::Query::Lapsed(self.account());
            match orders.ledger().query(q).await {
                Ok(memo_core::contract::Answer::Lapsed(l)) => status.lapsed_orders = l.len() as u64,
                Ok(_) => {}
                Err(e) => return Err(ledger_error(e)),
            }
        }
        Ok(status)
    }
}

/// The object `id_or_name` names in `all`: by id (full or a unique prefix of 8+ hex digits)
/// or by any of its names.
fn find_in(all: &[ObjectInfo], id_or_name: &str) -> Result<ObjectInfo, ClientError> {
    let q = id_or_name.trim();
    let by_id: Vec<&ObjectInfo> = all
        .iter()
        .filter(|o| q.len() >= 8 && o.id.to_hex().starts_with(&q.to_ascii_lowercase()))
        .collect();
    if by_id.len() == 1 {
        return Ok(by_id[0].clone());
    }
    let by_name: Vec<&ObjectInfo> = all
        .iter()
        .filter(|o| o.names.iter().any(|n| n == q))
        .collect();
    match (by_name.len(), by_id.len()) {
        (1, _) => Ok(by_name[0].clone()),
        (0, 0) => Err(ClientError::NotFound(q.to_string())),
        (0, _) => Err(ClientError::Ambiguous {
            what: q.to_string(),
            ids: by_id.iter().map(|o| o.id).collect(),
        }),
        _ => Err(ClientError::Ambiguous {
            what: q.to_string(),
            ids: by_name.iter().map(|o| o.id).collect(),
        }),
    }
}

/// A ledger failure as the client reports it (its storage orders could not be made or read).
pub(crate) fn ledger_error(e: impl Into<crate::ledger::tx::TxError>) -> ClientError {
    ClientError::Orders(Box::new(crate::client::orders::OrderError::Tx(e.into())))
}

/// Shards fetched from their holders, located through the keeper.
struct NetworkSource<'a> {
    client: &'a Client,
    holders: Mutex<HashMap<ChunkId, Vec<Option<AccountId>>>>,
    /// Shards a holder served altered or said it lacks: reported to a keeper after the read.
    bad: Mutex<Vec<memo_core::repair::ShardReport>>,
}

impl NetworkSource<'_> {
    /// The located holder of shard `index` of `chunk`, if any.
    fn holder_of(&self, chunk: &ChunkId, index: usize) -> Option<AccountId> {
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(chunk)
            .and_then(|h| h.get(index).copied().flatten())
    }

    fn report(&self, chunk: &ChunkRef, index: usize) {
        let holder = self.holder_of(&chunk.id, index);
        if let (Some(holder), Ok(index)) = (holder, u16::try_from(index)) {
            self.bad.lock().unwrap_or_else(|p| p.into_inner()).push(
                memo_core::repair::ShardReport {
                    chunk: chunk.id,
                    index,
                    holder,
                },
            );
        }
    }
}

impl NetworkSource<'_> {
    async fn locate(&self, chunks: &[ChunkId]) -> Result<(), ClientError> {
        let missing: Vec<ChunkId> = {
            let h = self.holders.lock().unwrap_or_else(|p| p.into_inner());
            chunks
                .iter()
                .filter(|c| !h.contains_key(c))
                .copied()
                .collect()
        };
        for batch in missing.chunks(memo_core::protocol::MAX_CHUNKS_PER_REQUEST) {
            let (keeper, resp) = self
                .client
                .keeper(&Request::Locate {
                    chunks: batch.to_vec(),
                })
                .await?;
            let Response::Located(found) = resp else {
                return Err(unexpected(keeper, "Locate", &resp).into());
            };
            let mut h = self.holders.lock().unwrap_or_else(|p| p.into_inner());
            for (c, p) in batch.iter().zip(found) {
                h.insert(*c, p.map(|p| p.holders).unwrap_or_default());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AsyncShardSource for NetworkSource<'_> {
    async fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>> {
        let known = self
            .holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&chunk.id);
        if !known {
            self.locate(&[chunk.id]).await.map_err(io::Error::other)?;
        }
        let holder = self.holder_of(&chunk.id, index);
        let Some(holder) = holder else {
            return Ok(None);
        };
        let got = self
            .client
            .bounded(
                holder,
                provider_client::get_shard(self.client.via(), holder, chunk.shards[index]),
            )
            .await
            .map_err(io::Error::other)?;
        if got.is_none() {
            self.report(chunk, index);
        }
        Ok(got)
    }

    fn rejected(&self, chunk: &ChunkRef, index: usize) {
        self.report(chunk, index);
    }
}

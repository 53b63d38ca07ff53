//! An S3-compatible gateway: one user's objects behind boto3, aws-cli and rclone.
//!
//! [`Gateway`] serves the S3 protocol (through the `s3s` crate) over one user's
//! [`Client`]: requests are checked with SigV4 against that user's
//! [`Credentials`], buckets and keys are kept in the user's own object index (see `docs/s3.md`
//! for the mapping), and object bytes stream through the client's put and get without ever
//! being held whole in memory.
//!
//! ```no_run
//! # async fn run(client: memo_sdk::Client, keypair: &memo_sdk::memo_core::Keypair)
//! # -> Result<(), memo_sdk::s3::GatewayError> {
//! use memo_sdk::s3::{Credentials, Gateway, GatewayConfig};
//! let gateway = Gateway::new(client, GatewayConfig::new(Credentials::derive(keypair)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! gateway.serve(listener, std::future::pending()).await
//! # }
//! ```

mod body;
mod catalog;
mod service;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use memo_core::Keypair;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

// The SDK items the gateway builds on, imported in this one place.
pub(crate) use crate::{Client, ClientError};
pub(crate) use memo_core::codec::ObjectRef;
pub(crate) use memo_core::id::ObjectId;

/// The access key id and secret key an S3 client signs its requests with (SigV4).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key: String,
    /// The secret key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_key: String,
}

impl Credentials {
    /// The credentials of `keypair`'s user, derived from its key: the same key always gives
    /// the same credentials, and they reveal nothing of the key.
    pub fn derive(keypair: &Keypair) -> Self {
        let id = keypair.derive_secret("memo s3 access key id v1");
        let secret = keypair.derive_secret("memo s3 secret access key v1");
        Self {
            access_key: format!("MEMO{}", hex_upper(&id[..8])),
            secret_key: hex_lower(&secret),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the gateway reads the time (for Last-Modified and upload dates).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Where the gateway draws random numbers (upload ids, and the nonces that keep two index
/// entries apart).
pub type Randomness = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Gateway settings.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The credentials requests must be signed with.
    pub credentials: Credentials,
    /// The region reported by GetBucketLocation (and expected in signatures).
    pub region: String,
    /// Largest PutObject body or multipart part, in bytes (S3: 5 GiB); larger ones are
    /// refused with `EntityTooLarge` and leave nothing stored.
    pub max_put_size: u64,
    /// Smallest multipart part other than the last (S3: 5 MiB); smaller ones make
    /// CompleteMultipartUpload fail with `EntityTooSmall`.
    pub min_part_size: u64,
    /// The time.
    pub clock: Clock,
    /// Random numbers.
    pub random: Randomness,
}

impl GatewayConfig {
    /// S3's limits, the system clock and the thread-local random generator.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            region: "us-east-1".into(),
            max_put_size: 5 << 30,
            min_part_size: 5 << 20,
            // The gateway's one reading of the wall clock (Last-Modified, upload dates).
            clock: Arc::new(SystemTime::now),
            random: Arc::new(rand::random::<u64>),
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("credentials", &self.credentials)
            .field("region", &self.region)
            .field("max_put_size", &self.max_put_size)
            .field("min_part_size", &self.min_part_size)
            .finish_non_exhaustive()
    }
}

/// Serving the gateway failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Accepting connections failed.
    #[error("s3 gateway i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// An S3 endpoint over one user's [`Client`].
#[derive(Clone)]
pub struct Gateway {
    service: S3Service,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway serving `client`'s objects to requests signed with `config.credentials`.
    pub fn new(client: impl Into<Arc<Client>>, config: GatewayConfig) -> Self {
        let auth = SimpleAuth::from_single(
            config.credentials.access_key.clone(),
            config.credentials.secret_key.clone(),
        );
        let mut builder = S3ServiceBuilder::new(service::MemoS3::new(client.into(), config));
        builder.set_auth(auth);
        Self {
            service: builder.build(),
        }
    }

    /// The S3 service, for embedding in a hyper (or tower) server of one's own.
    pub fn service(&self) -> S3Service {
        self.service.clone()
    }

    /// Serves HTTP/1.1 and HTTP/2 connections from `listener` until `shutdown` completes,
    /// then lets the open connections finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), GatewayError> {
        let http = ConnBuilder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        tracing::warn!("s3 gateway: accept failed: {e}");
                        continue;
                    }
                },
                () = shutdown.as_mut() => break,
            };
            let conn = http.serve_connection(TokioIo::new(socket), self.service.clone());
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("s3 gateway: connection ended: {e}");
                }
            });
        }
        graceful.shutdown().await;
        Ok(())
    }
}

/// The client calls the gateway makes, as boxed `Send` futures: inside the S3 trait's async
/// bodies rustc cannot prove the client's own futures `Send` (its higher-ranked closures hit
/// a known compiler limitation), while a plain function with concrete lifetimes can.
pub(crate) mod calls {
    use super::{Client, ClientError, ObjectId, ObjectRef};
    use crate::client::{ObjectInfo, PutReport};
    use futures::future::BoxFuture;
    use std::sync::Arc;
    use tokio::io::{AsyncRead, AsyncWrite};

    /// [`Client::put`] without progress.
    pub(crate) fn put<'a, R: AsyncRead + Unpin + Send + 'a>(
        client: &'a Client,
        name: &'a str,
        reader: R,
        size: Option<u64>,
    ) -> BoxFuture<'a, Result<PutReport, ClientError>> {
        Box::pin(async move { client.put(name, reader, size, &mut |_| {}).await })
    }

    /// [`Client::get`] without progress (handing the writer back, so a failure can be reported
    /// before the writer closes), on a blocking-pool thread of its own: rustc cannot
    /// prove the client's get future `Send` (higher-ranked lifetimes in its streams), so it
    /// is driven there with `block_on` instead of being spawned.
    pub(crate) async fn get<W: AsyncWrite + Unpin + Send + 'static>(
        client: Arc<Client>,
        what: String,
        range: Option<std::ops::Range<u64>>,
        mut writer: W,
    ) -> (Option<W>, Result<u64, ClientError>) {
        let rt = tokio::runtime::Handle::current();
        let joined = tokio::task::spawn_blocking(move || {
            rt.block_on(async move {
                let r = client.get(&what, range, &mut writer, &mut |_| {}).await;
                (writer, r)
            })
        })
        .await;
        match joined {
            Ok((w, r)) => (Some(w), r),
            Err(e) => (None, Err(ClientError::Io(std::io::Error::other(e)))),
        }
    }

    /// [`Client::put_bytes`].
    pub(crate) fn put_bytes<'a>(
        client: &'a Client,
        name: &'a str,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<PutReport, ClientError>> {
        Box::pin(client.put_bytes(name, data))
    }

    /// [`Client::get_bytes`], driven like [`get`].
    pub(crate) async fn get_bytes(
        client: Arc<Client>,
        what: String,
    ) -> Result<Vec<u8>, ClientError> {
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            rt.block_on(async move { client.get_bytes(&what).await })
        })
        .await
        .map_err(|e| ClientError::Io(std::io::Error::other(e)))?
    }

    /// [`Client::list`].
    pub(crate) fn list(client: &Client) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ClientError>> {
        Box::pin(client.list())
    }

    /// [`Client::put_existing`].
    pub(crate) fn put_existing<'a>(
        client: &'a Client,
        name: &'a str,
        obj: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<PutReport, ClientError>> {
        Box::pin(client.put_existing(name, obj))
    }

    /// [`Client::delete_id`].
    pub(crate) fn delete_id(
        client: &Client,
        id: ObjectId,
    ) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(client.delete_id(id))
    }
}

//! memo-sdk: the async side of memo: the user client, keeper and provider services, durable
//! backends, the network transport and the local chain.
//!
//! Streaming encode and decode over tokio live in [`pipeline`]; durable stores in [`store`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod chain;
pub mod challenger;
pub mod client;
pub mod config;
pub mod fault;
pub mod keeper;
pub mod keeper_node;
pub mod lane;
pub mod local;
pub mod local_ledger;
pub mod net;
pub mod node;
pub mod oplog;
pub mod orders;
pub mod pipeline;
pub mod prover;
pub mod provider;
pub mod repair;
pub mod rpc;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;
pub mod tx;

pub use client::{Client, ClientConfig, ClientError};
pub use memo_core;

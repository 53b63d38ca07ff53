//! memo-sdk: the async side of memo, arranged by persona and mechanism.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`client`] | the user's [`Client`]: put, get, delete, list, stat; streaming encode and decode ([`client::pipeline`]); storage orders ([`client::orders`]) |
//! | [`keeper`] | the keeper service (placement, ownership metadata, purges), a whole keeper process ([`keeper::node`]), storage challenges ([`keeper::challenger`]), detection and repair ([`keeper::repair`]) |
//! | [`provider`] | the provider service (holds shards) and its prover ([`provider::prover`]) |
//! | [`ledger`] | the [`ledger::Ledger`] trait, the local chain, and signed transactions ([`ledger::tx`]) |
//! | [`replication`] | the ordered log of object operations that keepers share |
//! | [`transport`] | libp2p ([`transport::p2p`]), shard lanes, request/response calls, fault injection |
//! | [`store`] | durable backends: shard files and redb metadata |
//! | [`env`](mod@env) | the clock and randomness every flow asks: tokio time for real nodes, virtual time for simulations |
//! | [`node`] | one node, several services: routes each request to its service; [`node::Node`] builds a keeper or provider process from its config |
//! | [`local`] | a whole network in one process (tests, `memo demo`) |
//! | `s3` | an S3-compatible gateway over a user's [`Client`] (feature `s3`) |
//! | [`config`] | config and key files |
//!
//! The sans-IO rules (codec, ownership, contract, proofs, repair plans) and the backend traits
//! with their conformance suites live in [`memo_core`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Input from the network, the disk or a person never panics the program: no unwrap, expect or
// panic outside tests (the test kit's suites panic by design, and say so).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod client;
pub mod config;
pub mod env;
pub mod keeper;
pub mod ledger;
pub mod local;
pub mod node;
pub mod provider;
pub mod replication;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transport;

pub use client::{Client, ClientConfig, ClientError, RemoveOutcome, RemoveReport};
pub use env::Env;
pub use memo_core;

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

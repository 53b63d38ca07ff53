//! memo-core: the deterministic, sans-IO heart of memo.
//!
//! Types, crypto, the object codec, wire encoding and identities. Nothing in this crate reads
//! the clock, opens a socket or draws OS randomness: time, randomness and I/O results come in
//! as arguments, so every state machine here is testable and replayable.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Input from the network, the disk or a person never panics the program: no unwrap, expect or
// panic outside tests (the test kit's suites panic by design, and say so).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod codec;
pub mod contract;
pub mod id;
pub mod identity;
pub mod objects;
pub mod ownership;
pub mod proof;
pub mod protocol;
pub mod repair;
pub mod ticket;
pub mod transport;
pub mod wire;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use id::{AccountId, ChunkId, ObjectId, ShardId};
pub use identity::{Keypair, Signable, Signed};

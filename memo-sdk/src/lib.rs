//! memo-sdk: the async side of memo: the user client, keeper and provider services, durable
//! backends, the network transport and the local chain.
//!
//! Streaming encode and decode over tokio live in [`pipeline`]; durable stores in [`store`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pipeline;
pub mod store;

pub use memo_core;

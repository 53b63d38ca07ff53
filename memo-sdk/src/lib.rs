//! memo-sdk: the async side of memo.
//!
//! Streaming encode and decode over tokio ([`pipeline`]); stores, services, the transport and the
//! local chain build on it.
#![warn(missing_docs)]

pub mod net;
pub mod pipeline;

pub use memo_core;

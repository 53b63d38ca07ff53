//! memo-sdk: the user client, keeper and provider services, durable backends, transport and
//! local chain.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod store;

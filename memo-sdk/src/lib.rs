//! memo-sdk: the user client, keeper and provider services, durable backends, transport and
//! the local chain.

pub mod chain;

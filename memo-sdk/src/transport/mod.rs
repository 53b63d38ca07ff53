//! How nodes reach each other: the real network ([`p2p`], memo's `Transport` over rust-libp2p),
//! the direct shard channel between clients and providers ([`lane`]), request/response calls
//! over either ([`rpc`]), the caps on what peers may make a node hold ([`limits`]), and a
//! fault-injecting wrapper for simulations ([`fault`]).
//!
//! The [`Transport`](memo_core::transport::Transport) trait itself lives in memo-core, with the
//! in-memory transport and its conformance suite.

pub mod fault;
pub mod lane;
pub mod limits;
pub mod p2p;
pub mod rpc;

//! The durable shard store: [`FsShardStore`] (shard bytes as files). It passes memo-core's
//! conformance test kit. (Keepers keep their metadata in memory, with checkpoints on disk:
//! see [`crate::keeper::checkpoint`].)

mod fs_shards;

pub use fs_shards::{FsShardStore, SPARES};

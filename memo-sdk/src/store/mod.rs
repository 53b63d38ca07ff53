//! Durable backends for memo-core's ownership traits: [`RedbMeta`] (metadata in redb) and
//! [`FsShardStore`] (shard bytes as files). Both pass memo-core's conformance test kit.

mod fs_shards;
mod redb_meta;

pub use fs_shards::{FsShardStore, SPARES};
pub use redb_meta::{
    DEFAULT_CHECKPOINT_EVERY, DEFAULT_CLEANING_FLOOR, LogApply, REDB_SCHEMA_VERSION, RecordStats,
    RedbMeta, raw,
};

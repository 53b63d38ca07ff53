//! [`Allocator`]: the global allocator of memo's own processes (the `memo` binary and the
//! benchmarks): mimalloc.
//!
//! Why: a keeper holds an index of every chunk in memory, and every chunk reference reads it at
//! random places. When keepers kept their metadata in redb (a store since removed: keepers now
//! hold it in memory with checkpoints), glibc's malloc slowed down at 10 million chunks in a
//! heap of millions of cached pages, and reads missed the TLB on 4 KiB pages: per chunk
//! reference, the cost grew by up to half from 10 thousand chunks to 10 million. mimalloc keeps
//! such heaps in size-class pages and, on Linux, asks for transparent huge pages on its arenas
//! (`madvise(MADV_HUGEPAGE)`, so they apply also where the system's policy is `madvise`); that
//! removed most of the growth.
//!
//! An application embedding memo-sdk chooses its own allocator; this one is opt-in (feature
//! `mimalloc`):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: memo_sdk::alloc::Allocator = memo_sdk::alloc::Allocator;
//!
//! fn main() {
//!     let v = vec![1u8; 1 << 20]; // from mimalloc
//!     assert_eq!(v.len(), 1 << 20);
//! }
//! ```

/// mimalloc with its defaults. Install it with `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

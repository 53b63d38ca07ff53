//! [`Allocator`]: the global allocator of memo's own processes (the `memo` binary and the
//! benchmarks): mimalloc.
//!
//! Why: a keeper's metadata store ([`crate::store::RedbMeta`]) keeps an index of every chunk and
//! a page cache as large as its database in memory, and every chunk reference reads both at
//! random places. With glibc's malloc, at 10 million chunks (a 12 GB database) malloc itself
//! slowed down in a heap of millions of cached pages, and reads missed the TLB on 4 KiB pages:
//! per chunk reference, the cost grew by up to half from 10 thousand chunks to 10 million.
//! mimalloc keeps such heaps in size-class pages and, on Linux, asks for transparent huge pages
//! on its arenas (`madvise(MADV_HUGEPAGE)`, so they apply also where the system's policy is
//! `madvise`); that removes most of the growth (README, *Refcount throughput*).
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

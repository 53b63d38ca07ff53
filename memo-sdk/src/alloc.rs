//! [`Allocator`]: the global allocator of memo's own processes (the `memo` binary and the
//! benchmarks): mimalloc, allowed to back its memory with transparent huge pages.
//!
//! Why: a keeper's metadata store ([`crate::store::RedbMeta`]) keeps an index of every chunk and
//! a page cache as large as its database in memory, and every chunk reference reads both at
//! random places. With glibc's malloc and 4 KiB pages, at 10 million chunks (a 12 GB database)
//! nearly every such read missed the TLB, and malloc itself slowed down in a heap of millions of
//! cached pages: per chunk reference, the CPU cost grew by half from 10 thousand chunks to 10
//! million. This allocator removes most of that growth (README, *Refcount throughput*).
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
#![allow(unsafe_code)]

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc, with large OS pages allowed (on Linux, `madvise(MADV_HUGEPAGE)` on its arenas, so
/// transparent huge pages apply also where the system's policy is `madvise`). Install it with
/// `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

static READY: AtomicBool = AtomicBool::new(false);

/// Sets mimalloc's options before the first allocation, so that every arena it reserves
/// (the first one included) may use huge pages.
#[cold]
fn setup() {
    // SAFETY: sets an option value in mimalloc's option table; any time is allowed, and a race
    // between two first allocations only sets the same value twice.
    unsafe { mi::mi_option_set_enabled(mi::mi_option_large_os_pages, true) };
    READY.store(true, Ordering::Release);
}

// SAFETY: every method forwards to mimalloc's aligned functions, which meet `GlobalAlloc`'s
// contract for any size and power-of-two alignment.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !READY.load(Ordering::Acquire) {
            setup();
        }
        unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !READY.load(Ordering::Acquire) {
            setup();
        }
        unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_aligned_zeroed_and_reallocates() {
        let a = Allocator;
        for (size, align) in [(1, 1), (24, 8), (4096, 4096), (3 << 20, 64)] {
            let layout = Layout::from_size_align(size, align).expect("layout");
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "alignment {align}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0));
                p.write_bytes(0xa5, size);
                let q = a.realloc(p, layout, size * 2);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "alignment {align} after realloc");
                assert!(
                    std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|b| *b == 0xa5)
                );
                a.dealloc(q, Layout::from_size_align(size * 2, align).expect("layout"));
            }
        }
        assert!(READY.load(Ordering::Acquire));
        assert!(unsafe { mi::mi_option_is_enabled(mi::mi_option_large_os_pages) });
    }
}

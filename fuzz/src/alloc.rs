//! A global allocator that refuses to let the live heap grow much beyond the input: a few-byte
//! file that declares billions of rows must be refused before anything is allocated from its
//! counts. libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, which stable Rust
//! does not build, and its `-rss_limit_mb` only samples the RSS once a second; counting every
//! allocation here catches the first one over the budget, deterministically.
//!
//! An allocation over the budget fails, so Rust aborts with "memory allocation of N bytes
//! failed", which libFuzzer reports as a crash and saves the input of.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated through [`CappedAllocator`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The largest value [`LIVE`] may reach; no limit outside [`with_budget`].
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The system allocator, with the live heap capped during [`with_budget`].
pub struct CappedAllocator;

impl CappedAllocator {
    /// Counts `size` more bytes unless that passes the limit.
    fn reserve(size: usize) -> bool {
        let before = LIVE.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > LIMIT.load(Ordering::Relaxed) {
            LIVE.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Calls `allocate` if `size` more bytes fit the budget (else fails, returning null), and
    /// un-counts them if the allocation itself fails.
    fn counted(size: usize, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
        if !Self::reserve(size) {
            return std::ptr::null_mut();
        }
        let p = allocate();
        if p.is_null() {
            LIVE.fetch_sub(size, Ordering::Relaxed);
        }
        p
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only the byte count is added.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::counted(layout.size(), || System.alloc(layout))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::counted(layout.size(), || System.alloc_zeroed(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Heap every input may use whatever its size: compiled regular expressions (the `regex`
/// crate caps one at about 10 MiB), thread pools and the buffers kept between calls.
const BASE_BUDGET: usize = 64 << 20;

/// Runs `f` with the live heap allowed to grow by at most `BASE_BUDGET + per_byte * input_len`
/// bytes (only when [`CappedAllocator`] is the global allocator). One run at a time: libFuzzer
/// runs inputs one after the other, and so does the replay test.
pub(crate) fn with_budget<R>(input_len: usize, per_byte: usize, f: impl FnOnce() -> R) -> R {
    let budget = BASE_BUDGET.saturating_add(per_byte.saturating_mul(input_len));
    LIMIT.store(
        LIVE.load(Ordering::Relaxed).saturating_add(budget),
        Ordering::Relaxed,
    );
    let result = f();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's own tests do not install the allocator: only the accounting is tested.
    #[test]
    fn the_budget_refuses_growth_past_it_and_ends_with_the_run() {
        with_budget(10, 4, || {
            assert!(!CappedAllocator::reserve(BASE_BUDGET + 41));
            assert!(CappedAllocator::reserve(BASE_BUDGET + 40));
            assert!(
                !CappedAllocator::reserve(1),
                "the budget is for the live heap"
            );
            LIVE.fetch_sub(BASE_BUDGET + 40, Ordering::Relaxed);
        });
        assert!(
            CappedAllocator::reserve(usize::MAX / 2),
            "no limit outside a run"
        );
        LIVE.fetch_sub(usize::MAX / 2, Ordering::Relaxed);
    }
}

//! The global allocator: jemalloc (as Valkey uses), counting the usable size of live blocks so that INFO's used_memory and
//! maxmemory see what the allocator really hands out (size classes included), like Valkey's zmalloc.
//!
//! The counter is the one piece of process-wide mutable state, by necessity (an allocator has no owner to
//! ask). To keep it off the cores' shared cache lines, each thread adds to its own padded slot; readers sum
//! the slots. A block freed by another thread than the one that allocated it makes one slot go negative
//! and another positive; the sum stays exact.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};

const SLOTS: usize = 64;

#[repr(align(64))]
struct Slot(AtomicI64);

static COUNTERS: [Slot; SLOTS] = [const { Slot(AtomicI64::new(0)) }; SLOTS];
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor, so reading it never allocates (no re-entrancy).
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn add(delta: i64) {
    let i = INDEX.try_with(|c| {
        let mut i = c.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed) % SLOTS;
            c.set(i);
        }
        i
    });
    COUNTERS[i.unwrap_or(0)].0.fetch_add(delta, Relaxed);
}

/// Bytes currently allocated (usable sizes), summed over threads.
pub fn used_memory() -> u64 {
    let n = NEXT.load(Relaxed).min(SLOTS);
    let sum: i64 = COUNTERS[..n.max(1)].iter().map(|s| s.0.load(Relaxed)).sum();
    sum.max(0) as u64
}

pub struct Counting;

#[inline]
unsafe fn usable(p: *mut u8) -> usize {
    // SAFETY: p is a live jemalloc block (callers pass only pointers jemalloc returned).
    unsafe { tikv_jemallocator::usable_size(p as *const u8) }
}

static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { JE.alloc(layout) };
        if !p.is_null() {
            add(unsafe { usable(p) } as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { JE.alloc_zeroed(layout) };
        if !p.is_null() {
            add(unsafe { usable(p) } as i64);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        add(-(unsafe { usable(p) } as i64));
        unsafe { JE.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = unsafe { usable(p) } as i64;
        let q = unsafe { JE.realloc(p, layout, new_size) };
        if !q.is_null() {
            add(unsafe { usable(q) } as i64 - old);
        }
        q
    }
}

/// Resident set size from /proc, in bytes (0 where unavailable).
pub fn rss_bytes() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page)
}

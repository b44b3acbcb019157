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

/// The usable size jemalloc gives for `layout`, computed from its size classes (`nallocx`): the same
/// value `malloc_usable_size` would return for the block, without looking the pointer up.
#[inline]
fn usable(layout: Layout) -> usize {
    let size = layout.size().max(1);
    // jemallocator passes an alignment flag only in this case; mirror it so the class matches.
    let flags = if layout.align() <= 16 && layout.align() <= size {
        0
    } else {
        tikv_jemalloc_sys::MALLOCX_ALIGN(layout.align())
    };
    // SAFETY: nallocx is a pure size-class computation.
    unsafe { tikv_jemalloc_sys::nallocx(size, flags) }
}

static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { JE.alloc(layout) };
        if !p.is_null() {
            add(usable(layout) as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { JE.alloc_zeroed(layout) };
        if !p.is_null() {
            add(usable(layout) as i64);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        add(-(usable(layout) as i64));
        unsafe { JE.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { JE.realloc(p, layout, new_size) };
        if !q.is_null() {
            // SAFETY (of the layout): realloc keeps the alignment and the size is the new one.
            let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            add(usable(new) as i64 - usable(layout) as i64);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The computed usable size is the one jemalloc reports for real blocks, for the sizes and alignments
    /// the server uses (entries of any length, tables, aligned buffers).
    #[test]
    fn usable_size_matches_jemalloc() {
        for size in [
            1usize,
            7,
            8,
            16,
            100,
            123,
            128,
            129,
            1000,
            4096,
            5000,
            70_000,
            3 << 20,
        ] {
            for align in [1usize, 8, 16, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: matched alloc/dealloc with the same layout.
                unsafe {
                    let p = JE.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(
                        usable(layout),
                        tikv_jemallocator::usable_size(p),
                        "size {size} align {align}"
                    );
                    JE.dealloc(p, layout);
                }
            }
        }
    }
}

//! A counting global allocator for `solvent bench`'s memory figures.
//!
//! It forwards to the system allocator and keeps, per thread (a `Cell`, no atomics on the hot
//! path), the bytes requested and the number of live blocks. The engine is single-threaded, so
//! the building thread's counters are the book's. [`footprint_bytes`] adds an estimate of glibc
//! malloc's own overhead (8 bytes of header per block, 16-byte granularity, 32-byte minimum
//! chunk) to the requested bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct CountingAllocator;

thread_local! {
    static REQUESTED: Cell<i64> = const { Cell::new(0) };
    static FOOTPRINT: Cell<i64> = const { Cell::new(0) };
    static BLOCKS: Cell<i64> = const { Cell::new(0) };
}

/// glibc's chunk size for a request of `size` bytes (64-bit): header included.
fn chunk_bytes(size: usize) -> i64 {
    (((size + 8 + 15) & !15).max(32)) as i64
}

fn count(requested: i64, footprint: i64, blocks: i64) {
    // `try_with`: counting must never panic, even while a thread is being torn down.
    let _ = REQUESTED.try_with(|c| c.set(c.get() + requested));
    let _ = FOOTPRINT.try_with(|c| c.set(c.get() + footprint));
    let _ = BLOCKS.try_with(|c| c.set(c.get() + blocks));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates thread-local counters, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64, chunk_bytes(layout.size()), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64, chunk_bytes(layout.size()), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64), -chunk_bytes(layout.size()), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            let requested = new_size as i64 - layout.size() as i64;
            count(requested, chunk_bytes(new_size) - chunk_bytes(layout.size()), 0);
        }
        new
    }
}

/// Live bytes requested by this thread (allocated minus freed).
pub fn requested_bytes() -> i64 {
    REQUESTED.try_with(Cell::get).unwrap_or(0)
}

/// Live bytes including the estimated malloc chunk overhead.
pub fn footprint_bytes() -> i64 {
    FOOTPRINT.try_with(Cell::get).unwrap_or(0)
}

/// Live blocks allocated by this thread.
pub fn blocks() -> i64 {
    BLOCKS.try_with(Cell::get).unwrap_or(0)
}

/// Resident set size of the process, bytes (Linux `/proc/self/statm`; 0 where unavailable).
pub fn rss_bytes() -> i64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: i64 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The three counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub requested: i64,
    pub footprint: i64,
    pub blocks: i64,
    pub rss: i64,
}

impl Snapshot {
    pub fn now() -> Snapshot {
        Snapshot { requested: requested_bytes(), footprint: footprint_bytes(), blocks: blocks(), rss: rss_bytes() }
    }
}

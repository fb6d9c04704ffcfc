//! The `solvent` binary's global allocator: mimalloc with transparent huge pages, counting.
//!
//! **mimalloc with huge pages.** The engine reads its tables (accounts, name table, risk index
//! records, position blocks) at random: at a million accounts nearly every such read also
//! misses the TLB with 4 KiB pages. [`enable_huge_pages`] sets mimalloc's `large_os_pages`
//! option, under which it asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`)
//! on the memory it maps, small blocks included (glibc malloc has no such switch in-process). On
//! `solvent bench` at 1M accounts this cut the replay's applying thread from ~0.75 to ~0.67 µs
//! of CPU per event (docs/performance.md). Where the kernel has THP disabled, it is a no-op.
//!
//! **Counting**, for `solvent bench`'s memory figures, once [`start_counting`] is called (the
//! bench does, first thing; every other command pays one relaxed load per allocation): per
//! thread (a `Cell`), the bytes requested, the bytes of the blocks handed out (mimalloc's size
//! class for each request, `mi_good_size`) and the number of live blocks. The engine is
//! single-threaded, so the building thread's counters are the book's.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct CountingAllocator;

thread_local! {
    static REQUESTED: Cell<i64> = const { Cell::new(0) };
    static FOOTPRINT: Cell<i64> = const { Cell::new(0) };
    static BLOCKS: Cell<i64> = const { Cell::new(0) };
}

/// `mi_option_purge_delay` of mimalloc.h (15 in both its v2 and v3 headers): how long freed memory waits before it is returned to
/// the kernel (-1: never). The binding does not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Ask mimalloc for huge-page-backed memory from now on (call first thing in `main`), and to keep
/// freed memory for reuse instead of returning it to the kernel: memory taken again after a
/// return faults in anew, and with huge pages each such fault zeroes 2 MiB at once (tens of
/// microseconds inside whichever event touches it).
pub fn enable_huge_pages() {
    // SAFETY: `mi_option_set` only stores an option value; it takes plain integers.
    unsafe {
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Whether allocations are counted (off until [`start_counting`]).
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Count allocations from now on. Blocks allocated before and freed after are counted as freed
/// only, so call it before the measured work allocates.
pub fn start_counting() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// The bytes of the block mimalloc hands out for a request of `size` bytes (its size class).
fn block_bytes(size: usize) -> i64 {
    if size == 0 {
        return 0;
    }
    // SAFETY: `mi_good_size` is a pure computation on an integer.
    unsafe { libmimalloc_sys::mi_good_size(size) as i64 }
}

/// A block of `old_size` bytes (0: none) became one of `new_size` bytes (0: freed); `blocks` is
/// the change in the number of live blocks.
fn count(new_size: usize, old_size: usize, blocks: i64) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let requested = new_size as i64 - old_size as i64;
    let footprint = block_bytes(new_size) - block_bytes(old_size);
    // `try_with`: counting must never panic, even while a thread is being torn down.
    let _ = REQUESTED.try_with(|c| c.set(c.get() + requested));
    let _ = FOOTPRINT.try_with(|c| c.set(c.get() + footprint));
    let _ = BLOCKS.try_with(|c| c.set(c.get() + blocks));
}

// SAFETY: every method forwards to `MiMalloc` with the caller's arguments unchanged and only
// updates thread-local counters, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { MiMalloc.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 0, 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size(), 0, 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        count(0, layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size, layout.size(), 0);
        }
        new
    }
}

/// Live bytes requested by this thread (allocated minus freed).
pub fn requested_bytes() -> i64 {
    REQUESTED.try_with(Cell::get).unwrap_or(0)
}

/// Live bytes of the blocks handed out (the allocator's size-class rounding included).
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

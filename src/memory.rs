//! The process's allocator: the system's, except that a block of [`HUGE_MIN`] bytes or more
//! is mapped on its own, aligned to 2 MiB and advised for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`), where the kernel allows them only on request (the default
//! `madvise` mode of `/sys/kernel/mm/transparent_hugepage/enabled`).
//!
//! Why: the large blocks are samples of 10^5 values and more (`eval` on files, the windows of
//! large rules) and the sorts' scratch buffers. With 4 KiB pages, writing an 8 MB block takes
//! 2,048 page faults, and a radix sort scattering into it misses the TLB on most stores; with
//! 2 MiB pages, four faults and four TLB entries. Measured on `driftgauge eval --detector=cvm`
//! over two 10^6-value files: page faults 8,138 → 2,008, CPU time 85 → 68 ms a run
//! (BENCHMARKS.md, "Huge pages"). Where the kernel gives no huge pages (`never`, or none
//! free), the advice is ignored and the block is an ordinary mapping.
//!
//! `main` installs it with `#[global_allocator]`; the library does not, so tests and benches
//! that link the library keep the system allocator unless they install it too.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size up are mapped on their own.
pub const HUGE_MIN: usize = 4 << 20;
/// The huge page size the mappings align to (x86-64 and arm64 with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// The system allocator, with large blocks on huge pages (see the module's documentation).
pub struct HugePages;

/// Whether a block of `layout` is one of ours.
fn mapped(layout: &Layout) -> bool {
    layout.size() >= HUGE_MIN && layout.align() <= HUGE_PAGE
}

/// `size` rounded up to whole huge pages.
fn mapped_len(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

/// A fresh zeroed mapping of at least `size` bytes, 2 MiB-aligned, advised for huge pages;
/// null when the kernel refuses.
fn map(size: usize) -> *mut u8 {
    let len = mapped_len(size);
    let Some(reserve) = len.checked_add(HUGE_PAGE) else {
        return std::ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (aligned - start, reserve - (aligned - start) - len);
    // SAFETY: the head and tail cut off lie inside the mapping just made, and nothing points
    // into them; the advice covers the part kept. Failures leave a larger or unadvised
    // mapping, which is still correct.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    aligned as *mut u8
}

/// Unmaps a block [`map`] returned for `size` bytes.
///
/// # Safety
/// `ptr` came from `map(size)` and is not used again.
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: the caller's contract; the length is the one `map` kept.
    unsafe {
        libc::munmap(ptr.cast(), mapped_len(size));
    }
}

// SAFETY: every block is either the system allocator's (small or over-aligned layouts, passed
// through unchanged) or a mapping of its own of at least the layout's size, aligned to 2 MiB
// (so to any alignment up to it), freed only by `dealloc` or `realloc` with the same layout
// as `GlobalAlloc` guarantees. Mapped memory is zeroed, as `alloc_zeroed` needs.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(&layout) {
            // SAFETY: a block of this layout came from `map`.
            unsafe { unmap(ptr, layout.size()) }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        match (mapped(&layout), mapped(&new_layout)) {
            // SAFETY: the caller's contract, passed on.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // Still within the pages mapped: nothing to do.
            (true, true) if mapped_len(new_size) == mapped_len(layout.size()) => ptr,
            _ => {
                // SAFETY: `new_layout` has a nonzero size (it is at least the old one's or
                // at least `HUGE_MIN`, or the old block was small and the system's realloc
                // contract allows it); the copy is the smaller of the two sizes, inside both
                // blocks; the old block is freed with its own layout.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_zeroed_and_grow_and_shrink_with_their_contents() {
        let a = HugePages;
        for size in [HUGE_MIN, HUGE_MIN + 1, 3 * HUGE_MIN + 12_345] {
            let layout = Layout::from_size_align(size, 64).expect("layout");
            // SAFETY: a nonzero layout; every block is freed once with its own layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % HUGE_PAGE, 0, "{size}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                for i in (0..size).step_by(4093) {
                    *p.add(i) = (i % 251) as u8;
                }
                // Grown past the pages mapped, shrunk within them, and back to a small block.
                let q = a.realloc(p, layout, size + HUGE_PAGE + 1);
                assert!(!q.is_null());
                let grown = Layout::from_size_align(size + HUGE_PAGE + 1, 64).expect("layout");
                let r = a.realloc(q, grown, size);
                let s = a.realloc(r, layout, 100_000);
                let small = Layout::from_size_align(100_000, 64).expect("layout");
                for i in (0..100_000).step_by(4093) {
                    assert_eq!(*s.add(i), (i % 251) as u8, "{size} at {i}");
                }
                // And a small block grown into a mapped one keeps its contents too.
                let t = a.realloc(s, small, size);
                assert_eq!(t as usize % HUGE_PAGE, 0);
                for i in (0..100_000).step_by(4093) {
                    assert_eq!(*t.add(i), (i % 251) as u8, "{size} at {i}");
                }
                a.dealloc(t, layout);
            }
        }
        // Small and over-aligned layouts are the system's.
        let small = Layout::from_size_align(1000, 8).expect("layout");
        let over = Layout::from_size_align(HUGE_MIN, 4 * HUGE_PAGE).expect("layout");
        // SAFETY: as above.
        unsafe {
            for layout in [small, over] {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % layout.align(), 0);
                a.dealloc(p, layout);
            }
        }
    }
}

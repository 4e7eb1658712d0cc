//! A global allocator wrapper that zeroes every heap block before it is
//! freed, so a secret that passed through any heap buffer — ours, or a
//! library's (serde_json's parse, hyper's and ureq's buffers, the proxy's
//! header values) — does not linger in freed memory. Both executables use it
//! (`#[global_allocator]`). Growing or shrinking a block moves it and zeroes
//! the old one; nothing is resized in place, where the allocator would free
//! the tail unseen.
//!
//! What it cannot reach: copies on the stack and in registers, and memory
//! still in use. Those last only while the process runs, and the process is
//! not dumpable (see `platform::forbid_core_dumps`).

use std::alloc::{GlobalAlloc, Layout};

/// `A`, zeroing each block it frees.
pub struct ZeroOnFree<A>(pub A);

// SAFETY: every call is passed to `A` with the same layout contract; the only
// addition is writing zeros over a block that the caller owns and is freeing.
unsafe impl<A: GlobalAlloc> GlobalAlloc for ZeroOnFree<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller owns `layout.size()` bytes at `ptr` until this
        // call returns; `black_box` keeps the zeroing from being optimised
        // away as a store to memory about to be freed.
        unsafe {
            std::ptr::write_bytes(ptr, 0, layout.size());
            std::hint::black_box(ptr);
            self.0.dealloc(ptr, layout);
        }
    }

    // `realloc` is GlobalAlloc's default: allocate, copy, then `dealloc` (and
    // so zero) the old block.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::Mutex;

    /// The system allocator, noting the bytes of each block as it is freed.
    struct Recording(Mutex<Vec<Vec<u8>>>);

    // SAFETY: forwards to `System`; only reads a block the caller is freeing.
    unsafe impl GlobalAlloc for Recording {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as received.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the block is readable until it is freed below.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) }.to_vec();
            self.0.lock().unwrap().push(bytes);
            // SAFETY: forwarded as received.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    const SECRET: &[u8] = b"sk-proj-secret-in-a-library-buffer";

    #[test]
    fn freed_blocks_hold_only_zeros() {
        let allocator = ZeroOnFree(Recording(Mutex::new(Vec::new())));
        let layout = Layout::from_size_align(SECRET.len(), 1).unwrap();
        // SAFETY: a fresh block of `layout`, written within its size, freed once.
        unsafe {
            let block = allocator.alloc(layout);
            std::ptr::copy_nonoverlapping(SECRET.as_ptr(), block, SECRET.len());
            allocator.dealloc(block, layout);
        }
        let freed = allocator.0.0.lock().unwrap();
        assert_eq!(freed.len(), 1);
        assert!(freed[0].iter().all(|b| *b == 0), "{:?}", String::from_utf8_lossy(&freed[0]));
    }

    #[test]
    fn a_block_moved_by_realloc_leaves_zeros_behind() {
        let allocator = ZeroOnFree(Recording(Mutex::new(Vec::new())));
        let layout = Layout::from_size_align(SECRET.len(), 1).unwrap();
        // SAFETY: as above; `realloc` gets the block's own layout.
        let moved = unsafe {
            let block = allocator.alloc(layout);
            std::ptr::copy_nonoverlapping(SECRET.as_ptr(), block, SECRET.len());
            let grown = allocator.realloc(block, layout, 4096);
            let moved = std::slice::from_raw_parts(grown, SECRET.len()).to_vec();
            allocator.dealloc(grown, Layout::from_size_align(4096, 1).unwrap());
            moved
        };
        assert_eq!(moved, SECRET, "the data moved with the block");
        let freed = allocator.0.0.lock().unwrap();
        assert_eq!(freed.len(), 2, "the old block and the grown one");
        assert!(freed.iter().all(|block| block.iter().all(|b| *b == 0)));
    }
}

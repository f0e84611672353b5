//! The early kernel heap: `linked_list_allocator` over a region carved from
//! usable RAM at boot.
//!
//! It serves `alloc` (Box, Vec) for the kernel and for `mm`'s boot-time
//! tables until SLUB takes over as the global allocator (a later issue).

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Bytes carved for the early heap.
pub const EARLY_HEAP_BYTES: usize = 8 << 20;

/// Hands `[start, start + size)` to the heap.
///
/// # Safety
///
/// The range is mapped, writable, unused by anything else for the rest of
/// the kernel's life, and this is called once.
pub unsafe fn init(start: *mut u8, size: usize) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { HEAP.lock().init(start, size) };
}

/// Bytes in use and bytes free in the early heap.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.free())
}

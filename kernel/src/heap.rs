//! The early kernel heap: `linked_list_allocator` over a region carved from
//! usable RAM at boot.
//!
//! It serves `alloc` (Box, Vec) for the kernel and for `mm`'s boot-time
//! tables until SLUB takes over as the global allocator (a later issue).
//!
//! # Context
//!
//! Every allocation and free runs with interrupts off around the heap's
//! spinlock (`local_irq_save`): a task preempted while holding it would
//! otherwise leave the next task on that CPU spinning forever, and an
//! interrupt handler that allocates would deadlock against the code it
//! interrupted. So `alloc` works in any context but NMI and exceptions.

use core::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::LockedHeap;

use crate::sync;

/// [`LockedHeap`] with interrupts off while its lock is held.
struct IrqSafeHeap(LockedHeap);

// SAFETY: every method forwards to LockedHeap, a correct GlobalAlloc; only
// the interrupt state around the calls changes, and it is restored.
unsafe impl GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let irqs = sync::irq_save();
        // SAFETY: forwarded from the caller's contract.
        let p = unsafe { self.0.alloc(layout) };
        sync::irq_restore(irqs);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let irqs = sync::irq_save();
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.0.dealloc(ptr, layout) };
        sync::irq_restore(irqs);
    }
}

#[global_allocator]
static HEAP: IrqSafeHeap = IrqSafeHeap(LockedHeap::empty());

/// Bytes carved for the early heap.
pub const EARLY_HEAP_BYTES: usize = 8 << 20;

/// Hands `[start, start + size)` to the heap.
///
/// # Safety
///
/// The range is mapped, writable, unused by anything else for the rest of
/// the kernel's life, and this is called once.
pub unsafe fn init(start: *mut u8, size: usize) {
    let irqs = sync::irq_save();
    // SAFETY: forwarded from the caller's contract.
    unsafe { HEAP.0.lock().init(start, size) };
    sync::irq_restore(irqs);
}

/// Bytes in use and bytes free in the early heap.
pub fn usage() -> (usize, usize) {
    let irqs = sync::irq_save();
    let heap = HEAP.0.lock();
    let usage = (heap.used(), heap.free());
    drop(heap);
    sync::irq_restore(irqs);
    usage
}

//! The kernel's global allocator: the early heap until SLUB is up, then
//! kmalloc.
//!
//! The early heap is `linked_list_allocator` over a region carved from
//! usable RAM at boot; it serves `alloc` (Box, Vec) for the kernel and for
//! `mm`'s boot-time tables, including the kmalloc caches themselves. Once
//! [`switch_to_kmalloc`] has run, new allocations come from kmalloc;
//! blocks from the early heap are still freed to it (the free path tells
//! them apart by address).
//!
//! Alignment: kmalloc objects of power-of-two classes are aligned to their
//! size and large blocks to a page, so a request is rounded up to a
//! power of two at least its alignment; alignments above a page fail.
//!
//! # Context
//!
//! Every allocation and free runs with interrupts off around the heap's
//! spinlock (`local_irq_save`): a task preempted while holding it would
//! otherwise leave the next task on that CPU spinning forever, and an
//! interrupt handler that allocates would deadlock against the code it
//! interrupted. So `alloc` works in any context but NMI and exceptions.

use core::alloc::{GlobalAlloc, Layout};

use core::ptr::NonNull;

use linked_list_allocator::LockedHeap;
use mm::Gfp;
use mm::slab::Kmalloc;
use spin::Once;

use crate::platform::KernelPlatform;
use crate::sync;

/// [`LockedHeap`] with interrupts off while its lock is held, then kmalloc.
struct IrqSafeHeap(LockedHeap);

/// The kmalloc caches once SLUB is up (set once by `switch_to_kmalloc`).
static KMALLOC: Once<&'static Kmalloc<'static, KernelPlatform>> = Once::new();

/// The early heap's address range, for the free path.
static EARLY_RANGE: Once<core::ops::Range<usize>> = Once::new();

/// The kmalloc size serving `layout` with its alignment (see module docs).
fn kmalloc_size(layout: Layout) -> Option<usize> {
    if layout.align() > 4096 {
        return None;
    }
    Some(if layout.align() <= 8 {
        layout.size()
    } else {
        layout.size().max(layout.align()).next_power_of_two()
    })
}

// SAFETY: before the switch every method forwards to LockedHeap, a correct
// GlobalAlloc; after it, kmalloc returns distinct live blocks of at least
// the rounded size, aligned as the module docs explain, and each block is
// freed to the allocator it came from (told apart by address).
unsafe impl GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(k) = KMALLOC.get() {
            return kmalloc_size(layout)
                .and_then(|size| k.kmalloc(size, Gfp::KERNEL))
                .map_or(core::ptr::null_mut(), |p| p.as_ptr());
        }
        let irqs = sync::irq_save();
        // SAFETY: forwarded from the caller's contract.
        let p = unsafe { self.0.alloc(layout) };
        sync::irq_restore(irqs);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let early = EARLY_RANGE
            .get()
            .is_some_and(|r| r.contains(&(ptr as usize)));
        if let (Some(k), false) = (KMALLOC.get(), early) {
            // SAFETY: not from the early heap, so kmalloc returned it, and
            // the caller gives it up.
            unsafe { k.kfree(NonNull::new(ptr).expect("dealloc of null")) };
            return;
        }
        let irqs = sync::irq_save();
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.0.dealloc(ptr, layout) };
        sync::irq_restore(irqs);
    }
}

/// Makes kmalloc the global allocator from now on.
pub fn switch_to_kmalloc(kmalloc: &'static Kmalloc<'static, KernelPlatform>) {
    KMALLOC.call_once(|| kmalloc);
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
    EARLY_RANGE.call_once(|| start as usize..start as usize + size);
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

//! The node (`struct kmem_cache_node`): the partial list under
//! `list_lock` (lock 4 of the order in `slab/mod.rs`), slabs made and
//! given back to the page allocator (`allocate_slab()`,
//! `discard_slab()`), the free of an object to its slab (`__slab_free()`)
//! and shrinking (`kmem_cache_shrink()`).

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::freelist::Slab;
use super::{KmemCache, SlabStat};
use crate::addr::{Order, Pfn};
use crate::gfp::Gfp;
use crate::memmap::PageList;
use crate::platform::{IrqGuard, Platform};

/// The node's state (Linux's `kmem_cache_node`), under `list_lock`.
pub(super) struct KmemCacheNode {
    pub(super) partial: PageList,
}

impl<'a, P: Platform> KmemCache<'a, P> {
    /// Allocates and formats a slab, all objects free and chained in order
    /// (`allocate_slab` + `shuffle_freelist` without the shuffle).
    ///
    /// If the preferred order is not to be had, a slab of the smallest order
    /// that holds one object is tried (`ORDER_FALLBACK`).
    pub(super) fn new_slab(&self, gfp: Gfp) -> Option<Slab<'a>> {
        let gfp = (gfp & !(Gfp::ZERO | Gfp::MOVABLE)) | Gfp::NOWARN;
        let (pfn, order) = match self.pa.alloc_pages(gfp, self.layout.order) {
            Ok(pfn) => (pfn, self.layout.order),
            Err(_) if self.layout.min_order < self.layout.order => {
                let pfn = self.pa.alloc_pages(gfp, self.layout.min_order).ok()?;
                self.stat(SlabStat::OrderFallback);
                (pfn, self.layout.min_order)
            }
            Err(_) => return None,
        };
        let base = self.slab_base(pfn);
        let objects = (Slab::bytes(order) / self.layout.size) as u32;
        let n = u64::from(objects);
        let size = self.layout.size as u64;
        for i in 0..n {
            let obj = base + i * size;
            self.debug_mark_free(obj);
            self.set_freepointer(obj, if i + 1 < n { obj + size } else { 0 });
        }
        let slab = Slab::init(self.pa.memmap(), pfn, order, self.id(), objects, base);
        self.nr_slabs.fetch_add(1, Relaxed);
        self.nr_pages.fetch_add(order.nr_pages(), Relaxed);
        self.nr_objects.fetch_add(n, Relaxed);
        self.stat(SlabStat::NewSlab);
        Some(slab)
    }

    /// Returns an empty slab to the page allocator (`discard_slab`).
    pub(super) fn discard_slab(&self, slab: Slab<'_>) {
        let pfn = slab.pfn;
        let order = self.slab_order(pfn);
        self.nr_objects
            .fetch_sub(u64::from(slab.objects()), Relaxed);
        slab.clear(self.pa.memmap(), order);
        self.nr_slabs.fetch_sub(1, Relaxed);
        self.nr_pages.fetch_sub(order.nr_pages(), Relaxed);
        self.stat(SlabStat::FreeSlab);
        if let Err(bad) = self.pa.free_pages(pfn, order) {
            log::error!(
                "BUG {}: slab pfn {pfn} refused by the page allocator: {bad:?}",
                self.name
            );
        }
    }

    /// The order of slab `pfn`, as the page allocator recorded it.
    pub(super) fn slab_order(&self, pfn: Pfn) -> Order {
        self.pa.memmap().page(pfn).order()
    }

    pub(super) fn slab(&self, pfn: Pfn) -> Slab<'a> {
        Slab::from_head(self.pa.memmap(), pfn)
    }

    /// Allocation while this CPU's slab is locked by the code we
    /// interrupted: one object from the node, never touching CPU state.
    #[cold]
    pub(super) fn alloc_no_cpu(&self, gfp: Gfp) -> Option<u64> {
        self.stat(SlabStat::AllocNoCpu);
        // Interrupts stay off while the lock is dropped for a new slab.
        let irq = IrqGuard::new(self.pa.platform());
        let mut node = self.list_lock.lock_irqs_off(&irq);
        let pfn = match node.partial.first() {
            Some(pfn) => pfn,
            None => {
                drop(node);
                let slab = self.new_slab(gfp)?;
                node = self.list_lock.lock_irqs_off(&irq);
                node.partial.push_front(self.pa.memmap(), slab.pfn);
                self.nr_partial.fetch_add(1, Relaxed);
                slab.pfn
            }
        };
        let slab = self.slab(pfn);
        let (obj, next) = self.pop_freelist(pfn, slab.freelist());
        slab.set_freelist(next);
        slab.set_counters(slab.inuse() + 1, false);
        if next == 0 {
            node.partial.remove(self.pa.memmap(), pfn);
            self.nr_partial.fetch_sub(1, Relaxed);
        }
        Some(obj)
    }

    /// Frees to the object's slab under the node lock (`__slab_free`).
    pub(super) fn slab_free_slow(
        &self,
        pfn: Pfn,
        addr: u64,
        caller: &'static Location<'static>,
    ) -> bool {
        self.stat(SlabStat::FreeSlowpath);
        let discard = {
            let mut node = self.list_lock.lock_irqsave(self.pa.platform());
            let slab = self.slab(pfn);
            let head = slab.freelist();
            if head == addr {
                drop(node);
                self.report_double_free(addr, caller);
                return false;
            }
            let was_full = head == 0;
            self.debug_mark_free(addr);
            self.set_freepointer(addr, head);
            slab.set_freelist(addr);
            let inuse = slab.inuse() - 1;
            let frozen = slab.frozen();
            slab.set_counters(inuse, frozen);
            if frozen {
                false // Its CPU will pick the object up (S1, S2).
            } else if inuse == 0 && node.partial.len() >= self.min_partial {
                if !was_full {
                    node.partial.remove(self.pa.memmap(), pfn);
                    self.nr_partial.fetch_sub(1, Relaxed);
                }
                true
            } else {
                if was_full {
                    node.partial.push_back(self.pa.memmap(), pfn);
                    self.nr_partial.fetch_add(1, Relaxed);
                    self.stat(SlabStat::FreeAddPartial);
                }
                false
            }
        };
        if discard {
            self.discard_slab(self.slab(pfn));
        }
        true
    }

    /// Flushes every CPU's sheaves and slab, empties the barn, and returns
    /// every empty slab on the partial list to the page allocator
    /// (`kmem_cache_shrink`). Other CPUs' state is flushed from here under
    /// their per-CPU locks ([`LocalTryLock::lock_on`](crate::sync::LocalTryLock::lock_on)); CPUs that go on
    /// using the cache meanwhile may cache objects again.
    pub fn shrink(&self) {
        self.flush_all();
        let mut empty = PageList::new();
        {
            let mut node = self.list_lock.lock_irqsave(self.pa.platform());
            let map = self.pa.memmap();
            // No allocation here: this may be a kmalloc cache, whose own
            // list_lock we hold. The iterator has read the next link before
            // it yields a slab, so unlinking that slab is safe.
            for pfn in node.partial.iter(map) {
                if self.slab(pfn).inuse() == 0 {
                    node.partial.remove(map, pfn);
                    self.nr_partial.fetch_sub(1, Relaxed);
                    empty.push_back(map, pfn);
                }
            }
        }
        while let Some(pfn) = empty.pop_front(self.pa.memmap()) {
            self.discard_slab(self.slab(pfn));
        }
    }
}

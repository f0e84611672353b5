//! SLUB event counters (`CONFIG_SLUB_STATS`' `enum stat_item`, in part).
#![forbid(unsafe_code)]

use crate::stats::{Counters, define_stats};

define_stats! {
    /// Named events of one cache.
    pub enum SlabStat {
        /// Object taken from this CPU's freelist.
        AllocFastpath => "alloc_fastpath",
        /// Allocation that had to refill the CPU's freelist (slow path).
        AllocSlowpath => "alloc_slowpath",
        /// The CPU slab's own freelist (remote frees) refilled the CPU.
        AllocRefill => "alloc_refill",
        /// A slab taken from the node partial list.
        AllocFromPartial => "alloc_from_partial",
        /// Allocation without the CPU slab (its lock was busy: interrupt).
        AllocNoCpu => "alloc_nocpu",
        /// Object pushed on this CPU's freelist.
        FreeFastpath => "free_fastpath",
        /// Object freed to its slab under the node lock.
        FreeSlowpath => "free_slowpath",
        /// A full slab got a free object and went onto the partial list.
        FreeAddPartial => "free_add_partial",
        /// New slab allocated from the page allocator.
        NewSlab => "new_slab",
        /// Empty slab returned to the page allocator.
        FreeSlab => "free_slab",
        /// CPU slab handed back to the node (`deactivate_slab`).
        DeactivateSlab => "deactivate_slab",
        /// Objects allocated (all paths).
        Allocs => "allocs",
        /// Objects freed (all paths).
        Frees => "frees",
        /// Free of a pointer that is not an object of this cache (refused).
        BadFree => "bad_free",
        /// Double free caught (refused).
        DoubleFree => "double_free",
        /// A free pointer decoded to something outside its slab (corruption).
        FreelistCorrupt => "freelist_corrupt",
        /// A red zone was overwritten (debug caches).
        RedzoneCorrupt => "redzone_corrupt",
        /// Poison of a free object was overwritten: use after free (debug caches).
        PoisonCorrupt => "poison_corrupt",
    }
}

/// One atomic per [`SlabStat`].
pub struct SlabStats(Counters<{ SlabStat::COUNT }>);

impl SlabStats {
    pub(super) const fn new() -> Self {
        Self(Counters::new())
    }

    #[inline]
    pub(super) fn inc(&self, s: SlabStat) {
        self.0.add(s as usize, 1);
    }

    /// The current value of a counter (racy snapshot).
    pub fn get(&self, s: SlabStat) -> u64 {
        self.0.get(s as usize)
    }
}

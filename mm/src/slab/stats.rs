//! SLUB event counters (`CONFIG_SLUB_STATS`' `enum stat_item`, in part).
#![forbid(unsafe_code)]

use crate::addr::CpuId;
use crate::stats::{PerCpuCounters, define_stats};

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
        /// New slab of the minimum order, the preferred one being unavailable.
        OrderFallback => "order_fallback",
        /// Empty slab returned to the page allocator.
        FreeSlab => "free_slab",
        /// CPU slab handed back to the node (`deactivate_slab`).
        DeactivateSlab => "deactivate_slab",
        /// Objects allocated (all paths). Stored: allocations not served by
        /// the main sheaf; read ([`SlabStats::get`]): those plus `AllocPcs`,
        /// so that the sheaf fast path writes one counter, not two.
        Allocs => "allocs",
        /// Objects freed (all paths); stored and read as `Allocs`, with
        /// `FreePcs`.
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
        /// Object taken from this CPU's main sheaf (`ALLOC_PCS`). Write:
        /// holds that CPU's sheaves lock ([`SlabStats::inc_locked`]).
        AllocPcs => "alloc_cpu_sheaf",
        /// Object put into this CPU's main sheaf (`FREE_PCS`). Write: as
        /// `AllocPcs`.
        FreePcs => "free_cpu_sheaf",
        /// Objects put into sheaves by refills from slabs (`SHEAF_REFILL`).
        SheafRefill => "sheaf_refill",
        /// Objects flushed from sheaves back to slabs (`SHEAF_FLUSH`).
        SheafFlush => "sheaf_flush",
        /// Sheaves allocated / freed (`SHEAF_ALLOC` / `SHEAF_FREE`).
        SheafAlloc => "sheaf_alloc",
        SheafFree => "sheaf_free",
        /// A full sheaf taken from the barn (`BARN_GET`) / none there.
        BarnGet => "barn_get",
        BarnGetFail => "barn_get_fail",
        /// A full sheaf put into the barn (`BARN_PUT`) / refused at its limit.
        BarnPut => "barn_put",
        BarnPutFail => "barn_put_fail",
        /// Prefilled sheaves: from the CPU spare, via the barn or a new
        /// sheaf, and oversize ones (`SHEAF_PREFILL_*`).
        SheafPrefillFast => "sheaf_prefill_fast",
        SheafPrefillSlow => "sheaf_prefill_slow",
        SheafPrefillOversize => "sheaf_prefill_oversize",
        /// Prefilled sheaves returned as the CPU spare / elsewhere.
        SheafReturnFast => "sheaf_return_fast",
        SheafReturnSlow => "sheaf_return_slow",
        /// kfree_rcu objects batched in an rcu_free sheaf / fallen back to
        /// plain RCU batching (`FREE_RCU_SHEAF` / `FREE_RCU_SHEAF_FAIL`).
        FreeRcuSheaf => "free_rcu_sheaf",
        FreeRcuSheafFail => "free_rcu_sheaf_fail",
    }
}

/// The [`SlabStat`] counters of one cache, per CPU (`s->cpu_slab->stat[]`).
pub struct SlabStats(PerCpuCounters<{ SlabStat::COUNT }>);

impl SlabStats {
    pub(super) fn new(nr_cpus: usize) -> Self {
        Self(PerCpuCounters::new(nr_cpus))
    }

    /// Counts one event on `cpu`, the CPU the caller runs on.
    #[inline]
    pub(super) fn inc(&self, cpu: CpuId, s: SlabStat) {
        self.0.add(cpu, s as usize, 1);
    }

    /// Counts one event on `cpu` with a plain load and store
    /// ([`PerCpuCounters::add_locked`]): for `AllocPcs` and `FreePcs`, and
    /// only by a holder of `cpu`'s sheaves lock, which every writer of
    /// those two counters holds (no `inc`/`add` of them anywhere).
    #[inline]
    pub(super) fn inc_locked(&self, cpu: CpuId, s: SlabStat) {
        debug_assert!(matches!(s, SlabStat::AllocPcs | SlabStat::FreePcs));
        self.0.add_locked(cpu, s as usize, 1);
    }

    /// Counts `n` events on `cpu`.
    #[inline]
    pub(super) fn add(&self, cpu: CpuId, s: SlabStat, n: u64) {
        self.0.add(cpu, s as usize, n);
    }

    /// The current value of a counter, summed over the CPUs (racy snapshot).
    /// `Allocs` and `Frees` include the sheaf fast path's `AllocPcs` and
    /// `FreePcs`, which that path counts instead of them.
    pub fn get(&self, s: SlabStat) -> u64 {
        let raw = |s: SlabStat| self.0.get(s as usize);
        match s {
            SlabStat::Allocs => raw(s).wrapping_add(raw(SlabStat::AllocPcs)),
            SlabStat::Frees => raw(s).wrapping_add(raw(SlabStat::FreePcs)),
            _ => raw(s),
        }
    }
}

//! Page-allocator event counters: every path has a name.
#![forbid(unsafe_code)]

use crate::stats::{Counters, define_stats};

define_stats! {
    /// Named events of the page allocator (Linux's `vm_event_item` and more).
    pub enum PaStat {
        /// Allocation satisfied on the first pass at the low watermark.
        AllocFastpath => "alloc_fastpath",
        /// Allocation satisfied only in the slow path (min watermark or reserves).
        AllocSlowpath => "alloc_slowpath",
        /// Allocation failed.
        AllocFail => "alloc_fail",
        /// Block taken from a per-CPU list.
        AllocPcp => "alloc_pcp",
        /// Per-CPU list refilled from the zone (`rmqueue_bulk`).
        PcpRefill => "pcp_refill",
        /// Per-CPU lock was busy (interrupt on the same CPU): went to the zone.
        PcpTrylockFail => "pcp_trylock_fail",
        /// Block taken from the zone free lists directly (`rmqueue_buddy`).
        AllocZone => "alloc_zone",
        /// Whole pageblock claimed for another migratetype.
        FallbackClaim => "fallback_claim",
        /// Block stolen from another migratetype without claiming its pageblock.
        FallbackSteal => "fallback_steal",
        /// Pageblock turned into a highatomic reserve.
        HighatomicReserve => "highatomic_reserve",
        /// Highatomic reserve given back to ordinary use.
        HighatomicUnreserve => "highatomic_unreserve",
        /// Block freed to a per-CPU list.
        FreePcp => "free_pcp",
        /// Per-CPU list over its high mark gave a batch back (`free_pcppages_bulk`).
        PcpDrain => "pcp_drain",
        /// Block freed to the zone free lists directly.
        FreeZone => "free_zone",
        /// Two buddies merged into a larger block.
        Merge => "merge",
        /// A bad free was caught and reported (`bad_page`).
        BadPage => "bad_page",
        /// Pages (not blocks) allocated from each zone and pages freed, as
        /// Linux's `/proc/vmstat` counts them (`PGALLOC`, `PGFREE`: 2^order
        /// per block).
        PgallocDma => "pgalloc_dma",
        PgallocDma32 => "pgalloc_dma32",
        PgallocNormal => "pgalloc_normal",
        PgFree => "pgfree",
    }
}

/// One atomic per [`PaStat`].
pub struct PaStats(Counters<{ PaStat::COUNT }>);

impl PaStats {
    pub(crate) const fn new() -> Self {
        Self(Counters::new())
    }

    #[inline]
    pub(crate) fn inc(&self, s: PaStat) {
        self.0.add(s as usize, 1);
    }

    #[inline]
    pub(crate) fn add(&self, s: PaStat, n: u64) {
        self.0.add(s as usize, n);
    }

    /// The current value of a counter (racy snapshot).
    pub fn get(&self, s: PaStat) -> u64 {
        self.0.get(s as usize)
    }
}

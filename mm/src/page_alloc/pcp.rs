//! Per-CPU page lists (Linux's `per_cpu_pages`, "pcp").
//!
//! Most order-0..3 allocations and frees touch only the local CPU's lists:
//! a refill takes `batch` blocks from the zone under one zone-lock hold,
//! and a list that grows past `high` pages gives a batch back.
//!
//! # Locking
//!
//! The pcp lock is taken with a *trylock* (`pcp_spin_trylock`): if it is
//! busy, for example because an interrupt arrived while this CPU held it,
//! allocation goes to the zone lists and freeing to the zone directly.
//! Nothing ever waits on it from the allocation paths, so an interrupt-time
//! allocation cannot deadlock. Lock order: pcp lock, then zone lock.
#![forbid(unsafe_code)]

use super::stats::{PaStat, PaStats};
use super::zone::{AllocFlags, Zone};
use super::{MigrateType, NR_PCP_LISTS, PAGE_ALLOC_COSTLY_ORDER};
use crate::addr::{CpuId, Order, Pfn};
use crate::memmap::{MemMap, PageList, PageState};
use crate::platform::Platform;

/// One CPU's lists for one zone.
pub(crate) struct PerCpuPages {
    /// Lists indexed by [`order_to_pindex`].
    lists: [PageList; NR_PCP_LISTS],
    /// Pages (not blocks) on all lists.
    pub(crate) count: usize,
}

/// Whether blocks of `order` go through the per-CPU lists
/// (`pcp_allowed_order`).
pub(crate) const fn pcp_allowed_order(order: Order) -> bool {
    order.get() <= PAGE_ALLOC_COSTLY_ORDER.get()
}

/// The list for (migratetype, order) (`order_to_pindex`).
const fn order_to_pindex(mt: MigrateType, order: Order) -> usize {
    (MigrateType::PCP_TYPES.len() * order.index()) + mt as usize
}

impl PerCpuPages {
    pub(crate) const fn new() -> Self {
        Self {
            lists: [const { PageList::new() }; NR_PCP_LISTS],
            count: 0,
        }
    }
}

/// `batch` for a zone of `managed` pages (`zone_batchsize`): about a
/// thousandth of the zone, at most 1 MiB, a quarter of that, rounded to
/// 2^n - 1 to spread cache colours.
pub(crate) fn zone_batchsize(managed: u64) -> u32 {
    let batch = ((managed / 1024).min(256) / 4).max(1);
    let pow2 = 1u64 << (63 - (batch + batch / 2).leading_zeros());
    (pow2 - 1).max(1) as u32
}

/// `high` for a zone (`zone_highsize`): the low watermark shared over the
/// CPUs, never below four batches.
pub(crate) fn zone_highsize(low_wmark: u64, nr_cpus: usize, batch: u32) -> u32 {
    let high = low_wmark / nr_cpus.max(1) as u64;
    high.max(4 * u64::from(batch)) as u32
}

impl Zone {
    /// Blocks to move per refill for `order` (`nr_pcp_alloc`, without the
    /// pressure scaling): batch scaled down by order, at least 2 for order > 0.
    fn nr_pcp_alloc(&self, order: Order) -> usize {
        let batch = (self.pcp_batch as usize) >> order.get();
        if order > Order::ZERO {
            batch.max(2)
        } else {
            batch.max(1)
        }
    }

    /// Allocates from this CPU's list, refilling it from the zone when empty
    /// (`rmqueue_pcplist`). `None`: lock busy or zone empty.
    pub(crate) fn rmqueue_pcplist<P: Platform>(
        &self,
        platform: &P,
        map: &MemMap,
        stats: &PaStats,
        cpu: CpuId,
        order: Order,
        mt: MigrateType,
    ) -> Option<Pfn> {
        let Some(mut pcp) = self.pcp[cpu.index()].try_lock() else {
            stats.inc(PaStat::PcpTrylockFail);
            return None;
        };
        let pindex = order_to_pindex(mt, order);
        if pcp.lists[pindex].is_empty() {
            let want = self.nr_pcp_alloc(order);
            let mut area = self.free.lock_irqsave(platform);
            for _ in 0..want {
                let Some(pfn) = self.rmqueue(&mut area, map, stats, order, mt) else {
                    break;
                };
                let page = map.page(pfn);
                page.set_order(order);
                page.set_migratetype(mt as usize);
                page.set_state(PageState::Pcp);
                pcp.lists[pindex].push_back(map, pfn);
                pcp.count += order.nr_pages() as usize;
            }
            stats.inc(PaStat::PcpRefill);
        }
        let pfn = pcp.lists[pindex].pop_front(map)?;
        pcp.count -= order.nr_pages() as usize;
        map.page(pfn).set_state(PageState::None);
        stats.inc(PaStat::AllocPcp);
        Some(pfn)
    }

    /// Frees to this CPU's list; gives a batch back past `high`
    /// (`free_frozen_page_commit`). `false`: the lock was busy, the caller
    /// must free to the zone.
    pub(crate) fn free_pcp<P: Platform>(
        &self,
        platform: &P,
        map: &MemMap,
        stats: &PaStats,
        cpu: CpuId,
        pfn: Pfn,
        order: Order,
    ) -> bool {
        let Some(mut pcp) = self.pcp[cpu.index()].try_lock() else {
            stats.inc(PaStat::PcpTrylockFail);
            return false;
        };
        // Highatomic blocks wait on the movable list; they go back to their
        // own list when the batch returns to the zone.
        let mt = match self.pageblock_migratetype(pfn) {
            MigrateType::HighAtomic => MigrateType::Movable,
            mt => mt,
        };
        let page = map.page(pfn);
        page.set_order(order);
        page.set_migratetype(mt as usize);
        page.set_state(PageState::Pcp);
        pcp.lists[order_to_pindex(mt, order)].push_front(map, pfn);
        pcp.count += order.nr_pages() as usize;
        stats.inc(PaStat::FreePcp);
        if pcp.count >= self.pcp_high as usize {
            let batch = self.pcp_batch as usize;
            self.free_pcppages_bulk(platform, map, stats, &mut pcp, batch);
        }
        true
    }

    /// Returns at least `nr_pages` pages (or everything) from a per-CPU list
    /// set to the zone, coldest first, round-robin over the lists
    /// (`free_pcppages_bulk`).
    fn free_pcppages_bulk<P: Platform>(
        &self,
        platform: &P,
        map: &MemMap,
        stats: &PaStats,
        pcp: &mut PerCpuPages,
        nr_pages: usize,
    ) {
        let mut area = self.free.lock_irqsave(platform);
        let mut freed = 0;
        let mut pindex = 0;
        while freed < nr_pages && pcp.count > 0 {
            // Round-robin: the next non-empty list.
            while pcp.lists[pindex].is_empty() {
                pindex = (pindex + 1) % NR_PCP_LISTS;
            }
            let pfn = pcp.lists[pindex].pop_back(map).expect("list is non-empty");
            let page = map.page(pfn);
            let order = page.order();
            pcp.count -= order.nr_pages() as usize;
            freed += order.nr_pages() as usize;
            page.set_state(PageState::None);
            let mt = self.pageblock_migratetype(pfn);
            self.free_one_page(&mut area, map, stats, pfn, order, mt);
            pindex = (pindex + 1) % NR_PCP_LISTS;
        }
        stats.inc(PaStat::PcpDrain);
    }

    /// Empties one CPU's lists into the zone (`drain_pages_zone`).
    pub(crate) fn drain_pcp<P: Platform>(
        &self,
        platform: &P,
        map: &MemMap,
        stats: &PaStats,
        cpu: CpuId,
    ) {
        let mut pcp = self.pcp[cpu.index()].lock();
        if pcp.count > 0 {
            let all = pcp.count;
            self.free_pcppages_bulk(platform, map, stats, &mut pcp, all);
        }
    }

    /// Allocates straight from the zone lists (`rmqueue_buddy`).
    pub(crate) fn rmqueue_buddy<P: Platform>(
        &self,
        platform: &P,
        map: &MemMap,
        stats: &PaStats,
        order: Order,
        mt: MigrateType,
        flags: AllocFlags,
    ) -> Option<Pfn> {
        let mut area = self.free.lock_irqsave(platform);
        let mut pfn = None;
        if flags.contains(AllocFlags::HIGHATOMIC) {
            pfn = self.rmqueue_smallest(&mut area, map, order, MigrateType::HighAtomic);
        }
        if pfn.is_none() {
            pfn = self.rmqueue(&mut area, map, stats, order, mt);
        }
        if pfn.is_none() && flags.contains(AllocFlags::NON_BLOCK) {
            pfn = self.rmqueue_smallest(&mut area, map, order, MigrateType::HighAtomic);
        }
        stats.inc(PaStat::AllocZone);
        pfn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_and_high_follow_linux() {
        // The reference example: 16384 pages -> 16/4 = 4 -> pow2(6) - 1 = 3.
        assert_eq!(zone_batchsize(16384), 3);
        // Large zones cap at 1 MiB / 4 = 64 -> pow2(96) - 1 = 63.
        assert_eq!(zone_batchsize(1 << 20), 63);
        assert_eq!(zone_batchsize(100), 1);
        assert_eq!(zone_highsize(1000, 2, 3), 500);
        assert_eq!(zone_highsize(10, 4, 3), 12);
    }
}

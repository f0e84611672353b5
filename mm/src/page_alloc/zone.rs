//! A zone's free lists: split, merge, migratetype fallback, watermarks.
//!
//! Everything here runs under the zone lock; the functions take the locked
//! [`FreeArea`] to say so. Linux: `mm/page_alloc.c` (`__free_one_page`,
//! `expand`, `__rmqueue_smallest`, `__rmqueue_claim`, `__rmqueue_steal`,
//! `try_to_claim_block`, `reserve_highatomic_pageblock`,
//! `__zone_watermark_ok`).
//!
//! # Invariants
//!
//! - Z1: a block on `lists[o][mt]` has order `o`, is aligned to 2^o frames,
//!   lies inside the zone, and its head is `PageState::Buddy` with order `o`.
//! - Z2: a block on `lists[o][mt]` lies in pageblocks of type `mt` (Linux
//!   enforces this since 6.10: "pages on a free list match the list's type").
//! - Z3: no two free buddies of order `o` both sit on the lists unmerged,
//!   except across a pageblock-or-larger boundary where one side is not
//!   mergeable (highatomic).
//! - Z4: `nr_free_pages` equals the pages on all lists, and
//!   `nr_free_by_mt[mt]` the pages on the `mt` lists.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};

use super::pcp::PerCpuPages;
use super::stats::{PaStat, PaStats};
use super::{MIGRATE_TYPES, MigrateType, NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::addr::{Order, Pfn};
use crate::memmap::{MemMap, PageList, PageState};
use crate::platform::Platform;
use crate::sync::SpinLockIrq;

/// The zones, lowest first (Linux's `enum zone_type` on x86_64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ZoneType {
    /// Below 16 MiB, for ISA DMA.
    Dma = 0,
    /// Below 4 GiB, for 32-bit DMA.
    Dma32 = 1,
    /// Everything else.
    Normal = 2,
}

/// Number of zones.
pub const NR_ZONES: usize = 3;

impl ZoneType {
    /// All zones, lowest first.
    pub const ALL: [ZoneType; NR_ZONES] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal];

    /// Linux's name for the zone.
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
        }
    }
}

/// Watermark levels (`enum zone_watermarks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watermark {
    Min = 0,
    Low = 1,
    High = 2,
}

bitflags::bitflags! {
    /// Internal allocation flags (`ALLOC_*` in `mm/internal.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct AllocFlags: u32 {
        /// Ignore watermarks entirely.
        const NO_WATERMARKS = 1 << 0;
        /// __GFP_HIGH: may go down to half the min watermark.
        const MIN_RESERVE = 1 << 1;
        /// Cannot block: may go a further quarter below.
        const NON_BLOCK = 1 << 2;
        /// High-order, non-blocking: may use and create highatomic reserves.
        const HIGHATOMIC = 1 << 3;
    }
}

impl AllocFlags {
    /// Any flag that grants access to reserves (`ALLOC_RESERVES`).
    pub(crate) fn reserves(self) -> bool {
        self.intersects(AllocFlags::MIN_RESERVE | AllocFlags::NON_BLOCK | AllocFlags::HIGHATOMIC)
    }
}

/// Whether blocks of this type may merge with blocks of another type at
/// pageblock order and above (`migratetype_is_mergeable`).
fn is_mergeable(mt: MigrateType) -> bool {
    mt != MigrateType::HighAtomic
}

/// The first frame of the pageblock containing `pfn`.
fn pageblock_start(pfn: Pfn) -> Pfn {
    Pfn::new(pfn.as_u64() & !(PAGEBLOCK_NR_PAGES - 1))
}

/// The fallback order of each migratetype (`fallbacks[]`).
fn fallbacks(mt: MigrateType) -> &'static [MigrateType] {
    use MigrateType::*;
    match mt {
        Unmovable => &[Reclaimable, Movable],
        Movable => &[Reclaimable, Unmovable],
        Reclaimable => &[Unmovable, Movable],
        HighAtomic => &[],
    }
}

/// The zone's free lists; lives inside the zone lock.
pub(crate) struct FreeArea {
    /// `lists[order][migratetype]`, blocks by head pfn (Z1, Z2).
    pub(crate) lists: [[PageList; MIGRATE_TYPES]; NR_PAGE_ORDERS],
    /// Pages held as highatomic reserve (whole pageblocks).
    pub(crate) nr_reserved_highatomic: u64,
}

/// A physical memory zone.
pub struct Zone {
    /// Which zone this is.
    pub kind: ZoneType,
    /// First frame the zone spans.
    pub start_pfn: Pfn,
    /// One past the last frame the zone spans.
    pub end_pfn: Pfn,
    /// Frames given to the allocator at boot. Written at init only.
    pub managed_pages: u64,
    /// `[min, low, high]` in pages. Written at init only.
    pub watermark: [u64; 3],
    /// Pages this zone keeps back from allocations that could have used a
    /// higher zone, indexed by that zone (`lowmem_reserve[]`).
    pub lowmem_reserve: [u64; NR_ZONES],
    /// The free lists. Lock order: a per-CPU list lock, then this.
    pub(crate) free: SpinLockIrq<FreeArea>,
    /// Pages on the free lists (Z4). Write: zone lock. Racy read: Relaxed.
    nr_free_pages: AtomicI64,
    /// Free pages by migratetype (Z4). Write: zone lock. Racy read: Relaxed.
    nr_free_by_mt: [AtomicI64; MIGRATE_TYPES],
    /// Free blocks per order per migratetype: the lists' lengths, readable
    /// without the lock (Linux's racy `free_area[o].nr_free` reads in the
    /// watermark check). Write: zone lock. Racy read: Relaxed.
    nr_free_blocks: [[AtomicU64; MIGRATE_TYPES]; NR_PAGE_ORDERS],
    /// Migratetype of each pageblock, from the pageblock containing
    /// `start_pfn`. Write: zone lock. Racy read: Relaxed (the free path
    /// reads it unlocked, as Linux's `get_pfnblock_migratetype`).
    pageblock_mt: Box<[AtomicU8]>,
    /// Per-CPU page lists, one per CPU. Taken with a trylock.
    pub(crate) pcp: Box<[spin::Mutex<PerCpuPages>]>,
    /// Blocks moved per pcp refill or drain.
    pub pcp_batch: u32,
    /// Pages a per-CPU list may hold before it gives a batch back.
    pub pcp_high: u32,
    /// Pages allocated from this zone (`pgalloc_<zone>`).
    pub pgalloc: AtomicU64,
}

impl Zone {
    pub(crate) fn new(kind: ZoneType, start_pfn: Pfn, end_pfn: Pfn, nr_cpus: usize) -> Self {
        let first_block = start_pfn.as_u64() >> PAGEBLOCK_ORDER.get();
        let nr_blocks = end_pfn
            .as_u64()
            .div_ceil(PAGEBLOCK_NR_PAGES)
            .saturating_sub(first_block);
        Self {
            kind,
            start_pfn,
            end_pfn,
            managed_pages: 0,
            watermark: [0; 3],
            lowmem_reserve: [0; NR_ZONES],
            free: SpinLockIrq::new(FreeArea {
                lists: [const { [const { PageList::new() }; MIGRATE_TYPES] }; NR_PAGE_ORDERS],
                nr_reserved_highatomic: 0,
            }),
            nr_free_pages: AtomicI64::new(0),
            nr_free_by_mt: [const { AtomicI64::new(0) }; MIGRATE_TYPES],
            nr_free_blocks: [const { [const { AtomicU64::new(0) }; MIGRATE_TYPES] };
                NR_PAGE_ORDERS],
            pageblock_mt: (0..nr_blocks)
                .map(|_| AtomicU8::new(MigrateType::Movable as u8))
                .collect(),
            pcp: (0..nr_cpus)
                .map(|_| spin::Mutex::new(PerCpuPages::new()))
                .collect(),
            pcp_batch: 1,
            pcp_high: 4,
            pgalloc: AtomicU64::new(0),
        }
    }

    /// Whether the zone spans `pfn`.
    pub fn contains(&self, pfn: Pfn) -> bool {
        self.start_pfn <= pfn && pfn < self.end_pfn
    }

    /// Whether the zone has any memory to give.
    pub fn is_populated(&self) -> bool {
        self.managed_pages > 0
    }

    /// Free pages on the zone's lists (racy snapshot; excludes per-CPU lists).
    pub fn nr_free_pages(&self) -> u64 {
        self.nr_free_pages.load(Relaxed).max(0) as u64
    }

    /// Free pages of one migratetype on the zone's lists (racy snapshot).
    pub fn nr_free_by_mt(&self, mt: MigrateType) -> u64 {
        self.nr_free_by_mt[mt as usize].load(Relaxed).max(0) as u64
    }

    /// Pages sitting on the per-CPU lists of every CPU (racy snapshot).
    pub fn nr_pcp_pages(&self) -> u64 {
        self.pcp.iter().map(|p| p.lock().count as u64).sum()
    }

    /// The migratetype of the pageblock containing `pfn`.
    pub fn pageblock_migratetype(&self, pfn: Pfn) -> MigrateType {
        MigrateType::from_index(self.pageblock_mt[self.block_index(pfn)].load(Relaxed) as usize)
    }

    fn block_index(&self, pfn: Pfn) -> usize {
        ((pfn.as_u64() >> PAGEBLOCK_ORDER.get())
            - (self.start_pfn.as_u64() >> PAGEBLOCK_ORDER.get())) as usize
    }

    fn set_pageblock_migratetype(&self, _locked: &FreeArea, pfn: Pfn, mt: MigrateType) {
        self.pageblock_mt[self.block_index(pfn)].store(mt as u8, Relaxed);
    }

    /// Retags every pageblock of the block (`change_pageblock_range`).
    fn change_pageblock_range(&self, area: &FreeArea, pfn: Pfn, order: Order, mt: MigrateType) {
        let nr_blocks = 1u64 << order.get().saturating_sub(PAGEBLOCK_ORDER.get());
        for i in 0..nr_blocks {
            self.set_pageblock_migratetype(area, pfn.add(i * PAGEBLOCK_NR_PAGES), mt);
        }
    }

    fn account_freepages(&self, order: Order, mt: MigrateType, nr_blocks: i64) {
        let nr_pages = nr_blocks << order.get();
        self.nr_free_pages.fetch_add(nr_pages, Relaxed);
        self.nr_free_by_mt[mt as usize].fetch_add(nr_pages, Relaxed);
        self.nr_free_blocks[order.index()][mt as usize].fetch_add(nr_blocks as u64, Relaxed);
    }

    /// Puts a block on a free list (`__add_to_free_list`).
    fn add_to_free_list(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        pfn: Pfn,
        order: Order,
        mt: MigrateType,
        tail: bool,
    ) {
        let page = map.page(pfn);
        debug_assert!(pfn.is_aligned(order) && self.contains(pfn));
        page.set_order(order);
        page.set_state(PageState::Buddy);
        let list = &mut area.lists[order.index()][mt as usize];
        if tail {
            list.push_back(map, pfn);
        } else {
            list.push_front(map, pfn);
        }
        self.account_freepages(order, mt, 1);
    }

    /// Takes a block off a free list (`__del_page_from_free_list`).
    fn del_from_free_list(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        pfn: Pfn,
        order: Order,
        mt: MigrateType,
    ) {
        area.lists[order.index()][mt as usize].remove(map, pfn);
        map.page(pfn).set_state(PageState::None);
        self.account_freepages(order, mt, -1);
    }

    /// Whether `pfn` heads a free block of exactly `order` in this zone
    /// (`page_is_buddy`).
    fn is_free_buddy(&self, map: &MemMap, pfn: Pfn, order: Order) -> bool {
        if !self.contains(pfn) {
            return false;
        }
        let page = map.page(pfn);
        page.state() == PageState::Buddy && page.order() == order
    }

    /// Frees a block into the lists, merging with its buddies as far as it
    /// can (`__free_one_page`).
    pub(crate) fn free_one_page(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        stats: &PaStats,
        mut pfn: Pfn,
        mut order: Order,
        mt: MigrateType,
    ) {
        while let Some(up) = order.up() {
            let buddy = Pfn::new(pfn.as_u64() ^ order.nr_pages());
            if !self.is_free_buddy(map, buddy, order) {
                break;
            }
            let mut buddy_mt = mt;
            if order >= PAGEBLOCK_ORDER {
                buddy_mt = self.pageblock_migratetype(buddy);
                if buddy_mt != mt && (!is_mergeable(mt) || !is_mergeable(buddy_mt)) {
                    break;
                }
            }
            self.del_from_free_list(area, map, buddy, order, buddy_mt);
            if buddy_mt != mt {
                // Keep Z2: the merged block is one type throughout.
                self.change_pageblock_range(area, buddy, order, mt);
            }
            stats.inc(PaStat::Merge);
            pfn = Pfn::new(pfn.as_u64() & buddy.as_u64());
            order = up;
        }
        let tail = self.buddy_merge_likely(map, pfn, order);
        self.add_to_free_list(area, map, pfn, order, mt, tail);
    }

    /// Whether the next-larger buddy is free, so that this block may merge
    /// soon and should sit at the tail, away from allocation
    /// (`buddy_merge_likely`).
    fn buddy_merge_likely(&self, map: &MemMap, pfn: Pfn, order: Order) -> bool {
        // Only below MAX - 1: a merged block of MAX has no buddy.
        let Some(up) = order.up().filter(|&up| up < Order::MAX) else {
            return false;
        };
        let buddy = pfn.as_u64() ^ order.nr_pages();
        let higher = pfn.as_u64() & buddy;
        let higher_buddy = Pfn::new(higher ^ up.nr_pages());
        self.is_free_buddy(map, higher_buddy, up)
    }

    /// Splits a block of order `high` down to `low`, returning the upper
    /// halves to the `mt` lists (`expand`).
    fn expand(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        pfn: Pfn,
        low: Order,
        mut high: Order,
        mt: MigrateType,
    ) {
        while let Some(half) = high.down().filter(|_| high > low) {
            high = half;
            self.add_to_free_list(area, map, pfn.add(half.nr_pages()), half, mt, false);
        }
    }

    /// Takes the free block `pfn` of order `current` off the `mt` lists and
    /// splits it down to `order`, the rest going back to the `mt` lists
    /// (`page_del_and_expand`).
    fn take_and_split(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        pfn: Pfn,
        current: Order,
        order: Order,
        mt: MigrateType,
    ) {
        self.del_from_free_list(area, map, pfn, current, mt);
        self.expand(area, map, pfn, order, current, mt);
    }

    /// The smallest block of `mt` of at least `order`, split down to
    /// `order` (`__rmqueue_smallest`).
    pub(crate) fn rmqueue_smallest(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        order: Order,
        mt: MigrateType,
    ) -> Option<Pfn> {
        for current in order.up_to_max() {
            let Some(pfn) = area.lists[current.index()][mt as usize].first() else {
                continue;
            };
            self.take_and_split(area, map, pfn, current, order, mt);
            return Some(pfn);
        }
        None
    }

    /// One block of `order` for `mt`, falling back to other migratetypes
    /// (`__rmqueue`): own type, then claim a pageblock, then steal.
    pub(crate) fn rmqueue(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        stats: &PaStats,
        order: Order,
        mt: MigrateType,
    ) -> Option<Pfn> {
        if let Some(pfn) = self.rmqueue_smallest(area, map, order, mt) {
            return Some(pfn);
        }
        if let Some(pfn) = self.rmqueue_claim(area, map, order, mt) {
            stats.inc(PaStat::FallbackClaim);
            return Some(pfn);
        }
        let pfn = self.rmqueue_steal(area, map, order, mt)?;
        stats.inc(PaStat::FallbackSteal);
        Some(pfn)
    }

    /// Whether a fallback at `order` should try to take over the whole
    /// pageblock (`should_try_claim_block`).
    fn should_try_claim_block(order: Order, start_mt: MigrateType) -> bool {
        order.get() >= PAGEBLOCK_ORDER.get() / 2 || start_mt != MigrateType::Movable
    }

    /// Largest-first search of the fallback types for a block worth
    /// claiming (`__rmqueue_claim`).
    fn rmqueue_claim(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        order: Order,
        start_mt: MigrateType,
    ) -> Option<Pfn> {
        for current in order.up_to_max().rev() {
            if !Self::should_try_claim_block(current, start_mt) {
                break;
            }
            for &fb in fallbacks(start_mt) {
                let Some(pfn) = area.lists[current.index()][fb as usize].first() else {
                    continue;
                };
                if let Some(got) =
                    self.try_to_claim_block(area, map, pfn, current, order, start_mt, fb)
                {
                    return Some(got);
                }
            }
        }
        None
    }

    /// Takes over the pageblock of the free block at `pfn` if enough of it
    /// is free or alike, then allocates from it (`try_to_claim_block`).
    #[allow(clippy::too_many_arguments)]
    fn try_to_claim_block(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        pfn: Pfn,
        current: Order,
        order: Order,
        start_mt: MigrateType,
        block_mt: MigrateType,
    ) -> Option<Pfn> {
        if block_mt == MigrateType::HighAtomic {
            return None;
        }
        if current >= PAGEBLOCK_ORDER {
            self.del_from_free_list(area, map, pfn, current, block_mt);
            self.change_pageblock_range(area, pfn, current, start_mt);
            self.expand(area, map, pfn, order, current, start_mt);
            return Some(pfn);
        }
        let block = pageblock_start(pfn);
        if !self.pageblock_in_zone(block) {
            return None;
        }
        let (free, movable) = self.scan_pageblock(map, block);
        let alike = match (start_mt, block_mt) {
            (MigrateType::Movable, _) => movable,
            (_, MigrateType::Movable) => PAGEBLOCK_NR_PAGES - free - movable,
            _ => 0,
        };
        if free + alike < PAGEBLOCK_NR_PAGES / 2 {
            return None;
        }
        self.move_freepages_block(area, map, block, block_mt, start_mt);
        self.rmqueue_smallest(area, map, order, start_mt)
    }

    /// Whether the whole pageblock lies in this zone. Claims and highatomic
    /// reserves act on whole pageblocks, so they skip one that straddles a
    /// zone edge (Linux: `prep_move_freepages_block`); the x86_64 zone
    /// limits are pageblock-aligned, custom layouts may not be.
    fn pageblock_in_zone(&self, block: Pfn) -> bool {
        self.start_pfn <= block && block.add(PAGEBLOCK_NR_PAGES) <= self.end_pfn
    }

    /// Counts free pages and movable in-use pages of a pageblock.
    fn scan_pageblock(&self, map: &MemMap, block: Pfn) -> (u64, u64) {
        let (mut free, mut movable) = (0, 0);
        let mut pfn = block;
        let end = block.add(PAGEBLOCK_NR_PAGES);
        debug_assert!(self.pageblock_in_zone(block));
        while pfn < end {
            let page = map.page(pfn);
            let step = match page.state() {
                PageState::Buddy => {
                    free += page.order().nr_pages();
                    page.order().nr_pages()
                }
                PageState::Allocated | PageState::Pcp => {
                    if page.migratetype() == MigrateType::Movable as usize
                        && page.state() == PageState::Allocated
                    {
                        movable += page.order().nr_pages();
                    }
                    page.order().nr_pages()
                }
                PageState::None => 1,
            };
            pfn = pfn.add(step);
        }
        (free, movable)
    }

    /// Moves every free block of a pageblock from the `from` lists to the
    /// `to` lists and retags the pageblock (`move_freepages_block`).
    fn move_freepages_block(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        block: Pfn,
        from: MigrateType,
        to: MigrateType,
    ) -> u64 {
        let mut moved = 0;
        let mut pfn = block;
        let end = block.add(PAGEBLOCK_NR_PAGES);
        debug_assert!(self.pageblock_in_zone(block));
        while pfn < end {
            let page = map.page(pfn);
            if page.state() == PageState::Buddy {
                let order = page.order();
                self.del_from_free_list(area, map, pfn, order, from);
                self.add_to_free_list(area, map, pfn, order, to, false);
                moved += order.nr_pages();
                pfn = pfn.add(order.nr_pages());
            } else {
                pfn = pfn.add(1);
            }
        }
        self.set_pageblock_migratetype(area, block, to);
        moved
    }

    /// Smallest-first: take exactly the requested block from another type's
    /// list and leave that pageblock's type alone (`__rmqueue_steal`).
    fn rmqueue_steal(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        order: Order,
        start_mt: MigrateType,
    ) -> Option<Pfn> {
        for current in order.up_to_max() {
            for &fb in fallbacks(start_mt) {
                let Some(pfn) = area.lists[current.index()][fb as usize].first() else {
                    continue;
                };
                self.take_and_split(area, map, pfn, current, order, fb);
                return Some(pfn);
            }
        }
        None
    }

    /// After a high-order atomic allocation, reserves its pageblock for
    /// future ones, up to ~1% of the zone (`reserve_highatomic_pageblock`).
    pub(crate) fn reserve_highatomic_pageblock(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        stats: &PaStats,
        pfn: Pfn,
        order: Order,
    ) {
        let max_managed =
            (self.managed_pages / 100).div_ceil(PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES;
        if area.nr_reserved_highatomic >= max_managed {
            return;
        }
        let mt = self.pageblock_migratetype(pfn);
        if !is_mergeable(mt) || !self.pageblock_in_zone(pageblock_start(pfn)) {
            return;
        }
        if order < PAGEBLOCK_ORDER {
            self.move_freepages_block(area, map, pageblock_start(pfn), mt, MigrateType::HighAtomic);
            area.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES;
        } else {
            self.change_pageblock_range(area, pfn, order, MigrateType::HighAtomic);
            area.nr_reserved_highatomic += order.nr_pages();
        }
        stats.inc(PaStat::HighatomicReserve);
    }

    /// Gives one highatomic pageblock back to `to` when allocations are
    /// failing (`unreserve_highatomic_pageblock`). True if one was released.
    pub(crate) fn unreserve_highatomic_pageblock(
        &self,
        area: &mut FreeArea,
        map: &MemMap,
        stats: &PaStats,
        to: MigrateType,
    ) -> bool {
        if area.nr_reserved_highatomic == 0 {
            return false;
        }
        for order in Order::ZERO.up_to_max() {
            let Some(pfn) = area.lists[order.index()][MigrateType::HighAtomic as usize].first()
            else {
                continue;
            };
            let size = PAGEBLOCK_NR_PAGES.max(order.nr_pages());
            area.nr_reserved_highatomic -= size.min(area.nr_reserved_highatomic);
            if order < PAGEBLOCK_ORDER {
                self.move_freepages_block(
                    area,
                    map,
                    pageblock_start(pfn),
                    MigrateType::HighAtomic,
                    to,
                );
            } else {
                // Retag, then free it again so that it merges with a buddy
                // the highatomic type had kept it apart from (Z3).
                self.del_from_free_list(area, map, pfn, order, MigrateType::HighAtomic);
                self.change_pageblock_range(area, pfn, order, to);
                self.free_one_page(area, map, stats, pfn, order, to);
            }
            stats.inc(PaStat::HighatomicUnreserve);
            return true;
        }
        false
    }

    /// Whether an allocation of `order` may proceed against watermark
    /// `mark` (`__zone_watermark_ok`). `highest` is the highest zone the
    /// request could have used, which selects the lowmem reserve.
    pub(crate) fn watermark_ok(
        &self,
        order: Order,
        mark: u64,
        highest: ZoneType,
        flags: AllocFlags,
    ) -> bool {
        let mut free = self.nr_free_pages.load(Relaxed) - (order.nr_pages() as i64 - 1);
        let mut min = mark as i64;
        if flags.reserves() {
            if flags.contains(AllocFlags::MIN_RESERVE) {
                min -= min / 2;
            }
            if flags.contains(AllocFlags::NON_BLOCK) {
                min -= min / 4;
            }
        } else {
            // Highatomic reserves are unusable for ordinary requests.
            free -= self.nr_free_by_mt[MigrateType::HighAtomic as usize].load(Relaxed);
        }
        if free <= min + self.lowmem_reserve[highest as usize] as i64 {
            return false;
        }
        if order == Order::ZERO {
            return true;
        }
        // Enough pages in total; is there a block large enough? Racy, as
        // in Linux: the allocation itself re-checks under the lock.
        order.up_to_max().any(|o| {
            let blocks = &self.nr_free_blocks[o.index()];
            MigrateType::PCP_TYPES
                .iter()
                .any(|&mt| blocks[mt as usize].load(Relaxed) > 0)
                || (flags.reserves() && blocks[MigrateType::HighAtomic as usize].load(Relaxed) > 0)
        })
    }

    /// Free block counts per order per migratetype (racy snapshot).
    pub fn free_blocks(&self) -> [[u64; MIGRATE_TYPES]; NR_PAGE_ORDERS] {
        core::array::from_fn(|o| {
            core::array::from_fn(|mt| self.nr_free_blocks[o][mt].load(Relaxed))
        })
    }

    /// Checks Z1..Z4 under the lock; returns a description of the first
    /// violation. Used by tests and the in-kernel self-check.
    pub fn check<P: Platform>(
        &self,
        map: &MemMap,
        platform: &P,
    ) -> Result<(), alloc::string::String> {
        use alloc::format;
        let area = self.free.lock_irqsave(platform);
        let mut total = 0i64;
        let mut by_mt = [0i64; MIGRATE_TYPES];
        let mut heads: Vec<(Pfn, Order)> = Vec::new();
        for (o, lists) in area.lists.iter().enumerate() {
            for (mt, list) in lists.iter().enumerate() {
                let counted = self.nr_free_blocks[o][mt].load(Relaxed);
                if counted != list.len() as u64 {
                    return Err(format!(
                        "zone {}: order-{o} {:?} list holds {} blocks, counter says {counted}",
                        self.kind.name(),
                        MigrateType::from_index(mt),
                        list.len()
                    ));
                }
                for pfn in list.iter(map) {
                    let page = map.page(pfn);
                    let order = Order::new(o as u32);
                    if page.state() != PageState::Buddy || page.order() != order {
                        return Err(format!(
                            "{pfn:?} on order-{o} list has state {:?} order {}",
                            page.state(),
                            page.order()
                        ));
                    }
                    if !pfn.is_aligned(order)
                        || !self.contains(pfn)
                        || !self.contains(pfn.add(order.nr_pages() - 1))
                    {
                        return Err(format!(
                            "{pfn:?} order {o} misaligned or outside zone {}",
                            self.kind.name()
                        ));
                    }
                    let block_mt = self.pageblock_migratetype(pfn) as usize;
                    if block_mt != mt {
                        return Err(format!(
                            "{pfn:?} on {:?} list lies in a {:?} pageblock",
                            MigrateType::from_index(mt),
                            MigrateType::from_index(block_mt)
                        ));
                    }
                    total += 1 << o;
                    by_mt[mt] += 1 << o;
                    heads.push((pfn, order));
                }
            }
        }
        for &(pfn, order) in &heads {
            if order == Order::MAX {
                continue;
            }
            let buddy = Pfn::new(pfn.as_u64() ^ order.nr_pages());
            if self.is_free_buddy(map, buddy, order) {
                let (a, b) = (
                    self.pageblock_migratetype(pfn),
                    self.pageblock_migratetype(buddy),
                );
                let blocked =
                    order >= PAGEBLOCK_ORDER && a != b && (!is_mergeable(a) || !is_mergeable(b));
                if !blocked {
                    return Err(format!(
                        "{pfn:?} and its buddy {buddy:?} are both free at order {order}, unmerged"
                    ));
                }
            }
        }
        if total != self.nr_free_pages.load(Relaxed) {
            return Err(format!(
                "zone {}: lists hold {total} pages, counter says {}",
                self.kind.name(),
                self.nr_free_pages.load(Relaxed)
            ));
        }
        for (mt, &n) in by_mt.iter().enumerate() {
            if n != self.nr_free_by_mt[mt].load(Relaxed) {
                return Err(format!(
                    "zone {}: {:?} lists hold {n} pages, counter says {}",
                    self.kind.name(),
                    MigrateType::from_index(mt),
                    self.nr_free_by_mt[mt].load(Relaxed)
                ));
            }
        }
        Ok(())
    }
}

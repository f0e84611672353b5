//! The buddy page allocator (Linux's `mm/page_alloc.c`).
//!
//! Hands out physically contiguous blocks of 2^order frames, orders
//! `0..=MAX_PAGE_ORDER`, from three zones (DMA < 16 MiB, DMA32 < 4 GiB,
//! Normal). A freed block merges with its buddy (`pfn ^ (1 << order)`) while
//! the buddy is free at the same order. Free blocks are kept per migratetype
//! (unmovable, movable, reclaimable, highatomic), and 2 MiB pageblocks carry
//! a type, so that long-lived unmovable allocations cluster instead of
//! fragmenting all of memory; an allocation whose type has nothing free
//! *claims* a whole pageblock of another type when enough of it is free or
//! alike, and otherwise *steals* just the block it needs (the 6.15 rules).
//! Orders 0..=3 go through per-CPU lists ([`pcp`]).
//!
//! ```text
//!  alloc_pages(gfp, order)
//!    zones from gfp_zone(gfp) down to DMA, at the low watermark:
//!      order <= 3: this CPU's pcp list (refilled by batch from the zone)
//!      otherwise / pcp busy: zone free lists (own type, claim, steal)
//!    slow path: again at the min watermark (less for HIGH / non-blocking),
//!      then release highatomic reserves and retry once, then fail.
//!  free_pages(pfn, order)
//!    bad-page checks -> pcp list (order <= 3) or merge into the zone lists
//! ```
//!
//! # Invariants
//!
//! See [`crate::memmap`] (I1..I3: who owns a frame record) and [`zone`]
//! (Z1..Z4: what the free lists hold). In addition:
//! - P1: every frame the allocator was given is, at any time, in exactly one
//!   of: a zone free block, a per-CPU block, an allocated block.
//!
//! # Locking
//!
//! 1. per-CPU list lock (`zone.pcp[cpu]`), trylock only on alloc/free paths;
//! 2. zone lock (`zone.free`), taken with interrupts disabled.
//!
//! # Context
//!
//! `alloc_pages` and `free_pages` may be called with interrupts disabled
//! and from interrupt context: they never sleep, and the per-CPU trylock
//! keeps an interrupt on a CPU that holds its pcp lock from deadlocking.
//!
//! # Bad pages
//!
//! `free_pages` validates the block first (Linux's `free_pages_prepare` and
//! `bad_page`): a pfn outside the memmap, a reserved frame, a block that is
//! not allocated (double free, or a tail frame), a wrong order, a refcount
//! or mapcount out of place. The block is then reported loudly with its
//! record and the caller's location, counted, and leaked, never freed.

mod pcp;
pub mod scenarios;
mod stats;
mod zone;

use core::fmt;
use core::panic::Location;

pub use stats::{PaStat, PaStats};
pub use zone::{NR_ZONES, Watermark, Zone, ZoneType};

use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::gfp::Gfp;
use crate::memmap::{MemMap, PageFlags, PageState};
use crate::platform::{Platform, PreemptGuard};
use zone::AllocFlags;

/// The largest order: blocks of 1024 pages, 4 MiB (inclusive, as Linux 6.4+).
pub const MAX_PAGE_ORDER: u32 = 10;
/// Number of orders.
pub const NR_PAGE_ORDERS: usize = MAX_PAGE_ORDER as usize + 1;
/// Order of a pageblock: 2 MiB on x86_64.
pub const PAGEBLOCK_ORDER: Order = Order::new(9);
/// Frames per pageblock.
pub const PAGEBLOCK_NR_PAGES: u64 = PAGEBLOCK_ORDER.nr_pages();
/// Orders above this are "costly" and bypass the per-CPU lists.
pub const PAGE_ALLOC_COSTLY_ORDER: Order = Order::new(3);
/// Number of migratetypes with free lists.
pub const MIGRATE_TYPES: usize = 4;
/// Per-CPU lists: one per (pcp migratetype, order <= costly).
pub const NR_PCP_LISTS: usize = 3 * (PAGE_ALLOC_COSTLY_ORDER.index() + 1);

/// Page mobility (`enum migratetype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MigrateType {
    Unmovable = 0,
    Movable = 1,
    Reclaimable = 2,
    /// Reserve for high-order atomic allocations; never claimed by fallback.
    HighAtomic = 3,
}

impl MigrateType {
    /// All types, in list order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::HighAtomic,
    ];
    /// Types that have per-CPU lists (`MIGRATE_PCPTYPES`).
    pub const PCP_TYPES: [MigrateType; 3] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
    ];

    pub(crate) fn from_index(i: usize) -> Self {
        Self::ALL[i]
    }

    /// Linux's name (`migratetype_names`).
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
            MigrateType::HighAtomic => "HighAtomic",
        }
    }

    /// The type an allocation with these flags gets (`gfp_migratetype`).
    pub fn from_gfp(gfp: Gfp) -> Self {
        if gfp.contains(Gfp::MOVABLE) {
            MigrateType::Movable
        } else if gfp.contains(Gfp::RECLAIMABLE) {
            MigrateType::Reclaimable
        } else {
            MigrateType::Unmovable
        }
    }
}

/// The highest zone these flags allow (`gfp_zone`).
pub fn gfp_zone(gfp: Gfp) -> ZoneType {
    if gfp.contains(Gfp::DMA) {
        ZoneType::Dma
    } else if gfp.contains(Gfp::DMA32) {
        ZoneType::Dma32
    } else {
        ZoneType::Normal
    }
}

/// Where the zones end, as frame numbers (exclusive), lowest zone first.
#[derive(Clone, Copy, Debug)]
pub struct ZoneLayout {
    pub limits: [Pfn; NR_ZONES],
}

impl ZoneLayout {
    /// x86_64: DMA below 16 MiB, DMA32 below 4 GiB, Normal above.
    pub const X86_64: ZoneLayout = ZoneLayout {
        limits: [Pfn::new(16 << 8), Pfn::new(1 << 20), Pfn::new(u64::MAX)],
    };
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No zone allowed by the flags has a free block above its watermark.
    NoMemory,
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPageReason {
    /// The pfn is beyond the memmap.
    OutsideMemmap,
    /// The frame is reserved and was never allocatable.
    Reserved,
    /// The frame does not head an allocated block: a double free, or a free
    /// of a tail frame (the state found is given).
    NotAllocated(PageState),
    /// The block was allocated with another order.
    OrderMismatch { allocated: Order },
    /// The reference count was not positive.
    BadRefcount(i32),
    /// The frame is still mapped by page tables.
    StillMapped(i32),
}

/// A bad free, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPage {
    pub pfn: Pfn,
    pub order: Order,
    pub reason: BadPageReason,
    pub caller: &'static Location<'static>,
}

/// The page allocator of one machine (one NUMA node).
pub struct PageAlloc<P: Platform> {
    platform: P,
    memmap: MemMap,
    zones: [Zone; NR_ZONES],
    stats: PaStats,
    /// Pages of RAM handed over at boot (all zones).
    total_managed: u64,
}

impl<P: Platform> PageAlloc<P> {
    /// Builds the zones over `memmap`, frees every frame in `free_ranges`
    /// (half-open pfn ranges of usable RAM nobody else owns) into them, and
    /// computes watermarks, lowmem reserves and per-CPU batch sizes.
    pub fn new(
        platform: P,
        memmap: MemMap,
        layout: ZoneLayout,
        free_ranges: &[core::ops::Range<Pfn>],
    ) -> Self {
        let nr_cpus = platform.nr_cpus();
        let end = Pfn::new(memmap.len() as u64);
        let mut start = Pfn::new(0);
        let mut zones = ZoneType::ALL.map(|kind| {
            let zone_end = layout.limits[kind as usize].min(end).max(start);
            let zone = Zone::new(kind, start, zone_end, nr_cpus);
            start = zone_end;
            zone
        });
        for zone in &zones {
            for pfn in zone.start_pfn.as_u64()..zone.end_pfn.as_u64() {
                memmap.page(Pfn::new(pfn)).set_zone_idx(zone.kind as usize);
            }
        }
        let stats = PaStats::new();
        for range in free_ranges {
            for zone in &mut zones {
                let lo = range.start.max(zone.start_pfn);
                let hi = range.end.min(zone.end_pfn);
                if lo < hi {
                    zone.managed_pages += hi.as_u64() - lo.as_u64();
                    free_range_at_boot(&platform, zone, &memmap, &stats, lo, hi);
                }
            }
        }
        let total_managed = zones.iter().map(|z| z.managed_pages).sum();
        setup_watermarks(&mut zones, total_managed);
        for zone in &mut zones {
            zone.pcp_batch = pcp::zone_batchsize(zone.managed_pages);
            zone.pcp_high = pcp::zone_highsize(
                zone.watermark[Watermark::Low as usize],
                nr_cpus,
                zone.pcp_batch,
            );
        }
        Self {
            platform,
            memmap,
            zones,
            stats,
            total_managed,
        }
    }

    /// The platform this allocator runs on.
    #[inline]
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The memmap.
    #[inline]
    pub fn memmap(&self) -> &MemMap {
        &self.memmap
    }

    /// Copies the contents of frame `from` into frame `to`
    /// (`copy_highpage()`): the copy of copy-on-write.
    ///
    /// For frames of user memory only. Both must be allocated (their
    /// folio holds a reference) and distinct, and neither may belong to a
    /// kernel object (slab, large kmalloc, page table, reserved), since
    /// Rust references may point into those: a frame that breaks this is
    /// a caller's bug, reported by a panic before any byte is written.
    /// Such frames are reached by no Rust reference, only by user
    /// mappings, so the copy is safe to offer.
    pub fn copy_highpage(&self, to: Pfn, from: Pfn) {
        assert_ne!(to, from, "BUG: copy_highpage of frame {to} onto itself");
        for (what, pfn) in [("to", to), ("from", from)] {
            let head = self
                .memmap
                .page(crate::folio::Folio::of(&self.memmap, pfn).head());
            let kernel = PageFlags::RESERVED
                | PageFlags::SLAB
                | PageFlags::LARGE_KMALLOC
                | PageFlags::PGTABLE;
            assert!(
                head.refcount() > 0 && !head.flags().intersects(kernel),
                "BUG: copy_highpage: `{what}` frame {pfn} is not allocated user memory"
            );
        }
        let src = self.platform.phys_to_virt(from.phys_addr());
        let dst = self.platform.phys_to_virt(to.phys_addr());
        // SAFETY: 1. both frames are in the direct map (`phys_to_virt`
        // maps every frame of the memmap) and distinct, so the ranges do
        // not overlap; 2. both are allocated user frames (checked above),
        // which no Rust reference points into: only user PTEs map them.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, PAGE_SIZE as usize) };
    }

    /// Checks that `pfn` is allocated user memory (see [`Self::copy_highpage`]).
    fn assert_user_frame(&self, pfn: Pfn, what: &str) {
        let head = self
            .memmap
            .page(crate::folio::Folio::of(&self.memmap, pfn).head());
        let kernel =
            PageFlags::RESERVED | PageFlags::SLAB | PageFlags::LARGE_KMALLOC | PageFlags::PGTABLE;
        assert!(
            head.refcount() > 0 && !head.flags().intersects(kernel),
            "BUG: {what}: frame {pfn} is not allocated user memory"
        );
    }

    /// Copies `src` into frame `pfn` at byte `off` (`memcpy_to_page()`):
    /// a `write()` into a page-cache page. The same rules as
    /// [`Self::copy_highpage`]: a user frame with a reference held.
    pub fn memcpy_to_page(&self, pfn: Pfn, off: usize, src: &[u8]) {
        assert!(
            off + src.len() <= PAGE_SIZE as usize,
            "BUG: memcpy_to_page past the page"
        );
        self.assert_user_frame(pfn, "memcpy_to_page");
        let dst = self.platform.phys_to_virt(pfn.phys_addr());
        // SAFETY: 1. the frame is in the direct map and `off + len` stays
        // inside it (asserted); 2. it is an allocated user frame (checked)
        // which no Rust reference points into, and `src` is kernel memory,
        // so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(off), src.len()) };
    }

    /// Copies bytes of frame `pfn` from byte `off` into `dst`
    /// (`memcpy_from_page()`): a `read()` of a page-cache page.
    pub fn memcpy_from_page(&self, pfn: Pfn, off: usize, dst: &mut [u8]) {
        assert!(
            off + dst.len() <= PAGE_SIZE as usize,
            "BUG: memcpy_from_page past the page"
        );
        self.assert_user_frame(pfn, "memcpy_from_page");
        let src = self.platform.phys_to_virt(pfn.phys_addr());
        // SAFETY: as in `memcpy_to_page`, the other way round.
        unsafe { core::ptr::copy_nonoverlapping(src.add(off), dst.as_mut_ptr(), dst.len()) };
    }

    /// Zeroes bytes `[off, PAGE_SIZE)` of frame `pfn` (`folio_zero_range()`
    /// of a truncated page's tail).
    pub fn zero_page_tail(&self, pfn: Pfn, off: usize) {
        self.zero_page_range(pfn, off, PAGE_SIZE as usize);
    }

    /// Zeroes bytes `[from, to)` of frame `pfn` (`folio_zero_range()`).
    pub fn zero_page_range(&self, pfn: Pfn, from: usize, to: usize) {
        assert!(
            from <= to && to <= PAGE_SIZE as usize,
            "BUG: zero_page_range past the page"
        );
        self.assert_user_frame(pfn, "zero_page_range");
        let dst = self.platform.phys_to_virt(pfn.phys_addr());
        // SAFETY: as in `memcpy_to_page`: inside one allocated user frame
        // (`to` checked against the page size).
        unsafe { core::ptr::write_bytes(dst.add(from), 0, to - from) };
    }

    /// The zones, lowest first (some may be empty).
    pub fn zones(&self) -> &[Zone; NR_ZONES] {
        &self.zones
    }

    /// The event counters.
    pub fn stats(&self) -> &PaStats {
        &self.stats
    }

    /// Pages handed to the allocator at boot.
    pub fn managed_pages(&self) -> u64 {
        self.total_managed
    }

    /// Free pages on the zone lists (excludes per-CPU lists), racy.
    pub fn nr_free_pages(&self) -> u64 {
        self.zones.iter().map(Zone::nr_free_pages).sum()
    }

    /// Pages on the per-CPU lists of all CPUs, racy.
    pub fn nr_pcp_pages(&self) -> u64 {
        self.zones.iter().map(Zone::nr_pcp_pages).sum()
    }

    /// Allocates 2^`order` contiguous frames (`alloc_pages`). The
    /// caller's location is given to the platform's owner tracking
    /// ([`Platform::post_alloc_hook`]).
    #[track_caller]
    pub fn alloc_pages(&self, gfp: Gfp, order: Order) -> Result<Pfn, AllocError> {
        let caller = Location::caller();
        // prepare_alloc_pages(): the fault-injection point.
        if self.platform.should_fail_alloc_page(gfp, order) {
            self.stats.inc(PaStat::AllocFail);
            return Err(AllocError::NoMemory);
        }
        let mt = MigrateType::from_gfp(gfp);
        let highest = gfp_zone(gfp);
        if let Some(pfn) = self.get_page_from_freelist(
            gfp,
            order,
            mt,
            highest,
            Watermark::Low,
            AllocFlags::empty(),
            caller,
        ) {
            self.stats.inc(PaStat::AllocFastpath);
            return Ok(pfn);
        }
        self.alloc_pages_slowpath(gfp, order, mt, highest, caller)
    }

    #[cold]
    fn alloc_pages_slowpath(
        &self,
        gfp: Gfp,
        order: Order,
        mt: MigrateType,
        highest: ZoneType,
        caller: &'static Location<'static>,
    ) -> Result<Pfn, AllocError> {
        let flags = gfp_to_alloc_flags(gfp, order);
        for attempt in 0..2 {
            if let Some(pfn) =
                self.get_page_from_freelist(gfp, order, mt, highest, Watermark::Min, flags, caller)
            {
                self.stats.inc(PaStat::AllocSlowpath);
                return Ok(pfn);
            }
            // Without reclaim, the one thing left to try is to release the
            // highatomic reserves (as `should_reclaim_retry` does).
            let released = attempt == 0
                && self.zones[..=highest as usize].iter().rev().any(|z| {
                    let mut area = z.free.lock_irqsave(&self.platform);
                    z.unreserve_highatomic_pageblock(&mut area, &self.memmap, &self.stats, mt)
                });
            if !released {
                break;
            }
        }
        self.stats.inc(PaStat::AllocFail);
        if !gfp.contains(Gfp::NOWARN) {
            log::warn!(
                "page allocation failure: order:{order}, mode:{gfp:?}, free pages {}",
                self.nr_free_pages()
            );
        }
        Err(AllocError::NoMemory)
    }

    /// Walks the zonelist from `highest` down (`get_page_from_freelist`).
    #[allow(clippy::too_many_arguments)]
    fn get_page_from_freelist(
        &self,
        gfp: Gfp,
        order: Order,
        mt: MigrateType,
        highest: ZoneType,
        wmark: Watermark,
        flags: AllocFlags,
        caller: &'static Location<'static>,
    ) -> Option<Pfn> {
        for zone in self.zones[..=highest as usize].iter().rev() {
            if !zone.is_populated() {
                continue;
            }
            if !flags.contains(AllocFlags::NO_WATERMARKS)
                && !zone.watermark_ok(order, zone.watermark[wmark as usize], highest, flags)
            {
                continue;
            }
            let Some(pfn) = self.rmqueue(zone, order, mt, flags) else {
                continue;
            };
            self.prep_new_page(zone, pfn, order, gfp, mt, caller);
            let pgalloc = match zone.kind {
                ZoneType::Dma => PaStat::PgallocDma,
                ZoneType::Dma32 => PaStat::PgallocDma32,
                ZoneType::Normal => PaStat::PgallocNormal,
            };
            self.stats.add(pgalloc, order.nr_pages());
            if flags.contains(AllocFlags::HIGHATOMIC) {
                let mut area = zone.free.lock_irqsave(&self.platform);
                zone.reserve_highatomic_pageblock(&mut area, &self.memmap, &self.stats, pfn, order);
            }
            return Some(pfn);
        }
        None
    }

    /// One block from `zone`: the per-CPU list for small orders, else (or
    /// when that lock is busy) the zone lists (`rmqueue`).
    fn rmqueue(
        &self,
        zone: &Zone,
        order: Order,
        mt: MigrateType,
        flags: AllocFlags,
    ) -> Option<Pfn> {
        if pcp::pcp_allowed_order(order) {
            // pcp_spin_trylock: pinned to this CPU while its list is held,
            // so a holder is never preempted with the lock taken.
            let _preempt = PreemptGuard::new(&self.platform);
            let cpu = self.platform.cpu_id();
            if let Some(pfn) =
                zone.rmqueue_pcplist(&self.platform, &self.memmap, &self.stats, cpu, order, mt)
            {
                return Some(pfn);
            }
        }
        zone.rmqueue_buddy(&self.platform, &self.memmap, &self.stats, order, mt, flags)
    }

    /// Marks a block allocated and zeroes it if asked (`prep_new_page`).
    fn prep_new_page(
        &self,
        zone: &Zone,
        pfn: Pfn,
        order: Order,
        gfp: Gfp,
        mt: MigrateType,
        caller: &'static Location<'static>,
    ) {
        let page = self.memmap.page(pfn);
        if page.refcount() != 0 || page.mapcount() != 0 {
            // A free frame's record was written by someone: report, go on.
            log::error!(
                "BUG: Bad page state on allocation: pfn {pfn} refcount {} mapcount {}",
                page.refcount(),
                page.mapcount()
            );
            self.stats.inc(PaStat::BadPage);
        }
        page.set_order(order);
        page.set_migratetype(mt as usize);
        page.set_refcount(1);
        page.set_state(PageState::Allocated);
        zone.pgalloc
            .fetch_add(order.nr_pages(), core::sync::atomic::Ordering::Relaxed);
        self.platform.post_alloc_hook(pfn, order, caller);
        if gfp.contains(Gfp::ZERO) {
            let va = self.platform.phys_to_virt(pfn.phys_addr());
            // SAFETY: 1. The block was just taken off the free lists, so no
            // one else owns its frames (P1). 2. `phys_to_virt` maps every
            // frame of the memmap, and the block's 2^order frames are
            // contiguous in the direct map.
            unsafe { core::ptr::write_bytes(va, 0, (order.bytes()) as usize) };
        }
    }

    /// Drops a reference to the block at `pfn`; frees it when that was the
    /// last one (`__free_pages`). Bad frees are reported, counted and
    /// refused (the block is leaked, never corrupted).
    #[track_caller]
    pub fn free_pages(&self, pfn: Pfn, order: Order) -> Result<(), BadPage> {
        let caller = Location::caller();
        let bad = |reason| self.bad_page(pfn, order, reason, caller);
        let Some(page) = self.memmap.get(pfn) else {
            return Err(bad(BadPageReason::OutsideMemmap));
        };
        if page.flags().contains(PageFlags::RESERVED) {
            return Err(bad(BadPageReason::Reserved));
        }
        match page.state() {
            PageState::Allocated => {}
            other => return Err(bad(BadPageReason::NotAllocated(other))),
        }
        if page.order() != order {
            return Err(bad(BadPageReason::OrderMismatch {
                allocated: page.order(),
            }));
        }
        if page.refcount() <= 0 {
            return Err(bad(BadPageReason::BadRefcount(page.refcount())));
        }
        if !page.put_testzero() {
            return Ok(());
        }
        if page.mapcount() != 0 {
            return Err(bad(BadPageReason::StillMapped(page.mapcount())));
        }
        // Two racing frees both saw Allocated; only one may win.
        if let Err(found) = page.cmpxchg_state(PageState::Allocated, PageState::None) {
            return Err(bad(BadPageReason::NotAllocated(found)));
        }
        self.stats.add(PaStat::PgFree, order.nr_pages());
        self.platform.free_pages_prepare(pfn, order);
        let zone = &self.zones[page.zone_idx()];
        if pcp::pcp_allowed_order(order) {
            let _preempt = PreemptGuard::new(&self.platform);
            let cpu = self.platform.cpu_id();
            if zone.free_pcp(&self.platform, &self.memmap, &self.stats, cpu, pfn, order) {
                return Ok(());
            }
        }
        let mut area = zone.free.lock_irqsave(&self.platform);
        let mt = zone.pageblock_migratetype(pfn);
        zone.free_one_page(&mut area, &self.memmap, &self.stats, pfn, order, mt);
        self.stats.inc(PaStat::FreeZone);
        Ok(())
    }

    /// Reports a bad free loudly (`bad_page`) and returns it as an error.
    #[cold]
    fn bad_page(
        &self,
        pfn: Pfn,
        order: Order,
        reason: BadPageReason,
        caller: &'static Location<'static>,
    ) -> BadPage {
        self.stats.inc(PaStat::BadPage);
        match self.memmap.get(pfn) {
            Some(p) => log::error!(
                "BUG: Bad page state: free_pages(pfn {pfn}, order {order}) from {caller}: {reason:?}; \
                 page: state {:?} order {} refcount {} mapcount {} flags {:?} zone {}",
                p.state(),
                p.order(),
                p.refcount(),
                p.mapcount(),
                p.flags(),
                ZoneType::ALL[p.zone_idx()].name(),
            ),
            None => log::error!(
                "BUG: Bad page: free_pages(pfn {pfn}, order {order}) from {caller}: {reason:?} (memmap ends at pfn {:#x})",
                self.memmap.len()
            ),
        }
        BadPage {
            pfn,
            order,
            reason,
            caller,
        }
    }

    /// Returns every CPU's per-CPU pages to the zones (`drain_all_pages`).
    pub fn drain_all_pages(&self) {
        for zone in &self.zones {
            for cpu in 0..zone.pcp.len() {
                zone.drain_pcp(
                    &self.platform,
                    &self.memmap,
                    &self.stats,
                    crate::addr::CpuId::new(cpu as u32),
                );
            }
        }
    }

    /// Checks every zone's free-list invariants (Z1..Z4).
    pub fn check(&self) -> Result<(), alloc::string::String> {
        self.zones
            .iter()
            .try_for_each(|z| z.check(&self.memmap, &self.platform))
    }

    /// A `/proc/buddyinfo`-style view: free blocks per order per zone.
    pub fn buddyinfo(&self) -> BuddyInfo<'_, P> {
        BuddyInfo(self)
    }

    /// A `/proc/pagetypeinfo`-style view: free blocks per order per
    /// migratetype per zone.
    pub fn pagetypeinfo(&self) -> PageTypeInfo<'_, P> {
        PageTypeInfo(self)
    }
}

impl<P: Platform> Drop for PageAlloc<P> {
    /// Teardown (host tests only: the kernel's allocator is never
    /// dropped): the platform's leak check sees the memmap last.
    fn drop(&mut self) {
        self.platform.page_alloc_teardown(&self.memmap);
    }
}

/// Frees `[lo, hi)` into `zone` in the largest aligned blocks
/// (`memblock_free_all` -> `__free_pages_core`).
fn free_range_at_boot<P: Platform>(
    platform: &P,
    zone: &Zone,
    map: &MemMap,
    stats: &PaStats,
    lo: Pfn,
    hi: Pfn,
) {
    for pfn in lo.as_u64()..hi.as_u64() {
        map.page(Pfn::new(pfn)).set_flags(PageFlags::empty());
    }
    let mut area = zone.free.lock_irqsave(platform);
    let mut pfn = lo;
    while pfn < hi {
        let align = pfn.as_u64().trailing_zeros().min(MAX_PAGE_ORDER);
        let fit = 63 - (hi.as_u64() - pfn.as_u64()).leading_zeros();
        let order = Order::new(align.min(fit));
        let mt = zone.pageblock_migratetype(pfn);
        zone.free_one_page(&mut area, map, stats, pfn, order, mt);
        pfn = pfn.add(order.nr_pages());
    }
}

/// Watermarks (`__setup_per_zone_wmarks`) and lowmem reserves
/// (`setup_per_zone_lowmem_reserve`).
///
/// `min_free_kbytes = sqrt(lowmem_kbytes * 16)`, clamped to [128, 262144],
/// shared over the zones by size; low and high are min plus one and two
/// times max(min / 4, 0.1% of the zone) (`watermark_scale_factor` = 10).
fn setup_watermarks(zones: &mut [Zone; NR_ZONES], total_managed: u64) {
    let kbytes = total_managed * (PAGE_SIZE / 1024);
    let min_free_kbytes = isqrt(kbytes * 16).clamp(128, 262_144);
    let pages_min = min_free_kbytes / (PAGE_SIZE / 1024);
    for zone in zones.iter_mut() {
        if total_managed == 0 {
            break;
        }
        let min = pages_min * zone.managed_pages / total_managed;
        let delta = (min / 4).max(zone.managed_pages * 10 / 10_000);
        zone.watermark = [min, min + delta, min + 2 * delta];
    }
    // sysctl_lowmem_reserve_ratio: DMA 256, DMA32 256, Normal 32.
    const RATIO: [u64; NR_ZONES] = [256, 256, 32];
    for i in 0..NR_ZONES {
        let mut sum = 0;
        for j in i + 1..NR_ZONES {
            sum += zones[j].managed_pages;
            zones[i].lowmem_reserve[j] = sum / RATIO[i];
        }
    }
}

/// Integer square root (`int_sqrt`), by Newton's method.
fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

/// Internal flags for the slow path (`gfp_to_alloc_flags`).
fn gfp_to_alloc_flags(gfp: Gfp, order: Order) -> AllocFlags {
    let mut flags = AllocFlags::empty();
    if gfp.contains(Gfp::HIGH) {
        flags |= AllocFlags::MIN_RESERVE;
    }
    if !gfp.allows_blocking() && !gfp.contains(Gfp::NOMEMALLOC) {
        flags |= AllocFlags::NON_BLOCK;
        if order > Order::ZERO {
            flags |= AllocFlags::HIGHATOMIC;
        }
    }
    if gfp.contains(Gfp::MEMALLOC) && !gfp.contains(Gfp::NOMEMALLOC) {
        flags |= AllocFlags::NO_WATERMARKS;
    }
    flags
}

/// See [`PageAlloc::buddyinfo`].
pub struct BuddyInfo<'a, P: Platform>(&'a PageAlloc<P>);

impl<P: Platform> fmt::Display for BuddyInfo<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for zone in self.0.zones.iter().filter(|z| z.is_populated()) {
            write!(f, "Node 0, zone {:>8} ", zone.kind.name())?;
            for counts in zone.free_blocks() {
                write!(f, "{:>6} ", counts.iter().sum::<u64>())?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// See [`PageAlloc::pagetypeinfo`].
pub struct PageTypeInfo<'a, P: Platform>(&'a PageAlloc<P>);

impl<P: Platform> fmt::Display for PageTypeInfo<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Free pages count per migrate type at order ")?;
        for o in 0..NR_PAGE_ORDERS {
            write!(f, "{o:>6} ")?;
        }
        writeln!(f)?;
        for zone in self.0.zones.iter().filter(|z| z.is_populated()) {
            let blocks = zone.free_blocks();
            for mt in MigrateType::ALL {
                write!(
                    f,
                    "Node    0, zone {:>8}, type {:>12} ",
                    zone.kind.name(),
                    mt.name()
                )?;
                for counts in &blocks {
                    write!(f, "{:>6} ", counts[mt as usize])?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

//! Property tests of the buddy allocator against a model, and a threaded
//! stress test that checks block contents.
//!
//! The model is the set of live allocations, a `BTreeMap` from head pfn to
//! order. Random sequences of up to 200 operations (allocate an order
//! 0..=10 under one of a few GFP masks, allocate until failure, free a
//! random live block, drain the per-CPU lists) run on a simulated 32 MiB
//! machine with three zones and an odd reserved range at the bottom, so
//! that the boot free lists start with blocks of every order; a second
//! geometry puts the zone boundaries off pageblock alignment. After every
//! step:
//!
//! - M1: live blocks never overlap; each is aligned to its order, lies in
//!   one zone, in a zone its GFP mask allows, and its head record is
//!   `Allocated` with its order and one reference.
//! - M2: [`PageAlloc::check`] holds (Z1..Z4: aligned, typed free blocks, no
//!   unmerged free buddies, counters equal to the lists).
//! - M3: in every zone, free pages + per-CPU pages + live pages = managed
//!   pages (P1, seen from outside).
//! - M4: an allocation that ignores watermarks (`MEMALLOC`, blocking) fails
//!   only when no zone it may use has a large enough block on an ordinary
//!   (non-highatomic) free list.
//! - M5, at the end: freeing every block and draining the per-CPU lists
//!   restores the boot free lists exactly (see below).
//!
//! Bad frees (double free, tail frame, wrong order, reserved frame, beyond
//! the memmap, order above the maximum) are refused with the matching
//! [`BadPageReason`], counted in [`PaStat::BadPage`], and change nothing.
//!
//! The stress test runs 1, 2, 4 and 8 threads, one per simulated CPU, each
//! allocating and freeing small blocks and stamping its id into them; a
//! stamp found changed on free, or found on a block being handed out, means
//! two owners at once.
//!
//! # What "restores the boot free lists" means
//!
//! Pageblock migratetypes are sticky, as in Linux: a fallback that claims a
//! pageblock retags it, and merging retags the buddy half, so after a run
//! the free memory is the same blocks but not always on the same
//! migratetype lists. And a highatomic pageblock does not merge with a
//! non-highatomic buddy (Z3), so an order-10 block whose halves differ that
//! way stays two order-9 blocks until the reserve is released. M5 therefore
//! compares each zone's free lists with the boot layout recomputed from the
//! pageblock types at the end ([`expected_free_blocks`]); when every
//! pageblock is still movable, that is exactly the boot snapshot.
//!
//! Two deterministic regression tests pin down bugs the properties found
//! (highatomic release without merging; a fallback claim reaching into the
//! neighbouring zone's frames).
//!
//! The one `unsafe` here is [`word`], the stress test's view of frame
//! contents through the simulated direct map.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::rand::XorShift64;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{
    AllocError, BadPageReason, MAX_PAGE_ORDER, MIGRATE_TYPES, MigrateType, NR_PAGE_ORDERS,
    NR_ZONES, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, PaStat, PageAlloc, Zone, ZoneLayout, gfp_zone,
};
use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::gfp::Gfp;
use crate::memmap::PageState;
use crate::platform::Platform;
use crate::sim::{self, SimPlatform};

/// Frames kept out at the bottom; odd, so the boot blocks are irregular.
const RESERVED: Range<Pfn> = Pfn::new(0)..Pfn::new(37);

/// A simulated machine's size and zones.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    nr_pages: usize,
    layout: ZoneLayout,
}

/// 32 MiB (small, so that sequences of 200 steps reach the watermarks): a
/// small DMA zone, a DMA32 zone, and Normal above, all populated.
const ALIGNED: Geometry = Geometry {
    nr_pages: 8192,
    layout: ZoneLayout {
        limits: [Pfn::new(2048), Pfn::new(6144), Pfn::new(u64::MAX)],
    },
};

/// The same with the zone boundaries and the end of memory off pageblock
/// alignment, so that pageblocks straddle zones.
const UNALIGNED: Geometry = Geometry {
    nr_pages: 8111,
    layout: ZoneLayout {
        limits: [Pfn::new(2000), Pfn::new(6100), Pfn::new(u64::MAX)],
    },
};

/// Free block counts of one zone, `[order][migratetype]`.
type FreeBlocks = [[u64; MIGRATE_TYPES]; NR_PAGE_ORDERS];

// `expected_free_blocks` splits a top-order block in two pageblocks at most.
const _: () = assert!(MAX_PAGE_ORDER == PAGEBLOCK_ORDER.get() + 1);

fn machine(geometry: Geometry, nr_cpus: usize) -> PageAlloc<SimPlatform> {
    sim::page_alloc(geometry.nr_pages, nr_cpus, RESERVED, geometry.layout)
}

fn snapshot(pa: &PageAlloc<SimPlatform>) -> [FreeBlocks; NR_ZONES] {
    pa.zones().each_ref().map(Zone::free_blocks)
}

fn per_order(blocks: &FreeBlocks) -> [u64; NR_PAGE_ORDERS] {
    blocks.map(|by_mt| by_mt.iter().sum())
}

/// The free lists of `zone` when all its memory is free and fully merged:
/// the usable frames cut into the largest aligned blocks (as at boot),
/// each on the list of its pageblock's type, except that a top-order block
/// whose halves differ in mergeability (one highatomic) stays two halves.
fn expected_free_blocks(zone: &Zone) -> FreeBlocks {
    let mut blocks = [[0; MIGRATE_TYPES]; NR_PAGE_ORDERS];
    let mut add = |pfn: Pfn, order: Order| {
        blocks[order.index()][zone.pageblock_migratetype(pfn) as usize] += 1
    };
    let lo = zone.start_pfn.max(RESERVED.end).as_u64();
    let hi = zone.end_pfn.as_u64();
    let mut pfn = lo;
    while pfn < hi {
        let align = pfn.trailing_zeros().min(MAX_PAGE_ORDER);
        let fit = 63 - (hi - pfn).leading_zeros();
        let order = Order::new(align.min(fit));
        let head = Pfn::new(pfn);
        let upper = head.add(PAGEBLOCK_NR_PAGES);
        let is_highatomic = |p| zone.pageblock_migratetype(p) == MigrateType::HighAtomic;
        if order > PAGEBLOCK_ORDER && is_highatomic(head) != is_highatomic(upper) {
            add(head, PAGEBLOCK_ORDER);
            add(upper, PAGEBLOCK_ORDER);
        } else {
            add(head, order);
        }
        pfn += order.nr_pages();
    }
    blocks
}

/// Every pageblock type of the zone, lowest first.
fn pageblock_types(zone: &Zone) -> Vec<MigrateType> {
    let first = zone.start_pfn.as_u64() & !(PAGEBLOCK_NR_PAGES - 1);
    (first..zone.end_pfn.as_u64())
        .step_by(PAGEBLOCK_NR_PAGES as usize)
        .map(|pfn| zone.pageblock_migratetype(Pfn::new(pfn)))
        .collect()
}

/// M5: with everything freed and drained, the free lists are the boot
/// layout (per the pageblock types now), and exactly the boot snapshot when
/// no pageblock changed type. Panics with the difference otherwise.
fn assert_restored(pa: &PageAlloc<SimPlatform>, boot: &[FreeBlocks; NR_ZONES]) {
    pa.check()
        .unwrap_or_else(|e| panic!("check() after teardown: {e}"));
    assert_eq!(
        pa.nr_pcp_pages(),
        0,
        "per-CPU pages left after drain_all_pages"
    );
    assert_eq!(
        pa.nr_free_pages(),
        pa.managed_pages(),
        "free pages after teardown"
    );
    for (zone, boot) in pa.zones().iter().zip(boot) {
        let now = zone.free_blocks();
        let types = pageblock_types(zone);
        assert_eq!(
            now,
            expected_free_blocks(zone),
            "zone {}: free blocks [order][mt] after teardown differ from the merged layout; pageblocks {types:?}",
            zone.kind.name()
        );
        if types.iter().all(|&mt| mt == MigrateType::Movable) {
            assert_eq!(
                &now,
                boot,
                "zone {}: free blocks differ from boot",
                zone.kind.name()
            );
        }
        if !types.contains(&MigrateType::HighAtomic) {
            assert_eq!(
                per_order(&now),
                per_order(boot),
                "zone {}: blocks per order differ from boot",
                zone.kind.name()
            );
        }
    }
}

/// The boot snapshot, checked against the model of the boot layout.
fn boot_snapshot(pa: &PageAlloc<SimPlatform>) -> [FreeBlocks; NR_ZONES] {
    let boot = snapshot(pa);
    for (zone, blocks) in pa.zones().iter().zip(&boot) {
        assert!(
            zone.is_populated(),
            "zone {} is empty: the layout should populate all three",
            zone.kind.name()
        );
        assert_eq!(
            *blocks,
            expected_free_blocks(zone),
            "boot free lists of zone {}",
            zone.kind.name()
        );
    }
    boot
}

/// The GFP masks the sequences draw from, all quiet on failure.
fn gfps() -> Vec<Gfp> {
    [
        Gfp::KERNEL,
        Gfp::HIGHUSER_MOVABLE,
        Gfp::KERNEL | Gfp::DMA32,
        Gfp::KERNEL | Gfp::DMA,
        Gfp::KERNEL | Gfp::RECLAIMABLE,
        Gfp::ATOMIC,
        Gfp::KERNEL | Gfp::MEMALLOC,
        Gfp::KERNEL | Gfp::DMA | Gfp::MEMALLOC,
    ]
    .map(|g| g | Gfp::NOWARN)
    .to_vec()
}

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Op {
    Alloc {
        order: Order,
        gfp: Gfp,
    },
    /// Allocate blocks like this until one fails: runs the zones down to
    /// their watermarks (or, with `MEMALLOC`, to nothing).
    Fill {
        order: Order,
        gfp: Gfp,
    },
    /// Free the live block at this index of the model (none: no-op).
    Free(Index),
    Drain,
}

fn order_strategy() -> impl Strategy<Value = Order> {
    // Mostly per-CPU orders, but every order often enough to exhaust zones.
    prop_oneof![3 => 0..=3u32, 2 => 0..=MAX_PAGE_ORDER].prop_map(Order::new)
}

/// Steps with `alloc_weight` : 4 : 1 : 1 odds of alloc, free, drain and
/// fill; the weight is drawn per sequence, so that some sequences stay
/// light and others keep the zones near their watermarks.
fn op_strategy(alloc_weight: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        alloc_weight => (order_strategy(), prop::sample::select(gfps())).prop_map(|(order, gfp)| Op::Alloc { order, gfp }),
        4 => any::<Index>().prop_map(Op::Free),
        1 => Just(Op::Drain),
        1 => (order_strategy(), prop::sample::select(gfps())).prop_map(|(order, gfp)| Op::Fill { order, gfp }),
    ]
}

/// A sequence of up to `max_len` steps, at a random memory pressure.
fn ops_strategy(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    (2..=16u32).prop_flat_map(move |w| prop::collection::vec(op_strategy(w), 0..max_len))
}

/// A block the model holds.
#[derive(Clone, Copy, Debug)]
struct Live {
    order: Order,
    gfp: Gfp,
}

/// The allocator under test and the model beside it.
struct Harness {
    pa: PageAlloc<SimPlatform>,
    boot: [FreeBlocks; NR_ZONES],
    /// Live blocks by head pfn (M1: disjoint).
    live: BTreeMap<Pfn, Live>,
    /// Bad frees done on purpose; `PaStat::BadPage` must equal it.
    nr_bad_frees: u64,
}

impl Harness {
    fn new(geometry: Geometry) -> Self {
        let pa = machine(geometry, 1);
        let boot = boot_snapshot(&pa);
        Self {
            pa,
            boot,
            live: BTreeMap::new(),
            nr_bad_frees: 0,
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Alloc { order, gfp } => {
                self.alloc(gfp, order)?;
            }
            Op::Fill { order, gfp } => while self.alloc(gfp, order)?.is_some() {},
            Op::Free(index) => {
                if !self.live.is_empty() {
                    let pfn = *self
                        .live
                        .keys()
                        .nth(index.index(self.live.len()))
                        .expect("index in range");
                    self.free(pfn)?;
                }
            }
            Op::Drain => self.pa.drain_all_pages(),
        }
        self.check()
    }

    /// Allocates and checks M1 and M4 for the new block.
    fn alloc(&mut self, gfp: Gfp, order: Order) -> Result<Option<Pfn>, TestCaseError> {
        let pfn = match self.pa.alloc_pages(gfp, order) {
            Ok(pfn) => pfn,
            Err(AllocError::NoMemory) => {
                // M4.
                if gfp.contains(Gfp::MEMALLOC) && gfp.allows_blocking() {
                    let highest = gfp_zone(gfp) as usize;
                    for zone in &self.pa.zones()[..=highest] {
                        let blocks = zone.free_blocks();
                        let found = (order.index()..NR_PAGE_ORDERS).find(|&o| {
                            MigrateType::PCP_TYPES
                                .iter()
                                .any(|&mt| blocks[o][mt as usize] > 0)
                        });
                        prop_assert!(
                            found.is_none(),
                            "MEMALLOC order-{} failed with an order-{} block free in zone {}",
                            order,
                            found.unwrap_or(0),
                            zone.kind.name()
                        );
                    }
                }
                return Ok(None);
            }
        };
        let nr = order.nr_pages();
        let end = pfn.as_u64() + nr;
        prop_assert!(
            pfn.is_aligned(order),
            "{pfn:?} is not aligned to order {order}"
        );
        let zones = self.pa.zones();
        let zone = zones.iter().find(|z| z.contains(pfn));
        let Some(zone) = zone else {
            return Err(TestCaseError::fail(format!("{pfn:?} is in no zone")));
        };
        prop_assert!(
            end <= zone.end_pfn.as_u64(),
            "order-{order} {pfn:?} crosses the end of zone {}",
            zone.kind.name()
        );
        prop_assert!(
            zone.kind <= gfp_zone(gfp),
            "{gfp:?} allows up to zone {} but got {pfn:?} in zone {}",
            gfp_zone(gfp).name(),
            zone.kind.name()
        );
        prop_assert!(pfn >= RESERVED.end, "{pfn:?} is reserved");
        if let Some((&prev, l)) = self.live.range(..=pfn).next_back() {
            prop_assert!(
                prev.as_u64() + l.order.nr_pages() <= pfn.as_u64(),
                "order-{order} {pfn:?} overlaps live order-{} {prev:?}",
                l.order
            );
        }
        if let Some((&next, l)) = self.live.range(pfn..).next() {
            prop_assert!(
                end <= next.as_u64(),
                "order-{order} {pfn:?} overlaps live order-{} {next:?}",
                l.order
            );
        }
        self.live.insert(pfn, Live { order, gfp });
        Ok(Some(pfn))
    }

    fn free(&mut self, pfn: Pfn) -> Result<(), TestCaseError> {
        let live = self
            .live
            .remove(&pfn)
            .expect("freeing a block the model holds");
        if let Err(bad) = self.pa.free_pages(pfn, live.order) {
            return Err(TestCaseError::fail(format!(
                "good free of {pfn:?} order {} ({:?}) refused: {bad:?}",
                live.order, live.gfp
            )));
        }
        Ok(())
    }

    /// M1 (records), M2, M3.
    fn check(&self) -> Result<(), TestCaseError> {
        if let Err(e) = self.pa.check() {
            return Err(TestCaseError::fail(format!("check(): {e}")));
        }
        let mut live_pages = [0u64; NR_ZONES];
        for (&pfn, l) in &self.live {
            let page = self.pa.memmap().page(pfn);
            prop_assert_eq!(page.state(), PageState::Allocated, "live {:?}", pfn);
            prop_assert_eq!(page.order(), l.order, "live {:?}", pfn);
            prop_assert_eq!(page.refcount(), 1, "live {:?}", pfn);
            live_pages[page.zone_idx()] += l.order.nr_pages();
        }
        for (zone, live) in self.pa.zones().iter().zip(live_pages) {
            prop_assert_eq!(
                zone.nr_free_pages() + zone.nr_pcp_pages() + live,
                zone.managed_pages,
                "zone {}: free {} + pcp {} + live {} != managed",
                zone.kind.name(),
                zone.nr_free_pages(),
                zone.nr_pcp_pages(),
                live
            );
        }
        prop_assert_eq!(
            self.pa.stats().get(PaStat::BadPage),
            self.nr_bad_frees,
            "unexpected bad pages"
        );
        Ok(())
    }

    /// Frees every live block, drains, and checks M5.
    fn teardown(mut self) -> Result<(), TestCaseError> {
        while let Some((&pfn, _)) = self.live.first_key_value() {
            self.free(pfn)?;
        }
        self.pa.drain_all_pages();
        self.check()?;
        assert_restored(&self.pa, &self.boot);
        Ok(())
    }
}

/// A deliberate bad free, done on a fresh victim block.
#[derive(Clone, Debug)]
enum BadFree {
    /// Free a block twice.
    Double { order: Order },
    /// Free a tail frame (offset picked by the index) of a block.
    Tail {
        order: Order,
        offset: Index,
        pass: Order,
    },
    /// Free a block with another order than it was allocated with.
    WrongOrder { order: Order, pass: Order },
    /// Free a reserved frame.
    Reserved { pfn: u64, pass: Order },
    /// Free a frame the memmap does not describe.
    Outside { beyond: u64, pass: Order },
}

fn bad_free_strategy() -> impl Strategy<Value = BadFree> {
    let any_order = (0..=MAX_PAGE_ORDER).prop_map(Order::new);
    prop_oneof![
        order_strategy().prop_map(|order| BadFree::Double { order }),
        (
            (1..=MAX_PAGE_ORDER).prop_map(Order::new),
            any::<Index>(),
            any_order.clone()
        )
            .prop_map(|(order, offset, pass)| BadFree::Tail {
                order,
                offset,
                pass
            }),
        (order_strategy(), any_order.clone())
            .prop_map(|(order, pass)| BadFree::WrongOrder { order, pass }),
        (
            RESERVED.start.as_u64()..RESERVED.end.as_u64(),
            any_order.clone()
        )
            .prop_map(|(pfn, pass)| BadFree::Reserved { pfn, pass }),
        (0..1u64 << 20, any_order).prop_map(|(beyond, pass)| BadFree::Outside { beyond, pass }),
    ]
}

/// What a bad free must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Accounting {
    nr_free: u64,
    nr_pcp: u64,
    blocks: [FreeBlocks; NR_ZONES],
}

impl Harness {
    fn accounting(&self) -> Accounting {
        Accounting {
            nr_free: self.pa.nr_free_pages(),
            nr_pcp: self.pa.nr_pcp_pages(),
            blocks: snapshot(&self.pa),
        }
    }

    /// A victim for a bad free: a fresh block of `order` (None if memory
    /// is exhausted even below the watermarks).
    fn victim(&mut self, order: Order) -> Result<Option<Pfn>, TestCaseError> {
        self.alloc(Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOWARN, order)
    }

    /// Does the bad free and checks that it is refused for `reason` and
    /// leaves everything as it was.
    fn bad_free(&mut self, bad: &BadFree) -> Result<(), TestCaseError> {
        let (pfn, pass, reason) = match *bad {
            BadFree::Double { order } => {
                let Some(pfn) = self.victim(order)? else {
                    return Ok(());
                };
                self.free(pfn)?;
                let found = self.pa.memmap().page(pfn).state();
                prop_assert_ne!(
                    found,
                    PageState::Allocated,
                    "freed {:?} still allocated",
                    pfn
                );
                (pfn, order, BadPageReason::NotAllocated(found))
            }
            BadFree::Tail {
                order,
                offset,
                pass,
            } => {
                let Some(head) = self.victim(order)? else {
                    return Ok(());
                };
                let tail = head.add(1 + offset.index(order.nr_pages() as usize - 1) as u64);
                (tail, pass, BadPageReason::NotAllocated(PageState::None))
            }
            BadFree::WrongOrder { order, pass } => {
                let Some(pfn) = self.victim(order)? else {
                    return Ok(());
                };
                let pass = if pass == order {
                    Order::new((pass.get() + 1) % (MAX_PAGE_ORDER + 1))
                } else {
                    pass
                };
                (pfn, pass, BadPageReason::OrderMismatch { allocated: order })
            }
            BadFree::Reserved { pfn, pass } => (Pfn::new(pfn), pass, BadPageReason::Reserved),
            BadFree::Outside { beyond, pass } => (
                Pfn::new(self.pa.memmap().len() as u64 + beyond),
                pass,
                BadPageReason::OutsideMemmap,
            ),
        };
        self.check()?;
        let before = self.accounting();
        let result = self.pa.free_pages(pfn, pass);
        self.nr_bad_frees += 1;
        let Err(err) = result else {
            return Err(TestCaseError::fail(format!(
                "{bad:?}: free_pages({pfn:?}, {pass}) succeeded"
            )));
        };
        prop_assert_eq!(err.reason, reason, "{:?}", bad);
        prop_assert_eq!(
            (err.pfn, err.order),
            (pfn, pass),
            "{:?}: BadPage names the wrong block",
            bad
        );
        prop_assert_eq!(
            &self.accounting(),
            &before,
            "{:?} changed the free lists",
            bad
        );
        self.check()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// M1..M5 over random sequences of alloc, free, drain and fill.
    #[test]
    fn random_sequences_keep_invariants(ops in ops_strategy(200)) {
        run_sequence(ALIGNED, &ops)?;
    }

    /// The same with zone boundaries off pageblock alignment.
    // Ignored until the straddling-pageblock claim is fixed: see
    // `claim_of_a_pageblock_straddling_zones_stays_in_its_zone`.
    #[test]
    fn random_sequences_keep_invariants_unaligned_zones(ops in ops_strategy(200)) {
        run_sequence(UNALIGNED, &ops)?;
    }

    /// Bad frees in the middle of a random sequence are refused for the
    /// right reason, counted, and change nothing; the teardown still
    /// restores the boot free lists.
    #[test]
    fn bad_frees_are_refused_and_change_nothing(
        ops in ops_strategy(100),
        bads in prop::collection::vec(bad_free_strategy(), 1..8),
    ) {
        let mut h = Harness::new(ALIGNED);
        for op in &ops {
            h.step(op)?;
        }
        for bad in &bads {
            h.bad_free(bad)?;
        }
        h.teardown()?;
    }
}

fn run_sequence(geometry: Geometry, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(geometry);
    for op in ops {
        h.step(op)?;
    }
    h.teardown()
}

/// Regression: releasing a highatomic reserve whose pageblock is wholly
/// free must leave it merged with its free buddy pageblock (Z3), so that
/// the retried allocation finds the order-10 block.
// Ignored until `unreserve_highatomic_pageblock` merges a wholly free
// pageblock with its buddy (fails today: check() reports Z3 broken).
#[test]
fn unreserved_highatomic_pageblock_merges_with_its_buddy() -> Result<(), TestCaseError> {
    let mut h = Harness::new(ALIGNED);
    let dma = Gfp::KERNEL | Gfp::DMA | Gfp::NOWARN;
    // Empty ZONE_DMA, then free one order-1 block (0x600, the only one)
    // and 20 scattered single frames: 22 free pages, below the low
    // watermark (55) and above what ATOMIC may dip to (min 44, reduced to 17).
    while h.alloc(dma | Gfp::MEMALLOC, Order::ZERO)?.is_some() {}
    prop_assert_eq!(
        h.pa.zones()[0].nr_free_pages() + h.pa.zones()[0].nr_pcp_pages(),
        0
    );
    for pfn in [0x600, 0x601]
        .into_iter()
        .chain((0..20).map(|i| 0x640 + 2 * i))
    {
        h.free(Pfn::new(pfn))?;
    }
    h.pa.drain_all_pages();
    // The slow path takes 0x600 and reserves its pageblock as highatomic.
    let atomic = h.alloc(Gfp::ATOMIC | Gfp::DMA | Gfp::NOWARN, Order::new(1))?;
    prop_assert_eq!(atomic, Some(Pfn::new(0x600)));
    prop_assert_eq!(h.pa.stats().get(PaStat::HighatomicReserve), 1);
    // Free everything: 0x400 (unmovable) and 0x600 (highatomic) are free
    // order-9 buddies kept apart by the reserve, as Z3 allows.
    while let Some((&pfn, _)) = h.live.first_key_value() {
        h.free(pfn)?;
    }
    h.pa.drain_all_pages();
    h.check()?;
    // No order-10 block: the slow path releases the reserve and retries.
    h.alloc(dma, Order::new(10))?;
    prop_assert_eq!(h.pa.stats().get(PaStat::HighatomicUnreserve), 1);
    h.check()?;
    h.teardown()
}

/// Regression: a fallback that claims a pageblock straddling two zones
/// must not touch the free blocks of the other zone.
// Ignored until claims skip pageblocks that straddle a zone boundary (as
// Linux's `prep_move_freepages_block` does); fails today on the debug
// assertion in `PageList::remove`, and corrupts the lists in release.
#[test]
fn claim_of_a_pageblock_straddling_zones_stays_in_its_zone() {
    let pa = machine(UNALIGNED, 1);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    // ZONE_NORMAL starts at 0x17d4, inside the pageblock 0x1600..0x1800
    // whose lower part is ZONE_DMA32 (with free blocks at 0x1600...).
    // Take NORMAL's large movable blocks, leaving small ones such as
    // 0x17e0 (order 5) in the straddling pageblock.
    for order in [10, 9, 8, 7, 5].map(Order::new) {
        pa.alloc_pages(Gfp::HIGHUSER_MOVABLE, order)
            .expect("NORMAL has room");
    }
    // An unmovable request claims the largest movable block left, in the
    // straddling pageblock.
    pa.alloc_pages(Gfp::KERNEL, Order::ZERO)
        .expect("NORMAL has room");
    pa.check().unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------
// Threads: object contents checked.

/// Operations per thread.
const STRESS_OPS: usize = 20_000;
/// Most blocks a thread holds at once.
const STRESS_MAX_LIVE: usize = 64;
/// What a page-start word or block-end word holds once its owner freed it.
const POISON: u64 = 0xF4EE_F4EE_F4EE_F4EE;
/// What the simulated machine fills freed frames with, after our stamp.
const SIM_POISON: u64 = u64::from_ne_bytes([sim::PAGE_POISON; 8]);

/// The stamp `cpu` writes on page `i` of its block at `pfn`.
fn stamp(cpu: u32, pfn: Pfn, i: u64) -> u64 {
    0xA110_C000_0000_0000 | (u64::from(cpu) << 40) | (pfn.as_u64() + i)
}

/// The word at byte `offset` of the frames from `pfn` on, as an atomic, so
/// that even two owners of one block (the bug this test hunts) only race
/// on atomics.
fn word(pa: &PageAlloc<SimPlatform>, pfn: Pfn, offset: u64) -> &AtomicU64 {
    assert!(offset + 8 <= PAGE_SIZE << MAX_PAGE_ORDER && offset.is_multiple_of(8));
    let va = pa
        .platform()
        .phys_to_virt(pfn.phys_addr())
        .wrapping_add(offset as usize);
    assert!(
        va.cast::<u64>().is_aligned(),
        "simulated RAM is not 8-byte aligned"
    );
    // SAFETY: 1. `phys_to_virt` maps every frame of the simulated RAM, and
    // callers keep `offset + 8` inside the block at `pfn`, so `va` is valid
    // for 8 bytes for as long as the machine lives, which `pa` (holding the
    // platform's `Arc`) outlives the returned borrow. 2. `va` is 8-byte
    // aligned (asserted above). 3. Every access to these words goes through
    // this function, hence is atomic; the allocator writes frame contents
    // only for `Gfp::ZERO`, which the stress test never passes.
    unsafe { AtomicU64::from_ptr(va.cast::<u64>()) }
}

/// On hand-out: the block carries no stamp of a live owner, then gets ours.
fn claim_block(pa: &PageAlloc<SimPlatform>, cpu: u32, pfn: Pfn, order: Order) {
    let nr = order.nr_pages();
    let last = (order.bytes()) - 8;
    for i in 0..nr {
        let old = word(pa, pfn, i * PAGE_SIZE).load(Relaxed);
        assert!(
            old == 0 || old == POISON || old == SIM_POISON,
            "cpu {cpu}: order-{order} {pfn:?} handed out while page {i} holds live stamp {old:#x}"
        );
    }
    let old = word(pa, pfn, last).load(Relaxed);
    assert!(
        old == 0 || old == POISON || old == SIM_POISON,
        "cpu {cpu}: order-{order} {pfn:?} ends in live stamp {old:#x}"
    );
    for i in 0..nr {
        word(pa, pfn, i * PAGE_SIZE).store(stamp(cpu, pfn, i), Relaxed);
    }
    word(pa, pfn, last).store(!stamp(cpu, pfn, 0), Relaxed);
}

/// Before a free: our stamps are intact; then poison them.
fn release_block(pa: &PageAlloc<SimPlatform>, cpu: u32, pfn: Pfn, order: Order) {
    let nr = order.nr_pages();
    let last = (order.bytes()) - 8;
    for i in 0..nr {
        let w = word(pa, pfn, i * PAGE_SIZE).swap(POISON, Relaxed);
        assert_eq!(
            w,
            stamp(cpu, pfn, i),
            "cpu {cpu}: order-{order} {pfn:?} page {i} overwritten: double allocation"
        );
    }
    let w = word(pa, pfn, last).swap(POISON, Relaxed);
    assert_eq!(
        w,
        !stamp(cpu, pfn, 0),
        "cpu {cpu}: order-{order} {pfn:?} end overwritten: double allocation"
    );
}

fn stress_thread(pa: &PageAlloc<SimPlatform>, cpu: u32) {
    const ORDERS: [u32; 10] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 4];
    let gfps = [
        Gfp::KERNEL,
        Gfp::HIGHUSER_MOVABLE,
        Gfp::KERNEL | Gfp::DMA32,
        Gfp::KERNEL | Gfp::RECLAIMABLE,
        Gfp::KERNEL | Gfp::DMA,
    ]
    .map(|g| g | Gfp::NOWARN);
    sim::set_cpu(cpu);
    let mut rng = XorShift64::new(
        0x9E37_79B9_7F4A_7C15 ^ (u64::from(cpu) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    let mut live: Vec<(Pfn, Order)> = Vec::with_capacity(STRESS_MAX_LIVE);
    for i in 0..STRESS_OPS {
        let alloc = live.is_empty() || (live.len() < STRESS_MAX_LIVE && rng.next_u64() & 1 == 0);
        if alloc {
            let order = Order::new(ORDERS[rng.below(ORDERS.len())]);
            let gfp = gfps[rng.below(gfps.len())];
            match pa.alloc_pages(gfp, order) {
                Ok(pfn) => {
                    assert!(
                        pfn.is_aligned(order),
                        "{pfn:?} not aligned to order {order}"
                    );
                    let page = pa.memmap().page(pfn);
                    assert_eq!(
                        (page.state(), page.order()),
                        (PageState::Allocated, order),
                        "{pfn:?}"
                    );
                    claim_block(pa, cpu, pfn, order);
                    live.push((pfn, order));
                }
                Err(AllocError::NoMemory) => {}
            }
        } else {
            let (pfn, order) = live.swap_remove(rng.below(live.len()));
            release_block(pa, cpu, pfn, order);
            pa.free_pages(pfn, order).expect("free of a live block");
        }
        if i % 4096 == 4095 {
            pa.drain_all_pages();
        }
        if i % 1024 == 0 {
            pa.check()
                .unwrap_or_else(|e| panic!("cpu {cpu}: check() during the run: {e}"));
        }
    }
    for (pfn, order) in live {
        release_block(pa, cpu, pfn, order);
        pa.free_pages(pfn, order).expect("free of a live block");
    }
}

/// `nr_cpus` threads, one per CPU, then teardown and M5.
fn stress(nr_cpus: u32) {
    let pa = machine(ALIGNED, nr_cpus as usize);
    let boot = boot_snapshot(&pa);
    std::thread::scope(|s| {
        for cpu in 0..nr_cpus {
            let pa = &pa;
            s.spawn(move || stress_thread(pa, cpu));
        }
    });
    pa.drain_all_pages();
    assert_eq!(pa.stats().get(PaStat::BadPage), 0);
    assert!(
        pa.stats().get(PaStat::AllocPcp) > 0,
        "no allocation took the per-CPU path"
    );
    assert_restored(&pa, &boot);
}

#[test]
fn stress_1_cpu() {
    stress(1);
}

#[test]
fn stress_2_cpus() {
    stress(2);
}

#[test]
fn stress_4_cpus() {
    stress(4);
}

#[test]
fn stress_8_cpus() {
    stress(8);
}

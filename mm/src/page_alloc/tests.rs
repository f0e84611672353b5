//! Unit tests of the buddy allocator: the reference scenarios.

use super::*;
use crate::addr::Order;
use crate::sim;
use alloc::vec::Vec;

/// One zone (DMA32) of `nr_pages`, nothing reserved, one CPU.
fn one_zone(nr_pages: usize) -> PageAlloc<sim::SimPlatform> {
    let layout = ZoneLayout {
        limits: [Pfn::new(0), Pfn::new(u64::MAX), Pfn::new(u64::MAX)],
    };
    sim::page_alloc(nr_pages, 1, Pfn::new(0)..Pfn::new(0), layout)
}

fn blocks(pa: &PageAlloc<sim::SimPlatform>, zone: ZoneType) -> [u64; NR_PAGE_ORDERS] {
    pa.zones()[zone as usize]
        .free_blocks()
        .map(|per_mt| per_mt.iter().sum())
}

/// Bypasses the per-CPU lists, to look at the buddy lists themselves.
fn alloc_buddy(pa: &PageAlloc<sim::SimPlatform>, order: Order, mt: MigrateType) -> Pfn {
    let zone = &pa.zones()[ZoneType::Dma32 as usize];
    zone.rmqueue_buddy(
        pa.platform(),
        pa.memmap(),
        pa.stats(),
        order,
        mt,
        AllocFlags::empty(),
    )
    .inspect(|&pfn| pa.prep_new_page(zone, pfn, order, Gfp::KERNEL, mt, Location::caller()))
    .expect("memory")
}

#[test]
fn split_chain_and_merge_back() {
    let pa = one_zone(1024);
    assert_eq!(
        blocks(&pa, ZoneType::Dma32),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    let pfn = alloc_buddy(&pa, Order::new(0), MigrateType::Movable);
    assert_eq!(pfn, Pfn::new(0));
    assert_eq!(
        blocks(&pa, ZoneType::Dma32),
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    );
    // The free halves sit at pfns 1, 2, 4, ..., 512.
    for order in (0..MAX_PAGE_ORDER).map(Order::new) {
        let page = pa.memmap().page(Pfn::new(order.nr_pages()));
        assert_eq!((page.state(), page.order()), (PageState::Buddy, order));
    }
    pa.check().unwrap();
    // Through the pcp, then drained: merges all the way back.
    pa.free_pages(pfn, Order::ZERO).unwrap();
    pa.drain_all_pages();
    assert_eq!(
        blocks(&pa, ZoneType::Dma32),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    pa.check().unwrap();
}

#[test]
fn free_order_does_not_matter() {
    let pa = one_zone(1024);
    let a = alloc_buddy(&pa, Order::new(0), MigrateType::Movable);
    let b = alloc_buddy(&pa, Order::new(0), MigrateType::Movable);
    let c = alloc_buddy(&pa, Order::new(1), MigrateType::Movable);
    assert_eq!((a, b, c), (Pfn::new(0), Pfn::new(1), Pfn::new(2)));
    pa.free_pages(b, Order::ZERO).unwrap();
    pa.free_pages(c, Order::new(1)).unwrap();
    pa.free_pages(a, Order::ZERO).unwrap();
    pa.drain_all_pages();
    assert_eq!(blocks(&pa, ZoneType::Dma32)[10], 1);
    pa.check().unwrap();
}

#[test]
fn no_merge_across_a_zone_boundary() {
    // Two zones meeting at pfn 1024: frames 1023 and 1024 are never buddies
    // at order 0 anyway, so use a boundary inside an order-10 block: 512.
    let layout = ZoneLayout {
        limits: [Pfn::new(512), Pfn::new(u64::MAX), Pfn::new(u64::MAX)],
    };
    let pa = sim::page_alloc(1024, 1, Pfn::new(0)..Pfn::new(0), layout);
    // Each zone holds one order-9 block; they never merge into order 10.
    assert_eq!(blocks(&pa, ZoneType::Dma)[9], 1);
    assert_eq!(blocks(&pa, ZoneType::Dma32)[9], 1);
    assert_eq!(
        blocks(&pa, ZoneType::Dma)[10] + blocks(&pa, ZoneType::Dma32)[10],
        0
    );
    pa.check().unwrap();
}

#[test]
fn boot_free_uses_largest_aligned_blocks() {
    // 37 reserved frames at the bottom: the rest is freed in aligned blocks.
    let layout = ZoneLayout {
        limits: [Pfn::new(0), Pfn::new(u64::MAX), Pfn::new(u64::MAX)],
    };
    let pa = sim::page_alloc(2048, 1, Pfn::new(0)..Pfn::new(37), layout);
    assert_eq!(pa.managed_pages(), 2048 - 37);
    assert_eq!(pa.nr_free_pages(), 2048 - 37);
    // 37 = 0b100101: blocks at 37 (o0), 38 (o1), 40 (o3), 48 (o4), 64 (o6),
    // 128 (o7), 256 (o8), 512 (o9), 1024 (o10).
    assert_eq!(
        blocks(&pa, ZoneType::Dma32),
        [1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1]
    );
    assert!(pa.memmap().page(Pfn::new(36)).is_reserved());
    pa.check().unwrap();
}

#[test]
fn buddy_math() {
    let buddy = |pfn: u64, order: u32| pfn ^ Order::new(order).nr_pages();
    assert_eq!(buddy(5, 0), 4);
    assert_eq!(buddy(4, 1), 6);
    assert_eq!(buddy(0, 9), 512);
    assert_eq!(6 & buddy(6, 1), 4);
}

#[test]
fn orders_are_checked_where_they_are_made() {
    assert_eq!(Order::try_new(MAX_PAGE_ORDER), Some(Order::MAX));
    assert_eq!(Order::try_new(MAX_PAGE_ORDER + 1), None);
    assert_eq!(Order::MAX.up(), None);
    assert_eq!(Order::ZERO.down(), None);
    assert_eq!(Order::new(3).nr_pages(), 8);
    assert_eq!(Order::new(3).bytes(), 8 * PAGE_SIZE);
    // get_order(): the smallest block that holds the bytes.
    assert_eq!(Order::for_bytes(0), Some(Order::ZERO));
    assert_eq!(Order::for_bytes(PAGE_SIZE), Some(Order::ZERO));
    assert_eq!(Order::for_bytes(PAGE_SIZE + 1), Some(Order::new(1)));
    assert_eq!(Order::for_bytes(Order::MAX.bytes()), Some(Order::MAX));
    assert_eq!(Order::for_bytes(Order::MAX.bytes() + 1), None);
    assert_eq!(Order::ZERO.up_to_max().count(), NR_PAGE_ORDERS);
}

#[test]
fn unmovable_claims_a_whole_free_pageblock() {
    let pa = one_zone(1024);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    // Everything starts movable; an unmovable order-0 request claims a
    // whole pageblock (the order-10 block covers two: both are retagged).
    let pfn = alloc_buddy(&pa, Order::new(0), MigrateType::Unmovable);
    let zone = &pa.zones()[ZoneType::Dma32 as usize];
    assert_eq!(zone.pageblock_migratetype(pfn), MigrateType::Unmovable);
    assert_eq!(pa.stats().get(PaStat::FallbackClaim), 1);
    assert_eq!(zone.nr_free_by_mt(MigrateType::Unmovable), 1023);
    assert_eq!(zone.nr_free_by_mt(MigrateType::Movable), 0);
    pa.check().unwrap();
}

#[test]
fn partial_pageblock_is_claimed_only_when_half_free() {
    let pa = one_zone(1024);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    // Fill the first pageblock (512 pages) with movable order-0 pages.
    let movable: Vec<Pfn> = (0..512)
        .map(|_| alloc_buddy(&pa, Order::new(0), MigrateType::Movable))
        .collect();
    assert!(movable.iter().all(|p| p.as_u64() < 512));
    // Take the second pageblock out of play with one unmovable order-9
    // allocation, so that only the first pageblock can have free pages.
    let big = alloc_buddy(&pa, Order::new(9), MigrateType::Unmovable);
    assert_eq!(big, Pfn::new(512));
    let zone = &pa.zones()[ZoneType::Dma32 as usize];
    // Free 300 movable pages back: 300 >= 256 free -> an unmovable request
    // claims the pageblock.
    for &p in &movable[..300] {
        pa.free_pages(p, Order::ZERO).unwrap();
    }
    pa.drain_all_pages();
    let got = alloc_buddy(&pa, Order::new(0), MigrateType::Unmovable);
    assert!(got.as_u64() < 512);
    assert_eq!(zone.pageblock_migratetype(got), MigrateType::Unmovable);
    pa.check().unwrap();
}

#[test]
fn movable_steals_without_claiming_a_mostly_used_block() {
    let pa = one_zone(512);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    // One pageblock, made unmovable by a claim, then mostly used.
    let used: Vec<Pfn> = (0..400)
        .map(|_| alloc_buddy(&pa, Order::new(0), MigrateType::Unmovable))
        .collect();
    let zone = &pa.zones()[ZoneType::Dma32 as usize];
    assert_eq!(
        zone.pageblock_migratetype(Pfn::new(0)),
        MigrateType::Unmovable
    );
    // A movable order-0 request: 112 free, 0 movable in use -> no claim
    // (small movable requests never try), one page stolen, block stays.
    let claims = pa.stats().get(PaStat::FallbackClaim);
    let got = alloc_buddy(&pa, Order::new(0), MigrateType::Movable);
    assert_eq!(pa.stats().get(PaStat::FallbackClaim), claims);
    assert_eq!(pa.stats().get(PaStat::FallbackSteal), 1);
    assert_eq!(zone.pageblock_migratetype(got), MigrateType::Unmovable);
    assert_eq!(zone.nr_free_by_mt(MigrateType::Unmovable), 111);
    drop(used);
    pa.check().unwrap();
}

#[test]
fn zone_limits_hold() {
    let layout = ZoneLayout {
        limits: [Pfn::new(1024), Pfn::new(4096), Pfn::new(u64::MAX)],
    };
    let pa = sim::page_alloc(8192, 1, Pfn::new(0)..Pfn::new(0), layout);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    let mut dma = Vec::new();
    while let Ok(pfn) = pa.alloc_pages(Gfp::KERNEL | Gfp::DMA | Gfp::NOWARN, Order::ZERO) {
        assert!(pfn.as_u64() < 1024, "DMA allocation at {pfn:?}");
        dma.push(pfn);
    }
    // The DMA zone ran dry down to its min watermark, and nothing else was used.
    let z = &pa.zones()[ZoneType::Dma as usize];
    assert!(z.nr_free_pages() <= z.watermark[Watermark::Min as usize] + 1);
    for _ in 0..100 {
        let pfn = pa
            .alloc_pages(Gfp::KERNEL | Gfp::DMA32, Order::new(2))
            .unwrap();
        assert!(pfn.as_u64() < 4096 && pfn.is_aligned(Order::new(2)));
    }
    // Normal allocations prefer the Normal zone.
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    assert!(pfn.as_u64() >= 4096);
}

#[test]
fn lower_zones_are_protected_by_lowmem_reserve() {
    let layout = ZoneLayout {
        limits: [Pfn::new(1024), Pfn::new(2048), Pfn::new(u64::MAX)],
    };
    let pa = sim::page_alloc(1 << 16, 1, Pfn::new(0)..Pfn::new(0), layout);
    let dma = &pa.zones()[ZoneType::Dma as usize];
    // DMA keeps (DMA32 + Normal managed) / 256 pages from Normal requests.
    assert_eq!(
        dma.lowmem_reserve[ZoneType::Normal as usize],
        (1024 + 63488) / 256
    );
    assert_eq!(dma.lowmem_reserve[ZoneType::Dma32 as usize], 1024 / 256);
}

#[test]
fn memalloc_drains_everything_and_counts_come_back() {
    let pa = one_zone(4096);
    let before = blocks(&pa, ZoneType::Dma32);
    let mut got = Vec::new();
    while let Ok(pfn) = pa.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOWARN, Order::ZERO) {
        got.push(pfn);
    }
    assert_eq!(got.len(), 4096);
    assert_eq!(pa.nr_free_pages() + pa.nr_pcp_pages(), 0);
    // Without MEMALLOC the watermarks stop ordinary requests well before.
    for pfn in got {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
    pa.drain_all_pages();
    assert_eq!(blocks(&pa, ZoneType::Dma32), before);
    pa.check().unwrap();
}

#[test]
fn watermarks_follow_min_free_kbytes() {
    // 262144 pages = 1 GiB: min_free_kbytes = sqrt(1 GiB in kB * 16) = 4096.
    let pa = one_zone(1 << 18);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    let z = &pa.zones()[ZoneType::Dma32 as usize];
    assert_eq!(z.watermark[Watermark::Min as usize], 1024);
    // delta = max(1024 / 4, 262144 * 10 / 10000) = 262.
    assert_eq!(z.watermark[Watermark::Low as usize], 1024 + 262);
    assert_eq!(z.watermark[Watermark::High as usize], 1024 + 524);
    let mut n = 0;
    while pa
        .alloc_pages(Gfp::KERNEL | Gfp::NOWARN, Order::ZERO)
        .is_ok()
    {
        n += 1;
    }
    // Ordinary requests stop at the min watermark; atomic ones go lower.
    assert!(
        pa.nr_free_pages() <= 1024 + 1,
        "{} free",
        pa.nr_free_pages()
    );
    assert!(
        pa.alloc_pages(Gfp::ATOMIC | Gfp::NOWARN, Order::ZERO)
            .is_ok()
    );
    assert!(n > (1 << 18) - 1100);
}

#[test]
fn pcp_refills_by_batch_and_drains_past_high() {
    let pa = one_zone(16384);
    let z = &pa.zones()[ZoneType::Dma32 as usize];
    assert_eq!(z.pcp_batch, 3);
    let a = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PcpRefill), 1);
    assert_eq!(pa.nr_pcp_pages(), 2);
    let b = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PcpRefill), 1);
    assert_eq!(pa.stats().get(PaStat::AllocPcp), 2);
    pa.free_pages(a, Order::ZERO).unwrap();
    pa.free_pages(b, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::FreePcp), 2);
    // Fill the list to `high`: exactly one batch goes back per crossing.
    let high = z.pcp_high as usize;
    let many: Vec<Pfn> = (0..high + 8)
        .map(|_| pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap())
        .collect();
    let drains = pa.stats().get(PaStat::PcpDrain);
    for pfn in many {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
    assert!(pa.stats().get(PaStat::PcpDrain) > drains);
    assert!(pa.nr_pcp_pages() < high as u64);
    pa.check().unwrap();
}

#[test]
fn busy_pcp_lock_falls_back_to_the_zone() {
    // An "interrupt" on a CPU that holds its pcp lock must not deadlock.
    let pa = one_zone(1024);
    let z = &pa.zones()[ZoneType::Dma32 as usize];
    let held = z.pcp[0].lock();
    let pfn = pa.alloc_pages(Gfp::ATOMIC, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PcpTrylockFail), 1);
    pa.free_pages(pfn, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PcpTrylockFail), 2);
    assert_eq!(pa.stats().get(PaStat::FreeZone), 1);
    drop(held);
    pa.check().unwrap();
}

#[test]
fn bad_frees_are_reported_and_refused() {
    let pa = one_zone(1024);
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::new(2)).unwrap();
    let free_before = pa.nr_free_pages() + pa.nr_pcp_pages();
    let reason = |r: Result<(), BadPage>| r.unwrap_err().reason;
    assert_eq!(
        reason(pa.free_pages(pfn, Order::new(1))),
        BadPageReason::OrderMismatch {
            allocated: Order::new(2)
        }
    );
    assert_eq!(
        reason(pa.free_pages(pfn.add(1), Order::ZERO)),
        BadPageReason::NotAllocated(PageState::None)
    );
    assert_eq!(
        reason(pa.free_pages(Pfn::new(5000), Order::ZERO)),
        BadPageReason::OutsideMemmap
    );
    pa.free_pages(pfn, Order::new(2)).unwrap();
    let err = pa.free_pages(pfn, Order::new(2)).unwrap_err();
    assert_eq!(err.reason, BadPageReason::NotAllocated(PageState::Pcp));
    assert!(err.caller.file().ends_with("tests.rs"));
    assert_eq!(pa.stats().get(PaStat::BadPage), 4);
    assert_eq!(pa.nr_free_pages() + pa.nr_pcp_pages(), free_before + 4);
    pa.check().unwrap();
}

#[test]
fn reserved_frames_cannot_be_freed() {
    let layout = ZoneLayout {
        limits: [Pfn::new(0), Pfn::new(u64::MAX), Pfn::new(u64::MAX)],
    };
    let pa = sim::page_alloc(1024, 1, Pfn::new(0)..Pfn::new(16), layout);
    assert_eq!(
        pa.free_pages(Pfn::new(3), Order::ZERO).unwrap_err().reason,
        BadPageReason::Reserved
    );
}

#[test]
fn extra_references_delay_the_free() {
    let pa = one_zone(1024);
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    pa.memmap().page(pfn).get();
    let free = pa.nr_free_pages() + pa.nr_pcp_pages();
    pa.free_pages(pfn, Order::ZERO).unwrap();
    assert_eq!(pa.nr_free_pages() + pa.nr_pcp_pages(), free);
    pa.free_pages(pfn, Order::ZERO).unwrap();
    assert_eq!(pa.nr_free_pages() + pa.nr_pcp_pages(), free + 1);
}

#[test]
fn zeroed_pages_are_zero() {
    let pa = one_zone(1024);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::new(1)).unwrap();
    pa.platform().0.fill_frames(pfn, 2, 0xa5);
    pa.free_pages(pfn, Order::new(1)).unwrap();
    let again = pa
        .alloc_pages(Gfp::KERNEL | Gfp::ZERO, Order::new(1))
        .unwrap();
    assert_eq!(again, pfn, "LIFO pcp list returns the same block");
    let bytes = pa.platform().0.frame_bytes(again, 2);
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn highatomic_reserve_is_made_and_released() {
    let pa = one_zone(1 << 16);
    // The test leaves what it allocated allocated: no leak check.
    pa.platform().0.allow_leaks();
    let z = &pa.zones()[ZoneType::Dma32 as usize];
    // Push the zone below its low watermark, so the next request takes the
    // slow path, where a non-blocking high-order allocation reserves its
    // pageblock for future ones.
    let mut got = Vec::new();
    while let Ok(p) = pa.alloc_pages(Gfp::KERNEL | Gfp::NOWARN, Order::ZERO) {
        got.push(p);
    }
    let pfn = pa.alloc_pages(Gfp::ATOMIC, Order::new(2)).unwrap();
    assert_eq!(z.pageblock_migratetype(pfn), MigrateType::HighAtomic);
    assert_eq!(pa.stats().get(PaStat::HighatomicReserve), 1);
    pa.check().unwrap();
    for p in got.drain(..) {
        pa.free_pages(p, Order::ZERO).unwrap();
    }
    pa.drain_all_pages();
    // Ordinary requests never see the reserve while it stands; when memory
    // runs out it is released (and retried) before the allocation fails.
    while let Ok(p) = pa.alloc_pages(Gfp::KERNEL | Gfp::NOWARN, Order::ZERO) {
        if pa.stats().get(PaStat::HighatomicUnreserve) == 0 {
            assert_ne!(z.pageblock_migratetype(p), MigrateType::HighAtomic);
        }
        got.push(p);
    }
    assert_eq!(pa.stats().get(PaStat::HighatomicUnreserve), 1);
    pa.check().unwrap();
}

/// `pgalloc_<zone>` and `pgfree` count pages, 2^order per block, as
/// Linux's `/proc/vmstat` does; a reference drop that does not free counts
/// nothing.
#[test]
fn pgalloc_and_pgfree_count_pages() {
    let pa = one_zone(16384);
    let a = pa.alloc_pages(Gfp::KERNEL, Order::new(2)).unwrap();
    let b = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PgallocDma32), 5);
    assert_eq!(pa.stats().get(PaStat::PgallocNormal), 0);
    assert_eq!(pa.stats().get(PaStat::PgFree), 0);
    pa.memmap().get(b).unwrap().get();
    pa.free_pages(b, Order::ZERO).unwrap();
    assert_eq!(pa.stats().get(PaStat::PgFree), 0, "only a reference went");
    pa.free_pages(b, Order::ZERO).unwrap();
    pa.free_pages(a, Order::new(2)).unwrap();
    assert_eq!(pa.stats().get(PaStat::PgFree), 5);
}

/// The scenarios the in-kernel tests run on real memory, here on the
/// simulated machine (its poison and leak checks watching).
mod scenarios {
    use super::super::scenarios;
    use crate::sim;

    #[test]
    fn every_order_round_trips() {
        scenarios::every_order_round_trips(&sim::machine(4096, 1));
    }

    #[test]
    fn blocks_keep_their_own_data() {
        scenarios::blocks_keep_their_own_data(&sim::machine(4096, 1));
    }

    #[test]
    fn bad_frees_are_refused() {
        scenarios::bad_frees_are_refused(&sim::machine(4096, 1));
    }

    #[test]
    fn churn_keeps_invariants() {
        scenarios::churn_keeps_invariants(&sim::machine(4096, 1));
    }
}

//! In-kernel tests of the page allocator on real memory: the scenarios
//! shared with the host tests (`mm::page_alloc::scenarios`) and what only
//! the real machine has (its reserved frames, its zones, all of memory).

use mm::page_alloc::{BadPageReason, MAX_PAGE_ORDER, ZoneType, scenarios};
use mm::{Gfp, PAGE_SIZE, Pfn, Platform};

use super::page_alloc;
use crate::ktest::KTest;
use mm::Order;

pub const KTESTS: &[KTest] = crate::ktests![
    carved_and_kernel_frames_are_reserved,
    every_order_round_trips,
    zone_limits_hold,
    blocks_keep_their_own_data,
    bad_frees_are_refused,
    alloc_all_of_each_zone,
    churn_keeps_invariants,
];

/// The words of a block through the direct map.
fn words(pfn: Pfn, order: Order) -> &'static mut [u64] {
    let va = page_alloc().platform().phys_to_virt(pfn.phys_addr());
    // SAFETY: 1. The caller owns the block (allocated, not yet freed), so no
    // one else reads or writes it. 2. The direct map covers every frame of
    // the memmap, contiguously, and the block is 2^order frames of it.
    unsafe { core::slice::from_raw_parts_mut(va.cast::<u64>(), order.bytes() as usize / 8) }
}

fn carved_and_kernel_frames_are_reserved() {
    let layout = super::layout();
    let map = page_alloc().memmap();
    for pa in [layout.heap.start, layout.memmap.start, layout.kernel.start] {
        assert!(map.page(pa.pfn()).is_reserved(), "{pa:?} is not reserved");
    }
    assert!(
        map.page(Pfn::new(0)).is_reserved(),
        "pfn 0 must never be allocatable"
    );
    assert_eq!(
        page_alloc()
            .free_pages(layout.kernel.start.pfn(), Order::ZERO)
            .unwrap_err()
            .reason,
        BadPageReason::Reserved
    );
}

fn every_order_round_trips() {
    scenarios::every_order_round_trips(page_alloc());
}

fn zone_limits_hold() {
    let pa = page_alloc();
    let dma = pa.alloc_pages(Gfp::KERNEL | Gfp::DMA, Order::ZERO).unwrap();
    assert!(dma.phys_addr().as_u64() < 16 << 20, "DMA page at {dma:?}");
    let dma32 = pa
        .alloc_pages(Gfp::KERNEL | Gfp::DMA32, Order::new(3))
        .unwrap();
    assert!(
        dma32.phys_addr().as_u64() + (PAGE_SIZE << 3) <= 4 << 30,
        "DMA32 block at {dma32:?}"
    );
    let any = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    if pa.zones()[ZoneType::Normal as usize].is_populated() {
        assert!(
            any.phys_addr().as_u64() >= 4 << 30,
            "Normal is preferred, got {any:?}"
        );
    }
    for (pfn, order) in [(dma, 0), (dma32, 3), (any, 0)].map(|(p, o)| (p, Order::new(o))) {
        pa.free_pages(pfn, order).unwrap();
    }
}

fn blocks_keep_their_own_data() {
    scenarios::blocks_keep_their_own_data(page_alloc());
}

fn bad_frees_are_refused() {
    scenarios::bad_frees_are_refused(page_alloc());
}

/// Free blocks per order of every zone. (Per migratetype they may differ
/// after a drain: fallback claimed pageblocks for other types, as on Linux.)
fn free_blocks_per_order() -> [[u64; MAX_PAGE_ORDER as usize + 1]; 3] {
    core::array::from_fn(|z| {
        page_alloc().zones()[z]
            .free_blocks()
            .map(|per_mt| per_mt.iter().sum())
    })
}

/// Takes every page of each zone (largest blocks first, ignoring the
/// watermarks), then gives everything back: the free-block table must come
/// back exactly. The allocated blocks are chained through their own first
/// word, so the test needs no memory of its own.
fn alloc_all_of_each_zone() {
    let pa = page_alloc();
    for zone in pa.zones().iter().filter(|z| z.is_populated()) {
        let zone_flag = match zone.kind {
            ZoneType::Dma => Gfp::DMA,
            ZoneType::Dma32 => Gfp::DMA32,
            ZoneType::Normal => Gfp::empty(),
        };
        let gfp = Gfp::KERNEL | zone_flag | Gfp::MEMALLOC | Gfp::NOWARN;
        pa.drain_all_pages();
        let before = free_blocks_per_order();
        let expected: u64 = pa
            .zones()
            .iter()
            .filter(|z| z.kind <= zone.kind)
            .map(|z| z.nr_free_pages())
            .sum();
        const END: u64 = u64::MAX;
        let mut head = END;
        let mut taken = 0u64;
        for order in Order::ZERO.up_to_max().rev() {
            while let Ok(pfn) = pa.alloc_pages(gfp, order) {
                words(pfn, Order::ZERO)[0] = head;
                head = pfn.as_u64() << 8 | u64::from(order.get());
                taken += order.nr_pages();
            }
        }
        assert_eq!(
            taken,
            expected,
            "zone {}: took {taken} pages of {expected}",
            zone.kind.name()
        );
        assert_eq!(zone.nr_free_pages() + zone.nr_pcp_pages(), 0);
        while head != END {
            let (pfn, order) = (Pfn::new(head >> 8), Order::new((head & 0xff) as u32));
            head = words(pfn, Order::ZERO)[0];
            pa.free_pages(pfn, order).unwrap();
        }
        pa.drain_all_pages();
        let after = free_blocks_per_order();
        assert!(
            before == after,
            "zone {}: free blocks not restored",
            zone.kind.name()
        );
        log::info!(
            "took all {} MiB of {} and the zones below",
            (taken * PAGE_SIZE) >> 20,
            zone.kind.name()
        );
    }
    pa.check().expect("free lists consistent");
}

fn churn_keeps_invariants() {
    scenarios::churn_keeps_invariants(page_alloc());
}

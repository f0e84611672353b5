//! Scenarios of the page allocator written once against [`Platform`] and
//! run twice: by the host tests on the simulated machine
//! (`page_alloc/tests.rs`) and by the kernel's in-kernel tests on real
//! memory through the direct map (`kernel/src/memory/ktests.rs`).
//!
//! Each takes an allocator that the caller does not use meanwhile, leaves
//! it as it found it (every block freed) and panics on a difference,
//! naming the block.

use super::{BadPageReason, PaStat, PageAlloc};
use crate::addr::{Order, Pfn};
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::rand::XorShift64;

/// The words of an allocated block, through the direct map.
///
/// # Safety
///
/// The caller owns the block (allocated from `pa` with this order and not
/// freed) for the slice's lifetime `'b`, which it chooses, and holds no
/// other reference into the block meanwhile.
unsafe fn words<'b, P: Platform>(pa: &PageAlloc<P>, pfn: Pfn, order: Order) -> &'b mut [u64] {
    let va = pa.platform().phys_to_virt(pfn.phys_addr());
    // SAFETY: the direct map covers every frame of the memmap, the block's
    // 2^order frames are contiguous there and page aligned, and the caller
    // owns them alone for the slice's life.
    unsafe { core::slice::from_raw_parts_mut(va.cast::<u64>(), order.bytes() as usize / 8) }
}

/// A block of every order is had, naturally aligned, and given back.
pub fn every_order_round_trips<P: Platform>(pa: &PageAlloc<P>) {
    for order in Order::ZERO.up_to_max() {
        let pfn = pa
            .alloc_pages(Gfp::KERNEL, order)
            .unwrap_or_else(|_| panic!("no block of order {order}"));
        assert!(
            pfn.is_aligned(order),
            "order-{order} block at {pfn:?} is misaligned"
        );
        pa.free_pages(pfn, order).expect("clean free");
    }
    pa.check().expect("free lists consistent");
}

/// 48 blocks of orders 0-3, each filled with a pattern of its own and
/// read back only after all were written: no two blocks overlap, and the
/// memory behind them holds what was written.
pub fn blocks_keep_their_own_data<P: Platform>(pa: &PageAlloc<P>) {
    let mut blocks = [(Pfn::new(0), Order::ZERO); 48];
    for (i, b) in blocks.iter_mut().enumerate() {
        let order = Order::new((i % 4) as u32);
        *b = (pa.alloc_pages(Gfp::KERNEL, order).expect("memory"), order);
    }
    let pattern = |pfn: Pfn, i: usize| {
        pfn.as_u64().rotate_left(17) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    for &(pfn, order) in &blocks {
        // SAFETY: allocated above, not freed; one slice at a time.
        for (i, w) in unsafe { words(pa, pfn, order) }.iter_mut().enumerate() {
            *w = pattern(pfn, i);
        }
    }
    for &(pfn, order) in &blocks {
        // SAFETY: allocated above, not freed; one slice at a time.
        for (i, w) in unsafe { words(pa, pfn, order) }.iter().enumerate() {
            assert_eq!(*w, pattern(pfn, i), "word {i} of {pfn:?} changed");
        }
    }
    for &(pfn, order) in &blocks {
        pa.free_pages(pfn, order).expect("clean free");
    }
}

/// Frees of a tail frame, with the wrong order, twice, and beyond the
/// memmap are reported, counted and refused, and leave the free lists
/// intact.
pub fn bad_frees_are_refused<P: Platform>(pa: &PageAlloc<P>) {
    let before = pa.stats().get(PaStat::BadPage);
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::new(1)).expect("memory");
    let tail = pa.free_pages(pfn.add(1), Order::ZERO).unwrap_err();
    assert!(
        matches!(tail.reason, BadPageReason::NotAllocated(_)),
        "{tail:?}"
    );
    assert_eq!(
        pa.free_pages(pfn, Order::ZERO).unwrap_err().reason,
        BadPageReason::OrderMismatch {
            allocated: Order::new(1)
        }
    );
    pa.free_pages(pfn, Order::new(1)).expect("the good free");
    let double = pa.free_pages(pfn, Order::new(1)).unwrap_err();
    assert!(
        matches!(double.reason, BadPageReason::NotAllocated(_)),
        "{double:?}"
    );
    assert!(
        double.caller.file().ends_with("scenarios.rs"),
        "the report names the caller, not {}",
        double.caller
    );
    let beyond = Pfn::new(pa.memmap().len() as u64 + 5);
    assert_eq!(
        pa.free_pages(beyond, Order::ZERO).unwrap_err().reason,
        BadPageReason::OutsideMemmap
    );
    assert_eq!(pa.stats().get(PaStat::BadPage), before + 4);
    pa.check().expect("a refused free leaves the lists intact");
}

/// 20,000 random order-0..4 allocations and frees with up to 256 blocks
/// live, each block's first word naming it: nothing is handed out twice,
/// the per-CPU lists serve, and the free lists stay consistent.
pub fn churn_keeps_invariants<P: Platform>(pa: &PageAlloc<P>) {
    let mut live = [(Pfn::new(0), Order::ZERO); 256];
    let mut nr_live = 0;
    let mut rng = XorShift64::new(0x2545_f491_4f6c_dd1d);
    let pcp_before = pa.stats().get(PaStat::AllocPcp);
    for _ in 0..20_000 {
        let seed = rng.next_u64();
        if nr_live < live.len() && (nr_live == 0 || !seed.is_multiple_of(3)) {
            let order = Order::new((seed >> 8) as u32 % 5);
            let pfn = pa.alloc_pages(Gfp::KERNEL, order).expect("memory");
            // SAFETY: just allocated; no other reference into it.
            let first = unsafe { words(pa, pfn, Order::ZERO) };
            first[0] = pfn.as_u64();
            live[nr_live] = (pfn, order);
            nr_live += 1;
        } else {
            let i = (seed >> 16) as usize % nr_live;
            let (pfn, order) = live[i];
            // SAFETY: live, so allocated and not freed; one slice at a time.
            let first = unsafe { words(pa, pfn, Order::ZERO) }[0];
            assert_eq!(first, pfn.as_u64(), "{pfn:?} was overwritten");
            pa.free_pages(pfn, order).expect("clean free");
            nr_live -= 1;
            live[i] = live[nr_live];
        }
    }
    for &(pfn, order) in &live[..nr_live] {
        pa.free_pages(pfn, order).expect("clean free");
    }
    assert!(
        pa.stats().get(PaStat::AllocPcp) > pcp_before,
        "the pcp lists served nothing"
    );
    pa.check().expect("free lists consistent");
}

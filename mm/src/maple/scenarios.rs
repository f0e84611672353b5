//! Scenarios of the maple tree written once against [`Platform`] and run
//! twice: by the host tests on the simulated machine (`maple/tests.rs`)
//! and by the kernel's in-kernel tests with nodes from its real node
//! cache and RCU (`kernel/src/maple_ktests.rs`).
//!
//! Each takes an empty tree with the VMA flags (`ALLOC_RANGE | USE_RCU`),
//! may leave entries in it (the caller destroys it and checks the nodes
//! came back) and panics on a difference.

use core::num::NonZeroUsize;

use super::{MapleError, MapleStat, MapleTree};
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::rand::XorShift64;

type Tree<'t, 'a, P> = &'t MapleTree<'a, NonZeroUsize, P>;

const PAGE: u64 = 4096;

fn v(x: usize) -> Option<NonZeroUsize> {
    NonZeroUsize::new(x)
}

/// Stores `x` over `[lo, hi]` as mmap does: preallocate, then store,
/// checking the store used no more nodes than it preallocated.
pub fn store<P: Platform>(t: Tree<'_, '_, P>, lo: u64, hi: u64, x: usize) {
    let mut w = t.lock();
    w.preallocate(lo, hi, v(x), Gfp::KERNEL)
        .expect("node preallocation");
    w.store_prealloc(lo, hi, v(x));
    let (req, used) = w.nodes_requested_used();
    assert!(
        used <= req,
        "[{lo:#x}, {hi:#x}]: used {used} > requested {req}"
    );
}

fn validate<P: Platform>(t: Tree<'_, '_, P>) -> (usize, usize) {
    t.validate()
        .unwrap_or_else(|e| panic!("invalid maple tree: {e}"))
}

/// The reference notes' gap search: two VMAs in 64 KiB, the lowest and
/// highest gaps of each size, and `Busy` where none fits.
pub fn reference_gap_search<P: Platform>(t: Tree<'_, '_, P>) {
    store(t, 0x1000, 0x1fff, 1);
    store(t, 0x5000, 0x5fff, 2);
    assert_eq!(t.empty_area(0, 0xffff, 0x2000), Ok(0x2000));
    assert_eq!(t.empty_area(0, 0xffff, 0x1000), Ok(0));
    assert_eq!(t.empty_area(0x1000, 0xffff, 0x1000), Ok(0x2000));
    assert_eq!(t.empty_area_rev(0, 0xffff, 0x2000), Ok(0xe000));
    assert_eq!(t.empty_area(0, 0x4fff, 0x4000), Err(MapleError::Busy));
    assert_eq!(t.empty_area_rev(0, 0x4fff, 0x3000), Ok(0x2000));
    assert_eq!(t.empty_area_rev(0x1000, 0x5fff, 0x1000), Ok(0x4000));
}

/// 2000 two-page VMAs with one-page holes, stored in random order, then
/// lookups, next/previous, iteration, gap searches of one and two pages,
/// and erasing every other VMA to open four-page gaps. The tree grows to
/// at least three levels, splits and rebalances.
pub fn vmas_with_holes<P: Platform>(t: Tree<'_, '_, P>) {
    // VMA i: [base + 3i pages, base + 3i + 2 pages), hole of one page.
    let base = 0x10_0000u64;
    let vma = |i: u64| (base + 3 * i * PAGE, base + (3 * i + 2) * PAGE - 1);
    let n = 2000u64;
    let mut order: alloc::vec::Vec<u64> = (0..n).collect();
    XorShift64::new(0x6b7e).shuffle(&mut order);
    for &i in &order {
        let (lo, hi) = vma(i);
        store(t, lo, hi, i as usize + 1);
    }
    let (entries, nodes) = validate(t);
    assert_eq!(entries, n as usize);
    assert!(t.height() >= 3, "height {} with {nodes} nodes", t.height());
    for i in (0..n).step_by(7) {
        let (lo, hi) = vma(i);
        assert_eq!(t.walk_range(lo + PAGE), (lo, hi, v(i as usize + 1)));
        assert_eq!(t.load(hi + 1), None);
        let next = t.find(hi + 1, u64::MAX).map(|(s, _, x)| (s, x.get()));
        let prev = t.find_prev(hi + 1, 0).map(|(s, _, x)| (s, x.get()));
        assert_eq!(prev, Some((lo, i as usize + 1)));
        if i + 1 < n {
            assert_eq!(next, Some((vma(i + 1).0, i as usize + 2)));
        }
    }
    assert_eq!(t.iter(0, u64::MAX).count(), n as usize);
    // One-page holes everywhere: a two-page area only below and above.
    assert_eq!(t.empty_area(base, u64::MAX, PAGE), Ok(base + 2 * PAGE));
    assert_eq!(t.empty_area(base, u64::MAX, 2 * PAGE), Ok(vma(n - 1).1 + 1));
    assert_eq!(
        t.empty_area(base, vma(n - 1).1, 2 * PAGE),
        Err(MapleError::Busy)
    );
    assert_eq!(
        t.empty_area_rev(0, base + PAGE, 2 * PAGE),
        Ok(base - 2 * PAGE)
    );
    // Erasing every other VMA opens 4-page gaps.
    for i in (0..n).step_by(2) {
        assert_eq!(t.lock().erase(vma(i).0, Gfp::KERNEL), Ok(v(i as usize + 1)));
    }
    assert_eq!(validate(t).0, (n / 2) as usize);
    assert_eq!(
        t.empty_area(base + PAGE, u64::MAX, 4 * PAGE),
        Ok(vma(1).1 + 1)
    );
    assert!(t.stat(MapleStat::StoreSplit) > 0 && t.stat(MapleStat::StoreRebalance) > 0);
}

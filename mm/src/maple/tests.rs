//! Host tests of the maple tree: Linux's reference scenarios, then a
//! randomized comparison with a model, validating the tree after every
//! step.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::num::NonZeroUsize;

use super::*;
use crate::page_alloc::PageAlloc;
use crate::rand::XorShift64;
use crate::sim::{self, SimPlatform};
use crate::{Gfp, rcu::Rcu};

pub(crate) type Tree<'a> = MapleTree<'a, NonZeroUsize, SimPlatform>;

/// Runs `f` with an empty tree of `flags` on a one-CPU simulated machine,
/// then destroys the tree and checks that every node came back.
pub(crate) fn with_tree<R>(flags: MtFlags, f: impl FnOnce(&Tree<'_>, &Rcu<SimPlatform>) -> R) -> R {
    // Miri interprets every frame's set-up: a smaller machine there.
    with_tree_pages(if cfg!(miri) { 1 << 10 } else { 1 << 16 }, flags, f)
}

/// [`with_tree`] on a machine of `nr_pages` frames (a small one sets up
/// faster: property tests build one per case).
pub(crate) fn with_tree_pages<R>(
    nr_pages: usize,
    flags: MtFlags,
    f: impl FnOnce(&Tree<'_>, &Rcu<SimPlatform>) -> R,
) -> R {
    sim::set_cpu(0);
    let pa: PageAlloc<SimPlatform> = sim::machine(nr_pages, 1);
    let rcu = Rcu::new(pa.platform().clone());
    let cache = node_cache(&pa, &rcu).unwrap();
    let r = {
        let tree = Tree::new(&cache, &rcu, flags);
        let r = f(&tree, &rcu);
        tree.destroy();
        assert_eq!(
            tree.stat(MapleStat::PreallocMiss),
            0,
            "a store outgrew its preallocation"
        );
        r
    };
    cache.flush_rcu_sheaf();
    rcu.rcu_barrier();
    assert_eq!(cache.info().active_objs, 0, "maple nodes leaked");
    r
}

pub(crate) fn v(x: usize) -> Option<NonZeroUsize> {
    NonZeroUsize::new(x)
}

pub(crate) const VMA: MtFlags = MtFlags::ALLOC_RANGE.union(MtFlags::USE_RCU);

fn store(t: &Tree<'_>, lo: u64, hi: u64, x: usize) -> StoreType {
    let mut w = t.lock();
    let kind = w.preallocate(lo, hi, v(x), Gfp::KERNEL).unwrap();
    w.store_prealloc(lo, hi, v(x));
    kind
}

fn check(t: &Tree<'_>) {
    if let Err(e) = t.validate() {
        panic!("invalid tree: {e}");
    }
}

#[test]
fn empty_tree_loads_nothing_and_a_store_makes_a_root_leaf() {
    with_tree(VMA, |t, _| {
        assert_eq!(t.height(), 0);
        assert_eq!(t.load(5), None);
        assert_eq!(t.walk_range(5), (0, u64::MAX, None));
        assert_eq!(store(t, 10, 19, 1), StoreType::NewRoot);
        assert_eq!(t.height(), 1);
        assert_eq!(t.load(9), None);
        assert_eq!(t.load(10), v(1));
        assert_eq!(t.load(19), v(1));
        assert_eq!(t.load(20), None);
        assert_eq!(t.walk_range(15), (10, 19, v(1)));
        assert_eq!(t.walk_range(25), (20, u64::MAX, None));
        check(t);
        assert_eq!(t.lock().erase(12, Gfp::KERNEL), Ok(v(1)));
        assert!(t.is_empty());
        assert_eq!(t.height(), 0);
    });
}

#[test]
fn bad_ranges_are_refused() {
    with_tree(VMA, |t, _| {
        let mut w = t.lock();
        assert_eq!(
            w.store_range(5, 4, v(1), Gfp::KERNEL),
            Err(MapleError::Inval)
        );
        drop(w);
        assert_eq!(t.empty_area(10, 5, 1), Err(MapleError::Inval));
        assert_eq!(t.empty_area(0, 10, 0), Err(MapleError::Inval));
        assert_eq!(t.empty_area(0, 10, 12), Err(MapleError::Inval));
        assert_eq!(MapleError::Inval.errno(), -22);
    });
}

/// After Linux's check_spanning_store_height(): values 0, 1, 2, ... at
/// their own index until the height is 3, then one spanning store over
/// most of them brings it back to 2. (Linux stores over [90, 140]; our
/// leaves split at other points, so the range is [40, 140] here.)
#[test]
fn spanning_store_lowers_the_height() {
    with_tree(VMA, |t, _| {
        let mut i = 0;
        while t.height() < 3 {
            store(t, i, i, i as usize + 1);
            i += 1;
        }
        check(t);
        assert_eq!(store(t, 40, 140, 0xabc), StoreType::Spanning);
        check(t);
        assert_eq!(t.height(), 2, "after spanning store over [40, 140] of {i}");
        assert_eq!(t.load(90), v(0xabc));
        assert_eq!(t.load(39), v(40));
        assert_eq!(t.walk_range(141), (141, u64::MAX, None));
    });
}

/// The classification examples of the reference notes on a root leaf
/// holding [0–9]=A, [10–19]=B, [20–29]=NULL, [30–MAX]=C.
#[test]
fn store_types_are_classified_as_linux_does() {
    with_tree(VMA, |t, _| {
        let setup = |t: &Tree<'_>| {
            store(t, 0, u64::MAX, 3);
            store(t, 0, 9, 1);
            store(t, 10, 19, 2);
            t.lock().store_range(20, 29, None, Gfp::KERNEL).unwrap();
        };
        setup(t);
        check(t);
        let mut w = t.lock();
        assert_eq!(
            w.preallocate(10, 19, v(9), Gfp::KERNEL),
            Ok(StoreType::ExactFit)
        );
        // New end 4: below the minimum, but the leaf is the root.
        assert_eq!(
            w.preallocate(10, 14, v(9), Gfp::KERNEL),
            Ok(StoreType::NodeStore)
        );
        assert_eq!(
            w.preallocate(0, u64::MAX, v(9), Gfp::KERNEL),
            Ok(StoreType::NewRoot)
        );
        w.destroy();
        drop(w);
        for i in 4..8u64 {
            store(t, 10 * i, 10 * i + 9, i as usize);
        }
        check(t);
        // Eight slots now. B's range moves into the NULL range after it:
        // same slot count, two slots touched.
        let mut w = t.lock();
        assert_eq!(
            w.preallocate(15, 29, v(2), Gfp::KERNEL),
            Ok(StoreType::SlotStore)
        );
        w.store_prealloc(15, 29, v(2));
        assert_eq!(w.nodes_requested_used(), (0, 0));
        drop(w);
        check(t);
        assert_eq!(t.walk_range(12), (10, 14, v(2)));
        assert_eq!(t.walk_range(20), (15, 29, v(2)));
        assert_eq!(t.stat(MapleStat::StoreSlotStore), 1);
        // Nine slots; three more ranges make 15, one more splits the leaf.
        for i in 0..3u64 {
            store(t, 100 + 10 * i, 104 + 10 * i, 10 + i as usize);
        }
        check(t);
        assert_eq!(t.height(), 1);
        assert_eq!(store(t, 200, 210, 50), StoreType::Split);
        check(t);
        assert_eq!(t.height(), 2);
    });
}

#[test]
fn append_in_place_only_without_rcu() {
    for (flags, expect) in [
        (MtFlags::ALLOC_RANGE, StoreType::Append),
        (VMA, StoreType::NodeStore),
    ] {
        with_tree(flags, |t, _| {
            for i in 0..4u64 {
                store(t, 10 * i, 10 * i + 9, i as usize + 1);
            }
            // [40, MAX] is the last slot's NULL range; write inside it.
            assert_eq!(store(t, 50, 59, 9), expect);
            check(t);
            assert_eq!(t.walk_range(45), (40, 49, None));
            assert_eq!(t.load(55), v(9));
            assert_eq!(t.walk_range(60), (60, u64::MAX, None));
        });
    }
}

/// The scenarios the in-kernel tests run (`maple::scenarios`), here on
/// the simulated machine.
#[test]
fn empty_area_finds_lowest_and_highest_gaps() {
    with_tree(VMA, |t, _| super::scenarios::reference_gap_search(t));
}

#[test]
fn vmas_with_holes_are_found_iterated_and_erased() {
    with_tree(VMA, |t, _| super::scenarios::vmas_with_holes(t));
}

#[test]
fn preallocate_then_destroy_returns_every_node() {
    with_tree(VMA, |t, _| {
        for i in 0..200u64 {
            store(t, i * 10, i * 10 + 5, i as usize + 1);
        }
        let unused = t.stat(MapleStat::NodesUnused);
        let mut w = t.lock();
        let kind = w.preallocate(5, 1500, v(7), Gfp::KERNEL).unwrap();
        assert_eq!(kind, StoreType::Spanning);
        let (req, used) = w.nodes_requested_used();
        assert!(req > 1 && used == 0);
        w.destroy();
        drop(w);
        assert_eq!(t.stat(MapleStat::NodesUnused) - unused, req as u64);
        check(t);
    });
}

#[test]
fn a_failed_prefill_fails_the_preallocation() {
    with_tree(VMA, |t, _| {
        for i in 0..200u64 {
            store(t, i * 10, i * 10 + 5, i as usize + 1);
        }
        let mut w = t.lock();
        // The first allocation, the node cache's sheaf prefill, fails:
        // the preallocation fails too, with no second try node by node
        // (which would turn one injected failure into a success).
        sim::set_fail_nth(1);
        let r = w.preallocate(5, 1500, v(7), Gfp::KERNEL);
        let left = sim::fail_nth();
        sim::set_fail_nth(0);
        assert_eq!(left, 0, "the failure was injected");
        assert_eq!(r, Err(MapleError::NoMem));
        drop(w);
        assert_eq!(t.load(20), v(3));
        check(t);
    });
}

/// The model: disjoint ranges, NULL ranges absent.
#[derive(Clone, Default)]
pub(crate) struct Model(pub BTreeMap<u64, (u64, usize)>);

impl Model {
    pub fn store(&mut self, lo: u64, hi: u64, x: usize) {
        let over: Vec<(u64, (u64, usize))> = self
            .0
            .range(..=hi)
            .rev()
            .take_while(|(_, (e, _))| *e >= lo)
            .map(|(s, r)| (*s, *r))
            .collect();
        for (s, (e, val)) in over {
            self.0.remove(&s);
            if s < lo {
                self.0.insert(s, (lo - 1, val));
            }
            if e > hi {
                self.0.insert(hi + 1, (e, val));
            }
        }
        if x != 0 {
            self.0.insert(lo, (hi, x));
        }
    }

    pub fn load(&self, i: u64) -> Option<(u64, u64, usize)> {
        let (s, (e, x)) = self.0.range(..=i).next_back()?;
        (*e >= i).then_some((*s, *e, *x))
    }

    pub fn find(&self, i: u64, max: u64) -> Option<(u64, u64, usize)> {
        if let Some(r) = self.load(i) {
            return Some(r);
        }
        let (s, (e, x)) = self.0.range(i..=max).next()?;
        Some((*s, *e, *x))
    }

    pub fn find_prev(&self, i: u64, min: u64) -> Option<(u64, u64, usize)> {
        let (s, (e, x)) = self.0.range(..=i).next_back()?;
        (*e >= min).then_some((*s, *e, *x))
    }

    /// Lowest (or highest) start of `size` free indices within [min, max].
    pub fn empty_area(&self, min: u64, max: u64, size: u64, rev: bool) -> Option<u64> {
        let mut gaps = Vec::new();
        let mut next = 0u64;
        let mut done = false;
        for (s, (e, _)) in &self.0 {
            if *s > next {
                gaps.push((next, *s - 1));
            }
            if *e == u64::MAX {
                done = true;
                break;
            }
            next = *e + 1;
        }
        if !done {
            gaps.push((next, u64::MAX));
        }
        let fits = |&(a, b): &(u64, u64)| {
            let (a, b) = (a.max(min), b.min(max));
            (a <= b && node::range_size(a, b) >= size).then_some((a, b))
        };
        if rev {
            gaps.iter()
                .rev()
                .find_map(fits)
                .map(|(_, b)| b - (size - 1))
        } else {
            gaps.iter().find_map(fits).map(|(a, _)| a)
        }
    }
}

/// Random operations against the model, validating after each one.
pub(crate) fn random_ops(t: &Tree<'_>, rcu: &Rcu<SimPlatform>, seed: u64, ops: usize, space: u64) {
    let mut rng = XorShift64::new(seed);
    let mut below = move |n: u64| rng.below(n as usize) as u64;
    let mut m = Model::default();
    for step in 0..ops {
        let op = below(100);
        let lo = below(space);
        let len = match below(10) {
            0..=5 => below(8),
            6..=8 => below(space / 64 + 1),
            _ => below(space / 4 + 1),
        };
        let hi = (lo + len).min(space - 1);
        let val = step + 1;
        if op < 60 {
            let mut w = t.lock();
            w.preallocate(lo, hi, v(val), Gfp::KERNEL).unwrap();
            w.store_prealloc(lo, hi, v(val));
            let (req, used) = w.nodes_requested_used();
            assert!(used <= req, "step {step}: used {used} > requested {req}");
            m.store(lo, hi, val);
        } else if op < 85 {
            t.lock().store_range(lo, hi, None, Gfp::KERNEL).unwrap();
            m.store(lo, hi, 0);
        } else {
            let got = t.lock().erase(lo, Gfp::KERNEL).unwrap();
            let want = m.load(lo);
            assert_eq!(
                got.map(|x| x.get()),
                want.map(|r| r.2),
                "step {step}: erase {lo}"
            );
            if let Some((s, e, _)) = want {
                m.store(s, e, 0);
            }
        }
        if let Err(e) = t.validate() {
            panic!("step {step} (op {op} [{lo}, {hi}]): {e}");
        }
        for _ in 0..4 {
            let i = below(space);
            let got = t.walk_range(i);
            match m.load(i) {
                Some((s, e, x)) => assert_eq!(got, (s, e, v(x)), "step {step}: walk {i}"),
                None => assert_eq!(got.2, None, "step {step}: load {i}"),
            }
            let max = i + below(space / 8 + 1);
            let f = t.find(i, max).map(|(s, e, x)| (s, e, x.get()));
            assert_eq!(f, m.find(i, max), "step {step}: find {i} {max}");
            let min = i.saturating_sub(below(space / 8 + 1));
            let f = t.find_prev(i, min).map(|(s, e, x)| (s, e, x.get()));
            assert_eq!(f, m.find_prev(i, min), "step {step}: find_prev {i} {min}");
            let size = 1 + below(space / 16 + 1);
            let (a, b) = (min, max.min(space + space / 2));
            if node::range_size(a, b) >= size {
                assert_eq!(
                    t.empty_area(a, b, size).ok(),
                    m.empty_area(a, b, size, false)
                );
                assert_eq!(
                    t.empty_area_rev(a, b, size).ok(),
                    m.empty_area(a, b, size, true)
                );
            }
        }
        if step % 64 == 0 {
            rcu.synchronize_rcu();
        }
    }
    let all: Vec<(u64, u64, usize)> = t
        .iter(0, u64::MAX)
        .map(|(s, e, x)| (s, e, x.get()))
        .collect();
    let want: Vec<(u64, u64, usize)> = m.0.iter().map(|(s, (e, x))| (*s, *e, *x)).collect();
    assert_eq!(all, want);
    let mut back: Vec<(u64, u64, usize)> = t
        .iter_rev(0, u64::MAX)
        .map(|(s, e, x)| (s, e, x.get()))
        .collect();
    back.reverse();
    assert_eq!(back, want);
}

#[test]
fn random_ops_match_the_model_small_space() {
    with_tree(VMA, |t, rcu| random_ops(t, rcu, 1, 3000, 300));
}

#[test]
fn random_ops_match_the_model_large_space() {
    with_tree(VMA, |t, rcu| random_ops(t, rcu, 2, 3000, 100_000));
}

#[test]
fn random_ops_match_the_model_without_rcu_or_gaps() {
    with_tree(MtFlags::ALLOC_RANGE, |t, rcu| {
        random_ops(t, rcu, 3, 2000, 1000)
    });
    with_tree(MtFlags::empty(), |t, rcu| random_ops(t, rcu, 4, 2000, 1000));
}

/// Small enough for Miri (`scripts/miri.sh`): stores that split leaves and
/// grow the tree, RCU-mode node replacement, reads of every kind and
/// erases back to empty, on a 64-frame machine; every node is freed
/// through kfree_rcu (checked by `with_tree_pages`).
#[test]
fn small_tree_grows_splits_and_empties() {
    with_tree_pages(64, MtFlags::ALLOC_RANGE | MtFlags::USE_RCU, |t, _| {
        for i in 0..40u64 {
            store(t, i * 10, i * 10 + 4, i as usize + 1);
        }
        check(t);
        assert!(t.height() >= 2, "40 entries need more than one leaf");
        for i in 0..40u64 {
            assert_eq!(t.load(i * 10 + 2), v(i as usize + 1));
            assert_eq!(t.load(i * 10 + 7), None);
            assert_eq!(
                t.find(i * 10 + 5, u64::MAX).map(|e| e.0),
                (i < 39).then_some(i * 10 + 10)
            );
        }
        assert_eq!(t.empty_area(0, u64::MAX, 5), Ok(5));
        for i in (0..40u64).rev() {
            store(t, i * 10, i * 10 + 4, 0);
            check(t);
        }
        assert!(t.is_empty() || t.find(0, u64::MAX).is_none());
    });
}

//! Property tests of the maple tree against the model of `tests.rs`, a
//! 100k-entry scale test, and the preallocation report.
//!
//! Random sequences of up to 160 operations (stores of short, medium and
//! long ranges — the long ones span many leaves —, stores reaching
//! `u64::MAX`, NULL stores, erases, and the readers: walk, find,
//! find_prev, gap search both ways with valid and invalid arguments) run
//! on trees with the VMA flags (`ALLOC_RANGE | USE_RCU`), `ALLOC_RANGE`
//! only, and no flags, in index spaces of 256, 4096 and 2^20. After
//! every write:
//!
//! - P1: `validate()` holds and counts as many entries as the model.
//! - P2: iterating the whole tree gives exactly the model's ranges.
//! - P3: the store used no more nodes than it preallocated, and no node
//!   outside its preallocation (`PreallocMiss` stays 0); the
//!   vacant/sufficient-height request never exceeds the full-height one.
//! - P4: an RCU tree never appends in place.
//! - P5: reads agree with the model (every read op, and the range of the
//!   written entry right after the write).
//!
//! The scale test builds 100k entries in shuffled order, then churns them
//! with erases, overwrites spanning many entries and NULL stores,
//! validating and comparing with the model at checkpoints.
//!
//! The preallocation report replays an mmap/munmap-like workload (VMAs
//! placed top-down by the gap search, merged with a neighbour, split by
//! partial munmap and mprotect, unmapped whole or across several) and
//! prints the nodes requested with the vacant/sufficient-height
//! calculation against the full-height worst case.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests::{Model, Tree, VMA, v, with_tree};
use super::*;
use crate::Gfp;
use crate::rand::XorShift64;
use crate::rcu::Rcu;
use crate::sim::SimPlatform;

/// One step of a property-test sequence. Values stored are unique (the
/// step number), so an entry landing in the wrong place is seen.
#[derive(Clone, Debug)]
enum Op {
    /// Store over `[lo, lo + len]` (clipped to the space), through
    /// preallocate + store_prealloc or through store_range.
    Store {
        lo: u64,
        len: u64,
        prealloc: bool,
    },
    /// A store over the top of the index space, `[MAX - len, MAX]`.
    StoreTop {
        len: u64,
    },
    /// NULL store over `[lo, lo + len]`.
    Null {
        lo: u64,
        len: u64,
        prealloc: bool,
    },
    /// Erase the entry at `at`.
    Erase {
        at: u64,
    },
    Walk {
        at: u64,
    },
    Find {
        at: u64,
        span: u64,
    },
    FindPrev {
        at: u64,
        span: u64,
    },
    Gap {
        min: u64,
        span: u64,
        size: u64,
        rev: bool,
    },
}

/// Range lengths: mostly short, some medium, a few spanning a large part
/// of the space (many leaves).
fn len_strategy(space: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0..8u64,
        3 => 0..space / 32 + 1,
        1 => 0..space,
    ]
}

fn op_strategy(space: u64) -> impl Strategy<Value = Op> {
    let idx = 0..space;
    prop_oneof![
        40 => (idx.clone(), len_strategy(space), any::<bool>())
            .prop_map(|(lo, len, prealloc)| Op::Store { lo, len, prealloc }),
        2 => (0..64u64).prop_map(|len| Op::StoreTop { len }),
        15 => (idx.clone(), len_strategy(space), any::<bool>())
            .prop_map(|(lo, len, prealloc)| Op::Null { lo, len, prealloc }),
        12 => idx.clone().prop_map(|at| Op::Erase { at }),
        8 => idx.clone().prop_map(|at| Op::Walk { at }),
        8 => (idx.clone(), len_strategy(space)).prop_map(|(at, span)| Op::Find { at, span }),
        8 => (idx.clone(), len_strategy(space)).prop_map(|(at, span)| Op::FindPrev { at, span }),
        8 => (idx, len_strategy(space), 0..space / 8 + 2, any::<bool>())
            .prop_map(|(min, span, size, rev)| Op::Gap { min, span, size, rev }),
    ]
}

fn ops_strategy(max_len: usize) -> impl Strategy<Value = (u64, Vec<Op>)> {
    prop_oneof![Just(256u64), Just(4096), Just(1 << 20)].prop_flat_map(move |space| {
        (
            Just(space),
            prop::collection::vec(op_strategy(space), 1..max_len),
        )
    })
}

fn model_entries(m: &Model) -> Vec<(u64, u64, usize)> {
    m.0.iter().map(|(s, (e, x))| (*s, *e, *x)).collect()
}

fn tree_entries(t: &Tree<'_>) -> Vec<(u64, u64, usize)> {
    t.iter(0, u64::MAX)
        .map(|(s, e, x)| (s, e, x.get()))
        .collect()
}

/// P1 and P4: the tree is valid, holds as many entries as the model, and
/// an RCU tree has not appended in place.
fn check_tree(t: &Tree<'_>, m: &Model, what: &dyn core::fmt::Display) -> Result<(), TestCaseError> {
    match t.validate() {
        Ok((entries, _)) => prop_assert_eq!(entries, m.0.len(), "{}: entry count", what),
        Err(e) => {
            return Err(TestCaseError::fail(alloc::format!(
                "{what}: invalid tree: {e}"
            )));
        }
    }
    prop_assert_eq!(t.is_empty(), m.0.is_empty(), "{}", what);
    if t.flags().contains(MtFlags::USE_RCU) {
        prop_assert_eq!(
            t.stat(MapleStat::StoreAppend),
            0,
            "{}: append in RCU mode",
            what
        );
    }
    Ok(())
}

/// Writes `val` (0: NULL) over `[lo, hi]` in tree and model; returns
/// (requested, used, full-height request) of the store. Checks P3.
fn write(
    t: &Tree<'_>,
    m: &mut Model,
    lo: u64,
    hi: u64,
    val: usize,
    prealloc: bool,
) -> Result<(usize, usize, u64), TestCaseError> {
    let full_before = t.stat(MapleStat::NodesRequestedFullHeight);
    let (req, used) = {
        let mut w = t.lock();
        if prealloc {
            w.preallocate(lo, hi, v(val), Gfp::KERNEL)
                .map_err(|e| TestCaseError::fail(alloc::format!("preallocate: {e:?}")))?;
            w.store_prealloc(lo, hi, v(val));
        } else {
            prop_assert_eq!(w.store_range(lo, hi, v(val), Gfp::KERNEL), Ok(()));
        }
        w.nodes_requested_used()
    };
    let full = t.stat(MapleStat::NodesRequestedFullHeight) - full_before;
    prop_assert!(
        used <= req,
        "store [{lo:#x}, {hi:#x}] = {val}: used {used} > requested {req}"
    );
    prop_assert!(
        req as u64 <= full,
        "store [{lo:#x}, {hi:#x}]: requested {req} > full-height {full}"
    );
    prop_assert_eq!(t.stat(MapleStat::PreallocMiss), 0);
    m.store(lo, hi, val);
    Ok((req, used, full))
}

/// [`with_tree`] on a 16 MiB machine: `with_tree`'s 256 MiB machine takes
/// about half a second to set up in a debug build, too much per case.
fn with_small_tree<R>(flags: MtFlags, f: impl FnOnce(&Tree<'_>, &Rcu<SimPlatform>) -> R) -> R {
    super::tests::with_tree_pages(1 << 12, flags, f)
}

/// Runs one sequence on a tree with `flags`.
fn run_sequence(flags: MtFlags, space: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    with_small_tree(flags, |t, rcu| {
        let mut m = Model::default();
        for (step, op) in ops.iter().enumerate() {
            let what = alloc::format!("step {step} {op:?}");
            let val = step + 1;
            match *op {
                Op::Store { lo, len, prealloc } => {
                    let hi = lo.saturating_add(len).min(space - 1);
                    write(t, &mut m, lo, hi, val, prealloc)?;
                    prop_assert_eq!(t.walk_range(lo), (lo, hi, v(val)), "{}", what);
                    prop_assert_eq!(t.walk_range(hi), (lo, hi, v(val)), "{}", what);
                }
                Op::StoreTop { len } => {
                    let lo = u64::MAX - len;
                    write(t, &mut m, lo, u64::MAX, val, true)?;
                    prop_assert_eq!(t.walk_range(u64::MAX), (lo, u64::MAX, v(val)), "{}", what);
                }
                Op::Null { lo, len, prealloc } => {
                    let hi = lo.saturating_add(len).min(space - 1);
                    write(t, &mut m, lo, hi, 0, prealloc)?;
                    prop_assert_eq!(t.load(lo), None, "{}", what);
                    prop_assert_eq!(t.find(lo, hi), None, "{}", what);
                }
                Op::Erase { at } => {
                    let want = m.load(at);
                    let got = {
                        let mut w = t.lock();
                        let got = w.erase(at, Gfp::KERNEL);
                        let (req, used) = w.nodes_requested_used();
                        prop_assert!(used <= req, "{}: used {} > requested {}", what, used, req);
                        got
                    };
                    prop_assert_eq!(got, Ok(want.and_then(|r| v(r.2))), "{}", what);
                    prop_assert_eq!(t.stat(MapleStat::PreallocMiss), 0);
                    if let Some((s, e, _)) = want {
                        m.store(s, e, 0);
                    }
                    prop_assert_eq!(t.load(at), None, "{}", what);
                }
                Op::Walk { at } => {
                    let got = t.walk_range(at);
                    match m.load(at) {
                        Some((s, e, x)) => prop_assert_eq!(got, (s, e, v(x)), "{}", what),
                        None => prop_assert_eq!(got.2, None, "{}", what),
                    }
                }
                Op::Find { at, span } => {
                    let max = at.saturating_add(span);
                    let got = t.find(at, max).map(|(s, e, x)| (s, e, x.get()));
                    prop_assert_eq!(got, m.find(at, max), "{}", what);
                }
                Op::FindPrev { at, span } => {
                    let min = at.saturating_sub(span);
                    let got = t.find_prev(at, min).map(|(s, e, x)| (s, e, x.get()));
                    prop_assert_eq!(got, m.find_prev(at, min), "{}", what);
                }
                Op::Gap {
                    min,
                    span,
                    size,
                    rev,
                } => {
                    // Windows may reach past the space (all NULL up there)
                    // and may be invalid (size 0, or larger than the window).
                    let max = min.saturating_add(span);
                    let want = if size == 0 || node::range_size(min, max) < size {
                        Err(MapleError::Inval)
                    } else {
                        m.empty_area(min, max, size, rev).ok_or(MapleError::Busy)
                    };
                    let got = if rev {
                        t.empty_area_rev(min, max, size)
                    } else {
                        t.empty_area(min, max, size)
                    };
                    prop_assert_eq!(got, want, "{}", what);
                }
            }
            if matches!(
                op,
                Op::Store { .. } | Op::StoreTop { .. } | Op::Null { .. } | Op::Erase { .. }
            ) {
                check_tree(t, &m, &what)?;
                prop_assert_eq!(tree_entries(t), model_entries(&m), "{}: contents", what);
            }
            if step % 32 == 31 {
                rcu.synchronize_rcu();
            }
        }
        let mut back: Vec<(u64, u64, usize)> = t
            .iter_rev(0, u64::MAX)
            .map(|(s, e, x)| (s, e, x.get()))
            .collect();
        back.reverse();
        prop_assert_eq!(back, model_entries(&m), "reverse iteration");
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// P1..P5 on the VMA tree's flags (gap tracking, RCU mode).
    #[test]
    fn random_sequences_match_the_model_vma_flags((space, ops) in ops_strategy(160)) {
        run_sequence(VMA, space, &ops)?;
    }

    /// The same without RCU: appends happen in place.
    #[test]
    fn random_sequences_match_the_model_alloc_range((space, ops) in ops_strategy(160)) {
        run_sequence(MtFlags::ALLOC_RANGE, space, &ops)?;
    }

    /// The same with range_64 internal nodes (no gap tracking: the gap
    /// search visits every leaf).
    #[test]
    fn random_sequences_match_the_model_no_flags((space, ops) in ops_strategy(160)) {
        run_sequence(MtFlags::empty(), space, &ops)?;
    }
}

/// A checkpoint: the tree is valid and holds exactly the model's ranges.
fn assert_matches_model(t: &Tree<'_>, m: &Model, what: &str) {
    match t.validate() {
        Ok((entries, _)) => assert_eq!(entries, m.0.len(), "{what}: entry count"),
        Err(e) => panic!("{what}: invalid tree: {e}"),
    }
    assert!(
        tree_entries(t) == model_entries(m),
        "{what}: contents differ from the model"
    );
}

fn scale_store(t: &Tree<'_>, m: &mut Model, lo: u64, hi: u64, val: usize) {
    let mut w = t.lock();
    w.preallocate(lo, hi, v(val), Gfp::KERNEL).unwrap();
    w.store_prealloc(lo, hi, v(val));
    let (req, used) = w.nodes_requested_used();
    assert!(
        used <= req,
        "[{lo}, {hi}] = {val}: used {used} > requested {req}"
    );
    drop(w);
    m.store(lo, hi, val);
}

/// 100k entries, inserted in shuffled order; then 20k operations of
/// churn. Validated and compared with the model at checkpoints (every
/// 25k inserts, every 10k churn steps).
#[test]
fn scale_100k_entries_match_the_model() {
    const N: usize = 100_000;
    const STRIDE: u64 = 64;
    const CHURN: usize = 20_000;
    with_tree(VMA, |t, rcu: &Rcu<SimPlatform>| {
        let mut rng = XorShift64::new(0x5ca1e);
        let mut m = Model::default();
        let mut order: Vec<usize> = (0..N).collect();
        rng.shuffle(&mut order);
        for (step, &i) in order.iter().enumerate() {
            let lo = i as u64 * STRIDE + rng.below(8) as u64;
            let hi = lo + rng.below(48) as u64;
            scale_store(t, &mut m, lo, hi, i + 1);
            if step % 25_000 == 24_999 {
                assert_matches_model(t, &m, &alloc::format!("build, {} entries", step + 1));
                rcu.rcu_barrier();
            }
        }
        assert_eq!(m.0.len(), N);
        let (_, nodes) = t.validate().unwrap();
        std::println!(
            "maple scale: {N} entries in {nodes} nodes, height {}",
            t.height()
        );
        assert!(t.height() >= 4, "height {} for {N} entries", t.height());

        let space = N as u64 * STRIDE;
        let below = |rng: &mut XorShift64, n: u64| rng.below(n as usize) as u64;
        for step in 0..CHURN {
            let val = N + step + 1;
            let at = below(&mut rng, space);
            match rng.below(10) {
                // Erase whatever is at or after `at`.
                0..=3 => {
                    if let Some((s, e, x)) = m.find(at, u64::MAX) {
                        assert_eq!(t.lock().erase(s, Gfp::KERNEL), Ok(v(x)), "erase {s}");
                        m.store(s, e, 0);
                    }
                }
                // Overwrite a range spanning up to ~40 entries.
                4..=6 => {
                    let hi = (at + below(&mut rng, 40 * STRIDE)).min(space - 1);
                    scale_store(t, &mut m, at, hi, val);
                }
                // NULL store over up to ~20 entries.
                7 => {
                    let hi = (at + below(&mut rng, 20 * STRIDE)).min(space - 1);
                    scale_store(t, &mut m, at, hi, 0);
                }
                // A short store (often into a gap).
                _ => {
                    let hi = at + below(&mut rng, 16);
                    scale_store(t, &mut m, at, hi, val);
                }
            }
            for _ in 0..2 {
                let i = below(&mut rng, space);
                let got = t.walk_range(i);
                match m.load(i) {
                    Some((s, e, x)) => assert_eq!(got, (s, e, v(x)), "churn step {step}: walk {i}"),
                    None => assert_eq!(got.2, None, "churn step {step}: load {i}"),
                }
            }
            if step % 10_000 == 9_999 {
                assert_matches_model(t, &m, &alloc::format!("churn step {step}"));
                for _ in 0..8 {
                    let min = below(&mut rng, space);
                    let max = min + below(&mut rng, space / 4);
                    let size = 1 + below(&mut rng, 4 * STRIDE);
                    assert_eq!(
                        t.empty_area(min, max, size).ok(),
                        m.empty_area(min, max, size, false)
                    );
                    assert_eq!(
                        t.empty_area_rev(min, max, size).ok(),
                        m.empty_area(min, max, size, true)
                    );
                }
                rcu.rcu_barrier();
            }
        }
        assert_eq!(t.stat(MapleStat::PreallocMiss), 0);
    });
}

/// Totals of a workload's preallocations.
#[derive(Default, Debug)]
struct Requests {
    stores: u64,
    /// Nodes requested (vacant/sufficient height) and with the full-height
    /// worst case, over all stores.
    requested: u64,
    full: u64,
    /// The same over bulk requests only (full-height request > 1: the ones
    /// that go through a prefilled sheaf).
    bulk_requested: u64,
    bulk_full: u64,
    used: u64,
}

impl Requests {
    fn add(&mut self, (req, used, full): (usize, usize, u64)) {
        self.stores += 1;
        self.requested += req as u64;
        self.full += full;
        self.used += used as u64;
        if full > 1 {
            self.bulk_requested += req as u64;
            self.bulk_full += full;
        }
    }
}

/// An address space's VMAs, placed and torn down like mmap/munmap/mprotect
/// do (stress-ng mmap style): the tree holds one entry per VMA over
/// `[start, end - 1]`, values are VMA ids.
fn mmap_churn(t: &Tree<'_>, rcu: &Rcu<SimPlatform>, steps: usize) -> Requests {
    const PAGE: u64 = 4096;
    const LOW: u64 = 0x1_0000;
    const HIGH: u64 = 0x7fff_ffff_efff;
    const TARGET: usize = 1500;
    let mut rng = XorShift64::new(0x6d6d_6170);
    let mut m = Model::default();
    let mut r = Requests::default();
    let mut next_id = 1usize;
    let mut id = || {
        next_id += 1;
        next_id
    };
    let mut w = |m: &mut Model, lo, hi, val| {
        let res = write(t, m, lo, hi, val, true).expect("store");
        r.add(res);
    };
    // A random existing VMA.
    let pick = |m: &Model, rng: &mut XorShift64| -> Option<(u64, u64, usize)> {
        let at = LOW + rng.next_u64() % (HIGH - LOW);
        m.find(at, u64::MAX).or_else(|| m.find(0, u64::MAX))
    };
    for step in 0..steps {
        let pages = |rng: &mut XorShift64| {
            if rng.below(8) == 0 {
                1 + rng.below(1024) as u64
            } else {
                1 + rng.below(32) as u64
            }
        };
        let n = m.0.len();
        let roll = rng.below(100);
        let mmap_bias = if n < TARGET { 60 } else { 35 };
        if roll < mmap_bias || n == 0 {
            // mmap: top-down placement (get_unmapped_area), merged with
            // the VMA above half the time (vma_expand stores the grown VMA).
            let len = pages(&mut rng) * PAGE;
            let Ok(start) = t.empty_area_rev(LOW, HIGH, len) else {
                continue;
            };
            let end = start + len - 1;
            match m.load(end + 1) {
                Some((_, above_end, above)) if rng.below(2) == 0 => {
                    w(&mut m, start, above_end, above)
                }
                _ => w(&mut m, start, end, id()),
            }
        } else if roll < mmap_bias + 20 {
            // munmap of a whole VMA.
            if let Some((s, e, _)) = pick(&m, &mut rng) {
                w(&mut m, s, e, 0);
            }
        } else if roll < mmap_bias + 35 {
            // Partial munmap: split (the tail becomes a new VMA), then
            // clear the hole.
            if let Some((s, e, _)) = pick(&m, &mut rng) {
                let np = (e + 1 - s) / PAGE;
                if np >= 3 {
                    let a = s + (1 + rng.below(np as usize - 2) as u64) * PAGE;
                    let b = a + (1 + rng.below(((e + 1 - a) / PAGE - 1) as usize) as u64) * PAGE;
                    w(&mut m, b, e, id());
                    w(&mut m, a, b - 1, 0);
                } else {
                    w(&mut m, s, s + PAGE - 1, 0);
                }
            }
        } else if roll < mmap_bias + 50 {
            // mprotect of part of a VMA: the part becomes its own VMA.
            if let Some((s, e, _)) = pick(&m, &mut rng) {
                let np = (e + 1 - s) / PAGE;
                let a = s + rng.below(np as usize) as u64 * PAGE;
                let b = a + (1 + rng.below(((e + 1 - a) / PAGE) as usize) as u64) * PAGE;
                if a != s || b != e + 1 {
                    w(&mut m, a, b - 1, id());
                }
            }
        } else {
            // munmap across several VMAs.
            if let Some((s, _, _)) = pick(&m, &mut rng) {
                let span = (1 + rng.below(64) as u64) * 32 * PAGE;
                w(&mut m, s, (s + span - 1).min(HIGH), 0);
            }
        }
        if step % 1000 == 999 {
            assert_matches_model(t, &m, &alloc::format!("mmap churn step {step}"));
            rcu.rcu_barrier();
        }
    }
    assert_matches_model(t, &m, "mmap churn end");
    r
}

/// Linux's series "Track node vacancy to reduce worst case allocation
/// counts" reports ~19% fewer bulk node requests under stress-ng mmap.
/// The same kind of churn here, on the VMA tree's flags.
#[test]
fn vacant_height_requests_fewer_nodes_under_mmap_churn() {
    with_tree(VMA, |t, rcu| {
        let r = mmap_churn(t, rcu, 20_000);
        let pct = |a: u64, b: u64| 100.0 * (b - a) as f64 / b.max(1) as f64;
        std::println!(
            "maple prealloc, mmap churn ({} stores, height {}): nodes requested {} (vacant/sufficient height) \
             vs {} (full height): {:.1}% fewer; bulk requests {} vs {}: {:.1}% fewer; nodes used {}",
            r.stores,
            t.height(),
            r.requested,
            r.full,
            pct(r.requested, r.full),
            r.bulk_requested,
            r.bulk_full,
            pct(r.bulk_requested, r.bulk_full),
            r.used,
        );
        assert_eq!(r.requested, t.stat(MapleStat::NodesRequested));
        assert_eq!(r.full, t.stat(MapleStat::NodesRequestedFullHeight));
        assert!(r.used <= r.requested);
        assert!(t.stat(MapleStat::StoreSpanning) > 0 && t.stat(MapleStat::StoreSplit) > 0);
        assert!(
            r.bulk_requested < r.bulk_full,
            "no reduction: {} vs {}",
            r.bulk_requested,
            r.bulk_full
        );
    });
}

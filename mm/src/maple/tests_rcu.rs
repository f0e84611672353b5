//! RCU stress of the maple tree on the simulated machine: one writer
//! thread stores and erases while reader threads (one per simulated CPU)
//! walk, find, iterate and search gaps without the lock.
//!
//! Nodes come from a `POISON` cache: a node freed after its grace period
//! is filled with 0x6b, so a reader that still walked it would read
//! poison (an impossible node type or entry). Debug caches have no
//! sheaves, so the tree preallocates node by node and `kfree_rcu` goes
//! through RCU's kvfree batching, drained on every tick here so that
//! nodes are freed (and poisoned) as soon as their grace period ends.
//!
//! # What the readers check
//!
//! The writer's operations are computed before the threads start: op `k`
//! writes value `val(k)` (or NULL) over `[lo_k, hi_k]`. State `s` is the
//! tree after ops `0..s`; the writer publishes `done = s` after op `s - 1`
//! returns. A reader notes `done` before (`a`) and after (`b`) a read: the
//! read overlapped the states `a..=b + 1` (op `b` may be in progress), so
//! whatever it saw at index `i` must be the content of `i` in one of those
//! states ([`Ops::possible`]): the old or the new value of a range, never
//! a torn view, a value from a range that does not cover `i`, or poison.
//! Values are tagged (`TAG` in the low byte), so poison (0x6b..) or a
//! node pointer read as an entry is recognised as such.
//!
//! At the end: the tree equals the model; after `kvfree_rcu_barrier` the
//! cache's active objects are exactly the tree's nodes (every node the
//! tree freed was freed by the cache), and after `destroy` none; no freed
//! node was written to (the poison is intact when reallocated).
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

use super::tests::Model;
use super::*;
use crate::Gfp;
use crate::addr::CpuId;
use crate::page_alloc::PageAlloc;
use crate::rand::XorShift64;
use crate::rcu::Rcu;
use crate::sim::{self, SimPlatform};
use crate::slab::{KmemCache, SlabFlags, SlabStat};

type Tree<'a> = MapleTree<'a, NonZeroUsize, SimPlatform>;

/// Low byte of every stored value.
const TAG: usize = 0x41;
/// What a poisoned word reads as.
const POISON: usize = 0x6b6b_6b6b_6b6b_6b6b;
/// Index space of the workload.
const SPACE: u64 = 4096;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Store,
    Null,
    /// Erase at `lo` (the entry's first index); the range is the entry's.
    Erase,
}

/// One write of the workload.
#[derive(Clone, Copy, Debug)]
struct WriteOp {
    kind: Kind,
    lo: u64,
    hi: u64,
    /// The value written (0: NULL); for erases, the value removed.
    val: usize,
}

impl WriteOp {
    /// What the range holds after this op.
    fn after(&self) -> usize {
        match self.kind {
            Kind::Store => self.val,
            Kind::Null | Kind::Erase => 0,
        }
    }
}

fn val(k: usize) -> usize {
    ((k + 1) << 8) | TAG
}

/// The writer's operations and the final contents.
struct Ops {
    ops: Vec<WriteOp>,
    model: Model,
}

impl Ops {
    /// `n` random stores (short, medium, and a few spanning many leaves),
    /// NULL stores and erases, keeping a few hundred entries live.
    fn generate(seed: u64, n: usize) -> Ops {
        let mut rng = XorShift64::new(seed);
        let mut below = move |n: u64| rng.below(n as usize) as u64;
        let mut m = Model::default();
        let mut ops = Vec::with_capacity(n);
        for k in 0..n {
            let lo = below(SPACE);
            let len = match below(20) {
                0..=13 => below(16),
                14..=18 => below(128),
                _ => below(SPACE / 2),
            };
            let hi = (lo + len).min(SPACE - 1);
            let op = match below(100) {
                0..=59 => WriteOp {
                    kind: Kind::Store,
                    lo,
                    hi,
                    val: val(k),
                },
                60..=79 => WriteOp {
                    kind: Kind::Null,
                    lo,
                    hi,
                    val: 0,
                },
                _ => match m.find(lo, u64::MAX) {
                    Some((s, e, x)) => WriteOp {
                        kind: Kind::Erase,
                        lo: s,
                        hi: e,
                        val: x,
                    },
                    None => WriteOp {
                        kind: Kind::Null,
                        lo,
                        hi,
                        val: 0,
                    },
                },
            };
            m.store(op.lo, op.hi, op.after());
            ops.push(op);
        }
        Ops { ops, model: m }
    }

    /// Whether index `i` held `got` (0: NULL) in one of the states
    /// `a..=c`: the content at state `a`, or what an op `a..c` covering
    /// `i` wrote.
    fn possible(&self, i: u64, a: usize, c: usize, got: usize) -> bool {
        for j in (0..c).rev() {
            let op = &self.ops[j];
            if op.lo <= i && i <= op.hi {
                if op.after() == got {
                    return true;
                }
                if j < a {
                    return false;
                }
            }
        }
        got == 0
    }

    /// The op that stored `raw`, if `raw` is a value of this workload.
    fn origin(&self, raw: usize) -> Option<&WriteOp> {
        if raw & 0xff != TAG {
            return None;
        }
        let op = self.ops.get((raw >> 8).checked_sub(1)?)?;
        matches!(op.kind, Kind::Store).then_some(op)
    }
}

/// A reader's view of the writer's progress around one read.
struct Window<'o> {
    ops: &'o Ops,
    a: usize,
    c: usize,
    what: String,
}

impl Window<'_> {
    /// Checks an entry `raw` seen over `[lo, hi]`, at index `i` (inside
    /// the range).
    fn entry(&self, i: u64, lo: u64, hi: u64, raw: usize) {
        let what = &self.what;
        assert!(
            lo <= i && i <= hi,
            "{what}: [{lo:#x}, {hi:#x}] misses {i:#x}"
        );
        assert_ne!(raw, POISON, "{what}: read poison (a freed node)");
        let op = self
            .ops
            .origin(raw)
            .unwrap_or_else(|| panic!("{what}: {raw:#x} at {i:#x} was never stored"));
        assert!(
            op.lo <= lo && hi <= op.hi,
            "{what}: {raw:#x} seen over [{lo:#x}, {hi:#x}], stored over [{:#x}, {:#x}]",
            op.lo,
            op.hi
        );
        assert!(
            self.ops.possible(i, self.a, self.c, raw),
            "{what}: {raw:#x} at {i:#x} is in none of the states {}..={}",
            self.a,
            self.c
        );
    }

    /// Checks that `i` could be NULL.
    fn null(&self, i: u64) {
        assert!(
            self.ops.possible(i, self.a, self.c, 0),
            "{}: {i:#x} is NULL in none of the states {}..={}",
            self.what,
            self.a,
            self.c
        );
    }
}

/// One random read; `done` is the writer's progress.
fn read_once(t: &Tree<'_>, ops: &Ops, done: &AtomicUsize, rng: &mut XorShift64) {
    let i = rng.below(SPACE as usize) as u64;
    let wide = rng.below(8) == 0;
    let span = rng.below(if wide { 2048 } else { 64 }) as u64;
    let kind = rng.below(7);
    let a = done.load(Acquire);
    let mut seen: Vec<(u64, u64, usize)> = Vec::new();
    let mut found_none = false;
    let mut gap = None;
    match kind {
        0 | 1 => {
            let (lo, hi, e) = t.walk_range(i);
            seen.push((lo, hi, e.map_or(0, NonZeroUsize::get)));
        }
        2 => match t.find(i, i + span) {
            Some((lo, hi, e)) => seen.push((lo, hi, e.get())),
            None => found_none = true,
        },
        3 => match t.find_prev(i, i.saturating_sub(span)) {
            Some((lo, hi, e)) => seen.push((lo, hi, e.get())),
            None => found_none = true,
        },
        4 => seen.extend(t.iter(i, i + span).map(|(lo, hi, e)| (lo, hi, e.get()))),
        5 => {
            seen.extend(
                t.iter_rev(i.saturating_sub(span), i)
                    .map(|(lo, hi, e)| (lo, hi, e.get())),
            );
            seen.reverse();
        }
        _ => gap = Some(t.empty_area(i, i + span, 1 + span / 4)),
    }
    let b = done.load(Acquire);
    let w = Window {
        ops,
        a,
        c: (b + 1).min(ops.ops.len()),
        what: format!("read kind {kind} at {i:#x} span {span:#x}"),
    };
    match kind {
        0 | 1 => {
            let (lo, hi, raw) = seen[0];
            if raw == 0 {
                assert!(lo <= i && i <= hi, "{}: NULL range misses {i:#x}", w.what);
                w.null(i);
            } else {
                w.entry(i, lo, hi, raw);
            }
        }
        2 | 3 if found_none => w.null(i),
        2 => {
            let (lo, hi, raw) = seen[0];
            assert!(
                hi >= i && lo <= i + span,
                "{}: outside the window: found [{lo:#x}, {hi:#x}] = {raw:#x}",
                w.what
            );
            w.entry(lo.max(i), lo, hi, raw);
        }
        3 => {
            let (lo, hi, raw) = seen[0];
            assert!(
                lo <= i && hi >= i.saturating_sub(span),
                "{}: outside",
                w.what
            );
            w.entry(hi.min(i), lo, hi, raw);
        }
        4 | 5 => {
            let (start, end) = if kind == 4 {
                (i, i + span)
            } else {
                (i.saturating_sub(span), i)
            };
            // Each step of an iteration is its own read: a range found
            // by a later step may overlap an earlier one after a
            // concurrent store, but the iteration always moves on.
            for pair in seen.windows(2) {
                let moved_on = if kind == 4 {
                    pair[0].1 < pair[1].1
                } else {
                    pair[0].0 < pair[1].0
                };
                assert!(moved_on, "{}: iteration went back: {pair:x?}", w.what);
            }
            for &(lo, hi, raw) in &seen {
                assert!(hi >= start && lo <= end, "{}: outside", w.what);
                w.entry(lo.clamp(start, end), lo, hi, raw);
            }
        }
        _ => match gap.expect("gap search ran") {
            Ok(s) => {
                assert!(
                    s >= i && s + span / 4 <= i + span,
                    "{}: area at {s:#x} outside the window",
                    w.what
                );
                w.null(s);
            }
            Err(e) => assert_eq!(e, MapleError::Busy, "{}", w.what),
        },
    }
}

/// Takes a CPU offline when dropped, also when its thread panics, so
/// that a failure ends the test instead of stalling grace periods.
struct OfflineOnDrop<'a>(&'a Rcu<SimPlatform>, u32);

impl Drop for OfflineOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cpu_offline(CpuId::new(self.1));
    }
}

/// Sets the flag when dropped (the writer finished, or panicked).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// What a CPU's timer interrupt does for RCU, plus running callbacks.
fn tick(rcu: &Rcu<SimPlatform>) {
    if rcu.sched_clock_irq() {
        rcu.rcu_core();
    }
}

/// The stress run: CPU 0 writes `n_ops` operations, CPUs 1.. read until
/// it is done.
fn stress(nr_cpus: usize, flags: MtFlags, seed: u64, n_ops: usize) {
    let ops = Ops::generate(seed, n_ops);
    sim::set_cpu(0);
    let pa: PageAlloc<SimPlatform> = sim::machine(1 << 13, nr_cpus);
    let rcu = Rcu::new(pa.platform().clone());
    // Submit kvfree batches on every tick: freed nodes are poisoned as
    // soon as their grace period allows.
    rcu.set_kvfree_drain_ns(0);
    let args = KmemCacheArgs {
        flags: SlabFlags::POISON,
        ..node_cache_args()
    };
    let cache = KmemCache::new(&pa, "maple_node_poison", NODE_SIZE, args)
        .unwrap()
        .with_rcu(&rcu);
    let tree = Tree::new(&cache, &rcu, flags);
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for cpu in 1..nr_cpus {
            let (tree, ops, rcu, done, finished, reads, started) =
                (&tree, &ops, &rcu, &done, &finished, &reads, &started);
            s.spawn(move || {
                sim::set_cpu(cpu as u32);
                let _offline = OfflineOnDrop(rcu, cpu as u32);
                let mut rng = XorShift64::new(seed ^ (cpu as u64) << 40);
                let mut n = 0;
                started.fetch_add(1, Release);
                // At least one read, however late the thread runs.
                loop {
                    read_once(tree, ops, done, &mut rng);
                    n += 1;
                    tick(rcu);
                    if finished.load(Acquire) {
                        break;
                    }
                }
                reads.fetch_add(n, Relaxed);
            });
        }
        let _offline = OfflineOnDrop(&rcu, 0);
        let _finished = SetOnDrop(&finished);
        // The writer starts when the readers run: on a loaded machine a
        // fast writer could otherwise finish before any of them started.
        while started.load(Acquire) < nr_cpus - 1 {
            std::thread::yield_now();
        }
        for (k, op) in ops.ops.iter().enumerate() {
            let mut w = tree.lock();
            match op.kind {
                Kind::Store | Kind::Null => {
                    let e = NonZeroUsize::new(op.val);
                    if k % 2 == 0 {
                        w.preallocate(op.lo, op.hi, e, Gfp::KERNEL).unwrap();
                        w.store_prealloc(op.lo, op.hi, e);
                    } else {
                        w.store_range(op.lo, op.hi, e, Gfp::KERNEL).unwrap();
                    }
                }
                Kind::Erase => {
                    let got = w.erase(op.lo, Gfp::KERNEL).unwrap();
                    assert_eq!(got.map(NonZeroUsize::get), Some(op.val), "op {k}: {op:?}");
                }
            }
            let (req, used) = w.nodes_requested_used();
            assert!(used <= req, "op {k}: used {used} > requested {req}");
            drop(w);
            done.store(k + 1, Release);
            tick(&rcu);
        }
    });
    rcu.cpu_online(CpuId::new(0));

    let restarts = tree.stat(MapleStat::ReadRestart);
    let freed = tree.stat(MapleStat::NodesFreed);
    std::println!(
        "maple rcu stress, {nr_cpus} CPUs, {flags:?}: {} writes, {} reads, {restarts} read restarts, \
         {freed} nodes freed",
        ops.ops.len(),
        reads.load(Relaxed),
    );
    assert!(nr_cpus == 1 || reads.load(Relaxed) > 0, "no reads ran");
    assert_eq!(tree.stat(MapleStat::PreallocMiss), 0);

    // Final contents.
    let (entries, nodes) = tree
        .validate()
        .unwrap_or_else(|e| panic!("invalid tree: {e}"));
    let want: Vec<(u64, u64, usize)> = ops.model.0.iter().map(|(s, (e, x))| (*s, *e, *x)).collect();
    let got: Vec<(u64, u64, usize)> = tree
        .iter(0, u64::MAX)
        .map(|(s, e, x)| (s, e, x.get()))
        .collect();
    assert_eq!(entries, want.len());
    assert!(got == want, "final contents differ from the model");

    // Every node the tree freed went back to the cache: what is left
    // active is the tree.
    rcu.kvfree_rcu_barrier();
    assert!(freed > 0);
    assert_eq!(
        cache.info().active_objs,
        nodes as u64,
        "freed nodes still held"
    );
    assert_eq!(
        cache.stats().get(SlabStat::Frees),
        freed + tree.stat(MapleStat::NodesUnused),
        "frees = nodes freed through RCU + preallocated nodes never used"
    );
    tree.destroy();
    rcu.kvfree_rcu_barrier();
    assert_eq!(cache.info().active_objs, 0, "destroy left nodes behind");
    assert_eq!(
        tree.stat(MapleStat::NodesFreed),
        cache.stats().get(SlabStat::Allocs) - tree.stat(MapleStat::NodesUnused)
    );
    assert_eq!(
        cache.stats().get(SlabStat::PoisonCorrupt),
        0,
        "a freed node was written"
    );
}

#[test]
fn readers_see_old_or_new_values_never_poison_2_cpus() {
    stress(2, VMA_FLAGS, 0x2c, 25_000);
}

#[test]
fn readers_see_old_or_new_values_never_poison_4_cpus() {
    stress(4, VMA_FLAGS, 0x4c, 25_000);
}

/// Plain range_64 internal nodes (no gap tracking) in RCU mode.
#[test]
fn readers_see_old_or_new_values_without_gap_tracking_2_cpus() {
    stress(2, MtFlags::USE_RCU, 0x2d, 12_000);
}

const VMA_FLAGS: MtFlags = super::tests::VMA;

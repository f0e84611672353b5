//! Benchmark: our buddy page allocator against `buddy_system_allocator`.
//!
//! Both allocators manage the same frames (a 256 MiB machine, the first
//! 1 MiB kept out) and run the same workloads from the same pseudo-random
//! sequence, in one process, so the ratios compare like with like:
//!
//! - (a) order-0 alloc + free pairs;
//! - (b) order-0 batches: 64 allocs, then the 64 frees;
//! - (c) mixed orders 0..=5 over a working set of [`WORKING_SET`] blocks:
//!   free a random one, allocate a random order in its place.
//!
//! The unit is one alloc + free pair. Each measurement runs [`REPEATS`]
//! times on a fresh allocator and the median is printed, with our
//! per-CPU-list counters of the last run. Ours is `mm::sim::page_alloc` on
//! one CPU, so the per-CPU lists are on but never contended; theirs is
//! `FrameAllocator::<11>` (largest block 2^10 frames, as our
//! `MAX_PAGE_ORDER`), used directly without its lock.
//!
//! Run: `cargo bench -p mm --features std --bench buddy` (release profile).

use std::hint::black_box;
use std::time::Instant;

use buddy_system_allocator::FrameAllocator;
use mm::page_alloc::{PaStat, PageAlloc, ZoneLayout};
use mm::rand::XorShift64;
use mm::sim::{self, SimPlatform};
use mm::{Gfp, Order, Pfn};

/// 256 MiB of 4 KiB frames.
const NR_PAGES: usize = 65536;
/// Frames below this are kept out of both allocators (the first 1 MiB).
const RESERVED_END: usize = 256;
/// Measurements per workload and allocator; the median is reported.
const REPEATS: usize = 7;
/// Alloc + free pairs per measurement in (a) and (b).
const PAIRS: usize = 1 << 20;
/// Blocks per batch in (b).
const BATCH: usize = 64;
/// Live blocks in (c).
const WORKING_SET: usize = 1024;
/// Free + alloc steps per measurement in (c).
const STEPS: usize = 1 << 19;
/// Largest order in (c).
const MIXED_MAX_ORDER: u32 = 5;
/// The xorshift seed shared by both allocators.
const SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// What a workload needs from an allocator: blocks of 2^order frames,
/// named by their first frame.
trait Frames {
    fn alloc(&mut self, order: u32) -> usize;
    fn free(&mut self, frame: usize, order: u32);
}

/// Ours, on one simulated CPU.
struct Ours(PageAlloc<SimPlatform>);

impl Ours {
    fn new() -> Self {
        sim::set_cpu(0);
        let reserved = Pfn::new(0)..Pfn::new(RESERVED_END as u64);
        Self(sim::bench_page_alloc(
            NR_PAGES,
            1,
            reserved,
            ZoneLayout::X86_64,
        ))
    }
}

impl Frames for Ours {
    #[inline]
    fn alloc(&mut self, order: u32) -> usize {
        let pfn = self
            .0
            .alloc_pages(black_box(Gfp::KERNEL), Order::new(black_box(order)));
        black_box(pfn).expect("ours: out of memory").as_usize()
    }

    #[inline]
    fn free(&mut self, frame: usize, order: u32) {
        let r = self.0.free_pages(
            Pfn::new(black_box(frame) as u64),
            Order::new(black_box(order)),
        );
        black_box(r).expect("ours: bad free");
    }
}

/// `buddy_system_allocator`'s frame allocator: a `BTreeSet` of free block
/// starts per order, no per-CPU cache, no per-frame records.
struct Theirs(FrameAllocator<11>);

impl Theirs {
    fn new() -> Self {
        let mut a = FrameAllocator::<11>::new();
        a.add_frame(RESERVED_END, NR_PAGES);
        Self(a)
    }
}

impl Frames for Theirs {
    #[inline]
    fn alloc(&mut self, order: u32) -> usize {
        let frame = self.0.alloc(black_box(1 << order));
        black_box(frame).expect("theirs: out of memory")
    }

    #[inline]
    fn free(&mut self, frame: usize, order: u32) {
        self.0.dealloc(black_box(frame), black_box(1 << order));
    }
}

/// (a): alloc one frame, free it. Returns ns per pair.
fn order0_pairs(a: &mut impl Frames) -> f64 {
    let start = Instant::now();
    for _ in 0..PAIRS {
        let f = a.alloc(0);
        a.free(f, 0);
    }
    start.elapsed().as_nanos() as f64 / PAIRS as f64
}

/// (b): alloc 64 frames, then free them, oldest first. Returns ns per pair.
fn order0_batch(a: &mut impl Frames) -> f64 {
    let mut held = [0usize; BATCH];
    let start = Instant::now();
    for _ in 0..PAIRS / BATCH {
        for slot in held.iter_mut() {
            *slot = a.alloc(0);
        }
        for &f in &held {
            a.free(f, 0);
        }
    }
    start.elapsed().as_nanos() as f64 / (PAIRS / BATCH * BATCH) as f64
}

/// (c): a working set of mixed orders; each step frees a random block and
/// allocates a random order. Returns ns per step (one free + one alloc).
fn mixed(a: &mut impl Frames) -> f64 {
    let mut rng = XorShift64::new(SEED);
    let order = |rng: &mut XorShift64| rng.below(MIXED_MAX_ORDER as usize + 1) as u32;
    let mut live: Vec<(usize, u32)> = (0..WORKING_SET)
        .map(|_| {
            let o = order(&mut rng);
            (a.alloc(o), o)
        })
        .collect();
    let start = Instant::now();
    for _ in 0..STEPS {
        let slot = &mut live[rng.below(WORKING_SET)];
        a.free(slot.0, slot.1);
        let o = order(&mut rng);
        *slot = (a.alloc(o), o);
    }
    let ns = start.elapsed().as_nanos() as f64 / STEPS as f64;
    for (f, o) in live {
        a.free(f, o);
    }
    ns
}

/// A workload's name and its runs on each allocator.
type Workload = (&'static str, fn(&mut Ours) -> f64, fn(&mut Theirs) -> f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Our counters of one run.
struct PcpCounters {
    allocs: u64,
    alloc_pcp: u64,
    pcp_refill: u64,
    free_pcp: u64,
    pcp_drain: u64,
    alloc_zone: u64,
    merge: u64,
}

impl PcpCounters {
    fn of(pa: &PageAlloc<SimPlatform>) -> Self {
        let s = pa.stats();
        Self {
            allocs: s.get(PaStat::AllocFastpath) + s.get(PaStat::AllocSlowpath),
            alloc_pcp: s.get(PaStat::AllocPcp),
            pcp_refill: s.get(PaStat::PcpRefill),
            free_pcp: s.get(PaStat::FreePcp),
            pcp_drain: s.get(PaStat::PcpDrain),
            alloc_zone: s.get(PaStat::AllocZone),
            merge: s.get(PaStat::Merge),
        }
    }
}

/// One workload: `REPEATS` runs each on fresh allocators, interleaved so
/// that drift on a noisy machine hits both alike.
fn measure(
    run: fn(&mut Ours) -> f64,
    run_theirs: fn(&mut Theirs) -> f64,
) -> (f64, f64, PcpCounters) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut counters = None;
    for _ in 0..REPEATS {
        let mut a = Ours::new();
        ours.push(run(&mut a));
        a.0.drain_all_pages();
        a.0.check().expect("ours: free lists broken after the run");
        assert_eq!(
            a.0.nr_free_pages(),
            a.0.managed_pages(),
            "ours: leaked pages"
        );
        counters = Some(PcpCounters::of(&a.0));
        let mut b = Theirs::new();
        theirs.push(run_theirs(&mut b));
    }
    (median(ours), median(theirs), counters.expect("REPEATS > 0"))
}

fn main() {
    let workloads: [Workload; 3] = [
        ("(a) order-0 alloc+free", order0_pairs, order0_pairs),
        ("(b) order-0 batch of 64", order0_batch, order0_batch),
        ("(c) mixed orders 0..=5, 1024 live", mixed, mixed),
    ];
    println!(
        "buddy: {NR_PAGES} frames ({} MiB), 1 CPU, median of {REPEATS}; ns per alloc+free pair",
        NR_PAGES * 4 / 1024
    );
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12}",
        "workload", "ours ns", "theirs ns", "ours/theirs", "theirs/ours"
    );
    let mut all_counters = Vec::new();
    for (name, run, run_theirs) in workloads {
        let (ours, theirs, counters) = measure(run, run_theirs);
        println!(
            "{name:<34} {ours:>10.1} {theirs:>10.1} {:>11.2}x {:>11.2}x",
            ours / theirs,
            theirs / ours
        );
        all_counters.push((name, counters));
    }
    println!();
    println!("our counters, last run of each workload:");
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "workload",
        "allocs",
        "alloc_pcp",
        "pcp hit",
        "pcp_refill",
        "free_pcp",
        "pcp_drain",
        "alloc_zone",
        "merge"
    );
    for (name, c) in all_counters {
        let hit = 100.0 * c.alloc_pcp as f64 / c.allocs.max(1) as f64;
        println!(
            "{name:<34} {:>10} {:>10} {:>7.1}% {:>10} {:>10} {:>10} {:>10} {:>10}",
            c.allocs,
            c.alloc_pcp,
            hit,
            c.pcp_refill,
            c.free_pcp,
            c.pcp_drain,
            c.alloc_zone,
            c.merge
        );
    }
}

//! Benchmark: SLUB object allocation against `linked_list_allocator`.
//!
//! Four allocators, one process, the same workloads, repetitions
//! interleaved so that drift on a noisy machine hits all of them alike:
//!
//! - `KmemCache` of 64 and 256 bytes with `sheaf_capacity: 0`: the classic
//!   SLUB paths (per-CPU slab freelist, partial lists), the baseline
//!   *without sheaves*;
//! - the same with per-CPU sheaves of [`SHEAF_CAPACITY`] objects (Linux
//!   6.18's layer above the CPU slab: main and spare sheaf per CPU, a barn
//!   per node);
//! - `Kmalloc::kmalloc` of the same sizes (size-class lookup, then the
//!   class's cache);
//! - `linked_list_allocator::LockedHeap` 0.10 (first fit over a sorted
//!   list of holes, behind its spinlock) over a 16 MiB `Vec`-backed region,
//!   with the same sizes and 8-byte alignment.
//!
//! Workloads, in ns per alloc + free pair:
//!
//! - (a) alloc one object, free it, [`PAIRS`] times;
//! - (b) alloc [`BATCH`] objects, then free them oldest first;
//! - (c) cross-CPU: thread A (CPU 0) allocates batches of [`BATCH`] and
//!   hands each through a ring of [`CROSS_DEPTH`] batches to thread B
//!   (CPU 1), which frees them, both at once: every free is remote. The
//!   figure is A's mean time per alloc plus B's mean time per free, timed
//!   per batch without the time either waits for the other, and without
//!   each thread's slowest 5 % of batches (see [`cross_cpu`]).
//!
//! - (d) a fragmented heap: kmalloc against `linked_list_allocator` only,
//!   [`MIXED_LIVE`] live objects of random sizes 8..=2048 bytes; each of
//!   [`MIXED_STEPS`] steps frees a random live object and allocates one of
//!   a new random size in its place (xorshift, fixed seed, the same
//!   sequence for both). First fit walks its list of holes, which grows
//!   with the live set; kmalloc picks a size class and a per-CPU freelist.
//!
//! Ours runs on `mm::sim::page_alloc` (64 MiB, 2 simulated CPUs, the first
//! 1 MiB reserved); each measurement uses fresh caches and is repeated
//! [`REPEATS`] times; the median is printed, then our counters of the last
//! run, which say which paths the workload took.
//!
//! Run: `cargo bench -p mm --features std --bench slab` (release profile).

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use linked_list_allocator::LockedHeap;
use mm::page_alloc::{PageAlloc, ZoneLayout};
use mm::sim::{self, SimPlatform};
use mm::slab::{Kmalloc, KmemCache, KmemCacheArgs, SlabStat};
use mm::{Gfp, Pfn};

/// 64 MiB of 4 KiB frames: (c) holds the most, about 20 batches of 64.
const NR_PAGES: usize = 16384;
/// Frames below this are kept out (the first 1 MiB).
const RESERVED_END: u64 = 256;
/// Simulated CPUs: (c) needs two.
const NR_CPUS: usize = 2;
/// Measurements per workload and allocator; the median is reported.
const REPEATS: usize = 7;
/// Alloc + free pairs per measurement in (a) and (b).
const PAIRS: usize = 1 << 20;
/// Objects per measurement in (c).
const CROSS_OBJECTS: usize = 1 << 18;
/// Objects per batch in (b) and (c).
const BATCH: usize = 64;
/// Share of each thread's slowest batches left out of (c), in percent.
const CROSS_TRIM_PERCENT: usize = 5;
/// Batches in flight in (c): the ring's size. 4 batches are 8 sheaves of
/// 32, fewer than the barn's `MAX_FULL_SHEAVES` (10): when the host runs
/// the freeing thread alone for a while it can park all it frees in the
/// barn, instead of flushing sheaves to slabs that the allocating CPU
/// would then refill from.
const CROSS_DEPTH: usize = 4;
/// Object sizes measured.
const SIZES: [usize; 2] = [64, 256];
/// Bytes of the `linked_list_allocator` heap.
const HEAP_BYTES: usize = 16 << 20;
/// Sheaf capacity of the "with sheaves" column: 32, the maple-node and VMA
/// cache setting.
const SHEAF_CAPACITY: u32 = 32;

/// Live objects in (d).
const MIXED_LIVE: usize = 8192;
/// Replace steps in (d).
const MIXED_STEPS: usize = 1 << 17;

/// A workload: runs on an allocator, returns ns per alloc + free pair.
type Workload = fn(&dyn Objects) -> f64;

/// What a workload needs: objects of one size, possibly from two threads.
trait Objects: Sync {
    fn alloc(&self) -> NonNull<u8>;
    /// # Safety
    ///
    /// `obj` came from `alloc` on this allocator and is freed once.
    unsafe fn free(&self, obj: NonNull<u8>);
}

/// A `KmemCache` on the simulated machine.
struct Cache<'a>(Box<KmemCache<'a, SimPlatform>>);

impl Objects for Cache<'_> {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        black_box(self.0.alloc(black_box(Gfp::KERNEL))).expect("cache: out of memory")
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: the caller's contract: from this cache, freed once.
        unsafe { self.0.free(black_box(obj)) }
    }
}

/// `kmalloc(size)` from a `Kmalloc` on the simulated machine.
struct Kmem<'a> {
    km: Box<Kmalloc<'a, SimPlatform>>,
    size: usize,
}

impl Objects for Kmem<'_> {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        black_box(self.km.kmalloc(black_box(self.size), Gfp::KERNEL)).expect("kmalloc failed")
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: the caller's contract: from this kmalloc, freed once.
        unsafe { self.km.kfree(black_box(obj)) }
    }
}

/// `linked_list_allocator`'s heap over a region it owns.
struct Theirs {
    heap: LockedHeap,
    layout: std::alloc::Layout,
    /// The region behind `heap`; kept alive (and never touched) here.
    _region: Vec<u64>,
}

impl Theirs {
    fn new(size: usize) -> Self {
        let mut region = vec![0u64; HEAP_BYTES / 8];
        // SAFETY: the region is `HEAP_BYTES` bytes of valid, unused memory
        // that lives as long as `heap` (both are fields of `Self`; a `Vec`'s
        // buffer does not move when the `Vec` does), and only the heap
        // touches it.
        let heap = unsafe { LockedHeap::new(region.as_mut_ptr().cast(), HEAP_BYTES) };
        Self {
            heap,
            layout: std::alloc::Layout::from_size_align(size, 8).expect("layout"),
            _region: region,
        }
    }
}

impl Objects for Theirs {
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        let r = self.heap.lock().allocate_first_fit(black_box(self.layout));
        black_box(r).expect("theirs: out of memory")
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: the caller's contract: from this heap with this layout,
        // freed once.
        unsafe { self.heap.lock().deallocate(black_box(obj), self.layout) }
    }
}

/// (a): alloc one object, free it. Returns ns per pair.
fn pairs(a: &dyn Objects) -> f64 {
    sim::set_cpu(0);
    let start = Instant::now();
    for _ in 0..PAIRS {
        let p = a.alloc();
        // SAFETY: just allocated, freed once.
        unsafe { a.free(p) };
    }
    start.elapsed().as_nanos() as f64 / PAIRS as f64
}

/// (b): alloc `BATCH` objects, then free them, oldest first.
fn batch(a: &dyn Objects) -> f64 {
    sim::set_cpu(0);
    let mut held = [NonNull::dangling(); BATCH];
    let start = Instant::now();
    for _ in 0..PAIRS / BATCH {
        for slot in held.iter_mut() {
            *slot = a.alloc();
        }
        for &p in &held {
            // SAFETY: allocated in this round, freed once.
            unsafe { a.free(p) };
        }
    }
    start.elapsed().as_nanos() as f64 / (PAIRS / BATCH * BATCH) as f64
}

/// The hand-over of (c): a ring of [`CROSS_DEPTH`] batches, one producer
/// (CPU 0) and one consumer (CPU 1), that waits by spinning, then yielding;
/// unlike a channel it never parks a thread, so a wake-up (microseconds)
/// does not drown the allocator's cost.
struct Ring {
    slots: [[AtomicUsize; BATCH]; CROSS_DEPTH],
    /// Batches published. Write: producer, Release, pairs with the
    /// consumer's Acquire before it reads the slot.
    head: AtomicUsize,
    /// Batches consumed. Write: consumer, Release, pairs with the
    /// producer's Acquire before it reuses the slot.
    tail: AtomicUsize,
}

impl Ring {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| std::array::from_fn(|_| AtomicUsize::new(0))),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    fn wait(cond: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !cond() {
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Publishes batch number `n`, filled by `fill`. Returns the time spent
    /// filling (not waiting).
    fn push(&self, n: usize, fill: impl Fn(&AtomicUsize)) -> Duration {
        Self::wait(|| n - self.tail.load(Acquire) < CROSS_DEPTH);
        let start = Instant::now();
        self.slots[n % CROSS_DEPTH].iter().for_each(fill);
        let busy = start.elapsed();
        self.head.store(n + 1, Release);
        busy
    }

    /// Consumes batch number `n` with `drain`. Returns the time spent
    /// draining (not waiting).
    fn pop(&self, n: usize, drain: impl Fn(&AtomicUsize)) -> Duration {
        Self::wait(|| self.head.load(Acquire) > n);
        let start = Instant::now();
        self.slots[n % CROSS_DEPTH].iter().for_each(drain);
        let busy = start.elapsed();
        self.tail.store(n + 1, Release);
        busy
    }
}

/// (c): CPU 0 allocates batches, CPU 1 frees them, through a [`Ring`],
/// both at once. Counts each thread's busy time per batch (its allocs or
/// its frees), not the time it waits for the other, and leaves out the
/// slowest [`CROSS_TRIM_PERCENT`] % of each thread's batches: on a shared
/// host a "CPU" thread is sometimes descheduled for a whole time slice,
/// holding a spinlock the other then spins on, and one such batch (ms)
/// weighs more than thousands of ordinary ones (µs).
fn cross_cpu(a: &dyn Objects) -> f64 {
    let ring = Ring::new();
    let batches = CROSS_OBJECTS / BATCH;
    let (allocs, frees) = std::thread::scope(|s| {
        let ring = &ring;
        let producer = s.spawn(move || {
            sim::set_cpu(0);
            (0..batches)
                .map(|n| ring.push(n, |slot| slot.store(a.alloc().as_ptr() as usize, Relaxed)))
                .collect::<Vec<Duration>>()
        });
        let consumer = s.spawn(move || {
            sim::set_cpu(1);
            (0..batches)
                .map(|n| {
                    ring.pop(n, |slot| {
                        let p = NonNull::new(slot.load(Relaxed) as *mut u8).expect("non-null");
                        // SAFETY: allocated by the other thread, which
                        // handed it over and forgot it; freed once.
                        unsafe { a.free(p) };
                    })
                })
                .collect::<Vec<Duration>>()
        });
        (
            producer.join().expect("producer"),
            consumer.join().expect("consumer"),
        )
    });
    (trimmed_mean(allocs) + trimmed_mean(frees)) / BATCH as f64
}

/// Mean ns of the batches, the slowest [`CROSS_TRIM_PERCENT`] % left out.
fn trimmed_mean(mut batches: Vec<Duration>) -> f64 {
    batches.sort_unstable();
    let keep = batches.len() - batches.len() * CROSS_TRIM_PERCENT / 100;
    let kept = &batches[..keep];
    kept.iter().sum::<Duration>().as_nanos() as f64 / kept.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine() -> PageAlloc<SimPlatform> {
    sim::set_cpu(0);
    let reserved = Pfn::new(0)..Pfn::new(RESERVED_END);
    sim::bench_page_alloc(NR_PAGES, NR_CPUS, reserved, ZoneLayout::X86_64)
}

/// A cache of `size`-byte objects with `sheaf_capacity` (0: no sheaves).
fn cache(pa: &PageAlloc<SimPlatform>, size: usize, sheaf_capacity: u32) -> Cache<'_> {
    let args = KmemCacheArgs {
        sheaf_capacity,
        ..KmemCacheArgs::default()
    };
    Cache(KmemCache::new(pa, "bench", size, args).expect("cache creation"))
}

/// Our counters of one run of one cache: which paths the objects took.
struct Counters {
    allocs: u64,
    /// Served by this CPU's main sheaf.
    alloc_pcs: u64,
    /// Served by this CPU's slab freelist.
    alloc_fast: u64,
    frees: u64,
    free_pcs: u64,
    free_fast: u64,
    /// Full sheaves taken from / given to the barn.
    barn_get: u64,
    barn_put: u64,
    /// Objects moved from slabs into sheaves / from sheaves to slabs.
    refill: u64,
    flush: u64,
    new_slab: u64,
}

impl Counters {
    fn of(c: &KmemCache<'_, SimPlatform>) -> Self {
        let s = c.stats();
        Self {
            allocs: s.get(SlabStat::Allocs),
            alloc_pcs: s.get(SlabStat::AllocPcs),
            alloc_fast: s.get(SlabStat::AllocFastpath),
            frees: s.get(SlabStat::Frees),
            free_pcs: s.get(SlabStat::FreePcs),
            free_fast: s.get(SlabStat::FreeFastpath),
            barn_get: s.get(SlabStat::BarnGet),
            barn_put: s.get(SlabStat::BarnPut),
            refill: s.get(SlabStat::SheafRefill),
            flush: s.get(SlabStat::SheafFlush),
            new_slab: s.get(SlabStat::NewSlab),
        }
    }
}

/// Medians of one workload and size, and our counters of the last run.
struct Row {
    cache: f64,
    sheaves: f64,
    kmalloc: f64,
    theirs: f64,
    counters: [Counters; 2],
}

/// `REPEATS` runs of each allocator, interleaved, each on a fresh machine
/// or heap.
fn measure(run: Workload, size: usize) -> Row {
    let mut ns: [Vec<f64>; 4] = Default::default();
    let mut counters = None;
    for _ in 0..REPEATS {
        let pa = machine();
        let plain = cache(&pa, size, 0);
        ns[0].push(run(&plain));
        let sheaves = cache(&pa, size, SHEAF_CAPACITY);
        ns[1].push(run(&sheaves));
        counters = Some([Counters::of(&plain.0), Counters::of(&sheaves.0)]);
        let k = Kmem {
            km: Kmalloc::new(&pa),
            size,
        };
        ns[2].push(run(&k));
        ns[3].push(run(&Theirs::new(size)));
    }
    let [cache, sheaves, kmalloc, theirs] = ns.map(median);
    Row {
        cache,
        sheaves,
        kmalloc,
        theirs,
        counters: counters.expect("REPEATS > 0"),
    }
}

/// The random sizes of (d): 8..=2048 bytes, skewed to small ones as heap
/// objects are (a random power of two, then a random size up to it).
fn mixed_sizes() -> Vec<usize> {
    let mut rng = mm::rand::XorShift64::new(0x2545_f491_4f6c_dd1d);
    (0..MIXED_LIVE + MIXED_STEPS * 2)
        .map(|_| {
            let x = rng.next_u64();
            let cap = 8usize << (x % 9); // 8 .. 2048
            8 + (x >> 8) as usize % (cap - 7)
        })
        .collect()
}

/// (d) for one allocator, given as alloc(size) and free(ptr, size).
fn mixed(
    sizes: &[usize],
    alloc: impl Fn(usize) -> NonNull<u8>,
    free: impl Fn(NonNull<u8>, usize),
) -> f64 {
    sim::set_cpu(0);
    let mut live: Vec<(NonNull<u8>, usize)> =
        sizes[..MIXED_LIVE].iter().map(|&n| (alloc(n), n)).collect();
    let mut next = MIXED_LIVE;
    let start = Instant::now();
    for _ in 0..MIXED_STEPS {
        let victim = sizes[next] % MIXED_LIVE;
        let n = sizes[next + 1];
        next += 2;
        let (p, old) = live[victim];
        free(p, old);
        live[victim] = (alloc(n), n);
    }
    let ns = start.elapsed().as_nanos() as f64 / MIXED_STEPS as f64;
    for (p, n) in live {
        free(p, n);
    }
    ns
}

/// (d): kmalloc vs linked_list_allocator on a fragmented heap.
fn fragmented() {
    let sizes = mixed_sizes();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let pa = machine();
        let k = Kmalloc::new(&pa);
        ours.push(mixed(
            &sizes,
            |n| black_box(k.kmalloc(n, Gfp::KERNEL)).expect("kmalloc failed"),
            // SAFETY: from this kmalloc, freed once.
            |p, _| unsafe { k.kfree(p) },
        ));
        let t = Theirs::new(8);
        let layout = |n| std::alloc::Layout::from_size_align(n, 8).expect("layout");
        theirs.push(mixed(
            &sizes,
            |n| {
                black_box(t.heap.lock().allocate_first_fit(layout(n)))
                    .expect("theirs: out of memory")
            },
            // SAFETY: from this heap with this layout, freed once.
            |p, n| unsafe { t.heap.lock().deallocate(p, layout(n)) },
        ));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!();
    println!(
        "(d) fragmented heap: {MIXED_LIVE} live objects of 8..=2048 bytes, {MIXED_STEPS} random replacements"
    );
    println!(
        "{:<20} {:>8} {:>8} {:>9} {:>9}",
        "", "kmalloc", "theirs", "kmall/th", "th/kmall"
    );
    println!(
        "{:<20} {ours:>8.1} {theirs:>8.1} {:>8.2}x {:>8.2}x",
        "ns per free+alloc",
        ours / theirs,
        theirs / ours
    );
}

fn main() {
    let workloads: [(&str, Workload); 3] = [
        ("(a) alloc+free", pairs),
        ("(b) batch of 64", batch),
        ("(c) cross-CPU free", cross_cpu),
    ];
    println!(
        "slab: {NR_PAGES} frames ({} MiB), {NR_CPUS} CPUs, median of {REPEATS}; ns per alloc+free pair",
        NR_PAGES * 4 / 1024
    );
    println!(
        "cache = KmemCache without sheaves; sheaves = KmemCache, sheaf_capacity {SHEAF_CAPACITY}"
    );
    println!(
        "theirs = linked_list_allocator 0.10 LockedHeap (first fit), {} MiB",
        HEAP_BYTES >> 20
    );
    println!();
    println!(
        "{:<20} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "workload",
        "size",
        "cache",
        "sheaves",
        "kmalloc",
        "theirs",
        "cache/th",
        "sheav/th",
        "kmall/th"
    );
    let mut all = Vec::new();
    for (name, run) in workloads {
        for size in SIZES {
            let r = measure(run, size);
            println!(
                "{name:<20} {size:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.2}x {:>8.2}x {:>8.2}x",
                r.cache,
                r.sheaves,
                r.kmalloc,
                r.theirs,
                r.cache / r.theirs,
                r.sheaves / r.theirs,
                r.kmalloc / r.theirs,
            );
            all.push((name, size, r.counters));
        }
    }
    println!();
    println!(
        "our counters, last run (share of allocs / frees served by each path; objects refilled into"
    );
    println!("sheaves from slabs count as CPU-slab allocations too, as in Linux 6.18):");
    println!(
        "{:<20} {:>5} {:<8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "workload",
        "size",
        "cache",
        "allocs",
        "a:sheaf",
        "a:cpu",
        "f:sheaf",
        "f:cpu",
        "barn_get",
        "barn_put",
        "refill",
        "flush",
        "new_slab"
    );
    for (name, size, counters) in all {
        for (label, c) in ["plain", "sheaves"].into_iter().zip(counters) {
            let pct = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
            println!(
                "{name:<20} {size:>5} {label:<8} {:>8} {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>8} {:>8} {:>8} {:>8} {:>8}",
                c.allocs,
                pct(c.alloc_pcs, c.allocs),
                pct(c.alloc_fast, c.allocs),
                pct(c.free_pcs, c.frees),
                pct(c.free_fast, c.frees),
                c.barn_get,
                c.barn_put,
                c.refill,
                c.flush,
                c.new_slab
            );
        }
    }
    fragmented();
}

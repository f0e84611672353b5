//! Benchmark: the maple tree against a `BTreeMap` range map and the
//! `rangemap` crate.
//!
//! Three range maps hold the same VMA-like entries (inclusive byte ranges
//! of whole pages, with gaps of varied sizes between them, see [`Layout`])
//! and answer the same queries from the same pseudo-random sequence, in
//! one process, with the repetitions interleaved:
//!
//! - ours: `MapleTree` with the VMA tree's flags (`ALLOC_RANGE | USE_RCU`),
//!   nodes from a `maple_node` cache with sheaves on `mm::sim::page_alloc`
//!   (1 CPU), every read under `rcu_read_lock`, every write through
//!   `tree.lock()` with preallocation (`store_range` / `erase`);
//! - `BTreeMap<start, (last, value)>`: the obvious range map, where a gap
//!   search walks the entries in order from the window's end;
//! - `rangemap` 1.8 `RangeMap<u64, usize>` (half-open ranges): `get`,
//!   `overlapping`, `insert`, `remove`, and `gaps` for the lowest gap. It
//!   has no reverse gap walk (its `Overlapping::next_back` starts at the
//!   end of the whole map), so it sits out the highest-gap rows.
//!
//! Operations, in ns per operation:
//!
//! - load: the entry at a random address (an entry is picked at random,
//!   then an address in it or in the gap after it: most addresses hit);
//! - find-next: the first entry at or after such an address;
//! - store: a new range of 1..=16 pages inside a random gap (never touching
//!   its neighbours), [`STORES`] per measurement in rounds of at most a
//!   quarter of the entries;
//! - erase: the ranges just stored, by their first address (the map is
//!   back to its initial state after each round);
//! - gap low / high: the lowest gap of a size in `[address, end]` / the
//!   highest in `[start, address]` (`empty_area` / `empty_area_rev`, as
//!   `get_unmapped_area` asks), for a small size that one gap in three
//!   fits and a large one that about one gap in a thousand fits: the map
//!   walks on average that many entries before it finds one.
//!
//! Each measurement runs [`REPEATS`] times and the median is printed. The
//! answers of the three maps are compared (a correctness check of the
//! baselines, not a timing assertion). Between measurements the maple
//! tree's freed nodes are recycled (`flush_rcu_sheaf` + `rcu_barrier`,
//! outside the timed loops): in a kernel that is the RCU callbacks' work.
//!
//! Run: `cargo bench -p mm --features std --bench maple` (release profile).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Instant;

use mm::maple::{MapleStat, MapleTree, MtFlags, NODE_SIZE};
use mm::page_alloc::{PageAlloc, ZoneLayout};
use mm::rand::XorShift64;
use mm::rcu::Rcu;
use mm::sim::{self, SimPlatform};
use mm::slab::KmemCache;
use mm::{Gfp, PAGE_SIZE as PAGE, Pfn};

/// Entries in the maps, one table block each.
const SIZES: [usize; 3] = [100, 10_000, 1_000_000];
/// 256 MiB of 4 KiB frames: 1M entries take about 50 MiB of nodes; the
/// nodes a round of stores or a build batch frees (a few MiB) wait for
/// the next `rcu_barrier`.
const NR_PAGES: usize = 1 << 16;
/// Frames below this are kept out (the first 1 MiB).
const RESERVED_END: u64 = 256;
/// Measurements per operation and map; the median is reported.
const REPEATS: usize = 7;
/// Lookups (load, find-next) per measurement.
const LOOKUPS: usize = 1 << 16;
/// Gap searches per measurement.
const GAP_QUERIES: usize = 1 << 12;
/// Stores (and as many erases) per measurement.
const STORES: usize = 1 << 13;
/// While building, the maple tree's freed nodes are recycled this often.
const BUILD_BATCH: usize = 1 << 12;
/// The first mapped address (4 GiB).
const BASE: u64 = 1 << 32;
/// Gap sizes searched for, in pages: one gap in three fits the small one,
/// about one in a thousand the large one (see [`Layout::gap_pages`]).
const GAP_SMALL_PAGES: u64 = 16;
const GAP_LARGE_PAGES: u64 = 2048;
/// The VMA tree's flags (`MM_MT_FLAGS`).
const VMA: MtFlags = MtFlags::ALLOC_RANGE.union(MtFlags::USE_RCU);
/// The xorshift seed shared by all maps.
const SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// What the benchmark needs from a range map of inclusive `[lo, hi]`
/// ranges with distinct non-zero values.
trait Ranges {
    /// The value at `index`.
    fn load(&self, index: u64) -> Option<usize>;
    /// The first entry at or after `index`: `(lo, hi)`.
    fn find_next(&self, index: u64) -> Option<(u64, u64)>;
    /// Stores `value` over `[lo, hi]`, overwriting what overlaps.
    fn store(&mut self, lo: u64, hi: u64, value: usize);
    /// Erases the entry containing `index`; returns its value.
    fn erase(&mut self, index: u64) -> Option<usize>;
    /// The lowest `size` free indices in `[min, max]`: the first one.
    fn gap_low(&self, min: u64, max: u64, size: u64) -> Option<u64>;
    /// The highest `size` free indices in `[min, max]`: the first one.
    /// `None` from the outer `Option`: not supported.
    fn gap_high(&self, min: u64, max: u64, size: u64) -> Option<Option<u64>>;
    /// Untimed housekeeping between measurements.
    fn settle(&mut self) {}
}

/// Ours.
struct Maple<'t, 'a> {
    tree: &'t MapleTree<'a, NonZeroUsize, SimPlatform>,
    cache: &'a KmemCache<'a, SimPlatform>,
    rcu: &'a Rcu<SimPlatform>,
}

impl Ranges for Maple<'_, '_> {
    #[inline]
    fn load(&self, index: u64) -> Option<usize> {
        self.tree.load(index).map(NonZeroUsize::get)
    }

    #[inline]
    fn find_next(&self, index: u64) -> Option<(u64, u64)> {
        self.tree.find(index, u64::MAX).map(|(lo, hi, _)| (lo, hi))
    }

    #[inline]
    fn store(&mut self, lo: u64, hi: u64, value: usize) {
        let entry = NonZeroUsize::new(value).expect("non-zero value");
        let r = self
            .tree
            .lock()
            .store_range(lo, hi, Some(entry), Gfp::KERNEL);
        r.expect("maple: store failed");
    }

    #[inline]
    fn erase(&mut self, index: u64) -> Option<usize> {
        let r = self.tree.lock().erase(index, Gfp::KERNEL);
        r.expect("maple: erase failed").map(NonZeroUsize::get)
    }

    #[inline]
    fn gap_low(&self, min: u64, max: u64, size: u64) -> Option<u64> {
        self.tree.empty_area(min, max, size).ok()
    }

    #[inline]
    fn gap_high(&self, min: u64, max: u64, size: u64) -> Option<Option<u64>> {
        Some(self.tree.empty_area_rev(min, max, size).ok())
    }

    fn settle(&mut self) {
        self.cache.flush_rcu_sheaf();
        self.rcu.rcu_barrier();
    }
}

/// `start -> (last, value)`.
struct BTree(BTreeMap<u64, (u64, usize)>);

impl BTree {
    /// The entry containing `index`: `(lo, hi, value)`.
    #[inline]
    fn covering(&self, index: u64) -> Option<(u64, u64, usize)> {
        let (&lo, &(hi, v)) = self.0.range(..=index).next_back()?;
        (hi >= index).then_some((lo, hi, v))
    }
}

impl Ranges for BTree {
    #[inline]
    fn load(&self, index: u64) -> Option<usize> {
        self.covering(index).map(|(_, _, v)| v)
    }

    #[inline]
    fn find_next(&self, index: u64) -> Option<(u64, u64)> {
        if let Some((lo, hi, _)) = self.covering(index) {
            return Some((lo, hi));
        }
        let (&lo, &(hi, _)) = self.0.range(index..).next()?;
        Some((lo, hi))
    }

    fn store(&mut self, lo: u64, hi: u64, value: usize) {
        // Trim an entry that starts before `lo` and reaches into it.
        if let Some((plo, phi, pv)) = self.covering(lo)
            && plo < lo
        {
            self.0.insert(plo, (lo - 1, pv));
            if phi > hi {
                self.0.insert(hi + 1, (phi, pv));
            }
        }
        // Remove (or trim) the entries that start inside [lo, hi].
        while let Some((&s, &(e, v))) = self.0.range(lo..=hi).next() {
            self.0.remove(&s);
            if e > hi {
                self.0.insert(hi + 1, (e, v));
            }
        }
        self.0.insert(lo, (hi, value));
    }

    #[inline]
    fn erase(&mut self, index: u64) -> Option<usize> {
        let (lo, _, v) = self.covering(index)?;
        self.0.remove(&lo);
        Some(v)
    }

    fn gap_low(&self, min: u64, max: u64, size: u64) -> Option<u64> {
        if min > max || max - min < size - 1 {
            return None;
        }
        let from = match self.covering(min) {
            Some((lo, _, _)) => lo,
            None => min,
        };
        let mut cur = min;
        for (&lo, &(hi, _)) in self.0.range(from..=max) {
            if lo > cur && lo - cur >= size {
                return Some(cur);
            }
            if hi >= max {
                return None;
            }
            cur = cur.max(hi + 1);
        }
        (max - cur >= size - 1).then_some(cur)
    }

    fn gap_high(&self, min: u64, max: u64, size: u64) -> Option<Option<u64>> {
        if min > max || max - min < size - 1 {
            return Some(None);
        }
        let mut top = max;
        for (&lo, &(hi, _)) in self.0.range(..=max).rev() {
            if hi < top {
                let bottom = (hi + 1).max(min);
                if top - bottom >= size - 1 {
                    return Some(Some(top - (size - 1)));
                }
            }
            if lo <= min {
                return Some(None);
            }
            top = top.min(lo - 1);
        }
        Some((top - min >= size - 1).then(|| top - (size - 1)))
    }
}

/// `rangemap`'s map of half-open ranges.
struct RangeMapCrate(rangemap::RangeMap<u64, usize>);

impl Ranges for RangeMapCrate {
    #[inline]
    fn load(&self, index: u64) -> Option<usize> {
        self.0.get(&index).copied()
    }

    #[inline]
    fn find_next(&self, index: u64) -> Option<(u64, u64)> {
        let (r, _) = self.0.overlapping(index..u64::MAX).next()?;
        Some((r.start, r.end - 1))
    }

    #[inline]
    fn store(&mut self, lo: u64, hi: u64, value: usize) {
        self.0.insert(lo..hi + 1, value);
    }

    #[inline]
    fn erase(&mut self, index: u64) -> Option<usize> {
        let (r, &v) = self.0.get_key_value(&index)?;
        let r = r.clone();
        self.0.remove(r);
        Some(v)
    }

    #[inline]
    fn gap_low(&self, min: u64, max: u64, size: u64) -> Option<u64> {
        if min > max || max - min < size - 1 {
            return None;
        }
        let window = min..max + 1;
        let gap = self.0.gaps(&window).find(|g| g.end - g.start >= size);
        gap.map(|g| g.start)
    }

    fn gap_high(&self, _min: u64, _max: u64, _size: u64) -> Option<Option<u64>> {
        None
    }
}

/// The entries: `[lo, hi]` byte ranges of 1..=16 pages, ascending, each
/// followed by a gap of [`Layout::gap_pages`], the first at [`BASE`].
struct Layout {
    entries: Vec<(u64, u64)>,
}

impl Layout {
    fn new(n: usize, rng: &mut XorShift64) -> Self {
        let mut at = BASE;
        let entries = (0..n)
            .map(|_| {
                let lo = at;
                let hi = lo + (1 + rng.next_u64() % 16) * PAGE - 1;
                at = hi + 1 + Self::gap_pages(rng) * PAGE;
                (lo, hi)
            })
            .collect();
        Layout { entries }
    }

    /// A gap's size, in pages: 55 % 1..=4, 35 % 5..=64, 9.9 % 65..=1024,
    /// 0.1 % 1025..=65536. [`GAP_SMALL_PAGES`] fits about a third of them,
    /// [`GAP_LARGE_PAGES`] about one in a thousand.
    fn gap_pages(rng: &mut XorShift64) -> u64 {
        let x = rng.next_u64();
        let (lo, hi) = match x % 1000 {
            0..550 => (1, 4),
            550..900 => (5, 64),
            900..999 => (65, 1024),
            _ => (1025, 65536),
        };
        lo + (x >> 16) % (hi - lo + 1)
    }

    /// The last mapped byte.
    fn end(&self) -> u64 {
        self.entries.last().expect("entries").1
    }

    /// A random address in a random entry or in the gap after it.
    fn address(&self, rng: &mut XorShift64) -> u64 {
        let i = rng.below(self.entries.len());
        let lo = self.entries[i].0;
        let next = self.entries.get(i + 1).map_or(self.end() + 1, |e| e.0);
        lo + rng.next_u64() % (next - lo)
    }

    /// Ranges to store, in rounds: each round at most a quarter of the
    /// entries, each range inside a different gap of at least 3 pages,
    /// one page away from both neighbours.
    fn store_rounds(&self, rng: &mut XorShift64) -> Vec<Vec<(u64, u64)>> {
        let mut gaps: Vec<(u64, u64)> = self
            .entries
            .windows(2)
            .map(|w| (w[0].1 + 1, w[1].0 - 1))
            .filter(|&(lo, hi)| hi + 1 - lo >= 3 * PAGE)
            .collect();
        let per_round = (self.entries.len() / 4).clamp(1, gaps.len());
        let mut rounds = Vec::new();
        let mut left = STORES;
        while left > 0 {
            rng.shuffle(&mut gaps);
            let k = per_round.min(left);
            let round = gaps[..k]
                .iter()
                .map(|&(lo, hi)| {
                    let room = (hi + 1 - lo) / PAGE - 2;
                    let pages = 1 + rng.next_u64() % room.min(16);
                    (lo + PAGE, lo + PAGE + pages * PAGE - 1)
                })
                .collect();
            rounds.push(round);
            left -= k;
        }
        rounds
    }
}

/// The operations, in table order.
#[derive(Clone, Copy)]
enum Op {
    Load,
    FindNext,
    Store,
    Erase,
    GapLowSmall,
    GapLowLarge,
    GapHighSmall,
    GapHighLarge,
}

const OPS: [Op; 8] = [
    Op::Load,
    Op::FindNext,
    Op::Store,
    Op::Erase,
    Op::GapLowSmall,
    Op::GapLowLarge,
    Op::GapHighSmall,
    Op::GapHighLarge,
];

impl Op {
    fn name(self) -> String {
        match self {
            Op::Load => "load".into(),
            Op::FindNext => "find-next".into(),
            Op::Store => "store".into(),
            Op::Erase => "erase".into(),
            Op::GapLowSmall => format!("gap low {GAP_SMALL_PAGES} pages"),
            Op::GapLowLarge => format!("gap low {} MiB", (GAP_LARGE_PAGES * PAGE) >> 20),
            Op::GapHighSmall => format!("gap high {GAP_SMALL_PAGES} pages"),
            Op::GapHighLarge => format!("gap high {} MiB", (GAP_LARGE_PAGES * PAGE) >> 20),
        }
    }
}

/// The queries of one size, the same for every map.
struct Queries {
    /// Addresses for load and find-next.
    addrs: Vec<u64>,
    /// The windows' moving ends, per gap search.
    gap_low_small: Vec<u64>,
    gap_low_large: Vec<u64>,
    gap_high_small: Vec<u64>,
    gap_high_large: Vec<u64>,
    stores: Vec<Vec<(u64, u64)>>,
    /// The windows' far ends.
    start: u64,
    end: u64,
}

impl Queries {
    fn new(layout: &Layout, rng: &mut XorShift64) -> Self {
        let mut addrs = |n: usize| (0..n).map(|_| layout.address(rng)).collect::<Vec<_>>();
        let lookups = addrs(LOOKUPS);
        let gap_low_small = addrs(GAP_QUERIES);
        let gap_low_large = addrs(GAP_QUERIES);
        let gap_high_small = addrs(GAP_QUERIES);
        let gap_high_large = addrs(GAP_QUERIES);
        Queries {
            addrs: lookups,
            gap_low_small,
            gap_low_large,
            gap_high_small,
            gap_high_large,
            stores: layout.store_rounds(rng),
            start: BASE,
            end: layout.end(),
        }
    }
}

/// One measurement: ns per operation, and a checksum of the answers.
fn run(map: &mut dyn Ranges, op: Op, q: &Queries) -> (f64, u64, bool) {
    let mut sum = 0u64;
    let mut supported = true;
    let start = Instant::now();
    let nr_ops = match op {
        Op::Load => {
            for &a in &q.addrs {
                sum = sum.wrapping_add(black_box(map.load(black_box(a))).unwrap_or(0) as u64);
            }
            q.addrs.len()
        }
        Op::FindNext => {
            for &a in &q.addrs {
                let r = black_box(map.find_next(black_box(a)));
                sum = sum.wrapping_add(r.map_or(0, |(lo, hi)| lo ^ hi));
            }
            q.addrs.len()
        }
        Op::Store | Op::Erase => return store_erase(map, op, q),
        Op::GapLowSmall | Op::GapLowLarge => {
            let (addrs, pages) = match op {
                Op::GapLowSmall => (&q.gap_low_small, GAP_SMALL_PAGES),
                _ => (&q.gap_low_large, GAP_LARGE_PAGES),
            };
            for &a in addrs {
                let r = map.gap_low(black_box(a), q.end, pages * PAGE);
                sum = sum.wrapping_add(black_box(r).unwrap_or(1));
            }
            addrs.len()
        }
        Op::GapHighSmall | Op::GapHighLarge => {
            let (addrs, pages) = match op {
                Op::GapHighSmall => (&q.gap_high_small, GAP_SMALL_PAGES),
                _ => (&q.gap_high_large, GAP_LARGE_PAGES),
            };
            for &a in addrs {
                match map.gap_high(q.start, black_box(a), pages * PAGE) {
                    Some(r) => sum = sum.wrapping_add(black_box(r).unwrap_or(1)),
                    None => {
                        supported = false;
                        break;
                    }
                }
            }
            addrs.len()
        }
    };
    let ns = start.elapsed().as_nanos() as f64 / nr_ops as f64;
    map.settle();
    (ns, sum, supported)
}

/// Store and erase every round of [`Queries::stores`]; returns the ns per
/// store or per erase (`op`), timing only those.
fn store_erase(map: &mut dyn Ranges, op: Op, q: &Queries) -> (f64, u64, bool) {
    let (mut stores_ns, mut erases_ns, mut n, mut sum) = (0u128, 0u128, 0usize, 0u64);
    for (r, round) in q.stores.iter().enumerate() {
        let start = Instant::now();
        for (i, &(lo, hi)) in round.iter().enumerate() {
            map.store(black_box(lo), black_box(hi), 1 + (r << 20) + i);
        }
        stores_ns += start.elapsed().as_nanos();
        map.settle();
        let start = Instant::now();
        for &(lo, _) in round {
            let v = black_box(map.erase(black_box(lo)));
            sum = sum.wrapping_add(v.expect("erase: the range just stored") as u64);
        }
        erases_ns += start.elapsed().as_nanos();
        map.settle();
        n += round.len();
    }
    let ns = match op {
        Op::Store => stores_ns,
        _ => erases_ns,
    };
    (ns as f64 / n as f64, sum, true)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine() -> PageAlloc<SimPlatform> {
    sim::set_cpu(0);
    let reserved = Pfn::new(0)..Pfn::new(RESERVED_END);
    sim::bench_page_alloc(NR_PAGES, 1, reserved, ZoneLayout::X86_64)
}

/// Medians of one operation at one size: maple, btree, rangemap (`None`:
/// not supported).
struct Row {
    ns: [Option<f64>; 3],
}

/// What the maple tree looked like and did at one size.
struct MapleInfo {
    height: usize,
    nodes: u64,
    /// Store types of the last store/erase measurement.
    kinds: Vec<(&'static str, u64)>,
    nodes_used: u64,
    nodes_requested: u64,
    nodes_full_height: u64,
    writes: u64,
    restarts: u64,
}

/// Counters of the nodes a write uses and requests.
const PREALLOC_STATS: [MapleStat; 3] = [
    MapleStat::NodesUsed,
    MapleStat::NodesRequested,
    MapleStat::NodesRequestedFullHeight,
];

/// Builds the three maps with `n` entries and measures every operation.
fn bench_size(n: usize) -> (Vec<Row>, MapleInfo) {
    let mut rng = XorShift64::new(SEED ^ n as u64);
    let layout = Layout::new(n, &mut rng);
    let queries = Queries::new(&layout, &mut rng);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);

    let pa = machine();
    let rcu = Rcu::new(pa.platform().clone());
    let cache = mm::maple::node_cache(&pa, &rcu).expect("node cache");
    let tree = MapleTree::new(&cache, &rcu, VMA);
    let mut maple = Maple {
        tree: &tree,
        cache: &cache,
        rcu: &rcu,
    };
    let mut btree = BTree(BTreeMap::new());
    let mut rmap = RangeMapCrate(rangemap::RangeMap::new());
    // Built in a random order, the same for all.
    for (k, &i) in order.iter().enumerate() {
        let (lo, hi) = layout.entries[i];
        maple.store(lo, hi, i + 1);
        btree.store(lo, hi, i + 1);
        rmap.store(lo, hi, i + 1);
        if k % BUILD_BATCH == BUILD_BATCH - 1 {
            maple.settle();
        }
    }
    maple.settle();
    let nodes = cache.info().active_objs;
    let height = tree.height();

    let mut rows = Vec::new();
    let (mut before, mut prealloc_delta) = ([0u64; 3], [0u64; 3]);
    for op in OPS {
        let mut ns: [Vec<f64>; 3] = Default::default();
        let mut supported = [true; 3];
        for rep in 0..REPEATS {
            let maps: [&mut dyn Ranges; 3] = [&mut maple, &mut btree, &mut rmap];
            let mut sums = [0u64; 3];
            for (m, map) in maps.into_iter().enumerate() {
                let counted = m == 0 && matches!(op, Op::Store) && rep == REPEATS - 1;
                let prealloc = || PREALLOC_STATS.map(|s| tree.stat(s));
                if counted {
                    before = prealloc();
                }
                let (t, sum, ok) = run(map, op, &queries);
                if counted {
                    let after = prealloc();
                    prealloc_delta = [0, 1, 2].map(|i| after[i] - before[i]);
                }
                ns[m].push(t);
                sums[m] = sum;
                supported[m] = ok;
            }
            for m in 1..3 {
                assert!(
                    !supported[m] || sums[m] == sums[0],
                    "{n} entries, {}: map {m} answered differently from the maple tree",
                    op.name()
                );
            }
        }
        let ns = ns.map(median);
        rows.push(Row {
            ns: [0, 1, 2].map(|m| supported[m].then_some(ns[m])),
        });
    }

    let kinds = [
        (MapleStat::StoreExactFit, "exact_fit"),
        (MapleStat::StoreAppend, "append"),
        (MapleStat::StoreSlotStore, "slot_store"),
        (MapleStat::StoreNodeStore, "node_store"),
        (MapleStat::StoreSplit, "split"),
        (MapleStat::StoreRebalance, "rebalance"),
        (MapleStat::StoreSpanning, "spanning"),
        (MapleStat::StoreNewRoot, "new_root"),
    ];
    let info = MapleInfo {
        height,
        nodes,
        kinds: kinds
            .iter()
            .map(|&(s, name)| (name, tree.stat(s)))
            .collect(),
        nodes_used: prealloc_delta[0],
        nodes_requested: prealloc_delta[1],
        nodes_full_height: prealloc_delta[2],
        writes: 2 * STORES as u64,
        restarts: tree.stat(MapleStat::ReadRestart),
    };
    tree.destroy();
    cache.flush_rcu_sheaf();
    rcu.rcu_barrier();
    (rows, info)
}

fn main() {
    let bench_start = Instant::now();
    println!(
        "maple: {NR_PAGES} frames ({} MiB), 1 CPU, median of {REPEATS}; ns per operation",
        NR_PAGES * 4 / 1024
    );
    println!(
        "maple = MapleTree ALLOC_RANGE|USE_RCU; btree = BTreeMap<start, (last, value)>; rangemap = rangemap 1.8 RangeMap"
    );
    println!(
        "entries: 1..=16 pages, gaps 1..=4 pages (55%), 5..=64 (35%), 65..=1024 (9.9%), 1025..=65536 (0.1%)"
    );
    println!();
    println!(
        "{:>9} {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "entries", "operation", "maple", "btree", "rangemap", "ma/bt", "ma/rm"
    );
    let mut infos = Vec::new();
    for n in SIZES {
        let (rows, info) = bench_size(n);
        for (op, row) in OPS.iter().zip(&rows) {
            let cell = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => format!("{:.2}x", a / b),
                _ => "-".to_string(),
            };
            println!(
                "{n:>9} {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
                op.name(),
                cell(row.ns[0]),
                cell(row.ns[1]),
                cell(row.ns[2]),
                ratio(row.ns[0], row.ns[1]),
                ratio(row.ns[0], row.ns[2]),
            );
        }
        infos.push((n, info));
    }
    println!();
    println!("maple tree: shape after building, and its stores (build and all measurements):");
    for (n, info) in &infos {
        let kinds: Vec<String> = info
            .kinds
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(name, c)| format!("{name} {c}"))
            .collect();
        println!(
            "{n:>9}: height {}, {} nodes ({:.1} MiB); {}; read restarts {}",
            info.height,
            info.nodes,
            (info.nodes * NODE_SIZE as u64) as f64 / (1 << 20) as f64,
            kinds.join(", "),
            info.restarts,
        );
        println!(
            "{:>9}  last store/erase measurement: {:.2} nodes used, {:.2} requested ({:.2} full height) per write",
            "",
            info.nodes_used as f64 / info.writes as f64,
            info.nodes_requested as f64 / info.writes as f64,
            info.nodes_full_height as f64 / info.writes as f64,
        );
    }
    println!();
    println!("total {:.1} s", bench_start.elapsed().as_secs_f64());
}

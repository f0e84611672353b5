//! In-kernel maple tree tests: `mm::maple` with nodes from a real
//! sheaf-enabled node cache (`maple_tree_init()`'s arguments), freed
//! through the kernel's RCU, whose grace periods the real tick and the
//! scheduler drive.
//!
//! - Stores, loads, erases and gap searches on a VMA-flagged tree, with
//!   multi-node preallocations served by prefilled sheaves.
//! - A reader kernel thread walks and iterates the tree without the lock
//!   while this thread stores and erases under preemption; every entry
//!   it sees encodes the range it was stored over, so a torn node, a
//!   misplaced entry or a freed node read as an entry is caught.
//! - `destroy` hands every node back: after `kvfree_rcu_barrier` the
//!   cache has no active objects, and `shrink` frees all its slabs.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use mm::Gfp;
use mm::maple::{MapleStat, MapleTree, MtFlags, NODE_SIZE, node_cache_args, scenarios};
use mm::rand::XorShift64;
use mm::slab::{KmemCache, SlabStat};

use crate::ktest::KTest;
use crate::platform::KernelPlatform;
use crate::{memory, rcu, sched, time};

pub const KTESTS: &[KTest] = crate::ktests![
    stores_loads_erases_and_gap_search_with_sheaf_nodes,
    a_reader_thread_sees_only_stored_ranges_while_the_writer_churns,
    destroy_returns_every_node_after_a_grace_period,
];

type Cache = KmemCache<'static, KernelPlatform>;
type Tree<'a> = MapleTree<'a, NonZeroUsize, KernelPlatform>;

/// The VMA tree's flags (`MM_MT_FLAGS` without the external lock).
const VMA: MtFlags = MtFlags::ALLOC_RANGE.union(MtFlags::USE_RCU);
const PAGE: u64 = 4096;

fn node_cache(name: &'static str) -> Box<Cache> {
    KmemCache::new(memory::page_alloc(), name, NODE_SIZE, node_cache_args())
        .expect("maple node cache")
        .with_rcu(rcu::rcu())
}

fn v(x: usize) -> Option<NonZeroUsize> {
    NonZeroUsize::new(x)
}

fn validate(t: &Tree<'_>) -> (usize, usize) {
    t.validate()
        .unwrap_or_else(|e| panic!("invalid maple tree: {e}"))
}

/// Frees what the tree handed to RCU and checks the cache is empty.
fn destroy_and_check(t: &Tree<'_>, cache: &Cache) {
    t.destroy();
    cache.flush_all_rcu_sheaves();
    rcu::rcu().kvfree_rcu_barrier();
    assert_eq!(
        t.stat(MapleStat::NodesFreed),
        t.stat(MapleStat::NodesUsed),
        "every node built was freed"
    );
    assert_eq!(cache.info().active_objs, 0, "maple nodes leaked");
    assert_eq!(t.stat(MapleStat::PreallocMiss), 0);
}

/// The shared scenarios (`mm::maple::scenarios`: 2000 VMAs with one-page
/// holes, then lookups, gap searches and erases; the reference gap
/// search) on trees of real sheaf-backed nodes, every node returned.
fn stores_loads_erases_and_gap_search_with_sheaf_nodes() {
    let start = time::now_ns();
    let cache = node_cache("ktest-maple");
    {
        let t = Tree::new(&cache, rcu::rcu(), VMA);
        scenarios::vmas_with_holes(&t);
        // Multi-node requests came from prefilled sheaves.
        let prefills = cache.stats().get(SlabStat::SheafPrefillFast)
            + cache.stats().get(SlabStat::SheafPrefillSlow)
            + cache.stats().get(SlabStat::SheafPrefillOversize);
        assert!(prefills > 0, "no prefilled sheaf was used");
        destroy_and_check(&t, &cache);
        scenarios::reference_gap_search(&t);
        destroy_and_check(&t, &cache);
    }
    log::info!("maple smoke: {} ms", (time::now_ns() - start) / 1_000_000);
}

/// Values of the reader/writer scenario: the range stored over, and a tag
/// in the low byte (so poison, 0x6b.., or a node pointer never decodes).
const TAG: usize = 0x5a;
const SPACE: u64 = 1 << 14;

fn encode(lo: u64, hi: u64) -> usize {
    ((lo as usize) << 40) | ((hi as usize) << 16) | TAG
}

fn decode(x: usize) -> Option<(u64, u64)> {
    (x & 0xff == TAG).then_some(((x >> 40) as u64, ((x >> 16) & 0xff_ffff) as u64))
}

static RW_CACHE: spin::Once<Box<Cache>> = spin::Once::new();
static RW_TREE: spin::Once<Tree<'static>> = spin::Once::new();
static STOP: AtomicBool = AtomicBool::new(false);
static READS: AtomicU64 = AtomicU64::new(0);

/// An entry `x` seen over `[lo, hi]` containing `i`: stored over a range
/// that includes `[lo, hi]`.
fn check_seen(i: u64, lo: u64, hi: u64, x: usize) {
    assert!(
        lo <= i && i <= hi,
        "[{lo:#x}, {hi:#x}] does not hold {i:#x}"
    );
    let (slo, shi) = decode(x).unwrap_or_else(|| panic!("{x:#x} at {i:#x} was never stored"));
    assert!(
        slo <= lo && hi <= shi,
        "{x:#x} seen over [{lo:#x}, {hi:#x}], stored over [{slo:#x}, {shi:#x}]"
    );
}

fn reader() {
    let t = RW_TREE.get().expect("tree");
    let mut rng = XorShift64::new(0x7ead);
    while !STOP.load(SeqCst) {
        let i = rng.below(SPACE as usize) as u64;
        let span = rng.below(512) as u64;
        match rng.below(4) {
            0 | 1 => {
                if let (lo, hi, Some(x)) = t.walk_range(i) {
                    check_seen(i, lo, hi, x.get());
                }
            }
            2 => {
                let mut last = None;
                for (lo, hi, x) in t.iter(i, i + span) {
                    assert!(last.is_none_or(|l| l < hi), "iteration went back");
                    last = Some(hi);
                    check_seen(lo.max(i), lo, hi, x.get());
                }
            }
            _ => {
                if let Some((lo, hi, x)) = t.find_prev(i, i.saturating_sub(span)) {
                    check_seen(hi.min(i), lo, hi, x.get());
                }
            }
        }
        READS.fetch_add(1, SeqCst);
    }
}

/// The writer churns for at least 20 ticks; the tick preempts both
/// threads, so reads run in the middle of stores.
fn a_reader_thread_sees_only_stored_ranges_while_the_writer_churns() {
    let start = time::now_ns();
    let cache = RW_CACHE.call_once(|| node_cache("ktest-maple-rw"));
    let t = RW_TREE.call_once(|| Tree::new(cache, rcu::rcu(), VMA));
    let mut model = vec![0usize; SPACE as usize];
    let mut rng = XorShift64::new(0x3e17e);
    for k in 0..512u64 {
        let lo = k * 32;
        scenarios::store(t, lo, lo + 15, encode(lo, lo + 15));
        model[lo as usize..=lo as usize + 15].fill(encode(lo, lo + 15));
    }
    let reader = sched::spawn("maple-reader", reader);
    let end = time::now_ns() + 20 * time::TICK_NS;
    let mut ops = 0u64;
    while ops < 4000 || time::now_ns() < end {
        ops += 1;
        let lo = rng.below(SPACE as usize) as u64;
        let len = match rng.below(10) {
            0 => rng.below(2048) as u64,
            1..=3 => rng.below(128) as u64,
            _ => rng.below(16) as u64,
        };
        let hi = (lo + len).min(SPACE - 1);
        let x = match rng.below(10) {
            0..=5 => encode(lo, hi),
            _ => 0,
        };
        if x == 0 && rng.below(2) == 0 {
            let (s, e, got) = t.walk_range(lo);
            assert_eq!(got, v(model[lo as usize]), "load {lo:#x}");
            assert_eq!(t.lock().erase(lo, Gfp::KERNEL), Ok(got));
            if got.is_some() {
                model[s as usize..=e as usize].fill(0);
            }
        } else {
            scenarios::store(t, lo, hi, x);
            model[lo as usize..=hi as usize].fill(x);
        }
        if ops.is_multiple_of(64) {
            sched::yield_now();
        }
    }
    STOP.store(true, SeqCst);
    reader.join();
    let reads = READS.load(SeqCst);
    log::info!(
        "maple rw: {ops} writes, {reads} reads, {} read restarts, {} nodes freed, {} ms",
        t.stat(MapleStat::ReadRestart),
        t.stat(MapleStat::NodesFreed),
        (time::now_ns() - start) / 1_000_000
    );
    assert!(reads > 0, "the reader never ran");
    validate(t);
    for (i, &x) in model.iter().enumerate() {
        assert_eq!(t.load(i as u64), v(x), "final contents at {i:#x}");
    }
    assert!(cache.stats().get(SlabStat::FreeRcuSheaf) > 0);
    destroy_and_check(t, cache);
}

/// A tree of 6000 entries (height 3 or more) is destroyed: every node comes
/// back to the cache after a grace period, and the cache's slabs to the
/// page allocator. A preallocation dropped without a store returns its
/// nodes at once.
fn destroy_returns_every_node_after_a_grace_period() {
    let start = time::now_ns();
    let cache = node_cache("ktest-maple-destroy");
    {
        let t = Tree::new(&cache, rcu::rcu(), VMA);
        for i in 0..6000u64 {
            scenarios::store(&t, i * 2 * PAGE, (i * 2 + 1) * PAGE - 1, i as usize + 1);
        }
        let (_, nodes) = validate(&t);
        assert!(t.height() >= 3, "height {}", t.height());
        let active = cache.info().active_objs;
        {
            let mut w = t.lock();
            w.preallocate(PAGE, 1000 * PAGE, v(7), Gfp::KERNEL)
                .expect("spanning store preallocation");
            let (req, _) = w.nodes_requested_used();
            assert!(req > 1);
            w.destroy();
        }
        assert_eq!(
            cache.info().active_objs,
            active,
            "unused nodes not returned"
        );
        rcu::rcu().kvfree_rcu_barrier();
        cache.flush_all_rcu_sheaves();
        rcu::rcu().rcu_barrier();
        assert_eq!(cache.info().active_objs, nodes as u64);
        destroy_and_check(&t, &cache);
    }
    cache.shrink();
    assert_eq!(cache.info().num_slabs, 0, "slabs left after shrink");
    log::info!("maple destroy: {} ms", (time::now_ns() - start) / 1_000_000);
}

//! Stress and end-to-end tests of SLUB on the simulated machine.
//!
//! These tests look at the allocator from outside, through its public API
//! ([`KmemCache`], [`Kmalloc`]) and the page allocator beneath it, with
//! host threads as CPUs (`sim::set_cpu`). They are the host half of the
//! reference scenarios 13 and 14 of the SLUB notes (leak check, stress
//! invariants); the path-by-path unit tests live next to the code.
//!
//! What they prove:
//!
//! - S1 (one owner): every object is written over its whole size with a
//!   stamp naming its owner and a sequence number, and the stamp is checked
//!   before the object is freed or changes hands; an object handed to two
//!   owners at once shows as a foreign stamp. Objects travel between CPUs
//!   (a mailbox per CPU), so remote frees run all the time, and CPUs flush
//!   and shrink while the others go on. It runs once on classic caches
//!   (plain, `RED_ZONE | POISON`, multi-page slabs) and once on caches with
//!   per-CPU sheaves (capacity 8, so that main, spare and barn trade sheaves
//!   constantly, and 32).
//! - S2 (accounting): at quiescent points, once every CPU flushed its CPU
//!   slab, `allocations - frees` from the counters equals the objects the
//!   test holds, and equals `info().active_objs`. Objects moving between
//!   sheaves and slabs (refill, flush) are not user operations.
//! - S3 (no leaks): after every object is freed and every CPU shrank the
//!   cache on its own thread, all at once (each flushes every CPU's sheaves
//!   and CPU slab, then the barn and the empty slabs), the page allocator's free count (after
//!   `drain_all_pages`) is what it was before the cache was created, and
//!   as many slabs were freed as were made.
//! - S3' (flushing other CPUs): objects left in every CPU's sheaves (main,
//!   spare, `rcu_free`) and CPU slab are all returned when one CPU shrinks
//!   or destroys the cache: it flushes the others under their per-CPU locks.
//! - S4 (bulk): `alloc_bulk` gives `n` distinct objects or nothing, for `n`
//!   below, at and above the objects of one slab, and fails cleanly (no
//!   object taken, no slab leaked) when memory runs out.
//! - S5 (debugging): a `RED_ZONE | POISON` cache catches a double free, a
//!   write past the object's end (at free) and a write after free (at the
//!   next allocation of that object); a pointer that is not one of the
//!   cache's objects is refused. Every case is counted and none corrupts
//!   the cache: later allocations are still distinct.
//! - S6 (kmalloc): each request size 1..=16384 gets at least that many
//!   bytes (`ksize`), in the expected size class, with Linux's alignment
//!   guarantee; `krealloc` keeps the contents; large allocations come from
//!   and go back to the page allocator.
//!
//! The object contents are read and written through atomics (see
//! [`ObjView`]), so that even the bug these tests hunt, two owners of one
//! object, is a race between atomics and not undefined behaviour of the
//! test itself.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use super::{Kmalloc, KmemCache, KmemCacheArgs, SlabFlags, SlabStat};
use crate::addr::CpuId;
use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::gfp::Gfp;
use crate::page_alloc::{PageAlloc, ZoneLayout};
use crate::platform::Platform;
use crate::rand::XorShift64;
use crate::rcu::Rcu;
use crate::sim::{self, SimMachine, SimPlatform};

// ---------------------------------------------------------------------------
// The machine and its CPUs.

/// Frames of the stress machine: 64 MiB.
const NR_PAGES: usize = 16384;

/// A machine of `nr_pages` frames in one zone (DMA32), nothing reserved.
fn machine(nr_pages: usize, nr_cpus: usize) -> PageAlloc<SimPlatform> {
    let layout = ZoneLayout {
        limits: [Pfn::new(0), Pfn::new(u64::MAX), Pfn::new(u64::MAX)],
    };
    sim::page_alloc(nr_pages, nr_cpus, Pfn::new(0)..Pfn::new(0), layout)
}

/// Free frames, wherever they sit: zone lists plus per-CPU lists (after
/// draining them, so the figure does not depend on per-CPU caching).
fn free_frames(pa: &PageAlloc<SimPlatform>) -> u64 {
    pa.drain_all_pages();
    pa.nr_free_pages() + pa.nr_pcp_pages()
}

/// Runs `f(cpu)` on one thread per CPU, each declared as its CPU.
fn on_every_cpu(nr_cpus: u32, f: impl Fn(u32) + Sync) {
    let f = &f;
    std::thread::scope(|s| {
        for cpu in 0..nr_cpus {
            s.spawn(move || {
                sim::set_cpu(cpu);
                f(cpu);
            });
        }
    });
}

/// Per-CPU state is per CPU: each CPU flushes its own CPU slab, on its own
/// thread.
fn flush_every_cpu(cache: &KmemCache<'_, SimPlatform>, nr_cpus: u32) {
    on_every_cpu(nr_cpus, |_| cache.flush_cpu_slab());
}

/// Shrinks on every CPU's thread, concurrently: each flushes every CPU's
/// sheaves and slab (the others' under their locks, while they do the
/// same), then every empty slab goes back to the buddy allocator.
fn flush_and_shrink(cache: &KmemCache<'_, SimPlatform>, nr_cpus: u32) {
    on_every_cpu(nr_cpus, |_| cache.shrink());
}

/// Objects handed to users, as the counters see it.
fn nr_allocs(cache: &KmemCache<'_, SimPlatform>) -> u64 {
    cache.stats().get(SlabStat::Allocs)
}

/// Objects given back by users, as the counters see it.
fn nr_frees(cache: &KmemCache<'_, SimPlatform>) -> u64 {
    cache.stats().get(SlabStat::Frees)
}

/// Bad frees of any kind the cache caught and refused.
fn nr_bad_frees(cache: &KmemCache<'_, SimPlatform>) -> u64 {
    let s = cache.stats();
    s.get(SlabStat::BadFree) + s.get(SlabStat::DoubleFree)
}

/// S2 at a quiescent point (every CPU flushed): users hold `held` objects.
fn assert_accounting(cache: &KmemCache<'_, SimPlatform>, held: usize) {
    let (allocs, frees) = (nr_allocs(cache), nr_frees(cache));
    assert_eq!(
        i128::from(allocs) - i128::from(frees),
        held as i128,
        "{}: allocs {allocs} - frees {frees} != objects held",
        cache.name()
    );
    let info = cache.info();
    assert_eq!(
        info.active_objs,
        held as _,
        "{}: active_objs != objects held; {info:?}",
        cache.name()
    );
    assert!(info.active_objs <= info.num_objs, "{info:?}");
    assert_eq!(
        info.num_objs,
        info.num_slabs * u64::from(info.objperslab),
        "every slab holds objperslab objects: {info:?}"
    );
}

/// A per-thread generator whose seed is spread over the whole word.
fn rng(seed: u64) -> XorShift64 {
    XorShift64::new(
        0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

// ---------------------------------------------------------------------------
// Object contents.

/// An object's bytes as atomics: `size` bytes at `addr`, 8-byte aligned.
///
/// Whole words are `AtomicU64`, a tail shorter than a word `AtomicU8`.
#[derive(Clone, Copy)]
struct ObjView {
    addr: usize,
    size: usize,
}

impl ObjView {
    /// # Safety
    ///
    /// `addr..addr + size` must be an object the caller owns (allocated and
    /// not yet freed), or memory it otherwise knows to be valid for reads
    /// and writes, and every access of the test to it goes through an
    /// `ObjView` (atomics only).
    unsafe fn new(addr: usize, size: usize) -> Self {
        debug_assert!(addr.is_multiple_of(8) && addr != 0);
        Self { addr, size }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.size / 8);
        // SAFETY: 1. `addr + 8 * i + 8 <= addr + size`, inside the object
        // (`new`'s contract). 2. `addr` is 8-byte aligned (asserted by every
        // caller that builds a view from an allocation). 3. All accesses of
        // the test are atomic (`new`'s contract); the allocator writes the
        // object only while it is free, i.e. not while we own it.
        unsafe { AtomicU64::from_ptr((self.addr as *mut u64).add(i)) }
    }

    fn byte(&self, i: usize) -> &AtomicU8 {
        assert!(i < self.size);
        // SAFETY: as in `word`: inside the object, atomics only; bytes need
        // no alignment.
        unsafe { AtomicU8::from_ptr((self.addr as *mut u8).add(i)) }
    }

    /// The word pattern of `stamp`: word `i` holds `pattern(stamp, i)`.
    fn pattern(stamp: u64, i: usize) -> u64 {
        stamp ^ (i as u64).wrapping_mul(0x0100_0000_0001)
    }

    /// Writes `stamp`'s pattern over the whole object.
    fn fill(&self, stamp: u64) {
        let words = self.size / 8;
        for i in 0..words {
            self.word(i).store(Self::pattern(stamp, i), Relaxed);
        }
        for i in words * 8..self.size {
            self.byte(i).store(stamp as u8 ^ i as u8, Relaxed);
        }
    }

    /// Byte `j` of an object of `size` bytes filled with `stamp`.
    fn expected_byte(stamp: u64, size: usize, j: usize) -> u8 {
        if j < size / 8 * 8 {
            Self::pattern(stamp, j / 8).to_ne_bytes()[j % 8]
        } else {
            stamp as u8 ^ j as u8
        }
    }

    /// Checks the whole object against `stamp`'s pattern.
    fn check(&self, stamp: u64) -> Result<(), String> {
        let words = self.size / 8;
        for i in 0..words {
            let (got, want) = (self.word(i).load(Relaxed), Self::pattern(stamp, i));
            if got != want {
                return Err(format!(
                    "object {:#x} ({} bytes): word {i} is {got:#x}, want {want:#x} \
                     (stamp {stamp:#x}): a second owner wrote it",
                    self.addr, self.size
                ));
            }
        }
        for i in words * 8..self.size {
            let (got, want) = (self.byte(i).load(Relaxed), stamp as u8 ^ i as u8);
            if got != want {
                return Err(format!(
                    "object {:#x} ({} bytes): byte {i} is {got:#x}, want {want:#x}",
                    self.addr, self.size
                ));
            }
        }
        Ok(())
    }
}

/// The stamp of the `seq`-th object a CPU takes: owner in the top byte.
fn stamp(cpu: u32, seq: u64) -> u64 {
    (u64::from(cpu) + 1) << 56 | (seq & ((1 << 56) - 1))
}

/// Whether `addr` is aligned to `align` (a power of two).
fn is_aligned(addr: usize, align: usize) -> bool {
    addr & (align - 1) == 0
}

/// The largest power of two dividing `addr`, capped at `cap`.
fn alignment_of(addr: usize, cap: usize) -> usize {
    (1usize << addr.trailing_zeros().min(63)).min(cap)
}

// ---------------------------------------------------------------------------
// S1, S2, S3: threads as CPUs.

/// Alloc/free steps per thread.
const STRESS_OPS: usize = 30_000;
/// A thread alternates between growing to this many live objects and
/// shrinking to [`STRESS_LOW`], so slabs go full, partial and empty.
const STRESS_HIGH: usize = 384;
/// See [`STRESS_HIGH`].
const STRESS_LOW: usize = 16;

/// A cache of the stress test: name, object size, flags, sheaf capacity.
type CacheSpec = (&'static str, usize, SlabFlags, u32);

/// The caches of the classic stress test: plain small objects, debug
/// objects of an odd size, objects large enough for multi-page slabs.
const CLASSIC_CACHES: [CacheSpec; 3] = [
    ("stress-64", 64, SlabFlags::empty(), 0),
    (
        "stress-100-debug",
        100,
        SlabFlags::RED_ZONE.union(SlabFlags::POISON),
        0,
    ),
    ("stress-1000-hwalign", 1000, SlabFlags::HWCACHE_ALIGN, 0),
];

/// The caches of the sheaves stress test: small sheaves (8 objects), so
/// that main, spare and barn trade sheaves all the time and the barn hits
/// its limits, and the usual 32 with multi-page slabs.
const SHEAF_CACHES: [CacheSpec; 2] = [
    ("stress-128-sheaves-8", 128, SlabFlags::empty(), 8),
    ("stress-700-sheaves-32", 700, SlabFlags::HWCACHE_ALIGN, 32),
];

/// One object the test holds: which cache, where, and the stamp it carries.
#[derive(Clone, Copy, Debug)]
struct Held {
    cache: usize,
    addr: usize,
    stamp: u64,
}

/// What the stress threads share.
struct Stress<'c, 'a> {
    caches: &'c [Box<KmemCache<'a, SimPlatform>>],
    /// Objects in flight to CPU `i`: posted by another CPU, which gave up
    /// ownership; CPU `i` checks them and takes them over.
    mailboxes: Vec<Mutex<Vec<Held>>>,
}

impl Stress<'_, '_> {
    fn view(&self, h: &Held) -> ObjView {
        // SAFETY: `h` is held by the calling thread: allocated from
        // `caches[h.cache]` and not yet freed; the test reaches it only
        // through views.
        unsafe { ObjView::new(h.addr, self.caches[h.cache].object_size()) }
    }

    fn alloc(&self, cpu: u32, cache: usize, seq: &mut u64) -> Held {
        let c = &self.caches[cache];
        let obj = c
            .alloc(Gfp::KERNEL)
            .unwrap_or_else(|| panic!("cpu {cpu}: {} out of memory", c.name()));
        let addr = obj.as_ptr() as usize;
        assert!(is_aligned(addr, 8), "{}: {addr:#x} not 8-aligned", c.name());
        *seq += 1;
        let h = Held {
            cache,
            addr,
            stamp: stamp(cpu, *seq),
        };
        self.view(&h).fill(h.stamp);
        h
    }

    fn free(&self, cpu: u32, h: Held) {
        self.view(&h)
            .check(h.stamp)
            .unwrap_or_else(|e| panic!("cpu {cpu}: {}: {e}", self.caches[h.cache].name()));
        let obj = NonNull::new(h.addr as *mut u8).expect("held objects are non-null");
        // SAFETY: `h` was allocated from this cache and is freed once: the
        // holder drops it from its lists here.
        unsafe { self.caches[h.cache].free(obj) };
    }

    /// Takes over what other CPUs posted to `cpu`: check, re-stamp, keep.
    fn collect(&self, cpu: u32, seq: &mut u64, live: &mut Vec<Held>) {
        let mut mailbox = self.mailboxes[cpu as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for mut h in mailbox.drain(..) {
            self.view(&h)
                .check(h.stamp)
                .unwrap_or_else(|e| panic!("cpu {cpu}: received {e}"));
            *seq += 1;
            h.stamp = stamp(cpu, *seq);
            self.view(&h).fill(h.stamp);
            live.push(h);
        }
    }

    /// Phase 1 on `cpu`: random allocs, frees, hand-overs, bulk batches and
    /// flushes. Returns the objects still held.
    fn run(&self, cpu: u32, nr_cpus: u32) -> Vec<Held> {
        let mut rng = rng(u64::from(cpu));
        let mut seq = 0;
        let mut live: Vec<Held> = Vec::with_capacity(STRESS_HIGH + 64);
        let mut growing = true;
        for step in 0..STRESS_OPS {
            if live.len() >= STRESS_HIGH {
                growing = false;
            } else if live.len() <= STRESS_LOW {
                growing = true;
            }
            let roll = rng.below(100);
            let alloc = live.is_empty() || if growing { roll < 65 } else { roll < 35 };
            if alloc {
                let h = self.alloc(cpu, rng.below(self.caches.len()), &mut seq);
                live.push(h);
            } else {
                let h = live.swap_remove(rng.below(live.len()));
                if nr_cpus > 1 && rng.below(4) == 0 {
                    // Hand it to another CPU, which will free it there.
                    let to = (cpu + 1 + rng.below(nr_cpus as usize - 1) as u32) % nr_cpus;
                    self.mailboxes[to as usize]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(h);
                } else {
                    self.free(cpu, h);
                }
            }
            if step % 64 == 63 {
                self.collect(cpu, &mut seq, &mut live);
            }
            if step % 1024 == 1023 {
                self.bulk_round(cpu, &mut rng, &mut seq);
            }
            if step % 3000 == 2999 {
                // What a flush IPI or a shrinker would do on this CPU,
                // while the others go on.
                let c = &self.caches[rng.below(self.caches.len())];
                if rng.below(2) == 0 {
                    c.flush_cpu_slab();
                } else {
                    c.shrink();
                }
            }
        }
        live
    }

    /// A bulk allocation of 1..=80 objects, stamped, checked, bulk-freed.
    fn bulk_round(&self, cpu: u32, rng: &mut XorShift64, seq: &mut u64) {
        let cache = rng.below(self.caches.len());
        let c = &self.caches[cache];
        let mut objs = vec![core::ptr::null_mut(); 1 + rng.below(80)];
        assert_eq!(
            c.alloc_bulk(Gfp::KERNEL, &mut objs),
            objs.len(),
            "cpu {cpu}: {} alloc_bulk({})",
            c.name(),
            objs.len()
        );
        let held: Vec<Held> = objs
            .iter()
            .map(|&p| {
                assert!(!p.is_null() && is_aligned(p as usize, 8), "{p:?}");
                *seq += 1;
                let h = Held {
                    cache,
                    addr: p as usize,
                    stamp: stamp(cpu, *seq),
                };
                self.view(&h).fill(h.stamp);
                h
            })
            .collect();
        for h in &held {
            self.view(h)
                .check(h.stamp)
                .unwrap_or_else(|e| panic!("cpu {cpu}: bulk {}: {e}", c.name()));
        }
        rng.shuffle(&mut objs);
        // SAFETY: every pointer came from `c.alloc_bulk` just now, is held
        // by this thread only, and is freed once.
        unsafe { c.free_bulk(&objs) };
    }
}

/// S1..S3 on `nr_cpus` threads, one per CPU, with the caches of `specs`.
fn stress(nr_cpus: u32, specs: &[CacheSpec]) {
    let pa = machine(NR_PAGES, nr_cpus as usize);
    let before = free_frames(&pa);
    let caches: Vec<Box<KmemCache<'_, SimPlatform>>> = specs
        .iter()
        .map(|&(name, size, flags, sheaf_capacity)| {
            let args = KmemCacheArgs {
                flags,
                sheaf_capacity,
                ..KmemCacheArgs::default()
            };
            KmemCache::new(&pa, name, size, args).expect("cache creation")
        })
        .collect();
    let stress = Stress {
        caches: &caches,
        mailboxes: (0..nr_cpus).map(|_| Mutex::new(Vec::new())).collect(),
    };

    // Phase 1: everybody allocates, frees and hands over at random.
    let mut held: Vec<Held> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..nr_cpus)
            .map(|cpu| {
                let stress = &stress;
                s.spawn(move || {
                    sim::set_cpu(cpu);
                    stress.run(cpu, nr_cpus)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("stress thread panicked"))
            .collect()
    });
    for mailbox in &stress.mailboxes {
        let mut mailbox = mailbox.lock().unwrap_or_else(PoisonError::into_inner);
        for h in mailbox.drain(..) {
            stress
                .view(&h)
                .check(h.stamp)
                .expect("in flight at the end");
            held.push(h);
        }
    }

    // Quiescent point: every CPU flushed, the counters and slabinfo agree
    // with what we hold (S2); nothing was refused.
    for (i, cache) in caches.iter().enumerate() {
        flush_every_cpu(cache, nr_cpus);
        assert_accounting(cache, held.iter().filter(|h| h.cache == i).count());
        assert_eq!(nr_bad_frees(cache), 0, "{}", cache.name());
    }
    assert!(
        caches
            .iter()
            .any(|c| c.stats().get(SlabStat::AllocFastpath) > 0),
        "no allocation took the fast path"
    );
    if nr_cpus > 1 {
        assert!(
            caches
                .iter()
                .any(|c| c.stats().get(SlabStat::FreeSlowpath) > 0),
            "no remote free took the slow path"
        );
    }
    for (cache, spec) in caches.iter().zip(specs) {
        if spec.3 > 0 {
            let s = cache.stats();
            for stat in [SlabStat::AllocPcs, SlabStat::FreePcs, SlabStat::SheafRefill] {
                assert!(
                    s.get(stat) > 0,
                    "{}: {} never counted",
                    cache.name(),
                    stat.name()
                );
            }
        }
    }

    // Phase 2: the survivors are dealt out to the CPUs at random and freed
    // there, mostly remotely.
    let mut rng = rng(0xF4EE);
    rng.shuffle(&mut held);
    let shares: Vec<Vec<Held>> = (0..nr_cpus as usize)
        .map(|cpu| {
            held.iter()
                .copied()
                .skip(cpu)
                .step_by(nr_cpus as usize)
                .collect()
        })
        .collect();
    on_every_cpu(nr_cpus, |cpu| {
        for &h in &shares[cpu as usize] {
            stress.free(cpu, h);
        }
    });

    // S2 and S3: nothing held, nothing leaked.
    for cache in &caches {
        flush_and_shrink(cache, nr_cpus);
        assert_accounting(cache, 0);
        let info = cache.info();
        assert_eq!(info.num_slabs, 0, "{}: slabs left: {info:?}", cache.name());
        assert_eq!(nr_bad_frees(cache), 0, "{}", cache.name());
        assert!(cache.stats().get(SlabStat::NewSlab) > 0);
        assert_eq!(
            cache.stats().get(SlabStat::NewSlab),
            cache.stats().get(SlabStat::FreeSlab),
            "{}: slabs made != slabs given back",
            cache.name()
        );
    }
    assert_eq!(
        free_frames(&pa),
        before,
        "frames not back in the page allocator after shrink"
    );
    drop(caches);
    assert_eq!(free_frames(&pa), before, "frames lost by cache teardown");
    pa.check().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn stress_1_cpu() {
    stress(1, &CLASSIC_CACHES);
}

#[test]
fn stress_2_cpus() {
    stress(2, &CLASSIC_CACHES);
}

#[test]
fn stress_4_cpus() {
    stress(4, &CLASSIC_CACHES);
}

#[test]
fn stress_8_cpus() {
    stress(8, &CLASSIC_CACHES);
}

#[test]
fn stress_sheaves_1_cpu() {
    stress(1, &SHEAF_CACHES);
}

#[test]
fn stress_sheaves_2_cpus() {
    stress(2, &SHEAF_CACHES);
}

#[test]
fn stress_sheaves_4_cpus() {
    stress(4, &SHEAF_CACHES);
}

#[test]
fn stress_sheaves_8_cpus() {
    stress(8, &SHEAF_CACHES);
}

// ---------------------------------------------------------------------------
// S3': one CPU flushes them all.

/// CPUs of the flush-all tests.
const FLUSH_CPUS: u32 = 4;
/// Objects each CPU allocates then frees: two and a half sheaves of 8, so
/// that main and spare hold objects, and 4 CPUs stay below the barn's
/// `MAX_FULL_SHEAVES`.
const FLUSH_OBJECTS: usize = 20;

/// Every CPU allocates [`FLUSH_OBJECTS`] and frees them; the first
/// `nr_rcu` through `kfree_rcu`. Checks that each CPU kept objects in its
/// sheaves (and `nr_rcu` of them in its rcu_free sheaf).
fn leave_objects_on_every_cpu(c: &KmemCache<'_, SimPlatform>, nr_rcu: usize) {
    on_every_cpu(FLUSH_CPUS, |_| {
        let objs: Vec<NonNull<u8>> = (0..FLUSH_OBJECTS)
            .map(|_| c.alloc(Gfp::KERNEL).expect("alloc"))
            .collect();
        for (i, p) in objs.into_iter().enumerate() {
            // SAFETY: allocated above, freed once.
            unsafe {
                if i < nr_rcu {
                    c.kfree_rcu(p);
                } else {
                    c.free(p);
                }
            }
        }
    });
    sim::set_cpu(0);
    for cpu in 0..FLUSH_CPUS {
        let (cached, rcu_free) = c.objects_in_sheaves_of(CpuId::new(cpu));
        assert!(cached > 0, "CPU {cpu} kept nothing in its sheaves");
        assert_eq!(rcu_free, nr_rcu, "CPU {cpu}'s rcu_free sheaf");
    }
    assert_eq!(c.info().active_objs, 0);
    assert!(c.info().num_slabs > 0);
}

#[test]
fn shrink_from_one_cpu_flushes_every_cpu() {
    let pa = machine(NR_PAGES, FLUSH_CPUS as usize);
    let start = free_frames(&pa);
    let c = sheaf_cache(&pa, "flush-all", 64, 8);
    leave_objects_on_every_cpu(&c, 0);
    c.shrink();
    for cpu in 0..FLUSH_CPUS {
        assert_eq!(c.objects_in_sheaves_of(CpuId::new(cpu)), (0, 0));
    }
    assert_eq!(c.info().num_slabs, 0, "slabs left after a shrink on CPU 0");
    assert_eq!(free_frames(&pa), start);
    let s = c.stats();
    assert_eq!(s.get(SlabStat::NewSlab), s.get(SlabStat::FreeSlab));
}

#[test]
fn destroy_from_one_cpu_flushes_every_cpu_and_rcu_free_sheaf() {
    let pa = machine(NR_PAGES, FLUSH_CPUS as usize);
    let rcu = Rcu::new(SimPlatform(SimMachine::new(1, FLUSH_CPUS as usize)));
    let start = free_frames(&pa);
    let c = sheaf_cache(&pa, "flush-all-rcu", 64, 8).with_rcu(&rcu);
    leave_objects_on_every_cpu(&c, 3);
    // The other CPUs' threads are gone: take them out of grace periods.
    for cpu in 1..FLUSH_CPUS {
        rcu.cpu_offline(CpuId::new(cpu));
    }
    drop(c);
    assert_eq!(
        free_frames(&pa),
        start,
        "slabs leaked by a destroy on CPU 0"
    );
}

// ---------------------------------------------------------------------------
// S4: bulk.

/// A cache of `size`-byte objects with `flags`, without sheaves.
fn cache<'a>(
    pa: &'a PageAlloc<SimPlatform>,
    name: &'static str,
    size: usize,
    flags: SlabFlags,
) -> Box<KmemCache<'a, SimPlatform>> {
    let args = KmemCacheArgs {
        flags,
        ..KmemCacheArgs::default()
    };
    KmemCache::new(pa, name, size, args).expect("cache creation")
}

/// A cache of `size`-byte objects with `sheaf_capacity` (0: no sheaves).
fn sheaf_cache<'a>(
    pa: &'a PageAlloc<SimPlatform>,
    name: &'static str,
    size: usize,
    sheaf_capacity: u32,
) -> Box<KmemCache<'a, SimPlatform>> {
    let args = KmemCacheArgs {
        sheaf_capacity,
        ..KmemCacheArgs::default()
    };
    KmemCache::new(pa, name, size, args).expect("cache creation")
}

/// `alloc_bulk` of `n` objects: all distinct, aligned, disjoint, writable.
fn bulk_alloc_checked(c: &KmemCache<'_, SimPlatform>, n: usize, tag: u64) -> Vec<*mut u8> {
    let mut objs = vec![core::ptr::null_mut(); n];
    assert_eq!(c.alloc_bulk(Gfp::KERNEL, &mut objs), n, "alloc_bulk({n})");
    let size = c.object_size();
    let starts: BTreeSet<usize> = objs.iter().map(|&p| p as usize).collect();
    assert_eq!(starts.len(), n, "alloc_bulk({n}) returned duplicates");
    let mut prev_end = 0;
    for &start in &starts {
        assert!(start != 0 && is_aligned(start, 8), "{start:#x}");
        assert!(start >= prev_end, "objects overlap at {start:#x}");
        prev_end = start + size;
    }
    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: just allocated, owned by this test, views only.
        unsafe { ObjView::new(p as usize, size) }.fill(tag + i as u64);
    }
    objs
}

/// Checks the stamps `bulk_alloc_checked` wrote, then `free_bulk`s the
/// objects in a shuffled order.
fn bulk_free_checked(c: &KmemCache<'_, SimPlatform>, objs: &[*mut u8], tag: u64) {
    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: allocated by `bulk_alloc_checked`, still owned.
        let view = unsafe { ObjView::new(p as usize, c.object_size()) };
        view.check(tag + i as u64).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut shuffled = objs.to_vec();
    rng(tag).shuffle(&mut shuffled);
    // SAFETY: every pointer was allocated from `c` and is freed once.
    unsafe { c.free_bulk(&shuffled) };
}

#[test]
fn bulk_any_count() {
    bulk_any_count_on(&[("bulk-64", 64, 0), ("bulk-1000", 1000, 0)]);
}

#[test]
fn bulk_any_count_sheaves() {
    bulk_any_count_on(&[("bulk-64-sheaves", 64, 16), ("bulk-1000-sheaves", 1000, 32)]);
}

/// S4 for caches of (name, object size, sheaf capacity).
fn bulk_any_count_on(specs: &[(&'static str, usize, u32)]) {
    let pa = machine(NR_PAGES, 1);
    let before = free_frames(&pa);
    for &(name, size, sheaf_capacity) in specs {
        let c = sheaf_cache(&pa, name, size, sheaf_capacity);
        // Learn the slab geometry from one allocation.
        let probe = c.alloc(Gfp::KERNEL).expect("memory");
        let per = c.info().objperslab as usize;
        assert!(per >= 2, "{:?}", c.info());
        // SAFETY: allocated from `c` just now, freed once.
        unsafe { c.free(probe) };
        let counts = [1, 2, per - 1, per, per + 1, 2 * per + 3, 1000];
        for (i, &n) in counts.iter().enumerate() {
            let tag = (i as u64) << 32;
            let objs = bulk_alloc_checked(&c, n, tag);
            c.flush_cpu_slab();
            assert_accounting(&c, n);
            bulk_free_checked(&c, &objs, tag);
            c.flush_cpu_slab();
            assert_accounting(&c, 0);
        }
        // Two overlapping batches, freed in the other order.
        let a = bulk_alloc_checked(&c, 3 * per, 1 << 40);
        let b = bulk_alloc_checked(&c, per + 7, 2 << 40);
        assert!(a.iter().all(|p| !b.contains(p)), "batches share an object");
        bulk_free_checked(&c, &a, 1 << 40);
        bulk_free_checked(&c, &b, 2 << 40);
        // An empty batch is a no-op.
        assert_eq!(c.alloc_bulk(Gfp::KERNEL, &mut []), 0);
        // SAFETY: no pointers.
        unsafe { c.free_bulk(&[]) };
        flush_and_shrink(&c, 1);
        assert_accounting(&c, 0);
        assert_eq!(c.info().num_slabs, 0, "{:?}", c.info());
    }
    assert_eq!(free_frames(&pa), before, "bulk leaked slabs");
}

#[test]
fn bulk_is_all_or_nothing_when_memory_runs_out() {
    bulk_out_of_memory(0);
}

#[test]
fn bulk_is_all_or_nothing_when_memory_runs_out_sheaves() {
    bulk_out_of_memory(8);
}

/// S4 when memory runs out, on a cache with `sheaf_capacity`.
fn bulk_out_of_memory(sheaf_capacity: u32) {
    // 256 frames (1 MiB): 4096 objects of 1000 bytes cannot fit.
    let pa = machine(256, 1);
    let before = free_frames(&pa);
    let c = sheaf_cache(&pa, "bulk-oom", 1000, sheaf_capacity);
    let keep = bulk_alloc_checked(&c, 10, 0);
    let mut objs = vec![core::ptr::null_mut(); 4096];
    assert_eq!(
        c.alloc_bulk(Gfp::KERNEL | Gfp::NOWARN, &mut objs),
        0,
        "sheaves {sheaf_capacity}: a bulk allocation larger than memory must fail as a whole"
    );
    c.flush_cpu_slab();
    assert_accounting(&c, 10);
    // Memory is usable again: the failed batch gave everything back.
    let more = bulk_alloc_checked(&c, 100, 1 << 32);
    bulk_free_checked(&c, &more, 1 << 32);
    bulk_free_checked(&c, &keep, 0);
    flush_and_shrink(&c, 1);
    assert_accounting(&c, 0);
    assert_eq!(
        free_frames(&pa),
        before,
        "sheaves {sheaf_capacity}: failed bulk leaked slabs"
    );
}

/// Objects moved between sheaves and slabs (refill, flush) are not user
/// allocations or frees: `Allocs`, `Frees` and `active_objs` see only the
/// user's operations (SH3: objects in sheaves count as allocated to the
/// slab layer, not to the user).
#[test]
fn sheaf_refill_and_flush_are_not_user_operations() {
    let pa = machine(1024, 1);
    let c = sheaf_cache(&pa, "sheaf-accounting", 64, 4);
    // The first allocation refills the main sheaf with 4 objects.
    let p = c.alloc(Gfp::KERNEL).expect("memory");
    assert_eq!(c.stats().get(SlabStat::SheafRefill), 4);
    assert_accounting(&c, 1);
    // SAFETY: allocated above, freed once.
    unsafe { c.free(p) };
    assert_accounting(&c, 0);
    // Flushing the sheaf moves its 4 objects to the slab.
    c.shrink();
    assert_eq!(c.stats().get(SlabStat::SheafFlush), 4);
    assert_accounting(&c, 0);
    assert_eq!(c.info().num_slabs, 0);
}

// ---------------------------------------------------------------------------
// S5: debugging.

/// A one-CPU machine and a `RED_ZONE | POISON` cache of `size` bytes.
fn debug_cache<'a>(pa: &'a PageAlloc<SimPlatform>, size: usize) -> Box<KmemCache<'a, SimPlatform>> {
    cache(pa, "debug", size, SlabFlags::RED_ZONE | SlabFlags::POISON)
}

/// Allocates `n` objects and checks they are distinct (and none is in
/// `exclude`), then frees them.
fn assert_distinct_allocs(c: &KmemCache<'_, SimPlatform>, n: usize, exclude: &[usize]) {
    let objs: Vec<NonNull<u8>> = (0..n)
        .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    let set: BTreeSet<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(set.len(), n, "the cache handed out one object twice");
    for &x in exclude {
        assert!(!set.contains(&x), "{x:#x} handed out while still held");
    }
    for p in objs {
        // SAFETY: allocated above, freed once.
        unsafe { c.free(p) };
    }
}

#[test]
fn debug_double_free_is_caught() {
    let pa = machine(1024, 1);
    let c = debug_cache(&pa, 48);
    let a = c.alloc(Gfp::KERNEL).expect("memory");
    let b = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: `a` is ours; the first free is legitimate.
    unsafe { c.free(a) };
    let bad = nr_bad_frees(&c);
    // SAFETY: deliberately a double free: the debug cache must detect it
    // and refuse it; `a` stays in simulated RAM, so nothing is touched
    // outside the machine whatever the cache does.
    unsafe { c.free(a) };
    assert_eq!(nr_bad_frees(&c), bad + 1, "double free not counted");
    // No corruption: `a` is on the freelist once, `b` is not on it at all.
    let per = c.info().objperslab as usize;
    assert_distinct_allocs(&c, 2 * per + 1, &[b.as_ptr() as usize]);
    // SAFETY: `b` is ours.
    unsafe { c.free(b) };
    c.flush_cpu_slab();
    assert_accounting(&c, 0);
}

#[test]
fn debug_red_zone_overwrite_is_caught_at_free() {
    let pa = machine(1024, 1);
    let size = 40;
    let c = debug_cache(&pa, size);
    let a = c.alloc(Gfp::KERNEL).expect("memory");
    let b = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: the whole object is ours.
    unsafe { ObjView::new(a.as_ptr() as usize, size) }.fill(1);
    let before = c.stats().get(SlabStat::RedzoneCorrupt);
    // SAFETY: one byte past the object's end: the red zone, inside the
    // slab and so inside simulated RAM; writing it is the bug under test.
    unsafe { a.as_ptr().add(size).write_volatile(0x42) };
    // SAFETY: `a` is ours; the cache should report the red zone.
    unsafe { c.free(a) };
    assert_eq!(
        c.stats().get(SlabStat::RedzoneCorrupt),
        before + 1,
        "write past the end not caught"
    );
    // A clean object still frees without a report.
    // SAFETY: the whole object is ours.
    unsafe { ObjView::new(b.as_ptr() as usize, size) }.fill(2);
    // SAFETY: `b` is ours.
    unsafe { c.free(b) };
    assert_eq!(c.stats().get(SlabStat::RedzoneCorrupt), before + 1);
    let per = c.info().objperslab as usize;
    assert_distinct_allocs(&c, 2 * per, &[]);
}

#[test]
fn debug_write_after_free_is_caught_at_next_alloc() {
    let pa = machine(1024, 1);
    let size = 64;
    let c = debug_cache(&pa, size);
    // Keep a neighbour so the slab stays allocated.
    let keep = c.alloc(Gfp::KERNEL).expect("memory");
    let a = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: `a` is ours.
    unsafe { c.free(a) };
    let before = c.stats().get(SlabStat::PoisonCorrupt);
    // SAFETY: a write into a freed object of a live slab (kept alive by
    // `keep`): simulated RAM, and the bug under test.
    unsafe { a.as_ptr().add(size / 2).write_volatile(0x42) };
    // The next allocations reach `a` again (or skip it, having caught it).
    let per = c.info().objperslab as usize;
    let objs: Vec<NonNull<u8>> = (0..per + 1)
        .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
        .collect();
    assert_eq!(
        c.stats().get(SlabStat::PoisonCorrupt),
        before + 1,
        "write after free not caught"
    );
    let set: BTreeSet<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(set.len(), objs.len(), "duplicate objects after the report");
    assert!(!set.contains(&(keep.as_ptr() as usize)));
    for p in objs {
        // SAFETY: allocated above, freed once.
        unsafe { c.free(p) };
    }
    // SAFETY: `keep` is ours.
    unsafe { c.free(keep) };
}

#[test]
fn debug_freed_objects_are_poisoned() {
    let pa = machine(1024, 1);
    let size = 64;
    let c = debug_cache(&pa, size);
    let keep = c.alloc(Gfp::KERNEL).expect("memory");
    let a = c.alloc(Gfp::KERNEL).expect("memory");
    // SAFETY: `a` is ours.
    unsafe { ObjView::new(a.as_ptr() as usize, size) }.fill(7);
    // SAFETY: `a` is ours.
    unsafe { c.free(a) };
    // SAFETY: reading (not writing) a freed object of a live slab (kept by
    // `keep`): simulated RAM; the cache does not write it concurrently.
    let view = unsafe { ObjView::new(a.as_ptr() as usize, size) };
    let poisoned = (0..size)
        .filter(|&i| view.byte(i).load(Relaxed) == super::object::POISON_FREE)
        .count();
    assert!(
        poisoned >= size - 1,
        "freed object not poisoned: {poisoned} of {size} bytes"
    );
    // SAFETY: `keep` is ours.
    unsafe { c.free(keep) };
}

#[test]
fn foreign_pointers_are_refused() {
    let pa = machine(1024, 1);
    let before = free_frames(&pa);
    for (flags, sheaf_capacity) in [
        (SlabFlags::empty(), 0),
        (SlabFlags::RED_ZONE | SlabFlags::POISON, 0),
        (SlabFlags::empty(), 8),
    ] {
        let args = KmemCacheArgs {
            flags,
            sheaf_capacity,
            ..KmemCacheArgs::default()
        };
        let c = KmemCache::new(&pa, "mine", 64, args).expect("cache");
        let other = KmemCache::new(&pa, "other", 64, args).expect("cache");
        let mine = c.alloc(Gfp::KERNEL).expect("memory");
        let theirs = other.alloc(Gfp::KERNEL).expect("memory");
        let page = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).expect("memory");
        let page_va = pa.platform().phys_to_virt(page.phys_addr());
        let host = Box::new([0u64; 8]);
        let host_ptr = NonNull::from(&*host).cast::<u8>();
        let inside = NonNull::new(mine.as_ptr().wrapping_add(8)).expect("non-null");

        let foreign = [
            ("another cache's object", theirs),
            ("the middle of an object", inside),
            (
                "a page from the page allocator",
                NonNull::new(page_va).expect("va"),
            ),
            ("host memory outside the machine", host_ptr),
        ];
        for (what, p) in foreign {
            let bad = nr_bad_frees(&c);
            // SAFETY: deliberately a bad free: the cache must look the
            // pointer up (page record, slab, object boundary) and refuse
            // it without writing through it.
            unsafe { c.free(p) };
            assert_eq!(
                nr_bad_frees(&c),
                bad + 1,
                "{flags:?}, sheaves {sheaf_capacity}: {what} not refused"
            );
        }
        assert_eq!(*host, [0; 8], "the cache wrote host memory");
        c.flush_cpu_slab();
        other.flush_cpu_slab();
        assert_accounting(&c, 1);
        assert_accounting(&other, 1);
        // The other cache's object is still allocated and whole.
        assert_distinct_allocs(&other, 200, &[theirs.as_ptr() as usize]);
        assert_distinct_allocs(&c, 200, &[mine.as_ptr() as usize]);
        // SAFETY: each freed once, to its own cache.
        unsafe {
            c.free(mine);
            other.free(theirs);
        }
        pa.free_pages(page, Order::ZERO).expect("page freed once");
        flush_and_shrink(&c, 1);
        flush_and_shrink(&other, 1);
    }
    assert_eq!(free_frames(&pa), before);
}

#[test]
fn alignment_is_honoured() {
    let pa = machine(NR_PAGES, 1);
    for (size, align, flags, want) in [
        (24, 0, SlabFlags::empty(), 8),
        (24, 0, SlabFlags::HWCACHE_ALIGN, 32),
        (100, 0, SlabFlags::HWCACHE_ALIGN, 64),
        (100, 128, SlabFlags::empty(), 128),
        (40, 256, SlabFlags::RED_ZONE | SlabFlags::POISON, 256),
        (3000, 0, SlabFlags::HWCACHE_ALIGN, 64),
    ] {
        let args = KmemCacheArgs {
            align,
            flags,
            ..KmemCacheArgs::default()
        };
        let c = KmemCache::new(&pa, "align", size, args).expect("cache");
        let objs: Vec<NonNull<u8>> = (0..100)
            .map(|_| c.alloc(Gfp::KERNEL).expect("memory"))
            .collect();
        for p in &objs {
            assert!(
                is_aligned(p.as_ptr() as usize, want),
                "size {size} align {align} {flags:?}: {p:?} not {want}-aligned"
            );
        }
        for p in objs {
            // SAFETY: allocated above, freed once.
            unsafe { c.free(p) };
        }
    }
}

// ---------------------------------------------------------------------------
// S6: kmalloc.

/// The kmalloc size classes (x86_64).
const KMALLOC_CLASSES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// Largest request served by a slab cache (`KMALLOC_MAX_CACHE_SIZE`).
const KMALLOC_MAX_CACHE_SIZE: usize = 8192;

/// What `ksize` must say for a request of `size` bytes: its class, or the
/// power-of-two number of frames for a large allocation.
fn expected_ksize(size: usize) -> usize {
    match KMALLOC_CLASSES.iter().find(|&&c| c >= size) {
        Some(&c) => c,
        None => size.next_power_of_two().max(PAGE_SIZE as usize),
    }
}

/// Linux's kmalloc alignment guarantee: at least 8 bytes
/// (`ARCH_KMALLOC_MINALIGN`), and power-of-two sizes naturally aligned.
/// Beyond a frame the simulated direct map guarantees nothing more (its
/// RAM buffer is only frame-aligned), so the check stops at `PAGE_SIZE`.
fn expected_align(size: usize) -> usize {
    if size.is_power_of_two() {
        size.clamp(8, PAGE_SIZE as usize)
    } else {
        8
    }
}

/// Sizes worth a full write-and-check: the small ones and every class
/// boundary ±1, plus large ones.
fn interesting_sizes() -> Vec<usize> {
    let mut sizes: BTreeSet<usize> = (1..=9).collect();
    for c in KMALLOC_CLASSES {
        sizes.extend([c - 1, c, c + 1]);
    }
    sizes.extend([12288, 16383, 16384]);
    sizes.into_iter().collect()
}

/// Flushes every CPU's slab of every kmalloc cache, then shrinks them.
fn kmalloc_flush_and_shrink(km: &Kmalloc<'_, SimPlatform>, nr_cpus: u32) {
    for c in km.caches() {
        flush_and_shrink(c, nr_cpus);
        assert_accounting(c, 0);
        assert_eq!(c.info().num_slabs, 0, "{}: {:?}", c.name(), c.info());
    }
}

fn kmalloc_checked(km: &Kmalloc<'_, SimPlatform>, size: usize) -> NonNull<u8> {
    let p = km
        .kmalloc(size, Gfp::KERNEL)
        .unwrap_or_else(|| panic!("kmalloc({size}) failed"));
    let addr = p.as_ptr() as usize;
    let ks = km.ksize(p);
    assert!(ks >= size, "kmalloc({size}): ksize {ks}");
    assert_eq!(
        ks,
        expected_ksize(size),
        "kmalloc({size}): wrong size class"
    );
    let align = expected_align(size);
    assert!(
        is_aligned(addr, align),
        "kmalloc({size}) = {addr:#x}: not {align}-aligned (has {})",
        alignment_of(addr, PAGE_SIZE as usize)
    );
    p
}

#[test]
fn kmalloc_every_size() {
    let pa = machine(NR_PAGES, 1);
    let km = Kmalloc::new(&pa);
    for size in 1..=16384 {
        let p = kmalloc_checked(&km, size);
        // SAFETY: first and last requested bytes are inside the object.
        unsafe {
            p.as_ptr().write_volatile(0xAA);
            p.as_ptr().add(size - 1).write_volatile(0x55);
        }
        // SAFETY: a live kmalloc object, freed once.
        unsafe { km.kfree(p) };
    }
}

#[test]
fn kmalloc_interesting_sizes_are_disjoint_and_whole() {
    let pa = machine(NR_PAGES, 1);
    let before = free_frames(&pa);
    let km = Kmalloc::new(&pa);
    let sizes = interesting_sizes();
    // Three of each at once, so neighbours would collide if classes were
    // mixed up.
    let mut live: Vec<(NonNull<u8>, usize, u64)> = Vec::new();
    for round in 0..3u64 {
        for &size in &sizes {
            let p = kmalloc_checked(&km, size);
            let stamp = round << 32 | size as u64;
            // SAFETY: `size` bytes of a live object, test-only accesses.
            unsafe { ObjView::new(p.as_ptr() as usize, size) }.fill(stamp);
            live.push((p, size, stamp));
        }
    }
    let mut ranges: Vec<(usize, usize)> = live
        .iter()
        .map(|&(p, _, _)| (p.as_ptr() as usize, km.ksize(p)))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "kmalloc objects overlap: {w:?}");
    }
    for (p, size, stamp) in live {
        // SAFETY: live object.
        let view = unsafe { ObjView::new(p.as_ptr() as usize, size) };
        view.check(stamp).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: freed once.
        unsafe { km.kfree(p) };
    }
    kmalloc_flush_and_shrink(&km, 1);
    assert_eq!(free_frames(&pa), before, "kmalloc leaked frames");
}

#[test]
fn krealloc_keeps_contents() {
    let pa = machine(NR_PAGES, 1);
    let before = free_frames(&pa);
    let km = Kmalloc::new(&pa);
    // Across classes, into and out of the page allocator, down to 1 byte.
    let chain = [
        10, 50, 64, 100, 200, 190, 5000, 8192, 9000, 20000, 3000, 7, 1,
    ];
    let mut size = chain[0];
    let mut p = kmalloc_checked(&km, size);
    // SAFETY: `size` bytes of a live object.
    unsafe { ObjView::new(p.as_ptr() as usize, size) }.fill(0);
    for (i, &new_size) in chain.iter().enumerate().skip(1) {
        let ks_old = km.ksize(p);
        // SAFETY: `p` is live and given up to krealloc.
        let q = unsafe { km.krealloc(p, new_size, Gfp::KERNEL) }
            .unwrap_or_else(|| panic!("krealloc({size} -> {new_size}) failed"));
        let ks = km.ksize(q);
        assert!(ks >= new_size, "krealloc({size} -> {new_size}): ksize {ks}");
        if new_size >= size && new_size <= ks_old {
            assert_eq!(q, p, "krealloc({size} -> {new_size}) within ksize moved");
        }
        // SAFETY: the first `min(size, new_size)` bytes of a live object.
        let view = unsafe { ObjView::new(q.as_ptr() as usize, size.min(new_size)) };
        for j in 0..size.min(new_size) {
            assert_eq!(
                view.byte(j).load(Relaxed),
                ObjView::expected_byte(i as u64 - 1, size, j),
                "krealloc({size} -> {new_size}) lost byte {j}"
            );
        }
        // SAFETY: `new_size` bytes of a live object.
        unsafe { ObjView::new(q.as_ptr() as usize, new_size) }.fill(i as u64);
        (p, size) = (q, new_size);
    }
    // SAFETY: freed once.
    unsafe { km.kfree(p) };
    kmalloc_flush_and_shrink(&km, 1);
    assert_eq!(free_frames(&pa), before, "krealloc leaked frames");
}

#[test]
fn kfree_of_large_allocations_returns_their_frames() {
    let pa = machine(NR_PAGES, 1);
    let km = Kmalloc::new(&pa);
    let before = free_frames(&pa);
    for (size, frames) in [
        (KMALLOC_MAX_CACHE_SIZE + 1, 4),
        (16384, 4),
        (16385, 8),
        (100_000, 32),
        (1 << 22, 1024),
    ] {
        let p = kmalloc_checked(&km, size);
        assert_eq!(free_frames(&pa), before - frames, "kmalloc({size})");
        assert_eq!(km.ksize(p), frames as usize * PAGE_SIZE as usize);
        // SAFETY: `size` bytes of a live object.
        unsafe { ObjView::new(p.as_ptr() as usize, size) }.fill(size as u64);
        // SAFETY: freed once.
        unsafe { km.kfree(p) };
        assert_eq!(free_frames(&pa), before, "kfree of kmalloc({size})");
    }
}

#[test]
fn kmalloc_cross_cpu() {
    const NR_CPUS: u32 = 4;
    let pa = machine(NR_PAGES, NR_CPUS as usize);
    let before = free_frames(&pa);
    let km = Kmalloc::new(&pa);
    let mailboxes: Vec<Mutex<Vec<(usize, usize, u64)>>> =
        (0..NR_CPUS).map(|_| Mutex::new(Vec::new())).collect();
    let sizes = interesting_sizes();
    on_every_cpu(NR_CPUS, |cpu| {
        let mut rng = rng(u64::from(cpu) + 100);
        let mut seq = 0;
        for _ in 0..1500 {
            let size = sizes[rng.below(sizes.len())];
            let p = kmalloc_checked(&km, size);
            seq += 1;
            let st = stamp(cpu, seq);
            // SAFETY: `size` bytes of a live object.
            unsafe { ObjView::new(p.as_ptr() as usize, size) }.fill(st);
            let to = rng.below(NR_CPUS as usize);
            mailboxes[to]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((p.as_ptr() as usize, size, st));
            let mine: Vec<_> = core::mem::take(
                &mut *mailboxes[cpu as usize]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for (addr, size, st) in mine {
                // SAFETY: handed to us by its previous owner; live.
                let view = unsafe { ObjView::new(addr, size) };
                view.check(st).unwrap_or_else(|e| panic!("cpu {cpu}: {e}"));
                // SAFETY: freed once, by its one owner.
                unsafe { km.kfree(NonNull::new(addr as *mut u8).expect("non-null")) };
            }
        }
    });
    for mailbox in &mailboxes {
        for (addr, size, st) in mailbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            // SAFETY: live, owned by the test now.
            let view = unsafe { ObjView::new(addr, size) };
            view.check(st).unwrap_or_else(|e| panic!("{e}"));
            // SAFETY: freed once.
            unsafe { km.kfree(NonNull::new(addr as *mut u8).expect("non-null")) };
        }
    }
    kmalloc_flush_and_shrink(&km, NR_CPUS);
    assert_eq!(free_frames(&pa), before, "kmalloc leaked frames");
}

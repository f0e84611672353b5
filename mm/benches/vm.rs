//! Benchmark: address-space operations on the simulated machine.
//!
//! One `Mm` on `mm::sim::page_alloc` (65536 frames = 256 MiB, the first
//! 1 MiB reserved, 1 CPU), its VMA tree's nodes from a `maple_node` cache
//! with sheaves. Workloads, each timed [`REPEATS`] times on the same
//! address space (median printed):
//!
//! - (a) first touch: 4096 write faults on a fresh 16 MiB private mapping
//!   (a zeroed page each, PTE tables allocated on the way); and 4096 read
//!   faults (the zero page);
//! - (b) mmap + munmap pairs of one untouched page, 2^14 times, in an
//!   otherwise empty address space and with 1000 other VMAs mapped;
//! - (c) munmap of a 64 MiB range whose 16384 pages are all populated
//!   (zap, TLB flush, pages and tables freed): pages per second;
//! - (d) madvise(MADV_DONTNEED) of a populated 16 MiB range, then write
//!   faults on every page again;
//! - (e) mremap of a populated 16 MiB range to a new address (MREMAP_FIXED):
//!   4096 PTEs moved one by one.
//!
//! Between measurements (untimed) the RCU callbacks run (`rcu_barrier`)
//! so that retired VMAs, maple nodes and page tables are reused: in a
//! kernel, that is the RCU callbacks' work.
//!
//! Run: `cargo bench -p mm --features std --bench vm` (release profile).

use std::hint::black_box;
use std::time::Instant;

use mm::page_alloc::ZoneLayout;
use mm::rcu::Rcu;
use mm::sim::{self, SimPlatform};
use mm::vm::{FaultAccess, MapFlags, Mm, MremapFlags, Prot, Vm};
use mm::{PAGE_SIZE as PG, Pfn};

const NR_PAGES: usize = 1 << 16;
const RESERVED_END: u64 = 256;
const REPEATS: usize = 7;
/// Pages of the fault, DONTNEED and mremap ranges (16 MiB).
const TOUCH_PAGES: u64 = 4096;
/// mmap + munmap pairs per measurement.
const PAIRS: usize = 1 << 14;
/// Pages of the munmap range (64 MiB).
const UNMAP_PAGES: u64 = 16384;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);

type BenchMm<'v, 'a> = Mm<'v, 'a, SimPlatform>;

/// Runs `f` `REPEATS` times (`settle` untimed after each) and returns the
/// median of the nanoseconds it reports.
fn median(mut f: impl FnMut() -> f64, settle: &dyn Fn()) -> f64 {
    let mut v: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let ns = f();
            settle();
            ns
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[REPEATS / 2]
}

/// Times `f`, returning nanoseconds.
fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

fn touch(mm: &BenchMm<'_, '_>, a: u64, pages: u64, access: FaultAccess) {
    for i in 0..pages {
        mm.handle_fault(a + i * PG, access).expect("fault");
    }
}

fn main() {
    sim::set_cpu(0);
    let reserved = Pfn::new(0)..Pfn::new(RESERVED_END);
    let pa = sim::bench_page_alloc(NR_PAGES, 1, reserved, ZoneLayout::X86_64);
    let rcu = Rcu::new(pa.platform().clone());
    let cache = mm::maple::node_cache(&pa, &rcu).expect("node cache");
    let vm = Vm::new(&pa, &rcu, &cache).expect("vm");
    let mm = Mm::new(&vm).expect("mm");
    let settle = || {
        cache.flush_rcu_sheaf();
        rcu.rcu_barrier();
    };
    let len = TOUCH_PAGES * PG;

    let mut rows: Vec<(&str, f64, &str)> = Vec::new();

    // (a) first touch.
    let mut a = 0;
    let write = median(
        || {
            a = mm.mmap(0, len, RW, ANON, -1, 0).expect("mmap");
            let ns = timed(|| touch(&mm, a, TOUCH_PAGES, FaultAccess::Write));
            mm.munmap(a, len).expect("munmap");
            ns / TOUCH_PAGES as f64
        },
        &settle,
    );
    rows.push(("(a) first-touch write fault", write, "fault"));
    let read = median(
        || {
            a = mm.mmap(0, len, RW, ANON, -1, 0).expect("mmap");
            let ns = timed(|| touch(&mm, a, TOUCH_PAGES, FaultAccess::Read));
            mm.munmap(a, len).expect("munmap");
            ns / TOUCH_PAGES as f64
        },
        &settle,
    );
    rows.push(("(a) first-touch read fault (zero page)", read, "fault"));

    // (b) mmap + munmap pairs.
    let pairs = |mm: &BenchMm<'_, '_>| {
        timed(|| {
            for _ in 0..PAIRS {
                let a = mm.mmap(0, PG, RW, ANON, -1, 0).expect("mmap");
                mm.munmap(black_box(a), PG).expect("munmap");
            }
        }) / PAIRS as f64
    };
    rows.push((
        "(b) mmap+munmap 1 page, empty mm",
        median(|| pairs(&mm), &settle),
        "pair",
    ));
    // 1000 VMAs two pages apart (alternating protection: no merging).
    let base = 0x1000_0000;
    for i in 0..1000u64 {
        let prot = if i % 2 == 0 { RW } else { Prot::READ };
        mm.mmap(base + 2 * i * PG, PG, prot, ANON | MapFlags::FIXED, -1, 0)
            .expect("mmap");
    }
    rows.push((
        "(b) mmap+munmap 1 page, 1000 VMAs",
        median(|| pairs(&mm), &settle),
        "pair",
    ));
    mm.munmap(base, 2000 * PG).expect("munmap");
    settle();

    // (c) munmap of a large populated range.
    let ulen = UNMAP_PAGES * PG;
    let unmap = median(
        || {
            let a = mm.mmap(0, ulen, RW, ANON, -1, 0).expect("mmap");
            touch(&mm, a, UNMAP_PAGES, FaultAccess::Write);
            timed(|| mm.munmap(a, ulen).expect("munmap")) / UNMAP_PAGES as f64
        },
        &settle,
    );
    rows.push(("(c) munmap 64 MiB populated", unmap, "page"));

    // (d) madvise(DONTNEED) + retouch.
    let a = mm.mmap(0, len, RW, ANON, -1, 0).expect("mmap");
    touch(&mm, a, TOUCH_PAGES, FaultAccess::Write);
    let mut retouch = Vec::new();
    let dontneed = median(
        || {
            let ns = timed(|| mm.madvise(a, len, 4).expect("madvise"));
            retouch.push(timed(|| touch(&mm, a, TOUCH_PAGES, FaultAccess::Write)));
            ns / TOUCH_PAGES as f64
        },
        &settle,
    );
    retouch.sort_by(|x, y| x.partial_cmp(y).expect("no NaN"));
    rows.push(("(d) madvise(DONTNEED) 16 MiB populated", dontneed, "page"));
    rows.push((
        "(d) retouch after DONTNEED (write fault)",
        retouch[REPEATS / 2] / TOUCH_PAGES as f64,
        "fault",
    ));

    // (e) mremap move of the populated range, back and forth.
    let (mut from, mut to) = (a, 0x2000_0000);
    let to_fixed = MremapFlags::MAYMOVE | MremapFlags::FIXED;
    let moved = median(
        || {
            let ns = timed(|| {
                mm.mremap(from, len, len, to_fixed, to).expect("mremap");
            });
            core::mem::swap(&mut from, &mut to);
            ns / TOUCH_PAGES as f64
        },
        &settle,
    );
    rows.push(("(e) mremap move 16 MiB populated", moved, "page"));
    mm.munmap(from, len).expect("munmap");
    settle();

    println!(
        "vm: {NR_PAGES} frames ({} MiB), 1 CPU, median of {REPEATS}",
        NR_PAGES * 4 / 1024
    );
    println!();
    println!("{:<42} {:>10} {:>14}", "workload", "ns per", "per second");
    for (name, ns, unit) in rows {
        println!(
            "{name:<42} {:>10} {:>14}",
            format!("{ns:.1}/{unit}"),
            format!("{:.0}", 1e9 / ns)
        );
    }
    let s = mm.status();
    assert_eq!((s.vm_size, s.vm_rss), (0, 0), "all unmapped");
    drop(mm);
    settle();
}

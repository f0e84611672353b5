//! Benchmark: fork, copy-on-write and large folios (issue 9), side by side
//! in one run on the simulated machine:
//!
//! - (a) CoW write faults after fork, 4 KiB folios vs 64 KiB folios: the
//!   parent populates a region, forks, and writes every page while the
//!   child still maps it (every write copies a page);
//! - (b) "the child exits, the parent writes" with 64 KiB folios, CoW reuse
//!   of large folios on vs off (Linux 6.15 measured about 65% less run
//!   time with reuse);
//! - (c) munmap and fork of a populated region of 64 KiB folios, with
//!   per-page mapcounts vs without (`NO_PAGE_MAPCOUNT`; Linux measured up
//!   to 30% faster munmap and 20% faster fork without them).
//!
//! Each figure is the median of [`REPEATS`] runs, in ns per page.
//! Run: `cargo bench -p mm --features std --bench folio` (release profile).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use mm::page_alloc::ZoneLayout;
use mm::rcu::Rcu;
use mm::sim;
use mm::vm::{FaultAccess, MapFlags, Mm, Prot, Vm, VmEvent};
use mm::{PAGE_SIZE, Pfn};

/// 256 MiB of simulated RAM.
const NR_PAGES: usize = 1 << 16;
/// Pages in the region (16 MiB).
const PAGES: u64 = 4096;
const REPEATS: usize = 5;
const BASE: u64 = 0x4000_0000;
/// Orders enabled for 64 KiB folios: 16 pages, with order 0 to fall back.
const ORDERS_64K: u32 = 1 << 4 | 1;

/// Settings of one measurement.
#[derive(Clone, Copy)]
struct Setup {
    orders: u32,
    reuse_large: bool,
    no_page_mapcount: bool,
}

/// Builds a machine and an address space with `PAGES` written pages, then
/// times `phase` (which gets the parent) and returns ns per page and the
/// events it counted.
fn measure(setup: Setup, phase: impl Fn(&Mm<'_, '_, sim::SimPlatform>) -> f64) -> (f64, u64, u64) {
    sim::set_cpu(0);
    let pa = sim::bench_page_alloc(NR_PAGES, 1, Pfn::new(0)..Pfn::new(256), ZoneLayout::X86_64);
    let rcu = Rcu::new(pa.platform().clone());
    let cache = mm::maple::node_cache(&pa, &rcu).unwrap();
    let vm = Vm::new(&pa, &rcu, &cache).unwrap();
    vm.anon_orders.store(setup.orders, Relaxed);
    vm.cow_reuse_large.store(setup.reuse_large, Relaxed);
    vm.no_page_mapcount.store(setup.no_page_mapcount, Relaxed);
    let r = {
        let mm = Mm::new(&vm).unwrap();
        let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED;
        mm.mmap(
            BASE,
            PAGES * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            flags,
            -1,
            0,
        )
        .unwrap();
        for p in 0..PAGES {
            mm.handle_fault(BASE + p * PAGE_SIZE, FaultAccess::Write)
                .unwrap();
        }
        let (c0, r0) = (vm.event(VmEvent::CowCopy), vm.event(VmEvent::CowReuse));
        let ns = phase(&mm);
        (
            ns,
            vm.event(VmEvent::CowCopy) - c0,
            vm.event(VmEvent::CowReuse) - r0,
        )
    };
    rcu.rcu_barrier();
    r
}

/// Median over [`REPEATS`] runs.
fn median(
    setup: Setup,
    phase: impl Fn(&Mm<'_, '_, sim::SimPlatform>) -> f64 + Copy,
) -> (f64, u64, u64) {
    let mut runs: Vec<(f64, u64, u64)> = (0..REPEATS).map(|_| measure(setup, phase)).collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[REPEATS / 2]
}

fn write_all(mm: &Mm<'_, '_, sim::SimPlatform>) {
    for p in 0..PAGES {
        mm.handle_fault(BASE + p * PAGE_SIZE, FaultAccess::Write)
            .unwrap();
    }
}

fn per_page(t: Instant) -> f64 {
    t.elapsed().as_nanos() as f64 / PAGES as f64
}

fn main() {
    let small = Setup {
        orders: 1,
        reuse_large: true,
        no_page_mapcount: false,
    };
    let large = Setup {
        orders: ORDERS_64K,
        ..small
    };
    println!(
        "folio: {} MiB simulated RAM, 1 CPU, region of {} pages; median of {REPEATS}; ns per page",
        (NR_PAGES * PAGE_SIZE as usize) >> 20,
        PAGES
    );

    // (a) CoW write faults with the child alive.
    let cow = |mm: &Mm<'_, '_, sim::SimPlatform>| {
        let child = mm.fork().unwrap();
        let t = Instant::now();
        write_all(mm);
        let ns = per_page(t);
        drop(child);
        ns
    };
    let (a4, c4, _) = median(small, cow);
    let (a64, c64, _) = median(large, cow);
    println!();
    println!("(a) CoW write after fork, child alive          ns/page   copies");
    println!("    4 KiB folios                               {a4:>7.0}   {c4:>6}");
    println!(
        "    64 KiB folios                              {a64:>7.0}   {c64:>6}   ({:.2}x of 4 KiB)",
        a64 / a4
    );

    // (b) The child exits at once; the parent writes.
    let exit_then_write = |mm: &Mm<'_, '_, sim::SimPlatform>| {
        drop(mm.fork().unwrap());
        let t = Instant::now();
        write_all(mm);
        per_page(t)
    };
    let (on, con, ron) = median(large, exit_then_write);
    let (off, coff, roff) = median(
        Setup {
            reuse_large: false,
            ..large
        },
        exit_then_write,
    );
    println!();
    println!("(b) child exits, parent writes (64 KiB)       ns/page   copies   reuses");
    println!("    reuse of large folios off                  {off:>7.0}   {coff:>6}   {roff:>6}");
    println!(
        "    reuse of large folios on                   {on:>7.0}   {con:>6}   {ron:>6}   ({:.0}% less time)",
        100.0 * (1.0 - on / off)
    );

    // (c) munmap and fork with and without per-page mapcounts.
    let unmap = |mm: &Mm<'_, '_, sim::SimPlatform>| {
        let t = Instant::now();
        mm.munmap(BASE, PAGES * PAGE_SIZE).unwrap();
        per_page(t)
    };
    let fork = |mm: &Mm<'_, '_, sim::SimPlatform>| {
        let t = Instant::now();
        let child = mm.fork().unwrap();
        let ns = per_page(t);
        drop(child);
        ns
    };
    let no_pm = Setup {
        no_page_mapcount: true,
        ..large
    };
    let (um_pp, ..) = median(large, unmap);
    let (um_no, ..) = median(no_pm, unmap);
    let (fk_pp, ..) = median(large, fork);
    let (fk_no, ..) = median(no_pm, fork);
    println!();
    println!("(c) 64 KiB folios                 per-page mapcounts   NO_PAGE_MAPCOUNT    ratio");
    println!(
        "    munmap (ns/page)              {um_pp:>18.0}   {um_no:>16.0}   {:>6.2}x",
        um_no / um_pp
    );
    println!(
        "    fork (ns/page)                {fk_pp:>18.0}   {fk_no:>16.0}   {:>6.2}x",
        fk_no / fk_pp
    );
}

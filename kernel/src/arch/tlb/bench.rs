//! TLB shootdown benchmark (`cargo run -- --bench --smp 2`; figures in
//! `docs/BENCHMARKS.md`).
//!
//! `flush_one_page`: the cost of one `flush_tlb_mm_range` of one page of a
//! test address space, as a zap or a CoW break asks for it, in three
//! cases: loaded on no CPU (only the generation is taken), loaded on this
//! CPU only (a local `invlpg`), and loaded on this CPU and on CPU 1 (the
//! local `invlpg` plus a waited function-call IPI to CPU 1, which flushes
//! its own TLB). Then the same with a 64-page range (above the 33-page
//! ceiling: full flushes). [`NR_RUNS`] runs of [`NR_FLUSHES`] flushes
//! each; min / median / max ns per flush. At one CPU the remote case is
//! left out.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mm::vm::{MapFlags, Mm, Prot};

use super::{NR_TLB_LOCAL_FLUSH_ALL, NR_TLB_LOCAL_FLUSH_ONE, NR_TLB_REMOTE_FLUSH, nr_received};
use crate::arch::entry::kernel_pgd;
use crate::bench::{Bench, min_median_max};
use crate::process::{KMm, vm};
use crate::smp::ipi;
use crate::time::now_ns;
use crate::{percpu, println, sched};

pub const BENCHES: &[Bench] = crate::benches![flush_one_page];

/// Runs per case.
pub const NR_RUNS: usize = 7;
/// Flushes per run.
pub const NR_FLUSHES: u64 = 2000;

const BASE: u64 = 0x6000_0000;

/// Where the test address space is loaded.
#[derive(Clone, Copy, PartialEq)]
enum Loaded {
    Nowhere,
    Here,
    HereAndCpu1,
}

fn flush_one_page() {
    // CPU 0 flushes; CPU 1 is held (run_case) so that it keeps the mm.
    let _pin = crate::ktest::PinCpu0::pin();
    let mm = Arc::new(Mm::new(vm()).expect("mm"));
    mm.page_table()
        .clone_kernel_half(mm::PhysAddr::new(kernel_pgd()));
    let flags = MapFlags::PRIVATE
        .union(MapFlags::ANONYMOUS)
        .union(MapFlags::FIXED);
    mm.mmap(
        BASE,
        64 * mm::PAGE_SIZE,
        Prot::READ.union(Prot::WRITE),
        flags,
        -1,
        0,
    )
    .expect("mmap");
    let smp = percpu::nr_online_cpus() >= 2;
    for pages in [1, 64] {
        for loaded in [Loaded::Nowhere, Loaded::Here, Loaded::HereAndCpu1] {
            if loaded == Loaded::HereAndCpu1 && !smp {
                println!("  {pages} page(s), loaded here and on CPU 1: needs --smp 2");
                continue;
            }
            run_case(&mm, pages, loaded);
        }
    }
}

fn run_case(mm: &Arc<KMm>, pages: u64, loaded: Loaded) {
    // The benchmark task itself runs the address space (as a thread of
    // the process would); CPU 1 loads it from an IPI-run function.
    if loaded != Loaded::Nowhere {
        sched::switch_mm(Some(mm.page_table()));
    }
    let hold = (loaded == Loaded::HereAndCpu1).then(|| crate::ktest::HoldCpu::new(1));
    if hold.is_some() {
        ap_load(Some(mm));
    }
    let counters = |cpu1: bool| {
        (
            NR_TLB_LOCAL_FLUSH_ONE.load(Ordering::Relaxed),
            NR_TLB_LOCAL_FLUSH_ALL.load(Ordering::Relaxed),
            NR_TLB_REMOTE_FLUSH.load(Ordering::Relaxed),
            if cpu1 { nr_received(1) } else { 0 },
        )
    };
    let smp = percpu::nr_online_cpus() >= 2;
    let before = counters(smp);
    let range = Some((BASE, BASE + pages * mm::PAGE_SIZE));
    let mut samples = Vec::with_capacity(NR_RUNS);
    for _ in 0..NR_RUNS {
        let t0 = now_ns();
        for _ in 0..NR_FLUSHES {
            mm.page_table().flush_tlb(range);
        }
        samples.push((now_ns() - t0) / NR_FLUSHES);
    }
    let after = counters(smp);
    if hold.is_some() {
        ap_load(None);
    }
    drop(hold);
    if loaded != Loaded::Nowhere {
        sched::switch_mm(None);
    }
    let (min, median, max) = min_median_max(&mut samples);
    let n = NR_RUNS as u64 * NR_FLUSHES;
    println!(
        "  {pages} page(s), loaded {}: min {min} ns, median {median} ns, max {max} ns per flush; \
         per flush: {} invlpg, {} full, {} remote, {} received by CPU 1",
        match loaded {
            Loaded::Nowhere => "nowhere",
            Loaded::Here => "here",
            Loaded::HereAndCpu1 => "here and on CPU 1",
        },
        (after.0 - before.0) / n,
        (after.1 - before.1) / n,
        (after.2 - before.2) / n,
        (after.3 - before.3) / n,
    );
}

/// On CPU 1: loads `mm` (`None`: the boot PGD) as its context switch
/// would.
fn ap_load(mm: Option<&Arc<KMm>>) {
    let (pgd, ctx) = match mm {
        Some(mm) => (
            mm.page_table().root().as_u64(),
            Some(mm.page_table().tlb_context()),
        ),
        None => (kernel_pgd(), None),
    };
    ipi::smp_call_function_many(1 << 1, &|| {
        let ctx = ctx.map_or(core::ptr::null(), core::ptr::from_ref);
        // SAFETY: `pgd` is the boot PGD or `mm`'s, whose kernel half is
        // the boot PGD's (flush_one_page); the benchmark loads the boot
        // PGD on CPU 1 again before it drops `mm`.
        unsafe { super::switch_mm_irqs_off(pgd, ctx) };
    });
}

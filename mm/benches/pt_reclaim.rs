//! Benchmark: Linux 6.14's headline measurement for empty PTE-table
//! reclaim, on the simulated machine, reclaim off and on in one run.
//!
//! The commit message of "mm: pgtable: reclaim empty PTE page in
//! madvise(MADV_DONTNEED)": mmap 50 GiB of anonymous memory, then for
//! i in 0 .. 25 * 1024 touch every 4 KiB page of the i-th 2 MiB and
//! MADV_DONTNEED it; Linux reported VmPTE 102640 kB without reclaim and
//! 240 kB with it. Here a "touch" is a write fault through
//! `Mm::handle_fault`, as the CPU would raise. Two variants: every page
//! (the original) and one touch per 2 MiB (the fast variant the issue
//! asks for), each with reclaim off and on, printing VmSize, VmRSS and
//! VmPTE after the loop and the loop's time, and the on/off time ratio.
//!
//! Run: `cargo bench -p mm --features std --bench pt_reclaim` (release
//! profile). `PT_RECLAIM_CHUNKS=N` shortens the loop (default 25600);
//! `PT_RECLAIM_ONLY=every|fast` and `PT_RECLAIM_MODE=off|on` select one
//! variant or mode, so that a profiler sees a single configuration. The
//! timed loop is the function `touch_and_dontneed` (never inlined): count
//! its instructions alone with
//! `valgrind --tool=callgrind --toggle-collect='*touch_and_dontneed*'`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use mm::page_alloc::ZoneLayout;
use mm::pgtable::PMD_SIZE;
use mm::rcu::Rcu;
use mm::sim;
use mm::vm::{FaultAccess, MapFlags, Mm, Prot, Vm};
use mm::{PAGE_SIZE, Pfn};

/// 512 MiB of simulated RAM: enough for 25600 PTE tables left behind
/// without reclaim (100 MiB) and one chunk of touched pages.
const NR_PAGES: usize = 1 << 17;
const MADV_DONTNEED: i64 = 4;

struct Run {
    vm_size: u64,
    vm_rss: u64,
    vm_pte: u64,
    secs: f64,
}

fn run(chunks: u64, pages_per_chunk: u64, reclaim: bool) -> Run {
    sim::set_cpu(0);
    let pa = sim::bench_page_alloc(NR_PAGES, 1, Pfn::new(0)..Pfn::new(256), ZoneLayout::X86_64);
    let rcu = Rcu::new(pa.platform().clone());
    let cache = mm::maple::node_cache(&pa, &rcu).unwrap();
    let vm = Vm::new(&pa, &rcu, &cache).unwrap();
    vm.pt_reclaim.store(reclaim, Relaxed);
    let mm = Mm::new(&vm).unwrap();
    let len = 50 << 30;
    // At a table boundary, as a 2 MiB-aligned allocator would place it.
    let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE | MapFlags::FIXED;
    let base = mm
        .mmap(1 << 44, len, Prot::READ | Prot::WRITE, flags, -1, 0)
        .expect("mmap 50 GiB");
    let t = Instant::now();
    touch_and_dontneed(&mm, &rcu, base, chunks, pages_per_chunk);
    let secs = t.elapsed().as_secs_f64();
    let st = mm.status();
    drop(mm);
    rcu.rcu_barrier();
    Run {
        vm_size: st.vm_size,
        vm_rss: st.vm_rss,
        vm_pte: st.vm_pte,
        secs,
    }
}

/// The measured loop: `chunks` times, touch `pages_per_chunk` pages of the
/// next 2 MiB and MADV_DONTNEED it.
#[inline(never)]
fn touch_and_dontneed(
    mm: &Mm<'_, '_, sim::SimPlatform>,
    rcu: &Rcu<sim::SimPlatform>,
    base: u64,
    chunks: u64,
    pages_per_chunk: u64,
) {
    let stride = PMD_SIZE / pages_per_chunk;
    for i in 0..chunks {
        let chunk = base + i * PMD_SIZE;
        for p in 0..pages_per_chunk {
            mm.handle_fault(chunk + p * stride, FaultAccess::Write)
                .expect("touch");
        }
        mm.madvise(chunk, PMD_SIZE, MADV_DONTNEED).expect("madvise");
        if i % 256 == 255 {
            // What the kernel's RCU thread does between ticks: end a grace
            // period and run the callbacks queued so far (the tables freed
            // with reclaim on), inside the timed loop. A bare
            // synchronize_rcu() would not run them, leaving every table and
            // its batch to the rcu_barrier() after the timer stops.
            rcu.rcu_barrier();
        }
    }
}

fn main() {
    let chunks: u64 = std::env::var("PT_RECLAIM_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25 * 1024);
    println!(
        "pt_reclaim: {} MiB simulated RAM, 1 CPU; mmap 50 GiB, {chunks} x (touch 2 MiB, MADV_DONTNEED)",
        (NR_PAGES * PAGE_SIZE as usize) >> 20
    );
    println!();
    println!(
        "{:<26} {:>8} {:>14} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "variant", "reclaim", "VmSize kB", "VmRSS kB", "VmPTE kB", "loop s", "ns/chunk", "on/off"
    );
    let only = std::env::var("PT_RECLAIM_ONLY").ok();
    let mode = std::env::var("PT_RECLAIM_MODE").ok();
    for (key, name, per_chunk) in [
        ("every", "every page (Linux's)", PMD_SIZE / PAGE_SIZE),
        ("fast", "one touch per 2 MiB", 1),
    ] {
        if only.as_deref().is_some_and(|o| o != key) {
            continue;
        }
        let want = |m: &str| mode.as_deref().is_none_or(|w| w == m);
        let off = want("off").then(|| run(chunks, per_chunk, false));
        let on = want("on").then(|| run(chunks, per_chunk, true));
        for (label, r) in [("off", &off), ("on", &on)] {
            let Some(r) = r else { continue };
            let ratio = match (label, &on, &off) {
                ("on", Some(on), Some(off)) => format!("{:.2}x", on.secs / off.secs),
                _ => String::new(),
            };
            println!(
                "{:<26} {:>8} {:>14} {:>10} {:>10} {:>9.2} {:>9.0} {:>8}",
                name,
                label,
                r.vm_size,
                r.vm_rss,
                r.vm_pte,
                r.secs,
                r.secs * 1e9 / chunks as f64,
                ratio
            );
        }
    }
}

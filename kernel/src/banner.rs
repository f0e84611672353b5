//! The boot banner: version, memory map, zones and the buddy table; the
//! clock, tick and scheduler figures.

use bootloader_api::info::MemoryRegionKind;
use mm::page_alloc::Watermark;
use mm::{PAGE_SIZE, Pfn};

use crate::memory::{self, MemoryLayout};
use crate::{print, println};

const MIB: u64 = 1 << 20;

fn kind_name(kind: MemoryRegionKind) -> &'static str {
    match kind {
        MemoryRegionKind::Usable => "usable",
        MemoryRegionKind::Bootloader => "kernel+bootloader",
        MemoryRegionKind::UnknownBios(_) => "reserved (BIOS)",
        MemoryRegionKind::UnknownUefi(_) => "reserved (UEFI)",
        _ => "other",
    }
}

/// Prints the banner to the serial console.
pub fn print(layout: &MemoryLayout) {
    println!(
        "mmkernel {} (x86_64, Linux-faithful mm), image loaded at {:#x}",
        env!("CARGO_PKG_VERSION"),
        crate::arch::backtrace::image_base()
    );
    println!("Physical memory map from the bootloader:");
    let (mut ram, mut usable) = (0, 0);
    for r in layout.regions {
        println!(
            "  [mem {:#014x}-{:#014x}] {}",
            r.start,
            r.end - 1,
            kind_name(r.kind)
        );
        match r.kind {
            MemoryRegionKind::Usable => {
                usable += r.end - r.start;
                ram += r.end - r.start;
            }
            MemoryRegionKind::Bootloader => ram += r.end - r.start,
            _ => {}
        }
    }
    println!(
        "  {} regions; RAM {} MiB, of which usable {} MiB",
        layout.regions.len(),
        ram / MIB,
        usable / MIB
    );
    println!(
        "Early heap: [mem {:#x}-{:#x}] ({} MiB); memmap: [mem {:#x}-{:#x}] ({} KiB for {} frames)",
        layout.heap.start.as_u64(),
        layout.heap.end.as_u64() - 1,
        (layout.heap.end.as_u64() - layout.heap.start.as_u64()) / MIB,
        layout.memmap.start.as_u64(),
        layout.memmap.end.as_u64() - 1,
        (layout.memmap.end.as_u64() - layout.memmap.start.as_u64()) / 1024,
        layout.max_pfn.as_u64()
    );
    let pa = memory::page_alloc();
    println!("Zones (pages: managed, free, min/low/high watermarks, pcp batch/high):");
    for z in pa.zones() {
        if z.start_pfn == z.end_pfn {
            println!("  {:<6} empty", z.kind.name());
            continue;
        }
        println!(
            "  {:<6} [mem {:#012x}-{:#012x}] managed {:>7} free {:>7} wmark {}/{}/{} pcp {}/{}",
            z.kind.name(),
            z.start_pfn.phys_addr().as_u64(),
            Pfn::new(z.end_pfn.as_u64()).phys_addr().as_u64() - 1,
            z.managed_pages,
            z.nr_free_pages(),
            z.watermark[Watermark::Min as usize],
            z.watermark[Watermark::Low as usize],
            z.watermark[Watermark::High as usize],
            z.pcp_batch,
            z.pcp_high,
        );
    }
    println!(
        "Memory: {}K/{}K available",
        pa.nr_free_pages() * PAGE_SIZE / 1024,
        usable / 1024
    );
    println!("/proc/buddyinfo (free blocks per order 0..10):");
    print!("{}", pa.buddyinfo());
    println!("/proc/pagetypeinfo (free blocks per order per migratetype):");
    print!("{}", pa.pagetypeinfo());
    println!("/proc/slabinfo:");
    print!("{}", crate::slab::SlabinfoTable);
}

/// Prints the clock and scheduler figures: uptime, jiffies, ticks taken
/// (on every online CPU), context switches.
pub fn print_time() {
    use crate::sched::{self, SchedStat};
    use crate::time;
    use core::fmt::Write;
    let now = time::now_ns();
    let ticks = |cpu: u32| {
        crate::percpu::per_cpu(cpu)
            .nr_ticks
            .load(core::sync::atomic::Ordering::Relaxed)
    };
    let mut others = alloc::string::String::new();
    for cpu in 1..crate::percpu::nr_online_cpus() as u32 {
        let _ = write!(others, ", {} on CPU#{cpu}", ticks(cpu));
    }
    println!(
        "Time: uptime {}.{:03} s, jiffies {} (HZ={}), {} timer interrupts on CPU#0{others}, \
         {} context switches, {} tasks",
        now / 1_000_000_000,
        now / 1_000_000 % 1_000,
        time::jiffies(),
        time::HZ,
        ticks(0),
        sched::stat(SchedStat::ContextSwitch),
        sched::nr_tasks(),
    );
}

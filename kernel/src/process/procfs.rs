//! The `/proc` files a process can open, in Linux's formats
//! (`fs/proc/array.c`, `fs/proc/task_mmu.c`, `fs/proc/meminfo.c`,
//! `mm/vmstat.c`, `mm/slab_common.c`, `kernel/sysctl.c`): the contents are
//! generated at `open` and read from that snapshot, as a `seq_file` read
//! in one go.
//!
//! - `/proc/self/status`: Name, State, Pid, PPid and the memory lines
//!   (`VmSize`, `VmRSS`, `VmData`, `VmStk`, `VmExe`, `VmPTE`).
//! - `/proc/self/maps`: one line per VMA,
//!   `start-end perms offset dev inode  [name]`.
//! - `/proc/meminfo`: `MemTotal`, `MemFree`, `MemAvailable` and a few more
//!   (`Name:` padded to 16 columns, the value in 8, ` kB`).
//! - `/proc/buddyinfo`, `/proc/slabinfo` (version 2.1, the kmalloc caches
//!   and the maple node cache): the boot banner's formatters.
//! - `/proc/vmstat`: `name value` lines: free pages, the address-space
//!   events (`mm::vm::VmEvent`) and the page allocator's (`PaStat`).
//! - `/proc/sys/vm/{pt_reclaim, anon_orders, cow_reuse_large}`: the `Vm`
//!   tunables, one decimal number; writable ([`write_sysctl`]) so that a
//!   program can switch modes. `anon_orders` is a bitmask of folio orders
//!   (bit k = order k; 16 = 64 KiB folios); Linux spreads it over
//!   `/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled`.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use core::sync::atomic::Ordering::Relaxed;

use mm::errno::Errno;
use mm::page_alloc::PaStat;
use mm::vm::{VmEvent, VmFlags};

use super::Process;

/// The generated contents of `path` for process `p`, or `None` if there is
/// no such file.
pub fn generate(p: &Process, path: &[u8]) -> Option<Vec<u8>> {
    let text = match path {
        b"/proc/self/status" => status(p),
        b"/proc/self/maps" => maps(p),
        b"/proc/meminfo" => meminfo(),
        b"/proc/buddyinfo" => alloc::format!("{}", crate::memory::page_alloc().buddyinfo()),
        b"/proc/slabinfo" => slabinfo(),
        b"/proc/vmstat" => vmstat(),
        _ => {
            let mut s = String::new();
            let _ = writeln!(s, "{}", read_sysctl(sysctl(path)?));
            s
        }
    };
    Some(text.into_bytes())
}

fn status(p: &Process) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name:\t{}", p.comm);
    let _ = writeln!(s, "State:\tR (running)");
    let _ = writeln!(s, "Tgid:\t{}", p.pid);
    let _ = writeln!(s, "Pid:\t{}", p.pid);
    let _ = writeln!(s, "PPid:\t{}", p.ppid());
    if let Some(mm) = p.mm() {
        let st = mm.status();
        for (name, kb) in [
            ("VmSize", st.vm_size),
            ("VmRSS", st.vm_rss),
            ("VmData", st.vm_data),
            ("VmStk", st.vm_stk),
            ("VmExe", st.vm_exe),
            ("VmPTE", st.vm_pte),
        ] {
            let _ = writeln!(s, "{name}:\t{kb:>8} kB");
        }
    }
    let _ = writeln!(s, "Threads:\t1");
    s
}

fn maps(p: &Process) -> String {
    let mut s = String::new();
    let Some(mm) = p.mm() else {
        return s;
    };
    let heap = p.brk_range();
    for v in mm.vmas() {
        let f = v.flags;
        let perm = |flag, c| if f.contains(flag) { c } else { '-' };
        let line_start = s.len();
        let _ = write!(
            s,
            "{:08x}-{:08x} {}{}{}{} {:08x} 00:00 0",
            v.start,
            v.end,
            perm(VmFlags::READ, 'r'),
            perm(VmFlags::WRITE, 'w'),
            perm(VmFlags::EXEC, 'x'),
            if f.contains(VmFlags::SHARED) {
                's'
            } else {
                'p'
            },
            if f.contains(VmFlags::GROWSDOWN) {
                0
            } else {
                v.pgoff << mm::PAGE_SHIFT
            },
        );
        let name = if f.contains(VmFlags::GROWSDOWN) {
            Some("[stack]")
        } else if heap.start < heap.end && v.start >= heap.start && v.end <= heap.end {
            Some("[heap]")
        } else {
            None
        };
        if let Some(name) = name {
            // Linux pads the name to column 73.
            while s.len() - line_start < 73 {
                s.push(' ');
            }
            s.push_str(name);
        }
        s.push('\n');
    }
    s
}

/// A `/proc/sys/vm` setting (a `Vm` tunable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysctl {
    /// `Vm::pt_reclaim`: 0 or 1.
    PtReclaim,
    /// `Vm::anon_orders`: bitmask of orders 0..=9 (the PMD order).
    AnonOrders,
    /// `Vm::cow_reuse_large`: 0 or 1.
    CowReuseLarge,
}

/// The setting `path` names, if any.
pub fn sysctl(path: &[u8]) -> Option<Sysctl> {
    match path {
        b"/proc/sys/vm/pt_reclaim" => Some(Sysctl::PtReclaim),
        b"/proc/sys/vm/anon_orders" => Some(Sysctl::AnonOrders),
        b"/proc/sys/vm/cow_reuse_large" => Some(Sysctl::CowReuseLarge),
        _ => None,
    }
}

fn read_sysctl(c: Sysctl) -> u64 {
    let vm = super::vm();
    match c {
        Sysctl::PtReclaim => u64::from(vm.pt_reclaim.load(Relaxed)),
        Sysctl::AnonOrders => u64::from(vm.anon_orders.load(Relaxed)),
        Sysctl::CowReuseLarge => u64::from(vm.cow_reuse_large.load(Relaxed)),
    }
}

/// Sets `c` from the text a program wrote: a decimal number, optionally
/// followed by whitespace (`proc_dointvec`); EINVAL for anything else or
/// a value out of range.
pub fn write_sysctl(c: Sysctl, text: &[u8]) -> Result<(), Errno> {
    let text = core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let v: u32 = text.trim().parse().map_err(|_| Errno::EINVAL)?;
    let vm = super::vm();
    match c {
        Sysctl::PtReclaim | Sysctl::CowReuseLarge if v > 1 => return Err(Errno::EINVAL),
        Sysctl::PtReclaim => vm.pt_reclaim.store(v == 1, Relaxed),
        Sysctl::CowReuseLarge => vm.cow_reuse_large.store(v == 1, Relaxed),
        Sysctl::AnonOrders if v >= 1 << (mm::pgtable::PMD_SHIFT - mm::PAGE_SHIFT + 1) => {
            return Err(Errno::EINVAL);
        }
        Sysctl::AnonOrders => vm.anon_orders.store(v, Relaxed),
    }
    Ok(())
}

fn meminfo() -> String {
    let pa = crate::memory::page_alloc();
    let kb = |pages: u64| pages * mm::PAGE_SIZE / 1024;
    let free = pa.nr_free_pages() + pa.nr_pcp_pages();
    let slab: u64 = crate::slab::kmalloc()
        .caches()
        .chain(core::iter::once(super::vm().node_cache))
        .map(|c| {
            let i = c.info();
            i.num_slabs * u64::from(i.pagesperslab)
        })
        .sum();
    let mut s = String::new();
    for (name, pages) in [
        ("MemTotal", pa.managed_pages()),
        ("MemFree", free),
        // No page cache and nothing reclaimable: what is free is available.
        ("MemAvailable", free),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Slab", slab),
        ("SwapTotal", 0),
        ("SwapFree", 0),
    ] {
        let _ = writeln!(s, "{:<16}{:>8} kB", alloc::format!("{name}:"), kb(pages));
    }
    s
}

fn slabinfo() -> String {
    let mut s = alloc::format!("{}", crate::slab::SlabinfoTable);
    let c = super::vm().node_cache;
    let i = c.info();
    let _ = writeln!(
        s,
        "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables    0    0    0 : slabdata {:>6} {:>6}      0",
        "maple_node",
        i.active_objs,
        i.num_objs,
        i.objsize,
        i.objperslab,
        i.pagesperslab,
        i.num_slabs,
        i.num_slabs
    );
    s
}

fn vmstat() -> String {
    let pa = crate::memory::page_alloc();
    let vm = super::vm();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "nr_free_pages {}",
        pa.nr_free_pages() + pa.nr_pcp_pages()
    );
    for &e in VmEvent::ALL {
        let _ = writeln!(s, "{} {}", e.name(), vm.event(e));
    }
    for &e in PaStat::ALL {
        let _ = writeln!(s, "{} {}", e.name(), pa.stats().get(e));
    }
    s
}

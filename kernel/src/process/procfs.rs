//! The `/proc` files a process can open, in Linux's formats
//! (`fs/proc/array.c`, `fs/proc/task_mmu.c`, `fs/proc/meminfo.c`,
//! `mm/vmstat.c`, `mm/slab_common.c`, `kernel/sysctl.c`): the contents are
//! generated at `open` and read from that snapshot, as a `seq_file` read
//! in one go.
//!
//! - `/proc/self/status`: Name, State, Pid, PPid, Uid, ... and the memory
//!   lines in Linux's order (`VmPeak` .. `VmSwap`, with `RssAnon`).
//! - `/proc/self/maps`: one line per VMA,
//!   `start-end perms offset dev inode  [name]`.
//! - `/proc/meminfo`: `MemTotal`, `MemFree`, `MemAvailable` and a few more
//!   in Linux's order (`Name:` padded to 16 columns, the value in 8,
//!   ` kB`): `Cached`/`Shmem` the shmem pages, `Mapped` the file pages
//!   mapped (`NR_FILE_MAPPED`), `Dirty`/`Writeback` 0 (shmem's
//!   `noop_dirty_folio` accounts no `NR_FILE_DIRTY`, and nothing else is
//!   written back), `ShmemHugePages`/`ShmemPmdMapped` 0 (no shmem THP).
//! - `/proc/buddyinfo`, `/proc/slabinfo` (version 2.1, the kmalloc caches
//!   and the maple node cache): the boot banner's formatters.
//! - `/proc/vmstat`: `name value` lines: free pages, the address-space
//!   events (`mm::vm::VmEvent`), the page allocator's (`PaStat`, with
//!   Linux's `pgalloc_<zone>` and `pgfree` in pages), the TLB flushes
//!   (`nr_tlb_remote_flush`, `nr_tlb_remote_flush_received`,
//!   `nr_tlb_local_flush_one`/`_all`) and, ours, `rcu_synchronize_calls`
//!   and `rcu_barrier_calls`.
//! - `/proc/self/smaps`: each VMA's maps line, then `Size` .. `Locked`,
//!   `THPeligible` and `VmFlags` (two-letter codes) as Linux 6.19 prints
//!   them, from [`mm::vm::Mm::smaps`] (Pss and shared/private by
//!   Linux 6.15's rules in both mapcount modes); `/proc/self/smaps_rollup`:
//!   the `[rollup]` header and the sums, with `Pss_Anon`/`Pss_File`/
//!   `Pss_Shmem`.
//! - `/proc/self/task/<tid>/{status,stat}` and `/proc/thread-self/`: the
//!   same, with the thread's id in `Pid:` and field 1; `Threads:` and
//!   `num_threads` count the live threads.
//! - `/proc/self/stat`: the 52 fields of Linux's `do_task_stat`, with
//!   `minflt` (field 10), `cminflt` (11), `vsize` (23) and `rss` (24) real.
//! - `/proc/self/comm`: the name (`prctl(PR_SET_NAME)` changes it), as
//!   `Name:` in status.
//! - `/proc/self/cmdline` and `environ`: the strings in the process's
//!   memory between the addresses exec recorded (`Process::args`);
//!   `statm`; `oom_score_adj` (writable, [`Sysctl::OomScoreAdj`]) and
//!   `oom_score`.
//! - `/proc/self/pagemap`: 8 bytes per virtual page, read in place
//!   ([`pagemap_read`], [`mm::vm::Mm::pagemap`]).
//! - `/proc/kpagecount`, `/proc/kpageflags`: 8 bytes per physical frame,
//!   read in place ([`kpage_read`], `mm::vm::Vm::kpagecount`/`kpageflags`).
//! - `/proc/<pid>/...` of any live process is its `/proc/self/...`
//!   ([`pid_path`]); `/proc` lists every live pid.
//! - `/proc/cpuinfo` (CPUID: vendor, family/model, model name, flags),
//!   `/proc/cmdline`, `/proc/version`, `/proc/uptime`.
//! - `/sys/kernel/mm/transparent_hugepage/enabled` (`always [madvise]
//!   never`: no PMD-sized folios) and `.../hugepages-<size>kB/enabled` for
//!   the mTHP sizes up to 64 KiB, in Linux's bracketed format, reflecting
//!   `anon_orders`.
//! - `/proc/sys/vm/{pt_reclaim, anon_orders, cow_reuse_large}`: the `Vm`
//!   tunables, one decimal number; writable ([`write_sysctl`]) so that a
//!   program can switch modes. `anon_orders` is a bitmask of folio orders
//!   (bit k = order k; 16 = 64 KiB folios); Linux spreads it over
//!   `/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled`.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt::Write;

use core::sync::atomic::Ordering::Relaxed;

use mm::errno::Errno;
use mm::page_alloc::PaStat;
use mm::vm::{MemSizeStats, PSS_SHIFT, VmEvent, VmFlags, Vma};

use super::{Process, signal};

/// `ENOENT`.
const ENOENT: Errno = Errno(2);

/// Reads `/proc/PID/pagemap` of `target` at byte `pos` into `reader`'s
/// memory at `buf` (Linux's `pagemap_read()`): one 8-byte entry per
/// page ([`mm::vm::Mm::pagemap`]), the page `pos / 8`'s first; `EINVAL`
/// for a position or count that is not a multiple of 8; 0 bytes past
/// the end of user space (`TASK_SIZE`) or once the address space is
/// gone. The PFNs are shown: every process here has `CAP_SYS_ADMIN`.
/// Walks a PMD's worth of pages at a time, without holding the target's
/// mmap lock across the copy to the reader.
pub fn pagemap_read(
    reader: &Process,
    target: &Weak<super::KMm>,
    buf: u64,
    count: u64,
    pos: u64,
) -> Result<u64, Errno> {
    const PM_ENTRY_BYTES: u64 = 8;
    let Some(mm) = target.upgrade() else {
        return Ok(0);
    };
    if !pos.is_multiple_of(PM_ENTRY_BYTES) || !count.is_multiple_of(PM_ENTRY_BYTES) {
        return Err(Errno::EINVAL);
    }
    let task_size = mm::pgtable::TASK_SIZE;
    let svpfn = pos / PM_ENTRY_BYTES;
    let mut end_vaddr = task_size;
    let mut start = task_size;
    if svpfn <= u64::MAX >> mm::PAGE_SHIFT {
        start = svpfn << mm::PAGE_SHIFT;
        let end = start.wrapping_add((count / PM_ENTRY_BYTES) << mm::PAGE_SHIFT);
        if end >= start && end < task_size {
            end_vaddr = end;
        }
    }
    if start > task_size {
        start = end_vaddr;
    }
    let own = reader.mm().ok_or(Errno::EFAULT)?;
    let mut entries = Vec::new();
    let mut bytes = Vec::new();
    let mut copied = 0u64;
    while start < end_vaddr {
        let end = ((start + mm::pgtable::PMD_SIZE) & !(mm::pgtable::PMD_SIZE - 1)).min(end_vaddr);
        entries.clear();
        mm.pagemap(start, end, true, &mut entries);
        bytes.clear();
        bytes.extend(entries.iter().flat_map(|e| e.to_le_bytes()));
        crate::uaccess::copy_to_user(&own, buf.wrapping_add(copied), &bytes)?;
        copied += bytes.len() as u64;
        start = end;
    }
    Ok(copied)
}

/// Reads `/proc/kpagecount` (`flags` false) or `/proc/kpageflags` at
/// byte `pos` into `reader`'s memory at `buf` (Linux's `kpage_read()`):
/// the word of frame `pos / 8` first ([`mm::vm::Vm::kpagecount`],
/// [`mm::vm::Vm::kpageflags`]); `EINVAL` for a position or count that is
/// not a multiple of 8, 0 bytes from the last frame on. Returns the
/// bytes copied (the position advances by them) and `EFAULT` if the
/// buffer ended in a hole, as Linux.
pub fn kpage_read(
    reader: &Process,
    flags: bool,
    buf: u64,
    count: u64,
    pos: u64,
) -> (u64, Result<(), Errno>) {
    const KPMSIZE: u64 = 8;
    if !pos.is_multiple_of(KPMSIZE) || !count.is_multiple_of(KPMSIZE) {
        return (0, Err(Errno::EINVAL));
    }
    let vm = super::vm();
    let end = vm.kpage_max_pfn() * KPMSIZE;
    if pos >= end {
        return (0, Ok(()));
    }
    let Some(own) = reader.mm() else {
        return (0, Err(Errno::EFAULT));
    };
    let count = count.min(end - pos);
    let mut copied = 0;
    let mut bytes = Vec::new();
    while copied < count {
        let first = (pos + copied) / KPMSIZE;
        let n = ((count - copied) / KPMSIZE).min(512);
        bytes.clear();
        for pfn in first..first + n {
            let pfn = mm::Pfn::new(pfn);
            let w = if flags {
                vm.kpageflags(pfn)
            } else {
                vm.kpagecount(pfn)
            };
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        if let Err(e) = crate::uaccess::copy_to_user(&own, buf.wrapping_add(copied), &bytes) {
            return (copied, Err(e));
        }
        copied += bytes.len() as u64;
    }
    (copied, Ok(()))
}

/// The process a `/proc/<pid>/...` path names and the same path with
/// `/proc/self` in place of `/proc/<pid>`, or `None` for any other path
/// (`/proc/self/...` included). A thread's id names its process too, as
/// on Linux where `/proc/<tid>` exists though `/proc` does not list it:
/// the path becomes its `/proc/self/task/<tid>/...`. `ENOENT` if no live
/// process or thread has that id.
pub fn pid_path(path: &str) -> Result<Option<(Arc<Process>, String)>, Errno> {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return Ok(None);
    };
    let (num, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let id: u32 = num.parse().map_err(|_| ENOENT)?;
    if let Some(t) = super::find(id) {
        return Ok(Some((t, alloc::format!("/proc/self{tail}"))));
    }
    let t = super::find_thread(id).ok_or(ENOENT)?;
    Ok(Some((
        t.process.clone(),
        alloc::format!("/proc/self/task/{id}{tail}"),
    )))
}

/// The generated contents of `path` for process `p`, or `None` if there is
/// no such file.
pub fn generate(p: &Process, path: &[u8]) -> Option<Vec<u8>> {
    let text = match path {
        b"/proc/self/cmdline" => return Some(mm_strings(p, 0)),
        b"/proc/self/environ" => return Some(mm_strings(p, 2)),
        b"/proc/self/statm" => statm(p),
        b"/proc/self/oom_score" => alloc::format!("{}\n", oom_score(p)),
        b"/proc/self/oom_score_adj" => {
            alloc::format!("{}\n", p.oom_score_adj.load(Relaxed))
        }
        b"/proc/self/status" => status(p),
        b"/proc/self/clear_refs" => String::new(),
        b"/proc/self/maps" => maps(p),
        b"/proc/meminfo" => meminfo(),
        b"/proc/buddyinfo" => alloc::format!("{}", crate::memory::page_alloc().buddyinfo()),
        b"/proc/slabinfo" => slabinfo(),
        b"/proc/vmstat" => vmstat(),
        b"/proc/self/smaps" => smaps(p),
        b"/proc/self/smaps_rollup" => smaps_rollup(p),
        b"/proc/self/stat" => stat(p),
        _ if task_file(p, path).is_some() => {
            let (tid, name) = task_file(p, path)?;
            match name {
                b"status" => status_of(p, tid),
                b"stat" => stat_of(p, tid),
                _ => return None,
            }
        }
        b"/proc/self/comm" => alloc::format!("{}\n", p.comm()),
        b"/proc/cpuinfo" => cpuinfo(),
        b"/proc/cmdline" => alloc::format!("{}\n", crate::cmdline::get().raw),
        b"/proc/version" => alloc::format!(
            "Linux version 6.18.0-mmkernel-{} (rustc) #1 SMP PREEMPT_DYNAMIC\n",
            env!("CARGO_PKG_VERSION")
        ),
        b"/proc/uptime" => {
            let ns = crate::time::now_ns();
            alloc::format!("{}.{:02} 0.00\n", ns / 1_000_000_000, ns / 10_000_000 % 100)
        }
        b"/sys/kernel/mm/transparent_hugepage/enabled" => String::from("always [madvise] never\n"),
        _ if thp_size(path).is_some() => {
            let order = thp_size(path)?;
            let on = super::vm().anon_orders.load(Relaxed) & (1 << order) != 0;
            String::from(if on {
                "[always] inherit madvise never\n"
            } else {
                "always inherit madvise [never]\n"
            })
        }
        _ => {
            let mut s = String::new();
            let _ = writeln!(s, "{}", read_sysctl(sysctl(path)?));
            s
        }
    };
    Some(text.into_bytes())
}

/// `cmdline` (`which` 0) or `environ` (2): the bytes of the argument or
/// environment strings as they are now in the process's memory (Linux's
/// `get_mm_cmdline` / `environ_read`, through the process's own page
/// tables); empty without an address space. (Linux also follows a
/// `cmdline` whose last argument lost its NUL into the environment, for
/// `setproctitle`; not done here.)
fn mm_strings(p: &Process, which: usize) -> Vec<u8> {
    let range = *p.args.lock();
    let (start, end) = (range[which], range[which + 1]);
    let Some(mm) = p.mm() else {
        return Vec::new();
    };
    let mut out = alloc::vec![0u8; end.saturating_sub(start) as usize];
    match crate::uaccess::copy_from_user(&mm, &mut out, start) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// `statm`: size, resident, shared, text, lib, data, dt in pages (Linux's
/// `task_statm`: shared counts file and shmem pages, 0 here; lib and dt
/// are always 0; data is `VmData` + `VmStk`).
fn statm(p: &Process) -> String {
    let st = p.mm().map(|mm| mm.status());
    let pages = |kb: u64| kb * 1024 / mm::PAGE_SIZE;
    match st {
        Some(st) => alloc::format!(
            "{} {} 0 {} 0 {} 0\n",
            pages(st.vm_size),
            pages(st.vm_rss),
            pages(st.vm_exe),
            pages(st.vm_data + st.vm_stk)
        ),
        None => String::from("0 0 0 0 0 0 0\n"),
    }
}

/// `oom_score` (Linux's `proc_oom_score` of `oom_badness`): the pages the
/// process holds (RSS, swap: none, page tables), plus `oom_score_adj`
/// thousandths of all memory, scaled to 0..=2000 as
/// `(1000 + badness * 1000 / totalpages) * 2 / 3`; 0 for init and a
/// process at `OOM_SCORE_ADJ_MIN` (-1000), which the OOM killer never
/// picks.
fn oom_score(p: &Process) -> u64 {
    let adj = i64::from(p.oom_score_adj.load(Relaxed));
    let Some(mm) = p.mm() else {
        return 0;
    };
    if p.pid == 1 || adj == -1000 {
        return 0;
    }
    let total = crate::memory::page_alloc().managed_pages().max(1) as i64;
    let st = mm.status();
    let held = ((st.vm_rss + st.vm_pte) * 1024 / mm::PAGE_SIZE) as i64;
    let badness = held + adj * (total / 1000);
    ((1000 + badness * 1000 / total) * 2 / 3).max(0) as u64
}

fn status(p: &Process) -> String {
    status_of(p, p.pid)
}

/// `status` of thread `tid` of `p` (`/proc/self/task/<tid>/status`):
/// the process's, with `Pid:` the thread's id.
fn status_of(p: &Process, tid: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name:\t{}", p.comm());
    let _ = writeln!(s, "Umask:\t0022");
    let _ = writeln!(s, "State:\tR (running)");
    let _ = writeln!(s, "Tgid:\t{}", p.pid);
    let _ = writeln!(s, "Ngid:\t0");
    let _ = writeln!(s, "Pid:\t{tid}");
    let _ = writeln!(s, "PPid:\t{}", p.ppid());
    let _ = writeln!(s, "TracerPid:\t0");
    let _ = writeln!(s, "Uid:\t0\t0\t0\t0");
    let _ = writeln!(s, "Gid:\t0\t0\t0\t0");
    let _ = writeln!(
        s,
        "FDSize:\t{}",
        p.files.lock().len().next_power_of_two().max(64)
    );
    if let Some(mm) = p.mm() {
        // Linux's order (`task_mem`); VmPeak and VmHWM are the peaks
        // kept before each unmap (`hiwater_vm`, `hiwater_rss`); resident
        // pages are anonymous or shmem (no files yet); nothing is pinned
        // or swapped.
        let st = mm.status();
        for (name, kb) in [
            ("VmPeak", st.vm_peak),
            ("VmSize", st.vm_size),
            ("VmLck", st.vm_lck),
            ("VmPin", 0),
            ("VmHWM", st.vm_hwm),
            ("VmRSS", st.vm_rss),
            ("RssAnon", st.rss_anon),
            ("RssFile", 0),
            ("RssShmem", st.rss_shmem),
            ("VmData", st.vm_data),
            ("VmStk", st.vm_stk),
            ("VmExe", st.vm_exe),
            ("VmLib", 0),
            ("VmPTE", st.vm_pte),
            ("VmSwap", 0),
        ] {
            let _ = writeln!(s, "{name}:\t{kb:>8} kB");
        }
    }
    let _ = writeln!(s, "Threads:\t{}", p.threads.lock().len());
    // The thread's own signal state: the thread `tid` names.
    let (blocked, own) = match p.thread(tid) {
        Some(t) => {
            let ts = t.sig.lock();
            (ts.blocked, ts.pending.mask)
        }
        None => (0, 0),
    };
    let (shd, ign, cgt) = {
        let sig = p.signals.lock();
        (
            sig.shared_pending.mask,
            sig.ignored_mask(),
            sig.caught_mask(),
        )
    };
    let _ = writeln!(s, "SigQ:\t0/3870");
    let _ = writeln!(s, "SigPnd:\t{own:016x}");
    let _ = writeln!(s, "ShdPnd:\t{shd:016x}");
    let _ = writeln!(s, "SigBlk:\t{blocked:016x}");
    let _ = writeln!(s, "SigIgn:\t{ign:016x}");
    let _ = writeln!(s, "SigCgt:\t{cgt:016x}");
    s
}

fn maps(p: &Process) -> String {
    let mut s = String::new();
    let Some(mm) = p.mm() else {
        return s;
    };
    let heap = p.brk_range();
    for v in mm.vmas() {
        map_line(&mut s, &v, &heap);
    }
    s
}

/// One VMA's line of `maps`, `smaps` and the header of `smaps_rollup`
/// (`show_map_vma()`): `start-end perms offset dev inode`, then the name
/// padded to column 73.
fn map_line(s: &mut String, v: &Vma, heap: &core::ops::Range<u64>) {
    let f = v.flags;
    let perm = |flag, c| if f.contains(flag) { c } else { '-' };
    // A shmem mapping shows its object as Linux does: shm_mnt's device,
    // the inode, "/dev/zero (deleted)" for a shared anonymous one,
    // "/memfd:NAME (deleted)" for a memfd.
    let shmem_name = v.shmem.map(|o| o.name());
    let name = if let Some(n) = &shmem_name {
        Some(n.as_str())
    } else if f.contains(VmFlags::GROWSDOWN) {
        Some("[stack]")
    } else if v.start < heap.end && v.end > heap.start {
        // Linux's test is overlap with [start_brk, brk] (the heap may
        // have merged with the anonymous bss below it).
        Some("[heap]")
    } else {
        None
    };
    write_map_line(
        s,
        v.start,
        v.end,
        [
            perm(VmFlags::READ, 'r'),
            perm(VmFlags::WRITE, 'w'),
            perm(VmFlags::EXEC, 'x'),
            if f.contains(VmFlags::SHARED) {
                's'
            } else {
                'p'
            },
        ],
        if f.contains(VmFlags::GROWSDOWN) {
            0
        } else {
            v.pgoff << mm::PAGE_SHIFT
        },
        if v.shmem.is_some() { "00:01" } else { "00:00" },
        v.shmem.map_or(0, |o| o.ino()),
        name,
    );
}

/// `show_vma_header_prefix()` and the padded name.
#[allow(clippy::too_many_arguments)]
fn write_map_line(
    s: &mut String,
    start: u64,
    end: u64,
    perms: [char; 4],
    offset: u64,
    dev: &str,
    ino: u64,
    name: Option<&str>,
) {
    let line_start = s.len();
    let [r, w, x, p] = perms;
    let _ = write!(
        s,
        "{start:08x}-{end:08x} {r}{w}{x}{p} {offset:08x} {dev} {ino}"
    );
    if let Some(name) = name {
        // Linux pads the name to column 73.
        while s.len() - line_start < 73 {
            s.push(' ');
        }
        s.push_str(name);
    }
    s.push('\n');
}

/// `VmFlags:` of smaps (`show_smap_vma_flags()`): Linux's two-letter
/// code of every flag set, in bit order, each followed by a space; a
/// bit without a code is not shown.
fn vm_flags_line(s: &mut String, flags: VmFlags) {
    /// `mnemonics[]` by bit number (x86_64: no pkeys shown here).
    const CODES: [(u32, &str); 33] = [
        (0, "rd"),
        (1, "wr"),
        (2, "ex"),
        (3, "sh"),
        (4, "mr"),
        (5, "mw"),
        (6, "me"),
        (7, "ms"),
        (8, "gd"),
        (9, "um"),
        (10, "pf"),
        (11, "uw"),
        (13, "lo"),
        (14, "io"),
        (15, "sr"),
        (16, "rr"),
        (17, "dc"),
        (18, "de"),
        (19, "lf"),
        (20, "ac"),
        (21, "nr"),
        (22, "ht"),
        (23, "sf"),
        (24, "ar"),
        (25, "wf"),
        (26, "dd"),
        (27, "sd"),
        (28, "mm"),
        (29, "hg"),
        (30, "nh"),
        (31, "mg"),
        (40, "dp"),
        (63, "sl"),
    ];
    s.push_str("VmFlags: ");
    for bit in 0..64 {
        if flags.bits() & (1 << bit) == 0 {
            continue;
        }
        if let Some((_, code)) = CODES.iter().find(|(b, _)| *b == bit) {
            s.push_str(code);
            s.push(' ');
        }
    }
    s.push('\n');
}

/// The lines smaps and smaps_rollup share (`__show_smap()`), each a
/// [`kb_line`] but `Private_Hugetlb`'s (its value in 7 columns after
/// its longer name, as Linux); the `Pss_Anon/File/Shmem` lines only in
/// the rollup.
fn show_smap(s: &mut String, m: &MemSizeStats, rollup: bool) {
    let kb = |bytes: u64| bytes >> 10;
    let fixed = |v: u64| kb(v >> PSS_SHIFT);
    kb_line(s, "Rss", kb(m.resident));
    kb_line(s, "Pss", fixed(m.pss));
    kb_line(s, "Pss_Dirty", fixed(m.pss_dirty));
    if rollup {
        kb_line(s, "Pss_Anon", fixed(m.pss_anon));
        kb_line(s, "Pss_File", fixed(m.pss_file));
        kb_line(s, "Pss_Shmem", fixed(m.pss_shmem));
    }
    kb_line(s, "Shared_Clean", kb(m.shared_clean));
    kb_line(s, "Shared_Dirty", kb(m.shared_dirty));
    kb_line(s, "Private_Clean", kb(m.private_clean));
    kb_line(s, "Private_Dirty", kb(m.private_dirty));
    kb_line(s, "Referenced", kb(m.referenced));
    kb_line(s, "Anonymous", kb(m.anonymous));
    kb_line(s, "KSM", kb(m.ksm));
    kb_line(s, "LazyFree", kb(m.lazyfree));
    kb_line(s, "AnonHugePages", kb(m.anonymous_thp));
    kb_line(s, "ShmemPmdMapped", kb(m.shmem_thp));
    kb_line(s, "FilePmdMapped", kb(m.file_thp));
    kb_line(s, "Shared_Hugetlb", kb(m.shared_hugetlb));
    let _ = writeln!(s, "Private_Hugetlb: {:>7} kB", kb(m.private_hugetlb));
    kb_line(s, "Swap", kb(m.swap));
    kb_line(s, "SwapPss", fixed(m.swap_pss));
    kb_line(s, "Locked", fixed(m.pss_locked));
}

/// A `Name:          N kB` line of smaps and meminfo: the name and
/// colon padded to 16 columns, the value to 8.
fn kb_line(s: &mut String, name: &str, kb: u64) {
    let _ = writeln!(s, "{:<16}{kb:>8} kB", alloc::format!("{name}:"));
}

/// `/proc/PID/smaps` (`show_smap()`): each VMA's maps line, its sizes,
/// what its pages count ([`mm::vm::Mm::smaps`]), `THPeligible` and
/// `VmFlags`.
fn smaps(p: &Process) -> String {
    let mut s = String::new();
    let Some(mm) = p.mm() else {
        return s;
    };
    let heap = p.brk_range();
    for (v, m) in mm.smaps() {
        map_line(&mut s, &v, &heap);
        let page_kb = mm::PAGE_SIZE >> 10;
        let _ = writeln!(s, "Size:           {:>8} kB", (v.end - v.start) >> 10);
        let _ = writeln!(s, "KernelPageSize: {page_kb:>8} kB");
        let _ = writeln!(s, "MMUPageSize:    {page_kb:>8} kB");
        show_smap(&mut s, &m, false);
        let _ = writeln!(s, "THPeligible:    {:>8}", u8::from(mm.thp_eligible(&v)));
        vm_flags_line(&mut s, v.flags);
    }
    s
}

/// `/proc/PID/smaps_rollup` (`show_smaps_rollup()`): a maps-style header
/// spanning the first VMA's start to the last one's end, named
/// `[rollup]`, then the sums of every VMA's stats with `Pss_Anon`,
/// `Pss_File` and `Pss_Shmem`.
fn smaps_rollup(p: &Process) -> String {
    let mut s = String::new();
    let Some(mm) = p.mm() else {
        return s;
    };
    let (lo, hi, m) = mm.smaps_rollup();
    write_map_line(
        &mut s,
        lo,
        hi,
        ['-', '-', '-', 'p'],
        0,
        "00:00",
        0,
        Some("[rollup]"),
    );
    show_smap(&mut s, &m, true);
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
    /// `/proc/PID/oom_score_adj` of the process with this pid:
    /// -1000..=1000.
    OomScoreAdj(u32),
    /// `/proc/PID/clear_refs` of the process with this pid: write-only,
    /// 1..=5 ([`mm::vm::ClearRefs`]).
    ClearRefs(u32),
}

/// The writable setting of process `p` that `path` (a `/proc/self/...`
/// path of `p`, or any other) names, if any.
pub fn setting(p: &Process, path: &[u8]) -> Option<Sysctl> {
    match path {
        b"/proc/self/oom_score_adj" => Some(Sysctl::OomScoreAdj(p.pid)),
        b"/proc/self/clear_refs" => Some(Sysctl::ClearRefs(p.pid)),
        _ => sysctl(path),
    }
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
        Sysctl::OomScoreAdj(_) | Sysctl::ClearRefs(_) => 0,
    }
}

/// Sets `c` from the text a program wrote: a decimal number, optionally
/// followed by whitespace (`proc_dointvec`); EINVAL for anything else or
/// a value out of range.
pub fn write_sysctl(c: Sysctl, text: &[u8]) -> Result<(), Errno> {
    if let Sysctl::ClearRefs(pid) = c {
        // clear_refs_write(): parse, then the task (ESRCH once gone), then
        // its address space (none: nothing to do).
        let what = mm::vm::ClearRefs::parse(text)?;
        let target = super::find(pid).ok_or(Errno(3))?;
        if let Some(mm) = target.mm() {
            mm.clear_refs(what);
        }
        return Ok(());
    }
    let text = core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    if let Sysctl::OomScoreAdj(pid) = c {
        // oom_score_adj_write: kstrtoint, then the range check; a process
        // gone meanwhile is ESRCH.
        let v: i32 = text.trim().parse().map_err(|_| Errno::EINVAL)?;
        if !(-1000..=1000).contains(&v) {
            return Err(Errno::EINVAL);
        }
        let target = super::find(pid).ok_or(Errno(3))?;
        target.oom_score_adj.store(v, Relaxed);
        return Ok(());
    }
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
        Sysctl::OomScoreAdj(_) | Sysctl::ClearRefs(_) => unreachable!("handled above"),
    }
    Ok(())
}

fn meminfo() -> String {
    let pa = crate::memory::page_alloc();
    let kb = |pages: u64| pages * mm::PAGE_SIZE / 1024;
    let free = pa.nr_free_pages() + pa.nr_pcp_pages();
    let shmem = super::vm().nr_shmem_pages();
    let slab: u64 = crate::slab::kmalloc()
        .caches()
        .chain(core::iter::once(super::vm().node_cache))
        .map(|c| c.nr_pages())
        .sum();
    let mut s = String::new();
    for (name, pages) in [
        ("MemTotal", pa.managed_pages()),
        ("MemFree", free),
        // Nothing reclaimable (shmem has no swap): what is free is available.
        ("MemAvailable", free),
        ("Buffers", 0),
        // The page cache is shmem objects' pages only, for now.
        ("Cached", shmem),
        ("SwapCached", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        // Shmem folios are dirty but never accounted (noop_dirty_folio()).
        ("Dirty", 0),
        ("Writeback", 0),
        ("Mapped", super::vm().nr_file_mapped()),
        ("Shmem", shmem),
        ("Slab", slab),
        ("ShmemHugePages", 0),
        ("ShmemPmdMapped", 0),
    ] {
        kb_line(&mut s, name, kb(pages));
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
    use crate::arch::tlb::{
        NR_TLB_LOCAL_FLUSH_ALL, NR_TLB_LOCAL_FLUSH_ONE, NR_TLB_REMOTE_FLUSH,
        nr_tlb_remote_flush_received,
    };
    let _ = writeln!(
        s,
        "nr_tlb_remote_flush {}",
        NR_TLB_REMOTE_FLUSH.load(Relaxed)
    );
    let _ = writeln!(
        s,
        "nr_tlb_remote_flush_received {}",
        nr_tlb_remote_flush_received()
    );
    let _ = writeln!(
        s,
        "nr_tlb_local_flush_all {}",
        NR_TLB_LOCAL_FLUSH_ALL.load(Relaxed)
    );
    let _ = writeln!(
        s,
        "nr_tlb_local_flush_one {}",
        NR_TLB_LOCAL_FLUSH_ONE.load(Relaxed)
    );
    // Ours: grace-period waits and callback barriers inside the kernel
    // (a system call that waits for one is slow).
    let rcu = crate::rcu::rcu().stats();
    let _ = writeln!(
        s,
        "rcu_synchronize_calls {}",
        rcu.get(mm::rcu::RcuStat::SynchronizeCalls)
    );
    let _ = writeln!(
        s,
        "rcu_barrier_calls {}",
        rcu.get(mm::rcu::RcuStat::BarrierCalls)
    );
    s
}

/// The folio order of `/sys/kernel/mm/transparent_hugepage/hugepages-<kB>kB/enabled`
/// (16, 32, 64 kB: orders 2..=4), if `path` is one.
fn thp_size(path: &[u8]) -> Option<u32> {
    let rest = path.strip_prefix(b"/sys/kernel/mm/transparent_hugepage/hugepages-")?;
    let kb = rest.strip_suffix(b"kB/enabled")?;
    match kb {
        b"16" => Some(2),
        b"32" => Some(3),
        b"64" => Some(4),
        _ => None,
    }
}

/// `d_type` of a directory, a regular file and a symbolic link.
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

/// The children of the pseudo file systems' directory `path` with their
/// `d_type`, in a fixed order; `None` if `path` is not one. `/proc` lists
/// `self`, `thread-self` and every live process's pid (not the ids of
/// threads, as Linux); `/proc/<pid>` lists what that process's
/// `/proc/self` holds ([`pid_path`]).
pub fn dir_entries(p: &Process, path: &str) -> Option<Vec<(String, u8)>> {
    let target = pid_path(path).ok()?;
    let (p, path) = match &target {
        Some((t, own)) => (&**t, own.as_str()),
        None => (p, path),
    };
    if path == "/proc/self/task" {
        let tids = p.threads.lock().iter().map(|t| t.tid()).collect::<Vec<_>>();
        return Some(
            tids.iter()
                .map(|t| (alloc::format!("{t}"), DT_DIR))
                .collect(),
        );
    }
    if path == "/proc/thread-self" || is_task_dir(p, path.as_bytes()) {
        return Some(alloc::vec![
            (String::from("stat"), DT_REG),
            (String::from("status"), DT_REG),
        ]);
    }
    let names: &[(&str, u8)] = match path {
        "/proc" => &[
            ("self", DT_LNK),
            ("thread-self", DT_LNK),
            ("buddyinfo", DT_REG),
            ("cmdline", DT_REG),
            ("cpuinfo", DT_REG),
            ("kpagecount", DT_REG),
            ("kpageflags", DT_REG),
            ("meminfo", DT_REG),
            ("slabinfo", DT_REG),
            ("uptime", DT_REG),
            ("version", DT_REG),
            ("vmstat", DT_REG),
            ("sys", DT_DIR),
        ],
        "/proc/self" => &[
            ("clear_refs", DT_REG),
            ("cmdline", DT_REG),
            ("comm", DT_REG),
            ("cwd", DT_LNK),
            ("environ", DT_REG),
            ("exe", DT_LNK),
            ("maps", DT_REG),
            ("oom_score", DT_REG),
            ("oom_score_adj", DT_REG),
            ("pagemap", DT_REG),
            ("root", DT_LNK),
            ("smaps", DT_REG),
            ("smaps_rollup", DT_REG),
            ("stat", DT_REG),
            ("statm", DT_REG),
            ("status", DT_REG),
            ("task", DT_DIR),
        ],
        "/proc/sys" => &[("vm", DT_DIR)],
        "/proc/sys/vm" => &[
            ("anon_orders", DT_REG),
            ("cow_reuse_large", DT_REG),
            ("pt_reclaim", DT_REG),
        ],
        "/sys" => &[("kernel", DT_DIR)],
        "/sys/kernel" => &[("mm", DT_DIR)],
        "/sys/kernel/mm" => &[("transparent_hugepage", DT_DIR)],
        "/sys/kernel/mm/transparent_hugepage" => &[
            ("enabled", DT_REG),
            ("hugepages-16kB", DT_DIR),
            ("hugepages-32kB", DT_DIR),
            ("hugepages-64kB", DT_DIR),
        ],
        _ if is_dir(path.as_bytes()) => &[("enabled", DT_REG)],
        _ => return None,
    };
    let mut out: Vec<(String, u8)> = names.iter().map(|(n, t)| (String::from(*n), *t)).collect();
    if path == "/proc" {
        // Every live process, in pid order, after self and thread-self.
        let mut pids = super::pids();
        pids.sort_unstable();
        for (i, pid) in pids.into_iter().enumerate() {
            out.insert(2 + i, (alloc::format!("{pid}"), DT_DIR));
        }
    }
    Some(out)
}

/// The live thread of `p` and the file name a per-thread path names:
/// `/proc/self/task/<tid>/NAME` or `/proc/thread-self/NAME` (the caller's
/// thread).
fn task_file<'a>(p: &Process, path: &'a [u8]) -> Option<(u32, &'a [u8])> {
    if let Some(name) = path.strip_prefix(b"/proc/thread-self/") {
        let t = super::thread::current_thread()?;
        return Some((t.tid(), name));
    }
    let rest = path.strip_prefix(b"/proc/self/task/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let tid: u32 = core::str::from_utf8(&rest[..slash]).ok()?.parse().ok()?;
    let live = p.threads.lock().iter().any(|t| t.tid() == tid);
    live.then_some((tid, &rest[slash + 1..]))
}

/// Whether `path` is a per-thread directory of `p`: `/proc/self/task`,
/// `/proc/self/task/<tid>` of a live thread, `/proc/thread-self`.
pub fn is_task_dir(p: &Process, path: &[u8]) -> bool {
    if path == b"/proc/self/task" || path == b"/proc/thread-self" {
        return true;
    }
    let Some(tid) = path.strip_prefix(b"/proc/self/task/") else {
        return false;
    };
    let tid: Option<u32> = core::str::from_utf8(tid).ok().and_then(|t| t.parse().ok());
    tid.is_some_and(|tid| p.threads.lock().iter().any(|t| t.tid() == tid))
}

/// Whether `path` is a directory of the pseudo file systems.
pub fn is_dir(path: &[u8]) -> bool {
    matches!(
        path,
        b"/proc"
            | b"/proc/self"
            | b"/proc/sys"
            | b"/proc/sys/vm"
            | b"/sys"
            | b"/sys/kernel"
            | b"/sys/kernel/mm"
            | b"/sys/kernel/mm/transparent_hugepage"
            | b"/sys/kernel/mm/transparent_hugepage/hugepages-16kB"
            | b"/sys/kernel/mm/transparent_hugepage/hugepages-32kB"
            | b"/sys/kernel/mm/transparent_hugepage/hugepages-64kB"
    )
}

/// `/proc/self/stat` (`fs/proc/array.c`, `do_task_stat`): 52 fields.
fn stat(p: &Process) -> String {
    stat_of(p, p.pid)
}

/// `stat` of thread `tid` of `p` (`/proc/self/task/<tid>/stat`): field 1
/// is the thread's id.
fn stat_of(p: &Process, tid: u32) -> String {
    let (vsize, rss_pages) = p.mm().map_or((0, 0), |mm| {
        let st = mm.status();
        (st.vm_size * 1024, st.vm_rss / 4)
    });
    let start_brk = p.brk_range();
    let mut f: alloc::vec::Vec<String> = alloc::vec::Vec::new();
    f.push(alloc::format!("{tid}"));
    f.push(alloc::format!("({})", p.comm()));
    f.push(String::from("R"));
    f.push(alloc::format!("{}", p.ppid()));
    // pgrp, session, tty_nr (ttyS0: 4, 64), tpgid, flags.
    for v in [1u64, 1, (4 << 8) | 64, 1, 0x0040_0100] {
        f.push(alloc::format!("{v}"));
    }
    f.push(alloc::format!("{}", p.min_flt.load(Relaxed)));
    f.push(alloc::format!("{}", p.cmin_flt.load(Relaxed)));
    // majflt, cmajflt, utime, stime, cutime, cstime, priority, nice,
    // num_threads, itrealvalue, starttime.
    let nr_threads = p.threads.lock().len().max(1);
    for v in ["0", "0", "0", "0", "0", "0", "20", "0"] {
        f.push(String::from(v));
    }
    f.push(alloc::format!("{nr_threads}"));
    f.push(String::from("0"));
    f.push(String::from("0"));
    f.push(alloc::format!("{vsize}"));
    f.push(alloc::format!("{rss_pages}"));
    // rsslim, startcode, endcode, startstack, kstkesp, kstkeip, signal,
    // blocked, sigignore, sigcatch, wchan, nswap, cnswap, exit_signal,
    // processor, rt_priority, policy, delayacct_blkio_ticks, guest_time,
    // cguest_time, start_data, end_data, start_brk, arg_start, arg_end,
    // env_start, env_end, exit_code.
    let thread = p.thread(tid);
    let blocked = thread.as_ref().map_or(0, |t| signal::blocked(t));
    // Field 39, processor: the CPU the thread last ran on.
    let processor = thread
        .and_then(|t| t.task())
        .map_or(0, |t| u64::from(t.cpu()));
    let [arg_start, arg_end, env_start, env_end] = *p.args.lock();
    let rest = [
        u64::MAX,
        0,
        0,
        0,
        0,
        0,
        0,
        blocked,
        0,
        0,
        0,
        0,
        0,
        u64::from(p.exit_signal.load(Relaxed)),
        processor,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        start_brk.start,
        arg_start,
        arg_end,
        env_start,
        env_end,
        0,
    ];
    for v in rest {
        f.push(alloc::format!("{v}"));
    }
    let mut s = f.join(" ");
    s.push('\n');
    s
}

fn cpuinfo() -> String {
    use core::arch::x86_64::__cpuid;
    let v = __cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&v.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&v.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&v.ecx.to_le_bytes());
    let l1 = __cpuid(1);
    let family = ((l1.eax >> 8) & 0xf)
        + if (l1.eax >> 8) & 0xf == 0xf {
            (l1.eax >> 20) & 0xff
        } else {
            0
        };
    let model = ((l1.eax >> 4) & 0xf) | (((l1.eax >> 16) & 0xf) << 4);
    let mut name = [0u8; 48];
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            let r = __cpuid(leaf);
            for (j, w) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
                name[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
    }
    let name = core::str::from_utf8(&name)
        .unwrap_or("")
        .trim_matches(char::from(0))
        .trim();
    // CPUID.1 EDX/ECX bits, named as Linux names them.
    const EDX: [(u32, &str); 17] = [
        (0, "fpu"),
        (3, "pse"),
        (4, "tsc"),
        (5, "msr"),
        (6, "pae"),
        (8, "cx8"),
        (9, "apic"),
        (11, "sep"),
        (13, "pge"),
        (15, "cmov"),
        (16, "pat"),
        (19, "clflush"),
        (23, "mmx"),
        (24, "fxsr"),
        (25, "sse"),
        (26, "sse2"),
        (28, "ht"),
    ];
    const ECX: [(u32, &str); 12] = [
        (0, "pni"),
        (1, "pclmulqdq"),
        (9, "ssse3"),
        (12, "fma"),
        (13, "cx16"),
        (19, "sse4_1"),
        (20, "sse4_2"),
        (22, "movbe"),
        (23, "popcnt"),
        (25, "aes"),
        (28, "avx"),
        (30, "rdrand"),
    ];
    let mut flags: alloc::vec::Vec<&str> = EDX
        .iter()
        .filter(|(b, _)| l1.edx & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    flags.extend(
        ECX.iter()
            .filter(|(b, _)| l1.ecx & (1 << b) != 0)
            .map(|(_, n)| *n),
    );
    let ext = __cpuid(0x8000_0001);
    for (b, n) in [(11u32, "syscall"), (20, "nx"), (29, "lm")] {
        if ext.edx & (1 << b) != 0 {
            flags.push(n);
        }
    }
    let l7 = __cpuid(7);
    for (b, n) in [
        (7u32, "smep"),
        (20, "smap"),
        (5, "avx2"),
        (3, "bmi1"),
        (8, "bmi2"),
    ] {
        if l7.ebx & (1 << b) != 0 {
            flags.push(n);
        }
    }
    let mut s = String::new();
    for cpu in 0..crate::percpu::nr_online_cpus() {
        let _ = writeln!(s, "processor\t: {cpu}");
        let _ = writeln!(
            s,
            "vendor_id\t: {}",
            core::str::from_utf8(&vendor).unwrap_or("?")
        );
        let _ = writeln!(s, "cpu family\t: {family}");
        let _ = writeln!(s, "model\t\t: {model}");
        let _ = writeln!(s, "model name\t: {name}");
        let _ = writeln!(s, "stepping\t: {}", l1.eax & 0xf);
        let _ = writeln!(s, "physical id\t: 0");
        let _ = writeln!(s, "siblings\t: {}", crate::percpu::nr_online_cpus());
        let _ = writeln!(s, "core id\t\t: {cpu}");
        let _ = writeln!(s, "cpu cores\t: {}", crate::percpu::nr_online_cpus());
        let apicid = crate::percpu::per_cpu(cpu as u32).apic_id();
        let _ = writeln!(s, "apicid\t\t: {apicid}");
        let _ = writeln!(s, "initial apicid\t: {apicid}");
        let _ = writeln!(s, "fpu\t\t: yes");
        let _ = writeln!(s, "flags\t\t: {}", flags.join(" "));
        let _ = writeln!(s, "address sizes\t: 40 bits physical, 48 bits virtual");
        let _ = writeln!(s);
    }
    s
}

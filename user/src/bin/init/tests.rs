//! `init test`: the userland test suite. Each test checks Linux's results
//! and errno values through the syscall ABI only (the same binary can run
//! on Linux, but for the `/proc/sys/vm` settings and `/proc/vmstat`
//! counters, which are this kernel's). Output follows the in-kernel
//! harness: `test NAME ... ok` or `... FAILED`, then `N passed, M failed`.

use user::*;

use crate::{MIB, PAGE, read_file, status_kb, sysctl, vmstat};

type TestResult = Result<(), ()>;

/// Fails the test with the location and both values when they differ.
macro_rules! check_eq {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        if a != b {
            println!(
                "    {}:{}: {} = {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($a),
                a,
                b
            );
            return Err(());
        }
    }};
}

/// Fails the test with the location when `cond` is false.
macro_rules! ensure {
    ($cond:expr) => {{
        if !$cond {
            println!(
                "    {}:{}: {} is false",
                file!(),
                line!(),
                stringify!($cond)
            );
            return Err(());
        }
    }};
}

/// A test: its name and its function.
type Test = (&'static str, fn() -> TestResult);

const TESTS: &[Test] = &[
    ("mmap_errnos", mmap_errnos),
    ("munmap_errnos_and_split", munmap_errnos_and_split),
    ("mremap_moves_data_and_errnos", mremap_moves_data_and_errnos),
    ("mprotect_errnos", mprotect_errnos),
    ("madvise_errnos_and_zeros", madvise_errnos_and_zeros),
    ("brk_grows_and_shrinks", brk_grows_and_shrinks),
    ("bad_pointers_give_efault", bad_pointers_give_efault),
    ("proc_files", proc_files),
    ("vmstat_counters_move", vmstat_counters_move),
    ("sysctl_writes", sysctl_writes),
    ("fork_wait4_exit_status", fork_wait4_exit_status),
    ("clone_flags", clone_flags),
    (
        "segv_on_read_only_page_in_child",
        segv_on_read_only_page_in_child,
    ),
    (
        "segv_on_prot_none_page_in_child",
        segv_on_prot_none_page_in_child,
    ),
    ("fork_cow_both_write", fork_cow_both_write),
    ("fork_large_folio_reused", fork_large_folio_reused),
    ("pt_reclaim_vmpte_drops", pt_reclaim_vmpte_drops),
];

/// Runs every test; returns init's exit status (0: all passed).
pub fn run() -> i32 {
    println!("running {} userland tests", TESTS.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        if test().is_ok() {
            println!("test user::{name} ... ok");
            passed += 1;
        } else {
            println!("test user::{name} ... FAILED");
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { 0 } else { 1 }
}

fn anon(len: u64, prot: u64) -> Result<u64, Errno> {
    mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
}

fn unmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the tests keep no references into what they unmap.
    unsafe { munmap(addr, len) }
}

fn peek(addr: u64) -> u64 {
    // SAFETY: callers pass addresses of readable mappings they made.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn poke(addr: u64, v: u64) {
    // SAFETY: callers pass addresses of writable mappings they made.
    unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
}

fn dontneed(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the tests expect the range to read back as zeros.
    unsafe { madvise(addr, len, MADV_DONTNEED) }
}

/// Forks a child that runs `f` and exits with its result; returns the
/// child's wait status.
fn in_child(f: fn() -> i32) -> Result<i32, ()> {
    match fork() {
        Ok(0) => exit(f()),
        Ok(pid) => match wait4(pid as i64, 0) {
            Ok((got, w)) if got == pid => Ok(w),
            r => {
                println!("    wait4({pid}) -> {r:?}");
                Err(())
            }
        },
        Err(e) => {
            println!("    fork -> {e:?}");
            Err(())
        }
    }
}

fn mmap_errnos() -> TestResult {
    let rw = PROT_READ | PROT_WRITE;
    let pa = MAP_PRIVATE | MAP_ANONYMOUS;
    check_eq!(mmap(0, 0, rw, pa, -1, 0), Err(Errno::EINVAL));
    // Neither MAP_PRIVATE nor MAP_SHARED.
    check_eq!(mmap(0, PAGE, rw, MAP_ANONYMOUS, -1, 0), Err(Errno::EINVAL));
    // MAP_FIXED at an unaligned address; an unaligned offset.
    check_eq!(
        mmap(0x1000_0001, PAGE, rw, pa | MAP_FIXED, -1, 0),
        Err(Errno::EINVAL)
    );
    check_eq!(mmap(0, PAGE, rw, pa, -1, 1), Err(Errno::EINVAL));
    // Longer than the address space.
    check_eq!(mmap(0, 1 << 47, rw, pa, -1, 0), Err(Errno::ENOMEM));
    check_eq!(mmap(0, u64::MAX - PAGE, rw, pa, -1, 0), Err(Errno::ENOMEM));
    // A hint is taken when free; MAP_FIXED_NOREPLACE refuses a used range.
    let hint = 0x2000_0000_0000;
    let a = mmap(hint, 4 * PAGE, rw, pa, -1, 0).map_err(|_| ())?;
    check_eq!(a, hint);
    check_eq!(
        mmap(a + PAGE, PAGE, rw, pa | MAP_FIXED_NOREPLACE, -1, 0),
        Err(Errno::EEXIST)
    );
    // MAP_FIXED replaces, and the new page reads zero.
    poke(a + PAGE, 5);
    check_eq!(
        mmap(a + PAGE, PAGE, rw, pa | MAP_FIXED, -1, 0),
        Ok(a + PAGE)
    );
    check_eq!(peek(a + PAGE), 0);
    check_eq!(unmap(a, 4 * PAGE), Ok(()));
    Ok(())
}

fn munmap_errnos_and_split() -> TestResult {
    let a = anon(3 * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    check_eq!(unmap(a + 1, PAGE), Err(Errno::EINVAL));
    check_eq!(unmap(a, 0), Err(Errno::EINVAL));
    check_eq!(unmap(1 << 47, PAGE), Err(Errno::EINVAL));
    // Unmapping the middle page splits the VMA; both ends stay usable.
    poke(a, 1);
    poke(a + 2 * PAGE, 3);
    check_eq!(unmap(a + PAGE, PAGE), Ok(()));
    check_eq!((peek(a), peek(a + 2 * PAGE)), (1, 3));
    // Nothing mapped there any more: still a success.
    check_eq!(unmap(a + PAGE, PAGE), Ok(()));
    check_eq!(unmap(a, 3 * PAGE), Ok(()));
    Ok(())
}

fn mremap_moves_data_and_errnos() -> TestResult {
    let a = anon(4 * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    for i in 0..4 {
        poke(a + i * PAGE, 10 + i);
    }
    // Another mapping next to it (top-down placement puts it below).
    let g = anon(PAGE, PROT_READ).map_err(|_| ())?;
    // SAFETY: nothing references the ranges.
    unsafe {
        check_eq!(mremap(a + 1, PAGE, PAGE, 0, 0), Err(Errno::EINVAL));
        check_eq!(mremap(a, PAGE, 0, MREMAP_MAYMOVE, 0), Err(Errno::EINVAL));
        check_eq!(mremap(a, PAGE, PAGE, 8, 0), Err(Errno::EINVAL));
        check_eq!(
            mremap(a, PAGE, PAGE, MREMAP_FIXED, a + 64 * PAGE),
            Err(Errno::EINVAL)
        );
        // Growing a range that runs past its VMA: EFAULT (an unchanged
        // size returns at once, as Linux does, without that check).
        check_eq!(mremap(a, 8 * PAGE, 16 * PAGE, 0, 0), Err(Errno::EFAULT));
        check_eq!(mremap(a, 8 * PAGE, 8 * PAGE, 0, 0), Ok(a));
        // Shrink in place.
        check_eq!(mremap(a, 4 * PAGE, 3 * PAGE, 0, 0), Ok(a));
        // Grow by 61 pages, in place or moved: the data comes along.
        let b = mremap(a, 3 * PAGE, 64 * PAGE, MREMAP_MAYMOVE, 0).map_err(|_| ())?;
        for i in 0..3 {
            check_eq!(peek(b + i * PAGE), 10 + i);
        }
        check_eq!(peek(b + 40 * PAGE), 0);
        check_eq!(unmap(b, 64 * PAGE), Ok(()));
        check_eq!(unmap(g, PAGE), Ok(()));
        // Nothing mapped at the old address: EFAULT.
        check_eq!(mremap(b, PAGE, PAGE, 0, 0), Err(Errno::EFAULT));
    }
    Ok(())
}

fn mprotect_errnos() -> TestResult {
    let a = anon(2 * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    check_eq!(mprotect(a + 1, PAGE, PROT_READ), Err(Errno::EINVAL));
    check_eq!(mprotect(a, PAGE, 0x1000), Err(Errno::EINVAL));
    check_eq!(unmap(a + PAGE, PAGE), Ok(()));
    // A hole in the range: ENOMEM (the mapped part may change).
    check_eq!(mprotect(a, 2 * PAGE, PROT_READ), Err(Errno::ENOMEM));
    check_eq!(mprotect(a, PAGE, PROT_READ), Ok(()));
    check_eq!(mprotect(a, 0, PROT_READ), Ok(()));
    check_eq!(unmap(a, PAGE), Ok(()));
    Ok(())
}

fn madvise_errnos_and_zeros() -> TestResult {
    let a = anon(4 * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    for i in 0..4 {
        poke(a + i * PAGE, i + 1);
    }
    check_eq!(dontneed(a + 1, PAGE), Err(Errno::EINVAL));
    // SAFETY: an unknown advice changes nothing.
    check_eq!(unsafe { madvise(a, PAGE, 999) }, Err(Errno::EINVAL));
    check_eq!(dontneed(a, 2 * PAGE), Ok(()));
    check_eq!((peek(a), peek(a + PAGE), peek(a + 2 * PAGE)), (0, 0, 3));
    check_eq!(unmap(a, 4 * PAGE), Ok(()));
    // An unmapped range: ENOMEM.
    check_eq!(dontneed(a, PAGE), Err(Errno::ENOMEM));
    Ok(())
}

fn brk_grows_and_shrinks() -> TestResult {
    let start = brk(0);
    ensure!(start != 0);
    check_eq!(brk(start + 64 * 1024), start + 64 * 1024);
    poke(start + 60 * 1024, 9);
    check_eq!(brk(start), start);
    // Below the heap's start, or absurdly high: the break stays.
    check_eq!(brk(0x1000), start);
    check_eq!(brk(1 << 47), start);
    // Grown again, the heap reads zeros.
    check_eq!(brk(start + 64 * 1024), start + 64 * 1024);
    check_eq!(peek(start + 60 * 1024), 0);
    check_eq!(brk(start), start);
    Ok(())
}

fn bad_pointers_give_efault() -> TestResult {
    let raw = |nr, a: [u64; 6]| {
        // SAFETY: the kernel must refuse these pointers, touching nothing.
        check(unsafe { syscall6(nr, a) })
    };
    check_eq!(raw(SYS_WRITE, [1, 0x10, 8, 0, 0, 0]), Err(Errno::EFAULT));
    check_eq!(
        raw(SYS_WRITE, [1, 0xffff_8880_0000_0000, 8, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    check_eq!(
        raw(SYS_OPENAT, [AT_FDCWD as u64, 0x10, 0, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    let fd = open(b"/proc/self/status\0").map_err(|_| ())?;
    check_eq!(
        raw(SYS_READ, [fd, 0xffff_ffff_8000_0000, 64, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    check_eq!(close(fd), Ok(()));
    check_eq!(close(fd), Err(Errno::EBADF));
    check_eq!(
        raw(SYS_CLOCK_GETTIME, [CLOCK_MONOTONIC, 0x10, 0, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    Ok(())
}

fn proc_files() -> TestResult {
    let mut buf = [0u8; 8192];
    let n = read_file(b"/proc/meminfo\0", &mut buf).map_err(|_| ())?;
    let text = &buf[..n];
    for key in [&b"MemTotal:"[..], b"MemFree:", b"MemAvailable:"] {
        let v = crate::field(text, key);
        ensure!(v.is_some_and(|kb| kb > 0));
    }
    ensure!(text.starts_with(b"MemTotal:       "));
    let n = read_file(b"/proc/buddyinfo\0", &mut buf).map_err(|_| ())?;
    ensure!(buf[..n].starts_with(b"Node 0, zone"));
    let n = read_file(b"/proc/slabinfo\0", &mut buf).map_err(|_| ())?;
    ensure!(buf[..n].starts_with(b"slabinfo - version: 2.1\n"));
    ensure!(vmstat(b"pgfault").is_some_and(|n| n > 0));
    ensure!(vmstat(b"nr_free_pages").is_some());
    check_eq!(open(b"/proc/nope\0"), Err(Errno::ENOENT));
    check_eq!(open_flags(b"/proc/meminfo\0", O_WRONLY), Err(Errno::EACCES));
    Ok(())
}

/// Pages allocated from any zone (`pgalloc_<zone>` of `/proc/vmstat`).
fn pgalloc() -> Option<u64> {
    Some(vmstat(b"pgalloc_dma")? + vmstat(b"pgalloc_dma32")? + vmstat(b"pgalloc_normal")?)
}

/// Linux's page and TLB counters of `/proc/vmstat` move with the work
/// done (other allocations only add to them, hence `>=`): 16 pages
/// touched are 16 pages allocated, unmapped 16 freed; unmapping 4 touched
/// pages flushes each (`invlpg`, at most 33 pages), 64 the whole TLB.
/// Ours, for RCU waits inside system calls, are there.
fn vmstat_counters_move() -> TestResult {
    let a = anon(64 * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    let (allocs, frees) = (pgalloc().ok_or(())?, vmstat(b"pgfree").ok_or(())?);
    for i in 0..16 {
        poke(a + i * PAGE, i);
    }
    ensure!(pgalloc().ok_or(())? - allocs >= 16);
    check_eq!(unmap(a, 16 * PAGE), Ok(()));
    ensure!(vmstat(b"pgfree").ok_or(())? - frees >= 16);
    for i in 16..64 {
        poke(a + i * PAGE, i);
    }
    let one = vmstat(b"nr_tlb_local_flush_one").ok_or(())?;
    check_eq!(unmap(a + 16 * PAGE, 4 * PAGE), Ok(()));
    ensure!(vmstat(b"nr_tlb_local_flush_one").ok_or(())? - one >= 4);
    let all = vmstat(b"nr_tlb_local_flush_all").ok_or(())?;
    check_eq!(unmap(a + 20 * PAGE, 44 * PAGE), Ok(()));
    ensure!(vmstat(b"nr_tlb_local_flush_all").ok_or(())? > all);
    ensure!(vmstat(b"rcu_synchronize_calls").is_some());
    ensure!(vmstat(b"rcu_barrier_calls").is_some());
    Ok(())
}

fn sysctl_writes() -> TestResult {
    let path = b"/proc/sys/vm/pt_reclaim\0";
    let old = sysctl(path, 0).map_err(|_| ())?;
    check_eq!(sysctl(path, 1), Ok(0));
    check_eq!(sysctl(path, 7), Err(Errno::EINVAL));
    check_eq!(
        sysctl(b"/proc/sys/vm/anon_orders\0", 1 << 12),
        Err(Errno::EINVAL)
    );
    check_eq!(sysctl(path, old), Ok(1));
    // A read-only open cannot be written.
    let fd = open(path).map_err(|_| ())?;
    check_eq!(write(fd, b"1\n"), Err(Errno::EBADF));
    check_eq!(close(fd), Ok(()));
    Ok(())
}

fn fork_wait4_exit_status() -> TestResult {
    check_eq!(wait4(-1, WNOHANG), Err(Errno::ECHILD));
    let me = getpid();
    let w = in_child(|| {
        if getppid() != 1 {
            return 1;
        }
        7
    })?;
    ensure!(wifexited(w));
    check_eq!(wexitstatus(w), 7);
    ensure!(me == 1);
    // WNOHANG before the child has run, then a blocking wait4(-1).
    let pid = fork().map_err(|_| ())?;
    if pid == 0 {
        for _ in 0..3 {
            sched_yield();
        }
        exit(3);
    }
    let first = wait4(pid as i64, WNOHANG).map_err(|_| ())?;
    ensure!(first.0 == 0 || first.0 == pid);
    if first.0 == 0 {
        let (got, w) = wait4(-1, 0).map_err(|_| ())?;
        check_eq!(got, pid);
        check_eq!(wexitstatus(w), 3);
    }
    check_eq!(wait4(-1, 0), Err(Errno::ECHILD));
    check_eq!(
        // SAFETY: bad options change nothing.
        check(unsafe { syscall6(SYS_WAIT4, [u64::MAX, 0, 0x100, 0, 0, 0]) }),
        Err(Errno::EINVAL)
    );
    Ok(())
}

fn clone_flags() -> TestResult {
    const CLONE_VM: u64 = 0x100;
    const CLONE_SIGHAND: u64 = 0x800;
    const CLONE_THREAD: u64 = 0x10000;
    const CLONE_NEWPID: u64 = 0x2000_0000;
    // SAFETY: refused flags create nothing.
    unsafe {
        check_eq!(clone(CLONE_SIGHAND | SIGCHLD, 0), Err(Errno::EINVAL));
        check_eq!(clone(CLONE_THREAD | CLONE_VM, 0), Err(Errno::EINVAL));
        // A thread may not start a new PID namespace.
        check_eq!(
            clone(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_NEWPID, 0),
            Err(Errno::EINVAL)
        );
    }
    // clone(SIGCHLD, 0) is fork.
    // SAFETY: a plain fork on this stack.
    let pid = unsafe { clone(SIGCHLD, 0) }.map_err(|_| ())?;
    if pid == 0 {
        exit(42);
    }
    let (got, w) = wait4(-1, 0).map_err(|_| ())?;
    check_eq!((got, wexitstatus(w)), (pid, 42));
    Ok(())
}

/// The page the SIGSEGV children fault on (set before fork).
static mut VICTIM: u64 = 0;

fn victim() -> u64 {
    // SAFETY: written only before fork, by the parent.
    unsafe { core::ptr::read_volatile(&raw const VICTIM) }
}

fn set_victim(a: u64) {
    // SAFETY: single-threaded; written before fork.
    unsafe { core::ptr::write_volatile(&raw mut VICTIM, a) }
}

fn segv_on_read_only_page_in_child() -> TestResult {
    let a = anon(PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    poke(a, 1);
    check_eq!(mprotect(a, PAGE, PROT_READ), Ok(()));
    set_victim(a);
    let w = in_child(|| {
        poke(victim(), 2);
        0
    })?;
    ensure!(wifsignaled(w));
    check_eq!(wtermsig(w), SIGSEGV);
    // The parent's page is untouched.
    check_eq!(peek(a), 1);
    check_eq!(unmap(a, PAGE), Ok(()));
    Ok(())
}

fn segv_on_prot_none_page_in_child() -> TestResult {
    let a = anon(PAGE, PROT_NONE).map_err(|_| ())?;
    set_victim(a);
    let w = in_child(|| peek(victim()) as i32)?;
    ensure!(wifsignaled(w));
    check_eq!(wtermsig(w), SIGSEGV);
    check_eq!(unmap(a, PAGE), Ok(()));
    Ok(())
}

const COW_PAGES: u64 = 16;

fn fork_cow_both_write() -> TestResult {
    let a = anon(COW_PAGES * PAGE, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    for i in 0..COW_PAGES {
        poke(a + i * PAGE, 0x1000 + i);
    }
    set_victim(a);
    let pid = fork().map_err(|_| ())?;
    if pid == 0 {
        // Child: writes the lower half, reads the parent's half unchanged.
        let a = victim();
        for i in 0..COW_PAGES / 2 {
            poke(a + i * PAGE, 0xc0 + i);
        }
        sched_yield();
        for i in 0..COW_PAGES {
            let want = if i < COW_PAGES / 2 {
                0xc0 + i
            } else {
                0x1000 + i
            };
            if peek(a + i * PAGE) != want {
                exit(1);
            }
        }
        exit(0);
    }
    // Parent: writes the upper half meanwhile.
    for i in COW_PAGES / 2..COW_PAGES {
        poke(a + i * PAGE, 0xaa + i);
    }
    sched_yield();
    let (_, w) = wait4(pid as i64, 0).map_err(|_| ())?;
    ensure!(wifexited(w));
    check_eq!(wexitstatus(w), 0);
    for i in 0..COW_PAGES {
        let want = if i < COW_PAGES / 2 {
            0x1000 + i
        } else {
            0xaa + i
        };
        check_eq!(peek(a + i * PAGE), want);
    }
    check_eq!(unmap(a, COW_PAGES * PAGE), Ok(()));
    Ok(())
}

fn fork_large_folio_reused() -> TestResult {
    const FOLIO: u64 = 64 * 1024;
    let orders = b"/proc/sys/vm/anon_orders\0";
    let old = sysctl(orders, 1 | 1 << 4).map_err(|_| ())?;
    let r = large_folio_reuse(FOLIO);
    sysctl(orders, old).map_err(|_| ())?;
    r
}

fn large_folio_reuse(folio: u64) -> TestResult {
    let len = MIB;
    let raw = anon(len + folio, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    let a = raw.next_multiple_of(folio);
    let allocs = vmstat(b"thp_fault_alloc").ok_or(())?;
    for off in (0..len).step_by(PAGE as usize) {
        poke(a + off, off);
    }
    let nr_folios = len / folio;
    check_eq!(vmstat(b"thp_fault_alloc").ok_or(())? - allocs, nr_folios);
    let w = in_child(|| 0)?;
    check_eq!(w, 0);
    let copies = vmstat(b"cow_copy").ok_or(())?;
    let reuses = vmstat(b"cow_reuse_large").ok_or(())?;
    for off in (0..len).step_by(PAGE as usize) {
        poke(a + off, off + 1);
    }
    let copied = vmstat(b"cow_copy").ok_or(())? - copies;
    let reused = vmstat(b"cow_reuse_large").ok_or(())? - reuses;
    println!("    {nr_folios} folios of 64 KiB: {reused} large reuses, {copied} copies");
    check_eq!(copied, 0);
    ensure!(reused >= nr_folios);
    check_eq!(unmap(raw, len + folio), Ok(()));
    Ok(())
}

fn pt_reclaim_vmpte_drops() -> TestResult {
    let path = b"/proc/sys/vm/pt_reclaim\0";
    let old = sysctl(path, 1).map_err(|_| ())?;
    let on = vmpte_after_dontneed();
    sysctl(path, 0).map_err(|_| ())?;
    let off = vmpte_after_dontneed();
    sysctl(path, old).map_err(|_| ())?;
    let (on, off) = (on?, off?);
    println!(
        "    VmPTE kB touched/after DONTNEED: reclaim on {}/{}, off {}/{}",
        on.0, on.1, off.0, off.1
    );
    // 8 MiB = 4 PTE tables of 4 KiB: reclaim frees them, no reclaim keeps them.
    ensure!(on.0 >= on.1 + 16);
    ensure!(off.1 >= off.0);
    Ok(())
}

/// Maps 8 MiB 2 MiB-aligned, touches every page, MADV_DONTNEEDs it all;
/// VmPTE (kB) after the touch and after the madvise.
fn vmpte_after_dontneed() -> Result<(u64, u64), ()> {
    const PMD: u64 = 2 * MIB;
    let len = 8 * MIB;
    let raw = anon(len + PMD, PROT_READ | PROT_WRITE).map_err(|_| ())?;
    let a = raw.next_multiple_of(PMD);
    for off in (0..len).step_by(PAGE as usize) {
        poke(a + off, 1);
    }
    let touched = status_kb(b"VmPTE:").ok_or(())?;
    dontneed(a, len).map_err(|_| ())?;
    let after = status_kb(b"VmPTE:").ok_or(())?;
    unmap(raw, len + PMD).map_err(|_| ())?;
    Ok((touched, after))
}

//! Time, identity, limits and randomness.
//!
//! Clocks: the monotonic ones count from boot (the TSC clock,
//! `time::now_ns`); `CLOCK_REALTIME` (and its coarse variant, `time`,
//! `gettimeofday`) is the CMOS RTC's wall time advanced by that clock
//! (`time::rtc::realtime_ns`). Resolution: 1 ns, the coarse clocks one
//! tick (4 ms at HZ = 250).

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use mm::errno::Errno;
use mm::pgtable::TASK_SIZE;

use super::{EINTR, EPERM, ESRCH, SysResult, mm_of};
use crate::process::signal::{self, RestartBlock};
use crate::process::{self, Process};
use crate::uaccess::{copy_from_user, copy_to_user, le64};
use crate::{sched, time};

/// Reads a `struct timespec` and checks it as Linux's `timespec64_valid`.
fn read_timespec(p: &Process, at: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    copy_from_user(&*mm_of(p)?, &mut b, at)?;
    let (sec, nsec) = (le64(&b, 0) as i64, le64(&b, 8) as i64);
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64))
}

fn timespec_bytes(ns: u64) -> [u8; 16] {
    let mut ts = [0u8; 16];
    ts[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    ts[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    ts
}

pub fn sys_nanosleep(p: &Process, req: u64, rem: u64) -> SysResult {
    let ns = read_timespec(p, req)?;
    do_nanosleep(p, time::now_ns().saturating_add(ns), rem)
}

/// Sleeps until `deadline_ns`; interrupted by a signal, writes the time
/// left to `rmtp` (if not 0) and returns `ERESTART_RESTARTBLOCK`, whose
/// restart ([`sys_restart_syscall`]) sleeps on to the same deadline
/// (Linux's `hrtimer_nanosleep` and `nanosleep_restart`).
pub fn do_nanosleep(p: &Process, deadline_ns: u64, rmtp: u64) -> SysResult {
    if sched::sleep_until_interruptible(deadline_ns).is_ok() {
        return Ok(0);
    }
    if rmtp != 0 {
        let left = deadline_ns.saturating_sub(time::now_ns());
        copy_to_user(&*mm_of(p)?, rmtp, &timespec_bytes(left))?;
    }
    if let Some(t) = process::thread::current_thread() {
        t.sig.lock().restart = Some(RestartBlock::Nanosleep { deadline_ns, rmtp });
    }
    Err(signal::ERESTART_RESTARTBLOCK)
}

/// `restart_syscall()`: resumes what the last interrupted call left in
/// the restart block; `EINTR` if there is none (Linux's
/// `do_no_restart_syscall`).
pub fn sys_restart_syscall(p: &Process) -> SysResult {
    let block = process::thread::current_thread().and_then(|t| t.sig.lock().restart.take());
    match block {
        Some(RestartBlock::Nanosleep { deadline_ns, rmtp }) => do_nanosleep(p, deadline_ns, rmtp),
        Some(RestartBlock::FutexWait {
            uaddr,
            val,
            bitset,
            deadline_ns,
            shared,
        }) => process::futex::wait(&*mm_of(p)?, uaddr, val, Some(deadline_ns), bitset, shared),
        None => Err(EINTR),
    }
}

/// Clock ids: REALTIME 0, MONOTONIC 1, PROCESS_CPUTIME 2, THREAD_CPUTIME
/// 3, MONOTONIC_RAW 4, REALTIME_COARSE 5, MONOTONIC_COARSE 6, BOOTTIME 7.
fn clock_ns(clock: u64) -> Result<u64, Errno> {
    match clock {
        0 | 5 => Ok(time::rtc::realtime_ns()),
        1..=7 => Ok(time::now_ns()),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sys_clock_nanosleep(p: &Process, clock: u64, flags: u64, req: u64, rem: u64) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    if !matches!(clock, 0 | 1 | 7) {
        return Err(if clock <= 7 { Errno(95) } else { Errno::EINVAL }); // EOPNOTSUPP
    }
    let ns = read_timespec(p, req)?;
    if flags & TIMER_ABSTIME != 0 {
        // The deadline on the boot clock: the same distance away.
        let now = clock_ns(clock)?;
        let deadline = time::now_ns().saturating_add(ns.saturating_sub(now));
        // An absolute sleep restarts with its own arguments.
        return match sched::sleep_until_interruptible(deadline) {
            Ok(()) => Ok(0),
            Err(_) => Err(signal::ERESTARTNOHAND),
        };
    }
    do_nanosleep(p, time::now_ns().saturating_add(ns), rem)
}

pub fn sys_clock_gettime(p: &Process, clock: u64, tp: u64) -> SysResult {
    let ns = clock_ns(clock)?;
    copy_to_user(&*mm_of(p)?, tp, &timespec_bytes(ns))?;
    Ok(0)
}

pub fn sys_clock_getres(p: &Process, clock: u64, tp: u64) -> SysResult {
    clock_ns(clock)?;
    let res = if matches!(clock, 5 | 6) {
        time::TICK_NS
    } else {
        1
    };
    if tp != 0 {
        copy_to_user(&*mm_of(p)?, tp, &timespec_bytes(res))?;
    }
    Ok(0)
}

pub fn sys_gettimeofday(p: &Process, tv: u64, tz: u64) -> SysResult {
    let mm = mm_of(p)?;
    if tv != 0 {
        let ns = time::rtc::realtime_ns();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        copy_to_user(&mm, tv, &b)?;
    }
    if tz != 0 {
        copy_to_user(&mm, tz, &[0u8; 8])?;
    }
    Ok(0)
}

/// `uname`: six 65-byte fields.
pub fn sys_uname(p: &Process, buf: u64) -> SysResult {
    let mut u = [0u8; 65 * 6];
    let fields: [&str; 6] = [
        "Linux",
        "mmkernel",
        concat!("6.18.0-mmkernel-", env!("CARGO_PKG_VERSION")),
        "#1 SMP PREEMPT_DYNAMIC mmkernel (a Linux-faithful mm in Rust)",
        "x86_64",
        "(none)",
    ];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(64);
        u[i * 65..i * 65 + n].copy_from_slice(&f.as_bytes()[..n]);
    }
    copy_to_user(&*mm_of(p)?, buf, &u)?;
    Ok(0)
}

/// A `struct rusage` (144 bytes) with `ru_minflt` set, `ru_majflt` 0
/// (no page is ever read from a device here).
pub fn rusage_bytes(minflt: u64) -> [u8; 144] {
    let mut b = [0u8; 144];
    b[64..72].copy_from_slice(&minflt.to_le_bytes());
    b
}

pub fn sys_getrusage(p: &Process, who: i64, ru: u64) -> SysResult {
    const RUSAGE_SELF: i64 = 0;
    const RUSAGE_CHILDREN: i64 = -1;
    const RUSAGE_THREAD: i64 = 1;
    let minflt = match who {
        RUSAGE_SELF | RUSAGE_THREAD => p.min_flt.load(Ordering::Relaxed),
        RUSAGE_CHILDREN => p.cmin_flt.load(Ordering::Relaxed),
        _ => return Err(Errno::EINVAL),
    };
    let mut b = rusage_bytes(minflt);
    if who != RUSAGE_CHILDREN {
        // ru_maxrss in kB: the resident size now (no high-water mark kept).
        let rss = p.mm().map_or(0, |mm| mm.status().vm_rss);
        b[32..40].copy_from_slice(&rss.to_le_bytes());
    }
    copy_to_user(&*mm_of(p)?, ru, &b)?;
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)` (also `getrlimit`): this process
/// only (pid 0 or its own), resources 0..16; a new soft limit above the
/// hard one is EINVAL. The values are recorded; none is enforced.
pub fn sys_prlimit64(p: &Process, pid: i32, res: u64, new: u64, old: u64) -> SysResult {
    if pid != 0 && pid as u32 != p.pid {
        return Err(ESRCH);
    }
    if res >= 16 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let new = if new != 0 {
        let mut b = [0u8; 16];
        copy_from_user(&mm, &mut b, new)?;
        let (cur, max) = (le64(&b, 0), le64(&b, 8));
        if cur > max {
            return Err(Errno::EINVAL);
        }
        Some((cur, max))
    } else {
        None
    };
    let prev = {
        let mut l = p.rlimits.lock();
        let prev = l[res as usize];
        if let Some(n) = new {
            l[res as usize] = n;
        }
        prev
    };
    if old != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&prev.0.to_le_bytes());
        b[8..].copy_from_slice(&prev.1.to_le_bytes());
        copy_to_user(&mm, old, &b)?;
    }
    Ok(0)
}

/// `arch_prctl(code, addr)`: the FS base (the thread pointer of TLS).
/// `ARCH_SET_GS`/`ARCH_GET_GS` are refused (EINVAL): the kernel keeps
/// its per-CPU base in GS in user mode too (no `swapgs`, arch entry).
pub fn sys_arch_prctl(p: &Process, code: u64, addr: u64) -> SysResult {
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    match code {
        ARCH_SET_FS => {
            if addr >= TASK_SIZE {
                return Err(EPERM);
            }
            sched::set_fs_base(addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            let fs = sched::with_current(|t| t.fs_base());
            copy_to_user(&*mm_of(p)?, addr, &fs.to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The task of thread `pid` for the affinity calls (Linux's
/// `find_process_by_pid`: 0 is the caller; ESRCH for no such thread).
fn affinity_task(pid: i32) -> Result<Arc<sched::Task>, Errno> {
    let thread = match pid {
        0 => process::thread::current_thread(),
        1.. => process::find_thread(pid as u32),
        _ => None,
    };
    thread.and_then(|t| t.task()).ok_or(ESRCH)
}

/// Bytes of a CPU mask (Linux's `cpumask_size()`: `nr_cpu_ids` bits in
/// whole longs).
fn cpumask_size() -> u64 {
    (crate::percpu::nr_possible_cpus() as u64).div_ceil(64) * 8
}

/// `sched_getaffinity(pid, len, mask)`: the thread's allowed CPUs that are
/// active (Linux: `p->cpus_mask & cpu_active_mask`); returns the bytes
/// written, `min(len, cpumask_size())`. EINVAL if `len` holds fewer bits
/// than `nr_cpu_ids` or is not a multiple of 8.
pub fn sys_sched_getaffinity(p: &Process, pid: i32, len: u64, mask: u64) -> SysResult {
    if len.saturating_mul(8) < crate::percpu::nr_possible_cpus() as u64 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let task = affinity_task(pid)?;
    let bits = task.cpus_allowed() & crate::percpu::cpu_active_mask();
    let n = len.min(cpumask_size());
    let bytes = bits.to_le_bytes();
    let mut m = alloc::vec![0u8; n as usize];
    let k = m.len().min(bytes.len());
    m[..k].copy_from_slice(&bytes[..k]);
    copy_to_user(&*mm_of(p)?, mask, &m)?;
    Ok(n)
}

/// `sched_setaffinity(pid, len, mask)` (Linux's order of checks): the
/// mask is read first (`len` cut to `cpumask_size()`, a shorter one
/// zero-extended; EFAULT), then the thread found (ESRCH); EINVAL for a
/// per-CPU kernel thread or a mask with no active CPU. A thread running
/// on a CPU it may no longer use moves before the call returns (the
/// caller) or at its next switch (another thread).
pub fn sys_sched_setaffinity(p: &Process, pid: i32, len: u64, mask: u64) -> SysResult {
    let mut m = [0u8; 8];
    let n = len.min(cpumask_size()) as usize;
    copy_from_user(&*mm_of(p)?, &mut m[..n], mask)?;
    let task = affinity_task(pid)?;
    sched::set_cpus_allowed(&task, u64::from_le_bytes(m))
        .map(|()| 0)
        .map_err(|_| Errno::EINVAL)
}

/// `getcpu(cpu, node, tcache)`: the CPU the caller runs on (it may have
/// moved by the time it reads it, as on Linux) and node 0; either pointer
/// may be null; `tcache` is ignored, as since Linux 2.6.24.
pub fn sys_getcpu(p: &Process, cpu: u64, node: u64) -> SysResult {
    let mm = mm_of(p)?;
    let here = crate::percpu::cpu_id();
    if cpu != 0 {
        copy_to_user(&mm, cpu, &here.to_le_bytes())?;
    }
    if node != 0 {
        copy_to_user(&mm, node, &0u32.to_le_bytes())?;
    }
    Ok(0)
}

/// `getrandom(buf, len, flags)`: never blocks (the generator is always
/// ready); a fault after some bytes returns the count written.
pub fn sys_getrandom(p: &Process, buf: u64, len: u64, flags: u64) -> SysResult {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    let len = len.min(i32::MAX as u64);
    let mm = mm_of(p)?;
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        crate::random::fill(&mut chunk[..n]);
        if let Err(e) = copy_to_user(&mm, buf.wrapping_add(done), &chunk[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as u64;
    }
    Ok(done)
}

/// `time(tloc)`: seconds of `CLOCK_REALTIME`, also stored at `tloc` if
/// not NULL (`EFAULT` if it cannot be).
pub fn sys_time(p: &Process, tloc: u64) -> SysResult {
    let secs = clock_ns(0)? / 1_000_000_000;
    if tloc != 0 {
        copy_to_user(&*mm_of(p)?, tloc, &secs.to_le_bytes())?;
    }
    Ok(secs)
}

/// `prctl(option, arg2, ..)` (Linux's `kernel/sys.c`): the name
/// (`PR_SET_NAME`: the first 15 bytes of a string, `PR_GET_NAME`: 16 bytes
/// with the NUL padding) and the dumpable flag (always 1 here: no
/// set-uid programs, and `PR_SET_DUMPABLE` takes 0 or 1 and changes
/// nothing else), memory-deny-write-execute (`PR_SET_MDWE` /
/// `PR_GET_MDWE`, `prctl_set_mdwe()`: the bits can be added once and
/// never taken back, EPERM; `NO_INHERIT` needs `REFUSE_EXEC_GAIN`; unused
/// arguments must be 0). Other options: `EINVAL`, Linux's answer for an
/// unknown one.
pub fn sys_prctl(p: &Process, option: u64, arg2: u64, rest: [u64; 3]) -> SysResult {
    use mm::vm::MmFlags;
    const PR_SET_MDWE: u64 = 65;
    const PR_GET_MDWE: u64 = 66;
    const PR_MDWE_REFUSE_EXEC_GAIN: u64 = 1;
    const PR_MDWE_NO_INHERIT: u64 = 2;
    let mdwe_bits = |f: MmFlags| {
        let mut bits = 0;
        if f.contains(MmFlags::HAS_MDWE) {
            bits |= PR_MDWE_REFUSE_EXEC_GAIN;
        }
        if f.contains(MmFlags::HAS_MDWE_NO_INHERIT) {
            bits |= PR_MDWE_NO_INHERIT;
        }
        bits
    };
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const TASK_COMM_LEN: usize = process::TASK_COMM_LEN;
    match option {
        PR_SET_NAME => {
            // strncpy_from_user of TASK_COMM_LEN - 1 bytes: a longer
            // string is cut, an unterminated one too.
            let mut name = [0u8; TASK_COMM_LEN];
            let mm = mm_of(p)?;
            let mut n = 0;
            while n < TASK_COMM_LEN - 1 {
                copy_from_user(&mm, &mut name[n..n + 1], arg2.wrapping_add(n as u64))?;
                if name[n] == 0 {
                    break;
                }
                n += 1;
            }
            p.set_comm(&name[..n]);
            Ok(0)
        }
        PR_GET_NAME => {
            let mut name = [0u8; TASK_COMM_LEN];
            let comm = p.comm();
            let n = comm.len().min(TASK_COMM_LEN - 1);
            name[..n].copy_from_slice(&comm.as_bytes()[..n]);
            copy_to_user(&*mm_of(p)?, arg2, &name)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE if arg2 <= 1 => Ok(0),
        PR_SET_MDWE => {
            let bits = arg2;
            if rest != [0; 3]
                || bits & !(PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT) != 0
                || (bits & PR_MDWE_NO_INHERIT != 0 && bits & PR_MDWE_REFUSE_EXEC_GAIN == 0)
            {
                return Err(Errno::EINVAL);
            }
            let mm = mm_of(p)?;
            let current = mdwe_bits(mm.mm_flags());
            if current != 0 && current != bits {
                return Err(EPERM);
            }
            let mut f = MmFlags::empty();
            if bits & PR_MDWE_NO_INHERIT != 0 {
                f |= MmFlags::HAS_MDWE_NO_INHERIT;
            }
            if bits & PR_MDWE_REFUSE_EXEC_GAIN != 0 {
                f |= MmFlags::HAS_MDWE;
            }
            mm.set_mm_flags(f);
            Ok(0)
        }
        PR_GET_MDWE => {
            if arg2 != 0 || rest != [0; 3] {
                return Err(Errno::EINVAL);
            }
            Ok(mdwe_bits(mm_of(p)?.mm_flags()))
        }
        _ => Err(Errno::EINVAL),
    }
}

//! Signals (bookkeeping), time, identity, limits and randomness.
//!
//! Clocks: every clock counts from boot (the TSC clock, `time::now_ns`);
//! `CLOCK_REALTIME` is the Unix epoch plus that, since the kernel reads no
//! RTC. Resolution: 1 ns, the coarse clocks one tick (4 ms at HZ = 250).

use core::sync::atomic::Ordering;

use mm::errno::Errno;
use mm::pgtable::TASK_SIZE;

use super::{EINTR, EPERM, ESRCH, SysResult, mm_of};
use crate::process::signal::{self, SIG_DFL, SIG_IGN, SigAction};
use crate::process::{self, Process};
use crate::uaccess::{copy_from_user, copy_to_user, le64};
use crate::{sched, time};

/// The sigset size the rt_ calls take (`sizeof(sigset_t)` in the kernel).
const SIGSET_BYTES: u64 = 8;

fn read_u64(p: &Process, at: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_user(&*mm_of(p)?, &mut b, at)?;
    Ok(u64::from_le_bytes(b))
}

pub fn sys_rt_sigaction(p: &Process, sig: u64, act: u64, oact: u64, size: u64) -> SysResult {
    if size != SIGSET_BYTES || sig == 0 || sig > signal::NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    let new = if act != 0 {
        let mut b = [0u8; 32];
        copy_from_user(&*mm_of(p)?, &mut b, act)?;
        Some(SigAction::from_bytes(&b))
    } else {
        None
    };
    // SIGKILL and SIGSTOP cannot be caught or ignored.
    if new.is_some() && (sig as u32 == signal::SIGKILL || sig as u32 == signal::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let old = {
        let mut s = p.signals.lock();
        let slot = &mut s.actions[sig as usize - 1];
        let old = *slot;
        if let Some(mut a) = new {
            // SIGKILL and SIGSTOP can never be blocked by sa_mask either.
            a.mask &= !((1 << (signal::SIGKILL - 1)) | (1 << (signal::SIGSTOP - 1)));
            *slot = a;
        }
        old
    };
    if oact != 0 {
        copy_to_user(&*mm_of(p)?, oact, &old.to_bytes())?;
    }
    Ok(0)
}

pub fn sys_rt_sigprocmask(p: &Process, how: u64, set: u64, oset: u64, size: u64) -> SysResult {
    const SIG_BLOCK: u64 = 0;
    const SIG_UNBLOCK: u64 = 1;
    const SIG_SETMASK: u64 = 2;
    if size != SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let new = if set != 0 {
        if how > SIG_SETMASK {
            return Err(Errno::EINVAL);
        }
        Some(read_u64(p, set)?)
    } else {
        None
    };
    let old = {
        let mut s = p.signals.lock();
        let old = s.blocked;
        if let Some(m) = new {
            let unblockable = (1 << (signal::SIGKILL - 1)) | (1 << (signal::SIGSTOP - 1));
            s.blocked = match how {
                SIG_BLOCK => old | m,
                SIG_UNBLOCK => old & !m,
                _ => m,
            } & !unblockable;
        }
        old
    };
    if oset != 0 {
        copy_to_user(&*mm_of(p)?, oset, &old.to_le_bytes())?;
    }
    Ok(0)
}

pub fn sys_sigaltstack(p: &Process, ss: u64, old: u64) -> SysResult {
    let current = p.signals.lock().altstack;
    if ss != 0 {
        let mut b = [0u8; 24];
        copy_from_user(&*mm_of(p)?, &mut b, ss)?;
        let (sp, flags, size) = (le64(&b, 0), le64(&b, 8) as u32, le64(&b, 16));
        let mode = flags & !signal::SS_AUTODISARM;
        if mode != signal::SS_DISABLE && mode != signal::SS_ONSTACK && mode != 0 {
            return Err(Errno::EINVAL);
        }
        let new = if mode == signal::SS_DISABLE {
            (0, signal::SS_DISABLE, 0)
        } else {
            if size < signal::MINSIGSTKSZ {
                return Err(Errno(12)); // ENOMEM
            }
            (sp, flags & signal::SS_AUTODISARM, size)
        };
        p.signals.lock().altstack = new;
    }
    if old != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&current.0.to_le_bytes());
        b[8..12].copy_from_slice(&current.1.to_le_bytes());
        b[16..24].copy_from_slice(&current.2.to_le_bytes());
        copy_to_user(&*mm_of(p)?, old, &b)?;
    }
    Ok(0)
}

/// Signals whose default action is to do nothing (or stop/continue, which
/// single-threaded processes here do not do).
fn default_ignored(sig: u32) -> bool {
    matches!(sig, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

/// `kill(pid, sig)`: `sig` 0 only checks that the target exists. A fatal
/// signal (default action or a handler: handlers do not run here) is
/// pending on the target until its next entry to or exit from the kernel;
/// an ignored one does nothing. `pid` -1 is every process but init and
/// the caller; 0 and other negative values (process groups: one group)
/// are every process.
pub fn sys_kill(p: &Process, pid: i32, sig: u64) -> SysResult {
    if sig > signal::NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    let sig = sig as u32;
    let targets: alloc::vec::Vec<u32> = match pid {
        0 => process::pids(),
        -1 => process::pids()
            .into_iter()
            .filter(|&q| q != 1 && q != p.pid)
            .collect(),
        i32::MIN => return Err(ESRCH),
        n if n < 0 => process::pids(),
        n => alloc::vec![n as u32],
    };
    let mut found = false;
    for t in targets {
        let Some(target) = process::find(t) else {
            continue;
        };
        found = true;
        if sig == 0 || default_ignored(sig) {
            continue;
        }
        let handler = target.signals.lock().actions[sig as usize - 1].handler;
        if handler == SIG_IGN && sig != signal::SIGKILL {
            continue;
        }
        let _ = SIG_DFL;
        let _ = target
            .pending_kill
            .compare_exchange(0, sig, Ordering::Relaxed, Ordering::Relaxed);
        target.signal_wait.wake_all();
        process::thread::wake_all_threads(&target);
    }
    if found { Ok(0) } else { Err(ESRCH) }
}

/// `pause()`: sleeps until a signal is pending (`kill` wakes the
/// process), then fails with `EINTR`; the signal takes effect on the way
/// out of the kernel (`check_pending_kill`: handlers do not run here, so
/// the process is killed, which is what Linux does for a signal without a
/// handler).
pub fn sys_pause(p: &Process) -> SysResult {
    p.signal_wait
        .wait_until_idle(process::thread::fatal_signal_pending);
    Err(EINTR)
}

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
    if !process::thread::sleep_killable_ns(ns) {
        return Err(EINTR);
    }
    if rem != 0 {
        // Never interrupted: nothing remains (Linux writes rem only on EINTR).
        let _ = rem;
    }
    Ok(0)
}

/// Clock ids: REALTIME 0, MONOTONIC 1, PROCESS_CPUTIME 2, THREAD_CPUTIME
/// 3, MONOTONIC_RAW 4, REALTIME_COARSE 5, MONOTONIC_COARSE 6, BOOTTIME 7.
fn clock_ns(clock: u64) -> Result<u64, Errno> {
    match clock {
        0..=7 => Ok(time::now_ns()),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sys_clock_nanosleep(p: &Process, clock: u64, flags: u64, req: u64, rem: u64) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    if !matches!(clock, 0 | 1 | 7) {
        return Err(if clock <= 7 { Errno(95) } else { Errno::EINVAL }); // EOPNOTSUPP
    }
    let ns = read_timespec(p, req)?;
    let wait = if flags & TIMER_ABSTIME != 0 {
        ns.saturating_sub(time::now_ns())
    } else {
        ns
    };
    if !process::thread::sleep_killable_ns(wait) {
        return Err(EINTR);
    }
    let _ = rem;
    Ok(0)
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
        let ns = time::now_ns();
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

/// `sched_getaffinity(pid, len, mask)`: the online CPUs; returns the
/// bytes written (Linux: `min(len, nr_cpu_ids rounded up to a long)`).
pub fn sys_sched_getaffinity(p: &Process, pid: i32, len: u64, mask: u64) -> SysResult {
    let cpus = crate::percpu::nr_online_cpus() as u64;
    let bytes = cpus.div_ceil(64) * 8;
    if len < bytes || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    if pid != 0 && process::find(pid as u32).is_none() {
        return Err(ESRCH);
    }
    let mut m = alloc::vec![0u8; bytes as usize];
    for c in 0..cpus {
        m[(c / 8) as usize] |= 1 << (c % 8);
    }
    copy_to_user(&*mm_of(p)?, mask, &m)?;
    Ok(bytes)
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

//! Interval timers (Linux's `kernel/time/itimer.c`, `alarm_setitimer`):
//! `ITIMER_REAL`, which sends SIGALRM to the process when its time comes
//! and re-arms itself by its interval; `alarm`, `setitimer`, `getitimer`.
//!
//! Armed timers sit in one list of `(pid, expiry, interval)`; the tick
//! (hard IRQ, as Linux's hrtimer callback `it_real_fn`) compares the clock
//! with the earliest expiry, kept in an atomic so that a tick with nothing
//! due costs one load, and sends SIGALRM (`SI_KERNEL`) for every entry
//! due, at tick resolution (up to 4 ms late). A periodic timer moves on
//! by whole intervals past now (`hrtimer_forward`: missed periods are not
//! queued, SIGALRM coalesces anyway). The timer belongs to the process,
//! not a thread; fork does not copy it, exec keeps it, the process's exit
//! disarms it. `ITIMER_VIRTUAL` and `ITIMER_PROF` count CPU time, which
//! this kernel does not account: `ENOSYS` for them.
//!
//! # Invariants
//!
//! - I1: each pid has at most one entry; an entry's expiry is non-zero.
//! - I2: [`EARLIEST`] is at most the smallest expiry in the list (`u64::MAX`
//!   when empty); it is lowered with the list locked and recomputed by
//!   whoever removes entries.
//!
//! # Locking
//!
//! [`TIMERS`] is a leaf spinlock (interrupts off): the tick drops it before
//! sending a signal.
//!
//! # Context
//!
//! [`tick`] runs in hard-IRQ context; the syscalls in process context.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::errno::Errno;

use super::signal::{self, SigInfo};
use super::{KMm, Process};
use crate::sync::SpinLock;
use crate::uaccess::{copy_from_user, copy_to_user, le64};

const ITIMER_REAL: u64 = 0;
const ITIMER_VIRTUAL: u64 = 1;
const ITIMER_PROF: u64 = 2;

const NSEC_PER_USEC: u64 = 1_000;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// One armed `ITIMER_REAL`.
#[derive(Clone, Copy)]
struct Timer {
    pid: u32,
    /// When it fires, on the boot clock (`time::now_ns`).
    expires_ns: u64,
    /// Its period (0: one shot).
    interval_ns: u64,
}

/// The armed timers (I1).
static TIMERS: SpinLock<Vec<Timer>> = SpinLock::new("itimers", Vec::new());

/// The earliest expiry (I2).
static EARLIEST: AtomicU64 = AtomicU64::new(u64::MAX);

/// Hooks the timers to the tick (once, at boot).
pub fn init() {
    crate::time::register_tick_hook(tick).expect("a free tick hook slot");
}

/// Recomputes [`EARLIEST`] from the locked list (I2).
fn update_earliest(timers: &[Timer]) {
    let e = timers
        .iter()
        .map(|t| t.expires_ns)
        .min()
        .unwrap_or(u64::MAX);
    EARLIEST.store(e, Ordering::Release);
}

/// The tick: SIGALRM to every process whose timer is due; periodic ones
/// move on (hard IRQ).
fn tick() {
    let now = crate::time::now_ns();
    if now < EARLIEST.load(Ordering::Acquire) {
        return;
    }
    let mut due = [0u32; 8];
    loop {
        let mut n = 0;
        {
            let mut timers = TIMERS.lock();
            let mut i = 0;
            while i < timers.len() && n < due.len() {
                let t = &mut timers[i];
                if t.expires_ns > now {
                    i += 1;
                    continue;
                }
                due[n] = t.pid;
                n += 1;
                // Periods gone by since it was due (none: a one-shot timer).
                match (now - t.expires_ns).checked_div(t.interval_ns) {
                    Some(missed) => {
                        t.expires_ns = t
                            .expires_ns
                            .saturating_add((missed + 1).saturating_mul(t.interval_ns));
                        i += 1;
                    }
                    None => {
                        timers.swap_remove(i);
                    }
                }
            }
            update_earliest(&timers);
        }
        for &pid in &due[..n] {
            if let Some(p) = super::find(pid) {
                let _ = signal::send_signal(&p, SigInfo::kernel(signal::SIGALRM), None, false);
            }
        }
        if n < due.len() {
            return;
        }
    }
}

/// The remaining time and interval of `pid`'s timer, in ns (0, 0: not
/// armed). An expired one still pending reads as 1 us, as Linux's
/// `itimer_get_remtime`.
fn get(pid: u32, now: u64) -> (u64, u64) {
    TIMERS
        .lock()
        .iter()
        .find(|t| t.pid == pid)
        .map_or((0, 0), |t| {
            (
                t.expires_ns.saturating_sub(now).max(NSEC_PER_USEC),
                t.interval_ns,
            )
        })
}

/// Arms (`value_ns` non-zero) or disarms `pid`'s timer; returns the old
/// (remaining, interval).
fn set(pid: u32, value_ns: u64, interval_ns: u64) -> (u64, u64) {
    let now = crate::time::now_ns();
    let mut timers = TIMERS.lock();
    let old = timers.iter().position(|t| t.pid == pid).map(|i| {
        let t = timers.swap_remove(i);
        (
            t.expires_ns.saturating_sub(now).max(NSEC_PER_USEC),
            t.interval_ns,
        )
    });
    if value_ns != 0 {
        timers.push(Timer {
            pid,
            expires_ns: now.saturating_add(value_ns),
            interval_ns,
        });
    }
    update_earliest(&timers);
    old.unwrap_or((0, 0))
}

/// Disarms the timer of exiting `p` (`exit_itimers`).
pub fn exit(p: &Process) {
    let mut timers = TIMERS.lock();
    if timers.iter().any(|t| t.pid == p.pid) {
        timers.retain(|t| t.pid != p.pid);
        update_earliest(&timers);
    }
}

/// A `struct timeval` as ns (`EINVAL` unless `tv_sec >= 0` and
/// `0 <= tv_usec < 1000000`, Linux's `timeval_valid`).
fn timeval_ns(b: &[u8], at: usize) -> Result<u64, Errno> {
    let (sec, usec) = (le64(b, at) as i64, le64(b, at + 8) as i64);
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(usec as u64 * NSEC_PER_USEC))
}

/// `struct itimerval { it_interval; it_value; }` bytes of (value, interval).
fn itimerval_bytes(value_ns: u64, interval_ns: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, ns) in [interval_ns, value_ns].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
        b[i * 16 + 8..i * 16 + 16]
            .copy_from_slice(&((ns % NSEC_PER_SEC) / NSEC_PER_USEC).to_le_bytes());
    }
    b
}

/// `which` checked as `do_getitimer`/`do_setitimer`: `EINVAL` unknown,
/// `ENOSYS` for the CPU-time timers this kernel cannot run.
fn check_which(which: u64) -> Result<(), Errno> {
    // An int: the upper half of the register is not looked at.
    match which as u32 as u64 {
        ITIMER_REAL => Ok(()),
        ITIMER_VIRTUAL | ITIMER_PROF => Err(Errno::ENOSYS),
        _ => Err(Errno::EINVAL),
    }
}

/// `getitimer(which, curr)`.
pub fn sys_getitimer(p: &Process, mm: &KMm, which: u64, curr: u64) -> Result<u64, Errno> {
    check_which(which)?;
    let (value, interval) = get(p.pid, crate::time::now_ns());
    copy_to_user(mm, curr, &itimerval_bytes(value, interval))?;
    Ok(0)
}

/// `setitimer(which, value, ovalue)`: the new value is read and checked
/// first (`EFAULT`, `EINVAL`; NULL disarms, as Linux after its warning),
/// then `which`; the old one is written to `ovalue` if given.
pub fn sys_setitimer(
    p: &Process,
    mm: &KMm,
    which: u64,
    value: u64,
    ovalue: u64,
) -> Result<u64, Errno> {
    let (new_value, new_interval) = if value == 0 {
        (0, 0)
    } else {
        let mut b = [0u8; 32];
        copy_from_user(mm, &mut b, value)?;
        let interval = timeval_ns(&b, 0)?;
        (timeval_ns(&b, 16)?, interval)
    };
    check_which(which)?;
    let (old_value, old_interval) = set(p.pid, new_value, new_interval);
    if ovalue != 0 {
        copy_to_user(mm, ovalue, &itimerval_bytes(old_value, old_interval))?;
    }
    Ok(0)
}

/// `alarm(seconds)`: a one-shot `ITIMER_REAL`; returns the seconds that
/// were left of the previous one, rounded to the nearest, and at least 1
/// if one was pending (`alarm_setitimer`).
pub fn sys_alarm(p: &Process, seconds: u64) -> u64 {
    let seconds = seconds as u32 as u64;
    let (old, _) = set(p.pid, seconds * NSEC_PER_SEC, 0);
    let (sec, usec) = (old / NSEC_PER_SEC, (old % NSEC_PER_SEC) / NSEC_PER_USEC);
    if (sec == 0 && usec != 0) || usec >= 500_000 {
        sec + 1
    } else {
        sec
    }
}

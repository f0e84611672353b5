//! The signal system calls (Linux's `kernel/signal.c` syscall half):
//! `rt_sigaction`, `rt_sigprocmask`, `rt_sigpending`, `rt_sigsuspend`,
//! `pause`, `rt_sigtimedwait`, `sigaltstack`, `kill`, `tkill`, `tgkill`,
//! `rt_sigqueueinfo`, `rt_tgsigqueueinfo`. `rt_sigreturn` is
//! `arch::signal`'s; `restart_syscall` is `misc`'s (its one restart
//! block is a sleep).

use mm::errno::Errno;

use super::{EPERM, ESRCH, SysResult, mm_of};
use crate::process::signal::{
    self, ERESTARTNOHAND, MINSIGSTKSZ, NSIG, SI_QUEUE, SI_TKILL, SI_USER, SS_AUTODISARM,
    SS_DISABLE, SS_ONSTACK, SigAction, SigInfo, UNBLOCKABLE,
};
use crate::process::thread::Thread;
use crate::process::{self, Process};
use crate::time;
use crate::uaccess::{copy_from_user, copy_to_user, le64};

/// The sigset size the rt_ calls take (`sizeof(sigset_t)` in the kernel).
const SIGSET_BYTES: u64 = 8;
const EAGAIN: Errno = Errno::EAGAIN;

fn read_u64(p: &Process, at: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_user(&*mm_of(p)?, &mut b, at)?;
    Ok(u64::from_le_bytes(b))
}

/// The calling thread (every caller here runs one).
fn current_thread() -> Result<alloc::sync::Arc<Thread>, Errno> {
    process::thread::current_thread().ok_or(ESRCH)
}

fn valid_sig(sig: u64) -> Result<u32, Errno> {
    if sig == 0 || sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

/// `rt_sigaction(sig, act, oact, sigsetsize)`.
pub fn sys_rt_sigaction(p: &Process, sig: u64, act: u64, oact: u64, size: u64) -> SysResult {
    if size != SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let sig = valid_sig(sig)?;
    let new = if act != 0 {
        let mut b = [0u8; 32];
        copy_from_user(&*mm_of(p)?, &mut b, act)?;
        Some(SigAction::from_bytes(&b))
    } else {
        None
    };
    // SIGKILL and SIGSTOP cannot be caught or ignored.
    if new.is_some() && signal::sigmask(sig) & UNBLOCKABLE != 0 {
        return Err(Errno::EINVAL);
    }
    let old = signal::set_action(p, sig, new);
    if oact != 0 {
        copy_to_user(&*mm_of(p)?, oact, &old.to_bytes())?;
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oset, sigsetsize)`.
pub fn sys_rt_sigprocmask(p: &Process, how: u64, set: u64, oset: u64, size: u64) -> SysResult {
    let t = current_thread()?;
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
    let old = signal::blocked(&t);
    if let Some(m) = new {
        let mask = match how {
            SIG_BLOCK => old | m,
            SIG_UNBLOCK => old & !m,
            _ => m,
        };
        signal::set_blocked(&t, mask);
    }
    if oset != 0 {
        copy_to_user(&*mm_of(p)?, oset, &old.to_le_bytes())?;
    }
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`: the pending signals that are
/// blocked (the others were delivered).
pub fn sys_rt_sigpending(p: &Process, set: u64, size: u64) -> SysResult {
    let t = current_thread()?;
    if size > SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let pending = signal::pending(&t) & signal::blocked(&t);
    copy_to_user(&*mm_of(p)?, set, &pending.to_le_bytes()[..size as usize])?;
    Ok(0)
}

/// `pause()`: sleeps until a signal is delivered; `ERESTARTNOHAND` (so
/// `EINTR` after a handler, a restart if the signal was ignored).
pub fn sys_pause(p: &Process) -> SysResult {
    let _ = p.stop_wait.wait_until_interruptible(|| false);
    Err(ERESTARTNOHAND)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` as the blocked
/// set until a signal is delivered; the old mask comes back after the
/// handler (the frame holds it) or on the way out.
pub fn sys_rt_sigsuspend(p: &Process, mask: u64, size: u64) -> SysResult {
    let t = current_thread()?;
    if size != SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let mask = read_u64(p, mask)?;
    let old = signal::blocked(&t);
    t.sig.lock().saved_mask = Some(old);
    signal::set_blocked(&t, mask);
    let _ = p.stop_wait.wait_until_interruptible(|| false);
    Err(ERESTARTNOHAND)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a pending
/// signal of `set` without running its handler, waiting for one (at most
/// `timeout`, if not NULL): returns its number; `EAGAIN` on timeout,
/// `EINTR` if another signal interrupts.
pub fn sys_rt_sigtimedwait(p: &Process, set: u64, info: u64, timeout: u64, size: u64) -> SysResult {
    let t = current_thread()?;
    if size != SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let set = read_u64(p, set)? & !UNBLOCKABLE;
    let deadline = if timeout != 0 {
        let mut b = [0u8; 16];
        copy_from_user(&*mm_of(p)?, &mut b, timeout)?;
        let (sec, nsec) = (le64(&b, 0) as i64, le64(&b, 8) as i64);
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::EINVAL);
        }
        let ns = (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as u64);
        time::now_ns().saturating_add(ns)
    } else {
        u64::MAX
    };
    let mut got = signal::dequeue_from(&t, set);
    if got.is_none() {
        // Unblock the awaited signals while sleeping (Linux: blocked &=
        // ~set, restored after), so their arrival wakes us.
        let old = signal::blocked(&t);
        signal::set_blocked(&t, old & !set);
        let _ = p
            .stop_wait
            .wait_until_interruptible_deadline(|| false, deadline);
        signal::set_blocked(&t, old);
        got = signal::dequeue_from(&t, set);
        if got.is_none() {
            let timed_out = deadline != u64::MAX && time::now_ns() >= deadline;
            return Err(if timed_out { EAGAIN } else { super::EINTR });
        }
    }
    let got = got.unwrap_or_default();
    if info != 0 {
        copy_to_user(&*mm_of(p)?, info, &got.to_bytes())?;
    }
    Ok(u64::from(got.signo))
}

/// `sigaltstack(ss, old_ss)`.
pub fn sys_sigaltstack(p: &Process, sp: u64, ss: u64, old: u64) -> SysResult {
    let t = current_thread()?;
    let current = t.sig.lock().altstack;
    if ss != 0 {
        let mut b = [0u8; 24];
        copy_from_user(&*mm_of(p)?, &mut b, ss)?;
        set_altstack(&t, sp, le64(&b, 0), le64(&b, 8) as u32, le64(&b, 16))?;
    }
    if old != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&current.sp.to_le_bytes());
        b[8..12].copy_from_slice(&current.ss_flags(sp).to_le_bytes());
        b[16..24].copy_from_slice(&current.size.to_le_bytes());
        copy_to_user(&*mm_of(p)?, old, &b)?;
    }
    Ok(0)
}

/// Sets the alternate stack (Linux's `do_sigaltstack`) for a thread whose
/// user stack pointer is `sp`: `EPERM` while running on the current one,
/// `EINVAL` for unknown flags, `ENOMEM` below `MINSIGSTKSZ`.
pub fn set_altstack(t: &Thread, sp: u64, ss_sp: u64, flags: u32, size: u64) -> Result<(), Errno> {
    let mut t = t.sig.lock();
    if t.altstack.on_stack(sp) {
        return Err(EPERM);
    }
    let mode = flags & !SS_AUTODISARM;
    if mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0 {
        return Err(Errno::EINVAL);
    }
    t.altstack = if mode == SS_DISABLE {
        signal::AltStack::NONE
    } else {
        if size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        signal::AltStack {
            sp: ss_sp,
            size,
            flags: flags & SS_AUTODISARM,
        }
    };
    Ok(())
}

/// The processes `kill(pid, ..)` reaches: `pid` > 0 that one; -1 every
/// process but init and the caller; 0 and other negative values (process
/// groups: there is one) every process.
fn kill_targets(p: &Process, pid: i32) -> Result<alloc::vec::Vec<u32>, Errno> {
    Ok(match pid {
        0 => process::pids(),
        -1 => process::pids()
            .into_iter()
            .filter(|&q| q != 1 && q != p.pid)
            .collect(),
        i32::MIN => return Err(ESRCH),
        n if n < 0 => process::pids(),
        n => alloc::vec![n as u32],
    })
}

/// `kill(pid, sig)`: `sig` 0 only checks that the target exists.
pub fn sys_kill(p: &Process, pid: i32, sig: u64) -> SysResult {
    if sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    let mut found = false;
    for t in kill_targets(p, pid)? {
        let Some(target) = process::find_unreaped(t) else {
            continue;
        };
        found = true;
        // A zombie takes the signal and nothing happens.
        if sig != 0 && !process::has_exited(&target) {
            let info = SigInfo::user(sig as u32, SI_USER, p.pid);
            signal::send_signal(&target, info, None, false)?;
        }
    }
    if found { Ok(0) } else { Err(ESRCH) }
}

/// `tgkill(tgid, tid, sig)` (`tgid` None: `tkill`): to thread `tid`,
/// which must belong to process `tgid`.
pub fn sys_tgkill(p: &Process, tgid: Option<i64>, tid: i64, sig: u64) -> SysResult {
    if sig > NSIG as u64 || tid <= 0 || tgid.is_some_and(|g| g <= 0) {
        return Err(Errno::EINVAL);
    }
    let target = process::find_thread(tid as u32).ok_or(ESRCH)?;
    if tgid.is_some_and(|g| g != i64::from(target.process.pid)) {
        return Err(ESRCH);
    }
    if sig != 0 {
        let info = SigInfo::user(sig as u32, SI_TKILL, p.pid);
        signal::send_signal(&target.process, info, Some(&target), false)?;
    }
    Ok(0)
}

/// `rt_sigqueueinfo(pid, sig, info)` and `rt_tgsigqueueinfo` (`tid` Some):
/// sends the caller's `siginfo`; a process may not pose as the kernel or
/// `kill` (`si_code` >= 0, or `SI_TKILL`, to another process: EPERM).
pub fn sys_rt_sigqueueinfo(
    p: &Process,
    pid: i64,
    tid: Option<i64>,
    sig: u64,
    uinfo: u64,
) -> SysResult {
    let sig = valid_sig(sig).or_else(|e| if sig == 0 { Ok(0) } else { Err(e) })?;
    let mut b = [0u8; 128];
    copy_from_user(&*mm_of(p)?, &mut b, uinfo)?;
    let (target, thread) = match tid {
        Some(t) => {
            if pid <= 0 || t <= 0 {
                return Err(Errno::EINVAL);
            }
            let thread = process::find_thread(t as u32).ok_or(ESRCH)?;
            if i64::from(thread.process.pid) != pid {
                return Err(ESRCH);
            }
            (thread.process.clone(), Some(thread))
        }
        None if pid <= 0 => return Err(ESRCH),
        None => (process::find(pid as u32).ok_or(ESRCH)?, None),
    };
    let info = SigInfo::from_bytes(sig, &b);
    if (info.code >= 0 || info.code == SI_TKILL) && target.pid != p.pid {
        return Err(EPERM);
    }
    let _ = SI_QUEUE;
    if sig != 0 {
        signal::send_signal(&target, info, thread.as_ref(), false)?;
    }
    Ok(0)
}

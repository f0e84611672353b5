//! pidfds and the low-memory killer's calls: `pidfd_open` (Linux's
//! `kernel/pid.c`), `pidfd_send_signal` (`kernel/signal.c`), `poll` on a
//! pidfd (`pidfd_poll()`, in `fs.rs`'s `sys_poll`) and
//! `process_mrelease` (`mm/oom_kill.c`): after SIGKILL, the caller
//! unmaps the victim's private memory at once instead of waiting for its
//! threads to run their exit.
//!
//! A pidfd holds the [`Process`] it names: the process stays reachable
//! through it as a zombie and after it is reaped (then signals are
//! `ESRCH` and poll reports `POLLHUP` too).
//!
//! Not here: `PIDFD_THREAD` (6.9) pidfds of one thread (EINVAL),
//! `waitid(P_PIDFD)`, `pidfd_getfd`.
//!
//! # Context
//!
//! Task context; `process_mrelease` takes the victim's mmap lock for read
//! and may sleep in its zap.

use alloc::sync::Arc;

use mm::errno::Errno;

use super::fs::install;
use super::{EBADF, EPERM, ESRCH, SysResult, mm_of};
use crate::process::signal::{self, NSIG, SI_TKILL, SI_USER, SigInfo};
use crate::process::{self, OpenData, OpenFile, Process};
use crate::uaccess::copy_from_user;

/// `PIDFD_NONBLOCK` (`O_NONBLOCK`).
const PIDFD_NONBLOCK: u64 = 0o4000;
const O_RDWR: u32 = 2;

/// The process behind pidfd `fd` (`pidfd_get_pid()`): EBADF for a bad
/// descriptor or one that is not a pidfd.
fn pidfd_process(p: &Process, fd: i32) -> Result<Arc<Process>, Errno> {
    let files = p.files.lock();
    let f = usize::try_from(fd)
        .ok()
        .and_then(|i| files.get(i))
        .and_then(|f| f.as_ref())
        .ok_or(EBADF)?;
    match &f.data {
        OpenData::Pidfd(target) => Ok(target.clone()),
        _ => Err(EBADF),
    }
}

/// `pidfd_open(pid, flags)`: a close-on-exec descriptor naming process
/// `pid` (a zombie too). EINVAL for unknown flags, a pid below 1 or a
/// thread's id; ESRCH when nobody has the pid.
pub fn sys_pidfd_open(p: &Process, pid: i32, flags: u64) -> SysResult {
    if flags & !PIDFD_NONBLOCK != 0 || pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = match process::find_unreaped(pid as u32) {
        Some(t) => t,
        // A thread's id: not a thread-group leader (pidfd_prepare()).
        None if process::find_thread(pid as u32).is_some() => return Err(Errno::EINVAL),
        None => return Err(ESRCH),
    };
    install(
        p,
        OpenFile {
            data: OpenData::Pidfd(target),
            pos: 0,
            sysctl: None,
            cloexec: true,
            flags: O_RDWR | flags as u32,
            mode: 0o600,
        },
        0,
    )
}

/// `pidfd_send_signal(pidfd, sig, info, flags)`: `kill` through a
/// pidfd; `info` (if not NULL) as `rt_sigqueueinfo` takes it (its
/// `si_signo` must be `sig`; another process may not be sent a code
/// that claims the kernel or `tkill` sent it: EPERM). A zombie takes the
/// signal and drops it (0); a reaped process is ESRCH.
pub fn sys_pidfd_send_signal(p: &Process, fd: i32, sig: u64, uinfo: u64, flags: u64) -> SysResult {
    // The scope (6.9): at most one of the three bits.
    const PIDFD_SIGNAL_THREAD: u64 = 1;
    const PIDFD_SIGNAL_THREAD_GROUP: u64 = 2;
    const PIDFD_SIGNAL_PROCESS_GROUP: u64 = 4;
    const SCOPES: u64 =
        PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
    if flags & !SCOPES != 0 || flags.count_ones() > 1 {
        return Err(Errno::EINVAL);
    }
    if sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    let target = pidfd_process(p, fd)?;
    let info = if uinfo != 0 {
        let mut b = [0u8; 128];
        copy_from_user(&*mm_of(p)?, &mut b, uinfo)?;
        let signo = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if i64::from(signo) != sig as i64 {
            return Err(Errno::EINVAL);
        }
        let info = SigInfo::from_bytes(sig as u32, &b);
        if (info.code >= 0 || info.code == SI_TKILL) && target.pid != p.pid {
            return Err(EPERM);
        }
        info
    } else {
        SigInfo::user(sig as u32, SI_USER, p.pid)
    };
    if process::is_reaped(&target) {
        return Err(ESRCH);
    }
    if sig == 0 {
        return Ok(0);
    }
    match flags {
        // The thread the pidfd's pid names: the process's first thread.
        PIDFD_SIGNAL_THREAD => {
            let Some(t) = target.thread(target.pid) else {
                // Gone, or a zombie leader: nobody to take it.
                return if process::has_exited(&target) {
                    Ok(0)
                } else {
                    Err(ESRCH)
                };
            };
            signal::send_signal(&target, info, Some(&t), false)?;
        }
        // The process group: there is one (every process).
        PIDFD_SIGNAL_PROCESS_GROUP => {
            for pid in process::pids() {
                if let Some(q) = process::find(pid) {
                    signal::send_signal(&q, info, None, false)?;
                }
            }
        }
        _ => signal::send_signal(&target, info, None, false)?,
    }
    Ok(0)
}

/// `pidfd_poll()`'s events for a pidfd of `target`: readable once the
/// process has exited, hung up once it is reaped too.
pub fn pidfd_poll(target: &Arc<Process>) -> u16 {
    const POLLIN: u16 = 0x1;
    const POLLRDNORM: u16 = 0x40;
    const POLLHUP: u16 = 0x10;
    if process::is_reaped(target) {
        POLLIN | POLLRDNORM | POLLHUP
    } else if process::has_exited(target) {
        POLLIN | POLLRDNORM
    } else {
        0
    }
}

/// `process_mrelease(pidfd, flags)`: if the process is dying (a fatal
/// signal, `exit_group`) and nobody outside it keeps its address space,
/// unmaps its private memory now (`__oom_reap_task_mm()`); EINVAL for a
/// process that is not dying or for flags; ESRCH once it has no address
/// space (exited); EBADF for a descriptor that is not a pidfd.
pub fn sys_process_mrelease(p: &Process, fd: i32, flags: u64) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let target = pidfd_process(p, fd)?;
    if process::is_reaped(&target) {
        return Err(ESRCH);
    }
    let mm = target.mm().ok_or(ESRCH)?;
    if !process::will_free_mem(&target) {
        return Err(Errno::EINVAL);
    }
    let pages = mm.oom_reap();
    log::info!(
        "process_mrelease: {}[{}] reaped {} kB by {}[{}]",
        target.comm(),
        target.pid,
        pages * (mm::PAGE_SIZE >> 10),
        p.comm(),
        p.pid
    );
    Ok(0)
}

//! `process_vm_readv` / `process_vm_writev` (Linux's
//! `mm/process_vm_access.c`): copies between the caller's iovecs and
//! another process's address space, as a debugger or an MPI library
//! uses them.
//!
//! Linux's rules: `flags` must be 0 (EINVAL); both iovec arrays are read
//! and checked first (at most `UIO_MAXIOV` entries and no negative
//! length, EINVAL; an unreadable array EFAULT), a local total of 0 or
//! remote segments of 0 bytes return 0 before the pid is looked at; the
//! pid names a task (a thread's id too) that has an address space, else
//! ESRCH; the access check is `ptrace_may_access(PTRACE_MODE_ATTACH)`,
//! which every caller passes here (every process is root, as the host's
//! test runs). The remote memory is reached as `pin_user_pages_remote()`
//! without `FOLL_FORCE` reaches it: faulted in as an access of the remote
//! process would be (a write breaks its copy-on-write sharing), and
//! refused where its protections refuse (EFAULT). The result is the
//! bytes copied, or the error if none was.
//!
//! `/proc/PID/mem` ([`mem_rw`]) is here too: the same copy, but forced
//! (`FOLL_FORCE`), as Linux's `fs/proc/base.c` does it.
//!
//! # Context
//!
//! Task context; sleeps in faults of either address space. The remote
//! `Mm` is held by reference for the call, so its teardown waits.

use alloc::sync::Weak;
use alloc::vec::Vec;

use mm::PAGE_SIZE;
use mm::errno::Errno;

use super::{ESRCH, MAX_RW_COUNT, SysResult, mm_of};
use crate::process::{self, KMm, Process};
use crate::uaccess::{access_remote_vm, copy_from_user, copy_to_user, le64};

/// Most iovec entries per call (`UIO_MAXIOV`).
const UIO_MAXIOV: u64 = 1024;

/// Reads an iovec array of `cnt` entries at `iov` from `mm`
/// (`iovec_from_user()`): EINVAL above `UIO_MAXIOV` entries or for a
/// negative length, EFAULT for an unreadable array.
fn iovec_from_user(mm: &KMm, iov: u64, cnt: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if cnt > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let mut bytes = alloc::vec![0u8; cnt as usize * 16];
    copy_from_user(mm, &mut bytes, iov)?;
    let mut out = Vec::with_capacity(cnt as usize);
    for c in bytes.chunks(16) {
        let (base, len) = (le64(c, 0), le64(c, 8));
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push((base, len));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
/// `process_vm_rw()`: `write` false reads the remote memory into the
/// local buffers, true writes the local buffers into it.
pub fn sys_process_vm_rw(
    p: &Process,
    pid: i32,
    lvec: u64,
    liovcnt: u64,
    rvec: u64,
    riovcnt: u64,
    flags: u64,
    write: bool,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let local_mm = mm_of(p)?;
    // import_iovec(): the local total is cut at MAX_RW_COUNT.
    let mut local = iovec_from_user(&local_mm, lvec, liovcnt)?;
    let mut total = 0u64;
    for seg in local.iter_mut() {
        seg.1 = seg.1.min(MAX_RW_COUNT - total);
        total += seg.1;
    }
    if total == 0 {
        return Ok(0);
    }
    let remote = iovec_from_user(&local_mm, rvec, riovcnt)?;
    if remote.iter().all(|&(_, len)| len == 0) {
        return Ok(0);
    }
    let target = u32::try_from(pid)
        .ok()
        .filter(|&pid| pid > 0)
        .and_then(|pid| {
            process::find(pid).or_else(|| process::find_thread(pid).map(|t| t.process.clone()))
        })
        .ok_or(ESRCH)?;
    // mm_access(): a task without an address space (exiting) is ESRCH.
    let remote_mm = target.mm().ok_or(ESRCH)?;
    drop(target);

    let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
    let mut done = 0u64;
    let mut li = local.iter().copied().filter(|s| s.1 > 0);
    let mut lseg = li.next();
    'remote: for (rbase, rlen) in remote {
        let mut roff = 0;
        while roff < rlen {
            let Some((lbase, llen)) = lseg else {
                break 'remote;
            };
            let raddr = rbase.wrapping_add(roff);
            let laddr = lbase;
            // A piece inside one page on both sides: all or nothing.
            let n = (rlen - roff)
                .min(llen)
                .min(PAGE_SIZE - raddr % PAGE_SIZE)
                .min(PAGE_SIZE - laddr % PAGE_SIZE);
            let chunk = &mut buf[..n as usize];
            let ok = if write {
                copy_from_user(&local_mm, chunk, laddr)
                    .and_then(|()| copy_to_user(&remote_mm, raddr, chunk))
            } else {
                copy_from_user(&remote_mm, chunk, raddr)
                    .and_then(|()| copy_to_user(&local_mm, laddr, chunk))
            };
            if let Err(e) = ok {
                if done == 0 {
                    return Err(e);
                }
                break 'remote;
            }
            done += n;
            roff += n;
            lseg = if n == llen {
                li.next()
            } else {
                Some((lbase + n, llen - n))
            };
        }
    }
    Ok(done)
}

/// `/proc/PID/mem` read or write of `count` bytes at address `pos`
/// (`mem_rw()`, `fs/proc/base.c`): page by page through
/// [`access_remote_vm`] with `FOLL_FORCE` (Linux's default
/// `proc_mem.force_override`), so a write into read-only private memory
/// lands in a private copy, as a debugger's breakpoint does. Returns the
/// result and the new position: 0 once the address space is gone, EIO if
/// the first page cannot be reached, EFAULT for a bad local buffer (even
/// after some bytes, as Linux).
pub fn mem_rw(
    p: &Process,
    mm: &Weak<KMm>,
    buf: u64,
    count: u64,
    pos: u64,
    write: bool,
) -> (SysResult, u64) {
    const EIO: Errno = Errno(5);
    let Some(target) = mm.upgrade() else {
        return (Ok(0), pos);
    };
    let local = match mm_of(p) {
        Ok(m) => m,
        Err(e) => return (Err(e), pos),
    };
    let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
    let (mut addr, mut done, mut left) = (pos, 0u64, count);
    while left > 0 {
        let n = left.min(PAGE_SIZE) as usize;
        let user = buf.wrapping_add(done);
        if write && copy_from_user(&local, &mut page[..n], user).is_err() {
            return (Err(Errno::EFAULT), addr);
        }
        let got = access_remote_vm(&target, addr, &mut page[..n], write);
        if got == 0 {
            return (if done == 0 { Err(EIO) } else { Ok(done) }, addr);
        }
        if !write && copy_to_user(&local, user, &page[..got]).is_err() {
            return (Err(Errno::EFAULT), addr);
        }
        addr += got as u64;
        done += got as u64;
        left -= got as u64;
    }
    (Ok(done), addr)
}

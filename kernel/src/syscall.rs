//! The system-call table (Linux's `arch/x86/entry/syscall_64.c`): Linux
//! x86_64 numbers and argument order, results in `rax`, errors as
//! `-errno`. Anything a user program passes is checked; a bad pointer
//! gives `-EFAULT` (`crate::uaccess`), never a kernel fault.
//!
//! | nr  | name           | notes                                          |
//! |-----|----------------|------------------------------------------------|
//! | 0   | read           | fd 0: end of file; opened `/proc` files        |
//! | 1   | write          | fd 1, 2: the console; `/proc/sys/vm` settings  |
//! | 2   | open           | `/proc` files (`process::procfs`)              |
//! | 3   | close          |                                                |
//! | 9   | mmap           | anonymous private mappings (`mm::vm`)          |
//! | 10  | mprotect       |                                                |
//! | 11  | munmap         |                                                |
//! | 12  | brk            |                                                |
//! | 24  | sched_yield    |                                                |
//! | 28  | madvise        |                                                |
//! | 39  | getpid         |                                                |
//! | 56  | clone          | a plain fork only (flags = exit signal)        |
//! | 57  | fork           | copy-on-write (`Mm::fork`)                     |
//! | 60  | exit           | (one thread per process: as exit_group)        |
//! | 61  | wait4          | WNOHANG; rusage reads as zeros                 |
//! | 110 | getppid        |                                                |
//! | 169 | reboot         | POWER_OFF/HALT/RESTART: ends init, powers off  |
//! | 228 | clock_gettime  | every clock reads the TSC clock since boot     |
//! | 231 | exit_group     |                                                |
//! | 257 | openat         | as open (absolute paths)                       |
//!
//! Any other number returns `-ENOSYS`; the first call of each number is
//! logged.
//!
//! # Context
//!
//! Entered from `arch::entry` with interrupts off on the task's kernel
//! stack; runs with interrupts on (preemptible, may sleep); reschedules if
//! asked before going back to user mode.

use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::errno::Errno;
use mm::vm::{MapFlags, MremapFlags, Prot};

use crate::arch::entry::PtRegs;
use crate::process::{self, ExitStatus, OpenFile, Process, procfs};
use crate::uaccess::{copy_from_user, copy_to_user, strncpy_from_user};
use crate::{percpu, sched, serial, time};

const ENOENT: Errno = Errno(2);

/// Most bytes one read or write moves (Linux's `MAX_RW_COUNT`).
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Longest path (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Numbers already logged as unknown: bit `nr` for `nr < 512`, bit 511 of
/// the last word standing for every larger number.
static ENOSYS_LOGGED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

type SysResult = Result<u64, Errno>;

/// Called by the `SYSCALL` entry with the saved user registers.
///
/// # Safety
///
/// `regs` points at the `PtRegs` frame the entry code just pushed on the
/// current task's kernel stack.
pub unsafe extern "C" fn do_syscall_64(regs: *mut PtRegs) {
    // SAFETY: by the contract: a valid, exclusive frame for this call.
    let regs = unsafe { &mut *regs };
    x86_64::instructions::interrupts::enable();
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let ret = match dispatch(regs, regs.orig_rax, args) {
        Ok(v) => v,
        Err(e) => (-(e.0 as i64)) as u64,
    };
    regs.rax = ret;
    if percpu::need_resched() {
        sched::schedule();
    }
    x86_64::instructions::interrupts::disable();
}

fn dispatch(regs: &PtRegs, nr: u64, a: [u64; 6]) -> SysResult {
    let Some(p) = process::current() else {
        panic!("BUG: syscall {nr} from a thread without a process");
    };
    match nr {
        0 => sys_read(&p, a[0], a[1], a[2]),
        1 => sys_write(&p, a[0], a[1], a[2]),
        2 => sys_openat(&p, a[0], a[1]),
        3 => sys_close(&p, a[0]),
        9 => sys_mmap(&p, a),
        10 => {
            let prot = Prot::from_bits(a[2]).ok_or(Errno::EINVAL)?;
            mm_of(&p)?.mprotect(a[0], a[1], prot).map(|()| 0)
        }
        11 => mm_of(&p)?.munmap(a[0], a[1]).map(|()| 0),
        12 => Ok(mm_of(&p)?.brk(a[0])),
        24 => {
            sched::yield_now();
            Ok(0)
        }
        25 => {
            let flags = MremapFlags::from_bits(a[3]).ok_or(Errno::EINVAL)?;
            mm_of(&p)?.mremap(a[0], a[1], a[2], flags, a[4])
        }
        28 => mm_of(&p)?.madvise(a[0], a[1], a[2] as i64).map(|()| 0),
        39 => Ok(p.pid as u64),
        56 => sys_clone(&p, regs, a),
        57 => process::fork(&p, regs).map(u64::from),
        61 => sys_wait4(&p, a),
        110 => Ok(u64::from(p.ppid())),
        60 | 231 => {
            drop(p);
            process::do_exit(ExitStatus::Exited(a[0] as i32))
        }
        169 => sys_reboot(p, a),
        228 => sys_clock_gettime(&p, a[0], a[1]),
        257 => sys_openat(&p, a[1], a[2]),
        _ => {
            log_enosys(&p, nr);
            Err(Errno::ENOSYS)
        }
    }
}

fn mm_of(p: &Process) -> Result<alloc::sync::Arc<process::KMm>, Errno> {
    p.mm().ok_or(Errno::EFAULT)
}

fn log_enosys(p: &Process, nr: u64) {
    let bit = nr.min(511);
    let word = &ENOSYS_LOGGED[(bit / 64) as usize];
    let mask = 1u64 << (bit % 64);
    if word.fetch_or(mask, Ordering::Relaxed) & mask == 0 {
        log::warn!(
            "{}[{}]: unknown syscall {nr}: -ENOSYS (logged once)",
            p.comm,
            p.pid
        );
    }
}

fn sys_write(p: &Process, fd: u64, buf: u64, count: u64) -> SysResult {
    if fd != 1 && fd != 2 {
        return sys_write_file(p, fd, buf, count);
    }
    let mm = mm_of(p)?;
    let count = count.min(MAX_RW_COUNT);
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        if let Err(e) = copy_from_user(&mm, &mut chunk[..n], buf.wrapping_add(done)) {
            // Linux: a partial write returns what was written.
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        serial::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    Ok(done)
}

fn sys_read(p: &Process, fd: u64, buf: u64, count: u64) -> SysResult {
    if fd == 0 {
        return Ok(0);
    }
    let mm = mm_of(p)?;
    let count = count.min(MAX_RW_COUNT) as usize;
    // Copy out of the snapshot outside the files lock: uaccess may sleep.
    let (bytes, pos) = {
        let files = p.files.lock();
        let file = fd
            .checked_sub(3)
            .and_then(|i| files.get(i as usize))
            .and_then(|f| f.as_ref())
            .ok_or(Errno::EBADF)?;
        let end = file.data.len().min(file.pos.saturating_add(count));
        (vec::Vec::from(&file.data[file.pos.min(end)..end]), file.pos)
    };
    copy_to_user(&mm, buf, &bytes)?;
    let mut files = p.files.lock();
    if let Some(Some(f)) = files.get_mut((fd - 3) as usize)
        && f.pos == pos
    {
        f.pos += bytes.len();
    }
    Ok(bytes.len() as u64)
}

/// A write to an open file: only `/proc/sys/vm` settings take one, as a
/// decimal number (`echo 1 > /proc/sys/vm/pt_reclaim`).
fn sys_write_file(p: &Process, fd: u64, buf: u64, count: u64) -> SysResult {
    let sysctl = {
        let files = p.files.lock();
        let file = fd
            .checked_sub(3)
            .and_then(|i| files.get(i as usize))
            .and_then(|f| f.as_ref())
            .ok_or(Errno::EBADF)?;
        file.sysctl.ok_or(Errno::EBADF)?
    };
    let mut text = [0u8; 32];
    let n = count.min(text.len() as u64) as usize;
    let mm = mm_of(p)?;
    copy_from_user(&mm, &mut text[..n], buf)?;
    procfs::write_sysctl(sysctl, &text[..n])?;
    Ok(count)
}

fn sys_openat(p: &Process, path: u64, flags: u64) -> SysResult {
    let mm = mm_of(p)?;
    let path = strncpy_from_user(&mm, path, PATH_MAX)?;
    let data = procfs::generate(p, &path).ok_or(ENOENT)?;
    let sysctl = procfs::sysctl(&path);
    let writable = flags & 3 != 0;
    if (writable && sysctl.is_none()) || flags & 3 == 3 {
        // O_WRONLY / O_RDWR on a read-only proc file; access mode 3.
        return Err(if flags & 3 == 3 {
            Errno::EINVAL
        } else {
            Errno::EACCES
        });
    }
    // A file opened for writing only cannot be read.
    let sysctl = if writable { sysctl } else { None };
    let mut files = p.files.lock();
    let file = Some(OpenFile {
        data: if flags & 3 == 1 {
            vec::Vec::new()
        } else {
            data
        },
        pos: 0,
        sysctl,
    });
    let slot = match files.iter().position(Option::is_none) {
        Some(i) => {
            files[i] = file;
            i
        }
        None => {
            files.push(file);
            files.len() - 1
        }
    };
    Ok(slot as u64 + 3)
}

fn sys_close(p: &Process, fd: u64) -> SysResult {
    let mut files = p.files.lock();
    let slot = fd
        .checked_sub(3)
        .and_then(|i| files.get_mut(i as usize))
        .ok_or(Errno::EBADF)?;
    slot.take().ok_or(Errno::EBADF).map(|_| 0)
}

/// `clone(flags, stack, ..)`: only a plain fork, `flags` holding just the
/// exit signal (glibc's `fork()` passes SIGCHLD), optionally on a new
/// stack. Linux's invalid combinations give EINVAL; threads, namespaces
/// and the other sharing flags are not supported here: ENOSYS.
fn sys_clone(p: &Process, regs: &PtRegs, a: [u64; 6]) -> SysResult {
    const CSIGNAL: u64 = 0xff;
    const CLONE_VM: u64 = 0x100;
    const CLONE_FS: u64 = 0x200;
    const CLONE_SIGHAND: u64 = 0x800;
    const CLONE_THREAD: u64 = 0x10000;
    const CLONE_NEWNS: u64 = 0x20000;
    let flags = a[0];
    let invalid = flags & (CLONE_NEWNS | CLONE_FS) == (CLONE_NEWNS | CLONE_FS)
        || (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
        || (flags & CSIGNAL) > 64
        || flags >> 32 != 0;
    if invalid {
        return Err(Errno::EINVAL);
    }
    if flags & !CSIGNAL != 0 {
        return Err(Errno::ENOSYS);
    }
    let mut regs = *regs;
    if a[1] != 0 {
        regs.rsp = a[1];
    }
    process::fork(p, &regs).map(u64::from)
}

/// `wait4(pid, wstatus, options, rusage)`.
fn sys_wait4(p: &Process, a: [u64; 6]) -> SysResult {
    const WUNTRACED: u64 = 2;
    const WCONTINUED: u64 = 8;
    const WNOTHREAD: u64 = 0x2000_0000;
    const WALL: u64 = 0x4000_0000;
    const WCLONE: u64 = 0x8000_0000;
    let (pid, wstatus, options, rusage) = (a[0] as i32 as i64, a[1], a[2], a[3]);
    let known = process::WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE;
    if options & !known != 0 {
        return Err(Errno::EINVAL);
    }
    if pid == i64::from(i32::MIN) {
        return Err(Errno(3)); // ESRCH
    }
    let Some((child, status)) = process::wait_child(p, pid, options)? else {
        return Ok(0);
    };
    let mm = mm_of(p)?;
    if wstatus != 0 {
        copy_to_user(&mm, wstatus, &status.to_wait_status().to_le_bytes())?;
    }
    if rusage != 0 {
        copy_to_user(&mm, rusage, &[0u8; 144])?;
    }
    Ok(u64::from(child))
}

fn sys_mmap(p: &Process, a: [u64; 6]) -> SysResult {
    let prot = Prot::from_bits(a[2]).ok_or(Errno::EINVAL)?;
    let flags = MapFlags::from_bits_retain(a[3]);
    mm_of(p)?.mmap(a[0], a[1], prot, flags, a[4] as i32 as i64, a[5])
}

fn sys_clock_gettime(p: &Process, clock: u64, tp: u64) -> SysResult {
    // REALTIME, MONOTONIC, MONOTONIC_RAW, REALTIME_COARSE,
    // MONOTONIC_COARSE, BOOTTIME: all read the clock since boot.
    if ![0, 1, 4, 5, 6, 7].contains(&clock) {
        return Err(Errno::EINVAL);
    }
    let ns = time::now_ns();
    let mut ts = [0u8; 16];
    ts[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    ts[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    let mm = mm_of(p)?;
    copy_to_user(&mm, tp, &ts)?;
    Ok(0)
}

fn sys_reboot(p: alloc::sync::Arc<Process>, a: [u64; 6]) -> SysResult {
    const MAGIC1: u64 = 0xfee1_dead;
    const MAGIC2: [u64; 4] = [672_274_793, 85_072_278, 369_367_448, 537_993_216];
    const CMD_RESTART: u64 = 0x0123_4567;
    const CMD_HALT: u64 = 0xcdef_0123;
    const CMD_POWER_OFF: u64 = 0x4321_fedc;
    if a[0] as u32 as u64 != MAGIC1 || !MAGIC2.contains(&(a[1] as u32 as u64)) {
        return Err(Errno::EINVAL);
    }
    match a[2] as u32 as u64 {
        CMD_POWER_OFF | CMD_HALT | CMD_RESTART => {
            crate::println!("reboot: Power down (requested by {}[{}])", p.comm, p.pid);
            drop(p);
            process::do_exit(ExitStatus::Exited(0))
        }
        _ => Err(Errno::EINVAL),
    }
}

//! Thread and process creation and the futex calls: `clone`, `clone3`,
//! `set_tid_address`, `set_robust_list`, `get_robust_list`, `futex`
//! (Linux's `kernel/fork.c` argument rules, `kernel/futex/syscalls.c`).
//!
//! `clone` checks flags as `copy_process` does (EINVAL for the invalid
//! combinations), then acts on what this kernel has:
//!
//! | flags                                   | result                        |
//! |-----------------------------------------|-------------------------------|
//! | `CLONE_THREAD` (+ `VM`, `SIGHAND`, `FILES`) | a thread of the caller's process |
//! | `CLONE_VM` without `CLONE_THREAD`       | a process sharing the `Mm`    |
//! | neither                                 | fork: a copy-on-write `Mm`    |
//! | `CLONE_VFORK`                           | the caller waits for exec/exit |
//!
//! with `CLONE_SETTLS`, `CLONE_PARENT_SETTID`, `CLONE_CHILD_SETTID`,
//! `CLONE_CHILD_CLEARTID` and the exit signal (`Process::exit_signal`); `CLONE_FS`, `CLONE_SYSVSEM`, `CLONE_IO`,
//! `CLONE_PTRACE`, `CLONE_UNTRACED` and `CLONE_DETACHED` change nothing
//! here (one cwd, no SysV semaphores, no tracing). `CLONE_PIDFD` gives the
//! parent a pidfd of a new process (through `parent_tid` for `clone`,
//! `pidfd` for `clone3`). Sharing that needs what is not here (files or
//! handlers between processes, `CLONE_PARENT`, namespaces, a thread's
//! pidfd, `set_tid`, cgroups) is `ENOSYS`.

use core::sync::atomic::Ordering;

use mm::errno::Errno;

use super::{E2BIG, SysResult, mm_of};
use crate::arch::entry::PtRegs;
use crate::process::{self, CloneArgs, Process, thread};

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_PTRACE: u64 = 0x2000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_NEWNS: u64 = 0x2_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_UNTRACED: u64 = 0x80_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_IO: u64 = 0x8000_0000;
const CLONE_NEWTIME: u64 = 0x80;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `sizeof(struct clone_args)` of each version.
const CLONE_ARGS_SIZE_VER0: u64 = 64;
const CLONE_ARGS_SIZE_VER2: u64 = 88;

/// `sizeof(struct robust_list_head)` on x86_64.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

/// What `kernel_clone` receives, from either syscall.
struct KernelCloneArgs {
    flags: u64,
    exit_signal: u64,
    stack: u64,
    tls: u64,
    parent_tid: u64,
    child_tid: u64,
    /// Where `CLONE_PIDFD` stores the pidfd (an int).
    pidfd: u64,
}

/// `copy_process`'s checks and the dispatch; see the module table.
fn kernel_clone(p: &Process, regs: &PtRegs, k: &KernelCloneArgs) -> SysResult {
    let f = k.flags;
    let both = |a: u64, b: u64| f & (a | b) == (a | b);
    let invalid = both(CLONE_NEWNS, CLONE_FS)
        || both(CLONE_NEWUSER, CLONE_FS)
        || (f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0)
        || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
        || (f & CLONE_PARENT != 0 && p.pid == 1)
        || (f & CLONE_THREAD != 0 && f & (CLONE_NEWUSER | CLONE_NEWPID) != 0)
        || both(CLONE_PIDFD, CLONE_DETACHED)
        || both(CLONE_SIGHAND, CLONE_CLEAR_SIGHAND);
    if invalid {
        return Err(Errno::EINVAL);
    }
    let thread = f & CLONE_THREAD != 0;
    let no_op =
        CLONE_FS | CLONE_SYSVSEM | CLONE_IO | CLONE_PTRACE | CLONE_UNTRACED | CLONE_DETACHED;
    // CLONE_PIDFD of a thread (6.9's PIDFD_THREAD) is not here.
    let acted_on = CLONE_VM
        | CLONE_VFORK
        | if thread { 0 } else { CLONE_PIDFD }
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_SETTID
        | CLONE_CHILD_CLEARTID
        | if thread {
            CLONE_THREAD | CLONE_SIGHAND | CLONE_FILES
        } else {
            0
        };
    // A thread shares the process's files: one without CLONE_FILES would
    // need a table of its own.
    if f & !(no_op | acted_on) != 0 || (thread && f & CLONE_FILES == 0) {
        log::warn!(
            "{}[{}]: clone flags {f:#x}: unsupported sharing, -ENOSYS",
            p.comm(),
            p.pid
        );
        return Err(Errno::ENOSYS);
    }
    let opt = |flag: u64, v: u64| (f & flag != 0).then_some(v);
    let args = CloneArgs {
        thread,
        share_vm: f & CLONE_VM != 0,
        vfork: f & CLONE_VFORK != 0,
        stack: k.stack,
        tls: opt(CLONE_SETTLS, k.tls),
        parent_tid: opt(CLONE_PARENT_SETTID, k.parent_tid),
        child_tid: opt(CLONE_CHILD_SETTID, k.child_tid),
        clear_child_tid: opt(CLONE_CHILD_CLEARTID, k.child_tid),
        exit_signal: if thread { 0 } else { k.exit_signal as u32 },
    };
    if let Some(tls) = args.tls
        && !is_canonical(tls)
    {
        return Err(Errno::EPERM);
    }
    let pidfd_at = opt(CLONE_PIDFD, k.pidfd);
    if let Some(at) = pidfd_at {
        // Linux stores the pidfd before the child can run and fails the
        // clone with EFAULT if it cannot: check the word is writable
        // first (writing back what it holds).
        let mm = mm_of(p)?;
        let mut old = [0u8; 4];
        crate::uaccess::copy_from_user(&mm, &mut old, at)?;
        crate::uaccess::copy_to_user(&mm, at, &old)?;
    }
    let tid = process::clone(p, regs, args)?;
    if let Some(at) = pidfd_at {
        // The child cannot have been reaped yet: only its parent reaps,
        // and this thread of it is here (another thread's wait4 could:
        // then there is no pidfd to give, as if the word were unchanged).
        if let Some(child) = process::find_unreaped(tid) {
            let fd = super::pidfd::install_pidfd(p, child, 0)?;
            crate::uaccess::copy_to_user(&*mm_of(p)?, at, &(fd as u32).to_le_bytes())?;
        }
    }
    Ok(u64::from(tid))
}

/// Whether `a` is a canonical user address (`CLONE_SETTLS` refuses others
/// with `EPERM`, as `do_arch_prctl_64`).
fn is_canonical(a: u64) -> bool {
    a < (1 << 47)
}

/// `clone(flags, newsp, parent_tid, child_tid, tls)` (x86_64 order): the
/// low 32 bits of `flags` are the flags and, in their low byte, the exit
/// signal.
pub fn sys_clone(p: &Process, regs: &PtRegs, a: [u64; 6]) -> SysResult {
    // Any exit signal is taken (one above 64 sends nothing at exit, as
    // do_notify_parent's valid_signal check).
    let low = a[0] & 0xffff_ffff;
    // Legacy clone returns the pidfd through parent_tid.
    if low & (CLONE_PIDFD | CLONE_PARENT_SETTID) == CLONE_PIDFD | CLONE_PARENT_SETTID {
        return Err(Errno::EINVAL);
    }
    kernel_clone(
        p,
        regs,
        &KernelCloneArgs {
            flags: low & !CSIGNAL,
            exit_signal: low & CSIGNAL,
            stack: a[1],
            parent_tid: a[2],
            child_tid: a[3],
            tls: a[4],
            pidfd: a[2],
        },
    )
}

/// `clone3(args, size)`: `struct clone_args` of any version (64, 80 or 88
/// bytes; larger ones only with zeros past what is known: `E2BIG`), with
/// `copy_clone_args_from_user` and `clone3_args_valid`'s checks.
pub fn sys_clone3(p: &Process, regs: &PtRegs, uargs: u64, size: u64) -> SysResult {
    if size > mm::PAGE_SIZE {
        return Err(E2BIG);
    }
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let mut raw = alloc::vec![0u8; size as usize];
    crate::uaccess::copy_from_user(&mm, &mut raw, uargs)?;
    drop(mm);
    let known = CLONE_ARGS_SIZE_VER2 as usize;
    if raw.len() > known && raw[known..].iter().any(|&b| b != 0) {
        return Err(E2BIG);
    }
    let field = |i: usize| crate::uaccess::le64(&raw, i * 8);
    let (flags, pidfd, child_tid, parent_tid, exit_signal) =
        (field(0), field(1), field(2), field(3), field(4));
    let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
        (field(5), field(6), field(7), field(8), field(9), field(10));
    // copy_clone_args_from_user.
    if set_tid_size > 32
        || (set_tid == 0 && set_tid_size > 0)
        || (set_tid != 0 && set_tid_size == 0)
    {
        return Err(Errno::EINVAL);
    }
    if exit_signal & !CSIGNAL != 0 || exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_INTO_CGROUP != 0 && (cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2) {
        return Err(Errno::EINVAL);
    }
    // clone3_args_valid.
    if flags & !(0xffff_ffff | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
        || flags & (CLONE_DETACHED | (CSIGNAL & !CLONE_NEWTIME)) != 0
        || (flags & (CLONE_THREAD | CLONE_PARENT) != 0 && exit_signal != 0)
    {
        return Err(Errno::EINVAL);
    }
    let sp = match (stack, stack_size) {
        (0, 0) => 0,
        (0, _) | (_, 0) => return Err(Errno::EINVAL),
        (s, n) => match s.checked_add(n) {
            Some(top) if top <= mm::pgtable::TASK_SIZE => top,
            _ => return Err(Errno::EINVAL),
        },
    };
    if set_tid != 0 {
        return Err(Errno::ENOSYS);
    }
    kernel_clone(
        p,
        regs,
        &KernelCloneArgs {
            flags,
            exit_signal,
            stack: sp,
            parent_tid,
            child_tid,
            tls,
            pidfd,
        },
    )
}

/// `set_tid_address(tidptr)`: the thread's `clear_child_tid`; returns
/// its tid.
pub fn sys_set_tid_address(t: &thread::Thread, tidptr: u64) -> SysResult {
    t.clear_child_tid.store(tidptr, Ordering::Relaxed);
    Ok(u64::from(t.tid()))
}

/// `set_robust_list(head, len)`: `EINVAL` unless `len` is the head's size.
pub fn sys_set_robust_list(t: &thread::Thread, head: u64, len: u64) -> SysResult {
    if len != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    t.robust_list.store(head, Ordering::Relaxed);
    Ok(0)
}

/// `get_robust_list(pid, head_ptr, len_ptr)`: the head of thread `pid` (0:
/// the caller) of the caller's process; `ESRCH` for another.
pub fn sys_get_robust_list(t: &thread::Thread, pid: i32, head_ptr: u64, len_ptr: u64) -> SysResult {
    let p = &t.process;
    let head = if pid == 0 {
        t.robust_list.load(Ordering::Relaxed)
    } else {
        p.threads
            .lock()
            .iter()
            .find(|x| i64::from(x.tid()) == i64::from(pid))
            .map(|x| x.robust_list.load(Ordering::Relaxed))
            .ok_or(super::ESRCH)?
    };
    let mm = mm_of(p)?;
    crate::uaccess::copy_to_user(&mm, len_ptr, &ROBUST_LIST_HEAD_SIZE.to_le_bytes())?;
    crate::uaccess::copy_to_user(&mm, head_ptr, &head.to_le_bytes())?;
    Ok(0)
}

/// `futex(uaddr, op, val, timeout, uaddr2, val3)`.
pub fn sys_futex(p: &Process, a: [u64; 6]) -> SysResult {
    let mm = mm_of(p)?;
    process::futex::sys_futex(&mm, a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32)
}

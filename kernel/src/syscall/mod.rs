//! The system-call table (Linux's `arch/x86/entry/syscall_64.c`): Linux
//! x86_64 numbers and argument order, results in `rax`, errors as
//! `-errno`. Anything a user program passes is checked; a bad pointer
//! gives `-EFAULT` (`crate::uaccess`), never a kernel fault. Enough of
//! Linux is here for unmodified static musl and Rust-std programs
//! (`cargo run -- --init PROGRAM`).
//!
//! | nr  | name              | notes                                       |
//! |-----|-------------------|---------------------------------------------|
//! | 0   | read              | console: end of file; files, `/proc`        |
//! | 1   | write             | console; `/dev` devices; `/proc/sys/vm`;    |
//! |     |                   | shmem files (`memfd`)                       |
//! | 2   | open              | initramfs files and dirs, `/proc`, `/sys`,  |
//! |     |                   | `/dev` memory devices (`process::memdev`),  |
//! |     |                   | tmpfs at /tmp, /dev/shm: O_CREAT, O_TMPFILE |
//! | 3   | close             |                                             |
//! | 4/6 | stat/lstat        | (no symlinks: lstat is stat)                |
//! | 5   | fstat             |                                             |
//! | 7   | poll              | every fd is ready but pidfds (until exit)   |
//! | 8   | lseek             | ESPIPE on the console; SEEK_DATA/SEEK_HOLE  |
//! | 9   | mmap              | anonymous mappings (`mm::vm`), shmem files  |
//! | 10  | mprotect          |                                             |
//! | 11  | munmap            |                                             |
//! | 12  | brk               |                                             |
//! | 13  | rt_sigaction      | SA_SIGINFO, RESTART, ONSTACK, NODEFER, ...  |
//! | 14  | rt_sigprocmask    |                                             |
//! | 15  | rt_sigreturn      | `arch::signal`                              |
//! | 16  | ioctl             | console: TCGETS/TCSETS* (36-byte termios),  |
//! |     |                   | TCGETS2/TCSETS2*, TIOCGWINSZ/TIOCSWINSZ     |
//! | 17  | pread64           |                                             |
//! | 18  | pwrite64          | shmem files (`memfd`)                       |
//! | 19  | readv             |                                             |
//! | 20  | writev            |                                             |
//! | 21  | access            | exists or ENOENT                            |
//! | 22  | pipe              | 64 KiB; EPIPE + SIGPIPE without readers     |
//! | 24  | sched_yield       |                                             |
//! | 25  | mremap            |                                             |
//! | 26  | msync             | range checks (shmem: nothing to write back) |
//! | 28  | madvise           | DONTNEED, FREE (acts as DONTNEED), ...      |
//! | 32  | dup               |                                             |
//! | 33  | dup2              |                                             |
//! | 34  | pause             | until a handler ran: EINTR                  |
//! | 35  | nanosleep         |                                             |
//! | 36  | getitimer         | ITIMER_REAL (`process::itimer`); VIRTUAL,   |
//! |     |                   | PROF: ENOSYS (no CPU-time accounting)       |
//! | 37  | alarm             | SIGALRM at tick resolution                  |
//! | 38  | setitimer         | as getitimer; periodic re-arming            |
//! | 39  | getpid            |                                             |
//! | 56  | clone             | threads, fork, true vfork (`thread`)        |
//! | 57  | fork              | copy-on-write (`Mm::fork`)                  |
//! | 58  | vfork             | shares the Mm; parent waits for exec/exit   |
//! | 59  | execve            | a static ELF from the initramfs             |
//! | 60  | exit              | ends the thread (the last ends the process) |
//! | 61  | wait4             | WNOHANG, WUNTRACED, WCONTINUED, __WCLONE,   |
//! |     |                   | __WALL; rusage: min_flt of the child        |
//! | 62  | kill              | one process group; init: handled ones only; |
//! |     |                   | a zombie: 0                                 |
//! | 63  | uname             | Linux, release `6.18.0-mmkernel`            |
//! | 72  | fcntl             | DUPFD, GETFD/SETFD, GETFL/SETFL,            |
//! |     |                   | ADD_SEALS/GET_SEALS (`memfd`)               |
//! | 74/75 | fsync/fdatasync | 0 for files and dirs, EINVAL for the rest   |
//! | 76  | truncate          | tmpfs files                                 |
//! | 77  | ftruncate         | shmem files: grow, shrink (unmaps the tail) |
//! | 82  | rename            | tmpfs (`crate::tmpfs`)                      |
//! | 78  | getdents          | see `dirent`: /, /dev, /proc, /sys, ...     |
//! | 79  | getcwd            | always `/`                                  |
//! | 83  | mkdir             | in the initramfs tree; tmpfs                |
//! | 84  | rmdir             | tmpfs                                       |
//! | 87  | unlink            | tmpfs (an open file lives on)               |
//! | 89  | readlink          | /proc/self, /proc/self/{exe,cwd,root}       |
//! | 95  | umask             | applied to tmpfs file creation              |
//! | 96  | gettimeofday      |                                             |
//! | 97  | getrlimit         |                                             |
//! | 98  | getrusage         | ru_minflt counted as Linux counts faults    |
//! | 102.. | getuid, getgid, geteuid, getegid: 0 (root)                    |
//! | 110 | getppid           |                                             |
//! | 127 | rt_sigpending     |                                             |
//! | 128 | rt_sigtimedwait   |                                             |
//! | 129 | rt_sigqueueinfo   |                                             |
//! | 130 | rt_sigsuspend     |                                             |
//! | 131 | sigaltstack       |                                             |
//! | 149 | mlock             | VM_LOCKED, populated (`mm::vm` mlock.rs)    |
//! | 150 | munlock           |                                             |
//! | 151 | mlockall          | MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT        |
//! | 152 | munlockall        |                                             |
//! | 157 | prctl             | PR_SET_NAME/GET_NAME, PR_{GET,SET}_DUMPABLE,|
//! |     |                   | PR_SET_MDWE/PR_GET_MDWE                     |
//! | 158 | arch_prctl        | ARCH_SET_FS/GET_FS (not GS: EINVAL)         |
//! | 165 | mount             | proc, sysfs, devtmpfs, tmpfs: already there |
//! | 169 | reboot            | POWER_OFF/HALT/RESTART: ends init           |
//! | 186 | gettid            | the thread's id (the pid for the first)     |
//! | 200 | tkill             |                                             |
//! | 201 | time              |                                             |
//! | 202 | futex             | WAIT/WAKE(_BITSET), (CMP_)REQUEUE, WAKE_OP  |
//! | 203 | sched_setaffinity | threads; EINVAL without an active CPU       |
//! | 204 | sched_getaffinity | the thread's mask & the active CPUs         |
//! | 217 | getdents64        |                                             |
//! | 218 | set_tid_address   | cleared + futex-woken at thread exit        |
//! | 219 | restart_syscall   | resumes an interrupted nanosleep            |
//! | 228 | clock_gettime     | see `misc`: every clock counts from boot    |
//! | 229 | clock_getres      |                                             |
//! | 230 | clock_nanosleep   |                                             |
//! | 231 | exit_group        | ends every thread                           |
//! | 234 | tgkill            |                                             |
//! | 257 | openat            |                                             |
//! | 258 | mkdirat           |                                             |
//! | 262 | newfstatat        |                                             |
//! | 263 | unlinkat          | tmpfs; AT_REMOVEDIR                         |
//! | 264 | renameat          | tmpfs                                       |
//! | 267 | readlinkat        |                                             |
//! | 269 | faccessat         |                                             |
//! | 273 | set_robust_list   | walked at thread exit (FUTEX_OWNER_DIED)    |
//! | 274 | get_robust_list   | threads of the caller's process             |
//! | 292 | dup3              |                                             |
//! | 293 | pipe2             | O_CLOEXEC, O_NONBLOCK                       |
//! | 297 | rt_tgsigqueueinfo |                                             |
//! | 302 | prlimit64         | own process only                            |
//! | 285 | fallocate         | shmem files: mode 0, KEEP_SIZE              |
//! | 309 | getcpu            | node always 0                               |
//! | 310 | process_vm_readv  | `process_vm`: another process's memory      |
//! | 311 | process_vm_writev |                                             |
//! | 316 | renameat2         | tmpfs; RENAME_NOREPLACE                     |
//! | 318 | getrandom         | RDRAND                                      |
//! | 319 | memfd_create      | CLOEXEC, ALLOW_SEALING, NOEXEC_SEAL, EXEC   |
//! | 325 | mlock2            | MLOCK_ONFAULT                               |
//! | 334 | rseq              | ENOSYS, not logged (glibc goes without)     |
//! | 424 | pidfd_send_signal | `pidfd`: kill through a pidfd               |
//! | 434 | pidfd_open        | poll: readable once the process exited      |
//! | 435 | clone3            | as clone, with clone3's argument checks     |
//! | 448 | process_mrelease  | unmaps a dying process's private memory now |
//! | 462 | mseal             | VM_SEALED (`mm::vm` mseal.rs)               |
//!
//! Any other number returns `-ENOSYS`; the first call of each number is
//! logged (a warning: hidden under `quiet`).
//!
//! # Context
//!
//! Entered from `arch::entry` with interrupts off on the task's kernel
//! stack; runs with interrupts on (preemptible, may sleep); leaves
//! through the return-to-user loop (`arch::signal::exit_to_user_mode`:
//! reschedule, deliver signals).

mod dirent;
mod fs;
mod memfd;
mod misc;
mod pidfd;
mod process_vm;
mod signal;
mod thread;
mod tty;

pub(crate) use signal::set_altstack;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::errno::Errno;
use mm::vm::{MapFlags, MremapFlags, Prot};

use crate::arch::entry::PtRegs;
use crate::process::{self, ExitStatus, Process};
use crate::sched;

pub(crate) const ENOENT: Errno = Errno(2);
pub(crate) const ESRCH: Errno = Errno(3);
pub(crate) const EINTR: Errno = Errno(4);
pub(crate) const E2BIG: Errno = Errno(7);
pub(crate) const EBADF: Errno = Errno(9);
pub(crate) const EPERM: Errno = Errno(1);
pub(crate) const ENOTDIR: Errno = Errno(20);
pub(crate) const EISDIR: Errno = Errno(21);
pub(crate) const EMFILE: Errno = Errno(24);
pub(crate) const ENOTTY: Errno = Errno(25);
pub(crate) const ESPIPE: Errno = Errno(29);
pub(crate) const EROFS: Errno = Errno(30);
pub(crate) const ERANGE: Errno = Errno(34);
pub(crate) const ENAMETOOLONG: Errno = Errno(36);
pub(crate) const ENODEV: Errno = Errno(19);

/// Most bytes one read or write moves (Linux's `MAX_RW_COUNT`).
pub(crate) const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Longest path (`PATH_MAX`).
pub(crate) const PATH_MAX: usize = 4096;

/// Numbers already logged as unknown: bit `nr` for `nr < 512`, bit 511 of
/// the last word standing for every larger number.
static ENOSYS_LOGGED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

pub(crate) type SysResult = Result<u64, Errno>;

/// Called by the `SYSCALL` entry with the saved user registers. Returns
/// whether the entry may leave through `SYSRET` (true) or must restore
/// the whole frame with `IRETQ` (`arch::signal::can_sysret`).
///
/// # Safety
///
/// `regs` points at the `PtRegs` frame the entry code just pushed on the
/// current task's kernel stack.
pub unsafe extern "C" fn do_syscall_64(regs: *mut PtRegs) -> bool {
    // SAFETY: by the contract: a valid, exclusive frame for this call.
    let regs = unsafe { &mut *regs };
    x86_64::instructions::interrupts::enable();
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let Some(p) = process::current() else {
        panic!(
            "BUG: syscall {} from a thread without a process",
            regs.orig_rax
        );
    };
    let nr = regs.orig_rax;
    // The calls that end the process own no value past this point: the
    // frames in between are abandoned (`do_exit`).
    let exit = match nr {
        60 | 231 => Ok(ExitStatus::Exited(args[0] as i32)),
        169 => check_reboot(&p, args).map(|()| ExitStatus::Exited(0)),
        _ => Err(Errno::ENOSYS),
    };
    if let Ok(status) = exit {
        drop(p);
        if nr == 60 {
            process::do_exit(status);
        }
        process::thread::do_group_exit(status);
    }
    let ret = match exit {
        Err(e) if nr == 169 => Err(e),
        _ => dispatch(&p, regs, nr, args),
    };
    let ret = match ret {
        Ok(v) => v,
        Err(e) => (-(e.0 as i64)) as u64,
    };
    // execve replaced the frame: the result is the new program's rax, 0.
    if regs.orig_rax != 59 || ret > (-4096i64) as u64 {
        regs.rax = ret;
    }
    drop(p);
    x86_64::instructions::interrupts::disable();
    crate::arch::signal::exit_to_user_mode(regs);
    crate::arch::signal::can_sysret(regs)
}

fn dispatch(p: &Arc<Process>, regs: &mut PtRegs, nr: u64, a: [u64; 6]) -> SysResult {
    match nr {
        0 => fs::sys_read(p, a[0], a[1], a[2]),
        1 => fs::sys_write(p, a[0], a[1], a[2]),
        2 => fs::sys_openat(p, fs::AT_FDCWD, a[0], a[1], a[2]),
        3 => fs::sys_close(p, a[0]),
        4 | 6 => fs::sys_stat(p, a[0], a[1]),
        5 => fs::sys_fstat(p, a[0], a[1]),
        7 => fs::sys_poll(p, a[0], a[1], a[2] as i32),
        8 => fs::sys_lseek(p, a[0], a[1] as i64, a[2]),
        9 => sys_mmap(p, a),
        10 => {
            let prot = Prot::from_bits(a[2]).ok_or(Errno::EINVAL)?;
            mm_of(p)?.mprotect(a[0], a[1], prot).map(|()| 0)
        }
        11 => mm_of(p)?.munmap(a[0], a[1]).map(|()| 0),
        12 => Ok(mm_of(p)?.brk(a[0])),
        13 => signal::sys_rt_sigaction(p, a[0], a[1], a[2], a[3]),
        14 => signal::sys_rt_sigprocmask(p, a[0], a[1], a[2], a[3]),
        15 => Ok(crate::arch::signal::sys_rt_sigreturn(
            &current_thread()?,
            regs,
        )),
        16 => fs::sys_ioctl(p, a[0], a[1], a[2]),
        17 => fs::sys_pread(p, a[0], a[1], a[2], a[3] as i64),
        18 => fs::sys_pwrite(p, a[0], a[1], a[2], a[3] as i64),
        19 => fs::sys_readv(p, a[0], a[1], a[2]),
        20 => fs::sys_writev(p, a[0], a[1], a[2]),
        21 => fs::sys_faccessat(p, fs::AT_FDCWD, a[0], a[1]),
        22 => fs::sys_pipe2(p, a[0], 0),
        24 => {
            sched::yield_now();
            Ok(0)
        }
        25 => {
            let flags = MremapFlags::from_bits(a[3]).ok_or(Errno::EINVAL)?;
            mm_of(p)?.mremap(a[0], a[1], a[2], flags, a[4])
        }
        26 => mm_of(p)?.msync(a[0], a[1], a[2] as i32 as u64).map(|()| 0),
        28 => mm_of(p)?.madvise(a[0], a[1], a[2] as i64).map(|()| 0),
        32 => fs::sys_dup3(p, a[0], None, 0),
        33 => fs::sys_dup2(p, a[0], a[1]),
        34 => signal::sys_pause(p),
        35 => misc::sys_nanosleep(p, a[0], a[1]),
        36 => process::itimer::sys_getitimer(p, &*mm_of(p)?, a[0], a[1]),
        37 => Ok(process::itimer::sys_alarm(p, a[0])),
        38 => process::itimer::sys_setitimer(p, &*mm_of(p)?, a[0], a[1], a[2]),
        39 => Ok(p.pid as u64),
        56 => thread::sys_clone(p, regs, a),
        57 => process::fork(p, regs).map(u64::from),
        58 => process::vfork(p, regs).map(u64::from),
        59 => sys_execve(p, regs, a[0], a[1], a[2]),
        61 => sys_wait4(p, a),
        62 => signal::sys_kill(p, a[0] as i32, a[1]),
        63 => misc::sys_uname(p, a[0]),
        72 => fs::sys_fcntl(p, a[0], a[1] as u32, a[2]),
        74 | 75 => fs::sys_fsync(p, a[0]),
        76 => fs::sys_truncate(p, a[0], a[1] as i64),
        77 => memfd::sys_ftruncate(p, a[0], a[1] as i64),
        82 => fs::sys_renameat2(p, fs::AT_FDCWD, a[0], fs::AT_FDCWD, a[1], 0),
        79 => fs::sys_getcwd(p, a[0], a[1]),
        78 => dirent::sys_getdents(p, a[0], a[1], a[2], false),
        83 => fs::sys_mkdirat(p, fs::AT_FDCWD, a[0]),
        84 => fs::sys_unlinkat(p, fs::AT_FDCWD, a[0], 0x200),
        87 => fs::sys_unlinkat(p, fs::AT_FDCWD, a[0], 0),
        89 => fs::sys_readlinkat(p, fs::AT_FDCWD, a[0], a[1], a[2] as i32),
        95 => fs::sys_umask(p, a[0]),
        96 => misc::sys_gettimeofday(p, a[0], a[1]),
        97 => misc::sys_prlimit64(p, 0, a[0], 0, a[1]),
        98 => misc::sys_getrusage(p, a[0] as i64, a[1]),
        102 | 104 | 107 | 108 => Ok(0),
        110 => Ok(u64::from(p.ppid())),
        127 => signal::sys_rt_sigpending(p, a[0], a[1]),
        128 => signal::sys_rt_sigtimedwait(p, a[0], a[1], a[2], a[3]),
        129 => signal::sys_rt_sigqueueinfo(p, a[0] as i32 as i64, None, a[1], a[2]),
        130 => signal::sys_rt_sigsuspend(p, a[0], a[1]),
        131 => signal::sys_sigaltstack(p, regs.rsp, a[0], a[1]),
        149 => mm_of(p)?.mlock(a[0], a[1], 0).map(|()| 0),
        150 => mm_of(p)?.munlock(a[0], a[1]).map(|()| 0),
        151 => mm_of(p)?.mlockall(a[0]).map(|()| 0),
        152 => mm_of(p)?.munlockall().map(|()| 0),
        157 => misc::sys_prctl(p, a[0], a[1], [a[2], a[3], a[4]]),
        158 => misc::sys_arch_prctl(p, a[0], a[1]),
        165 => fs::sys_mount(p, a[0], a[1], a[2]),
        186 => Ok(u64::from(current_thread()?.tid())),
        200 => signal::sys_tgkill(p, None, a[0] as i32 as i64, a[1]),
        201 => misc::sys_time(p, a[0]),
        202 => thread::sys_futex(p, a),
        203 => misc::sys_sched_setaffinity(p, a[0] as i32, a[1], a[2]),
        204 => misc::sys_sched_getaffinity(p, a[0] as i32, a[1], a[2]),
        217 => dirent::sys_getdents(p, a[0], a[1], a[2], true),
        218 => thread::sys_set_tid_address(&*current_thread()?, a[0]),
        219 => misc::sys_restart_syscall(p),
        228 => misc::sys_clock_gettime(p, a[0], a[1]),
        229 => misc::sys_clock_getres(p, a[0], a[1]),
        230 => misc::sys_clock_nanosleep(p, a[0], a[1], a[2], a[3]),
        234 => signal::sys_tgkill(p, Some(a[0] as i32 as i64), a[1] as i32 as i64, a[2]),
        257 => fs::sys_openat(p, a[0] as i32, a[1], a[2], a[3]),
        263 => fs::sys_unlinkat(p, a[0] as i32, a[1], a[2]),
        264 => fs::sys_renameat2(p, a[0] as i32, a[1], a[2] as i32, a[3], 0),
        258 => fs::sys_mkdirat(p, a[0] as i32, a[1]),
        262 => fs::sys_newfstatat(p, a[0] as i32, a[1], a[2], a[3]),
        267 => fs::sys_readlinkat(p, a[0] as i32, a[1], a[2], a[3] as i32),
        269 => fs::sys_faccessat(p, a[0] as i32, a[1], a[2]),
        273 => thread::sys_set_robust_list(&*current_thread()?, a[0], a[1]),
        274 => thread::sys_get_robust_list(&*current_thread()?, a[0] as i32, a[1], a[2]),
        285 => memfd::sys_fallocate(p, a[0], a[1], a[2] as i64, a[3] as i64),
        292 => fs::sys_dup3(p, a[0], Some(a[1]), a[2]),
        293 => fs::sys_pipe2(p, a[0], a[1]),
        297 => {
            signal::sys_rt_sigqueueinfo(p, a[0] as i32 as i64, Some(a[1] as i32 as i64), a[2], a[3])
        }
        302 => misc::sys_prlimit64(p, a[0] as i32, a[1], a[2], a[3]),
        309 => misc::sys_getcpu(p, a[0], a[1]),
        310 => process_vm::sys_process_vm_rw(p, a[0] as i32, a[1], a[2], a[3], a[4], a[5], false),
        311 => process_vm::sys_process_vm_rw(p, a[0] as i32, a[1], a[2], a[3], a[4], a[5], true),
        316 => fs::sys_renameat2(p, a[0] as i32, a[1], a[2] as i32, a[3], a[4]),
        318 => misc::sys_getrandom(p, a[0], a[1], a[2]),
        319 => memfd::sys_memfd_create(p, a[0], a[1]),
        // rseq: not implemented, and said so without a log line: glibc
        // registers one at start and, on ENOSYS, goes on without it, as
        // on a Linux built without CONFIG_RSEQ.
        325 => mm_of(p)?.mlock(a[0], a[1], a[2]).map(|()| 0),
        462 => mm_of(p)?.mseal(a[0], a[1], a[2]).map(|()| 0),
        334 => Err(Errno::ENOSYS),
        424 => pidfd::sys_pidfd_send_signal(p, a[0] as i32, a[1], a[2], a[3]),
        434 => pidfd::sys_pidfd_open(p, a[0] as i32, a[1]),
        435 => thread::sys_clone3(p, regs, a[0], a[1]),
        448 => pidfd::sys_process_mrelease(p, a[0] as i32, a[1]),
        _ => {
            log_enosys(p, nr);
            Err(Errno::ENOSYS)
        }
    }
}

pub(crate) fn mm_of(p: &Process) -> Result<Arc<process::KMm>, Errno> {
    p.mm().ok_or(Errno::EFAULT)
}

fn log_enosys(p: &Process, nr: u64) {
    let bit = nr.min(511);
    let word = &ENOSYS_LOGGED[(bit / 64) as usize];
    let mask = 1u64 << (bit % 64);
    if word.fetch_or(mask, Ordering::Relaxed) & mask == 0 {
        log::warn!(
            "{}[{}]: unknown syscall {nr}: -ENOSYS (logged once)",
            p.comm(),
            p.pid
        );
    }
}

/// The running thread (every syscall comes from one).
fn current_thread() -> Result<Arc<process::thread::Thread>, Errno> {
    process::thread::current_thread().ok_or(Errno::EFAULT)
}

/// Most arguments plus environment strings `execve` takes (Linux's limit
/// is a quarter of the stack rlimit; ours is the initial stack's size).
const MAX_ARG_BYTES: usize = 96 * 1024;

/// Reads a NULL-terminated array of string pointers (argv, envp).
fn user_strings(
    mm: &process::KMm,
    mut at: u64,
    total: &mut usize,
) -> Result<alloc::vec::Vec<alloc::string::String>, Errno> {
    let mut out = alloc::vec::Vec::new();
    if at == 0 {
        return Ok(out);
    }
    loop {
        let mut w = [0u8; 8];
        crate::uaccess::copy_from_user(mm, &mut w, at)?;
        let ptr = u64::from_le_bytes(w);
        if ptr == 0 {
            return Ok(out);
        }
        let s = crate::uaccess::strncpy_from_user(mm, ptr, MAX_ARG_BYTES)
            .map_err(|e| if e == ENAMETOOLONG { E2BIG } else { e })?;
        *total += s.len() + 1 + 8;
        if *total > MAX_ARG_BYTES {
            return Err(E2BIG);
        }
        out.push(alloc::string::String::from_utf8_lossy(&s).into_owned());
        at = at.checked_add(8).ok_or(Errno::EFAULT)?;
    }
}

/// `execve(path, argv, envp)`: replaces the program with the static ELF
/// at `path` in the initramfs. Errors (Linux's): ENOENT, EACCES (a
/// directory or a file without execute permission), ENOEXEC (not a static
/// x86_64 ELF), E2BIG, EFAULT; then the old program goes on. On success the
/// syscall "returns" into the new program: the frame gets its entry,
/// stack and zeroed registers.
fn sys_execve(p: &Process, regs: &mut PtRegs, path: u64, argv: u64, envp: u64) -> SysResult {
    const EACCES: Errno = Errno(13);
    let mm = mm_of(p)?;
    let raw = crate::uaccess::strncpy_from_user(&mm, path, PATH_MAX)?;
    let filename = alloc::string::String::from_utf8_lossy(&raw).into_owned();
    let path = crate::initramfs::normalize(&raw)?;
    // The magic link /proc/.../exe leads to the program file.
    let resolved = proc_exe_target(p, &path);
    let path = resolved.clone().unwrap_or(path);
    let mut total = 0;
    let argv = user_strings(&mm, argv, &mut total)?;
    let envp = user_strings(&mm, envp, &mut total)?;
    drop(mm);
    let elf = match crate::initramfs::lookup(&path) {
        Some(crate::initramfs::Node::File(data, mode)) if mode & 0o111 != 0 => data,
        Some(_) => return Err(EACCES),
        None => return Err(ENOENT),
    };
    let image = process::exec(p, &filename, &elf, &argv, &envp)?;
    if resolved.is_some() {
        // The name execve got is "/proc/self/exe" (comm "exe", as on
        // Linux); the new image's /proc/self/exe names the file itself.
        p.set_exe(path);
    }
    *regs = PtRegs {
        rip: image.entry,
        rsp: image.sp,
        rflags: 0x202,
        cs: crate::arch::entry::USER_CS,
        ss: crate::arch::entry::USER_SS,
        orig_rax: 59,
        ..PtRegs::default()
    };
    Ok(0)
}

/// Where `/proc/self/exe`, `/proc/thread-self/exe` or `/proc/PID/exe`
/// (PID a process or a thread) leads: that process's program file
/// (`proc_exe_link`); `None` for any other path, or a pid nobody has.
fn proc_exe_target(p: &Process, path: &str) -> Option<alloc::string::String> {
    let who = path.strip_prefix("/proc/")?.strip_suffix("/exe")?;
    if who == "self" || who == "thread-self" {
        return Some(p.exe());
    }
    let pid = who.parse::<u32>().ok()?;
    process::find(pid)
        .or_else(|| process::find_thread(pid).map(|t| t.process.clone()))
        .map(|q| q.exe())
}

/// `wait4(pid, wstatus, options, rusage)`.
fn sys_wait4(p: &Process, a: [u64; 6]) -> SysResult {
    const WUNTRACED: u64 = 2;
    const WCONTINUED: u64 = 8;
    const WNOTHREAD: u64 = 0x2000_0000;
    const WALL: u64 = 0x4000_0000;
    const WCLONE: u64 = 0x8000_0000;
    // `options` is an int: a C caller passing __WCLONE (bit 31) may
    // sign-extend it into the upper half, which Linux never looks at.
    let (pid, wstatus, options, rusage) = (a[0] as i32 as i64, a[1], a[2] as u32 as u64, a[3]);
    let known = process::WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE;
    if options & !known != 0 {
        return Err(Errno::EINVAL);
    }
    if pid == i64::from(i32::MIN) {
        return Err(ESRCH);
    }
    let before = p.cmin_flt.load(Ordering::Relaxed);
    let Some((child, status)) = process::wait_child(p, pid, options)? else {
        return Ok(0);
    };
    let mm = mm_of(p)?;
    if wstatus != 0 {
        crate::uaccess::copy_to_user(&mm, wstatus, &status.to_le_bytes())?;
    }
    if rusage != 0 {
        // The reaped child's own faults (and its children's).
        let minflt = p.cmin_flt.load(Ordering::Relaxed) - before;
        crate::uaccess::copy_to_user(&mm, rusage, &misc::rusage_bytes(minflt))?;
    }
    Ok(u64::from(child))
}

fn sys_mmap(p: &Process, a: [u64; 6]) -> SysResult {
    let flags = MapFlags::from_bits_retain(a[3]);
    if !flags.contains(MapFlags::ANONYMOUS) {
        return memfd::mmap_fd(p, a, flags);
    }
    let prot = Prot::from_bits(a[2]).ok_or(Errno::EINVAL)?;
    mm_of(p)?.mmap(a[0], a[1], prot, flags, a[4] as i32 as i64, a[5])
}

/// `reboot(magic, magic2, cmd, arg)`: Ok if it ends init (the caller
/// exits with status 0), Linux's EINVAL for bad magic or an unknown cmd.
fn check_reboot(p: &Process, a: [u64; 6]) -> Result<(), Errno> {
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
            if crate::cmdline::get().shows_info() {
                crate::println!("reboot: Power down (requested by {}[{}])", p.comm(), p.pid);
            }
            Ok(())
        }
        _ => Err(Errno::EINVAL),
    }
}

//! Raw syscalls and typed wrappers (Linux x86_64 numbers and constants).

use core::arch::asm;
use core::fmt;

pub const SYS_READ: u64 = 0;
pub const SYS_WRITE: u64 = 1;
pub const SYS_CLOSE: u64 = 3;
pub const SYS_MMAP: u64 = 9;
pub const SYS_MPROTECT: u64 = 10;
pub const SYS_MUNMAP: u64 = 11;
pub const SYS_BRK: u64 = 12;
pub const SYS_SCHED_YIELD: u64 = 24;
pub const SYS_MADVISE: u64 = 28;
pub const SYS_MREMAP: u64 = 25;
pub const SYS_GETPID: u64 = 39;
pub const SYS_CLONE: u64 = 56;
pub const SYS_FORK: u64 = 57;
pub const SYS_EXIT: u64 = 60;
pub const SYS_WAIT4: u64 = 61;
pub const SYS_GETPPID: u64 = 110;
pub const SYS_REBOOT: u64 = 169;
pub const SYS_CLOCK_GETTIME: u64 = 228;
pub const SYS_EXIT_GROUP: u64 = 231;
pub const SYS_OPENAT: u64 = 257;

pub const PROT_NONE: u64 = 0;
pub const PROT_READ: u64 = 1;
pub const PROT_WRITE: u64 = 2;
pub const PROT_EXEC: u64 = 4;
pub const MAP_PRIVATE: u64 = 0x02;
pub const MAP_FIXED: u64 = 0x10;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MAP_POPULATE: u64 = 0x8000;
pub const MAP_SHARED: u64 = 0x01;
pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
pub const MAP_NORESERVE: u64 = 0x4000;
pub const MADV_NORMAL: u64 = 0;
pub const MADV_DONTNEED: u64 = 4;
pub const MADV_DONTFORK: u64 = 10;
pub const MADV_DOFORK: u64 = 11;
pub const WNOHANG: u64 = 1;
pub const SIGCHLD: u64 = 17;
pub const SIGSEGV: i32 = 11;
pub const O_WRONLY: u64 = 1;
pub const O_RDWR: u64 = 2;
pub const CLOCK_MONOTONIC: u64 = 1;
pub const AT_FDCWD: i64 = -100;
pub const O_RDONLY: u64 = 0;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_ENTRY: u64 = 9;
pub const AT_RANDOM: u64 = 25;

pub const LINUX_REBOOT_MAGIC1: u64 = 0xfee1_dead;
pub const LINUX_REBOOT_MAGIC2: u64 = 672_274_793;
pub const LINUX_REBOOT_CMD_POWER_OFF: u64 = 0x4321_fedc;

/// A positive error number (`EINVAL` = 22 ...).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i64);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const EBADF: Errno = Errno(9);
    pub const ECHILD: Errno = Errno(10);
    pub const EAGAIN: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EEXIST: Errno = Errno(17);
    pub const ENODEV: Errno = Errno(19);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSYS: Errno = Errno(38);

    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            9 => "EBADF",
            10 => "ECHILD",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            17 => "EEXIST",
            19 => "ENODEV",
            22 => "EINVAL",
            38 => "ENOSYS",
            _ => "E?",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// A raw syscall's result as Linux returns it: `-4095..0` is `-errno`.
pub fn check(ret: u64) -> Result<u64, Errno> {
    let r = ret as i64;
    if (-4095..0).contains(&r) {
        Err(Errno(-r))
    } else {
        Ok(ret)
    }
}

/// A syscall with up to six arguments.
///
/// # Safety
///
/// The arguments must be valid for syscall `nr` (pointers the kernel writes
/// through must be writable memory of the right size, and so on).
#[inline]
pub unsafe fn syscall6(nr: u64, a: [u64; 6]) -> u64 {
    let ret;
    // SAFETY: the syscall instruction clobbers only rax, rcx and r11 (ABI);
    // what it does with memory is the caller's contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `write(fd, buf)`.
pub fn write(fd: u64, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: buf is readable for its length.
    let r = unsafe {
        syscall6(
            SYS_WRITE,
            [fd, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )
    };
    check(r).map(|n| n as usize)
}

/// `read(fd, buf)`.
pub fn read(fd: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is writable for its length.
    let r = unsafe {
        syscall6(
            SYS_READ,
            [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )
    };
    check(r).map(|n| n as usize)
}

/// `openat(AT_FDCWD, path, O_RDONLY)`; `path` must end with a NUL.
pub fn open(path: &[u8]) -> Result<u64, Errno> {
    assert!(path.last() == Some(&0), "path without NUL");
    // SAFETY: path is a readable NUL-terminated string.
    let r = unsafe {
        syscall6(
            SYS_OPENAT,
            [AT_FDCWD as u64, path.as_ptr() as u64, O_RDONLY, 0, 0, 0],
        )
    };
    check(r)
}

/// `openat(AT_FDCWD, path, flags)`; `path` must end with a NUL.
pub fn open_flags(path: &[u8], flags: u64) -> Result<u64, Errno> {
    assert!(path.last() == Some(&0), "path without NUL");
    // SAFETY: path is a readable NUL-terminated string.
    let r = unsafe {
        syscall6(
            SYS_OPENAT,
            [AT_FDCWD as u64, path.as_ptr() as u64, flags, 0, 0, 0],
        )
    };
    check(r)
}

/// `fork()`: the child's pid in the parent, 0 in the child.
pub fn fork() -> Result<u64, Errno> {
    // SAFETY: the child continues from here with a copy of this address
    // space; nothing is shared that either side could corrupt.
    check(unsafe { syscall6(SYS_FORK, [0; 6]) })
}

/// `clone(flags, stack, 0, 0, 0)` (a raw clone: `fork` for flags =
/// SIGCHLD and stack = 0).
///
/// # Safety
///
/// As `fork`; a non-zero `stack` must be usable by the child.
pub unsafe fn clone(flags: u64, stack: u64) -> Result<u64, Errno> {
    // SAFETY: by the contract.
    check(unsafe { syscall6(SYS_CLONE, [flags, stack, 0, 0, 0, 0]) })
}

/// `wait4(pid, &status, options, NULL)`: the reaped child's pid (0 under
/// WNOHANG if none has exited) and its wait status.
pub fn wait4(pid: i64, options: u64) -> Result<(u64, i32), Errno> {
    let mut status = 0i32;
    // SAFETY: status is a writable int.
    let r = unsafe {
        syscall6(
            SYS_WAIT4,
            [pid as u64, &mut status as *mut i32 as u64, options, 0, 0, 0],
        )
    };
    check(r).map(|pid| (pid, status))
}

/// `getppid()`.
pub fn getppid() -> u64 {
    // SAFETY: no arguments.
    unsafe { syscall6(SYS_GETPPID, [0; 6]) }
}

/// `WIFEXITED` / `WEXITSTATUS` / `WIFSIGNALED` / `WTERMSIG`.
pub fn wifexited(w: i32) -> bool {
    w & 0x7f == 0
}
pub fn wexitstatus(w: i32) -> i32 {
    (w >> 8) & 0xff
}
pub fn wifsignaled(w: i32) -> bool {
    ((w & 0x7f) + 1) as i8 >> 1 > 0
}
pub fn wtermsig(w: i32) -> i32 {
    w & 0x7f
}

/// `close(fd)`.
pub fn close(fd: u64) -> Result<(), Errno> {
    // SAFETY: no memory arguments.
    check(unsafe { syscall6(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]) }).map(|_| ())
}

/// `mmap(addr, len, prot, flags, fd, off)`.
pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: i64, off: u64) -> Result<u64, Errno> {
    // SAFETY: mmap only changes this address space; callers use the result.
    check(unsafe { syscall6(SYS_MMAP, [addr, len, prot, flags, fd as u64, off]) })
}

/// `munmap(addr, len)`.
///
/// # Safety
///
/// Nothing live (Rust references) may point into the range.
pub unsafe fn munmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: by the contract.
    check(unsafe { syscall6(SYS_MUNMAP, [addr, len, 0, 0, 0, 0]) }).map(|_| ())
}

/// `mprotect(addr, len, prot)`.
pub fn mprotect(addr: u64, len: u64, prot: u64) -> Result<(), Errno> {
    // SAFETY: changes permissions only; an access they forbid faults.
    check(unsafe { syscall6(SYS_MPROTECT, [addr, len, prot, 0, 0, 0]) }).map(|_| ())
}

/// `madvise(addr, len, advice)`.
///
/// # Safety
///
/// `MADV_DONTNEED` zeroes the range: nothing may rely on its contents.
pub unsafe fn madvise(addr: u64, len: u64, advice: u64) -> Result<(), Errno> {
    // SAFETY: by the contract.
    check(unsafe { syscall6(SYS_MADVISE, [addr, len, advice, 0, 0, 0]) }).map(|_| ())
}

/// `MREMAP_MAYMOVE`, `MREMAP_FIXED`, `MREMAP_DONTUNMAP`.
pub const MREMAP_MAYMOVE: u64 = 1;
pub const MREMAP_FIXED: u64 = 2;
pub const MREMAP_DONTUNMAP: u64 = 4;

/// `mremap(old, old_len, new_len, flags, new_addr)`: the new address.
///
/// # Safety
///
/// Nothing live (Rust references) may point into the old range.
pub unsafe fn mremap(
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Result<u64, Errno> {
    // SAFETY: by the contract.
    check(unsafe { syscall6(SYS_MREMAP, [old, old_len, new_len, flags, new_addr, 0]) })
}

/// `brk(addr)`: the new break (the old one if it could not move).
pub fn brk(addr: u64) -> u64 {
    // SAFETY: moving the break only maps or unmaps the heap past it.
    unsafe { syscall6(SYS_BRK, [addr, 0, 0, 0, 0, 0]) }
}

/// `getpid()`.
pub fn getpid() -> u64 {
    // SAFETY: no arguments.
    unsafe { syscall6(SYS_GETPID, [0; 6]) }
}

/// `sched_yield()`.
pub fn sched_yield() {
    // SAFETY: no arguments.
    unsafe { syscall6(SYS_SCHED_YIELD, [0; 6]) };
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = [0u64; 2];
    // SAFETY: ts is a writable struct timespec.
    let r = unsafe {
        syscall6(
            SYS_CLOCK_GETTIME,
            [CLOCK_MONOTONIC, ts.as_mut_ptr() as u64, 0, 0, 0, 0],
        )
    };
    match check(r) {
        Ok(_) => ts[0] * 1_000_000_000 + ts[1],
        Err(_) => 0,
    }
}

/// `exit(status)`.
pub fn exit(status: i32) -> ! {
    // SAFETY: does not return.
    unsafe { syscall6(SYS_EXIT, [status as u64, 0, 0, 0, 0, 0]) };
    unreachable!("exit returned")
}

/// `exit_group(status)`.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: does not return.
    unsafe { syscall6(SYS_EXIT_GROUP, [status as u64, 0, 0, 0, 0, 0]) };
    unreachable!("exit_group returned")
}

/// `reboot(LINUX_REBOOT_CMD_POWER_OFF)`: returns only on error.
pub fn power_off() -> Errno {
    // SAFETY: powers the machine off.
    let r = unsafe {
        syscall6(
            SYS_REBOOT,
            [
                LINUX_REBOOT_MAGIC1,
                LINUX_REBOOT_MAGIC2,
                LINUX_REBOOT_CMD_POWER_OFF,
                0,
                0,
                0,
            ],
        )
    };
    check(r).err().unwrap_or(Errno(0))
}

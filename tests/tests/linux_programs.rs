//! `cargo test` target: unmodified static Linux programs as the kernel's
//! PID 1, held against the host's Linux running the same binary.
//!
//! Each program of `tests/programs/` is built here into
//! `CARGO_TARGET_TMPDIR`: a C program three ways, each its own test
//! ([`c_program!`]: `NAME::musl` with `musl-gcc -static`, `NAME::glibc`
//! with `gcc -static`, `NAME::glibc_static_pie` with `gcc -static-pie`),
//! the libc-free one with `gcc -nostdlib`, the Rust one with cargo for
//! `x86_64-unknown-linux-musl`. Then each build is
//!
//! 1. run on the host: argv[0] `/init`, the same arguments, an empty
//!    environment, stdin `/dev/null`, stdout a pipe;
//! 2. booted under QEMU with [`boot::QemuConfig::with_program`]: packed as
//!    `/init`, run as PID 1 with the kernel's `quiet` log;
//! 3. compared: the serial log is split into the program's lines and the
//!    kernel's Linux-style lines (`NAME[PID]: ...`, `init: exited ...`); the
//!    program's lines from `NAME: start` on must equal the host's, except
//!    lines starting with `~`, which carry kernel-dependent numbers; init's
//!    exit status must equal the host's; a run that exits 0 must end in
//!    `Verdict::Success` (no leaked frame); and the kernel may print no
//!    line but the ones a program expects (a segfault it causes on purpose).
//!
//! The programs write only to stdout (so stdout and stderr cannot
//! interleave differently) and print facts that hold on any Linux rather
//! than numbers that differ between kernels.
//!
//! musl-gcc, glibc's static libraries (`libc6-dev`) and the musl target
//! are required: their absence fails the tests with a pointer to
//! `./scripts/setup.sh`, which installs them.

use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use boot::{InitExit, Verdict};

/// QEMU locks the disk image for writing: one boot of it at a time (the
/// tests of this file run in parallel threads otherwise).
static IMAGE: Mutex<()> = Mutex::new(());

/// How long one boot may take (each takes seconds under TCG).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the missing-tool failures tell the reader to do.
const SETUP_HINT: &str = "run ./scripts/setup.sh, which installs musl-tools, libc6-dev and \
     the x86_64-unknown-linux-musl target";

/// How a program is built.
#[derive(Clone, Copy)]
enum Build {
    /// `tests/programs/c/NAME.c` with `musl-gcc -static`.
    Musl,
    /// `tests/programs/c/NAME.c` with `gcc -static` (glibc, `ET_EXEC`).
    Glibc,
    /// `tests/programs/c/NAME.c` with `gcc -static-pie` (glibc, `ET_DYN`
    /// without an interpreter: glibc relocates itself at start).
    GlibcStaticPie,
    /// `tests/programs/c/NAME.c` with `gcc -static -nostdlib -ffreestanding`.
    NoLibc,
    /// `tests/programs/rust-std` with cargo, target x86_64-unknown-linux-musl:
    /// rustc's default there is a static-pie (`ET_DYN`, self-relocating).
    RustStd,
}

/// One program: how to build it, its arguments, and the kernel lines its
/// run must produce (substrings; each must appear in some kernel line).
struct Program {
    name: &'static str,
    build: Build,
    args: &'static [&'static str],
    expected_kernel_lines: &'static [&'static str],
    /// Kernel parameters besides `quiet` (a mode to run the program in).
    params: &'static str,
    /// Host lines that this kernel's mode prints differently on purpose,
    /// and what it prints instead (each must be in the host's output).
    host_lines_replaced: &'static [(&'static str, &'static str)],
    /// Lines the guest's output must hold (`~` lines too: what the host
    /// cannot show, e.g. a setting of this kernel's mode).
    guest_lines: &'static [&'static str],
    /// QEMU's CPU count (`--smp`): 1 unless the program is about several.
    smp: u32,
}

impl Program {
    const fn new(name: &'static str, build: Build) -> Self {
        Self {
            name,
            build,
            args: &[],
            expected_kernel_lines: &[],
            params: "",
            host_lines_replaced: &[],
            guest_lines: &[],
            smp: 1,
        }
    }
}

/// Three tests for the C program `tests/programs/c/NAME.c`, in a module
/// `NAME`: `musl`, `glibc` and `glibc_static_pie`, one per build
/// ([`Build`]), each compared with the same binary run on the host
/// ([`check`]). `args: [..]` are the program's arguments; `musl_only:
/// "why"` makes just the `musl` test, for a program that glibc cannot run
/// here yet (the reason says what is missing).
macro_rules! c_program {
    ($(#[$doc:meta])* $name:ident $(, args: [$($arg:literal),* $(,)?])?) => {
        c_program!(@module $(#[$doc])* $name [$($($arg),*)?] {
            #[test]
            fn glibc() {
                check(&program(Build::Glibc));
            }

            #[test]
            fn glibc_static_pie() {
                check(&program(Build::GlibcStaticPie));
            }
        });
    };
    ($(#[$doc:meta])* $name:ident, musl_only: $why:literal) => {
        c_program!(@module $(#[$doc])* $name [] {
            const _GLIBC_MISSING: &str = $why;
        });
    };
    (@module $(#[$doc:meta])* $name:ident [$($arg:literal),*] { $($glibc:tt)* }) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::{Build, Program, check};

            fn program(build: Build) -> Program {
                Program {
                    args: &[$($arg),*],
                    ..Program::new(stringify!($name), build)
                }
            }

            #[test]
            fn musl() {
                check(&program(Build::Musl));
            }

            $($glibc)*
        }
    };
}

c_program!(
    /// malloc of 1 B .. 1 MiB: brk and mmap-sized blocks.
    mallocs
);

c_program!(
    /// /proc/self/status, /proc/self/maps and /proc/meminfo.
    procstatus
);

c_program!(
    /// mlock, mlock2 (MLOCK_ONFAULT), munlock, mlockall, munlockall and
    /// MAP_LOCKED: errnos, the VMAs split and merged back, VmLck, which
    /// pages the call faulted in, and a fork child inheriting no lock.
    mlock
);

c_program!(
    /// mseal: its errnos, the VMAs sealing splits, what a sealed mapping
    /// refuses with EPERM (munmap, mprotect, mremap, MAP_FIXED, discarding
    /// madvise of sealed read-only memory) and allows, in a fork child too.
    mseal
);

c_program!(
    /// fork + wait4 exit statuses, SIGSEGV of a child, CoW. The child that
    /// writes through NULL is reported by Linux at KERN_INFO, which
    /// `quiet` hides (only init's own segfault shows): so no kernel line
    /// at all, which `check` asserts.
    forkwait
);

c_program!(
    /// POSIX threads: create/join, gettid, TLS, a contended mutex, condvars,
    /// a barrier, Threads: and /proc/self/task/, exit() from a thread,
    /// pthread_exit in main, a robust mutex whose owner died, fork of a
    /// threaded process, detached threads.
    pthreads
);

c_program!(
    /// One address space under several threads: parallel first touch,
    /// MADV_DONTNEED racing faults, munmap/mprotect/madvise against user
    /// copies, fork while threads write (CoW).
    mmthreads
);

c_program!(
    /// MAP_SHARED | MAP_ANONYMOUS shared with forked children both ways,
    /// pages touched before and after fork, MADV_DONTNEED re-reading the
    /// object, mprotect of part of it, mremap growing and moving it (SIGBUS
    /// past the object), its /proc/self/maps line and RssShmem, and a
    /// shared futex waking a process that maps it at another address.
    sharedanon
);

c_program!(
    /// memfd_create files: read/write/pread/pwrite/lseek/fstat, ftruncate
    /// both ways (SIGBUS in shared and private mappings past the new
    /// end), fallocate, MAP_SHARED pages shared with the fd and a forked
    /// child, MAP_PRIVATE copy-on-write from the file, the maps name,
    /// Shmem in /proc/meminfo, and the seals with Linux's errnos.
    memfd
);

c_program!(
    /// tmpfs in /dev/shm and /tmp: open flags, unlink of an open mapped
    /// file, mkdir/rmdir/rename and their errnos, getdents64, a file
    /// truncated under a parent's and a child's mappings, O_TMPFILE,
    /// shm_open.
    tmpfs
);

c_program!(
    /// fallocate(PUNCH_HOLE) under shared and private mappings, msync's
    /// errnos, fsync/fdatasync, umask on created files and over fork,
    /// lseek(SEEK_DATA/SEEK_HOLE) on memfd and tmpfs files.
    fileops
);

c_program!(
    /// /proc/meminfo's Mapped, Shmem, Cached and Dirty deltas as shmem
    /// files are written, mapped shared and private, CoW-copied, forked,
    /// unmapped and closed, and for shared anonymous memory.
    meminfo
);

c_program!(
    /// A stack grown down on use to 3 MiB.
    stack,
    args: ["3000"]
);

c_program!(
    /// /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom: stat,
    /// reads, writes, seeks, ioctls; O_CREAT | O_EXCL gives EEXIST.
    devfiles
);

c_program!(
    /// What libc start-up relies on: auxv (AT_PHDR, AT_ENTRY, AT_RANDOM,
    /// AT_EXECFN, AT_MINSIGSTKSZ ..), the stack canary, TLS, ifuncs,
    /// readlink of /proc/self/exe, prctl names and /proc/self/comm,
    /// time(), isatty of a pipe, atexit.
    libcstart
);

c_program!(
    /// opendir/readdir of /, /dev, /proc, /proc/self, /sys; getdents64 and
    /// getdents records, resuming, rewinding and their errors.
    dirents
);

c_program!(
    /// 141 errno cases (bad pointers, fds, flags; user copies at page edges,
    /// into read-only, PROT_NONE and copy-on-write pages) that must match Linux.
    errno
);

c_program!(
    /// Signal handlers and their siginfo, masks, real-time queueing,
    /// sigsuspend, pause, nanosleep and read interrupted (EINTR,
    /// SA_RESTART), the alternate stack, the FPU across a handler, a
    /// register set through the ucontext, default actions (abort, SIGPIPE,
    /// SA_RESETHAND, SIGTERM, SIGKILL, SIGSTOP/SIGCONT), SIGCHLD.
    signals
);

c_program!(
    /// Faults as signals with Linux's siginfo: SEGV_MAPERR/ACCERR and
    /// si_addr, a fault repaired by mprotect and resumed, ud2 skipped
    /// through the ucontext, SIGFPE, SIGTRAP, a stack overflow caught on
    /// the alternate stack; the same faults kill children.
    sigfault
);

c_program!(
    /// Signals among threads: pthread_kill reaches its thread, a signal
    /// to the process goes to a thread that does not block it, masks are
    /// per thread, sigwait in a thread, EINTR in the handler's thread,
    /// tgkill's errnos, and a fatal signal, abort() and exit() in a thread
    /// ending every thread.
    threadsig
);

c_program!(
    /// A program re-executing itself: execve of /proc/self/exe and of
    /// /proc/<parent>/exe (comm "exe", the new image's exe link the
    /// file), posix_spawn of it (CLONE_VM | CLONE_VFORK), ENOENT for a
    /// pid nobody has, and execve from a second thread.
    reexec
);

c_program!(
    /// alarm, setitimer and getitimer (ITIMER_REAL): alarm's rounded
    /// return, SIGALRM (SI_KERNEL) ending pause and interrupting a sleep,
    /// a periodic timer read back, NULL disarming, the errnos, fork not
    /// inheriting the timer and a child killed by its own SIGALRM.
    itimer
);

c_program!(
    /// Signal rules beyond signals.c: the default action of every
    /// standard signal but the stops, children reaped by the kernel when
    /// SIGCHLD is ignored or has SA_NOCLDWAIT, faults killing through a
    /// blocked or ignored SIGSEGV, a frame that cannot be pushed
    /// (SIGSEGV), SS_ONSTACK and EPERM on the alternate stack, SIGKILL and
    /// SIGSTOP never blocked, kill of a zombie.
    sigmisc
);

c_program!(
    /// clone(2), clone3(2) and vfork(2): the flag combinations and clone3
    /// arguments Linux refuses (EINVAL, E2BIG, EFAULT), the exit signal a
    /// child chooses (SIGUSR1 or none) with its siginfo, wait4 reaping
    /// such a clone child only with __WCLONE or __WALL, vfork and
    /// CLONE_VM children writing the parent's memory while it sleeps,
    /// PARENT_SETTID, CHILD_SETTID and CHILD_CLEARTID's wake at exit.
    clone
);

c_program!(
    /// futex(2) called directly: FUTEX_WAIT's EAGAIN, wake counts,
    /// bitsets, REQUEUE/CMP_REQUEUE counts and EAGAIN, every WAKE_OP
    /// operation and comparison (a shift taken mod 32), timeouts relative
    /// and absolute on both clocks, the argument errors in Linux's order
    /// (shared futexes at unmapped or read-only private pages EFAULT, and
    /// keyed apart from private ones), EINTR of a timed wait under
    /// SA_RESTART and the restart of an untimed one.
    futex
);

c_program!(
    /// /proc/PID of a child: status, stat (with the arg/env addresses),
    /// statm, cmdline and environ as exec laid them out, exe, task/,
    /// oom_score_adj written and range-checked, oom_score following it;
    /// /proc lists the child; ENOENT for a pid nobody has.
    procpid
);

c_program!(
    /// Memory-deny-write-execute: PR_SET_MDWE/PR_GET_MDWE's errnos, bits
    /// never taken back, mmap/mprotect refusing W+X and exec gain
    /// (EACCES), inheritance over fork and exec and PR_MDWE_NO_INHERIT.
    mdwe
);

c_program!(
    /// /proc/self/smaps and smaps_rollup of a known layout (private,
    /// zero-page, read-only, shared anonymous, copy-on-write and 64 KiB
    /// regions) before fork, in the child, in the parent while the child
    /// lives and after it exits: Rss, Pss, Shared/Private Clean/Dirty,
    /// Anonymous, VmFlags; the field order, the header lines against
    /// maps, the rollup against the sum.
    smaps
);

c_program!(
    /// /proc/self/pagemap and /proc/PID/pagemap of private, zero-page,
    /// PROT_NONE, shared and CoW pages before fork, in the child, in the
    /// parent and after the child's exit (present, file, exclusive,
    /// soft-dirty bits, PFN shown); lseek/pread at vaddr / 4096 * 8,
    /// EINVAL for unaligned positions and counts and SEEK_END, 0 bytes
    /// past user space and after the child's exit, EFAULT.
    pagemap
);

c_program!(
    /// /proc/kpagecount and /proc/kpageflags of the frames behind
    /// private, zero-page, shared and 64 KiB regions (found through
    /// pagemap) before fork, while a child maps them and after it exits;
    /// EINVAL for unaligned reads, 0 bytes past the last frame.
    kpage
);

/// `kpage.c` with 64 KiB folios: the counts per page as on the host's
/// 4 KiB pages, and the compound head/tail and THP bits of the folio.
#[test]
fn kpage_of_large_folios_with_page_mapcounts_match_linux() {
    check(&Program {
        params: "thp_anon=64K:always",
        guest_lines: &[
            "~before large compound: Hthp Tthp Tthp Tthp Tthp Tthp Tthp Tthp Tthp Tthp Tthp \
             Tthp Tthp Tthp Tthp Tthp",
        ],
        ..Program::new("kpage", Build::Musl)
    });
}

/// `kpage.c` with `page_mapcount=off`: kpagecount gives every page of
/// the half-copied 64 KiB folio its average, (24 + 8) >> 4 = 2, where
/// the host's pages say 2 and 1 (Linux 6.15's documented change).
#[test]
fn kpagecount_without_page_mapcounts_is_the_folio_average() {
    check(&Program {
        params: "thp_anon=64K:always page_mapcount=off",
        host_lines_replaced: &[(
            "parent large: 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 1mas 1mas 1mas 1mas 1mas 1mas \
             1mas 1mas",
            "parent large: 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas 2mas \
             2mas 2mas",
        )],
        ..Program::new("kpage", Build::Musl)
    });
}

/// The smaps of `smaps.c` with 64 KiB anonymous folios
/// (`thp_anon=64K:always`): with per-page mapcounts a folio half copied
/// away after fork counts page by page, exactly as Linux's 4 KiB pages
/// on the host; THPeligible shows the 64 KiB size enabled.
#[test]
fn smaps_of_large_folios_with_page_mapcounts_match_linux() {
    check(&Program {
        params: "thp_anon=64K:always",
        guest_lines: &["~before large THPeligible 1"],
        ..Program::new("smaps", Build::Musl)
    });
}

/// The same with `page_mapcount=off` (Linux 6.15's
/// `CONFIG_NO_PAGE_MAPCOUNT`): every line as on the host but the one
/// Linux documents to differ, the parent's view of the half-copied
/// folio while the child lives: its 24 PTE mappings over 16 pages
/// average 2 per page and the folio is maybe mapped shared, so all
/// 64 KiB are shared with Pss 32 KiB (per page: 32 KiB shared, 32 KiB
/// private, Pss 48 KiB). The child's view agrees with per-page counts
/// (its 8 pages of the folio are mapped twice either way).
#[test]
fn smaps_without_page_mapcounts_use_the_folio_average() {
    check(&Program {
        params: "thp_anon=64K:always page_mapcount=off",
        host_lines_replaced: &[(
            "parent large: Size 64 Rss 64 Pss 48 Pss_Dirty 48 Shared_Clean 0 Shared_Dirty 32 \
             Private_Clean 0 Private_Dirty 32 Anonymous 64 Swap 0 Locked 0 VmFlags rd wr mr mw me ac",
            "parent large: Size 64 Rss 64 Pss 32 Pss_Dirty 32 Shared_Clean 0 Shared_Dirty 64 \
             Private_Clean 0 Private_Dirty 0 Anonymous 64 Swap 0 Locked 0 VmFlags rd wr mr mw me ac",
        )],
        guest_lines: &["~before large THPeligible 1"],
        ..Program::new("smaps", Build::Musl)
    });
}

/// `softdirty.c`: /proc/PID/clear_refs (its mode, errnos and the 12
/// bytes it reads), the data of pages written around clear_refs 4 (also
/// across fork), smaps' Referenced after clear_refs 1-3, VmHWM and VmPeak
/// kept over an munmap and VmHWM reset by clear_refs 5, all as on the
/// host. Soft-dirty itself: the host may be built without
/// `CONFIG_MEM_SOFT_DIRTY` (those lines start with `~`); this kernel has it,
/// as distributions build Linux, and must print Linux's soft-dirty rules
/// ([`SOFT_DIRTY_LINES`]).
mod softdirty {
    use super::{Build, Program, check};

    /// New VMAs soft-dirty as a whole; clear_refs 4 clears VMAs and
    /// PTEs; a read marks nothing, a write marks its page; mprotect keeps
    /// the bits; after fork each side's write marks its own copy; a VMA
    /// merged with a new neighbour is soft-dirty as a whole (6.19's
    /// `VM_STICKY`); mremap marks the PTEs it moves, not the VMA.
    const SOFT_DIRTY_LINES: &[&str] = &[
        "~new:1111",
        "~new sd: yes",
        "~cleared:0000",
        "~cleared sd: no",
        "~after reads:0000",
        "~after writes:0101",
        "~after mprotect:0101",
        "~child:1000",
        "~parent:0010",
        "~merged:11111",
        "~merged sd: yes",
        "~moved:11110",
    ];

    fn program(build: Build) -> Program {
        Program {
            guest_lines: SOFT_DIRTY_LINES,
            ..Program::new("softdirty", build)
        }
    }

    #[test]
    fn musl() {
        check(&program(Build::Musl));
    }

    #[test]
    fn glibc() {
        check(&program(Build::Glibc));
    }

    #[test]
    fn glibc_static_pie() {
        check(&program(Build::GlibcStaticPie));
    }
}

c_program!(
    /// MAP_DROPPABLE (a mapping type of its own: EINVAL with PRIVATE,
    /// SHARED, LOCKED, GROWSDOWN), fork children getting droppable and
    /// MADV_WIPEONFORK memory empty, MADV_KEEPONFORK/MADV_DODUMP refused
    /// on droppable memory, WIPEONFORK on shared memory EINVAL.
    droppable
);

c_program!(
    /// process_vm_readv/writev on itself and a child: iovec shapes, a
    /// write into the child's CoW page, partial counts at unmapped pages
    /// and bad local buffers, EINVAL/EFAULT/ESRCH (a zombie too).
    pvm
);

c_program!(
    /// pidfd_open, pidfd_send_signal (scope flags, siginfo checks), poll
    /// on a pidfd (timeout, POLLIN at exit, POLLHUP once reaped) and
    /// process_mrelease (EINVAL for a live process, after SIGKILL, ESRCH
    /// for a zombie, EBADF).
    pidfd
);

c_program!(
    /// /proc/PID/mem of itself and a child: FOLL_FORCE writes into
    /// read-only private memory (a private copy, still read-only; the
    /// parent's copy untouched), EIO for shared read-only memory and
    /// holes, PROT_NONE reads, short reads, EFAULT, 0 once the child is gone.
    procmem
);

#[test]
fn rawsys_runs_without_libc() {
    check(&Program {
        args: &["one", "two"],
        ..Program::new("rawsys", Build::NoLibc)
    });
}

#[test]
fn rust_std_program_exits_with_its_code() {
    check(&Program {
        args: &["alpha", "beta", "exit=3"],
        ..Program::new("rust-std", Build::RustStd)
    });
}

/// std's threads (spawn/join, scoped threads, Mutex, mpsc, Barrier,
/// Condvar, RwLock, thread-locals) over clone, futexes and TLS, as on the
/// host.
#[test]
fn rust_std_threads_run_like_linux() {
    check(&Program {
        args: &["threads"],
        ..Program::new("rust-std", Build::RustStd)
    });
}

/// std's stack-overflow report: its SIGSEGV handler, on the alternate
/// stack std set up, sees the fault and names it (the child's stderr is
/// read through a pipe and printed by the parent), then the child dies
/// of the signal std raises, as on the host.
#[test]
fn rust_std_stack_overflow_is_reported_like_linux() {
    check(&Program {
        args: &["overflow"],
        ..Program::new("rust-std", Build::RustStd)
    });
}

/// Builds `prog`, runs it on the host and under QEMU, and asserts that the
/// two runs agree (see the module header for what "agree" means).
/// execve of packed programs (after fork and after vfork), a file packed
/// with `--file`, the command line's `NAME=VALUE` in init's environment
/// and in /proc/cmdline, `thp_anon=` in the mTHP sysfs files, words
/// after `--` in argv, kill of a looping
/// child. QEMU only: the host has no /init nor the packed file, so the
/// expected lines are fixed here rather than taken from a host run.
#[test]
fn execve_packed_files_cmdline_and_kill() {
    let bin = build(&Program::new("execkill", Build::Musl));
    let note = out_dir().join("note.txt");
    std::fs::write(&note, "note for the test\n").expect("write the packed file");
    let mut cfg = program_config(&bin, &[]);
    cfg.files.push(boot::PackedFile {
        host: note,
        guest: "/data/note.txt".into(),
    });
    cfg.cmdline = boot::cmdline_with_args("quiet mode=fast thp_anon=64K:always", ["fromcmd"]);
    let out = boot_one(&cfg);
    let want = "\
execkill: start
argv[1] from the command line: fromcmd
env mode=fast
packed file: note for the test
/proc/cmdline has mode=fast: yes
hugepages-16kB/enabled: always inherit madvise [never]
hugepages-64kB/enabled: [always] inherit madvise never
exec'd: argv[0] /init, argc 2
fork+execve child exited 9
exec'd: argv[0] /init, argc 2
vfork+execve child exited 9
execve of a missing file: -1, ENOENT: yes
execve of a non-executable file: EACCES: yes
looping child killed by SIGTERM: yes
kill of a missing pid: ESRCH: yes
execkill: done
init: exited with status 0
";
    // From the program's first line on (firmware may print before it).
    let from = out.serial.find("execkill: start").unwrap_or(0);
    assert_eq!(&out.serial[from..], want, "serial log:\n{}", out.serial);
    assert_eq!(out.init_exit, Some(InitExit::Exited(0)));
    assert_eq!(out.verdict, Verdict::Success);
}

/// Every CPU is online and seen by programs (`cpus.c`) at `--smp 2`:
/// two `processor` entries of /proc/cpuinfo with their APIC ids, a
/// two-CPU affinity mask, sysconf's count. QEMU only: the host's CPU
/// count is its own, so the expected lines are fixed here.
#[test]
fn cpuinfo_shows_every_cpu_at_smp_2() {
    let bin = build(&Program::new("cpus", Build::Musl));
    let cfg = boot::QemuConfig {
        smp: 2,
        ..program_config(&bin, &[])
    };
    let out = boot_one(&cfg);
    let want = "\
cpus: start
processor 0 apicid 0 initial apicid 0
processor 1 apicid 1 initial apicid 1
cpuinfo: 2 processors
sched_getaffinity: 2 CPUs
sysconf(_SC_NPROCESSORS_ONLN): 2
cpus: done
init: exited with status 0
";
    let from = out.serial.find("cpus: start").unwrap_or(0);
    assert_eq!(&out.serial[from..], want, "serial log:\n{}", out.serial);
    assert_eq!(out.init_exit, Some(InitExit::Exited(0)));
    assert_eq!(out.verdict, Verdict::Success);
}

/// Programs at `--smp 2`, where the threads of one process run on both
/// CPUs (the host they are compared with has two or more).
mod smp_2 {
    use super::{Build, Program, check};

    fn at_smp_2(name: &'static str, build: Build) -> Program {
        Program {
            smp: 2,
            ..Program::new(name, build)
        }
    }

    /// Two threads pinned to CPUs 0 and 1 (one by itself, one by the main
    /// thread through its tid) run there, as getcpu, field 39 of
    /// /proc/thread-self/stat and sched_getaffinity show; the errnos of
    /// sched_setaffinity, sched_getaffinity and getcpu. At `--smp 1`
    /// pinning to CPU 1 is EINVAL and the output differs from the host's.
    #[test]
    fn smpcpus_musl() {
        check(&at_smp_2("smpcpus", Build::Musl));
    }

    #[test]
    fn smpcpus_glibc() {
        check(&at_smp_2("smpcpus", Build::Glibc));
    }

    /// The thread programs again, their threads now on two CPUs.
    #[test]
    fn pthreads_musl() {
        check(&at_smp_2("pthreads", Build::Musl));
    }

    #[test]
    fn mmthreads_musl() {
        check(&at_smp_2("mmthreads", Build::Musl));
    }

    #[test]
    fn threadsig_musl() {
        check(&at_smp_2("threadsig", Build::Musl));
    }

    #[test]
    fn forkwait_musl() {
        check(&at_smp_2("forkwait", Build::Musl));
    }
}

/// Random syscall numbers with hostile arguments in forked children
/// (`sysfuzz.c`): the kernel survives, init exits 0, frames balance.
#[test]
fn random_syscalls_never_crash_the_kernel() {
    let bin = build(&Program::new("sysfuzz", Build::Musl));
    let cfg = program_config(&bin, &["30", "400"]);
    let out = boot_one(&cfg);
    let log = &out.serial;
    assert!(log.contains("sysfuzz: done"), "serial log:\n{log}");
    assert_eq!(log.matches("child ").count(), 30, "serial log:\n{log}");
    assert!(
        !log.contains("BUG") && !log.contains("panic"),
        "serial log:\n{log}"
    );
    assert_eq!(
        out.init_exit,
        Some(InitExit::Exited(0)),
        "serial log:\n{log}"
    );
    assert_eq!(out.verdict, Verdict::Success, "serial log:\n{log}");
}

/// Issue 16's frame leak (`oomstorm.c`), in a 128 MiB guest: a child
/// killed for memory mid-fault, 32 MiB mapped, touched and unmapped, then
/// fork until it fails (every kernel-stack slot taken: ~1020 children
/// asleep in `pause()`), `kill(-1, SIGKILL)` and all reaped. Every frame
/// must come back: the old kernel reported 31 frames missing (the page
/// tables the stack slots had allocated for good) and 4 more once
/// `pause()` slept (the grown task list). QEMU only.
#[test]
fn oom_kill_and_fork_storm_give_every_frame_back() {
    let bin = build(&Program::new("oomstorm", Build::Musl));
    let cfg = boot::QemuConfig {
        mem_mib: 128,
        ..program_config(&bin, &["oom,big,storm", "32"])
    };
    let out = boot_one(&cfg);
    let log = &out.serial;
    let from = log.find("oomstorm: start").unwrap_or(0);
    let lines: Vec<&str> = log[from..].lines().collect();
    // First: the leak check's verdict (`BUG: process exit leaked frames`).
    assert!(
        !log.contains("BUG") && !log.contains("panic"),
        "serial log:\n{log}"
    );
    let want_prefix = [
        "oomstorm: start",
        "Out of memory: Killed process 2 (init)",
        "oom: child killed by signal 9",
        "big: touched 32 MiB, munmap 0",
        "~storm: fork failed after ",
        "storm: reaped all: yes, killed by SIGKILL: yes, wait then: ECHILD",
        "oomstorm: done",
        "init: exited with status 0",
    ];
    assert_eq!(lines.len(), want_prefix.len(), "serial log:\n{log}");
    for (line, want) in lines.iter().zip(want_prefix) {
        assert!(
            line.contains(want),
            "{line:?} is not {want:?}; serial log:\n{log}"
        );
    }
    // Fork failed for want of a kernel stack, not of memory.
    assert!(
        lines[4].ends_with("children: Resource temporarily unavailable"),
        "serial log:\n{log}"
    );
    let forked: u32 = lines[4]
        .trim_start_matches("~storm: fork failed after ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(forked > 1000, "only {forked} children; serial log:\n{log}");
    assert_eq!(
        out.init_exit,
        Some(InitExit::Exited(0)),
        "serial log:\n{log}"
    );
    assert_eq!(out.verdict, Verdict::Success, "serial log:\n{log}");
    eprintln!(
        "oomstorm: {forked} children, {:.1} s",
        out.elapsed.as_secs_f64()
    );
}

/// The kernel image booting `bin` as init with `args`, quiet, silent on
/// our stdout, with the boot timeout.
fn program_config(bin: &Path, args: &[&str]) -> boot::QemuConfig {
    boot::QemuConfig {
        echo: false,
        timeout: Some(BOOT_TIMEOUT),
        ..boot::QemuConfig::with_program(boot::KERNEL_BIOS_IMAGE, bin, args)
    }
}

/// Boots `cfg`, one boot at a time (QEMU locks the disk image).
fn boot_one(cfg: &boot::QemuConfig) -> boot::Outcome {
    let _image = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    boot::run(cfg).expect("QEMU runs")
}

fn check(prog: &Program) {
    let bin = build(prog);
    let host = run_host(&bin, prog.args);
    assert!(
        host.stdout.starts_with(&format!("{}: start\n", prog.name)),
        "{} on the host does not start with its start line:\n{}{}",
        prog.name,
        host.stdout,
        host.stderr
    );
    assert!(
        host.stderr.is_empty(),
        "{} wrote to stderr on the host:\n{}",
        prog.name,
        host.stderr
    );

    let mut host = host;
    for (from, to) in prog.host_lines_replaced {
        let line = format!("{from}\n");
        assert!(
            host.stdout.contains(&line),
            "{}: no host line {from:?} to replace:\n{}",
            prog.name,
            host.stdout
        );
        host.stdout = host.stdout.replace(&line, &format!("{to}\n"));
    }

    let mut cfg = program_config(&bin, prog.args);
    cfg.smp = prog.smp;
    if !prog.params.is_empty() {
        cfg.cmdline =
            boot::cmdline_with_args(&format!("quiet {}", prog.params), prog.args.iter().copied());
    }
    let out = boot_one(&cfg);
    let guest = split_serial(&out.serial);
    // Everything needed to judge a failure, in one block.
    let report = |what: &str| {
        format!(
            "{name}: {what}\n\
             --- host: {host_exit:?} ---\n{host_out}\
             --- guest: {guest_exit:?}, {verdict:?}, {secs:.1} s ---\n\
             kernel lines:\n{kernel}\n\
             --- serial log ---\n{serial}--- end of serial log ---",
            name = prog.name,
            host_exit = host.exit,
            host_out = host.stdout,
            guest_exit = out.init_exit,
            verdict = out.verdict,
            secs = out.elapsed.as_secs_f64(),
            kernel = guest.kernel.join("\n"),
            serial = out.serial,
        )
    };

    let start = format!("{}: start", prog.name);
    let Some(begin) = guest.program.iter().position(|l| *l == start) else {
        panic!(
            "{}",
            report(&format!("no {start:?} line in the guest's output"))
        );
    };
    let diff = diff_lines(
        &compared(host.stdout.lines()),
        &compared(guest.program[begin..].iter().copied()),
    );
    assert!(
        diff.is_empty(),
        "{}",
        report(&format!(
            "output differs from the host's (- host, + guest):\n{}",
            diff.join("\n")
        ))
    );
    assert_eq!(
        out.init_exit,
        Some(host.exit),
        "{}",
        report("init's exit status differs from the host's")
    );
    if host.exit == InitExit::Exited(0) {
        assert_eq!(
            out.verdict,
            Verdict::Success,
            "{}",
            report("exit 0 but no success verdict (leaked frames?)")
        );
    }
    for want in prog.guest_lines {
        assert!(
            guest.program.contains(want),
            "{}",
            report(&format!("no line {want:?} in the guest's output"))
        );
    }
    for want in prog.expected_kernel_lines {
        assert!(
            guest.kernel.iter().any(|l| l.contains(want)),
            "{}",
            report(&format!("no kernel line with {want:?}"))
        );
    }
    let unexpected: Vec<&str> = guest
        .kernel
        .iter()
        .copied()
        .filter(|l| !is_init_exit_line(l))
        .filter(|l| !prog.expected_kernel_lines.iter().any(|w| l.contains(w)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}",
        report(&format!(
            "unexpected kernel lines (Linux prints none of these):\n{}",
            unexpected.join("\n")
        ))
    );
}

// ---------------------------------------------------------------------------
// Building

/// `tests/programs/`.
fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// Where built programs go.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linux-programs");
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

/// Builds `prog` and returns the path of its static executable.
fn build(prog: &Program) -> PathBuf {
    /// A static, non-PIE executable.
    const STATIC: &[&str] = &["-static", "-no-pie"];
    match prog.build {
        Build::Musl => build_c(prog.name, "musl-gcc", STATIC, &[]),
        // The stack protector on, as distributions build: the canary
        // glibc sets up from AT_RANDOM is checked on every return.
        Build::Glibc => build_c(prog.name, "gcc", STATIC, &["-fstack-protector-strong"]),
        Build::GlibcStaticPie => build_c(
            prog.name,
            "gcc",
            &["-static-pie", "-fPIE"],
            &["-fstack-protector-strong"],
        ),
        Build::NoLibc => build_c(
            prog.name,
            "gcc",
            STATIC,
            &[
                "-nostdlib",
                "-ffreestanding",
                "-fno-builtin",
                "-fno-tree-loop-distribute-patterns",
                "-fno-stack-protector",
            ],
        ),
        Build::RustStd => build_rust_std(),
    }
}

/// Compiles `c/NAME.c` with `cc LINK -O2 -Wall -Wextra FLAGS` into
/// `NAME-CC` (`NAME-gcc-static-pie` for a static PIE).
fn build_c(name: &str, cc: &str, link: &[&str], flags: &[&str]) -> PathBuf {
    let src = programs_dir().join("c").join(format!("{name}.c"));
    let kind = if link.contains(&"-static-pie") {
        "-static-pie"
    } else {
        ""
    };
    let bin = out_dir().join(format!("{name}-{cc}{kind}"));
    let out = Command::new(cc)
        .args(link)
        .args(["-O2", "-Wall", "-Wextra"])
        .args(flags)
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| match e.kind() {
            ErrorKind::NotFound => panic!("{cc} not found: {SETUP_HINT}"),
            _ => panic!("running {cc}: {e}"),
        });
    assert!(
        out.status.success(),
        "{cc} {} failed ({SETUP_HINT} if a C library is missing):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Builds `rust-std` with the cargo that runs this test (the pinned
/// toolchain) and returns its executable.
fn build_rust_std() -> PathBuf {
    let cargo = PathBuf::from(env!("CARGO"));
    // The toolchain's own rustc sits next to its cargo; the rustup proxy
    // picks the pinned toolchain otherwise (rust-toolchain.toml).
    let rustc = cargo.with_file_name("rustc");
    let rustc = if rustc.exists() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    let musl = Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-linux-musl");
    assert!(
        musl.exists(),
        "the x86_64-unknown-linux-musl target is not installed in {sysroot}: {SETUP_HINT}"
    );

    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-std");
    let manifest = programs_dir().join("rust-std/Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--locked", "--quiet"])
        .args(["--target", "x86_64-unknown-linux-musl"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", &rustc);
    // The outer cargo's settings for this build (target dir, flags,
    // wrappers, jobserver, package metadata) must not leak into the inner
    // one; CARGO_HOME stays so that its config and caches are shared.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let outer_cargo =
            (key.starts_with("CARGO_") || key.starts_with("__CARGO")) && key != "CARGO_HOME";
        let outer_rustc = matches!(
            &*key,
            "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOC"
        );
        if outer_cargo || outer_rustc {
            cmd.env_remove(&*key);
        }
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building {} failed ({SETUP_HINT} if the musl target is missing):\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("x86_64-unknown-linux-musl/release/rust-std")
}

// ---------------------------------------------------------------------------
// Running and comparing

/// A run on the host.
struct HostRun {
    stdout: String,
    stderr: String,
    exit: InitExit,
}

/// Runs `bin` on the host as the kernel runs it: argv[0] `/init`, no
/// environment, stdin at EOF.
fn run_host(bin: &Path, args: &[&str]) -> HostRun {
    let out = Command::new(bin)
        .arg0("/init")
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {} on the host: {e}", bin.display()));
    let exit = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => InitExit::Exited(code),
        (None, Some(sig)) => InitExit::Signaled(sig),
        (None, None) => unreachable!("a process ends by exit or by signal"),
    };
    HostRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit,
    }
}

/// The guest's serial log, split in two.
struct GuestLines<'a> {
    /// What the program wrote.
    program: Vec<&'a str>,
    /// What the kernel wrote.
    kernel: Vec<&'a str>,
}

fn split_serial(serial: &str) -> GuestLines<'_> {
    let (kernel, program) = serial.lines().partition(|l| is_kernel_line(l));
    GuestLines { program, kernel }
}

/// The kernel's last line: `init: exited with status N` or `init: killed
/// by signal N`.
fn is_init_exit_line(line: &str) -> bool {
    line.starts_with("init: exited with status ") || line.starts_with("init: killed by signal ")
}

/// Whether `line` is one of the kernel's Linux-style lines: init's exit
/// line, `traps: ...`, or `NAME[PID]: ...` (segfaults, unknown syscalls).
fn is_kernel_line(line: &str) -> bool {
    if is_init_exit_line(line) || line.starts_with("traps: ") {
        return true;
    }
    let Some((head, _)) = line.split_once("]: ") else {
        return false;
    };
    let Some((name, pid)) = head.split_once('[') else {
        return false;
    };
    !name.is_empty()
        && !name.contains(' ')
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
}

/// The lines that must agree: all but the `~` ones.
fn compared<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    lines.filter(|l| !l.starts_with('~')).collect()
}

/// A line diff of `host` and `guest` (longest common subsequence):
/// `- line` only on the host, `+ line` only in the guest; empty if equal.
fn diff_lines(host: &[&str], guest: &[&str]) -> Vec<String> {
    let (n, m) = (host.len(), guest.len());
    // lcs[i][j]: length of the LCS of host[i..] and guest[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if host[i] == guest[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && host[i] == guest[j] {
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", host[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", guest[j]));
            j += 1;
        }
    }
    out
}

#[test]
fn serial_split_and_diff() {
    let serial = "BIOS noise\nerrno: start\ninit[2]: segfault at 0 ip 401000 sp 7ff error 6\n\
                  a: 1\n~ RSS 5\ninit: exited with status 0\n";
    let g = split_serial(serial);
    assert_eq!(g.program, ["BIOS noise", "errno: start", "a: 1", "~ RSS 5"]);
    assert_eq!(g.kernel.len(), 2);
    assert!(!is_kernel_line("argv[1] one"));
    assert!(!is_kernel_line("a [1]: b"));
    assert!(is_kernel_line("init[1]: syscall 999 not implemented"));
    assert_eq!(
        diff_lines(&["a", "b", "c"], &["a", "x", "c", "d"]),
        ["- b", "+ x", "+ d"]
    );
    assert!(diff_lines(&compared(["a", "~ 1"].into_iter()), &["a"]).is_empty());
}

//! Processes: thread groups sharing an address space ([`Mm`]), open
//! files, rlimits and children (Linux's `signal_struct` + `mm_struct` +
//! `files_struct`), each thread a kernel task that enters user mode
//! ([`thread`]), and the exit status.
//!
//! # Life of a process
//!
//! ```text
//!   spawn(elf)                   kmain: a Process with pid, its first
//!     -> exec (thread)           thread (tid = pid) on a kthread; Mm::new,
//!                                kernel half of the boot PGD, ELF
//!                                segments, stack (elf.rs); switch_mm
//!     -> run_user                iretq to the ELF entry
//!        syscalls / faults       syscall/; user_trap below
//!     -> do_exit(status)         exit: this thread; exit_group, reboot,
//!                                fatal fault or kill: every thread
//!                                (thread::do_group_exit)
//!     -> thread::exit_thread     clear_child_tid, robust list, boot PGD;
//!                                the last thread out: exit_process (Mm
//!                                dropped, files closed, children to init,
//!                                `exited` set, CHILD_EXIT woken)
//!   wait() (kmain, wait4)        joins the threads, reads the status
//!
//!   clone(parent, regs, args)    a thread of the caller's process, or a
//!     -> run_user_regs           process with Mm::fork (CoW) or the same
//!                                Mm (CLONE_VM, vfork); the new thread
//!                                enters user mode with the caller's
//!                                registers, rax = 0
//!   wait4 (parent)               sleeps on CHILD_EXIT until a child has
//!                                exited, joins it (the zombie is reaped)
//! ```
//!
//! # Invariants
//!
//! - P1: a process's PGD shares the boot PGD's kernel half
//!   (`PageTable::clone_kernel_half`), so the kernel runs unchanged on it
//!   (arch entry E1).
//! - P2: the `Mm` is dropped only after every task that ran on it has
//!   loaded the boot PGD (thread H1): no CPU walks page tables that are
//!   being freed.
//! - P3: several threads (and a vfork child) use one `Mm` at once; a user
//!   copy looks its page up and copies with preemption off, so no other
//!   thread unmaps the page in between (`crate::uaccess`).
//! - P4: a process is reaped (removed from `PROCESSES`, its threads
//!   joined) only by whoever holds its [`Running`]: its parent's
//!   `children` list, init's after the parent exited, or `run_init` for
//!   init itself.
//!
//! # Locking
//!
//! `PROCESSES` (the process list) and each process's `mm`, `files`,
//! `children` and `handles` locks are leaves: nothing else is taken under
//! them, and nothing sleeps. `threads` comes before wait-queue and
//! runqueue locks (see [`thread`]).

pub mod elf;
pub mod futex;
pub mod ktests;
pub mod memdev;
pub mod pipe;
pub mod procfs;
pub mod signal;
pub mod thread;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use mm::errno::Errno;
use mm::pgtable::TASK_SIZE;
use mm::vm::{FaultAccess, FaultError, Mm, Vm};
use spin::Once;

use crate::arch::entry::PtRegs;
use crate::arch::idt::{self, UserTrap};
use crate::initramfs::FileData;
use crate::platform::KernelPlatform;
use crate::sched::wait::WaitQueue;
use crate::sched::{self, JoinHandle};
use crate::sync::SpinLock;
use crate::{memory, rcu, slab};

/// An address space of the kernel.
pub type KMm = Mm<'static, 'static, KernelPlatform>;

/// What all address spaces share (zero page, MM ids, the VMA tree nodes).
static VM: Once<Vm<'static, KernelPlatform>> = Once::new();

/// Every live process (leaf lock).
static PROCESSES: SpinLock<Vec<Arc<Process>>> = SpinLock::new("processes", Vec::new());

/// Woken whenever a process exits (Linux's `wait_chldexit`, one queue for
/// all parents: each waiter re-checks its own children).
static CHILD_EXIT: WaitQueue = WaitQueue::new("child_exit");

/// The next pid; init is 1.
static NEXT_PID: AtomicU32 = AtomicU32::new(1);

/// The shared address-space state; panics before [`init`].
pub fn vm() -> &'static Vm<'static, KernelPlatform> {
    VM.get().expect("process::init has not run")
}

/// Sets up the shared address-space state, the user-trap hook and the
/// user-access fault hook. Call once
/// after RCU and the slab allocator are up.
pub fn init() {
    VM.call_once(|| {
        let pa = memory::page_alloc();
        let cache = mm::maple::node_cache(pa, rcu::rcu()).expect("memory for the maple node cache");
        Vm::new(pa, rcu::rcu(), Box::leak(cache)).expect("memory for the zero page")
    });
    idt::set_user_trap_hook(user_trap);
    crate::arch::uaccess::set_uaccess_fault_hook(crate::uaccess::resolve_fault);
}

/// How a process ended (Linux's wait status, decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal (SIGSEGV = 11, SIGILL = 4, SIGFPE = 8, SIGKILL = 9).
    Signaled(u32),
}

impl ExitStatus {
    /// Linux's wait status: `code << 8`, or the signal number.
    pub fn to_wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled(sig) => (sig & 0x7f) as i32,
        }
    }

    /// Decodes [`Self::to_wait_status`].
    pub fn from_wait_status(w: i32) -> Self {
        if w & 0x7f == 0 {
            ExitStatus::Exited((w >> 8) & 0xff)
        } else {
            ExitStatus::Signaled((w & 0x7f) as u32)
        }
    }
}

/// An open pseudo file: a snapshot of its contents and a read position;
/// `sysctl` names the `/proc/sys/vm` setting a write goes to.
#[derive(Clone)]
pub struct OpenFile {
    /// A snapshot (pseudo files) or the file itself (initramfs).
    pub data: OpenData,
    pub pos: usize,
    pub sysctl: Option<procfs::Sysctl>,
    /// `O_CLOEXEC` / `FD_CLOEXEC`.
    pub cloexec: bool,
    /// `O_RDONLY` (0), `O_WRONLY` (1) or `O_RDWR` (2), plus `O_APPEND`,
    /// `O_NONBLOCK` as given (`F_GETFL`).
    pub flags: u32,
    /// `st_mode` for `fstat`.
    pub mode: u32,
}

/// What an open file reads.
#[derive(Clone)]
pub enum OpenData {
    /// The serial console (`/dev/ttyS0`): reads end at once (no input),
    /// writes go to the serial port.
    Console,
    Bytes(Vec<u8>),
    File(Arc<FileData>),
    /// A directory at this path (`getdents64` lists it; the position
    /// counts the entries already returned).
    Dir(String),
    /// One end of a pipe.
    Pipe(Arc<pipe::PipeEnd>),
    /// `/dev/null`, `/dev/zero`, ... ([`memdev`]).
    Dev(memdev::MemDev),
    /// A shmem file: a memfd ([`ShmemFile`]).
    Shmem(Arc<ShmemFile>),
    /// `/proc/PID/pagemap` of this address space ([`procfs::pagemap_read`]):
    /// read in place, not a snapshot; a reference that does not keep the
    /// address space alive (Linux's `mmgrab()`, reads after its exit
    /// give 0 bytes).
    Pagemap(alloc::sync::Weak<KMm>),
    /// `/proc/kpagecount` (false) or `/proc/kpageflags` (true): one word
    /// per physical frame, read in place ([`procfs::kpage_read`]).
    KPage(bool),
    /// A pidfd (`pidfd_open`): the process it names, which stays
    /// reachable (a zombie, then reaped) as long as the descriptor does.
    Pidfd(Arc<Process>),
    /// `/proc/PID/mem`: the address space the process had at `open`
    /// (`proc_mem_open()` holds the `mm_struct`, not its pages: reads end
    /// once it is gone), at the file position's address.
    Mem(alloc::sync::Weak<KMm>),
}

/// A shmem file's inode on the kernel side (a memfd, or a tmpfs file
/// held by its directory entry and its open descriptors): one owned
/// reference to the object ([`mm::shmem::ShmemRef`]'s S1), dropped with
/// the last holder (`iput()`); its mappings hold their own. Times are
/// `CLOCK_REALTIME` nanoseconds.
pub struct ShmemFile {
    pub obj: mm::shmem::ShmemRef,
    /// Names in directories (`i_nlink`): 0 for a memfd, an `O_TMPFILE`
    /// file or an unlinked one.
    pub nlink: AtomicU32,
    /// Permission bits (`i_mode & 07777`; a memfd's are in its open file).
    pub mode: AtomicU32,
    pub atime: AtomicU64,
    pub mtime: AtomicU64,
    pub ctime: AtomicU64,
}

impl ShmemFile {
    /// A new inode on `obj` (whose reference it owns) with `nlink` names.
    pub fn new(obj: mm::shmem::ShmemRef, nlink: u32) -> Self {
        let now = crate::time::rtc::realtime_ns();
        ShmemFile {
            obj,
            nlink: AtomicU32::new(nlink),
            mode: AtomicU32::new(0o777),
            atime: AtomicU64::new(now),
            mtime: AtomicU64::new(now),
            ctime: AtomicU64::new(now),
        }
    }

    /// The contents changed (`file_update_time()`: mtime and ctime).
    pub fn touch(&self) {
        let now = crate::time::rtc::realtime_ns();
        self.mtime.store(now, Ordering::Relaxed);
        self.ctime.store(now, Ordering::Relaxed);
    }
}

impl Drop for ShmemFile {
    fn drop(&mut self) {
        self.obj.put(vm());
    }
}

impl OpenData {
    pub fn len(&self) -> usize {
        match self {
            OpenData::Bytes(b) => b.len(),
            OpenData::File(f) => f.len(),
            OpenData::Shmem(f) => f.obj.size() as usize,
            OpenData::Console
            | OpenData::Dir(_)
            | OpenData::Pipe(_)
            | OpenData::Dev(_)
            | OpenData::Pagemap(_)
            | OpenData::KPage(_)
            | OpenData::Pidfd(_)
            | OpenData::Mem(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `st_size`: a file's length; 0 for everything else (`/proc` files
    /// report 0, as on Linux).
    pub fn st_size(&self) -> u64 {
        match self {
            OpenData::File(f) => f.len() as u64,
            OpenData::Shmem(f) => f.obj.size(),
            _ => 0,
        }
    }

    /// Copies bytes at `off` into `buf`; returns how many.
    pub fn read_at(&self, off: usize, buf: &mut [u8]) -> usize {
        match self {
            OpenData::Bytes(b) => {
                let n = buf.len().min(b.len().saturating_sub(off));
                buf[..n].copy_from_slice(&b[off..off + n]);
                n
            }
            OpenData::File(f) => f.read_at(off, buf),
            OpenData::Shmem(f) => f.obj.read_at(vm(), off as u64, buf),
            OpenData::Console
            | OpenData::Dir(_)
            | OpenData::Pipe(_)
            | OpenData::Dev(_)
            | OpenData::Pagemap(_)
            | OpenData::KPage(_)
            | OpenData::Pidfd(_)
            | OpenData::Mem(_) => 0,
        }
    }
}

impl OpenFile {
    /// The console, as fds 0, 1 and 2 are at start.
    pub fn console() -> Self {
        OpenFile {
            data: OpenData::Console,
            pos: 0,
            sysctl: None,
            cloexec: false,
            flags: 2,
            mode: 0o020620,
        }
    }
}

/// `TASK_COMM_LEN`: a name's bytes with its NUL.
pub const TASK_COMM_LEN: usize = 16;

/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Linux's defaults for init (`INIT_RLIMITS`): CPU, FSIZE, DATA, STACK
/// (8 MiB soft), CORE (0 soft), RSS, NPROC, NOFILE (1024/4096), MEMLOCK
/// (8 MiB), AS, LOCKS, SIGPENDING, MSGQUEUE, NICE, RTPRIO, RTTIME.
const DEFAULT_RLIMITS: [(u64, u64); 16] = {
    let inf = (RLIM_INFINITY, RLIM_INFINITY);
    [
        inf,
        inf,
        inf,
        (8 << 20, RLIM_INFINITY),
        (0, RLIM_INFINITY),
        inf,
        (3870, 3870),
        (1024, 4096),
        (8 << 20, 8 << 20),
        inf,
        inf,
        (3870, 3870),
        (819_200, 819_200),
        (0, 0),
        (0, 0),
        inf,
    ]
};

/// One process; see the module docs.
pub struct Process {
    pub pid: u32,
    /// The parent's pid (0 for init); 1 once the parent has exited.
    ppid: AtomicU32,
    /// The name (`task->comm`): the program file's last component (at
    /// most 15 bytes), set by exec and `prctl(PR_SET_NAME)`.
    comm: SpinLock<String>,
    /// The live threads (thread H1); the first one's tid is `pid`.
    pub threads: SpinLock<Vec<Arc<thread::Thread>>>,
    /// The tasks of the threads other than the first, joined when the
    /// process is reaped (P4); finished ones are dropped at each clone.
    handles: SpinLock<Vec<JoinHandle<()>>>,
    /// Set by the first `exit_group` or fatal signal (`SIGNAL_GROUP_EXIT`):
    /// `wait_status` holds its status, every thread is on its way out.
    pub group_exit: AtomicBool,
    /// Woken when a thread of the process exits (`de_thread` waits here).
    pub thread_exit: WaitQueue,
    /// The program file's absolute path (`mm->exe_file`, what
    /// `/proc/self/exe` links to), set by exec.
    exe: SpinLock<String>,
    /// The address space; `None` before exec and after exit (P2).
    mm: SpinLock<Option<Arc<KMm>>>,
    /// Open files by descriptor (0..=2: the console at start).
    pub files: SpinLock<Vec<Option<OpenFile>>>,
    /// `prlimit64` values, (soft, hard) per resource.
    pub rlimits: SpinLock<[(u64, u64); 16]>,
    /// Set when a `vfork` child has exec'd or exited: its parent goes on.
    vfork_done: AtomicBool,
    /// `ExitStatus` encoded as Linux's wait status: `code << 8` or `sig`.
    wait_status: AtomicI32,
    /// `mm->start_brk`, set by exec (copied by fork).
    start_brk: AtomicU64,
    /// `[arg_start, arg_end, env_start, env_end)` of the program's stack,
    /// set by exec (`elf::Image::args`).
    pub args: SpinLock<[u64; 4]>,
    /// `/proc/PID/oom_score_adj` (-1000..=1000), inherited over fork.
    pub oom_score_adj: AtomicI32,
    /// The file-creation mask (`umask`, `fs->umask`): 022 at start,
    /// inherited over fork.
    pub umask: AtomicU32,
    /// Children not reaped yet (P4).
    children: SpinLock<Vec<Running>>,
    /// Set (Release) once the exit's teardown is done: the process is a
    /// zombie that wait4 may reap. Read with Acquire.
    exited: AtomicBool,
    /// Page faults handled without I/O (`min_flt`: every fault here).
    pub min_flt: AtomicU64,
    /// The reaped children's `min_flt`, with theirs (`cmin_flt`).
    pub cmin_flt: AtomicU64,
    /// The signal the process dies of, once one was fatal (Linux's
    /// `SIGNAL_GROUP_EXIT` with its exit code); 0: none. The first one
    /// sticks. Set by a sender (`signal::send_signal`) or the process
    /// itself; acted on by each thread's return to user mode
    /// (`arch::signal::exit_to_user_mode`), which ends the group.
    pending_kill: AtomicU32,
    /// Dispositions, the process-wide pending set, job control
    /// (`signal::ProcessSignals`; lock order in `signal`). (Boxed: 2 KiB,
    /// which a debug kernel would copy between stack frames whenever a
    /// `Process` is built.) Each thread's own signal state is
    /// `thread::Thread::sig`.
    pub signals: SpinLock<Box<signal::ProcessSignals>>,
    /// Where the threads sleep while the process is stopped (SIGSTOP & co.).
    pub stop_wait: WaitQueue,
}

impl Process {
    /// The name (`comm`).
    pub fn comm(&self) -> String {
        self.comm.lock().clone()
    }

    /// Renames the process (`prctl(PR_SET_NAME)`, `set_task_comm`): the
    /// first 15 bytes of `name`.
    pub fn set_comm(&self, name: &[u8]) {
        let n = name.len().min(TASK_COMM_LEN - 1);
        *self.comm.lock() = String::from_utf8_lossy(&name[..n]).into_owned();
    }

    /// The program file's absolute path (`/proc/self/exe`); empty before
    /// the first exec.
    pub fn exe(&self) -> String {
        self.exe.lock().clone()
    }

    /// The address space, while the process has one.
    pub fn mm(&self) -> Option<Arc<KMm>> {
        self.mm.lock().clone()
    }

    /// The heap: `[start_brk, brk)` rounded out to pages (empty before exec).
    pub fn brk_range(&self) -> core::ops::Range<u64> {
        let start = self.start_brk.load(Ordering::Relaxed);
        match self.mm() {
            Some(mm) => start..mm.brk(0).next_multiple_of(mm::PAGE_SIZE),
            None => start..start,
        }
    }

    /// The parent's pid (`getppid`).
    pub fn ppid(&self) -> u32 {
        self.ppid.load(Ordering::Relaxed)
    }

    /// The signal the process dies of, or 0 (see the field).
    pub fn fatal_signal(&self) -> u32 {
        self.pending_kill.load(Ordering::SeqCst)
    }

    /// Makes `sig` the signal the process dies of unless one already is,
    /// and wakes every thread to die of it (Linux's `complete_signal` for a
    /// fatal signal: SIGKILL to each thread).
    pub fn set_fatal_signal(&self, sig: u32) {
        let _ = self
            .pending_kill
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        thread::wake_all_threads(self);
        self.wake_stopped();
    }

    /// Whether the process is dying or dead (signals to it are dropped).
    pub fn is_exiting(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// The thread of `p` with id `tid`, while it lives.
    pub fn thread(&self, tid: u32) -> Option<Arc<thread::Thread>> {
        self.threads.lock().iter().find(|t| t.tid() == tid).cloned()
    }

    /// Wakes the threads if they sleep stopped, to re-check.
    pub fn wake_stopped(&self) {
        self.stop_wait.wake_all();
        CHILD_EXIT.wake_all();
    }

    /// How the process ended (valid once its last thread has exited).
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::from_wait_status(self.wait_status.load(Ordering::Acquire))
    }
}

/// The process the running thread belongs to.
pub fn current() -> Option<Arc<Process>> {
    thread::current_thread().map(|t| t.process.clone())
}

/// A started process: wait for it with [`Running::wait`].
pub struct Running {
    pub process: Arc<Process>,
    thread: JoinHandle<()>,
}

impl Running {
    /// Waits until the process has exited (`wait4`); returns its status.
    pub fn wait(self) -> ExitStatus {
        // A process may run for long: sleep IDLE (no hung-task report)
        // until its exit is done; the join after that is short.
        let p = &self.process;
        CHILD_EXIT.wait_until_idle(|| p.exited.load(Ordering::Acquire));
        self.thread.join();
        let handles = core::mem::take(&mut *p.handles.lock());
        handles.into_iter().for_each(|h| {
            h.join();
        });
        let p = self.process;
        PROCESSES.lock().retain(|q| !Arc::ptr_eq(q, &p));
        p.exit_status()
    }
}

impl Process {
    fn new(pid: u32, ppid: u32, comm: &str) -> Self {
        Process {
            pid,
            ppid: AtomicU32::new(ppid),
            comm: SpinLock::new("process.comm", String::from(comm)),
            threads: SpinLock::new("process.threads", Vec::new()),
            handles: SpinLock::new("process.handles", Vec::new()),
            group_exit: AtomicBool::new(false),
            thread_exit: WaitQueue::new("process.thread_exit"),
            exe: SpinLock::new("process.exe", String::new()),
            mm: SpinLock::new("process.mm", None),
            files: SpinLock::new(
                "process.files",
                alloc::vec![
                    Some(OpenFile::console()),
                    Some(OpenFile::console()),
                    Some(OpenFile::console())
                ],
            ),
            rlimits: SpinLock::new("process.rlimits", DEFAULT_RLIMITS),
            vfork_done: AtomicBool::new(false),
            wait_status: AtomicI32::new(0),
            start_brk: AtomicU64::new(0),
            args: SpinLock::new("process.args", [0; 4]),
            oom_score_adj: AtomicI32::new(0),
            umask: AtomicU32::new(0o022),
            children: SpinLock::new("process.children", Vec::new()),
            exited: AtomicBool::new(false),
            min_flt: AtomicU64::new(0),
            cmin_flt: AtomicU64::new(0),
            pending_kill: AtomicU32::new(0),
            signals: SpinLock::new("process.signals", Box::default()),
            stop_wait: WaitQueue::new("process.stop_wait"),
        }
    }
}

/// Starts `elf` as a new process named `comm` with arguments `argv` and
/// environment `envp`.
pub fn spawn(comm: &str, elf: Arc<FileData>, argv: Vec<String>, envp: Vec<String>) -> Running {
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    let process = Arc::new(Process::new(pid, 0, comm));
    // Init ignores the signals it has no handler for (Linux's
    // SIGNAL_UNKILLABLE), unless a fault forces one on it.
    process.signals.lock().unkillable = pid == 1;
    start(process, signal::ThreadSignals::default(), move |p| {
        exec_and_run(p, &elf, argv, envp).unwrap_or_else(|err| {
            crate::println!("{}[{}]: exec failed: {err:?}", p.comm(), p.pid);
            ExitStatus::Exited(127)
        })
    })
    .unwrap_or_else(|e| panic!("no thread for process {comm}: {e:?}"))
}

/// Runs `body` as the first thread of process `p` (tid = pid) on a new
/// task; the process is torn down when its last thread exits
/// ([`thread::exit_thread`], [`exit_process`]).
fn start(
    p: Arc<Process>,
    sig: signal::ThreadSignals,
    body: impl FnOnce(&Process) -> ExitStatus + Send + 'static,
) -> Result<Running, Errno> {
    PROCESSES.lock().push(p.clone());
    let t = Arc::new(thread::Thread::new(p.pid, p.clone(), sig));
    let started = if thread::attach(&t) {
        spawn_thread(t, body)
    } else {
        Err(Errno::EAGAIN)
    };
    match started {
        Ok(thread) => Ok(Running { process: p, thread }),
        Err(e) => {
            p.threads.lock().clear();
            PROCESSES.lock().retain(|x| !Arc::ptr_eq(x, &p));
            Err(e)
        }
    }
}

/// Starts the task of thread `t` (already in its process's list): it runs
/// `body`, then [`thread::exit_thread`]. On failure `t` is taken off the
/// list again.
fn spawn_thread(
    t: Arc<thread::Thread>,
    body: impl FnOnce(&Process) -> ExitStatus + Send + 'static,
) -> Result<JoinHandle<()>, Errno> {
    let q = t.clone();
    let spawned = sched::try_spawn(&t.process.comm(), move || {
        let task = sched::current();
        q.set_task(&task);
        task.set_owner(q.clone());
        drop(task);
        let status = body(&q.process);
        thread::exit_thread(&q, status);
    });
    match spawned {
        Ok(h) => {
            t.set_task(h.task());
            Ok(h)
        }
        Err(_) => {
            t.process.threads.lock().retain(|x| !Arc::ptr_eq(x, &t));
            Err(Errno::EAGAIN)
        }
    }
}

/// The end of a process, run by its last thread (`do_exit`'s process
/// half): the boot PGD is loaded already (thread H1), the `Mm` dropped
/// (P2), files closed, children handed to init, `exited` set and the
/// parent (and a vfork parent) woken.
fn exit_process(p: &Process) {
    let mm = p.mm.lock().take();
    sched::switch_mm(None);
    drop(mm);
    // Dropped after the lock: a shmem file's last close frees its pages.
    let files = core::mem::take(&mut *p.files.lock());
    drop(files);
    reparent_children(p);
    p.vfork_done.store(true, Ordering::Release);
    p.exited.store(true, Ordering::Release);
    notify_parent_exit(p, p.exit_status());
    CHILD_EXIT.wake_all();
}

/// Hands the children of exiting `p` to init (`forget_original_parent`);
/// init's own stay with it (`run_init` reaps them).
fn reparent_children(p: &Process) {
    if p.pid == 1 {
        return;
    }
    let orphans = core::mem::take(&mut *p.children.lock());
    if orphans.is_empty() {
        return;
    }
    let init = PROCESSES.lock().iter().find(|q| q.pid == 1).cloned();
    match init {
        Some(init) => {
            for c in &orphans {
                c.process.ppid.store(1, Ordering::Relaxed);
            }
            init.children.lock().extend(orphans);
        }
        // No init to adopt them (not a `run_init` run): reap here.
        None => orphans.into_iter().for_each(reap_tree),
    }
}

/// Waits for `r` and, recursively, for every child it left behind.
fn reap_tree(r: Running) {
    let p = r.process.clone();
    r.wait();
    let orphans = core::mem::take(&mut *p.children.lock());
    orphans.into_iter().for_each(reap_tree);
}

/// What `clone` asks for, decoded and checked by `syscall::thread`
/// (Linux's `kernel_clone_args`, the parts this kernel acts on).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    /// `CLONE_THREAD` (with `CLONE_VM | CLONE_SIGHAND | CLONE_FILES`): a
    /// new thread of the caller's process.
    pub thread: bool,
    /// `CLONE_VM`: share the caller's `Mm` (a process: vfork or
    /// `posix_spawn`) instead of a copy-on-write copy.
    pub share_vm: bool,
    /// `CLONE_VFORK`: the caller sleeps until the child execs or exits.
    pub vfork: bool,
    /// The child's stack pointer (0: the caller's).
    pub stack: u64,
    /// `CLONE_SETTLS`: the child's FS base.
    pub tls: Option<u64>,
    /// `CLONE_PARENT_SETTID`: where the caller gets the child's tid.
    pub parent_tid: Option<u64>,
    /// `CLONE_CHILD_SETTID`: where the child stores its tid (in its `Mm`).
    pub child_tid: Option<u64>,
    /// `CLONE_CHILD_CLEARTID`: the child's `clear_child_tid`.
    pub clear_child_tid: Option<u64>,
}

/// `clone` (and `fork`, `vfork`): a new thread of `parent` or a new
/// process, which returns to user mode with `regs` (`rax` = 0, the stack
/// and FS base `args` gives, else the caller's) and the caller's x87/SSE
/// state. Returns the child's tid (= its pid for a process).
pub fn clone(parent: &Process, regs: &PtRegs, args: CloneArgs) -> Result<u32, Errno> {
    let me = thread::current_thread().ok_or(Errno::EFAULT)?;
    let mut regs = alloc::boxed::Box::new(*regs);
    regs.rax = 0;
    if args.stack != 0 {
        regs.rsp = args.stack;
    }
    // The child starts with the parent's registers: x87/SSE and FS base.
    let fpu = crate::arch::fpu::FxArea::capture();
    let fs_base = args
        .tls
        .unwrap_or_else(|| sched::with_current(|t| t.fs_base()));
    let tid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    let parent_mm = parent.mm().ok_or(Errno::EFAULT)?;
    // The child's first steps in its own task, then user mode (Linux's
    // `ret_from_fork` + `schedule_tail`'s CLONE_CHILD_SETTID store).
    let child_tid = args.child_tid;
    let body = move |p: &Process| {
        let Some(mm) = p.mm() else {
            return ExitStatus::Signaled(signal::SIGKILL);
        };
        if let Some(at) = child_tid {
            let _ = crate::uaccess::copy_to_user(&mm, at, &tid.to_le_bytes());
        }
        sched::switch_mm(Some(mm.page_table()));
        drop(mm);
        fpu.load();
        sched::set_fs_base(fs_base);
        // Killed before it ever ran: the fatal signal (a process's first
        // thread records it as the status), or told to exit.
        let sig = p.fatal_signal();
        if sig != 0 {
            return ExitStatus::Signaled(sig);
        }
        if thread::fatal_signal_pending() {
            return ExitStatus::Signaled(signal::SIGKILL);
        }
        // SAFETY: 1. CR3 holds this task's process PGD (switch_mm above).
        // 2. `regs` is the parent's syscall frame: rip and rsp are the
        // user's, and a bad value only faults in user mode (CS/SS are
        // forced to the user selectors). 3. `regs` (boxed, owned by this
        // closure) lives until run_user_regs returns. 4. No lock is held and
        // preemption is on (thread context).
        let w = unsafe { crate::arch::entry::run_user_regs(&*regs) };
        x86_64::instructions::interrupts::enable();
        ExitStatus::from_wait_status(w as i32)
    };
    // The new thread's signal state: the caller's mask; its alternate
    // stack unless the child shares the address space without vfork
    // (Linux's copy_process: sas_ss_reset for CLONE_VM without
    // CLONE_VFORK), nothing pending.
    let mut sig = me.sig.lock().fork();
    if args.share_vm && !args.vfork {
        sig.altstack = signal::AltStack::NONE;
    }
    if args.thread {
        let p = me.process.clone();
        let t = Arc::new(thread::Thread::new(tid, p.clone(), sig));
        if let Some(at) = args.clear_child_tid {
            t.clear_child_tid.store(at, Ordering::Relaxed);
        }
        if !thread::attach(&t) {
            return Err(crate::syscall::EINTR);
        }
        if let Some(at) = args.parent_tid {
            let _ = crate::uaccess::copy_to_user(&parent_mm, at, &tid.to_le_bytes());
        }
        drop(parent_mm);
        let handle = spawn_thread(t, body)?;
        let mut handles = p.handles.lock();
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
        return Ok(tid);
    }
    let child_mm = if args.share_vm {
        parent_mm.clone()
    } else {
        let m = Arc::new(parent_mm.fork()?);
        m.page_table()
            .clone_kernel_half(mm::PhysAddr::new(crate::arch::entry::kernel_pgd()));
        m
    };
    if let Some(at) = args.parent_tid {
        let _ = crate::uaccess::copy_to_user(&parent_mm, at, &tid.to_le_bytes());
    }
    drop(parent_mm);
    let child = Arc::new(Process::new(tid, parent.pid, &parent.comm()));
    child
        .start_brk
        .store(parent.start_brk.load(Ordering::Relaxed), Ordering::Relaxed);
    *child.args.lock() = *parent.args.lock();
    // The child runs the same program (Linux's dup_mm copies exe_file).
    *child.exe.lock() = parent.exe();
    child.oom_score_adj.store(
        parent.oom_score_adj.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    child
        .umask
        .store(parent.umask.load(Ordering::Relaxed), Ordering::Relaxed);
    *child.files.lock() = parent.files.lock().clone();
    // Box::clone builds the 2 KiB table in the heap, not in this frame.
    let mut sigs = parent.signals.lock().clone();
    sigs.forget_for_fork();
    *child.signals.lock() = sigs;
    *child.rlimits.lock() = *parent.rlimits.lock();
    *child.mm.lock() = Some(child_mm);
    let running = start_with(child, sig, args.clear_child_tid, body)?;
    let c = running.process.clone();
    parent.children.lock().push(running);
    if args.vfork {
        // Linux's `wait_for_vfork_done`: killable.
        CHILD_EXIT.wait_until_idle(|| {
            c.vfork_done.load(Ordering::Acquire) || thread::fatal_signal_pending()
        });
    }
    Ok(tid)
}

/// [`start`], with the first thread's `clear_child_tid` set before it runs.
fn start_with(
    p: Arc<Process>,
    sig: signal::ThreadSignals,
    clear_child_tid: Option<u64>,
    body: impl FnOnce(&Process) -> ExitStatus + Send + 'static,
) -> Result<Running, Errno> {
    start(p, sig, move |p: &Process| {
        if let (Some(at), Some(t)) = (clear_child_tid, thread::current_thread()) {
            t.clear_child_tid.store(at, Ordering::Relaxed);
        }
        body(p)
    })
}

/// `fork()`: a child process with a copy-on-write copy of `parent`'s
/// address space and files, which returns to user mode with `regs` and
/// `rax` = 0 (only the calling thread is copied). Returns the child's pid.
pub fn fork(parent: &Process, regs: &PtRegs) -> Result<u32, Errno> {
    clone(parent, regs, CloneArgs::default())
}

/// `vfork()`: a child process sharing `parent`'s address space (a true
/// vfork: `CLONE_VM | CLONE_VFORK`); the parent sleeps until the child has
/// exec'd or exited.
pub fn vfork(parent: &Process, regs: &PtRegs) -> Result<u32, Errno> {
    clone(
        parent,
        regs,
        CloneArgs {
            share_vm: true,
            vfork: true,
            ..CloneArgs::default()
        },
    )
}

/// Finds a live process by pid.
pub fn find(pid: u32) -> Option<Arc<Process>> {
    PROCESSES
        .lock()
        .iter()
        .find(|p| p.pid == pid && !p.exited.load(Ordering::Acquire))
        .cloned()
}

/// Finds a process by pid, a zombie too (until it is reaped): what a
/// `struct pid` reaches (`find_get_pid()` + `pid_task()`).
pub fn find_unreaped(pid: u32) -> Option<Arc<Process>> {
    PROCESSES.lock().iter().find(|p| p.pid == pid).cloned()
}

/// Whether `p` has been reaped (left the process list, P4): its pid
/// names nobody any more.
pub fn is_reaped(p: &Arc<Process>) -> bool {
    !PROCESSES.lock().iter().any(|q| Arc::ptr_eq(q, p))
}

/// Whether `p` has exited (a zombie, or reaped).
pub fn has_exited(p: &Process) -> bool {
    p.exited.load(Ordering::Acquire)
}

/// Whether `p`'s address space is on its way out (`task_will_free_mem()`):
/// `p` is dying (a fatal signal or `exit_group` is ending its threads),
/// and no live process outside it shares the address space
/// (`CLONE_VM` without `CLONE_THREAD`, a vfork child) unless that one
/// is dying too.
pub fn will_free_mem(p: &Arc<Process>) -> bool {
    let dying = |q: &Process| q.fatal_signal() != 0 || q.group_exit.load(Ordering::Acquire);
    if !dying(p) {
        return false;
    }
    let Some(mm) = p.mm() else {
        return false;
    };
    PROCESSES.lock().iter().all(|q| {
        Arc::ptr_eq(q, p)
            || has_exited(q)
            || dying(q)
            || !q.mm().is_some_and(|m| Arc::ptr_eq(&m, &mm))
    })
}

/// Sleeps (interruptibly) until `cond()` holds, re-checking it whenever
/// a process exits, or until `deadline_ns` (`u64::MAX`: none). `Ok(met)`.
pub fn wait_exit_event(
    cond: impl FnMut() -> bool,
    deadline_ns: u64,
) -> Result<bool, sched::Interrupted> {
    CHILD_EXIT.wait_until_interruptible_deadline(cond, deadline_ns)
}

/// Finds a live thread of any process by its tid.
pub fn find_thread(tid: u32) -> Option<Arc<thread::Thread>> {
    PROCESSES
        .lock()
        .iter()
        .filter(|p| !p.exited.load(Ordering::Acquire))
        .find_map(|p| p.thread(tid))
}

/// Every address space of a live process, once each (threads and
/// `CLONE_VM` processes share one): the walk a file's truncation makes
/// in place of Linux's `i_mmap` tree (`mm::vm::Mm::unmap_mapping_range`).
pub fn all_mms() -> Vec<Arc<KMm>> {
    let procs: Vec<Arc<Process>> = PROCESSES.lock().clone();
    let mut mms: Vec<Arc<KMm>> = Vec::new();
    for p in procs {
        if let Some(mm) = p.mm()
            && !mms.iter().any(|m| Arc::ptr_eq(m, &mm))
        {
            mms.push(mm);
        }
    }
    mms
}

/// Every live process's pid.
pub fn pids() -> Vec<u32> {
    PROCESSES
        .lock()
        .iter()
        .filter(|p| !p.exited.load(Ordering::Acquire))
        .map(|p| p.pid)
        .collect()
}

/// `wait4` options: return at once if no child has exited.
pub const WNOHANG: u64 = 1;

/// `wait4(pid, ..)` for `parent`: `pid` > 0 waits for that child, -1 (or
/// 0, or a process group: there is one) for any. Returns the reaped
/// child's pid and status, `None` under `WNOHANG` if none has exited yet,
/// `ECHILD` if there is no such child.
pub fn wait_child(parent: &Process, pid: i64, options: u64) -> Result<Option<(u32, i32)>, Errno> {
    const ECHILD: Errno = Errno(10);
    const WUNTRACED: u64 = 2;
    const WCONTINUED: u64 = 8;
    let (stopped, continued) = (options & WUNTRACED != 0, options & WCONTINUED != 0);
    let matches = |r: &Running| pid <= 0 || i64::from(r.process.pid) == pid;
    let ready = |r: &Running| {
        matches(r)
            && (r.process.exited.load(Ordering::Acquire)
                || signal::has_stop_report(&r.process, stopped, continued))
    };
    loop {
        let mut found = None;
        let mut job = None;
        {
            let mut children = parent.children.lock();
            if !children.iter().any(matches) {
                return Err(ECHILD);
            }
            if let Some(i) = children
                .iter()
                .position(|r| matches(r) && r.process.exited.load(Ordering::Acquire))
            {
                found = Some(children.swap_remove(i));
            } else if let Some(r) = children.iter().find(|r| ready(r)) {
                job = Some(r.process.clone());
            }
        }
        if let Some(r) = found {
            let child = r.process.clone();
            let status = r.wait();
            let faults =
                child.min_flt.load(Ordering::Relaxed) + child.cmin_flt.load(Ordering::Relaxed);
            parent.cmin_flt.fetch_add(faults, Ordering::Relaxed);
            return Ok(Some((child.pid, status.to_wait_status())));
        }
        // A stop (status sig << 8 | 0x7f) or a continue (0xffff).
        if let Some(c) = job
            && let Some(sig) = signal::take_stop_report(&c, stopped, continued)
        {
            let w = if sig == signal::SIGCONT {
                0xffff
            } else {
                ((sig as i32) << 8) | 0x7f
            };
            return Ok(Some((c.pid, w)));
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        CHILD_EXIT
            .wait_until_interruptible(|| parent.children.lock().iter().any(ready))
            .map_err(|_| signal::ERESTARTSYS)?;
    }
}

/// Builds the address space from `elf` (`execve`), runs the program until
/// it exits, and returns how it ended; an error if it could not start.
fn exec_and_run(
    p: &Process,
    elf: &FileData,
    argv: Vec<String>,
    envp: Vec<String>,
) -> Result<ExitStatus, Errno> {
    // The kernel runs init with the file name as argv[0]
    // (`run_init_process`).
    let path = argv.first().cloned().unwrap_or_default();
    let image = exec(p, &path, elf, &argv, &envp)?;
    drop((argv, envp));
    log::info!(
        "{}[{}]: entering user mode at {:#x}, stack {:#x}",
        p.comm(),
        p.pid,
        image.entry,
        image.sp
    );
    // SAFETY: CR3 holds this task's process PGD (switch_mm above), the
    // entry and stack are below TASK_SIZE (elf::load checks), no lock is
    // held and preemption is on (thread context).
    let w = unsafe { crate::arch::entry::run_user(image.entry, image.sp) };
    x86_64::instructions::interrupts::enable();
    Ok(ExitStatus::from_wait_status(w as i32))
}

/// Replaces `p`'s address space with a new one holding `elf`, the file
/// `path` names (the point of no return of `execve`, `begin_new_exec`): on
/// success the old `Mm` is gone (after CR3 moved off it, P2), the x87/SSE
/// registers and FS base are reset, signal handlers go back to their
/// defaults, close-on-exec files are closed, and the name is the file
/// name's last component (Linux's `kbasename(bprm->filename)`, not
/// `argv[0]`); on failure `p` is unchanged.
pub fn exec(
    p: &Process,
    path: &str,
    elf: &FileData,
    argv: &[String],
    envp: &[String],
) -> Result<elf::Image, Errno> {
    let mm = Arc::new(Mm::new(vm())?);
    mm.page_table()
        .clone_kernel_half(mm::PhysAddr::new(crate::arch::entry::kernel_pgd()));
    let image = elf::load(&mm, elf, path, argv, envp)?;
    // mm_init()'s mmf_init_flags() from the address space being left
    // (MDWE unless NO_INHERIT). Set after the load: the loader fills
    // segments through writable mappings that it then makes executable,
    // where Linux maps the file with the final rights at once.
    if let Some(old) = p.mm() {
        mm.set_mm_flags(old.mm_flags().init());
    }
    // The point of no return: the other threads go first (`de_thread`).
    if let Some(t) = thread::current_thread() {
        thread::de_thread(&t)?;
    }
    p.start_brk.store(image.start_brk, Ordering::Relaxed);
    *p.args.lock() = image.args;
    let new = mm.clone();
    let old = p.mm.lock().replace(mm);
    sched::switch_mm(Some(new.page_table()));
    drop(new);
    drop(old);
    crate::arch::fpu::FxArea::INIT.load();
    sched::set_fs_base(0);
    p.signals.lock().exec();
    if let Some(t) = thread::current_thread() {
        let mut ts = t.sig.lock();
        ts.altstack = signal::AltStack::NONE;
        ts.restart = None;
    }
    // Closed after the lock is dropped: a shmem file's last close frees
    // its pages.
    let mut closed = Vec::new();
    p.files.lock().iter_mut().for_each(|f| {
        if f.as_ref().is_some_and(|f| f.cloexec) {
            closed.push(f.take());
        }
    });
    drop(closed);
    let base = path.rsplit('/').next().unwrap_or(path);
    p.set_comm(base.as_bytes());
    *p.exe.lock() = crate::initramfs::normalize(path.as_bytes()).unwrap_or_else(|_| path.into());
    p.vfork_done.store(true, Ordering::Release);
    CHILD_EXIT.wake_all();
    Ok(image)
}

/// Ends the running thread (`do_exit`): leaves user mode for good and
/// returns `status` to the thread's task, which runs
/// [`thread::exit_thread`] (the last thread out tears the process down).
/// Callers drop what they own first (the frames in between are
/// abandoned). To end every thread, see [`thread::do_group_exit`].
pub fn do_exit(status: ExitStatus) -> ! {
    crate::arch::entry::exit_to_kernel(status.to_wait_status() as u64)
}

/// The user-trap hook (see `arch::idt`): resolves page faults through the
/// process's `Mm`; turns every other exception, and a fault it cannot
/// resolve, into its signal with Linux's `siginfo` (arch/x86/kernel/traps.c,
/// arch/x86/mm/fault.c). The return to user mode delivers it: a handler
/// runs, or the process dies with Linux's report line (only when no
/// handler catches the signal, as `show_unhandled_signals`).
fn user_trap(_regs: &mut PtRegs, t: &UserTrap) {
    use signal::{SigInfo, force_sig};
    x86_64::instructions::interrupts::enable();
    let Some(me) = thread::current_thread() else {
        panic!("BUG: user-mode trap {t:?} on a thread without a process");
    };
    let p = me.process.clone();
    me.sig.lock().trap = crate::arch::signal::TrapInfo {
        trapno: u64::from(t.vector),
        error_code: t.error_code,
        cr2: t.cr2,
    };
    if t.vector == 14 {
        // Error code bits: 1 write, 4 user, 0x10 instruction fetch.
        let access = if t.error_code & 0x10 != 0 {
            FaultAccess::Exec
        } else if t.error_code & 0x2 != 0 {
            FaultAccess::Write
        } else {
            FaultAccess::Read
        };
        let result = match p.mm() {
            Some(mm) if t.cr2 < TASK_SIZE => mm.handle_fault(t.cr2, access),
            _ => Err(FaultError::Segv(mm::vm::SegvCode::MapErr)),
        };
        match result {
            Ok(()) => {
                p.min_flt.fetch_add(1, Ordering::Relaxed);
            }
            Err(FaultError::Oom) => {
                log::error!("Out of memory: Killed process {} ({})", p.pid, p.comm());
                p.set_fatal_signal(signal::SIGKILL);
            }
            Err(FaultError::Sigbus) => {
                // A shared mapping's page past the end of its object
                // (`do_sigbus()`: BUS_ADRERR at the address).
                force_sig(
                    &me,
                    SigInfo::fault(signal::SIGBUS, signal::BUS_ADRERR, t.cr2),
                );
            }
            Err(FaultError::Segv(code)) => {
                // Linux prints this at KERN_INFO (KERN_EMERG for init).
                if unhandled(&me, signal::SIGSEGV)
                    && (p.pid == 1 || crate::cmdline::get().shows_info())
                {
                    crate::println!(
                        "{}[{}]: segfault at {:x} ip {:016x} sp {:016x} error {:x}",
                        p.comm(),
                        p.pid,
                        t.cr2,
                        t.rip,
                        t.rsp,
                        t.error_code
                    );
                }
                let code = match code {
                    mm::vm::SegvCode::MapErr => signal::SEGV_MAPERR,
                    mm::vm::SegvCode::AccErr => signal::SEGV_ACCERR,
                };
                force_sig(&me, SigInfo::fault(signal::SIGSEGV, code, t.cr2));
            }
        }
        x86_64::instructions::interrupts::disable();
        return;
    }
    let (name, info) = match t.vector {
        0 => (
            "divide error",
            SigInfo::fault(signal::SIGFPE, signal::FPE_INTDIV, t.rip),
        ),
        1 => ("debug", SigInfo::fault(signal::SIGTRAP, 2, t.rip)),
        3 => ("int3", SigInfo::kernel(signal::SIGTRAP)),
        4 => ("overflow", SigInfo::kernel(signal::SIGSEGV)),
        5 => ("bounds", SigInfo::kernel(signal::SIGSEGV)),
        6 => (
            "invalid opcode",
            SigInfo::fault(signal::SIGILL, signal::ILL_ILLOPN, t.rip),
        ),
        11 => ("segment not present", SigInfo::kernel(signal::SIGBUS)),
        12 => ("stack segment", SigInfo::kernel(signal::SIGBUS)),
        13 => ("general protection fault", SigInfo::kernel(signal::SIGSEGV)),
        16 | 19 => ("floating point", SigInfo::fault(signal::SIGFPE, 0, t.rip)),
        17 => ("alignment check", SigInfo::fault(signal::SIGBUS, 1, 0)),
        _ => ("trap", SigInfo::kernel(signal::SIGSEGV)),
    };
    // KERN_INFO on Linux, as the segfault line (shown for init always);
    // not for int3, which is a debugger's business.
    if t.vector != 3
        && unhandled(&me, info.signo)
        && (p.pid == 1 || crate::cmdline::get().shows_info())
    {
        crate::println!(
            "traps: {}[{}] {name} ip:{:x} sp:{:x} error:{:x} (vector {})",
            p.comm(),
            p.pid,
            t.rip,
            t.rsp,
            t.error_code,
            t.vector
        );
    }
    force_sig(&me, info);
    x86_64::instructions::interrupts::disable();
}

/// Whether `sig` would kill `p` rather than run a handler (Linux's
/// `unhandled_signal`).
fn unhandled(t: &thread::Thread, sig: u32) -> bool {
    let handler = t.process.signals.lock().actions[sig as usize - 1].handler;
    let blocked = signal::blocked(t) & signal::sigmask(sig) != 0;
    handler <= signal::SIG_IGN || blocked
}

/// Tells `p`'s parent that `p` stopped or continued (Linux's
/// `do_notify_parent_cldstop`): SIGCHLD unless the parent set
/// `SA_NOCLDSTOP`, and a wakeup of its `wait4`.
pub fn notify_parent_cldstop(p: &Process, code: i32, sig: u32) {
    if let Some(parent) = find(p.ppid()) {
        let a = signal::chld_action(&parent);
        if a.flags & signal::SA_NOCLDSTOP == 0 {
            let info = signal::SigInfo::chld(code, p.pid, sig as i32);
            let _ = signal::send_signal(&parent, info, None, true);
        }
    }
    CHILD_EXIT.wake_all();
}

/// Sends SIGCHLD to the parent of exited `p` (Linux's `do_notify_parent`).
fn notify_parent_exit(p: &Process, status: ExitStatus) {
    let Some(parent) = find(p.ppid()) else {
        return;
    };
    let info = match status {
        ExitStatus::Exited(code) => signal::SigInfo::chld(signal::CLD_EXITED, p.pid, code),
        // CLD_DUMPED only with a core file: RLIMIT_CORE is 0.
        ExitStatus::Signaled(sig) => signal::SigInfo::chld(signal::CLD_KILLED, p.pid, sig as i32),
    };
    let _ = signal::send_signal(&parent, info, None, true);
}

/// The built-in `init` program, built from `user/` and embedded in the
/// kernel image.
pub static INIT_ELF: &[u8] = include_bytes!(env!("CARGO_BIN_FILE_USER_init"));

/// The program the kernel runs as PID 1 (Linux's `kernel_init`): the
/// command line's `init=` or `rdinit=` file, else `/init` from the
/// initramfs, else the built-in init; `argv[0]` is its path.
fn init_program() -> Result<(Arc<FileData>, String), String> {
    let c = crate::cmdline::get();
    let wanted = c.init.as_ref().or(c.rdinit.as_ref());
    let path = match wanted {
        Some(p) => {
            crate::initramfs::normalize(p.as_bytes()).map_err(|e| alloc::format!("{p}: {e:?}"))?
        }
        None => String::from("/init"),
    };
    match crate::initramfs::lookup(&path) {
        Some(crate::initramfs::Node::File(data, _)) => Ok((data, path)),
        _ if wanted.is_some() => Err(alloc::format!("{path}: no such file in the initramfs")),
        _ => Ok((Arc::new(FileData::Static(INIT_ELF)), String::from("init"))),
    }
}

/// Runs init (see [`init_program`]) with the command line's arguments and
/// environment to its end (and reaps any children it left), and checks
/// that its exit gave every frame back ([`settled_used_pages`] before and
/// after). Prints `init: exited with status N` or `init: killed by signal
/// N` last (the runner's exit status). Returns whether init exited 0 and
/// nothing leaked.
pub fn run_init() -> bool {
    let c = crate::cmdline::get();
    let (elf, path) = match init_program() {
        Ok(x) => x,
        Err(msg) => {
            crate::println!("Kernel panic - not syncing: Requested init {msg} failed");
            return false;
        }
    };
    let mut argv = alloc::vec![path.clone()];
    argv.extend(c.init_args.iter().cloned());
    let mut envp = alloc::vec![String::from("HOME=/"), String::from("TERM=linux")];
    envp.extend(c.init_env.iter().cloned());
    log::info!("Run {path} as init process: argv {argv:?}");
    let before = settled_used_pages();
    let comm = path.rsplit('/').next().unwrap_or("init");
    let init = spawn(comm, elf, argv, envp);
    let p = init.process.clone();
    let status = init.wait();
    // Children init left behind (a process killed with live children).
    let orphans = core::mem::take(&mut *p.children.lock());
    orphans.into_iter().for_each(reap_tree);
    drop(p);
    PROCESSES.lock().shrink_to_fit();
    // What init left in /tmp and /dev/shm is freed as an unmount would.
    crate::tmpfs::release_all();
    let after = settled_used_pages();
    let leaked = after != before;
    if leaked {
        crate::println!(
            "BUG: process exit leaked frames: {before} in use before init, {after} after ({} missing)",
            after as i64 - before as i64
        );
    } else if c.shows_info() {
        crate::println!(
            "process exit: every frame came back ({after} frames in use outside slabs before and after)"
        );
    }
    match status {
        ExitStatus::Exited(code) => crate::println!("init: exited with status {code}"),
        ExitStatus::Signaled(sig) => {
            crate::println!("init: killed by signal {sig} ({})", signal::name(sig))
        }
    }
    status == ExitStatus::Exited(0) && !leaked
}

/// Frames neither free in the buddy allocator nor in a slab (kmalloc or
/// the maple node cache) nor holding the kernel-stack region's page
/// tables, with pending RCU frees done, lazily freed kernel stacks purged
/// (`sched::stack`, TLB) and the per-CPU lists drained: what
/// a process's user pages, page tables and kernel stack count in. (Slabs
/// are left alone: a freed object's slab may stay cached, as on Linux; so
/// are the stack region's page tables, which the first use of each 32
/// slots allocates for good, as Linux keeps vmalloc's: a fork storm up to
/// the 1024-slot limit leaves 31 more of them than a boot.)
pub fn settled_used_pages() -> u64 {
    rcu::rcu().rcu_barrier();
    sched::stack::purge_lazy();
    vm().node_cache.shrink();
    let slab_pages: u64 = slab::kmalloc()
        .caches()
        .chain(core::iter::once(vm().node_cache))
        .map(|c| c.nr_pages())
        .sum();
    let pa = memory::page_alloc();
    pa.drain_all_pages();
    pa.managed_pages() - pa.nr_free_pages() - slab_pages - sched::stack::nr_pagetable_pages()
}

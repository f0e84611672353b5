//! The task: one kernel thread (Linux's `task_struct`, the parts a kernel
//! thread needs).
//!
//! # States (Linux's `__state`)
//!
//! ```text
//!            spawn                        schedule() (not preempted)
//!   (new) ---------> RUNNING --------------------------------------> blocked
//!                   ^   |  set_current_state(INTERRUPTIBLE,          (off rq)
//!   try_to_wake_up  |   |  UNINTERRUPTIBLE or IDLE), then schedule()    |
//!                   +---+------------------------------------------------+
//!                       | exit / return from f
//!                       v
//!                     DEAD --- switched away, reaped (stack freed with the task)
//! ```
//!
//! RUNNING means runnable: on the runqueue or running. A task sets its own
//! state to a sleeping one *before* it checks its wait condition, and only a
//! wakeup (or a preemption, which leaves it on the runqueue) brings it back,
//! so no wakeup is lost between the check and the `schedule()`.
//!
//! # Invariants
//!
//! - T1: `on_rq` is true while the task is RUNNING or has not yet been
//!   switched out after blocking (Linux's `on_rq`: the running task counts as
//!   queued). Write: holds the task's runqueue lock.
//! - T2: `saved_sp` is meaningful only while the task is switched out; it is
//!   written by `switch_to` on the CPU switching the task out and read by the
//!   CPU switching it in, both under that runqueue's lock.
//! - T3: a DEAD task never runs again; `reaped` becomes true once it has
//!   been switched away for good and dropped from the task list. Only then
//!   may its stack be freed, which happens when the last `Arc` goes.
//! - T4: `cpu` is the CPU whose runqueue the task is on, or ran on last.
//!   It changes only while the task is not running: by a wakeup of a
//!   blocked task (holding `pi_lock`, after `on_cpu` became false), or by
//!   a migration of a queued task (holding the runqueue locks it moves
//!   between), and for a task being pushed off a CPU it may no longer use
//!   (`pi_lock`, in no queue). So `cpu` read under the runqueue lock it
//!   names, and still equal after, is stable (Linux's `task_rq_lock`).
//! - T5: `on_cpu` is true from the moment a CPU picks the task to run
//!   until that CPU has switched away from it for good (Release, in
//!   `finish_task_switch`, after `saved_sp` and the FPU area are written).
//!   No other CPU switches to the task before it read `on_cpu == false`
//!   (Acquire): Linux's `p->on_cpu` and ttwu's `smp_cond_load_acquire`.
//! - T6: `cpus_allowed` (bit N: CPU N) is never empty; write: holding
//!   `pi_lock`. The task runs only on an allowed CPU once it has been
//!   switched out after a change.
//!
//! # Context
//!
//! Every field is an atomic or behind a `SpinLock`: a `&Task` may be read
//! from any context, including the fault-report hook (racily).
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::any::Any;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::stack::KernelStack;
use super::wait::WaitQueue;
use crate::sync::SpinLock;

/// Linux's `TASK_COMM_LEN`: names keep at most 15 bytes (Linux's 16 count
/// the terminating NUL).
pub const TASK_COMM_LEN: usize = 16;

/// A task id; 0 is CPU 0's idle task, 1 the boot task `kmain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tid(u32);

impl Tid {
    pub const fn new(tid: u32) -> Self {
        Self(tid)
    }

    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A task's scheduling state; see the module picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskState {
    /// Runnable: on the runqueue or running (`TASK_RUNNING`).
    Running = 0,
    /// Sleeping until woken, a timeout or a signal (`TASK_INTERRUPTIBLE`):
    /// [`super::signal_wake_up`] wakes it; the hung-task check skips it.
    Interruptible = 1,
    /// Sleeping until woken (`TASK_UNINTERRUPTIBLE`, "D"); the hung-task
    /// check reports one that sleeps too long.
    Uninterruptible = 2,
    /// Exited (`TASK_DEAD`).
    Dead = 3,
    /// Sleeping until woken, without counting as hung (`TASK_IDLE`): a
    /// daemon thread waiting for work.
    Idle = 4,
}

impl TaskState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => TaskState::Running,
            1 => TaskState::Interruptible,
            2 => TaskState::Uninterruptible,
            4 => TaskState::Idle,
            _ => TaskState::Dead,
        }
    }

    /// The letter `ps` shows.
    pub fn letter(self) -> char {
        match self {
            TaskState::Running => 'R',
            TaskState::Interruptible => 'S',
            TaskState::Uninterruptible => 'D',
            TaskState::Dead => 'X',
            TaskState::Idle => 'I',
        }
    }
}

/// What kind of task this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// A CPU's idle task: never on the runqueue, runs when nothing else can.
    Idle,
    /// The boot context (`kmain`), on the bootloader's stack; never exits.
    Boot,
    /// A thread made by `spawn`.
    Kthread,
}

/// What a new thread runs; taken once by its first instructions.
pub(super) type Entry = Box<dyn FnOnce() + Send>;

/// One kernel thread; see the module docs.
pub struct Task {
    tid: Tid,
    comm: [u8; TASK_COMM_LEN],
    comm_len: u8,
    kind: TaskKind,
    /// The CPU whose runqueue the task is on, or ran on last (T4).
    pub(super) cpu: AtomicU32,
    /// Serializes wakeups and affinity changes of the task (Linux's
    /// `p->pi_lock`); taken before a runqueue lock.
    pub(super) pi_lock: SpinLock<()>,
    /// T5.
    pub(super) on_cpu: AtomicBool,
    /// The CPUs the task may run on (T6; Linux's `cpus_mask`).
    pub(super) cpus_allowed: AtomicU64,
    /// A per-CPU thread: its affinity may not change (Linux's
    /// `PF_NO_SETAFFINITY`). Set before it first runs.
    pub(super) bound: AtomicBool,
    /// A [`TaskState`]. Write: the task itself (sleep, exit) or a waker under
    /// the runqueue lock. SeqCst: the sleeping task's store must be ordered
    /// before its condition check, as Linux's `set_current_state` (smp_mb).
    state: AtomicU8,
    /// T1.
    pub(super) on_rq: AtomicBool,
    /// T3. Release by the reaper, Acquire by `join`.
    pub(super) reaped: AtomicBool,
    /// T2.
    pub(super) saved_sp: AtomicU64,
    /// The stack; `None` for the boot task. Freed with the task (T3).
    pub(super) stack: Option<KernelStack>,
    /// What a new thread runs. Taken by its first run.
    pub(super) entry: SpinLock<Option<Entry>>,
    /// `join` waits here for `reaped`.
    pub(super) exit_wq: WaitQueue,
    /// Ticks left of the current time slice. Write: the tick and `schedule`,
    /// both on the task's CPU with interrupts off.
    pub(super) slice_left: AtomicU32,
    /// `now_ns` when the task last blocked (hung-task check).
    pub(super) blocked_since_ns: AtomicU64,
    /// The hung-task check has reported the current sleep (once per sleep).
    pub(super) hung_reported: AtomicBool,
    /// Voluntary context switches (blocked or yielded), `nvcsw`.
    pub(super) nvcsw: AtomicU64,
    /// Involuntary context switches (preempted), `nivcsw`.
    pub(super) nivcsw: AtomicU64,
    /// Physical address of the PGD loaded while the task runs (`mm->pgd`);
    /// 0: the boot PGD (kernel threads). Write: the task itself, interrupts
    /// off ([`super::switch_mm`]). Read: the context switch.
    pub(super) pgd: AtomicU64,
    /// The TLB context of that PGD's address space (null with the boot
    /// PGD), loaded with it (`arch::tlb` T3): its address space outlives
    /// the task's use of it (process P2). Written and read as `pgd`.
    pub(super) mm_ctx: AtomicPtr<mm::pgtable::TlbContext>,
    /// Where entries from user mode start on this task's kernel stack
    /// (arch entry E2); 0: the stack top. Write: the task itself,
    /// interrupts off. Read: the context switch.
    pub(super) user_entry_top: AtomicU64,
    /// The user's x87/SSE registers while the task is switched out.
    pub(super) fpu: crate::arch::fpu::FpuState,
    /// The user's FS base (`arch_prctl(ARCH_SET_FS)`), loaded into the
    /// `FS_BASE` MSR at every switch to the task. Write: the task itself.
    pub(super) fs_base: AtomicU64,
    /// What the task runs for, set once by the task itself: the process
    /// layer's thread (`process::thread::Thread`) for a task that enters
    /// user mode (Linux keeps all of it in `task_struct`; here `sched`
    /// stays free of process code).
    owner: spin::Once<Arc<dyn Any + Send + Sync>>,
    /// A signal may be pending for the task (Linux's `TIF_SIGPENDING`):
    /// interruptible sleeps end and the return to user mode looks at the
    /// signal state. Set by a sender before it wakes the task (SeqCst,
    /// paired with the sleeper's SeqCst state store and check); cleared or
    /// set by the task itself when it recomputes its pending set
    /// (`process::signal::recalc_sigpending`).
    pub(super) sigpending: AtomicBool,
}

impl Task {
    /// A task that has not run yet: state RUNNING, not on a runqueue.
    pub(super) fn new(
        tid: Tid,
        name: &str,
        kind: TaskKind,
        cpu: u32,
        cpus_allowed: u64,
        stack: Option<KernelStack>,
        entry: Option<Entry>,
    ) -> Self {
        debug_assert!(cpus_allowed != 0);
        let mut comm = [0u8; TASK_COMM_LEN];
        let mut len = name.len().min(TASK_COMM_LEN - 1);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        comm[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            tid,
            comm,
            comm_len: len as u8,
            kind,
            cpu: AtomicU32::new(cpu),
            pi_lock: SpinLock::new("task.pi_lock", ()),
            on_cpu: AtomicBool::new(false),
            cpus_allowed: AtomicU64::new(cpus_allowed),
            bound: AtomicBool::new(false),
            state: AtomicU8::new(TaskState::Running as u8),
            on_rq: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
            saved_sp: AtomicU64::new(0),
            stack,
            entry: SpinLock::new("task.entry", entry),
            exit_wq: WaitQueue::new("task.exit_wq"),
            slice_left: AtomicU32::new(super::SLICE_TICKS),
            blocked_since_ns: AtomicU64::new(0),
            hung_reported: AtomicBool::new(false),
            nvcsw: AtomicU64::new(0),
            nivcsw: AtomicU64::new(0),
            pgd: AtomicU64::new(0),
            mm_ctx: AtomicPtr::new(core::ptr::null_mut()),
            user_entry_top: AtomicU64::new(0),
            fpu: crate::arch::fpu::FpuState::new(),
            fs_base: AtomicU64::new(0),
            owner: spin::Once::new(),
            sigpending: AtomicBool::new(false),
        }
    }

    /// The task id.
    pub fn tid(&self) -> Tid {
        self.tid
    }

    /// The name (at most `TASK_COMM_LEN - 1` bytes).
    pub fn name(&self) -> &str {
        // Only whole characters were copied in (`new`).
        core::str::from_utf8(&self.comm[..self.comm_len as usize]).unwrap_or("?")
    }

    /// The kind of task.
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// Whether this is a CPU's idle task.
    pub fn is_idle(&self) -> bool {
        self.kind == TaskKind::Idle
    }

    /// The current state.
    pub fn state(&self) -> TaskState {
        TaskState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Sets the state (SeqCst: see the field).
    pub(super) fn set_state(&self, state: TaskState) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    /// The CPU the task runs on, is queued on, or ran on last (T4;
    /// racy unless the task is the caller with preemption off).
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// The CPUs the task may run on (bit N: CPU N; T6).
    pub fn cpus_allowed(&self) -> u64 {
        self.cpus_allowed.load(Ordering::Relaxed)
    }

    /// Whether a CPU runs the task now, or is still switching away from
    /// it (T5; racy).
    pub fn on_cpu(&self) -> bool {
        self.on_cpu.load(Ordering::Acquire)
    }

    /// The task's stack range `[bottom, top)`, if it has one of its own.
    pub fn stack_range(&self) -> Option<(u64, u64)> {
        self.stack.as_ref().map(|s| (s.bottom(), s.top()))
    }

    /// The PGD the task runs on (0: the boot PGD).
    pub fn pgd(&self) -> u64 {
        self.pgd.load(Ordering::Relaxed)
    }

    /// Where entries from user mode start on the kernel stack (0: none set).
    pub fn fs_base(&self) -> u64 {
        self.fs_base.load(Ordering::Relaxed)
    }

    /// The user-entry stack top (arch entry E2).
    pub fn user_entry_top(&self) -> u64 {
        self.user_entry_top.load(Ordering::Relaxed)
    }

    /// The kernel stack top for entries from user mode: the user-entry top
    /// if set, else the stack's top.
    pub(super) fn kernel_entry_top(&self) -> Option<u64> {
        match self.user_entry_top() {
            0 => self.stack.as_ref().map(|s| s.top()),
            top => Some(top),
        }
    }

    /// Sets the task's owner (once; later calls keep the first).
    pub fn set_owner(&self, owner: Arc<dyn Any + Send + Sync>) {
        self.owner.call_once(|| owner);
    }

    /// The task's owner, if set and of type `T`.
    pub fn owner<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.owner.get()?.clone().downcast::<T>().ok()
    }

    /// Whether a signal may be pending (see the field).
    pub fn sigpending(&self) -> bool {
        self.sigpending.load(Ordering::SeqCst)
    }

    /// Sets or clears the pending-signal flag (see the field).
    pub fn set_sigpending(&self, pending: bool) {
        self.sigpending.store(pending, Ordering::SeqCst);
    }

    /// Whether the task has exited and been switched away for good (T3).
    pub fn is_reaped(&self) -> bool {
        self.reaped.load(Ordering::Acquire)
    }

    /// Voluntary and involuntary context switches so far.
    pub fn nr_switches(&self) -> (u64, u64) {
        (
            self.nvcsw.load(Ordering::Relaxed),
            self.nivcsw.load(Ordering::Relaxed),
        )
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} [{}]",
            self.name(),
            self.tid,
            self.state().letter()
        )
    }
}

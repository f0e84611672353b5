//! Kernel threads and a preemptive round-robin scheduler (Linux's
//! `kernel/sched/`, `kernel/kthread.c`, `kernel/exit.c`).
//!
//! - [`spawn`] starts a thread running a closure on its own 32 KiB stack,
//!   mapped with an unmapped guard gap below ([`stack`]); the
//!   [`JoinHandle`] waits for it and returns its result.
//! - [`yield_now`], [`sleep_ns`] / [`sleep_ms`], [`WaitQueue`] and
//!   [`exit`] are the voluntary ways off the CPU.
//! - The tick ([`scheduler_tick`]) ends a slice of [`SLICE_TICKS`] ticks by
//!   setting `need_resched`; the running task is then preempted on the way
//!   out of the timer interrupt if its preempt count is 0, or else at its
//!   [`preempt_enable`].
//! - Each CPU has an idle task (`swapper/N`) that runs `sti; hlt` when
//!   nothing else is runnable. The boot context becomes the task `kmain`.
//!
//! Files: [`task`] (the task and its states), [`core`] (runqueues,
//! `schedule`, wakeups, the tick, exit and reaping), [`switch`] (the
//! context switch in assembly), [`stack`] (stacks and guard reports),
//! [`wait`] (wait queues), [`timer`] (sleep timers), [`preempt`].
//!
//! # Hooks for RCU
//!
//! - Context switch: [`register_switch_hook`]. Hooks run in
//!   `core::note_context_switch` (marked `// RCU: quiescent state`) at every
//!   `__schedule`, with interrupts and preemption off, before the runqueue
//!   lock, whether or not the task changes; the argument says whether this
//!   is a preemption (Linux's `rcu_note_context_switch(preempt)`).
//! - Tick: `time::register_tick_hook` (hard IRQ, interrupts off). Whether
//!   the tick interrupted the idle task: [`current_is_idle`].
//! - Idle: `idle_loop` is marked `// RCU: idle` where it halts.
//!
//! # Locking
//!
//! Every lock is a `sync::SpinLock` (interrupts off while held). Order:
//!
//! 1. a wait queue's lock (`WaitQueue`),
//! 2. a runqueue lock (`core::RUNQUEUES[cpu]`: queue, current, idle task);
//!    handed from the task switching out to the task switching in,
//! 3. the task list (`core::ALL_TASKS`), a sleep-timer list (`timer`),
//!    a task's `entry` or a join result: each taken alone,
//! 4. the stack region (`stack`), then the page allocator, then the heap.
//!
//! # Context
//!
//! | call                               | context                          |
//! |------------------------------------|----------------------------------|
//! | `spawn`, `join`, `sleep_*`, waits  | task, preemption + IRQs enabled  |
//! | `yield_now`, `schedule`            | task, preempt count 0            |
//! | `wake_*`, `try_to_wake_up`         | any (hard IRQ included)          |
//! | `preempt_disable/enable`           | any                              |
//!
//! Blocking in the wrong context panics (`BUG: sleeping function called from
//! invalid context`, `BUG: scheduling while atomic`).
//!
//! # Nothing hangs silently
//!
//! Spinlocks report recursion and lockups (`sync`, panics). The tick panics
//! with `BUG: soft lockup` when runnable tasks have waited
//! [`SOFTLOCKUP_NS`] without a context switch (preemption disabled too
//! long: nothing else can run), and logs `INFO: task ... blocked for more
//! than N seconds` once when a task has slept UNINTERRUPTIBLE for
//! [`HUNG_TASK_TIMEOUT_NS`] (a likely deadlock; Linux's default, which
//! warns). Threads that wait for work indefinitely sleep IDLE
//! ([`WaitQueue::wait_until_idle`]) and are not reported. Only a loop with
//! interrupts off stays silent (there is no NMI watchdog); the host
//! runner's timeout ends it.

pub mod bench;
pub mod core;
pub mod ktests;
pub mod preempt;
pub mod stack;
pub mod switch;
pub mod task;
pub mod timer;
pub mod wait;

use ::core::sync::atomic::{AtomicU64, Ordering};
use alloc::boxed::Box;
use alloc::sync::Arc;

pub use self::core::{
    AffinityError, ap_enter_idle_task, current, find_task, init_idle_ap,
    irqentry_exit_cond_resched, is_running, nr_queued, nr_tasks, possible_mask, schedule,
    scheduler_tick, set_cpus_allowed, set_fs_base, set_user_entry_top, signal_pending,
    signal_wake_up, switch_mm, try_to_wake_up, with_current,
};
pub use preempt::{PreemptGuard, preempt_disable, preempt_enable, preempt_enable_no_resched};
pub use stack::StackError;
pub use task::{Task, TaskKind, TaskState, Tid};
pub use timer::schedule_timeout;
pub use wait::{Interrupted, WaitQueue};

use crate::sync::SpinLock;
use crate::{percpu, time};

/// Ticks in a time slice: 3 ticks, 12 ms at HZ=250.
pub const SLICE_TICKS: u32 = 3;
/// Runnable tasks waiting this long without a context switch on their CPU
/// is a soft lockup.
pub const SOFTLOCKUP_NS: u64 = 10_000_000_000;
/// An UNINTERRUPTIBLE sleep this long is reported as a hung task.
pub const HUNG_TASK_TIMEOUT_NS: u64 = 30_000_000_000;
/// How often the tick looks for hung tasks.
const HUNG_TASK_CHECK_NS: u64 = 1_000_000_000;

/// Scheduler events, counted (Linux's schedstats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedStat {
    /// A context switch happened (`nr_switches`).
    ContextSwitch,
    /// A switch away from a preempted task (tick or `preempt_enable`).
    Preemption,
    /// `yield_now` was called.
    Yield,
    /// `try_to_wake_up` woke a sleeping task.
    Wakeup,
    /// A thread was spawned.
    Spawn,
    /// A thread exited.
    Exit,
    /// An exited thread was reaped (off its stack for good).
    Reaped,
    /// The hung-task check reported a task.
    HungTask,
    /// A task changed CPUs: a wakeup placed it elsewhere, an idle CPU
    /// pulled it, or an affinity change pushed it (`nr_migrations`).
    Migration,
}

const NR_SCHED_STATS: usize = 9;

static STATS: [AtomicU64; NR_SCHED_STATS] = [const { AtomicU64::new(0) }; NR_SCHED_STATS];

/// The counter of `s` since boot.
pub fn stat(s: SchedStat) -> u64 {
    STATS[s as usize].load(Ordering::Relaxed)
}

mod stat {
    use super::{Ordering, STATS, SchedStat};

    /// Counts one `s`.
    #[inline]
    pub(super) fn inc(s: SchedStat) {
        STATS[s as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A function run at every `__schedule`; see "Hooks for RCU".
pub type SwitchHook = fn(preempt: bool);

/// The most context-switch hooks that can be registered.
pub const MAX_SWITCH_HOOKS: usize = 4;

/// No slot left for another switch hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchHooksFull;

/// Adds `hook` to what every `__schedule` runs (see "Hooks for RCU").
/// Hooks run in registration order and stay registered for good.
pub fn register_switch_hook(hook: SwitchHook) -> Result<(), SwitchHooksFull> {
    for slot in &self::core::SWITCH_HOOKS {
        if slot
            .compare_exchange(
                ::core::ptr::null_mut(),
                hook as *mut (),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(SwitchHooksFull)
}

/// Makes the boot context the task `kmain`, creates the idle task, claims
/// the stack region and installs the stack-guard fault report. Call once
/// on the boot CPU, interrupts off, after `time::init`.
pub fn init() {
    self::core::init();
    crate::arch::idt::set_fault_report_hook(stack::fault_report);
}

/// Whether the running task is its CPU's idle task (e.g. for a tick hook).
pub fn current_is_idle() -> bool {
    let p = percpu::current_ptr();
    // SAFETY: a non-null `current` is the running task, alive while it runs.
    unsafe { p.as_ref() }.is_some_and(|t| t.is_idle())
}

/// The idle task's loop (Linux's `do_idle`): halt until an interrupt, then
/// schedule if that made something runnable.
pub(crate) fn idle_loop() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        if percpu::need_resched() || self::core::idle_balance() {
            x86_64::instructions::interrupts::enable();
            schedule();
            continue;
        }
        // RCU: idle. `sti; hlt` back to back: the interrupt that ends the
        // halt cannot slip in between the check above and the halt.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Why `try_spawn` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// No stack: no slot or no memory.
    Stack(StackError),
}

/// Waits for a spawned thread; see [`JoinHandle::join`]. Dropping it
/// detaches the thread (its stack is freed when it exits).
pub struct JoinHandle<T> {
    task: Arc<Task>,
    result: Arc<SpinLock<Option<T>>>,
}

impl<T> JoinHandle<T> {
    /// Blocks until the thread has exited and is off its stack for good,
    /// then returns its result: `Some` if its function returned, `None` if
    /// it called [`exit`]. When this returns (and no other `Arc<Task>` of it
    /// is held), its stack is back in the buddy allocator.
    pub fn join(self) -> Option<T> {
        assert!(
            !::core::ptr::eq(percpu::current_ptr(), Arc::as_ptr(&self.task)),
            "BUG: thread '{}' joins itself",
            self.task.name()
        );
        let task = &self.task;
        task.exit_wq.wait_until(|| task.is_reaped());
        self.result.lock().take()
    }

    /// Whether the thread has exited and been reaped.
    pub fn is_finished(&self) -> bool {
        self.task.is_reaped()
    }

    /// The thread.
    pub fn task(&self) -> &Arc<Task> {
        &self.task
    }
}

/// Starts a kernel thread named `name` (cut to 15 bytes) running `f`, at
/// the tail of the runqueue placement picks (an idle CPU if any: `core`
/// module docs); it may run on the CPUs the caller may (Linux's fork
/// copies `cpus_mask`). Panics if there is no memory or stack slot; see
/// [`try_spawn`].
#[track_caller]
pub fn spawn<F, T>(name: &str, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match try_spawn(name, f) {
        Ok(handle) => handle,
        Err(e) => panic!("spawn of thread '{name}' failed: {e:?}"),
    }
}

/// Like [`spawn`], but returns an error instead of panicking.
pub fn try_spawn<F, T>(name: &str, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_inner(name, f, None)
}

/// Starts a per-CPU kernel thread bound to active CPU `cpu` for good
/// (Linux's `kthread_create_on_cpu`: it runs only there, and its affinity
/// cannot change). Panics if there is no memory or stack slot.
#[track_caller]
pub fn spawn_on<F, T>(cpu: u32, name: &str, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    assert!(
        percpu::cpu_active_mask() & (1 << cpu) != 0,
        "spawn_on: CPU#{cpu} is not active"
    );
    match spawn_inner(name, f, Some(cpu)) {
        Ok(handle) => handle,
        Err(e) => panic!("spawn of thread '{name}' failed: {e:?}"),
    }
}

fn spawn_inner<F, T>(name: &str, f: F, bind: Option<u32>) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    assert!(is_running(), "spawn before sched::init");
    let result = Arc::new(SpinLock::new("join.result", None));
    let slot = result.clone();
    let entry: task::Entry = Box::new(move || {
        let value = f();
        *slot.lock() = Some(value);
    });
    let task = self::core::new_kthread(
        self::core::alloc_tid(),
        name,
        TaskKind::Kthread,
        percpu::cpu_id(),
        with_current(|t| t.cpus_allowed()),
        entry,
    )
    .map_err(SpawnError::Stack)?;
    if let Some(cpu) = bind {
        self::core::bind(&task, cpu);
    }
    stat::inc(SchedStat::Spawn);
    self::core::wake_up_new_task(&task);
    Ok(JoinHandle { task, result })
}

/// Ends the running spawned thread at once (Linux's `kthread_exit`); its
/// joiner gets `None`. Live values on the thread's stack are not dropped
/// (there is no unwinding): whatever they own leaks. Panics in the boot or
/// idle task.
pub fn exit() -> ! {
    self::core::do_exit()
}

/// Gives the CPU to the next runnable task, if any (Linux's `sched_yield`):
/// the caller goes to the tail of the runqueue.
pub fn yield_now() {
    stat::inc(SchedStat::Yield);
    schedule();
}

/// Sleeps at least `ns` nanoseconds (ending on the first tick after, so up
/// to one tick more; Linux's `msleep` granularity). Task context only.
pub fn sleep_ns(ns: u64) {
    self::core::might_sleep();
    let deadline = time::now_ns().saturating_add(ns);
    while time::now_ns() < deadline {
        with_current(|t| t.set_state(TaskState::Interruptible));
        schedule_timeout(deadline);
    }
}

/// Sleeps INTERRUPTIBLE until `now_ns() >= deadline_ns` or a signal is
/// pending ([`signal_pending`]), whichever comes first (Linux's
/// `schedule_hrtimeout` in `TASK_INTERRUPTIBLE`, as `nanosleep` uses).
/// Task context only.
pub fn sleep_until_interruptible(deadline_ns: u64) -> Result<(), Interrupted> {
    self::core::might_sleep();
    loop {
        with_current(|t| t.set_state(TaskState::Interruptible));
        if signal_pending() {
            with_current(|t| t.set_state(TaskState::Running));
            return Err(Interrupted);
        }
        if time::now_ns() >= deadline_ns {
            with_current(|t| t.set_state(TaskState::Running));
            return Ok(());
        }
        schedule_timeout(deadline_ns);
    }
}

/// Sleeps at least `ms` milliseconds; see [`sleep_ns`].
pub fn sleep_ms(ms: u64) {
    sleep_ns(ms.saturating_mul(1_000_000));
}

//! The scheduler core (Linux's `kernel/sched/core.c`): runqueues,
//! `schedule`, wakeups, the tick, thread start, exit and reaping.
//!
//! One runqueue per CPU: a FIFO of runnable tasks (round-robin), the running
//! task, the CPU's idle task. `__schedule` puts the previous task at the tail
//! if it is still runnable (or was preempted), takes the head, or the idle
//! task when the queue is empty, and switches.
//!
//! # Invariants
//!
//! - R1: `curr` is the running task of the CPU and equals `percpu::current`;
//!   the idle task is never in `queue`; every task in `queue` is RUNNING
//!   with `on_rq` set (task T1) and appears once.
//! - R2: preempt count is exactly 1 and hardirq count 0 at every
//!   `switch_to` (the switching `schedule` holds the one count): a task
//!   resumes with the count it had when it switched out, and a new task
//!   starts by dropping that count.
//! - R3: the runqueue lock is taken by the task switching out and released
//!   by the task switching in (`finish_task_switch`), with interrupts off
//!   throughout.
//! - R4: a DEAD task is handed to `finish_task_switch` through `prev_dead`,
//!   removed from the task list and marked reaped there, after the switch:
//!   its stack is no longer in use.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::task::{Entry, Task, TaskKind, TaskState, Tid};
use super::{SchedStat, stack, stat, switch, timer};
use crate::percpu::{self, MAX_CPUS};
use crate::sync::{self, SpinLock};
use crate::time;

/// One CPU's runqueue; see the module docs.
pub(super) struct Rq {
    /// The running task (R1). `None` only before `init`.
    pub(super) curr: Option<Arc<Task>>,
    /// This CPU's idle task.
    idle: Option<Arc<Task>>,
    /// Runnable tasks, next to run first (R1).
    pub(super) queue: VecDeque<Arc<Task>>,
    /// A task that exited and is being switched away from (R4).
    prev_dead: Option<Arc<Task>>,
    /// `now_ns` of the last context switch, or of the last enqueue into an
    /// empty queue if later: how long queued tasks have waited for the CPU
    /// (soft-lockup check).
    waiting_since_ns: u64,
}

impl Rq {
    /// Queues a runnable task at the tail (Linux's `enqueue_task`).
    fn enqueue(&mut self, task: Arc<Task>) {
        if self.queue.is_empty() {
            self.waiting_since_ns = time::now_ns();
        }
        self.queue.push_back(task);
    }

    const fn new() -> Self {
        Self {
            curr: None,
            idle: None,
            queue: VecDeque::new(),
            prev_dead: None,
            waiting_since_ns: 0,
        }
    }
}

/// The runqueues, by CPU (lock order: see `sched` module docs).
pub(super) static RUNQUEUES: [SpinLock<Rq>; MAX_CPUS] =
    [const { SpinLock::new("rq", Rq::new()) }; MAX_CPUS];

/// Every task not yet reaped (Linux's task list). Holds a reference, so a
/// blocked task that nothing else references stays alive.
pub(super) static ALL_TASKS: SpinLock<Vec<Arc<Task>>> = SpinLock::new("tasklist", Vec::new());

/// Set once `init` has made the boot context a task.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Next tid for `spawn` (0 and 1 are idle and kmain).
static NEXT_TID: AtomicU32 = AtomicU32::new(2);
/// `now_ns` at which the tick next runs the hung-task check.
static NEXT_HUNG_CHECK_NS: AtomicU64 = AtomicU64::new(0);

/// Whether the scheduler runs (`init` has completed).
pub fn is_running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// Makes the boot context the task `kmain` and creates CPU 0's idle task.
pub(super) fn init() {
    assert!(
        !x86_64::instructions::interrupts::are_enabled(),
        "sched::init with interrupts on"
    );
    assert!(!is_running(), "sched::init called twice");
    stack::init();
    let cpu = percpu::cpu_id();
    let boot = Arc::new(Task::new(
        Tid::new(1),
        "kmain",
        TaskKind::Boot,
        cpu,
        None,
        None,
    ));
    boot.on_rq.store(true, Ordering::Relaxed);
    let idle = new_kthread(
        Tid::new(0),
        "swapper/0",
        TaskKind::Idle,
        cpu,
        alloc::boxed::Box::new(|| super::idle_loop()),
    )
    .expect("memory for the idle task");
    {
        let mut tasks = ALL_TASKS.lock();
        tasks.push(boot.clone());
        tasks.push(idle.clone());
    }
    let mut rq = RUNQUEUES[cpu as usize].lock();
    percpu::set_current_ptr(Arc::as_ptr(&boot));
    rq.curr = Some(boot);
    rq.idle = Some(idle);
    rq.waiting_since_ns = time::now_ns();
    drop(rq);
    NEXT_HUNG_CHECK_NS.store(
        time::now_ns() + super::HUNG_TASK_CHECK_NS,
        Ordering::Relaxed,
    );
    RUNNING.store(true, Ordering::Release);
}

/// Creates CPU `cpu`'s idle task `swapper/N` for an AP about to be
/// started, and makes it that CPU's running task and idle task; returns
/// the top of its stack, where the AP starts (as the boot context became
/// `kmain`, the AP's start becomes its idle task). Boot CPU, before the AP
/// runs. Nothing is ever queued on a parked AP (`smp` module docs): tasks
/// are placed on the CPU that spawns or wakes them, and APs do neither.
pub fn init_idle_ap(cpu: u32) -> Result<u64, stack::StackError> {
    assert!(cpu != 0 && (cpu as usize) < MAX_CPUS);
    let name = alloc::format!("swapper/{cpu}");
    let idle = new_kthread(
        Tid::new(0),
        &name,
        TaskKind::Idle,
        cpu,
        alloc::boxed::Box::new(|| super::idle_loop()),
    )?;
    let top = idle
        .stack
        .as_ref()
        .map(|s| s.top())
        .expect("a kthread stack");
    ALL_TASKS.lock().push(idle.clone());
    let mut rq = RUNQUEUES[cpu as usize].lock();
    assert!(rq.curr.is_none(), "CPU {cpu} already has tasks");
    idle.on_rq.store(true, Ordering::Relaxed);
    rq.curr = Some(idle.clone());
    rq.idle = Some(idle);
    rq.waiting_since_ns = time::now_ns();
    Ok(top)
}

/// On an AP in its bring-up: makes the idle task [`init_idle_ap`] created
/// this CPU's `current`. Interrupts off.
pub fn ap_enter_idle_task() {
    let rq = RUNQUEUES[percpu::cpu_id() as usize].lock();
    let idle = rq.curr.as_ref().expect("init_idle_ap ran for this CPU");
    percpu::set_current_ptr(Arc::as_ptr(idle));
}

/// Allocates a task with its own stack whose first run calls `entry`.
pub(super) fn new_kthread(
    tid: Tid,
    name: &str,
    kind: TaskKind,
    cpu: u32,
    entry: Entry,
) -> Result<Arc<Task>, stack::StackError> {
    let stack = stack::KernelStack::new()?;
    // SAFETY: the stack was just mapped for this task alone, and its top is
    // slot-aligned, so 16-byte aligned.
    let sp = unsafe { switch::initial_frame(stack.top()) };
    let task = Arc::new(Task::new(tid, name, kind, cpu, Some(stack), Some(entry)));
    task.saved_sp.store(sp, Ordering::Relaxed);
    if let Some(stack) = &task.stack {
        stack.set_owner(Arc::as_ptr(&task));
    }
    Ok(task)
}

/// A fresh tid for a spawned thread.
pub(super) fn alloc_tid() -> Tid {
    Tid::new(NEXT_TID.fetch_add(1, Ordering::Relaxed))
}

/// Makes a new task runnable (Linux's `wake_up_new_task`): at the tail of
/// its CPU's queue; it runs when its turn comes (no preemption of the
/// running task, except the idle one).
pub(super) fn wake_up_new_task(task: &Arc<Task>) {
    ALL_TASKS.lock().push(task.clone());
    let mut rq = RUNQUEUES[task.cpu as usize].lock();
    task.on_rq.store(true, Ordering::Relaxed);
    rq.enqueue(task.clone());
    if rq.curr.as_ref().is_some_and(|c| c.is_idle()) {
        crate::smp::ipi::resched_cpu(task.cpu);
    }
}

/// The running task. Panics before the scheduler runs.
pub fn current() -> Arc<Task> {
    let p = percpu::current_ptr();
    assert!(!p.is_null(), "sched::current() before sched::init");
    // SAFETY: a non-null `current` is `Arc::as_ptr` of the runqueue's `curr`
    // (R1), which holds a strong reference for as long as the task runs, and
    // the caller is that task: adding a reference and adopting it is sound.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

/// Calls `f` with the running task, without touching its reference count.
pub fn with_current<R>(f: impl FnOnce(&Task) -> R) -> R {
    let p = percpu::current_ptr();
    assert!(!p.is_null(), "sched::with_current() before sched::init");
    // SAFETY: as in `current`: the running task outlives this call.
    f(unsafe { &*p })
}

/// Panics unless the caller may block (Linux's `might_sleep`).
#[track_caller]
pub(super) fn might_sleep() {
    assert!(is_running(), "BUG: sleeping before the scheduler runs");
    let (pc, irq) = (percpu::preempt_count(), percpu::hardirq_count());
    let irqs_on = x86_64::instructions::interrupts::are_enabled();
    if pc != 0 || irq != 0 || !irqs_on {
        let (tid, name) = with_current(|t| (t.tid(), alloc::string::String::from(t.name())));
        panic!(
            "BUG: sleeping function called from invalid context: preempt_count {pc}, \
             in hardirq {irq}, irqs {}, task '{name}' (tid {tid})",
            if irqs_on { "on" } else { "off" }
        );
    }
}

/// Hooks run at every `__schedule` (`rcu_note_context_switch`); see
/// [`super::register_switch_hook`].
pub(super) static SWITCH_HOOKS: [AtomicPtr<()>; super::MAX_SWITCH_HOOKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; super::MAX_SWITCH_HOOKS];

/// The context-switch hook point: every `__schedule`, with interrupts and
/// preemption off, before the runqueue lock, whether or not the task then
/// changes (Linux calls `rcu_note_context_switch(preempt)` here).
fn note_context_switch(preempt: bool) {
    // RCU: quiescent state. RCU's `note_context_switch` is registered through
    // `sched::register_switch_hook` and runs from this loop.
    for slot in &SWITCH_HOOKS {
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            break;
        }
        // SAFETY: the only non-null values stored in SWITCH_HOOKS are
        // `SwitchHook`s cast by register_switch_hook; on x86_64 function and
        // data pointers have the same size and representation.
        let hook = unsafe { core::mem::transmute::<*mut (), super::SwitchHook>(p) };
        hook(preempt);
    }
}

/// Picks the next task and switches to it (Linux's `__schedule`).
/// `preempt`: the task is being preempted, so it stays runnable whatever
/// its state says. Called with preemption disabled once (R2).
pub(super) fn __schedule(preempt: bool) {
    let irqs = sync::irq_save();
    debug_assert_eq!(percpu::preempt_count(), 1, "__schedule: preempt count");
    debug_assert_eq!(percpu::hardirq_count(), 0, "__schedule in hard IRQ");
    note_context_switch(preempt);
    let rq_lock = &RUNQUEUES[percpu::cpu_id() as usize];
    rq_lock.raw_lock();
    // SAFETY: this CPU holds the lock, until `finish_task_switch` (R3).
    let rq = unsafe { &mut *rq_lock.data_ptr() };
    percpu::clear_need_resched();
    let prev = rq.curr.take().expect("runqueue without a current task");
    let state = prev.state();
    let blocking = !preempt && state != TaskState::Running;
    if blocking {
        prev.on_rq.store(false, Ordering::Relaxed);
        prev.blocked_since_ns
            .store(time::now_ns(), Ordering::Relaxed);
    } else if !prev.is_idle() {
        rq.enqueue(prev.clone());
    }
    let next = match rq.queue.pop_front() {
        Some(t) => t,
        None => rq.idle.clone().expect("runqueue without an idle task"),
    };
    if Arc::ptr_eq(&prev, &next) {
        rq.curr = Some(prev);
        drop(next);
        // SAFETY: held since above; `rq` is not used afterwards.
        unsafe { rq_lock.raw_unlock() };
        sync::irq_restore(irqs);
        return;
    }
    stat::inc(SchedStat::ContextSwitch);
    if preempt && !prev.is_idle() {
        stat::inc(SchedStat::Preemption);
        prev.nivcsw.fetch_add(1, Ordering::Relaxed);
    } else {
        prev.nvcsw.fetch_add(1, Ordering::Relaxed);
    }
    next.slice_left.store(super::SLICE_TICKS, Ordering::Relaxed);
    rq.waiting_since_ns = time::now_ns();
    percpu::set_current_ptr(Arc::as_ptr(&next));
    // CR3 and the kernel stack for entries from user mode (arch entry E1).
    // SAFETY: `next`'s PGD and context are its live address space's
    // (task `mm_ctx`), or 0 and null.
    unsafe {
        crate::arch::entry::switch_mm(
            next.pgd.load(Ordering::Relaxed),
            next.mm_ctx.load(Ordering::Relaxed),
            next.kernel_entry_top(),
        )
    };
    // SAFETY: interrupts are off and the runqueue lock is held; `prev` ran
    // on this CPU until now and `next` runs nowhere (it was queued, or is
    // this CPU's idle task).
    unsafe { crate::arch::fpu::FpuState::switch(&prev.fpu, &next.fpu) };
    let fs_base = next.fs_base.load(Ordering::Relaxed);
    if fs_base != prev.fs_base.load(Ordering::Relaxed) {
        // A WRMSR only when it changes (never between kernel threads).
        crate::arch::entry::load_fs_base(fs_base);
    }
    let prev_sp = prev.saved_sp.as_ptr();
    let next_sp = next.saved_sp.load(Ordering::Relaxed);
    rq.curr = Some(next);
    if blocking && state == TaskState::Dead {
        rq.prev_dead = Some(prev);
    } else {
        // The task list (and the queue, if runnable) keep it alive (R1, R4).
        drop(prev);
    }
    // SAFETY: 1. prev_sp points into the previous task, kept alive by the
    // task list or `prev_dead` until it is resumed or reaped. 2. next_sp was
    // saved by switch_to or made by initial_frame for `next`, which is not
    // running (it was queued, or is the idle task, which runs only here),
    // and whose stack is mapped while it lives. 3. Interrupts are off.
    unsafe { switch::switch_to(prev_sp, next_sp) };
    finish_task_switch(irqs);
}

/// Runs right after a switch, on the task switched to: releases the
/// runqueue lock (R3), reaps a dead predecessor (R4), restores the
/// interrupt state the task had when it switched out.
fn finish_task_switch(irqs: bool) {
    let rq_lock = &RUNQUEUES[percpu::cpu_id() as usize];
    // SAFETY: the lock was taken by the task that switched to this one (R3).
    let dead = unsafe { (*rq_lock.data_ptr()).prev_dead.take() };
    // SAFETY: held since the switch; no reference into the runqueue lives on.
    unsafe { rq_lock.raw_unlock() };
    if let Some(dead) = dead {
        reap(dead);
    }
    sync::irq_restore(irqs);
}

/// Capacity the task list keeps however few tasks there are.
const TASK_LIST_MIN_CAPACITY: usize = 64;

/// Drops a dead task from the task list, marks it reaped, wakes its
/// joiners; the stack goes with the last reference (task T3). Once the list
/// uses at most a quarter of its capacity, it gives back all but twice its
/// length: Linux's task list is intrusive and costs nothing when the tasks
/// are gone, while a `Vec` that a fork storm grew to 2048 entries would
/// otherwise keep 16 KiB (4 frames, past the largest kmalloc class) for
/// good.
fn reap(dead: Arc<Task>) {
    let listed = {
        let mut tasks = ALL_TASKS.lock();
        let listed = tasks
            .iter()
            .position(|t| Arc::ptr_eq(t, &dead))
            .map(|i| tasks.swap_remove(i));
        if tasks.capacity() > TASK_LIST_MIN_CAPACITY && tasks.len() * 4 <= tasks.capacity() {
            let keep = (tasks.len() * 2).max(TASK_LIST_MIN_CAPACITY);
            tasks.shrink_to(keep);
        }
        listed
    };
    drop(listed);
    dead.reaped.store(true, Ordering::Release);
    stat::inc(SchedStat::Reaped);
    dead.exit_wq.wake_all();
}

/// A new thread's first Rust code (called by the trampoline): finish the
/// switch that started it, drop the count `schedule` held (R2), enable
/// interrupts, run the entry, exit.
pub(super) extern "sysv64" fn kthread_entry() -> ! {
    finish_task_switch(false);
    percpu::preempt_count_dec_and_test();
    x86_64::instructions::interrupts::enable();
    let entry = with_current(|t| t.entry.lock().take());
    match entry {
        Some(entry) => entry(),
        None => panic!("BUG: new thread without an entry"),
    }
    do_exit()
}

/// Ends the running thread (Linux's `do_exit` -> `do_task_dead`).
pub(super) fn do_exit() -> ! {
    let kind = with_current(|t| t.kind());
    assert!(
        kind == TaskKind::Kthread,
        "BUG: exit from a {kind:?} task: only spawned threads exit"
    );
    assert_eq!(
        percpu::preempt_count(),
        0,
        "BUG: thread exits with preemption disabled"
    );
    x86_64::instructions::interrupts::disable();
    with_current(|t| t.set_state(TaskState::Dead));
    stat::inc(SchedStat::Exit);
    percpu::preempt_count_inc();
    __schedule(false);
    panic!("BUG: a dead task was scheduled again")
}

/// Makes `next` (`None`: the boot PGD) the running task's address space
/// and loads it now (Linux's `switch_mm` at exec and exit). Switching to
/// the boot PGD also forgets the user-entry stack top. The caller keeps
/// `next`'s address space alive until the task has switched off it again
/// (process P2).
pub fn switch_mm(next: Option<&mm::pgtable::PageTable<'_, crate::platform::KernelPlatform>>) {
    let (pgd, ctx) = match next {
        Some(pt) => (pt.root().as_u64(), core::ptr::from_ref(pt.tlb_context())),
        None => (0, core::ptr::null()),
    };
    let irqs = sync::irq_save();
    with_current(|t| {
        t.pgd.store(pgd, Ordering::Relaxed);
        t.mm_ctx.store(ctx.cast_mut(), Ordering::Relaxed);
        if pgd == 0 {
            t.user_entry_top.store(0, Ordering::Relaxed);
        }
        // SAFETY: `next` is a live process address space (its kernel half
        // cloned at creation, process I1), kept alive by the caller.
        unsafe { crate::arch::entry::switch_mm(pgd, ctx, t.kernel_entry_top()) };
    });
    sync::irq_restore(irqs);
}

/// Sets the running task's user FS base (`arch_prctl(ARCH_SET_FS)`) and
/// loads it now.
pub fn set_fs_base(base: u64) {
    let irqs = sync::irq_save();
    with_current(|t| t.fs_base.store(base, Ordering::Relaxed));
    crate::arch::entry::load_fs_base(base);
    sync::irq_restore(irqs);
}

/// Sets where entries from user mode start on the running task's kernel
/// stack (arch entry E2) and loads it now. Interrupts off.
pub fn set_user_entry_top(top: u64) {
    with_current(|t| {
        t.user_entry_top.store(top, Ordering::Relaxed);
        // SAFETY: the task's own PGD and context (task `mm_ctx`).
        unsafe {
            crate::arch::entry::switch_mm(
                t.pgd.load(Ordering::Relaxed),
                t.mm_ctx.load(Ordering::Relaxed),
                Some(top),
            )
        };
    });
}

/// Wakes `task` if it sleeps (Linux's `try_to_wake_up`): RUNNING again, and
/// queued at the tail of its runqueue unless still on it. Returns whether
/// it was asleep. Any context (takes the runqueue lock, interrupts off).
pub fn try_to_wake_up(task: &Arc<Task>) -> bool {
    let mut rq = RUNQUEUES[task.cpu as usize].lock();
    match task.state() {
        TaskState::Running | TaskState::Dead => return false,
        TaskState::Interruptible | TaskState::Uninterruptible | TaskState::Idle => {}
    }
    task.set_state(TaskState::Running);
    stat::inc(SchedStat::Wakeup);
    if !task.on_rq.load(Ordering::Relaxed) {
        task.on_rq.store(true, Ordering::Relaxed);
        rq.enqueue(task.clone());
        // Round robin: a wakeup preempts only the idle task.
        if rq.curr.as_ref().is_some_and(|c| c.is_idle()) {
            crate::smp::ipi::resched_cpu(task.cpu);
        }
    }
    true
}

/// Marks `task` as having a signal pending and wakes it if it sleeps
/// INTERRUPTIBLE (Linux's `signal_wake_up`): its interruptible wait sees
/// the flag and returns, and its next return to user mode delivers.
/// Any context.
pub fn signal_wake_up(task: &Arc<Task>) {
    task.set_sigpending(true);
    if task.state() == TaskState::Interruptible {
        try_to_wake_up(task);
    }
}

/// The live task with id `tid`, if any.
pub fn find_task(tid: u32) -> Option<Arc<Task>> {
    ALL_TASKS
        .lock()
        .iter()
        .find(|t| t.tid().as_u32() == tid && t.state() != TaskState::Dead)
        .cloned()
}

/// Whether the running task has a signal pending (Linux's
/// `signal_pending(current)`).
pub fn signal_pending() -> bool {
    with_current(|t| t.sigpending())
}

/// The scheduler's part of the tick (Linux's `scheduler_tick`): expired
/// sleep timers, the time slice, the soft-lockup and hung-task checks.
/// Hard-IRQ context, interrupts off.
pub fn scheduler_tick() {
    if !is_running() {
        return;
    }
    let now = time::now_ns();
    timer::run_local_timers(now);
    let mut lockup = None;
    {
        let rq = RUNQUEUES[percpu::cpu_id() as usize].lock();
        let curr = rq.curr.as_ref().expect("runqueue without a current task");
        if curr.is_idle() {
            if !rq.queue.is_empty() {
                percpu::set_need_resched();
            }
        } else {
            let left = curr.slice_left.load(Ordering::Relaxed).saturating_sub(1);
            if left == 0 && !rq.queue.is_empty() {
                percpu::set_need_resched();
            }
            curr.slice_left.store(
                if left == 0 { super::SLICE_TICKS } else { left },
                Ordering::Relaxed,
            );
            let stuck = now.saturating_sub(rq.waiting_since_ns);
            if !rq.queue.is_empty() && stuck > super::SOFTLOCKUP_NS {
                lockup = Some((stuck, curr.clone()));
            }
        }
    }
    if let Some((stuck, task)) = lockup {
        panic!(
            "BUG: soft lockup - CPU#{} stuck for {}s! ['{}' tid {}, preempt_count {}]",
            percpu::cpu_id(),
            stuck / 1_000_000_000,
            task.name(),
            task.tid(),
            percpu::preempt_count()
        );
    }
    if percpu::cpu_id() == time::TICK_DO_TIMER_CPU
        && now >= NEXT_HUNG_CHECK_NS.load(Ordering::Relaxed)
    {
        NEXT_HUNG_CHECK_NS.store(now + super::HUNG_TASK_CHECK_NS, Ordering::Relaxed);
        check_hung_tasks(now);
    }
}

/// Linux's `khungtaskd`, run from the tick: a task UNINTERRUPTIBLE for
/// longer than `HUNG_TASK_TIMEOUT_NS` is reported, once per sleep, as Linux
/// does by default (`hung_task_panic=0`): `INFO: task NAME blocked for more
/// than N seconds`. Daemons waiting for work sleep IDLE and are skipped.
fn check_hung_tasks(now: u64) {
    let hung = ALL_TASKS
        .lock()
        .iter()
        .find(|t| {
            t.state() == TaskState::Uninterruptible
                && !t.hung_reported.load(Ordering::Relaxed)
                && now.saturating_sub(t.blocked_since_ns.load(Ordering::Relaxed))
                    > super::HUNG_TASK_TIMEOUT_NS
        })
        .cloned();
    if let Some(t) = hung {
        t.hung_reported.store(true, Ordering::Relaxed);
        stat::inc(SchedStat::HungTask);
        log::error!(
            "INFO: task '{}' (tid {}) blocked for more than {} seconds (a deadlock? \
             daemons waiting for work should use WaitQueue::wait_until_idle)",
            t.name(),
            t.tid(),
            super::HUNG_TASK_TIMEOUT_NS / 1_000_000_000
        );
    }
}

/// `schedule()` proper: Linux's loop `do { preempt_disable(); __schedule();
/// preempt_enable_no_resched(); } while (need_resched())`.
pub fn schedule() {
    let (pc, irq) = (percpu::preempt_count(), percpu::hardirq_count());
    if pc != 0 || irq != 0 {
        let (name, tid) = with_current(|t| (alloc::string::String::from(t.name()), t.tid()));
        panic!(
            "BUG: scheduling while atomic: '{name}' (tid {tid}), preempt_count {pc}, hardirq {irq}"
        );
    }
    loop {
        percpu::preempt_count_inc();
        __schedule(false);
        percpu::preempt_count_dec_and_test();
        if !percpu::need_resched() {
            break;
        }
    }
}

/// Preemption on the way out of an interrupt (Linux's
/// `irqentry_exit_cond_resched` -> `preempt_schedule_irq`): call last in a
/// device interrupt handler, after `irq_exit`, interrupts still off.
pub fn irqentry_exit_cond_resched() {
    if percpu::hardirq_count() != 0
        || percpu::preempt_count() != 0
        || !percpu::need_resched()
        || !is_running()
    {
        return;
    }
    loop {
        percpu::preempt_count_inc();
        __schedule(true);
        percpu::preempt_count_dec_and_test();
        if !percpu::need_resched() {
            break;
        }
    }
}

/// Preemption at `preempt_enable` (Linux's `preempt_schedule`), when the
/// count reached 0 with a reschedule pending.
pub(super) fn preempt_schedule() {
    if !x86_64::instructions::interrupts::are_enabled()
        || percpu::hardirq_count() != 0
        || !is_running()
    {
        return;
    }
    loop {
        percpu::preempt_count_inc();
        __schedule(true);
        percpu::preempt_count_dec_and_test();
        if !percpu::need_resched() {
            break;
        }
    }
}

/// Tasks on this CPU's queue waiting to run (racy).
pub fn nr_queued() -> usize {
    RUNQUEUES[percpu::cpu_id() as usize].lock().queue.len()
}

/// Tasks not yet reaped, the idle and boot tasks included.
pub fn nr_tasks() -> usize {
    ALL_TASKS.lock().len()
}

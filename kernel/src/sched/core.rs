//! The scheduler core (Linux's `kernel/sched/core.c`): runqueues,
//! `schedule`, wakeups, the tick, thread start, exit and reaping.
//!
//! One runqueue per CPU: a FIFO of runnable tasks (round-robin), the running
//! task, the CPU's idle task. `__schedule` puts the previous task at the tail
//! if it is still runnable (or was preempted), takes the head, or the idle
//! task when the queue is empty, and switches.
//!
//! # Several CPUs (Linux's `select_task_rq`, `ttwu`, newidle balance)
//!
//! - Placement: a woken or new task goes to an idle CPU it may use (its
//!   previous CPU first, then the waker's, then the lowest), else to the
//!   allowed CPU with the fewest tasks (the waker's on a tie, then its
//!   previous one); a reschedule IPI wakes an idle target.
//! - A woken task that blocked on another CPU is switched to only once
//!   that CPU has switched away from it (task T5: `on_cpu`).
//! - An idle CPU pulls the first task it may run from the CPU with the
//!   most queued tasks, both runqueue locks taken in CPU order.
//! - A runnable task switched out on a CPU it may no longer use (its
//!   affinity changed) is pushed to one it may, after the switch.
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
//! - R4: a DEAD task is handed to `finish_task_switch` through `prev`,
//!   removed from the task list and marked reaped there, after the switch:
//!   its stack is no longer in use.
//! - R5: a task in a CPU's `queue` has `cpu` equal to that CPU, is not
//!   `on_cpu`, and may run there (`cpus_allowed`), except for a moment
//!   after an affinity change (which then moves it). `NR_QUEUED` and
//!   `RQ_IDLE` mirror the queue length and whether `curr` is the idle
//!   task, written under the lock, read racily for placement.

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
    /// This runqueue's CPU.
    cpu: u32,
    /// The running task (R1). `None` only before `init`.
    pub(super) curr: Option<Arc<Task>>,
    /// This CPU's idle task.
    idle: Option<Arc<Task>>,
    /// Runnable tasks, next to run first (R1).
    pub(super) queue: VecDeque<Arc<Task>>,
    /// The task being switched away from, for `finish_task_switch` (T5,
    /// R4).
    prev: Option<Arc<Task>>,
    /// What `finish_task_switch` does with `prev` besides clearing its
    /// `on_cpu`.
    prev_action: PrevAction,
    /// `now_ns` of the last context switch, or of the last enqueue into an
    /// empty queue if later: how long queued tasks have waited for the CPU
    /// (soft-lockup check).
    waiting_since_ns: u64,
}

/// What happens to the previous task after a switch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrevAction {
    /// Nothing: it is queued here, or blocked.
    Keep,
    /// It exited: reap it (R4).
    Reap,
    /// It is runnable but may not run here: queue it on a CPU it may use.
    Push,
}

impl Rq {
    /// Queues a runnable task at the tail (Linux's `enqueue_task`).
    fn enqueue(&mut self, task: Arc<Task>) {
        if self.queue.is_empty() {
            self.waiting_since_ns = time::now_ns();
        }
        debug_assert_eq!(task.cpu(), self.cpu);
        self.queue.push_back(task);
        self.sync_nr_queued();
    }

    /// Takes the task to run next off the queue.
    fn pop_front(&mut self) -> Option<Arc<Task>> {
        let t = self.queue.pop_front();
        self.sync_nr_queued();
        t
    }

    /// Takes the queued task at `i` off the queue.
    fn remove(&mut self, i: usize) -> Option<Arc<Task>> {
        let t = self.queue.remove(i);
        self.sync_nr_queued();
        t
    }

    fn sync_nr_queued(&self) {
        NR_QUEUED[self.cpu as usize].store(self.queue.len() as u32, Ordering::Relaxed);
    }

    /// Makes `task` the running task (R1, R5).
    fn set_curr(&mut self, task: Arc<Task>) {
        RQ_IDLE[self.cpu as usize].store(task.is_idle(), Ordering::Relaxed);
        self.curr = Some(task);
    }

    /// Queues `task`, just made runnable or moved here, and wakes this CPU
    /// if it idles (Linux's `activate_task` + `wakeup_preempt`: round
    /// robin, so a wakeup preempts only the idle task).
    fn activate(&mut self, task: &Arc<Task>) {
        task.on_rq.store(true, Ordering::Relaxed);
        self.enqueue(task.clone());
        if self.curr.as_ref().is_some_and(|c| c.is_idle()) {
            crate::smp::ipi::resched_cpu(self.cpu);
        }
    }

    const fn new(cpu: u32) -> Self {
        Self {
            cpu,
            curr: None,
            idle: None,
            queue: VecDeque::new(),
            prev: None,
            prev_action: PrevAction::Keep,
            waiting_since_ns: 0,
        }
    }
}

/// Builds the runqueue array, each with its CPU number.
const fn runqueues() -> [SpinLock<Rq>; MAX_CPUS] {
    let mut a = [const { SpinLock::new("rq", Rq::new(0)) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        // The empty runqueue replaced owns nothing; forgetting it is free.
        core::mem::forget(core::mem::replace(
            &mut a[i],
            SpinLock::new("rq", Rq::new(i as u32)),
        ));
        i += 1;
    }
    a
}

/// The runqueues, by CPU (lock order: see `sched` module docs).
pub(super) static RUNQUEUES: [SpinLock<Rq>; MAX_CPUS] = runqueues();

/// Tasks queued on each CPU (R5; racy reads).
static NR_QUEUED: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Whether each CPU runs its idle task (R5; racy reads).
static RQ_IDLE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// How long a wakeup waits for another CPU to switch away from the task
/// (T5) before it reports a stuck switch.
const ON_CPU_TIMEOUT_NS: u64 = 5_000_000_000;

/// Locks the runqueue `task` is on (Linux's `task_rq_lock`): `cpu` read
/// again under that lock is stable (task T4).
fn task_rq_lock(task: &Task) -> sync::SpinLockGuard<'static, Rq> {
    loop {
        let cpu = task.cpu();
        let rq = RUNQUEUES[cpu as usize].lock();
        if task.cpu() == cpu {
            return rq;
        }
    }
}

/// The CPUs `task` may be placed on now: allowed and active, or, if none
/// is, every active CPU (Linux's `select_fallback_rq`).
fn placement_mask(task: &Task) -> u64 {
    let active = percpu::cpu_active_mask();
    match task.cpus_allowed() & active {
        0 => active,
        m => m,
    }
}

/// The CPU to queue `task` on (Linux's `select_task_rq`); see the module
/// docs. Racy reads: a good guess, never a wrong CPU (R5 holds by mask).
fn select_task_rq(task: &Task) -> u32 {
    let mask = placement_mask(task);
    let allows = |c: u32| mask & (1 << c) != 0;
    let idle = |c: u32| {
        RQ_IDLE[c as usize].load(Ordering::Relaxed)
            && NR_QUEUED[c as usize].load(Ordering::Relaxed) == 0
    };
    let load = |c: u32| {
        NR_QUEUED[c as usize].load(Ordering::Relaxed)
            + u32::from(!RQ_IDLE[c as usize].load(Ordering::Relaxed))
    };
    let prev = task.cpu();
    let this = percpu::cpu_id();
    let cpus = || (0..MAX_CPUS as u32).filter(move |&c| mask & (1 << c) != 0);
    if allows(prev) && idle(prev) {
        return prev;
    }
    if allows(this) && idle(this) {
        return this;
    }
    if let Some(c) = cpus().find(|&c| idle(c)) {
        return c;
    }
    let mut best = if allows(this) {
        this
    } else if allows(prev) {
        prev
    } else {
        mask.trailing_zeros()
    };
    for c in cpus() {
        if load(c) < load(best) {
            best = c;
        }
    }
    best
}

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
        possible_mask(),
        None,
        None,
    ));
    boot.on_rq.store(true, Ordering::Relaxed);
    boot.on_cpu.store(true, Ordering::Relaxed);
    let idle = new_kthread(
        Tid::new(0),
        "swapper/0",
        TaskKind::Idle,
        cpu,
        1 << cpu,
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
    rq.set_curr(boot);
    rq.idle = Some(idle);
    rq.waiting_since_ns = time::now_ns();
    drop(rq);
    NEXT_HUNG_CHECK_NS.store(
        time::now_ns() + super::HUNG_TASK_CHECK_NS,
        Ordering::Relaxed,
    );
    RUNNING.store(true, Ordering::Release);
}

/// Every CPU id below `nr_cpu_ids` (Linux's `cpu_possible_mask`).
pub fn possible_mask() -> u64 {
    match percpu::nr_possible_cpus() {
        64.. => u64::MAX,
        n => (1 << n) - 1,
    }
}

/// Creates CPU `cpu`'s idle task `swapper/N` for an AP about to be
/// started, and makes it that CPU's running task and idle task; returns
/// the top of its stack, where the AP starts (as the boot context became
/// `kmain`, the AP's start becomes its idle task). Boot CPU, before the AP
/// runs. Nothing is queued on the AP before it is active (placement only
/// picks active CPUs).
pub fn init_idle_ap(cpu: u32) -> Result<u64, stack::StackError> {
    assert!(cpu != 0 && (cpu as usize) < MAX_CPUS);
    let name = alloc::format!("swapper/{cpu}");
    let idle = new_kthread(
        Tid::new(0),
        &name,
        TaskKind::Idle,
        cpu,
        1 << cpu,
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
    idle.on_cpu.store(true, Ordering::Relaxed);
    rq.set_curr(idle.clone());
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
    cpus_allowed: u64,
    entry: Entry,
) -> Result<Arc<Task>, stack::StackError> {
    let stack = stack::KernelStack::new()?;
    // SAFETY: the stack was just mapped for this task alone, and its top is
    // slot-aligned, so 16-byte aligned.
    let sp = unsafe { switch::initial_frame(stack.top()) };
    let task = Arc::new(Task::new(
        tid,
        name,
        kind,
        cpu,
        cpus_allowed,
        Some(stack),
        Some(entry),
    ));
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
/// the queue of the CPU placement picks (module docs); it runs when its
/// turn comes (no preemption of the running task, except the idle one).
pub(super) fn wake_up_new_task(task: &Arc<Task>) {
    ALL_TASKS.lock().push(task.clone());
    let _pi = task.pi_lock.lock();
    let cpu = select_task_rq(task);
    task.cpu.store(cpu, Ordering::Relaxed);
    RUNQUEUES[cpu as usize].lock().activate(task);
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
    let cpu = percpu::cpu_id();
    let rq_lock = &RUNQUEUES[cpu as usize];
    rq_lock.raw_lock();
    // SAFETY: this CPU holds the lock, until `finish_task_switch` (R3).
    let rq = unsafe { &mut *rq_lock.data_ptr() };
    percpu::clear_need_resched();
    let prev = rq.curr.take().expect("runqueue without a current task");
    let state = prev.state();
    let blocking = !preempt && state != TaskState::Running;
    let mut action = PrevAction::Keep;
    if blocking {
        prev.on_rq.store(false, Ordering::Relaxed);
        prev.blocked_since_ns
            .store(time::now_ns(), Ordering::Relaxed);
        if state == TaskState::Dead {
            action = PrevAction::Reap;
        }
    } else if !prev.is_idle() {
        if prev.cpus_allowed() & (1 << cpu) != 0 {
            rq.enqueue(prev.clone());
        } else {
            // Its affinity changed: it moves once off this CPU (R5).
            action = PrevAction::Push;
        }
    }
    let next = match rq.pop_front() {
        Some(t) => t,
        None => rq.idle.clone().expect("runqueue without an idle task"),
    };
    if Arc::ptr_eq(&prev, &next) {
        rq.set_curr(prev);
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
    debug_assert!(!next.on_cpu.load(Ordering::Relaxed) || next.is_idle());
    debug_assert_eq!(next.cpu(), cpu);
    next.on_cpu.store(true, Ordering::Relaxed);
    rq.set_curr(next);
    // `prev` stays `on_cpu` until `finish_task_switch` (T5).
    rq.prev = Some(prev);
    rq.prev_action = action;
    // SAFETY: 1. prev_sp points into the previous task, kept alive by
    // `rq.prev` until `finish_task_switch`, then by the task list (or the
    // reaper) until it is resumed or reaped. 2. next_sp was saved by
    // switch_to or made by initial_frame for `next`, which runs nowhere:
    // it was queued, so whichever CPU ran it last has cleared its `on_cpu`
    // (T5, R5), or it is this CPU's idle task. Its stack is mapped while it
    // lives. 3. Interrupts are off.
    unsafe { switch::switch_to(prev_sp, next_sp) };
    finish_task_switch(irqs);
}

/// Runs right after a switch, on the task switched to: lets other CPUs
/// run the previous task (T5), releases the runqueue lock (R3), reaps a
/// dead predecessor (R4) or pushes it to a CPU it may use, restores the
/// interrupt state the task had when it switched out.
fn finish_task_switch(irqs: bool) {
    let rq_lock = &RUNQUEUES[percpu::cpu_id() as usize];
    // SAFETY: the lock was taken by the task that switched to this one (R3).
    let (prev, action) = unsafe {
        let rq = &mut *rq_lock.data_ptr();
        (rq.prev.take(), rq.prev_action)
    };
    if let Some(prev) = &prev {
        // Its registers, stack pointer and FPU area are saved (T5).
        prev.on_cpu.store(false, Ordering::Release);
    }
    // SAFETY: held since the switch; no reference into the runqueue lives on.
    unsafe { rq_lock.raw_unlock() };
    if let Some(prev) = prev {
        match action {
            PrevAction::Reap => reap(prev),
            PrevAction::Push => push_task(&prev),
            // The task list (and the queue, if runnable) keep it alive.
            PrevAction::Keep => drop(prev),
        }
    }
    sync::irq_restore(irqs);
}

/// Queues a runnable task that is in no queue (switched out where it may
/// no longer run, or taken off a queue by an affinity change) on a CPU it
/// may use. The caller holds the task's `pi_lock` (task T4).
fn push_task_locked(task: &Arc<Task>) {
    let cpu = select_task_rq(task);
    task.cpu.store(cpu, Ordering::Relaxed);
    stat::inc(SchedStat::Migration);
    RUNQUEUES[cpu as usize].lock().activate(task);
}

/// [`push_task_locked`] taking the task's `pi_lock`.
fn push_task(task: &Arc<Task>) {
    let _pi = task.pi_lock.lock();
    push_task_locked(task);
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

/// Wakes `task` if it sleeps (Linux's `try_to_wake_up`): RUNNING again,
/// and, unless still on its runqueue (it has not switched out yet), queued
/// at the tail of the runqueue placement picks (module docs), once the CPU
/// it blocked on has switched away from it (T5). Returns whether it was
/// asleep. Any context (takes `pi_lock` and runqueue locks, interrupts
/// off).
pub fn try_to_wake_up(task: &Arc<Task>) -> bool {
    let _pi = task.pi_lock.lock();
    match task.state() {
        TaskState::Running | TaskState::Dead => return false,
        TaskState::Interruptible | TaskState::Uninterruptible | TaskState::Idle => {}
    }
    {
        let _rq = task_rq_lock(task);
        if task.on_rq.load(Ordering::Relaxed) {
            // Still running, or queued (Linux's `ttwu_runnable`): its
            // `schedule()` sees RUNNING and keeps it.
            task.set_state(TaskState::Running);
            stat::inc(SchedStat::Wakeup);
            return true;
        }
    }
    // Blocked: nothing else wakes it while we hold `pi_lock`; wait until
    // the CPU it blocked on no longer runs on its stack (Linux's
    // `smp_cond_load_acquire(&p->on_cpu, !VAL)`).
    let deadline = time::now_ns() + ON_CPU_TIMEOUT_NS;
    while task.on_cpu.load(Ordering::Acquire) {
        assert!(
            time::now_ns() < deadline,
            "BUG: CPU#{} did not switch away from '{}' (tid {}) within 5 s",
            task.cpu(),
            task.name(),
            task.tid()
        );
        core::hint::spin_loop();
    }
    let cpu = select_task_rq(task);
    if task.cpu.swap(cpu, Ordering::Relaxed) != cpu {
        stat::inc(SchedStat::Migration);
    }
    let mut rq = RUNQUEUES[cpu as usize].lock();
    task.set_state(TaskState::Running);
    stat::inc(SchedStat::Wakeup);
    rq.activate(task);
    true
}

/// Why [`set_cpus_allowed`] refused a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffinityError {
    /// No active CPU in the mask (Linux: `EINVAL`).
    NoActiveCpu,
    /// The task is bound to its CPU (an idle task or a per-CPU kernel
    /// thread, Linux's `PF_NO_SETAFFINITY`: `EINVAL`).
    Bound,
}

/// Sets the CPUs `task` may run on to `mask` & the active CPUs (Linux's
/// `__set_cpus_allowed_ptr`): a queued task on a CPU no longer allowed
/// moves at once, a running one at its next switch (the running task
/// itself: before this returns). Task context.
pub fn set_cpus_allowed(task: &Arc<Task>, mask: u64) -> Result<(), AffinityError> {
    if task.is_idle() || task.bound.load(Ordering::Relaxed) {
        return Err(AffinityError::Bound);
    }
    let mask = mask & percpu::cpu_active_mask();
    if mask == 0 {
        return Err(AffinityError::NoActiveCpu);
    }
    let mut resched_self = false;
    {
        let _pi = task.pi_lock.lock();
        task.cpus_allowed.store(mask, Ordering::Relaxed);
        let mut rq = task_rq_lock(task);
        let cpu = task.cpu();
        if mask & (1 << cpu) == 0 {
            if rq.curr.as_ref().is_some_and(|c| Arc::ptr_eq(c, task)) {
                // `__schedule` pushes it when it switches out (R5).
                if cpu == percpu::cpu_id() {
                    resched_self = true;
                } else {
                    crate::smp::ipi::resched_cpu(cpu);
                }
            } else if let Some(i) = rq.queue.iter().position(|t| Arc::ptr_eq(t, task)) {
                let t = rq.remove(i).expect("the index just found");
                drop(rq);
                push_task_locked(&t);
            }
            // Otherwise it is blocked (its wakeup places it by the new
            // mask) or being pushed (which reads the mask under `pi_lock`).
        }
    }
    if resched_self {
        super::schedule();
    }
    Ok(())
}

/// Makes `task` run only on `cpu`, for good (Linux's `kthread_bind` of a
/// per-CPU kernel thread): [`set_cpus_allowed`] refuses it from now on.
pub(super) fn bind(task: &Arc<Task>, cpu: u32) {
    task.cpus_allowed.store(1 << cpu, Ordering::Relaxed);
    task.cpu.store(cpu, Ordering::Relaxed);
    task.bound.store(true, Ordering::Relaxed);
}

/// The idle task's load balance (Linux's `sched_balance_newidle`): takes
/// the first queued task that may run here from the active CPU with the
/// most queued tasks, both runqueue locks in CPU order, and asks for a
/// reschedule. Returns whether it took one. Interrupts off.
pub(super) fn idle_balance() -> bool {
    let this = percpu::cpu_id();
    let active = percpu::cpu_active_mask();
    let busiest = (0..percpu::nr_possible_cpus() as u32)
        .filter(|&c| c != this && active & (1 << c) != 0)
        .max_by_key(|&c| NR_QUEUED[c as usize].load(Ordering::Relaxed));
    let Some(busiest) = busiest else {
        return false;
    };
    if NR_QUEUED[busiest as usize].load(Ordering::Relaxed) == 0 {
        return false;
    }
    let (first, second) = if this < busiest {
        (this, busiest)
    } else {
        (busiest, this)
    };
    let mut a = RUNQUEUES[first as usize].lock();
    let mut b = RUNQUEUES[second as usize].lock();
    let (mine, theirs) = if first == this {
        (&mut *a, &mut *b)
    } else {
        (&mut *b, &mut *a)
    };
    let Some(i) = theirs
        .queue
        .iter()
        .position(|t| t.cpus_allowed() & (1 << this) != 0 && !t.on_cpu.load(Ordering::Acquire))
    else {
        return false;
    };
    let task = theirs.remove(i).expect("the index just found");
    task.cpu.store(this, Ordering::Relaxed);
    mine.enqueue(task);
    stat::inc(SchedStat::Migration);
    percpu::set_need_resched();
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
    } else {
        kick_process(task);
    }
}

/// Makes `task`, if another CPU runs it, enter the kernel (Linux's
/// `kick_process`): the reschedule IPI's return to user mode looks at
/// its signals. Racy by design: at worst a needless interrupt.
fn kick_process(task: &Task) {
    let _pin = super::PreemptGuard::new();
    let cpu = task.cpu();
    if task.on_cpu.load(Ordering::Acquire) && cpu != percpu::cpu_id() {
        crate::smp::ipi::smp_send_reschedule(cpu);
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

//! Inter-processor interrupts: function calls on other CPUs and the
//! reschedule IPI (Linux's `kernel/smp.c` and `arch/x86/kernel/smp.c`).
//!
//! - [`smp_call_function_many`] runs a function on a set of online CPUs,
//!   in their hard-IRQ context, and waits until every one has run it
//!   (Linux's `smp_call_function_many(mask, func, info, wait = true)`);
//!   [`on_each_cpu`] also runs it on the calling CPU. Each target CPU has
//!   a queue of pending calls (Linux's `call_single_queue`); the caller
//!   queues a pointer to a call descriptor on its own stack (Linux's
//!   on-stack `call_single_data` of a waiting call), sends
//!   [`CALL_FUNCTION_VECTOR`] to each target, and spins until the
//!   descriptor's count of CPUs yet to run it reaches 0.
//! - [`smp_send_reschedule`] sends [`RESCHEDULE_VECTOR`]: the interrupt
//!   itself is the point (the target leaves `hlt` and passes an interrupt
//!   return, where a `need_resched` set before the IPI is seen); the
//!   scheduler's wakeups use it through [`resched_cpu`] when the woken
//!   task's CPU is not the waker's.
//!
//! Nothing here allocates or frees memory on the target CPU: the handler
//! pops a pointer from its queue (no reallocation), calls, and signals.
//!
//! # Invariants
//!
//! - P1: a queued `CallPtr` points at a `Call` that stays alive until its
//!   `pending` count reaches 0: the caller spins on it before returning,
//!   and each target's last access to the `Call` is its decrement.
//! - P2: only online CPUs are targeted, and the caller never targets
//!   itself (it runs the function directly in [`on_each_cpu`]).
//! - P3: queued calls run with interrupts off on their target, each once:
//!   in the IPI handler, or in the wait loop of a caller that waits with
//!   interrupts off on that CPU (the TLB shootdown's
//!   [`call_function_many_wait`]), whichever pops it first.
//!
//! # Context
//!
//! [`smp_call_function_many`] and [`on_each_cpu`]: a task with interrupts
//! enabled (as Linux warns: two CPUs waiting for each other's calls with
//! interrupts off would deadlock). The called function runs in hard-IRQ
//! context with interrupts off: short, no sleeping, no locks that the
//! caller may hold while it waits. [`smp_send_reschedule`] and
//! [`resched_cpu`]: any context.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use x86_64::structures::idt::InterruptStackFrame;

use crate::arch::idt;
use crate::percpu::{self, MAX_CPUS};
use crate::sched;
use crate::sync::SpinLock;
use crate::time::{self, apic};

/// Linux's `RESCHEDULE_VECTOR`.
pub const RESCHEDULE_VECTOR: u8 = 0xfd;
/// Linux's `CALL_FUNCTION_VECTOR`.
pub const CALL_FUNCTION_VECTOR: u8 = 0xfc;

/// How long a caller waits for its calls before reporting a stuck CPU
/// (Linux's `csd_lock_timeout` default, 5 s).
const CALL_TIMEOUT_NS: u64 = 5_000_000_000;

/// One call: the function and how many CPUs have yet to run it.
struct Call<'a> {
    func: &'a (dyn Fn() + Sync),
    pending: AtomicU32,
}

/// A queued call (P1).
struct CallPtr(*const Call<'static>);

// SAFETY: the pointee is `Sync` (a `Sync` closure and an atomic) and
// outlives the pointer's use on the target (P1).
unsafe impl Send for CallPtr {}

/// Each CPU's pending calls (Linux's `call_single_queue`).
static QUEUES: [SpinLock<VecDeque<CallPtr>>; MAX_CPUS] =
    [const { SpinLock::new("call_single_queue", VecDeque::new()) }; MAX_CPUS];

/// Per CPU: function-call IPIs taken (Linux's `/proc/interrupts` `CAL`).
static NR_CALL_IPIS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: reschedule IPIs taken (`/proc/interrupts` `RES`).
static NR_RESCHED_IPIS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Function-call IPIs CPU `cpu` has taken.
pub fn nr_call_ipis(cpu: u32) -> u64 {
    NR_CALL_IPIS[cpu as usize].load(Ordering::Relaxed)
}

/// Reschedule IPIs CPU `cpu` has taken.
pub fn nr_resched_ipis(cpu: u32) -> u64 {
    NR_RESCHED_IPIS[cpu as usize].load(Ordering::Relaxed)
}

/// Installs the IPI handlers in the shared IDT. Once, on the boot CPU,
/// before any AP starts.
pub fn init() {
    idt::set_interrupt_handler(CALL_FUNCTION_VECTOR, call_function_interrupt);
    idt::set_interrupt_entry(RESCHEDULE_VECTOR, reschedule_entry);
}

/// Sends fixed-delivery `vector` to online CPU `cpu`.
fn send_vector(cpu: u32, vector: u8) {
    let apic_id = percpu::per_cpu(cpu).apic_id();
    x86_64::instructions::interrupts::without_interrupts(|| {
        apic::send_ipi(apic_id, apic::ICR_LEVEL_ASSERT | u32::from(vector));
    });
}

/// Runs `func` on every online CPU of `mask` (bit N: CPU N) but the
/// caller's, and returns once all of them have run it; returns how many
/// did. See the module docs for the context.
pub fn smp_call_function_many(mask: u64, func: &(dyn Fn() + Sync)) -> usize {
    assert!(
        x86_64::instructions::interrupts::are_enabled(),
        "smp_call_function_many with interrupts off"
    );
    call_function_many_wait(mask, func)
}

/// [`smp_call_function_many`] for the TLB shootdown, which may be asked
/// for with interrupts off: while it waits with interrupts off it runs
/// the calls queued to its own CPU (P3), so two CPUs that wait for each
/// other's calls both finish. A target that spins with interrupts off on
/// a lock the caller holds still deadlocks: the caller must hold none.
pub(crate) fn call_function_many_wait(mask: u64, func: &(dyn Fn() + Sync)) -> usize {
    let _pin = sched::PreemptGuard::new();
    let me = percpu::cpu_id();
    let targets = move || {
        (0..percpu::nr_possible_cpus() as u32).filter(move |&cpu| {
            cpu != me && mask & (1 << cpu) != 0 && percpu::per_cpu(cpu).is_online()
        })
    };
    let n = targets().count();
    if n == 0 {
        return 0;
    }
    let call = Call {
        func,
        pending: AtomicU32::new(n as u32),
    };
    // The lifetime is erased for the queue; P1 keeps the pointer valid.
    let ptr = core::ptr::from_ref(&call).cast::<Call<'static>>();
    for cpu in targets() {
        QUEUES[cpu as usize].lock().push_back(CallPtr(ptr));
        send_vector(cpu, CALL_FUNCTION_VECTOR);
    }
    let deadline = time::now_ns() + CALL_TIMEOUT_NS;
    let irqs_off = !x86_64::instructions::interrupts::are_enabled();
    while call.pending.load(Ordering::Acquire) != 0 {
        if irqs_off {
            run_queued_calls(me);
        }
        assert!(
            time::now_ns() < deadline,
            "smp: a CPU did not run a function call within 5 s ({} of {n} pending)",
            call.pending.load(Ordering::Relaxed)
        );
        core::hint::spin_loop();
    }
    n
}

/// Runs `func` on every online CPU, the caller's included (with interrupts
/// off there, as on the others), and returns once all have run it
/// (Linux's `on_each_cpu(func, info, wait = true)`).
pub fn on_each_cpu(func: &(dyn Fn() + Sync)) -> usize {
    let others = smp_call_function_many(u64::MAX, func);
    x86_64::instructions::interrupts::without_interrupts(func);
    others + 1
}

/// Sends CPU `cpu` the reschedule IPI (Linux's `smp_send_reschedule`).
/// Any context; `cpu` must be online and not the caller.
pub fn smp_send_reschedule(cpu: u32) {
    debug_assert!(percpu::per_cpu(cpu).is_online());
    send_vector(cpu, RESCHEDULE_VECTOR);
}

/// Asks CPU `cpu` to reschedule (Linux's `resched_curr`): sets its
/// `need_resched`, and if it is another CPU, sends it the reschedule IPI
/// so it notices before its next tick. Any context.
pub fn resched_cpu(cpu: u32) {
    percpu::per_cpu(cpu).set_need_resched();
    if cpu != percpu::cpu_id() && percpu::per_cpu(cpu).is_online() {
        smp_send_reschedule(cpu);
    }
}

/// The function-call IPI: runs every queued call (Linux's
/// `generic_smp_call_function_single_interrupt`).
extern "x86-interrupt" fn call_function_interrupt(_frame: InterruptStackFrame) {
    percpu::irq_enter();
    let cpu = percpu::cpu_id();
    NR_CALL_IPIS[cpu as usize].fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    run_queued_calls(cpu);
    percpu::irq_exit();
}

/// Runs every call queued to `cpu`, the caller's own CPU, with interrupts
/// off (Linux's `__flush_smp_call_function_queue`).
fn run_queued_calls(cpu: u32) {
    loop {
        let Some(CallPtr(ptr)) = QUEUES[cpu as usize].lock().pop_front() else {
            break;
        };
        // SAFETY: the caller keeps the Call alive until its pending count
        // is 0, and this CPU's decrement below is still owed (P1).
        let call = unsafe { &*ptr };
        (call.func)();
        // The last access to `call` (P1): after it the caller may return.
        call.pending.fetch_sub(1, Ordering::Release);
    }
}

// The reschedule IPI's gate: from user mode its return runs the
// return-to-user loop (a reschedule, or the signals `kick_process` sent it
// for), as the timer's does.
crate::user_irq_entry!(reschedule_entry, reschedule_interrupt, reschedule_user);

/// The reschedule IPI from kernel mode: counted and acknowledged, then
/// preemption on the way out if the running task may be preempted (an
/// idle CPU's `hlt` simply ends and its loop schedules).
extern "x86-interrupt" fn reschedule_interrupt(_frame: InterruptStackFrame) {
    scheduler_ipi();
    sched::irqentry_exit_cond_resched();
}

/// The reschedule IPI from user mode (the return-to-user loop does the
/// rest).
extern "C" fn reschedule_user() {
    scheduler_ipi();
}

/// What the reschedule IPI does in either mode (Linux's `scheduler_ipi`:
/// nothing but the interrupt itself, counted).
fn scheduler_ipi() {
    percpu::irq_enter();
    NR_RESCHED_IPIS[percpu::cpu_id() as usize].fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    percpu::irq_exit();
}

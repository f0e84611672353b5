//! The kernel's RCU: `mm::rcu` (the algorithm) driven by the real tick
//! and scheduler; this module only supplies the hooks and threads.
//!
//! - Quiescent states: every context switch (a scheduler switch hook), and
//!   every tick that did not interrupt a read-side section (a tick hook,
//!   which also starts grace periods, warns about stalls and submits old
//!   kvfree_rcu batches). The idle task is covered by the ticks that wake
//!   it.
//! - Callbacks run in the `rcuc/N` kernel thread of each CPU (Linux's
//!   `rcuc` kthreads; its softirq in other configurations), woken by the
//!   tick when a grace period has made some of them ready.
//! - CPUs the scheduler does not run tasks on (possible but not online,
//!   or still in their bring-up: `smp`) are offline for RCU, so they never
//!   hold up a grace period; an AP comes online for RCU just before it
//!   becomes active, and its `rcuc/N` starts right after.

pub mod bench;
pub mod ktests;

use mm::CpuId;
use mm::rcu::{Rcu, RcuReadGuard};
use spin::Once;

use crate::platform::KernelPlatform;
use crate::sched::{self, WaitQueue};
use crate::{memory, percpu, time};

static RCU: Once<Rcu<KernelPlatform>> = Once::new();

/// Where the `rcuc` threads sleep until the tick finds callbacks ready.
static RCUC_WAIT: WaitQueue = WaitQueue::new("rcuc");

/// The kernel's RCU; panics before [`init`].
pub fn rcu() -> &'static Rcu<KernelPlatform> {
    RCU.get().expect("rcu::init has not run")
}

/// `rcu_read_lock()`.
pub fn read_lock() -> RcuReadGuard<'static, KernelPlatform> {
    rcu().read_lock()
}

/// Sets RCU up and hooks it to the tick and the scheduler; spawns the
/// callback threads. Call once after `sched::init`.
pub fn init() {
    let platform = KernelPlatform::new(memory::page_alloc().platform().phys_offset());
    let state = RCU.call_once(|| Rcu::new(platform));
    for cpu in 0..percpu::nr_possible_cpus() as u32 {
        if !percpu::per_cpu(cpu).is_active() {
            state.cpu_offline(CpuId::new(cpu));
        }
    }
    sched::register_switch_hook(context_switch).expect("a free context-switch hook slot");
    time::register_tick_hook(tick).expect("a free tick hook slot");
    start_cpu(percpu::cpu_id());
}

/// Makes this CPU, an AP in its bring-up, take part in grace periods
/// (Linux's `rcutree_online_cpu`): before the scheduler may run a task
/// on it. Interrupts off.
pub fn cpu_online() {
    rcu().cpu_online(CpuId::new(percpu::cpu_id()));
}

/// Starts active CPU `cpu`'s callback thread `rcuc/N`, bound to it.
pub fn start_cpu(cpu: u32) {
    let handle = sched::spawn_on(cpu, &alloc::format!("rcuc/{cpu}"), rcuc_thread);
    core::mem::forget(handle);
}

/// Every `__schedule` (interrupts and preemption off): a quiescent state.
fn context_switch(_preempt: bool) {
    rcu().note_context_switch();
}

/// The tick's RCU work (hard IRQ, interrupts off).
fn tick() {
    if rcu().sched_clock_irq() {
        RCUC_WAIT.wake_all();
    }
}

/// Invokes ready callbacks whenever the tick says there are some.
fn rcuc_thread() {
    let rcu = rcu();
    let cpu = CpuId::new(percpu::cpu_id());
    loop {
        RCUC_WAIT.wait_until_idle(|| rcu.has_ready_callbacks(cpu));
        rcu.rcu_core();
    }
}

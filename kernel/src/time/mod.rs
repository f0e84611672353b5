//! Time: the local APIC timer tick at [`HZ`], the TSC-based monotonic clock,
//! jiffies, and the hooks that run on every tick.
//!
//! - [`apic`]: the local APIC (x2APIC or xAPIC) and the masked 8259 PIC.
//! - [`pit`]: calibration of the TSC and the APIC timer against the PIT.
//! - [`clock`]: `now_ns` (TSC scaled to ns) and `jiffies`.
//! - [`rtc`]: the CMOS clock's wall time, `CLOCK_REALTIME`.
//!
//! # The tick
//!
//! The local APIC timer fires [`apic::LOCAL_TIMER_VECTOR`] every
//! [`TICK_NS`] (HZ = 250, Linux's default). Its handler, in hard-IRQ context
//! with interrupts off, does what Linux's `tick_handle_periodic` ->
//! `update_process_times` does, in this order (with `profile=N` the timer
//! fires `N / HZ` times as often and each interrupt first records a
//! sample, [`profile`]; only every `N / HZ`-th goes on to these steps):
//!
//! 1. the tick-duty CPU (CPU 0, `tick_do_timer_cpu`) brings jiffies up to
//!    date with the clock ([`clock::update_jiffies`]);
//! 2. every registered tick hook runs ([`register_tick_hook`]; RCU's
//!    `rcu_sched_clock_irq` goes here);
//! 3. `sched::scheduler_tick`: the time slice, expired sleep timers, the
//!    soft-lockup and hung-task checks;
//! 4. EOI, `irq_exit`, then on the way out a preemption if one is due
//!    (`sched::irqentry_exit_cond_resched`), which may switch tasks right
//!    there: the interrupted frame stays on that task's stack and the
//!    `iretq` happens when the task next runs.
//!
//! # Ordering
//!
//! [`init`] runs once on the boot CPU with interrupts off, after
//! `memory::init` (the xAPIC fallback uses the direct map) and before
//! `sched::init`: it masks the PIC, enables the local APIC, calibrates, starts
//! the clock and arms the periodic timer, whose first interrupt is taken
//! when the boot code enables interrupts.
//!
//! # Context
//!
//! `now_ns`, `jiffies` and `register_tick_hook` work in any context.

pub mod apic;
pub mod clock;
pub mod ktests;
pub mod pit;
pub mod profile;
pub mod rtc;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use x86_64::structures::idt::InterruptStackFrame;

use crate::arch::idt;
use crate::{percpu, sched};

pub use clock::{jiffies, now_ns, rdtsc};

/// Ticks per second (Linux's default `CONFIG_HZ`).
pub const HZ: u64 = 250;
/// Nanoseconds per tick (Linux's `TICK_NSEC`).
pub const TICK_NS: u64 = 1_000_000_000 / HZ;
/// The CPU that keeps jiffies (Linux's `tick_do_timer_cpu`).
pub const TICK_DO_TIMER_CPU: u32 = 0;

/// A function run on every tick of every CPU: hard-IRQ context, interrupts
/// off, preemption impossible. It must be short and must not sleep; it may
/// take `sync::SpinLock`s and wake tasks.
pub type TickHook = fn();

/// The most tick hooks that can be registered.
pub const MAX_TICK_HOOKS: usize = 8;

/// Registered hooks, filled from index 0; null slots end the list.
/// Write: [`register_tick_hook`] (compare-exchange null -> hook, Release).
/// Read: the tick, Acquire, pairing with that store.
static TICK_HOOKS: [AtomicPtr<()>; MAX_TICK_HOOKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_TICK_HOOKS];

/// No slot left for another tick hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickHooksFull;

/// Adds `hook` to the functions every tick runs (see [`TickHook`]). Hooks
/// run in registration order and stay registered for good.
pub fn register_tick_hook(hook: TickHook) -> Result<(), TickHooksFull> {
    for slot in &TICK_HOOKS {
        if slot
            .compare_exchange(
                core::ptr::null_mut(),
                hook as *mut (),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(TickHooksFull)
}

fn run_tick_hooks() {
    for slot in &TICK_HOOKS {
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            break;
        }
        // SAFETY: the only non-null values ever stored in TICK_HOOKS are
        // `TickHook`s cast by register_tick_hook; on x86_64 function and data
        // pointers have the same size and representation.
        let hook = unsafe { core::mem::transmute::<*mut (), TickHook>(p) };
        hook();
    }
}

/// What [`init`] set up, for the boot log and banner.
#[derive(Clone, Copy, Debug)]
pub struct TimeInfo {
    pub apic_mode: apic::ApicMode,
    pub calibration: pit::Calibration,
    /// APIC timer count per tick (after the divide by 16).
    pub lapic_count_per_tick: u32,
}

static INFO: spin::Once<TimeInfo> = spin::Once::new();

/// What [`init`] set up, once it has run.
pub fn info() -> Option<&'static TimeInfo> {
    INFO.get()
}

/// LAPIC error interrupts seen (each one is also logged).
static NR_APIC_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Spurious interrupts seen (LAPIC spurious vector, 8259 IRQ 7/15).
static NR_SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// Spurious interrupts seen so far.
pub fn nr_spurious() -> u64 {
    NR_SPURIOUS.load(Ordering::Relaxed)
}

/// Brings up the timer hardware and the clock; see the module docs.
pub fn init(phys_offset: u64) -> &'static TimeInfo {
    assert!(
        !x86_64::instructions::interrupts::are_enabled(),
        "time::init with interrupts on"
    );
    apic::disable_8259();
    idt::set_interrupt_entry(apic::LOCAL_TIMER_VECTOR, local_timer_entry);
    idt::set_interrupt_handler(apic::ERROR_APIC_VECTOR, apic_error_interrupt);
    idt::set_interrupt_handler(apic::SPURIOUS_APIC_VECTOR, spurious_interrupt);
    idt::set_interrupt_handler(apic::PIC_VECTOR_BASE + 7, spurious_interrupt);
    idt::set_interrupt_handler(apic::PIC_VECTOR_BASE + 15, spurious_interrupt);
    let apic_mode = apic::init(phys_offset);
    let calibration = pit::calibrate();
    clock::start(calibration.tsc_hz);
    let count = (calibration.lapic_timer_hz / HZ).clamp(1, u64::from(u32::MAX)) as u32;
    apic::timer_start_periodic(count);
    let info = INFO.call_once(|| TimeInfo {
        apic_mode,
        calibration,
        lapic_count_per_tick: count,
    });
    log::info!(
        "time: {:?} (APIC id {}), legacy PIC masked; TSC {}.{:03} MHz, APIC timer {}.{:03} MHz \
         (/16), calibrated against the PIT ({} x {} ms gate); tick HZ={} ({} counts)",
        apic_mode,
        apic::id(),
        calibration.tsc_hz / 1_000_000,
        calibration.tsc_hz / 1_000 % 1_000,
        calibration.lapic_timer_hz / 1_000_000,
        calibration.lapic_timer_hz / 1_000 % 1_000,
        pit::NR_GATES,
        pit::GATE_MS,
        HZ,
        count,
    );
    info
}

// The timer's gate: from user mode its return runs the return-to-user
// loop (preemption, signals) with the whole user context saved.
crate::user_irq_entry!(local_timer_entry, local_timer_interrupt, local_timer_user);

/// The local timer interrupt from kernel mode: see "The tick" in the
/// module docs.
extern "x86-interrupt" fn local_timer_interrupt(frame: InterruptStackFrame) {
    if !percpu::this_cpu().is_active() {
        parked_tick();
        return;
    }
    // This handler's own frame record, whose saved rbp is the interrupted
    // code's: where the profiler's stack walk starts.
    let rbp = crate::arch::backtrace::frame_pointer();
    if !profile::sample_tick(&frame, rbp) {
        // A profiling interrupt between two ticks: nothing else to do.
        apic::eoi();
        return;
    }
    local_timer_tick();
    sched::irqentry_exit_cond_resched();
}

/// The local timer interrupt from user mode (the return-to-user loop
/// reschedules).
extern "C" fn local_timer_user() {
    if !profile::sample_user_tick() {
        apic::eoi();
        return;
    }
    local_timer_tick();
}

/// The tick of a CPU the scheduler does not use yet (an AP in its
/// bring-up, before it is active, `smp`): counted and acknowledged,
/// nothing else. Such a CPU runs no task and reads no RCU-protected data,
/// so it has no quiescent states to report (RCU counts it offline until
/// just before it becomes active) and no time slice to end.
fn parked_tick() {
    percpu::irq_enter();
    percpu::this_cpu().nr_ticks.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
    percpu::irq_exit();
}

/// Arms this AP's local timer like the boot CPU's (same period: the local
/// APIC timers share the bus clock [`init`] calibrated). Interrupts off.
pub fn init_ap_timer() {
    let info = info().expect("time::init ran on the boot CPU");
    apic::timer_start_periodic(info.lapic_count_per_tick);
}

/// The tick's work, in either mode.
fn local_timer_tick() {
    percpu::irq_enter();
    percpu::this_cpu().nr_ticks.fetch_add(1, Ordering::Relaxed);
    if percpu::cpu_id() == TICK_DO_TIMER_CPU {
        clock::update_jiffies();
    }
    run_tick_hooks();
    sched::scheduler_tick();
    apic::eoi();
    percpu::irq_exit();
}

/// LAPIC error: read and clear the error status, log it, acknowledge.
extern "x86-interrupt" fn apic_error_interrupt(_frame: InterruptStackFrame) {
    percpu::irq_enter();
    apic::write(apic::reg::ESR, 0);
    let esr = apic::read(apic::reg::ESR);
    NR_APIC_ERRORS.fetch_add(1, Ordering::Relaxed);
    log::error!("APIC error on CPU#{}: ESR {esr:#x}", percpu::cpu_id());
    apic::eoi();
    percpu::irq_exit();
}

/// A spurious interrupt: counted, never acknowledged (the controller did
/// not deliver a real one, so there is nothing to end).
extern "x86-interrupt" fn spurious_interrupt(_frame: InterruptStackFrame) {
    NR_SPURIOUS.fetch_add(1, Ordering::Relaxed);
}

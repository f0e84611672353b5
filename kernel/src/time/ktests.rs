//! In-kernel tests of the tick, the clock and the tick hooks.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{HZ, TICK_NS, apic, info, jiffies, now_ns, register_tick_hook};
use crate::ktest::KTest;
use crate::percpu;

pub const KTESTS: &[KTest] = crate::ktests![
    calibrated_against_the_pit,
    now_ns_is_monotonic,
    tick_advances_while_busy,
    tick_hooks_run_in_hard_irq,
];

/// Busy-waits (interrupts on) until `now_ns() >= until`.
fn spin_until(until: u64) {
    while now_ns() < until {
        core::hint::spin_loop();
    }
}

fn calibrated_against_the_pit() {
    let info = info().expect("time::init ran");
    let cal = info.calibration;
    assert!(
        (100_000_000..20_000_000_000).contains(&cal.tsc_hz),
        "TSC {} Hz",
        cal.tsc_hz
    );
    assert!(cal.nr_polls > 10, "the PIT gate closed too early: {cal:?}");
    assert_eq!(
        u64::from(info.lapic_count_per_tick),
        cal.lapic_timer_hz / HZ
    );
    assert!(apic::mode().is_some());
    log::info!(
        "{:?}: TSC {} kHz, APIC timer {} kHz, {} PIT polls",
        info.apic_mode,
        cal.tsc_hz / 1000,
        cal.lapic_timer_hz / 1000,
        cal.nr_polls
    );
}

fn now_ns_is_monotonic() {
    let mut last = now_ns();
    assert!(last > 0, "the clock runs");
    for _ in 0..100_000 {
        let t = now_ns();
        assert!(t >= last, "now_ns went back: {last} -> {t}");
        last = t;
    }
}

/// Jiffies and the tick count grow while the CPU busy-waits ~50 ms with
/// interrupts on, in step with `now_ns`.
fn tick_advances_while_busy() {
    // This CPU's tick count: the test must not move to the other CPU.
    let _pin = crate::ktest::PinCpu0::pin();
    assert!(x86_64::instructions::interrupts::are_enabled());
    let ticks0 = percpu::this_cpu().nr_ticks.load(Ordering::Relaxed);
    let (t0, j0) = (now_ns(), jiffies());
    spin_until(t0 + 50_000_000);
    let (t1, j1) = (now_ns(), jiffies());
    let ticks = percpu::this_cpu().nr_ticks.load(Ordering::Relaxed) - ticks0;
    let expected = (t1 - t0) / TICK_NS; // 12 at HZ=250
    // Under TCG a busy host may drop ticks (QEMU re-arms from "now"), never
    // add any.
    assert!(
        ticks >= expected / 4 && ticks <= expected + 2,
        "{ticks} timer interrupts in {} ms",
        (t1 - t0) / 1_000_000
    );
    // jiffies follow the clock (time::clock), lagging by the time since the
    // last tick.
    let jiffies_now = t1 / TICK_NS;
    assert!(
        j1 + 2 >= jiffies_now && j1 <= jiffies_now,
        "jiffies {j1}, clock says {jiffies_now}"
    );
    assert!(
        (j1 - j0).abs_diff(expected) <= 3,
        "jiffies +{} over {} ns",
        j1 - j0,
        t1 - t0
    );
}

static HOOK_CALLS: AtomicU64 = AtomicU64::new(0);
static HOOK_CONTEXT_OK: AtomicBool = AtomicBool::new(true);

fn test_tick_hook() {
    HOOK_CALLS.fetch_add(1, Ordering::Relaxed);
    let ok = percpu::hardirq_count() > 0 && !x86_64::instructions::interrupts::are_enabled();
    if !ok {
        HOOK_CONTEXT_OK.store(false, Ordering::Relaxed);
    }
}

/// A registered hook runs on every tick, in hard-IRQ context with
/// interrupts off (what `Platform::in_interrupt` reports there).
fn tick_hooks_run_in_hard_irq() {
    register_tick_hook(test_tick_hook).expect("a free tick-hook slot");
    let t0 = now_ns();
    let calls0 = HOOK_CALLS.load(Ordering::Relaxed);
    spin_until(t0 + 5 * TICK_NS);
    let calls = HOOK_CALLS.load(Ordering::Relaxed) - calls0;
    assert!(calls >= 2, "hook ran {calls} times in 5 ticks");
    assert!(
        HOOK_CONTEXT_OK.load(Ordering::Relaxed),
        "hook ran outside hard IRQ"
    );
}

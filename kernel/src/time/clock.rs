//! The monotonic clock: the TSC, scaled to nanoseconds (Linux's TSC
//! clocksource and `cyc2ns`), and jiffies.
//!
//! `now_ns = (rdtsc() - tsc_at_boot) * mult >> 32`, with
//! `mult = 10^9 << 32 / tsc_hz` from the PIT calibration; the product is
//! taken in 128 bits, so it never overflows.
//!
//! `jiffies` counts ticks of [`super::TICK_NS`] since the clock started.
//! As Linux's `tick_do_update_jiffies64`, the tick derives it from the clock
//! (`now_ns / TICK_NS`) instead of adding one per interrupt, so a tick that
//! was lost or merged (a slow host, a long interrupts-off section) does not
//! make jiffies lag behind `now_ns`.
//!
//! # Invariants
//!
//! - K1: `MULT` and `TSC_BOOT` are written once, by [`start`], before
//!   `STARTED` is set (Release); readers load `STARTED` (Acquire) first, and
//!   read 0 before.
//! - K2: `now_ns` never decreases on one CPU (the TSC does not); across CPUs
//!   it relies on synchronised, invariant TSCs, as Linux's TSC clocksource.
//! - K3: `JIFFIES` only grows ([`update_jiffies`] uses `fetch_max`).
//!
//! # Context
//!
//! Any context: lock-free reads of atomics and `rdtsc`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter register and nothing else; CR4.TSD is
    // clear, so it is allowed at every privilege level.
    unsafe { core::arch::x86_64::_rdtsc() }
}

static STARTED: AtomicBool = AtomicBool::new(false);
/// TSC value at [`start`] (K1).
static TSC_BOOT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC cycle, times 2^32 (K1).
static MULT: AtomicU64 = AtomicU64::new(0);
/// The calibrated TSC frequency (K1).
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Ticks since [`start`] (K3).
static JIFFIES: AtomicU64 = AtomicU64::new(0);

/// Starts the clock at 0 with the TSC running at `tsc_hz`.
pub fn start(tsc_hz: u64) {
    assert!(tsc_hz > 0);
    MULT.store(
        ((1_000_000_000u128 << 32) / u128::from(tsc_hz)) as u64,
        Ordering::Relaxed,
    );
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    TSC_BOOT.store(rdtsc(), Ordering::Relaxed);
    STARTED.store(true, Ordering::Release);
}

/// Nanoseconds since the clock started; 0 before (K1).
#[inline]
pub fn now_ns() -> u64 {
    if !STARTED.load(Ordering::Acquire) {
        return 0;
    }
    let delta = rdtsc().saturating_sub(TSC_BOOT.load(Ordering::Relaxed));
    ((u128::from(delta) * u128::from(MULT.load(Ordering::Relaxed))) >> 32) as u64
}

/// The calibrated TSC frequency, 0 before the clock started.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Ticks since the clock started.
#[inline]
pub fn jiffies() -> u64 {
    JIFFIES.load(Ordering::Relaxed)
}

/// Brings jiffies up to date with the clock (the tick-duty CPU's tick).
pub fn update_jiffies() -> u64 {
    let j = now_ns() / super::TICK_NS;
    JIFFIES.fetch_max(j, Ordering::Relaxed).max(j)
}

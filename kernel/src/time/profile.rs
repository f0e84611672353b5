//! A sampling profiler on the local APIC timer (Linux's `profile=` boot
//! option and `kernel/profile.c`, with call stacks as `perf record -g`
//! would take them).
//!
//! `profile=N` on the kernel command line (the runner's `--profile` adds
//! it) turns it on at boot: the timer then fires at `N` Hz (rounded to a
//! multiple of [`HZ`], at least `HZ`), every interrupt records one
//! sample, and only every `N / HZ`-th one does the tick's work (jiffies,
//! tick hooks, the scheduler tick), so the rest of the kernel still sees
//! [`HZ`] ticks a second. A sample is the interrupted kernel RIP plus up
//! to [`DEPTH`]` - 1` return addresses of its frame-pointer chain
//! ([`backtrace::walk`]); an interrupt from user mode only counts.
//! Before the kernel powers off, [`dump`] prints the distinct stacks
//! with their counts on the console, one `profile:` line each, as
//! addresses in the kernel ELF (minus the load offset); the runner
//! symbolizes them with the ELF's symbol table and prints a flat profile
//! and the commonest stacks.
//!
//! # Invariants
//!
//! - I1: slot `i` of the buffer is written only by the interrupt that
//!   took index `i` from [`NEXT`] (`fetch_add`), so no two writers share
//!   a slot; samples past the buffer's end are counted in [`NR_LOST`].
//! - I2: [`dump`] reads the buffer only after [`ENABLED`] was cleared
//!   with interrupts off on the only CPU that samples (one CPU here).
//!
//! # Context
//!
//! [`sample_tick`] runs in the timer's hard-IRQ context with interrupts
//! off; it neither allocates nor takes a lock. [`start`] and [`dump`]
//! run in task context (boot and power-off).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Once;
use x86_64::structures::idt::InterruptStackFrame;

use super::{HZ, apic};
use crate::arch::backtrace;
use crate::percpu::{self, MAX_CPUS};

/// Words per sample: the interrupted RIP and the return addresses above it.
pub const DEPTH: usize = 8;
/// Samples the buffer holds (2 MiB of kernel heap when on).
pub const MAX_SAMPLES: usize = 32 * 1024;
/// The highest sampling rate accepted, in Hz.
pub const MAX_HZ: u32 = 100_000;

/// The sample buffer: `DEPTH` words per sample, 0 after the last frame.
static BUF: Once<Vec<AtomicU64>> = Once::new();
/// Sampling is on (set by [`start`], cleared by [`dump`]).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Interrupts per scheduler tick (`N / HZ`), 1 when off.
static TICKS_PER_HZ: AtomicU32 = AtomicU32::new(1);
/// The next free sample index (I1).
static NEXT: AtomicU64 = AtomicU64::new(0);
/// Samples that found the buffer full.
static NR_LOST: AtomicU64 = AtomicU64::new(0);
/// Interrupts that came from user mode.
static NR_USER: AtomicU64 = AtomicU64::new(0);
/// Per CPU: interrupts since its last scheduler tick.
static SUBTICK: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// The rate `profile=N` asks for, rounded to what the timer does: a
/// multiple of [`HZ`] between `HZ` and [`MAX_HZ`].
pub fn effective_hz(requested: u32) -> u32 {
    let hz = HZ as u32;
    requested.clamp(hz, MAX_HZ) / hz * hz
}

/// Turns sampling on at `requested` Hz (see [`effective_hz`]): allocates
/// the buffer and speeds the APIC timer up. Call once, from task context
/// after `time::init`.
pub fn start(requested: u32) {
    let info = super::info().expect("time::init ran");
    let hz = effective_hz(requested);
    let per_tick = hz / HZ as u32;
    BUF.call_once(|| {
        (0..MAX_SAMPLES * DEPTH)
            .map(|_| AtomicU64::new(0))
            .collect()
    });
    TICKS_PER_HZ.store(per_tick, Ordering::Relaxed);
    // Release: pairs with the Acquire load in sample_tick, which then sees
    // the buffer and TICKS_PER_HZ.
    ENABLED.store(true, Ordering::Release);
    apic::timer_start_periodic((info.lapic_count_per_tick / per_tick).max(1));
    log::info!("profile: sampling at {hz} Hz into {MAX_SAMPLES} samples of {DEPTH} words");
}

/// Whether sampling is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Called first by the timer interrupt with the handler's own frame
/// pointer: records a sample if profiling is on, and says whether this
/// interrupt is also a scheduler tick (always when profiling is off).
#[inline(always)]
pub fn sample_tick(frame: &InterruptStackFrame, handler_rbp: u64) -> bool {
    // Acquire: pairs with the Release store in start.
    if !ENABLED.load(Ordering::Acquire) {
        return true;
    }
    if frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring0 {
        record(frame.instruction_pointer.as_u64(), handler_rbp);
    } else {
        NR_USER.fetch_add(1, Ordering::Relaxed);
    }
    is_tick()
}

/// [`sample_tick`] for a timer interrupt from user mode (the tick's user
/// entry builds no `InterruptStackFrame`): counts a user sample.
#[inline(always)]
pub fn sample_user_tick() -> bool {
    // Acquire: pairs with the Release store in start.
    if !ENABLED.load(Ordering::Acquire) {
        return true;
    }
    NR_USER.fetch_add(1, Ordering::Relaxed);
    is_tick()
}

/// Whether this profiling interrupt is also a scheduler tick.
#[inline(always)]
fn is_tick() -> bool {
    let per_tick = TICKS_PER_HZ.load(Ordering::Relaxed);
    let cpu = percpu::cpu_id() as usize % MAX_CPUS;
    let n = SUBTICK[cpu].load(Ordering::Relaxed) + 1;
    if n >= per_tick {
        SUBTICK[cpu].store(0, Ordering::Relaxed);
        true
    } else {
        SUBTICK[cpu].store(n, Ordering::Relaxed);
        false
    }
}

/// Stores the kernel RIP and the chain above the interrupt handler's frame.
fn record(rip: u64, handler_rbp: u64) {
    let Some(buf) = BUF.get() else {
        return;
    };
    let i = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= MAX_SAMPLES {
        NR_LOST.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let slot = &buf[i * DEPTH..(i + 1) * DEPTH];
    slot[0].store(rip, Ordering::Relaxed);
    let mut n = 1;
    // The handler's record is [saved rbp of the interrupted code, then the
    // interrupt frame's RIP]: skip that RIP (it is `rip`) and walk from the
    // interrupted code's own frame on.
    let sp = backtrace::stack_pointer();
    // SAFETY: handler_rbp is the frame record of the running interrupt
    // handler, on the stack sp lies on (kernel-mode interrupts stay on the
    // interrupted stack; the timer has no IST), and the kernel keeps the
    // frame-pointer convention up to a null rbp (backtrace I1), so the walk's
    // contract holds; it reads only inside that stack's window.
    unsafe {
        backtrace::walk(handler_rbp, sp, |ret| {
            if ret != rip && n < DEPTH {
                slot[n].store(ret, Ordering::Relaxed);
                n += 1;
            }
        });
    }
    for w in &slot[n..] {
        w.store(0, Ordering::Relaxed);
    }
}

/// Stops sampling and prints the samples, grouped by identical stack, as
/// `profile:` lines of ELF addresses (see the module docs). Does nothing
/// if profiling is off.
pub fn dump() {
    let Some(buf) = BUF.get() else {
        return;
    };
    x86_64::instructions::interrupts::without_interrupts(|| {
        ENABLED.store(false, Ordering::Relaxed);
    });
    let base = backtrace::image_base();
    let nr = (NEXT.load(Ordering::Relaxed) as usize).min(MAX_SAMPLES);
    let mut stacks: Vec<[u64; DEPTH]> = (0..nr)
        .map(|i| {
            core::array::from_fn(|k| {
                let a = buf[i * DEPTH + k].load(Ordering::Relaxed);
                if a == 0 { 0 } else { a.wrapping_sub(base) }
            })
        })
        .collect();
    stacks.sort_unstable();
    crate::println!(
        "profile: begin hz={} samples={} lost={} user={}",
        TICKS_PER_HZ.load(Ordering::Relaxed) * HZ as u32,
        nr,
        NR_LOST.load(Ordering::Relaxed),
        NR_USER.load(Ordering::Relaxed)
    );
    let mut i = 0;
    while i < stacks.len() {
        let j = i + stacks[i..].iter().take_while(|s| **s == stacks[i]).count();
        let mut line = alloc::format!("profile: {}", j - i);
        for a in stacks[i].iter().take_while(|a| **a != 0) {
            let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" {a:x}"));
        }
        crate::println!("{line}");
        i = j;
    }
    crate::println!("profile: end");
}

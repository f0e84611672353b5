//! Calibration of the TSC and the local APIC timer against the 8253/8254 PIT
//! (Linux's `pit_calibrate_tsc` and `calibrate_APIC_clock`).
//!
//! The PIT runs at a known 1 193 182 Hz. Channel 2 is loaded with a count
//! worth [`GATE_MS`] and started in mode 0 (interrupt on terminal count);
//! its output, readable as bit 5 of port 0x61, goes high when the count
//! runs out. TSC and APIC timer are read when the gate opens and when it
//! closes. The gate runs [`NR_GATES`] times and the shortest TSC interval
//! wins: a delay (an SMI on hardware, the host descheduling QEMU's vCPU
//! thread under TCG) can only make an interval look longer. A delay that
//! covers the whole gate (the output is already high at the first poll)
//! would make it look as short as nothing: such gates are dropped and run
//! again (a loaded host made calibration see a 3 MHz TSC once).
//!
//! # Context
//!
//! Boot CPU, interrupts off, before the local APIC timer is armed; uses
//! PIT channel 2 and the speaker gate, which nothing else touches.

use x86_64::instructions::port::Port;

use super::apic;

/// The PIT's input clock (Linux's `PIT_TICK_RATE`).
pub const PIT_TICK_RATE: u64 = 1_193_182;
/// Length of one calibration gate.
pub const GATE_MS: u64 = 20;
/// Number of gates; the shortest TSC interval wins.
pub const NR_GATES: usize = 3;

/// What calibration measured.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// TSC frequency.
    pub tsc_hz: u64,
    /// Local APIC timer frequency *after* the divide by 16.
    pub lapic_timer_hz: u64,
    /// Polling iterations of the winning gate (sanity: many, not a handful).
    pub nr_polls: u64,
}

/// One gate: TSC cycles, APIC timer ticks and polls until the PIT's count
/// of `latch` runs out.
fn gate(latch: u16) -> (u64, u64, u64) {
    let mut ctrl = Port::<u8>::new(0x61);
    let mut mode = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x61 (speaker/gate), 0x43 (PIT mode) and 0x42 (channel 2)
    // belong to the PIT, used by nothing else (module Context): gate high,
    // speaker off, channel 2 in mode 0 with a 16-bit binary count.
    unsafe {
        let v = ctrl.read();
        ctrl.write((v & !0x02) | 0x01);
        mode.write(0xb0);
        ch2.write((latch & 0xff) as u8);
        ch2.write((latch >> 8) as u8);
    }
    apic::timer_start_oneshot_masked();
    let lapic0 = apic::read(apic::reg::TIMER_CURRENT);
    let tsc0 = super::clock::rdtsc();
    let mut nr_polls = 0u64;
    // SAFETY: reading port 0x61 only samples the PIT's channel 2 output.
    while unsafe { ctrl.read() } & 0x20 == 0 {
        nr_polls += 1;
    }
    let tsc1 = super::clock::rdtsc();
    let lapic1 = apic::read(apic::reg::TIMER_CURRENT);
    (
        tsc1 - tsc0,
        u64::from(lapic0.wrapping_sub(lapic1)),
        nr_polls,
    )
}

/// Measures the TSC and APIC timer frequencies; the local APIC must be set
/// up ([`apic::init`]). Panics if the PIT never signals or the figures are
/// absurd: nothing time-based could work then.
pub fn calibrate() -> Calibration {
    let latch = (PIT_TICK_RATE * GATE_MS / 1000) as u16;
    let mut best: Option<(u64, u64, u64)> = None;
    let mut valid = 0;
    // A gate whose end came before the first poll measured nothing: the
    // vCPU was held up (a loaded host under TCG) past the whole gate.
    // Such runs are dropped, up to a bound.
    for _ in 0..NR_GATES * 8 {
        let run = gate(latch);
        if run.2 == 0 {
            continue;
        }
        if best.is_none_or(|b| run.0 < b.0) {
            best = Some(run);
        }
        valid += 1;
        if valid == NR_GATES {
            break;
        }
    }
    let (tsc, lapic, nr_polls) = best.unwrap_or((0, 0, 0));
    // The gate lasted latch / PIT_TICK_RATE seconds exactly.
    let per_second = |count: u64| count * PIT_TICK_RATE / u64::from(latch);
    let cal = Calibration {
        tsc_hz: per_second(tsc),
        lapic_timer_hz: per_second(lapic),
        nr_polls,
    };
    assert!(
        cal.tsc_hz > 10_000_000 && cal.lapic_timer_hz > 10_000,
        "implausible calibration against the PIT: {cal:?}"
    );
    cal
}

//! The local APIC (x2APIC through MSRs, or xAPIC through MMIO) and the
//! retirement of the legacy 8259 PIC (Linux's `arch/x86/kernel/apic/apic.c`
//! and `i8259.c`).
//!
//! Registers are named by their x2APIC MSR index minus `0x800`; the xAPIC
//! MMIO offset of the same register is that index `<< 4`:
//!
//! ```text
//!   reg   x2APIC MSR  xAPIC MMIO  name
//!   0x02  0x802       0x020       ID
//!   0x08  0x808       0x080       TPR          task priority
//!   0x0b  0x80b       0x0b0       EOI
//!   0x0f  0x80f       0x0f0       SVR          spurious vector + enable
//!   0x28  0x828       0x280       ESR          error status
//!   0x30  0x830       0x300       ICR          interrupt command (x2APIC:
//!                                              64 bits, destination high)
//!   0x31  -           0x310       ICR high     xAPIC destination (<< 24)
//!   0x32  0x832       0x320       LVT timer
//!   0x37  0x837       0x370       LVT error
//!   0x38  0x838       0x380       timer initial count
//!   0x39  0x839       0x390       timer current count
//!   0x3e  0x83e       0x3e0       timer divide configuration
//! ```
//!
//! # Invariants
//!
//! - A1: [`init`] runs once on the boot CPU with interrupts off, before any
//!   other function here; the mode it picks never changes afterwards, and
//!   every AP's [`init_ap`] enables its own local APIC in that mode.
//! - A2: in xAPIC mode the APIC page (from `IA32_APIC_BASE`, normally
//!   `0xfee00000`) lies in the bootloader's direct map, which covers the
//!   first 4 GiB of physical addresses.
//!
//! # Context
//!
//! [`eoi`] and register access work in any context, interrupts on or off:
//! each is one MSR or MMIO access to the *local* APIC.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// Vector of the local timer (Linux's `LOCAL_TIMER_VECTOR`).
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
/// Vector of LAPIC errors (Linux's `ERROR_APIC_VECTOR`).
pub const ERROR_APIC_VECTOR: u8 = 0xfe;
/// Vector of spurious LAPIC interrupts (Linux's `SPURIOUS_APIC_VECTOR`).
pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;
/// Where the 8259's IRQ 0..15 land after remapping (then all masked).
pub const PIC_VECTOR_BASE: u8 = 0x20;

/// Register indices (x2APIC MSR minus 0x800; see the module table).
pub mod reg {
    pub const ID: u32 = 0x02;
    pub const TPR: u32 = 0x08;
    pub const EOI: u32 = 0x0b;
    pub const SVR: u32 = 0x0f;
    pub const ESR: u32 = 0x28;
    pub const ICR: u32 = 0x30;
    pub const ICR_HIGH: u32 = 0x31;
    pub const LVT_TIMER: u32 = 0x32;
    pub const LVT_ERROR: u32 = 0x37;
    pub const TIMER_INITIAL: u32 = 0x38;
    pub const TIMER_CURRENT: u32 = 0x39;
    pub const TIMER_DIVIDE: u32 = 0x3e;
}

/// LVT: the entry is masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer: periodic mode.
pub const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16" (Linux's `APIC_DIVISOR`).
pub const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// The divisor that value selects.
pub const TIMER_DIVISOR: u64 = 16;
/// ICR delivery mode INIT.
pub const ICR_DM_INIT: u32 = 0x500;
/// ICR delivery mode STARTUP (SIPI); the low 8 bits are the start page.
pub const ICR_DM_STARTUP: u32 = 0x600;
/// ICR: level assert (INIT assert; every other IPI sets it too).
pub const ICR_LEVEL_ASSERT: u32 = 1 << 14;
/// ICR: level-triggered (the INIT assert / de-assert pair).
pub const ICR_LEVEL_TRIGGER: u32 = 1 << 15;
/// xAPIC ICR: delivery status, set while the IPI is being sent.
const ICR_SEND_PENDING: u32 = 1 << 12;
/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;

/// `IA32_APIC_BASE`: global enable.
const APIC_BASE_ENABLE: u64 = 1 << 11;
/// `IA32_APIC_BASE`: x2APIC mode.
const APIC_BASE_X2APIC: u64 = 1 << 10;
const IA32_APIC_BASE: u32 = 0x1b;

/// How the local APIC is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    /// x2APIC: registers are MSRs `0x800 + reg`.
    X2Apic,
    /// xAPIC: registers are 32-bit MMIO words at `base + (reg << 4)`.
    XApic,
}

/// 0: not set up; 1: x2APIC; 2: xAPIC. Write: [`init`] (A1).
static MODE: AtomicU8 = AtomicU8::new(0);
/// Virtual address of the xAPIC register page (direct map). Write: [`init`].
static XAPIC_VA: AtomicU64 = AtomicU64::new(0);

/// The mode [`init`] chose, if it ran.
pub fn mode() -> Option<ApicMode> {
    match MODE.load(Ordering::Relaxed) {
        1 => Some(ApicMode::X2Apic),
        2 => Some(ApicMode::XApic),
        _ => None,
    }
}

/// Whether CPUID advertises x2APIC (leaf 1, ECX bit 21).
pub fn cpu_has_x2apic() -> bool {
    // CPUID leaf 1 exists on every x86_64 CPU (a safe intrinsic).
    let leaf1 = core::arch::x86_64::__cpuid(1);
    leaf1.ecx & (1 << 21) != 0
}

/// Reads local APIC register `reg`.
pub fn read(reg: u32) -> u32 {
    match mode() {
        // SAFETY: in x2APIC mode (A1) MSRs 0x800.. are the APIC's registers;
        // reading one has no side effect on memory.
        Some(ApicMode::X2Apic) => unsafe { Msr::new(0x800 + reg).read() as u32 },
        Some(ApicMode::XApic) => {
            let va = XAPIC_VA.load(Ordering::Relaxed) + (u64::from(reg) << 4);
            // SAFETY: the APIC page is mapped by the direct map (A2) and reg
            // names one of its aligned 32-bit registers.
            unsafe { core::ptr::read_volatile(va as *const u32) }
        }
        None => panic!("local APIC register {reg:#x} read before apic::init"),
    }
}

/// Writes local APIC register `reg`.
pub fn write(reg: u32, value: u32) {
    match mode() {
        // SAFETY: in x2APIC mode (A1) MSRs 0x800.. are the APIC's registers;
        // callers write documented values to them.
        Some(ApicMode::X2Apic) => unsafe { Msr::new(0x800 + reg).write(u64::from(value)) },
        Some(ApicMode::XApic) => {
            let va = XAPIC_VA.load(Ordering::Relaxed) + (u64::from(reg) << 4);
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_volatile(va as *mut u32, value) }
        }
        None => panic!("local APIC register {reg:#x} written before apic::init"),
    }
}

/// Signals end of interrupt to the local APIC (`apic_eoi`).
#[inline]
pub fn eoi() {
    write(reg::EOI, 0);
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    match mode() {
        Some(ApicMode::XApic) => read(reg::ID) >> 24,
        _ => read(reg::ID),
    }
}

/// Masks and remaps the legacy 8259 PICs (Linux's `legacy_pic->init(0)` and
/// `mask_8259A`): every IRQ line masked, vectors moved to 0x20..0x2f so a
/// spurious IRQ 7 or 15 cannot pose as a CPU exception.
pub fn disable_8259() {
    const PIC1_CMD: u16 = 0x20;
    const PIC1_DATA: u16 = 0x21;
    const PIC2_CMD: u16 = 0xa0;
    const PIC2_DATA: u16 = 0xa1;
    let seq: [(u16, u8); 10] = [
        (PIC1_CMD, 0x11), // ICW1: init, ICW4 follows
        (PIC2_CMD, 0x11),
        (PIC1_DATA, PIC_VECTOR_BASE), // ICW2: vector base
        (PIC2_DATA, PIC_VECTOR_BASE + 8),
        (PIC1_DATA, 1 << 2), // ICW3: slave on IRQ 2
        (PIC2_DATA, 2),      //       slave identity 2
        (PIC1_DATA, 0x01),   // ICW4: 8086 mode
        (PIC2_DATA, 0x01),
        (PIC1_DATA, 0xff), // OCW1: mask everything
        (PIC2_DATA, 0xff),
    ];
    for (port, value) in seq {
        // SAFETY: 0x20/0x21/0xa0/0xa1 are the 8259s' ports on every PC; this
        // is the documented initialisation sequence, ending fully masked, and
        // runs with interrupts off (A1).
        unsafe { Port::<u8>::new(port).write(value) };
    }
}

/// Enables this CPU's local APIC: x2APIC if the CPU has it, otherwise xAPIC
/// through the direct map at `phys_offset`. Sets the spurious vector, accepts
/// every priority, routes errors to [`ERROR_APIC_VECTOR`], and leaves the
/// timer masked. Interrupts must be off (A1).
pub fn init(phys_offset: u64) -> ApicMode {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no
    // side effect.
    let base = unsafe { base_msr.read() };
    let mode = if cpu_has_x2apic() {
        // Enabling x2APIC requires going through xAPIC-enabled first.
        // SAFETY: setting EN, then EN|EXTD, is the architected way into
        // x2APIC mode; the APIC's physical base is left unchanged.
        unsafe {
            base_msr.write(base | APIC_BASE_ENABLE);
            base_msr.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
        MODE.store(1, Ordering::Relaxed);
        ApicMode::X2Apic
    } else {
        // SAFETY: setting EN keeps the APIC in xAPIC mode at its base.
        unsafe { base_msr.write(base | APIC_BASE_ENABLE) };
        let pa = base & 0x000f_ffff_ffff_f000;
        XAPIC_VA.store(phys_offset + pa, Ordering::Relaxed);
        MODE.store(2, Ordering::Relaxed);
        ApicMode::XApic
    };
    setup_local();
    mode
}

/// Enables this AP's local APIC in the boot CPU's mode (A1) and sets it up
/// as [`init`] does the boot CPU's. Interrupts off.
pub fn init_ap() {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: as in `init`: the architected enable sequence, the APIC's
    // physical base unchanged; an AP starts with its APIC in xAPIC mode.
    unsafe {
        let base = base_msr.read();
        base_msr.write(base | APIC_BASE_ENABLE);
        if mode() == Some(ApicMode::X2Apic) {
            base_msr.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
    }
    setup_local();
}

/// Task priority 0, timer masked, errors to [`ERROR_APIC_VECTOR`], then
/// software enable with the spurious vector.
fn setup_local() {
    write(reg::TPR, 0);
    write(reg::LVT_TIMER, LVT_MASKED | u32::from(LOCAL_TIMER_VECTOR));
    write(reg::LVT_ERROR, u32::from(ERROR_APIC_VECTOR));
    // The ESR is latched by a write; two writes clear stale errors.
    write(reg::ESR, 0);
    write(reg::ESR, 0);
    write(reg::SVR, SVR_ENABLE | u32::from(SPURIOUS_APIC_VECTOR));
}

/// Sends the IPI described by `icr_low` (delivery mode, level, vector) to
/// the CPU with local APIC id `dest`, and waits until the APIC has sent it
/// (Linux's `apic_icr_write` + `safe_apic_wait_icr_idle`). Interrupts off,
/// so that nothing else uses this CPU's ICR meanwhile.
pub fn send_ipi(dest: u32, icr_low: u32) {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    match mode() {
        // SAFETY: MSR 0x830 is the x2APIC ICR (A1): one 64-bit write with
        // the destination in the high half sends the IPI.
        Some(ApicMode::X2Apic) => unsafe {
            Msr::new(0x800 + reg::ICR).write((u64::from(dest) << 32) | u64::from(icr_low));
        },
        _ => {
            write(reg::ICR_HIGH, dest << 24);
            write(reg::ICR, icr_low);
            // The xAPIC reports completion in the delivery-status bit.
            let mut spins = 0u32;
            while read(reg::ICR) & ICR_SEND_PENDING != 0 && spins < 1_000_000 {
                core::hint::spin_loop();
                spins += 1;
            }
        }
    }
}

/// Starts the timer counting down from `u32::MAX`, masked, divide by 16: for
/// calibration, read [`reg::TIMER_CURRENT`] before and after a known delay.
pub fn timer_start_oneshot_masked() {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(reg::LVT_TIMER, LVT_MASKED | u32::from(LOCAL_TIMER_VECTOR));
    write(reg::TIMER_INITIAL, u32::MAX);
}

/// Arms the periodic timer: an interrupt on [`LOCAL_TIMER_VECTOR`] every
/// `count` timer ticks (after the divide by 16).
pub fn timer_start_periodic(count: u32) {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(
        reg::LVT_TIMER,
        LVT_TIMER_PERIODIC | u32::from(LOCAL_TIMER_VECTOR),
    );
    write(reg::TIMER_INITIAL, count);
}

//! x86_64 CPU setup: segments, the TSS and its interrupt stacks, exception
//! handlers, and backtraces.
//!
//! - [`gdt`]: the GDT and the TSS with IST stacks for `#DF`, NMI, `#MC`, `#PF`.
//! - [`idt`]: the IDT, a handler for every CPU exception, and
//!   [`idt::set_interrupt_handler`] for device interrupts.
//! - [`backtrace`]: frame-pointer backtraces for panic and exception reports.
//! - [`entry`]: NX/SMEP/SMAP, `SYSCALL` entry, entering user mode, CR3 and
//!   kernel-stack switching per task.
//! - [`signal`]: the return-to-user loop, signal frames, `rt_sigreturn`.
//! - [`uaccess`]: the user-copy instruction and its page-fault fix-up.
//!
//! # Ordering
//!
//! [`init`] loads the GDT and TSS first, then the IDT, whose gates name IST
//! slots of that TSS. Call it once per boot, as early as possible: until then
//! an exception is a triple fault (QEMU exits without a verdict).

pub mod backtrace;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod signal;
pub mod uaccess;

/// Brings up the boot CPU's segments, TSS and exception handlers.
pub fn init() {
    gdt::init();
    idt::init();
    entry::init();
    fpu::init();
}

/// A fault [`selftest_fault`] can provoke on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTestFault {
    /// `int3`: reported and resumed, so `selftest_fault` returns.
    Breakpoint,
    /// A read of the unmapped address [`SELFTEST_UNMAPPED_ADDR`]: `#PF`.
    PageFault,
    /// Unbounded recursion: `#PF` on the stack guard page, then `#DF`.
    StackOverflow,
    /// `div` by zero: `#DE`.
    DivideError,
    /// `ud2`: `#UD`.
    InvalidOpcode,
    /// A read of a non-canonical address: `#GP`.
    GeneralProtection,
}

/// The address [`SelfTestFault::PageFault`] reads: unmapped in the boot page
/// table, whose only low mappings are the two pages the bootloader
/// identity-maps for itself (its context-switch code and its GDT).
pub const SELFTEST_UNMAPPED_ADDR: u64 = 0xdead_b000;

/// Provokes `kind` to exercise the exception path. Returns only for
/// [`SelfTestFault::Breakpoint`]; every other kind ends the kernel through the
/// fatal hook.
pub fn selftest_fault(kind: SelfTestFault) {
    use core::arch::asm;
    match kind {
        SelfTestFault::Breakpoint => x86_64::instructions::interrupts::int3(),
        SelfTestFault::PageFault => read_u64(SELFTEST_UNMAPPED_ADDR),
        SelfTestFault::GeneralProtection => read_u64(0x8000_0000_0000_0000),
        SelfTestFault::StackOverflow => {
            recurse(0);
        }
        // SAFETY: dividing by zero raises #DE before any state changes; the
        // handler is fatal, so execution never continues past it.
        SelfTestFault::DivideError => unsafe {
            asm!("xor ecx, ecx", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
        },
        // SAFETY: ud2 raises #UD and does nothing else.
        SelfTestFault::InvalidOpcode => unsafe { asm!("ud2", options(nomem, nostack)) },
    }
}

/// Reads `addr` with a plain `mov`, out of sight of the compiler, so a bad
/// address faults without being undefined behaviour in Rust.
fn read_u64(addr: u64) {
    // SAFETY: the load's result is discarded and it writes nothing; if `addr`
    // is unreadable the CPU raises an exception, whose handler is fatal.
    unsafe { core::arch::asm!("mov {0}, [{0}]", inout(reg) addr => _, options(nostack)) };
}

/// Recurses until the stack runs out; the frame keeps locals alive so that
/// the compiler can neither shrink the frames nor turn this into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 16]);
    recurse(depth + 1) + frame[0]
}

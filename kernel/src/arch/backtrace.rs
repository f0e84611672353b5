//! Frame-pointer backtraces for panic and exception reports.
//!
//! Every kernel function is compiled with frame pointers
//! (`-C force-frame-pointers=yes`, `.cargo/config.toml`), so its prologue is
//! `push rbp; mov rbp, rsp` and each frame starts with a two-word record:
//!
//! ```text
//!   higher addresses
//!   | return address   |  [rbp + 8]   where the caller resumes
//!   | caller's rbp     |  [rbp]       the next record, higher up the stack
//!   | locals ...       |  <- rbp points between these
//!   lower addresses (rsp)
//! ```
//!
//! [`walk`] follows that chain upward from a given `rbp`. The kernel is a
//! position-independent ELF loaded at a boot-time offset, so reports also
//! print [`image_base`]: subtract it from an address to get the one
//! `addr2line -e <kernel ELF>` understands.
//!
//! # Invariants
//!
//! - I1: the outermost frame of every stack the kernel runs on has `rbp == 0`
//!   (the bootloader clears it before jumping to the entry point; whoever
//!   builds a new stack, such as a task's first frame, must do the same).
//! - I2: a walk starts on the stack its `sp` lies on and reads only inside
//!   `[sp, sp + STACK_WINDOW_BYTES)`, with strictly increasing frame addresses;
//!   it stops at a null, misaligned or non-canonical frame, a zero return
//!   address, or after [`MAX_FRAMES`] frames.

use core::arch::asm;

use x86_64::VirtAddr;

use crate::panic::emergency_println;

/// The most frames a backtrace prints.
pub const MAX_FRAMES: usize = 32;

/// No frame record of one walk lies further than this above its start: larger
/// than any kernel stack (the boot stack is 128 KiB, see `BOOT_CONFIG`).
const STACK_WINDOW_BYTES: u64 = 256 * 1024;

unsafe extern "C" {
    /// The ELF header, placed by the linker at the start of the first
    /// loadable segment, which the kernel is linked to put at address 0.
    safe static __ehdr_start: u8;
}

/// Where the kernel image was loaded: runtime address minus ELF address.
pub fn image_base() -> u64 {
    (&raw const __ehdr_start) as u64
}

/// The current frame pointer: the caller's own frame record, as the function
/// is always inlined.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: copying rbp into a register reads no memory and changes nothing.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The current stack pointer (of the caller, as the function is always inlined).
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: copying rsp into a register reads no memory and changes nothing.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Calls `f(return_address)` for each frame of the chain that starts at the
/// frame record `rbp`, innermost first (see I2 for where it stops). Returns
/// `false` if it stopped at the [`MAX_FRAMES`] limit.
///
/// # Safety
///
/// `sp` must be a stack pointer of a live kernel stack, and `rbp` either 0 or
/// a frame record on that same stack whose chain keeps the frame-pointer
/// convention up to a null `rbp` (I1): for example the current `rbp`/`rsp`, or
/// those of a kernel context an exception interrupted.
pub unsafe fn walk(rbp: u64, sp: u64, mut f: impl FnMut(u64)) -> bool {
    let (lo, hi) = (sp, sp.saturating_add(STACK_WINDOW_BYTES));
    let mut rbp = rbp;
    for _ in 0..MAX_FRAMES {
        // The two-word record must sit inside the window (I2).
        let plausible = rbp.is_multiple_of(8)
            && rbp >= lo
            && rbp.saturating_add(16) <= hi
            && VirtAddr::try_new(rbp).is_ok();
        if !plausible {
            return true;
        }
        // SAFETY: by the caller's contract rbp is a frame record of the live
        // stack sp lies on, and the checks above keep it inside that stack's
        // window: both words are mapped, readable stack memory.
        let (next, ret) = unsafe {
            let record = rbp as *const u64;
            (record.read(), record.add(1).read())
        };
        if ret == 0 || VirtAddr::try_new(ret).is_err() {
            return true;
        }
        f(ret);
        if next <= rbp {
            return true;
        }
        rbp = next;
    }
    false
}

/// Prints the backtrace of the chain at `rbp`, after `first` (the interrupted
/// instruction, if there is one), on the emergency console. Runs of one
/// repeated return address (deep recursion) print as one line and a count.
///
/// # Safety
///
/// As for [`walk`].
pub unsafe fn print(first: Option<u64>, rbp: u64, sp: u64) {
    let mut out = Printer {
        base: image_base(),
        last: None,
        nr_repeats: 0,
    };
    emergency_println!(
        "    backtrace (image base {:#x}; ELF address = address - base):",
        out.base
    );
    if let Some(rip) = first {
        out.frame(rip);
    }
    // SAFETY: forwarded from this function's own contract.
    let whole = unsafe { walk(rbp, sp, |ret| out.frame(ret)) };
    out.flush_repeats();
    if !whole {
        emergency_println!("      ... (stopped at the {MAX_FRAMES}-frame limit)");
    }
}

/// Prints the backtrace of the current call chain, starting at the caller.
#[inline(never)]
pub fn print_current() {
    let (rbp, sp) = (frame_pointer(), stack_pointer());
    // SAFETY: rbp and rsp of this very function are a live frame record and
    // stack pointer on the current stack, whose chain keeps the convention.
    unsafe { print(None, rbp, sp) };
}

/// The line-by-line state of [`print`].
struct Printer {
    base: u64,
    last: Option<u64>,
    nr_repeats: usize,
}

impl Printer {
    fn frame(&mut self, addr: u64) {
        if self.last == Some(addr) {
            self.nr_repeats += 1;
            return;
        }
        self.flush_repeats();
        let elf = addr.wrapping_sub(self.base);
        emergency_println!("      {addr:#018x}  (ELF {elf:#x})");
        self.last = Some(addr);
    }

    fn flush_repeats(&mut self) {
        if self.nr_repeats > 0 {
            emergency_println!("      ... the same {} more times", self.nr_repeats);
            self.nr_repeats = 0;
        }
    }
}

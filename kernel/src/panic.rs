//! Panics and fatal errors: the kernel's last words.
//!
//! Everything that ends the kernel abnormally, a Rust panic or a fatal CPU
//! exception ([`crate::arch::idt`]), goes through the same three steps:
//!
//! 1. `begin_fatal` claims the one-shot "fatal report in progress" flag and
//!    turns interrupts off. A second fatal event while reporting (a fault in
//!    the backtrace walker, a panic in a formatter, a panicking hook) finds the
//!    flag taken and ends in `fatal_recursive`, which exits QEMU with failure
//!    at once: reporting never recurses.
//! 2. The report goes to COM1 through `emergency_println!`, which drives the
//!    UART directly instead of taking the serial console's lock, so it works
//!    even when the failure struck while that lock was held.
//! 3. The fatal hook receives a one-line summary and never returns. The default
//!    hook exits QEMU with failure; the in-kernel test harness installs its own
//!    with [`set_fatal_hook`] to say which test was running.
//!
//! The binaries' `#[panic_handler]` is just a call to [`panic_report`].
//!
//! # Context
//!
//! Any, including exception handlers: reporting takes no lock and allocates
//! nothing. On SMP a second CPU failing during a report exits at once (step 1),
//! possibly cutting the first report short.

use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use uart_16550::SerialPort;

use crate::arch::backtrace;
use crate::qemu::{self, ExitCode};

/// Writes `args` to COM1 without taking the serial console's lock.
///
/// For fatal reports and exception handlers only: output may interleave with
/// a `println!` that was interrupted mid-line.
#[doc(hidden)]
pub fn _emergency_print(args: fmt::Arguments) {
    let _ = RawCom1.write_fmt(args);
}

/// Like `println!`, but lock-free (see [`_emergency_print`]); for fatal
/// reports and exception handlers.
macro_rules! emergency_println {
    ($($arg:tt)*) => ($crate::panic::_emergency_print(format_args!("{}\n", format_args!($($arg)*))));
}
pub(crate) use emergency_println;

/// Receives the one-line summary of a fatal error, after the full report has
/// been printed, and ends the kernel.
pub type FatalHook = fn(summary: &str) -> !;

/// The installed [`FatalHook`], type-erased; null means [`default_fatal_hook`].
///
/// Write: [`set_fatal_hook`], Release. Read: [`fatal`], Acquire, pairing with
/// that store so the hook sees whatever its installer set up before installing.
static FATAL_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Set by the first [`begin_fatal`] of the boot and never cleared.
static FATAL_IN_PROGRESS: AtomicBool = AtomicBool::new(false);

/// Installs `hook` as the end of every later fatal error, replacing the
/// previous hook.
pub fn set_fatal_hook(hook: FatalHook) {
    FATAL_HOOK.store(hook as *mut (), Ordering::Release);
}

/// The hook in force until [`set_fatal_hook`]: leave QEMU with failure.
fn default_fatal_hook(_summary: &str) -> ! {
    qemu::exit(ExitCode::Failure)
}

/// Reports a panic: `PANIC at file:line:col: message`, a backtrace, and then
/// the fatal hook. The binaries' `#[panic_handler]` calls this.
pub fn panic_report(info: &PanicInfo) -> ! {
    if !begin_fatal() {
        fatal_recursive("panic");
    }
    let message = info.message();
    let mut location = OneLine::<128>::new();
    match info.location() {
        Some(loc) => {
            let _ = write!(location, "{loc}");
        }
        None => location.push_str("<unknown location>"),
    }
    emergency_println!("\n!!! PANIC at {}: {}", location.as_str(), message);
    backtrace::print_current();
    let mut summary = OneLine::<256>::new();
    let _ = write!(summary, "PANIC at {}: {}", location.as_str(), message);
    fatal(summary.as_str())
}

/// Starts a fatal report: turns interrupts off and claims the report flag.
///
/// Returns `false` if a fatal report is already under way; the caller must
/// then not report again but end with [`fatal_recursive`].
pub(crate) fn begin_fatal() -> bool {
    x86_64::instructions::interrupts::disable();
    !FATAL_IN_PROGRESS.swap(true, Ordering::Relaxed)
}

/// Ends a fatal report by handing `summary` (one line) to the fatal hook.
pub(crate) fn fatal(summary: &str) -> ! {
    let hook = FATAL_HOOK.load(Ordering::Acquire);
    let hook: FatalHook = if hook.is_null() {
        default_fatal_hook
    } else {
        // SAFETY: the only non-null values ever stored in FATAL_HOOK are
        // `FatalHook`s cast by set_fatal_hook, and on x86_64 function and data
        // pointers have the same size and representation.
        unsafe { core::mem::transmute::<*mut (), FatalHook>(hook) }
    };
    hook(summary)
}

/// Ends the kernel when `what` (a panic, an exception) happened while an
/// earlier fatal error was being reported: one line, then failure.
pub(crate) fn fatal_recursive(what: &str) -> ! {
    emergency_println!("\n!!! {what} while reporting an earlier fatal error; giving up");
    qemu::exit(ExitCode::Failure)
}

/// COM1's transmitter, used without the serial console's lock.
struct RawCom1;

impl Write for RawCom1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: 0x3f8 is COM1's I/O base (as in `serial`). Sending only polls
        // the line-status register and writes the data register, which at worst
        // interleaves bytes with a console write this one interrupted.
        let mut port = unsafe { SerialPort::new(0x3f8) };
        s.bytes().for_each(|b| port.send(b));
        Ok(())
    }
}

/// A fixed-capacity, stack-allocated line of text for summaries.
///
/// Writes past the capacity are cut at a character boundary, and newlines
/// become spaces, so the result is always one valid UTF-8 line.
pub(crate) struct OneLine<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> OneLine<N> {
    /// An empty line.
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text so far.
    pub(crate) fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this never fails.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Appends as much of `s` as fits.
    pub(crate) fn push_str(&mut self, s: &str) {
        let mut take = s.len().min(N - self.len);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        for (dst, &b) in self.buf[self.len..].iter_mut().zip(&s.as_bytes()[..take]) {
            *dst = if b == b'\n' { b' ' } else { b };
        }
        self.len += take;
    }
}

impl<const N: usize> Write for OneLine<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

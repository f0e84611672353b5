//! The serial console (COM1) and the `print!`/`println!` macros.

use core::fmt::Write;

use spin::Mutex;
use uart_16550::SerialPort;

lazy_static::lazy_static! {
    static ref COM1: Mutex<SerialPort> = {
        // SAFETY: 0x3f8 is COM1's I/O base on every PC; nothing else drives it.
        let mut port = unsafe { SerialPort::new(0x3f8) };
        port.init();
        Mutex::new(port)
    };
}

#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _ = COM1.lock().write_fmt(args);
    });
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::_print(format_args!($($arg)*)));
}

/// Prints to the serial console, with a newline.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}

/// Writes raw bytes to the serial console (a user program's `write(1, ..)`):
/// not necessarily UTF-8, so not through `fmt`.
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut port = COM1.lock();
        for &b in bytes {
            port.send_raw(b);
        }
    });
}

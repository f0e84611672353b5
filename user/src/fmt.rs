//! `print!`/`println!` to stdout: each call formats into a stack buffer and
//! leaves with one `write(1, ...)` per 512 bytes, so lines are not torn.

use core::fmt::{self, Write};

/// A 512-byte line buffer that flushes to fd 1 when full and on drop.
pub struct Stdout {
    buf: [u8; 512],
    len: usize,
}

impl Stdout {
    pub const fn new() -> Self {
        Self {
            buf: [0; 512],
            len: 0,
        }
    }

    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            match crate::write(1, &self.buf[done..self.len]) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        self.len = 0;
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut out = Stdout::new();
    let _ = out.write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::fmt::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::fmt::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

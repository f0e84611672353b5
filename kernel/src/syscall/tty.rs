//! Terminal ioctls of the serial console (Linux's `drivers/tty/tty_ioctl.c`
//! and `tty_io.c`, for the one tty there is).
//!
//! The kernel ABI's `struct termios` (`include/uapi/asm-generic/termbits.h`)
//! is 36 bytes: `c_iflag`, `c_oflag`, `c_cflag`, `c_lflag` (u32 each),
//! `c_line`, `c_cc[NCCS = 19]`. C libraries have a larger `struct termios`
//! of their own (glibc: 60 bytes, `c_cc[32]` and two speeds) and translate:
//! `TCGETS` must write exactly 36 bytes, or it overruns the caller's
//! buffer (glibc's `isatty` keeps a kernel-sized one on its stack, below
//! the stack protector's canary). `struct termios2` (`TCGETS2`) appends
//! `c_ispeed` and `c_ospeed`: 44 bytes.
//!
//! ```text
//!   0  c_iflag   4  c_oflag   8  c_cflag   12 c_lflag
//!   16 c_line    17 c_cc[0..19]             36 (termios2: c_ispeed, c_ospeed) 44
//! ```
//!
//! The settings start as Linux's `tty_std_termios` and are kept across
//! `TCSETS*` (nothing acts on them: output goes to the serial port as is).
#![forbid(unsafe_code)]

use super::{ENOTTY, SysResult};
use crate::process::KMm;
use crate::sync::SpinLock;
use crate::uaccess::{copy_from_user, copy_to_user};

/// `sizeof(struct termios)` of the kernel ABI.
pub const TERMIOS_BYTES: usize = 36;
/// `sizeof(struct termios2)`.
pub const TERMIOS2_BYTES: usize = 44;

const TCGETS: u32 = 0x5401;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
const TIOCGWINSZ: u32 = 0x5413;
const TIOCSWINSZ: u32 = 0x5414;
/// `_IOR('T', 0x2A, struct termios2)`.
const TCGETS2: u32 = 0x802c_542a;
/// `_IOW('T', 0x2B..0x2D, struct termios2)`.
const TCSETS2: u32 = 0x402c_542b;
const TCSETSW2: u32 = 0x402c_542c;
const TCSETSF2: u32 = 0x402c_542d;

/// `B38400`: the speed `tty_std_termios` holds in `c_cflag`, in baud.
const BAUD_38400: u32 = 38400;

/// Linux's `INIT_C_CC` (`include/linux/tty.h`): intr ^C, quit ^\, erase
/// DEL, kill ^U, eof ^D, vtime 0, vmin 1, swtc 0, start ^Q, stop ^S, susp
/// ^Z, eol 0, reprint ^R, discard ^O, werase ^W, lnext ^V, eol2 0.
const INIT_C_CC: [u8; 19] = [
    0x03, 0x1c, 0x7f, 0x15, 0x04, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16, 0, 0, 0,
];

/// Linux's `tty_std_termios`: c_iflag ICRNL | IXON, c_oflag OPOST |
/// ONLCR, c_cflag B38400 | CS8 | CREAD | HUPCL, c_lflag ISIG | ICANON |
/// ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN, c_line N_TTY (0),
/// c_cc [`INIT_C_CC`].
const fn std_termios() -> [u8; TERMIOS_BYTES] {
    let flags: [u32; 4] = [0x0500, 0x0005, 0x04bf, 0x8a3b];
    let mut t = [0u8; TERMIOS_BYTES];
    let mut i = 0;
    while i < 16 {
        t[i] = flags[i / 4].to_le_bytes()[i % 4];
        i += 1;
    }
    let mut c = 0;
    while c < INIT_C_CC.len() {
        t[17 + c] = INIT_C_CC[c];
        c += 1;
    }
    t
}

/// The console's settings (leaf lock).
static TERMIOS: SpinLock<[u8; TERMIOS_BYTES]> = SpinLock::new("tty.termios", std_termios());

/// The console's window size: rows, columns, x pixels, y pixels.
static WINSIZE: SpinLock<[u16; 4]> = SpinLock::new("tty.winsize", [24, 80, 0, 0]);

/// `ioctl(fd, cmd, arg)` on the console; Linux's `ENOTTY` for a request
/// a tty does not know.
pub fn console_ioctl(mm: &KMm, cmd: u64, arg: u64) -> SysResult {
    // The request is an unsigned int (the upper half of the register is
    // ignored, as Linux's `unsigned int cmd` parameter does).
    match cmd as u32 {
        TCGETS => {
            let t = *TERMIOS.lock();
            copy_to_user(mm, arg, &t)?;
        }
        TCGETS2 => {
            let mut t2 = [0u8; TERMIOS2_BYTES];
            t2[..TERMIOS_BYTES].copy_from_slice(&*TERMIOS.lock());
            t2[36..40].copy_from_slice(&BAUD_38400.to_le_bytes());
            t2[40..44].copy_from_slice(&BAUD_38400.to_le_bytes());
            copy_to_user(mm, arg, &t2)?;
        }
        TCSETS | TCSETSW | TCSETSF => {
            let mut t = [0u8; TERMIOS_BYTES];
            copy_from_user(mm, &mut t, arg)?;
            *TERMIOS.lock() = t;
        }
        TCSETS2 | TCSETSW2 | TCSETSF2 => {
            let mut t2 = [0u8; TERMIOS2_BYTES];
            copy_from_user(mm, &mut t2, arg)?;
            TERMIOS.lock().copy_from_slice(&t2[..TERMIOS_BYTES]);
        }
        TIOCGWINSZ => {
            let ws = *WINSIZE.lock();
            let mut b = [0u8; 8];
            for (i, w) in ws.iter().enumerate() {
                b[i * 2..i * 2 + 2].copy_from_slice(&w.to_le_bytes());
            }
            copy_to_user(mm, arg, &b)?;
        }
        TIOCSWINSZ => {
            let mut b = [0u8; 8];
            copy_from_user(mm, &mut b, arg)?;
            let mut ws = [0u16; 4];
            for (i, w) in ws.iter_mut().enumerate() {
                *w = u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]);
            }
            *WINSIZE.lock() = ws;
        }
        _ => return Err(ENOTTY),
    }
    Ok(0)
}

//! The CMOS real-time clock (the MC146818 of every PC; Linux's
//! `mach_get_cmos_time` in `arch/x86/kernel/rtc.c`): the wall-clock time
//! in seconds since the Unix epoch, from which `CLOCK_REALTIME` counts
//! (Linux reads it once at boot, `read_persistent_clock64`).
//!
//! Registers (index on port 0x70, data on 0x71): seconds 0x00, minutes
//! 0x02, hours 0x04, day 0x07, month 0x08, year 0x09 (two digits: 70..99
//! are 19xx, 00..69 20xx, Linux's rule without an ACPI century register),
//! status A 0x0A (bit 7: an update is in progress, wait), status B 0x0B
//! (bit 2: binary, else BCD; bit 1: 24-hour, else bit 7 of the hour is
//! PM). QEMU's RTC holds the host's UTC time.
//!
//! # Context
//!
//! Any context: the index/data pair is used with interrupts off; nothing
//! else in the kernel touches the CMOS.

use x86_64::instructions::port::Port;

const RTC_INDEX: u16 = 0x70;
const RTC_DATA: u16 = 0x71;

/// Reads CMOS register `reg`.
fn cmos_read(reg: u8) -> u8 {
    let mut index: Port<u8> = Port::new(RTC_INDEX);
    let mut data: Port<u8> = Port::new(RTC_DATA);
    // SAFETY: 1. ports 0x70/0x71 are the CMOS index and data registers of
    // every PC (QEMU's `mc146818rtc`); selecting a register and reading it
    // has no effect on memory. 2. The caller has interrupts off, so no
    // other reader can move the index between the two accesses.
    unsafe {
        index.write(reg);
        data.read()
    }
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian; Linux's
/// `mktime64`).
fn days_from_epoch(year: u64, month: u64, day: u64) -> u64 {
    // Count from March so that the leap day ends the year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let days = y * 365 + y / 4 - y / 100 + y / 400 + (m * 153 + 2) / 5 + day - 1;
    // 719468: the same count for 1970-01-01.
    days - 719_468
}

/// The RTC's time in seconds since the Unix epoch, or `None` if it reads
/// as nonsense (no RTC, or one in the middle of an update for too long).
pub fn read_unix_seconds() -> Option<u64> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // Wait out an update in progress (it lasts under 2 ms).
        let mut tries = 0;
        while cmos_read(0x0a) & 0x80 != 0 {
            tries += 1;
            if tries > 1_000_000 {
                return None;
            }
            core::hint::spin_loop();
        }
        let regs = [0x00, 0x02, 0x04, 0x07, 0x08, 0x09].map(cmos_read);
        let status_b = cmos_read(0x0b);
        let bcd = status_b & 0x04 == 0;
        let h24 = status_b & 0x02 != 0;
        let pm = !h24 && regs[2] & 0x80 != 0;
        let decode = |v: u8| -> u64 {
            if bcd {
                u64::from((v >> 4) * 10 + (v & 0x0f))
            } else {
                u64::from(v)
            }
        };
        let [sec, min, hour, day, month, year] = [
            decode(regs[0]),
            decode(regs[1]),
            decode(regs[2] & 0x7f),
            decode(regs[3]),
            decode(regs[4]),
            decode(regs[5]),
        ];
        let hour = if pm { (hour % 12) + 12 } else { hour };
        let year = if year < 70 { 2000 + year } else { 1900 + year };
        let valid = sec < 60 && min < 60 && hour < 24 && (1..=31).contains(&day);
        if !valid || !(1..=12).contains(&month) {
            return None;
        }
        Some(days_from_epoch(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
    })
}

/// `CLOCK_REALTIME` minus the monotonic clock, in ns: set at the first
/// call from the RTC (0, the epoch at boot, if the RTC reads as nonsense).
static REALTIME_OFFSET_NS: spin::Once<u64> = spin::Once::new();

/// `CLOCK_REALTIME` in ns since the Unix epoch: the RTC's time when first
/// asked, advanced by the monotonic clock (`super::now_ns`) since. There
/// is no `settimeofday`, so it never steps.
pub fn realtime_ns() -> u64 {
    let offset = *REALTIME_OFFSET_NS.call_once(|| {
        read_unix_seconds()
            .map_or(0, |s| s.saturating_mul(1_000_000_000))
            .saturating_sub(super::now_ns())
    });
    offset.saturating_add(super::now_ns())
}

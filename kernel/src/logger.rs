//! The `log` crate's backend: one `[LEVEL target] message` line per record on
//! the serial console.
//!
//! [`init`] installs it and sets the maximum level, which [`set_level`] can
//! change at any time (it is the `log` crate's own global filter).
//!
//! # Context
//!
//! Records are printed with `println!`, which takes the console lock with
//! interrupts off: log from task or IRQ context, never from an exception
//! handler (NMI, `#PF`, ...) that may have interrupted a holder of that lock.
//! Fatal paths use [`crate::panic`]'s lock-free console instead.

use log::{LevelFilter, Log, Metadata, Record};

/// The serial-console logger; stateless, the level lives in `log`.
struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // One println! per record: lines from different contexts never mix.
            crate::println!("[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the serial logger with maximum level `level`. A second call only
/// changes the level.
pub fn init(level: LevelFilter) {
    // The only error is "a logger is already set", which can only be ours.
    let _ = log::set_logger(&LOGGER);
    set_level(level);
}

/// Changes the maximum level of the records that get printed.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

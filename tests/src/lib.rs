//! Host side of the QEMU-driven tests: boot a test image, stream its serial
//! log, and turn the harness's closing line into a verdict.
//!
//! A test image prints one line per test and closes with
//! `N passed, M failed`; it leaves QEMU through the debug-exit device. A run
//! passes only if QEMU reports success *and* the closing line says
//! `0 failed` with at least one test passed.

use std::process::ExitCode;
use std::time::Duration;

use boot::{QemuConfig, Verdict};

/// The counts of a harness's closing `N passed, M failed` line (the last
/// one in the log).
pub fn parse_summary(serial: &str) -> Option<(usize, usize)> {
    serial.lines().rev().find_map(|line| {
        let (passed, rest) = line.trim().split_once(" passed, ")?;
        let failed = rest.strip_suffix(" failed")?;
        Some((passed.parse().ok()?, failed.parse().ok()?))
    })
}

/// Boots `cfg` and judges the run; prints a one-line verdict (the serial
/// log itself is streamed live as it arrives).
pub fn run_suite(name: &str, cfg: &QemuConfig) -> ExitCode {
    println!(
        "=== {name}: booting {} under QEMU ({} MiB, timeout {:?})",
        cfg.image.display(),
        cfg.mem_mib,
        cfg.timeout.unwrap_or(Duration::ZERO)
    );
    let outcome = match boot::run(cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("=== {name}: could not run QEMU: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = parse_summary(&outcome.serial);
    let secs = outcome.elapsed.as_secs_f64();
    match (&outcome.verdict, summary) {
        (Verdict::Success, Some((passed, 0))) if passed > 0 => {
            println!("=== {name}: {passed} passed, 0 failed ({secs:.1} s)");
            ExitCode::SUCCESS
        }
        (verdict, summary) => {
            if !cfg.echo {
                eprintln!(
                    "--- serial log ---\n{}--- end of serial log ---",
                    outcome.serial
                );
            }
            eprintln!(
                "=== {name}: FAILED: verdict {verdict:?}, closing line {summary:?} ({secs:.1} s)"
            );
            ExitCode::FAILURE
        }
    }
}

/// Boots a test image that must fail on purpose and checks the run: QEMU
/// reports failure, the closing line says `passed` passed and 1 failed, and
/// every needle appears in the serial log. Panics (with the log) otherwise.
pub fn expect_failing_run(image: &str, passed: usize, needles: &[&str]) {
    let cfg = QemuConfig {
        echo: false,
        timeout: Some(Duration::from_secs(120)),
        ..QemuConfig::new(image)
    };
    let out = boot::run(&cfg).expect("QEMU runs");
    let log = &out.serial;
    assert_eq!(out.verdict, Verdict::Failure, "serial log:\n{log}");
    for needle in needles {
        assert!(
            log.contains(needle),
            "no {needle:?} in the serial log:\n{log}"
        );
    }
    assert_eq!(parse_summary(log), Some((passed, 1)), "serial log:\n{log}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_the_last_closing_line() {
        let log = "test a ... ok\n1 passed, 0 failed\nnoise\n3 passed, 1 failed\r\n";
        assert_eq!(parse_summary(log), Some((3, 1)));
        assert_eq!(parse_summary("test a ... ok\n"), None);
        assert_eq!(parse_summary("x passed, 0 failed"), None);
    }
}

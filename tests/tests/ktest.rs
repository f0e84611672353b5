//! `cargo test` target: the in-kernel test harness under QEMU.
//!
//! `harness = false`, so the per-test lines and the closing line show in
//! `cargo test`'s own output. The guest gets 4.5 GiB so that all three
//! zones (DMA, DMA32 and Normal above 4 GiB) exist, and 2 CPUs, so that
//! the suite runs with an AP online (`kernel::smp::ktests`).

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cfg = boot::QemuConfig {
        mem_mib: 4608,
        smp: 2,
        timeout: Some(Duration::from_secs(300)),
        ..boot::QemuConfig::new(boot::KTEST_BIOS_IMAGE)
    };
    tests::run_suite("in-kernel tests", &cfg)
}

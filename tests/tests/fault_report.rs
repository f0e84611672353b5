//! A CPU exception inside an in-kernel test is reported with the test's
//! name and the fault's details, and the run fails (instead of hanging or
//! passing). Boots the `kfault` image, whose second test faults on purpose.

use std::time::Duration;

use boot::{QemuConfig, Verdict};

#[test]
fn page_fault_in_a_test_is_reported_and_fails_the_run() {
    let cfg = QemuConfig {
        echo: false,
        timeout: Some(Duration::from_secs(120)),
        ..QemuConfig::new(boot::KFAULT_BIOS_IMAGE)
    };
    let out = boot::run(&cfg).expect("QEMU runs");
    let log = &out.serial;
    let expect = |needle: &str| {
        assert!(
            log.contains(needle),
            "no {needle:?} in the serial log:\n{log}"
        )
    };
    assert_eq!(out.verdict, Verdict::Failure, "serial log:\n{log}");
    expect("breakpoint_resumes ... ok");
    expect("#BP breakpoint");
    expect("CPU EXCEPTION #PF page fault (vector 14)");
    expect("CR2    0x00000000deadb000");
    expect("backtrace");
    expect("test kfault::page_fault_is_reported ... FAILED: #PF page fault");
    assert_eq!(
        tests::parse_summary(log),
        Some((1, 1)),
        "serial log:\n{log}"
    );
}

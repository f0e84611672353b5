//! A kernel thread that overflows its stack hits the unmapped guard gap
//! below it, and the report says so: the double fault (the page fault
//! could not push its frame on the exhausted stack), CR2 in the guard, the
//! thread's name, and a failing run. Boots the `kstack` image, whose second
//! test overflows on purpose.

use std::time::Duration;

use boot::{QemuConfig, Verdict};

#[test]
fn stack_overflow_in_a_thread_is_reported_as_a_guard_page_hit() {
    let cfg = QemuConfig {
        echo: false,
        timeout: Some(Duration::from_secs(120)),
        ..QemuConfig::new(boot::KSTACK_BIOS_IMAGE)
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
    expect("test kstack::thread_runs_and_joins ... ok");
    expect("CPU EXCEPTION #DF double fault (vector 8)");
    // CR2 lies in the kernel-stack region (0xffffc900_00000000..).
    expect("CR2    0xffffc900");
    expect("task   'overflower'");
    expect("BUG: stack guard page was hit at 0xffffc900");
    expect("of thread 'overflower'");
    expect("backtrace");
    expect("test kstack::thread_overflows_its_stack ... FAILED: #DF double fault at RIP");
    expect("kernel stack overflow: guard page of thread 'overflower'");
    assert_eq!(
        tests::parse_summary(log),
        Some((1, 1)),
        "serial log:\n{log}"
    );
}

//! `cargo test` target: boots the `kernel` image (what `cargo run` boots)
//! and checks that the userland `init` runs its memory tour in ring 3 and
//! exits 0, that the kernel sees every frame come back, and that the run
//! succeeds.

use std::time::Duration;

use boot::Verdict;

#[test]
fn init_tours_the_memory_syscalls_and_exits_0() {
    let cfg = boot::QemuConfig {
        echo: false,
        timeout: Some(Duration::from_secs(300)),
        ..boot::QemuConfig::new(boot::KERNEL_BIOS_IMAGE)
    };
    let out = boot::run(&cfg).expect("QEMU runs");
    let log = &out.serial;
    for needle in [
        "init[1]: entering user mode at 0x",
        "init: pid 1, argv[0] \"init\", AT_PAGESZ 4096",
        "mmap 4 MiB",
        "write every page",
        "VmRSS",
        "VmPTE",
        "[stack]",
        "madvise DONTNEED 1 MiB",
        "munmap unaligned             -> Some(EINVAL (22))",
        "write bad pointer            -> Some(EFAULT (14))",
        "init: tour done",
        "init exited with status 0",
        "process exit: every frame came back",
    ] {
        assert!(
            log.contains(needle),
            "no {needle:?} in the serial log:\n{log}"
        );
    }
    assert!(!log.contains("BUG"), "a BUG line in the serial log:\n{log}");
    assert_eq!(out.verdict, Verdict::Success, "serial log:\n{log}");
}

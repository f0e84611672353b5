//! `cargo test` target: boots the `kernel` image (what `cargo run` boots)
//! three times, with init's default mode (the memory tour in ring 3), its
//! `test` mode (the userland suite) and its `fuzz` mode, and checks that
//! init exits 0, that the kernel sees every frame come back (children's
//! too), and that the run succeeds.

use std::sync::Mutex;
use std::time::Duration;

use boot::Verdict;

/// QEMU locks the disk image for writing: one boot of it at a time (the
/// tests of this file run in parallel threads otherwise).
static IMAGE: Mutex<()> = Mutex::new(());

#[test]
fn init_tours_the_memory_syscalls_and_exits_0() {
    let out = boot_cmdline(String::new());
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
        "init: exited with status 0",
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

/// Boots the kernel with `init ARGS` and returns the run's outcome.
fn boot_init(args: &str) -> boot::Outcome {
    boot_cmdline(boot::init_args(args))
}

/// Boots the kernel with the command line `cmdline`.
fn boot_cmdline(cmdline: String) -> boot::Outcome {
    let cfg = boot::QemuConfig {
        echo: false,
        timeout: Some(Duration::from_secs(300)),
        cmdline,
        ..boot::QemuConfig::new(boot::KERNEL_BIOS_IMAGE)
    };
    let _image = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    boot::run(&cfg).expect("QEMU runs")
}

/// `init test`: the userland suite passes (its closing line says so),
/// init exits 0, and every frame its children and it used came back.
#[test]
fn init_test_mode_passes() {
    let out = boot_init("test");
    let log = &out.serial;
    let (passed, failed) = tests::parse_summary(log).expect("a closing line");
    assert_eq!(failed, 0, "serial log:\n{log}");
    assert!(passed >= 10, "serial log:\n{log}");
    for needle in [
        "test user::fork_wait4_exit_status ... ok",
        // The child killed by its write to a read-only page.
        "init[",
        "]: segfault at ",
        "test user::segv_on_read_only_page_in_child ... ok",
        "test user::fork_large_folio_reused ... ok",
        "test user::pt_reclaim_vmpte_drops ... ok",
        "init: exited with status 0",
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

/// The same suite with large folios keeping no per-page mapcounts
/// (`page_mapcount=off` on the kernel command line, Linux's
/// `CONFIG_NO_PAGE_MAPCOUNT`): fork, CoW (64 KiB folios reused), pt
/// reclaim and exit balance in that mode too.
#[test]
fn init_test_mode_passes_without_per_page_mapcounts() {
    let out = boot_cmdline(boot::cmdline_with_args("page_mapcount=off", ["test"]));
    let log = &out.serial;
    assert!(
        log.contains("mm: large folios keep no per-page mapcounts"),
        "the kernel did not take page_mapcount=off:\n{log}"
    );
    let (passed, failed) = tests::parse_summary(log).expect("a closing line");
    assert_eq!(failed, 0, "serial log:\n{log}");
    assert!(passed >= 10, "serial log:\n{log}");
    assert!(
        log.contains("test user::fork_large_folio_reused ... ok"),
        "{log}"
    );
    assert!(!log.contains("BUG"), "a BUG line in the serial log:\n{log}");
    assert_eq!(out.verdict, Verdict::Success, "serial log:\n{log}");
}

/// `init fuzz`: random and hostile mm syscalls; the kernel survives, every
/// result is valid, and the frame accounting balances at the end.
#[test]
fn init_fuzz_mode_survives() {
    let out = boot_init("fuzz 1 20000");
    let log = &out.serial;
    for needle in [
        "init: fuzz: seed 1, 20000 iterations",
        "init: fuzz done",
        "init: exited with status 0",
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

/// `profile=N` (`kernel/src/time/profile.rs`): the memory tour still exits
/// 0 with the timer at 10 kHz, and the kernel's dump at power-off holds
/// samples whose addresses the kernel ELF's symbols name and whose stacks
/// go deeper than the sampled RIP (the frame-pointer walk works).
#[test]
fn profile_samples_symbolize_with_the_kernel_elf() {
    let out = boot_cmdline("profile=10000".into());
    let log = &out.serial;
    assert_eq!(out.verdict, Verdict::Success, "serial log:\n{log}");
    let s = boot::profile::parse(log).unwrap_or_else(|| panic!("no profile dump in:\n{log}"));
    assert_eq!(s.hz, 10000);
    assert!(s.nr_kernel > 0, "no kernel samples: {s:?}");
    assert_eq!(
        s.stacks.iter().map(|(n, _)| n).sum::<u64>(),
        s.nr_kernel,
        "the stacks' counts add up to the samples"
    );
    assert!(
        s.stacks.iter().any(|(_, a)| a.len() > 2),
        "no stack deeper than two frames: {s:?}"
    );
    let syms = boot::profile::Symbols::read(std::path::Path::new(boot::KERNEL_ELF))
        .expect("the kernel ELF's symbols");
    for (_, addrs) in &s.stacks {
        assert_ne!(syms.name(addrs[0]), "?", "{:#x} names nothing", addrs[0]);
    }
    let report = boot::profile::report(&s, &syms, 20);
    assert!(report.contains("kernel::"), "{report}");
}

//! The kernel image that `cargo run` boots.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::qemu;

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    let layout = kernel::init(boot_info);
    // The command line and the initramfs come from QEMU's fw_cfg
    // (`cargo run -- --append PARAMS --init PROGRAM|MODE ARGS`).
    let cmdline = kernel::cmdline::get();
    for bad in &cmdline.bad {
        log::warn!("Malformed early option '{bad}'");
    }
    kernel::cmdline::apply_mm_params(cmdline);
    if let Some(hz) = cmdline.profile_hz {
        kernel::time::profile::start(hz);
    }
    if cmdline.shows_info() {
        kernel::banner::print(layout);
        // Let the tick run a little (kmain sleeps; the idle task halts).
        kernel::sched::sleep_ms(100);
        kernel::banner::print_time();
    }
    log::info!("Kernel command line: {}", cmdline.raw);
    let files = kernel::initramfs::init();
    if files > 0 {
        log::info!("Unpacked initramfs: {:?}", kernel::initramfs::paths());
    }
    // Run the userland: init's exit (status 0, every frame back) is the
    // verdict.
    let ok = kernel::process::run_init();
    log::info!("init has exited; powering off");
    kernel::time::profile::dump();
    qemu::exit(if ok {
        qemu::ExitCode::Success
    } else {
        qemu::ExitCode::Failure
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_report(info)
}

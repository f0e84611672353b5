//! The benchmark image (`cargo run -- --bench`): boots like the kernel, runs
//! every registered in-kernel benchmark, prints the figures and powers off.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    kernel::bench::run(&[
        kernel::sched::bench::BENCHES,
        kernel::rcu::bench::BENCHES,
        kernel::arch::tlb::bench::BENCHES,
    ])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_report(info)
}

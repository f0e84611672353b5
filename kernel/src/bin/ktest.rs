//! The in-kernel test image: boots like the kernel, then runs every
//! registered in-kernel test and exits QEMU with the verdict.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    kernel::ktest::run(&[
        kernel::memory::ktests::KTESTS,
        kernel::time::ktests::KTESTS,
        kernel::smp::ktests::KTESTS,
        kernel::arch::tlb::ktests::KTESTS,
        kernel::sched::ktests::KTESTS,
        kernel::rcu::ktests::KTESTS,
        kernel::slab::ktests::KTESTS,
        kernel::maple_ktests::KTESTS,
        kernel::vm_ktests::KTESTS,
        kernel::process::ktests::KTESTS,
    ])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_report(info)
}

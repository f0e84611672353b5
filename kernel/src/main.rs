//! The kernel image that `cargo run` boots.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::{println, qemu};

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

fn kmain(_boot_info: &'static mut BootInfo) -> ! {
    println!("hello from the kernel");
    qemu::exit(qemu::ExitCode::Success)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("PANIC: {info}");
    qemu::exit(qemu::ExitCode::Failure)
}

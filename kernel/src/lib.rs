//! The kernel: boots on x86_64, brings up the CPU, and hands memory to `mm`.
//!
//! Two images are built from this library: `kernel` (what `cargo run`
//! boots) and `ktest` (the in-kernel test harness). Both start with
//! [`init`].
#![no_std]
#![feature(abi_x86_interrupt)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
pub mod banner;
pub mod heap;
pub mod ktest;
pub mod logger;
pub mod memory;
pub mod panic;
pub mod qemu;
pub mod serial;

use bootloader_api::config::Mapping;
use bootloader_api::{BootInfo, BootloaderConfig};

/// Asks the bootloader for a direct map of all physical memory.
pub const BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 128 * 1024;
    config
};

/// Brings the machine up: logging, CPU tables and exceptions, memory.
pub fn init(boot_info: &'static BootInfo) -> &'static memory::MemoryLayout {
    logger::init(log::LevelFilter::Info);
    arch::init();
    memory::init(boot_info)
}

//! The kernel: boots on x86_64, brings up the CPU, and hands memory to `mm`.
#![no_std]
#![feature(abi_x86_interrupt)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod serial;
pub mod qemu;

use bootloader_api::BootloaderConfig;
use bootloader_api::config::Mapping;

/// Asks the bootloader for a direct map of all physical memory.
pub const BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 128 * 1024;
    config
};

//! The kernel: boots on x86_64, brings up the CPU, and hands memory to `mm`.
//!
//! Images built from this library: `kernel` (what `cargo run` boots),
//! `ktest` (the in-kernel test harness), `kbench` (benchmarks), and the
//! fail-on-purpose `kfault` and `kstack`. All start with [`init`].
#![no_std]
#![feature(abi_x86_interrupt)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
pub mod banner;
pub mod bench;
pub mod heap;
pub mod ktest;
pub mod logger;
pub mod maple;
pub mod memory;
pub mod panic;
pub mod percpu;
pub mod platform;
pub mod qemu;
pub mod rcu;
pub mod sched;
pub mod serial;
pub mod slab;
pub mod sync;
pub mod time;

use bootloader_api::config::Mapping;
use bootloader_api::{BootInfo, BootloaderConfig};

/// Asks the bootloader for a direct map of all physical memory.
pub const BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 128 * 1024;
    // Dynamic mappings (boot info, direct map, ...) stay in the lower half:
    // the higher half is the kernel's, e.g. the stack region of `sched::stack`.
    config.mappings.dynamic_range_end = Some(0x0000_7fff_ffff_ffff);
    config
};

/// Brings the machine up, in this order: per-CPU area (GS base), logging,
/// CPU tables and exceptions, memory, time (local APIC, calibrated clock,
/// tick), the scheduler (the caller becomes the task `kmain`); then enables
/// interrupts, so the tick runs and preemption works from here on.
pub fn init(boot_info: &'static BootInfo) -> &'static memory::MemoryLayout {
    percpu::init_boot_cpu();
    logger::init(log::LevelFilter::Info);
    arch::init();
    let layout = memory::init(boot_info);
    slab::init();
    time::init(memory::page_alloc().platform().phys_offset());
    sched::init();
    x86_64::instructions::interrupts::enable();
    rcu::init();
    layout
}

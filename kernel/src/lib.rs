//! The kernel: boots on x86_64, brings up the CPU, and hands memory to `mm`.
//!
//! Images built from this library: `kernel` (what `cargo run` boots),
//! `ktest` (the in-kernel test harness), `kbench` (benchmarks), and the
//! fail-on-purpose `kfault` and `kstack`. All start with [`init`].
//!
//! Three module names exist in both this crate and `mm`, with different
//! roles; a path always says which is meant:
//!
//! | name   | `mm::` (the algorithms, host-testable) | `kernel::` (the machine's use of them) |
//! |--------|----------------------------------------|----------------------------------------|
//! | `sync` | per-CPU locks, `localtry_lock`, bit spinlock, for mm's data | [`sync::SpinLock`], the kernel's irqsave spinlock with lockup reports |
//! | `slab` | SLUB itself: caches, sheaves, barn, kmalloc size classes | the kmalloc caches made the global allocator, `/proc/slabinfo` |
//! | `rcu`  | grace periods, `call_rcu`, `kvfree_rcu`, driven by hooks | the hooks: tick, context switch, `rcuc` threads |
//!
//! In-kernel tests of an `mm` subsystem sit in `<subsystem>/ktests.rs`
//! or, without a kernel module of their own, in `*_ktests.rs`
//! ([`maple_ktests`], [`vm_ktests`]).
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

pub mod arch;
pub mod banner;
pub mod bench;
pub mod cmdline;
pub mod heap;
pub mod initramfs;
pub mod ktest;
pub mod logger;
pub mod maple_ktests;
pub mod memory;
pub mod panic;
pub mod percpu;
pub mod platform;
pub mod process;
pub mod qemu;
pub mod random;
pub mod rcu;
pub mod sched;
pub mod serial;
pub mod slab;
pub mod smp;
pub mod sync;
pub mod syscall;
pub mod time;
pub mod tmpfs;
pub mod uaccess;
pub mod vm_ktests;

use bootloader_api::config::Mapping;
use bootloader_api::{BootInfo, BootloaderConfig};

/// The kernel's virtual layout (Linux's `Documentation/arch/x86/x86_64/mm.rst`,
/// 4-level paging). User space owns PGD entries 0..256, `[0, TASK_SIZE)`;
/// everything the kernel needs lives in entries 256..512, so every process's
/// PGD shares the kernel half of the boot PGD and owns its lower half:
///
/// ```text
///   0x0000_0000_0000_0000 .. 0x0000_7fff_ffff_f000   user space (TASK_SIZE)
///   0xffff_8000_0000_0000 .. 0xffff_887f_ffff_ffff   bootloader's dynamic range:
///                                                    boot stack, boot info
///   0xffff_8880_0000_0000 ..                         direct map of all RAM
///                                                    ([`PAGE_OFFSET`])
///   0xffff_c900_0000_0000 ..                         kernel thread stacks
///                                                    (`sched::stack`, vmalloc's place)
///   0xffff_ffff_8000_0000 ..                         kernel image ([`KERNEL_BASE`])
/// ```
///
/// The bootloader also identity-maps two of its own pages (its context
/// switch code and its GDT) low; the kernel uses neither once its own GDT
/// is loaded, and process PGDs do not inherit them.
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// Where the (position-independent) kernel image is loaded: Linux's
/// `__START_KERNEL_map`, the top 2 GiB, which also suits the `kernel` code
/// model of the `x86_64-unknown-none` target.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Asks the bootloader for the layout above.
pub const BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::FixedAddress(PAGE_OFFSET));
    config.mappings.kernel_base = Mapping::FixedAddress(KERNEL_BASE);
    config.kernel_stack_size = 128 * 1024;
    // Dynamic mappings (boot stack, boot info) go to the upper half, below
    // the direct map: never into user space, nor into `sched::stack`'s region.
    config.mappings.dynamic_range_start = Some(0xffff_8000_0000_0000);
    config.mappings.dynamic_range_end = Some(PAGE_OFFSET - 1);
    config
};

/// Brings the machine up, in this order: per-CPU area (GS base), logging,
/// CPU tables and exceptions, the CPUs of the ACPI MADT, memory, time (local APIC, calibrated clock,
/// tick), the scheduler (the caller becomes the task `kmain`); then enables
/// interrupts, so the tick runs and preemption works from here on; then RCU
/// and the process layer (shared address-space state, user-trap hook);
/// last the other CPUs, which come online and active (`smp`).
pub fn init(boot_info: &'static BootInfo) -> &'static memory::MemoryLayout {
    percpu::init_boot_cpu();
    logger::init(log::LevelFilter::Info);
    arch::init();
    // The CPUs of the MADT fix nr_cpu_ids, which mm sizes its per-CPU
    // arrays with.
    smp::discover(boot_info);
    let layout = memory::init(boot_info);
    slab::init();
    // The command line (fw_cfg) needs the heap; `quiet` applies from here.
    logger::set_level(cmdline::get().log_filter());
    smp::report();
    time::init(memory::page_alloc().platform().phys_offset());
    sched::init();
    x86_64::instructions::interrupts::enable();
    rcu::init();
    process::init();
    smp::boot_aps();
    layout
}

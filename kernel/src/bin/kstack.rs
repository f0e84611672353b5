//! A test image that fails on purpose: it checks, from the host
//! (`tests/tests/stack_guard.rs`), that a kernel thread running off the end
//! of its stack hits the unmapped guard gap below it, and that the report
//! (a double fault, as the page fault cannot push its frame) names the
//! guard page and the thread.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{SelfTestFault, selftest_fault};
use kernel::sched;

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

/// A thread with a normal life: passes.
fn thread_runs_and_joins() {
    assert_eq!(sched::spawn("normal", || 6 * 7).join(), Some(42));
}

/// Unbounded recursion in a thread named `overflower`: ends the run.
fn thread_overflows_its_stack() {
    let h = sched::spawn("overflower", || {
        selftest_fault(SelfTestFault::StackOverflow);
    });
    h.join();
    panic!("the overflowing thread returned");
}

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    kernel::ktest::run(&[kernel::ktests![
        thread_runs_and_joins,
        thread_overflows_its_stack
    ]])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_report(info)
}

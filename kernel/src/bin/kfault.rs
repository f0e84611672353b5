//! A test image that fails on purpose: it checks, from the host
//! (`tests/tests/fault_report.rs`), that a CPU exception inside a test is
//! reported with the test's name, the fault's details and a failing exit.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{SelfTestFault, selftest_fault};

entry_point!(kmain, config = &kernel::BOOT_CONFIG);

/// `int3` is reported and resumed: this test passes.
fn breakpoint_resumes() {
    selftest_fault(SelfTestFault::Breakpoint);
}

/// A read of an unmapped address: the page-fault report ends the run.
fn page_fault_is_reported() {
    selftest_fault(SelfTestFault::PageFault);
}

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    kernel::ktest::run(&[kernel::ktests![breakpoint_resumes, page_fault_is_reported]])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::panic_report(info)
}

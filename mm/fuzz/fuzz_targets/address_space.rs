//! Memory syscalls, user accesses, fork and exit on simulated address
//! spaces, checked against a model after every operation: a thin wrapper
//! around `mm::vm::fuzz::run`, which documents the input format and the
//! checks. At exit it prints how many operations all runs executed.
#![no_main]

use std::sync::atomic::Ordering::Relaxed;

use libfuzzer_sys::fuzz_target;
use mm::vm::fuzz::{OPS_EXECUTED, run};

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

extern "C" fn report() {
    eprintln!(
        "address_space: {} operations executed",
        OPS_EXECUTED.load(Relaxed)
    );
}

fuzz_target!(
    init: {
        // SAFETY: registers a plain function that only reads an atomic
        // and writes to stderr, valid for the whole life of the process.
        unsafe { atexit(report) };
    },
    |data: &[u8]| {
        run(data);
    }
);

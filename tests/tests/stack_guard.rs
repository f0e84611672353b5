//! A kernel thread that overflows its stack hits the unmapped guard gap
//! below it, and the report says so: the double fault (the page fault
//! could not push its frame on the exhausted stack), CR2 in the guard, the
//! thread's name, and a failing run. Boots the `kstack` image, whose second
//! test overflows on purpose.

#[test]
fn stack_overflow_in_a_thread_is_reported_as_a_guard_page_hit() {
    tests::expect_failing_run(
        boot::KSTACK_BIOS_IMAGE,
        1,
        &[
            "test kstack::thread_runs_and_joins ... ok",
            "CPU EXCEPTION #DF double fault (vector 8)",
            // CR2 lies in the kernel-stack region (0xffffc900_00000000..).
            "CR2    0xffffc900",
            "task   'overflower'",
            "BUG: stack guard page was hit at 0xffffc900",
            "of thread 'overflower'",
            "backtrace",
            "test kstack::thread_overflows_its_stack ... FAILED: #DF double fault at RIP",
            "kernel stack overflow: guard page of thread 'overflower'",
        ],
    );
}

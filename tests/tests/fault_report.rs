//! A CPU exception inside an in-kernel test is reported with the test's
//! name and the fault's details, and the run fails (instead of hanging or
//! passing). Boots the `kfault` image, whose second test faults on purpose.

#[test]
fn page_fault_in_a_test_is_reported_and_fails_the_run() {
    tests::expect_failing_run(
        boot::KFAULT_BIOS_IMAGE,
        1,
        &[
            "breakpoint_resumes ... ok",
            "#BP breakpoint",
            "CPU EXCEPTION #PF page fault (vector 14)",
            "CR2    0x00000000deadb000",
            "backtrace",
            "test kfault::page_fault_is_reported ... FAILED: #PF page fault",
        ],
    );
}

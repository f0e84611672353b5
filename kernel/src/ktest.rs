//! The in-kernel test harness.
//!
//! Test functions live next to the kernel code they exercise, each module
//! exporting a `KTESTS: &[KTest]` list; the `ktest` image runs the lists in
//! order, prints one line per test (`test NAME ... ok`) and a closing
//! `N passed, N failed` line, and leaves QEMU with success only if every
//! test passed. The host side (`tests/`) turns that into a cargo test.
//!
//! A test fails by panicking (`assert!`) or by faulting. The kernel cannot
//! unwind, so a failing test ends the run: the fatal hook prints the test's
//! name with `FAILED`, then the closing line, then exits with failure.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::println;

/// One in-kernel test.
pub struct KTest {
    /// Shown in the output, e.g. `page_alloc::orders_0_to_10`.
    pub name: &'static str,
    pub func: fn(),
}

/// Declares a list of tests from function paths: `ktests![a, b::c]`.
#[macro_export]
macro_rules! ktests {
    ($($f:path),* $(,)?) => {
        &[$($crate::ktest::KTest { name: concat!(module_path!(), "::", stringify!($f)), func: $f }),*]
    };
}

/// The running test (points into a `'static` list), null between tests.
/// SeqCst: written by the harness, read by the fatal hook on the same CPU.
static CURRENT: AtomicPtr<KTest> = AtomicPtr::new(core::ptr::null_mut());
static PASSED: AtomicUsize = AtomicUsize::new(0);

/// Runs every test of every list, then exits QEMU with the verdict.
pub fn run(lists: &[&'static [KTest]]) -> ! {
    crate::panic::set_fatal_hook(on_fatal);
    let total: usize = lists.iter().map(|l| l.len()).sum();
    println!("running {total} in-kernel tests");
    for test in lists.iter().flat_map(|l| l.iter()) {
        CURRENT.store((test as *const KTest).cast_mut(), Ordering::SeqCst);
        (test.func)();
        println!("test {} ... ok", test.name);
        PASSED.fetch_add(1, Ordering::SeqCst);
        CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
    }
    println!("{} passed, 0 failed", PASSED.load(Ordering::SeqCst));
    crate::qemu::exit(crate::qemu::ExitCode::Success)
}

/// The fatal hook while tests run: name the test, close the run, fail.
fn on_fatal(summary: &str) -> ! {
    let current = CURRENT.load(Ordering::SeqCst);
    // SAFETY: CURRENT is null or points into one of the `'static` test lists
    // passed to `run`.
    let name = unsafe { current.as_ref() }.map_or("<outside any test>", |t| t.name);
    println!("test {name} ... FAILED: {summary}");
    println!("{} passed, 1 failed", PASSED.load(Ordering::SeqCst));
    crate::qemu::exit(crate::qemu::ExitCode::Failure)
}

/// Keeps the running test (and the threads it spawns meanwhile, which
/// inherit its allowed CPUs) on CPU 0 until dropped, then lets it run on
/// every CPU again: for tests that send IPIs to CPU 1 or count on one
/// CPU's run queue. `set_cpus_allowed` on oneself migrates before it
/// returns.
pub struct PinCpu0;

impl PinCpu0 {
    /// Moves the caller to CPU 0 before returning.
    #[must_use = "the caller runs anywhere again once the guard is dropped"]
    pub fn pin() -> Self {
        crate::sched::set_cpus_allowed(&crate::sched::current(), 1).expect("CPU 0 is active");
        assert_eq!(crate::percpu::cpu_id(), 0);
        PinCpu0
    }
}

impl Drop for PinCpu0 {
    fn drop(&mut self) {
        crate::sched::set_cpus_allowed(&crate::sched::current(), u64::MAX).expect("active CPUs");
    }
}

/// Keeps `cpu` busy in one kernel thread with preemption off and
/// interrupts on until dropped: it takes IPIs but switches to no other
/// task, so whatever an IPI-run function loaded there (a CR3) stays loaded
/// between two such functions. Nothing may wait for an RCU grace period
/// meanwhile (the CPU passes no quiescent state).
pub struct HoldCpu {
    stop: alloc::sync::Arc<core::sync::atomic::AtomicBool>,
    thread: Option<crate::sched::JoinHandle<()>>,
}

impl HoldCpu {
    pub fn new(cpu: u32) -> Self {
        use alloc::sync::Arc;
        use core::sync::atomic::AtomicBool;
        let held = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (held.clone(), stop.clone());
        let thread = crate::sched::spawn_on(cpu, "hold-cpu", move || {
            crate::sched::preempt_disable();
            h.store(true, Ordering::Release);
            while !st.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            crate::sched::preempt_enable();
        });
        let deadline = crate::time::now_ns() + 5_000_000_000;
        while !held.load(Ordering::Acquire) {
            assert!(
                crate::time::now_ns() < deadline,
                "hold-cpu never ran on CPU {cpu}"
            );
            core::hint::spin_loop();
        }
        HoldCpu {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HoldCpu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join();
        }
    }
}

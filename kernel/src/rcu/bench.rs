//! RCU benchmarks: grace-period latency and call_rcu throughput.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use mm::rcu::RcuHead;

use super::rcu;
use crate::bench::{Bench, min_median_max};
use crate::{println, sched, time};

pub const BENCHES: &[Bench] = crate::benches![
    grace_period_latency,
    grace_period_latency_with_a_reader,
    call_rcu_throughput
];

/// Times `n` synchronize_rcu calls and prints min/median/max.
fn time_synchronize(what: &str, n: usize) {
    let mut samples: Vec<u64> = (0..n)
        .map(|_| {
            let t0 = time::now_ns();
            rcu().synchronize_rcu();
            time::now_ns() - t0
        })
        .collect();
    let (min, med, max) = min_median_max(&mut samples);
    println!(
        "  synchronize_rcu {what}: min {} us, median {} us, max {} us over {n} calls (tick {} us)",
        min / 1000,
        med / 1000,
        max / 1000,
        time::TICK_NS / 1000
    );
}

/// synchronize_rcu with nothing else running. With one CPU online the
/// caller's own quiescent state ends the grace period at once, so this is
/// the cost of the machinery itself.
fn grace_period_latency() {
    time_synchronize("(idle system)", 25);
}

/// synchronize_rcu while another thread keeps entering read-side sections
/// that each span about a tick: the grace period must wait for the reader
/// to leave and for a tick or context switch to report it.
fn grace_period_latency_with_a_reader() {
    static STOP: AtomicBool = AtomicBool::new(false);
    STOP.store(false, Relaxed);
    let reader = sched::spawn("rcu-bench-reader", || {
        while !STOP.load(Relaxed) {
            let _g = super::read_lock();
            let end = time::now_ns() + time::TICK_NS;
            while time::now_ns() < end {
                core::hint::spin_loop();
            }
        }
    });
    sched::yield_now();
    time_synchronize("(a thread in 1-tick readers)", 25);
    STOP.store(true, Relaxed);
    reader.join();
}

/// Queue N callbacks, then wait for all of them: ns per call_rcu, and the
/// time until rcu_barrier saw them all run.
fn call_rcu_throughput() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn count(_: *mut RcuHead) {
        RAN.fetch_add(1, Relaxed);
    }
    const N: usize = 20_000;
    let heads: Vec<Box<RcuHead>> = (0..N).map(|_| Box::new(RcuHead::new())).collect();
    let t0 = time::now_ns();
    for h in &heads {
        let p = &**h as *const RcuHead as *mut RcuHead;
        // SAFETY: the boxes outlive the barrier below.
        unsafe { rcu().call_rcu(p, count) };
    }
    let queued = time::now_ns() - t0;
    rcu().rcu_barrier();
    let all = time::now_ns() - t0;
    assert_eq!(RAN.load(Relaxed), N);
    println!(
        "  call_rcu: {N} callbacks queued at {} ns each; all invoked after {} ms ({} per second end to end)",
        queued / N as u64,
        all / 1_000_000,
        N as u64 * 1_000_000_000 / all.max(1)
    );
}

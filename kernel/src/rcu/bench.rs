//! RCU benchmarks: grace-period latency and call_rcu throughput.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use mm::rcu::RcuHead;

use super::rcu;
use crate::bench::{Bench, min_median_max};
use crate::{println, time};

pub const BENCHES: &[Bench] = crate::benches![grace_period_latency, call_rcu_throughput];

/// synchronize_rcu from an idle system: start to return, in µs.
fn grace_period_latency() {
    let mut samples: Vec<u64> = (0..25)
        .map(|_| {
            let t0 = time::now_ns();
            rcu().synchronize_rcu();
            time::now_ns() - t0
        })
        .collect();
    let (min, med, max) = min_median_max(&mut samples);
    println!(
        "  synchronize_rcu: min {} us, median {} us, max {} us over {} calls (tick {} us)",
        min / 1000,
        med / 1000,
        max / 1000,
        samples.len(),
        time::TICK_NS / 1000
    );
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

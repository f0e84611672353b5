//! Context-switch benchmarks (`cargo run -- --bench`; figures in
//! `docs/BENCHMARKS.md`).
//!
//! - `yield_pingpong`: two threads call `yield_now` in a loop; with nothing
//!   else runnable (kmain waits in `join`) every yield switches to the
//!   other thread.
//! - `waitqueue_pingpong`: two threads hand a turn back and forth through
//!   two wait queues (`wake_one` + `wait_until`), the sleep/wakeup path a
//!   lock or a pipe would take (as Linux's `perf bench sched pipe`).
//! - `yield_no_switch`: `yield_now` with nothing else runnable: the cost of
//!   `schedule()` that picks the caller again, the baseline of the above.
//! - `primitives`: what the scheduler paths are made of (interrupt
//!   save/restore, a per-CPU read, preempt disable/enable, a `SpinLock`
//!   round trip, `now_ns`), to read the figures above against.
//!
//! Each runs [`NR_RUNS`] times and prints min / median / max nanoseconds per
//! context switch (per call for the baseline). Time runs from the first
//! thread's start to the last one's end; switches are counted by
//! `SchedStat::ContextSwitch` over the same span.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{SchedStat, WaitQueue, preempt_disable, preempt_enable, spawn, stat, yield_now};
use crate::bench::{Bench, min_median_max};
use crate::sync::{self, SpinLock};
use crate::time::now_ns;
use crate::{percpu, println};

pub const BENCHES: &[Bench] = crate::benches![
    yield_pingpong,
    waitqueue_pingpong,
    yield_no_switch,
    primitives
];

/// Runs per benchmark.
pub const NR_RUNS: usize = 7;
/// Loop iterations per thread and run.
pub const NR_ITERS: u64 = 10_000;

/// The span of one run, as the threads record it.
#[derive(Default)]
struct Span {
    start_ns: AtomicU64,
    start_switches: AtomicU64,
    end_ns: AtomicU64,
    end_switches: AtomicU64,
}

impl Span {
    /// A thread starts: the first one sets the start.
    fn begin(&self) {
        let sw = stat(SchedStat::ContextSwitch);
        if self
            .start_ns
            .compare_exchange(0, now_ns(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.start_switches.store(sw, Ordering::Release);
        }
    }

    /// A thread ends: the last one sets the end.
    fn end(&self) {
        self.end_switches
            .fetch_max(stat(SchedStat::ContextSwitch), Ordering::AcqRel);
        self.end_ns.fetch_max(now_ns(), Ordering::AcqRel);
    }

    /// Nanoseconds per switch, and the switches.
    fn per_switch(&self) -> (u64, u64) {
        let ns = self.end_ns.load(Ordering::Acquire) - self.start_ns.load(Ordering::Acquire);
        let switches =
            self.end_switches.load(Ordering::Acquire) - self.start_switches.load(Ordering::Acquire);
        (ns / switches.max(1), switches)
    }
}

/// Runs `setup()`, then `body(me, span)` in two threads, `NR_RUNS` times;
/// prints the ns per switch.
fn two_thread_runs(what: &str, setup: fn(), body: fn(usize, &Span)) {
    let mut samples = [0u64; NR_RUNS];
    let mut switches = 0;
    for sample in &mut samples {
        setup();
        let span = Arc::new(Span::default());
        let handles: Vec<_> = (0..2)
            .map(|me| {
                let span = span.clone();
                spawn("bench", move || body(me, &span))
            })
            .collect();
        for h in handles {
            h.join();
        }
        let (ns, n) = span.per_switch();
        *sample = ns;
        switches = n;
    }
    let (min, median, max) = min_median_max(&mut samples);
    println!(
        "  {what}: {NR_RUNS} runs x ~{switches} switches; ns per switch: min {min} median {median} max {max}"
    );
}

fn yield_pingpong() {
    two_thread_runs(
        "2 threads yielding to each other",
        || {},
        |_, span| {
            span.begin();
            for _ in 0..NR_ITERS {
                yield_now();
            }
            span.end();
        },
    );
}

fn waitqueue_pingpong() {
    static WQ: [WaitQueue; 2] = [WaitQueue::new("bench.ping"), WaitQueue::new("bench.pong")];
    static TURN: AtomicU64 = AtomicU64::new(0);
    two_thread_runs(
        "2 threads waking each other (wait queues)",
        || TURN.store(0, Ordering::Release),
        |me, span| {
            span.begin();
            let me = me as u64;
            for round in 0..NR_ITERS {
                let my_turn = 2 * round + me;
                WQ[me as usize].wait_until(|| TURN.load(Ordering::Acquire) == my_turn);
                TURN.store(my_turn + 1, Ordering::Release);
                WQ[1 - me as usize].wake_one();
            }
            span.end();
        },
    );
}

fn yield_no_switch() {
    let mut samples = [0u64; NR_RUNS];
    for sample in &mut samples {
        let sw0 = stat(SchedStat::ContextSwitch);
        let t0 = now_ns();
        for _ in 0..NR_ITERS {
            yield_now();
        }
        let ns = now_ns() - t0;
        let switched = stat(SchedStat::ContextSwitch) - sw0;
        assert!(
            switched < NR_ITERS / 10,
            "{switched} switches: something else was runnable"
        );
        *sample = ns / NR_ITERS;
    }
    let (min, median, max) = min_median_max(&mut samples);
    println!(
        "  yield_now with nothing else runnable (no switch): {NR_RUNS} runs x {NR_ITERS} calls; \
         ns per call: min {min} median {median} max {max}"
    );
}

/// Median ns of `f` over `NR_RUNS` runs of `NR_ITERS` calls.
fn per_call(mut f: impl FnMut()) -> u64 {
    let mut samples = [0u64; NR_RUNS];
    for sample in &mut samples {
        let t0 = now_ns();
        for _ in 0..NR_ITERS {
            f();
        }
        *sample = (now_ns() - t0) / NR_ITERS;
    }
    min_median_max(&mut samples).1
}

fn primitives() {
    static LOCK: SpinLock<u64> = SpinLock::new("bench.lock", 0);
    let empty = per_call(|| core::hint::black_box(()));
    let irq = per_call(|| {
        let was_on = sync::irq_save();
        sync::irq_restore(was_on);
    });
    let cpu = per_call(|| {
        core::hint::black_box(percpu::cpu_id());
    });
    let preempt = per_call(|| {
        preempt_disable();
        preempt_enable();
    });
    let lock = per_call(|| *LOCK.lock() += 1);
    let clock = per_call(|| {
        core::hint::black_box(now_ns());
    });
    println!(
        "  ns per call (median of {NR_RUNS} x {NR_ITERS}; loop overhead included): empty loop {empty}, \
         irq_save+restore {irq}, cpu_id {cpu}, preempt_disable+enable {preempt}, \
         SpinLock lock+unlock {lock}, now_ns {clock}"
    );
}

//! In-kernel tests of per-CPU data, kernel threads, preemption, sleeping,
//! wait queues, join and stack lifetime.
//!
//! They run in the boot task `kmain`, on the real tick. A test that would
//! hang without the feature it tests (a thread waiting for another that
//! never runs, a lost wakeup) bounds its waits and fails with a message
//! instead.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mm::Platform;

use super::stack::{self, GUARD_BYTES, THREAD_SIZE};
use super::{
    JoinHandle, SchedStat, TaskState, WaitQueue, current, preempt_disable, preempt_enable,
    sleep_ms, spawn, stat, with_current, yield_now,
};
use crate::ktest::{KTest, PinCpu0};
use crate::sync::SpinLock;
use crate::time::{self, TICK_NS, now_ns};
use crate::{memory, percpu};

pub const KTESTS: &[KTest] = crate::ktests![
    percpu_area_through_gs,
    spawn_join_returns_result,
    two_busy_threads_both_progress,
    preempt_disable_holds_off_preemption,
    yield_now_is_round_robin,
    sleep_ms_sleeps_and_lets_others_run,
    wait_queue_wakes_a_sleeper,
    idle_wait_sleeps_idle,
    wait_queue_pingpong_loses_no_wakeup,
    join_after_return_and_after_exit,
    guard_gap_is_unmapped,
    stacks_are_freed,
    stack_dropped_with_irqs_off_waits_for_a_purge,
    platform_wait_and_wake,
    platform_wake_from_irq,
];

/// A deadline `ms` from now, for bounded waits.
fn deadline_in_ms(ms: u64) -> u64 {
    now_ns() + ms * 1_000_000
}

fn percpu_area_through_gs() {
    assert_eq!(percpu::cpu_id(), 0);
    let gs = x86_64::registers::model_specific::GsBase::read().as_u64();
    assert_eq!(gs, percpu::this_cpu_ptr() as u64, "GS base is the record");
    // Every CPU of the MADT is possible and, once started, online.
    let nr_cpus = crate::smp::topology().nr_cpus;
    assert_eq!(percpu::nr_possible_cpus(), nr_cpus);
    assert_eq!(percpu::nr_online_cpus(), nr_cpus);
    assert_eq!(memory::page_alloc().platform().nr_cpus(), nr_cpus);
    assert_eq!(percpu::preempt_count(), 0);
    assert_eq!(percpu::hardirq_count(), 0);
    preempt_disable();
    preempt_disable();
    assert_eq!(percpu::preempt_count(), 2);
    assert_eq!(percpu::this_cpu().preempt_count(), 2);
    preempt_enable();
    preempt_enable();
    assert_eq!(percpu::preempt_count(), 0);
    let p = memory::page_alloc().platform();
    assert!(!p.in_interrupt());
    let irq = p.irq_save();
    let inner = p.irq_save();
    assert!(!x86_64::instructions::interrupts::are_enabled());
    p.irq_restore(inner);
    assert!(
        !x86_64::instructions::interrupts::are_enabled(),
        "an inner irq_restore re-enabled interrupts"
    );
    p.irq_restore(irq);
    assert!(x86_64::instructions::interrupts::are_enabled());
    assert_eq!(current().name(), "kmain");
    assert_eq!(current().tid().as_u32(), 1);
}

fn spawn_join_returns_result() {
    let data: Vec<u64> = (1..=10).collect();
    let h = spawn("summer", move || data.iter().sum::<u64>());
    assert_eq!(h.task().name(), "summer");
    assert_eq!(h.join(), Some(55));
    let long = spawn("a-very-long-thread-name", || with_current(|t| t.tid()));
    assert_eq!(long.task().name(), "a-very-long-thr", "cut to 15 bytes");
    let tid = long.task().tid();
    assert_eq!(long.join(), Some(tid));
}

/// Two threads that never yield, each waiting for the other to make
/// progress, on one CPU (they inherit the spawner's affinity): only
/// preemption lets both finish.
fn two_busy_threads_both_progress() {
    let pin = PinCpu0::pin();
    const N: u64 = 1000;
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let preempts0 = stat(SchedStat::Preemption);
    let deadline = deadline_in_ms(5_000);
    let handles: Vec<JoinHandle<u64>> = (0..2)
        .map(|me| {
            let c = counters.clone();
            spawn(if me == 0 { "busy-a" } else { "busy-b" }, move || {
                loop {
                    let mine = c[me].fetch_add(1, Ordering::Relaxed) + 1;
                    if mine >= N && c[1 - me].load(Ordering::Relaxed) >= N {
                        return mine;
                    }
                    assert!(
                        now_ns() < deadline,
                        "busy thread {me}: the other one never ran (no preemption?)"
                    );
                }
            })
        })
        .collect();
    drop(pin);
    for h in handles {
        assert!(h.join().unwrap() >= N);
    }
    assert!(
        stat(SchedStat::Preemption) > preempts0,
        "no preemption counted"
    );
}

/// Under preempt_disable the running task keeps the CPU past its slice,
/// and preempt_enable then switches at once.
fn preempt_disable_holds_off_preemption() {
    // One CPU: the spawned threads share it with the caller.
    let _pin = PinCpu0::pin();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (count.clone(), stop.clone());
    let spinner = spawn("spinner", move || {
        while !s.load(Ordering::Relaxed) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    let deadline = deadline_in_ms(2_000);
    while count.load(Ordering::Relaxed) == 0 {
        assert!(now_ns() < deadline, "the spinner never ran");
        yield_now();
    }
    let me = current();
    preempt_disable();
    let (before, nivcsw0) = (count.load(Ordering::Relaxed), me.nr_switches().1);
    let t0 = now_ns();
    // Longer than a slice: the tick asks for a reschedule meanwhile.
    while now_ns() < t0 + 3 * u64::from(super::SLICE_TICKS) * TICK_NS {
        core::hint::spin_loop();
    }
    let during = count.load(Ordering::Relaxed);
    let asked = percpu::need_resched();
    preempt_enable();
    let after = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    spinner.join();
    assert_eq!(before, during, "the spinner ran under preempt_disable");
    assert!(asked, "the tick did not ask for a reschedule");
    assert!(
        me.nr_switches().1 > nivcsw0,
        "preempt_enable did not preempt"
    );
    assert!(after > during, "the spinner did not run at preempt_enable");
}

/// Three yielding threads take turns in FIFO order.
fn yield_now_is_round_robin() {
    // One CPU: the spawned threads share it with the caller.
    let _pin = PinCpu0::pin();
    let log = Arc::new(SpinLock::new("test.log", Vec::new()));
    let preempts0 = stat(SchedStat::Preemption);
    let handles: Vec<JoinHandle<()>> = (0..3u8)
        .map(|id| {
            let log = log.clone();
            spawn("yielder", move || {
                for _ in 0..5 {
                    log.lock().push(b'a' + id);
                    yield_now();
                }
            })
        })
        .collect();
    for h in handles {
        h.join();
    }
    let log = log.lock().clone();
    assert_eq!(log.len(), 15);
    for id in 0..3u8 {
        assert_eq!(log.iter().filter(|&&c| c == b'a' + id).count(), 5);
    }
    // A tick preemption between a push and its yield may reorder one turn.
    if stat(SchedStat::Preemption) == preempts0 {
        assert_eq!(
            &log[..],
            b"abcabcabcabcabc",
            "{:?}",
            core::str::from_utf8(&log)
        );
    }
}

fn sleep_ms_sleeps_and_lets_others_run() {
    let t0 = now_ns();
    sleep_ms(20);
    let dt = now_ns() - t0;
    assert!(dt >= 20_000_000, "slept only {dt} ns");
    assert!(dt < 20_000_000 + 50 * TICK_NS, "slept {dt} ns for 20 ms");

    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (count.clone(), stop.clone());
    let h = spawn("counter", move || {
        while !s.load(Ordering::Relaxed) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    let j0 = time::jiffies();
    sleep_ms(30);
    assert!(
        time::jiffies() >= j0 + 7,
        "jiffies did not advance while asleep"
    );
    assert!(
        count.load(Ordering::Relaxed) > 0,
        "nothing ran while kmain slept"
    );
    stop.store(true, Ordering::Relaxed);
    h.join();
    assert_eq!(
        super::timer::nr_pending(),
        0,
        "a sleep timer was left behind"
    );
}

fn wait_queue_wakes_a_sleeper() {
    static WQ: WaitQueue = WaitQueue::new("test.wq");
    static FLAG: AtomicBool = AtomicBool::new(false);
    FLAG.store(false, Ordering::Relaxed);
    let h = spawn("waiter", || {
        WQ.wait_until(|| FLAG.load(Ordering::Acquire));
        now_ns()
    });
    let deadline = deadline_in_ms(2_000);
    while h.task().state() != TaskState::Uninterruptible {
        assert!(now_ns() < deadline, "the waiter never blocked");
        sleep_ms(1);
    }
    assert!(WQ.has_waiters());
    // A wakeup without the condition: the waiter re-checks and sleeps again.
    assert!(WQ.wake_one());
    sleep_ms(5);
    assert_eq!(h.task().state(), TaskState::Uninterruptible);
    let t_wake = now_ns();
    FLAG.store(true, Ordering::Release);
    assert_eq!(WQ.wake_all(), 1);
    let woke_at = h.join().expect("the waiter returns");
    assert!(woke_at >= t_wake);
    assert!(!WQ.has_waiters());
}

/// `wait_until_idle` sleeps in the IDLE state (skipped by the hung-task
/// check) and wakes like any wait.
fn idle_wait_sleeps_idle() {
    static WQ: WaitQueue = WaitQueue::new("test.idle");
    static WORK: AtomicU64 = AtomicU64::new(0);
    WORK.store(0, Ordering::Relaxed);
    let h = spawn("daemon", || {
        let mut done = 0;
        while done < 3 {
            WQ.wait_until_idle(|| WORK.load(Ordering::Acquire) > done);
            done = WORK.load(Ordering::Acquire);
        }
        done
    });
    for _ in 0..3 {
        let deadline = deadline_in_ms(2_000);
        while h.task().state() != TaskState::Idle {
            assert!(now_ns() < deadline, "the daemon never slept IDLE");
            sleep_ms(1);
        }
        WORK.fetch_add(1, Ordering::Release);
        WQ.wake_all();
    }
    assert_eq!(h.join(), Some(3));
}

/// Two threads hand a turn back and forth 2000 times through wait queues;
/// a lost wakeup would stall a side past its 2 s bound.
fn wait_queue_pingpong_loses_no_wakeup() {
    static WQ: [WaitQueue; 2] = [WaitQueue::new("test.ping"), WaitQueue::new("test.pong")];
    static TURN: AtomicU64 = AtomicU64::new(0);
    const ROUNDS: u64 = 2000;
    TURN.store(0, Ordering::Relaxed);
    let handles: Vec<JoinHandle<()>> = (0..2u64)
        .map(|me| {
            spawn("pingpong", move || {
                for round in 0..ROUNDS {
                    let my_turn = 2 * round + me;
                    let ok = WQ[me as usize].wait_until_timeout(
                        || TURN.load(Ordering::Acquire) == my_turn,
                        2_000_000_000,
                    );
                    assert!(ok, "side {me} lost a wakeup in round {round}");
                    TURN.store(my_turn + 1, Ordering::Release);
                    WQ[1 - me as usize].wake_one();
                }
            })
        })
        .collect();
    for h in handles {
        h.join();
    }
    assert_eq!(TURN.load(Ordering::Relaxed), 2 * ROUNDS);
}

fn join_after_return_and_after_exit() {
    let exited = spawn("exiter", || -> u32 {
        super::exit();
    });
    assert_eq!(exited.join(), None, "exit() gives no result");
    let quick = spawn("quick", || 7u32);
    sleep_ms(10);
    assert!(quick.is_finished(), "reaped while nobody joined");
    assert_eq!(quick.join(), Some(7));
    let slow = spawn("slow", || {
        sleep_ms(20);
        8u32
    });
    assert!(!slow.is_finished());
    assert_eq!(slow.join(), Some(8));
    // A detached thread is reaped and freed on its own.
    let stacks = stack::nr_stacks_in_use();
    drop(spawn("detached", || ()));
    sleep_ms(10);
    assert_eq!(
        stack::nr_stacks_in_use(),
        stacks,
        "detached stack not freed"
    );
}

fn guard_gap_is_unmapped() {
    let h = spawn("probe", || {
        let local = 0u64;
        core::hint::black_box(&local) as *const u64 as u64
    });
    let (bottom, top) = h.task().stack_range().expect("a spawned stack");
    assert_eq!(top - bottom, THREAD_SIZE);
    assert!(stack::is_mapped(bottom) && stack::is_mapped(top - 8));
    assert!(!stack::is_mapped(bottom - 8), "guard page mapped");
    assert!(!stack::is_mapped(bottom - GUARD_BYTES), "guard gap mapped");
    let local = h.join().unwrap();
    assert!(
        (bottom..top).contains(&local),
        "{local:#x} not on the stack"
    );
    assert!(!stack::is_mapped(bottom), "stack still mapped after join");
}

/// A stack dropped where this CPU cannot wait for the others (interrupts
/// off, as in `finish_task_switch`) is unmapped at once but keeps its slot
/// and block until a purge has flushed every CPU's TLB; at one CPU there
/// is nobody to flush and it is freed at once (stack module docs, TLB).
fn stack_dropped_with_irqs_off_waits_for_a_purge() {
    stack::purge_lazy();
    let (purges, purged) = stack::purge_stats();
    let s = stack::KernelStack::new().expect("stack");
    let (slot, bottom) = (s.slot(), s.bottom());
    let irqs = crate::sync::irq_save();
    drop(s);
    let smp = percpu::nr_online_cpus() >= 2;
    assert!(!stack::is_mapped(bottom), "unmapped at once");
    assert_eq!(stack::is_slot_used(slot), smp, "slot kept only at SMP");
    let other = stack::KernelStack::new().expect("stack");
    assert!(!smp || other.slot() != slot, "a lazy slot was reused");
    drop(other);
    crate::sync::irq_restore(irqs);
    if smp {
        assert!(stack::nr_lazy() >= 2, "both stacks wait for a purge");
        stack::purge_lazy();
        let (p, n) = stack::purge_stats();
        assert!(p > purges && n >= purged + 2, "one purge freed both");
    }
    assert!(!stack::is_slot_used(slot), "slot free after the purge");
}

/// Spawn+join cycles give every stack frame back to the buddy allocator
/// (slab pages left out: with two CPUs the task records freed on the other
/// CPU may keep a slab of its own cached, as on Linux).
fn stacks_are_freed() {
    // Warm up: page tables of the first slots stay allocated for good.
    let warm: Vec<_> = (0..16).map(|i| spawn("warm", move || i)).collect();
    for h in warm {
        h.join();
    }
    let (used0, stacks0, tasks0) = (
        crate::process::settled_used_pages(),
        stack::nr_stacks_in_use(),
        super::nr_tasks(),
    );
    for round in 0..8u64 {
        let batch: Vec<_> = (0..16)
            .map(|i| spawn("cycle", move || round * 100 + i))
            .collect();
        for (i, h) in batch.into_iter().enumerate() {
            assert_eq!(h.join(), Some(round * 100 + i as u64));
        }
    }
    for _ in 0..64 {
        spawn("one", || ()).join();
    }
    assert_eq!(
        crate::process::settled_used_pages(),
        used0,
        "frames in use before/after 192 spawn+join cycles"
    );
    assert_eq!(stack::nr_stacks_in_use(), stacks0);
    assert_eq!(super::nr_tasks(), tasks0);
}

fn platform_wait_and_wake() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    FLAG.store(false, Ordering::Relaxed);
    let p = memory::page_alloc().platform();
    // Nothing wakes it: returns after the short timeout.
    let t0 = now_ns();
    p.wait(&|| false);
    let dt = now_ns() - t0;
    assert!(
        (crate::platform::MM_WAIT_TIMEOUT_NS / 2..50 * TICK_NS).contains(&dt),
        "wait timed out after {dt} ns"
    );
    let h = spawn("mm-waiter", || {
        let p = memory::page_alloc().platform();
        let mut nr_waits = 0u64;
        while !FLAG.load(Ordering::Acquire) {
            p.wait(&|| FLAG.load(Ordering::Acquire));
            nr_waits += 1;
        }
        nr_waits
    });
    sleep_ms(20);
    FLAG.store(true, Ordering::Release);
    p.wake_waiters();
    let nr_waits = h.join().unwrap();
    assert!(nr_waits >= 1);
}

/// `wake_waiters` from hard-IRQ context: a tick hook wakes a waiter.
fn platform_wake_from_irq() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FLAG: AtomicBool = AtomicBool::new(false);
    fn hook() {
        if ARMED.swap(false, Ordering::AcqRel) {
            FLAG.store(true, Ordering::Release);
            memory::page_alloc().platform().wake_waiters();
        }
    }
    time::register_tick_hook(hook).expect("a free tick-hook slot");
    let p = memory::page_alloc().platform();
    ARMED.store(true, Ordering::Release);
    let deadline = deadline_in_ms(2_000);
    while !FLAG.load(Ordering::Acquire) {
        p.wait(&|| FLAG.load(Ordering::Acquire));
        assert!(now_ns() < deadline, "the tick hook never woke us");
    }
}

//! Host tests of RCU: threads stand in for CPUs (`sim::set_cpu`), and each
//! one "ticks" (reports quiescent states, runs its callbacks) between its
//! read-side sections, as a real CPU's timer interrupt would.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::sim::{self, SimMachine, SimPlatform};

fn rcu(nr_cpus: usize) -> Rcu<SimPlatform> {
    sim::set_cpu(0);
    Rcu::new(SimPlatform(SimMachine::new(1, nr_cpus)))
}

/// What a CPU's timer interrupt does for RCU, plus running the callbacks.
fn tick(rcu: &Rcu<SimPlatform>) {
    if rcu.sched_clock_irq() {
        rcu.rcu_core();
    }
}

/// Takes a CPU offline when dropped, also when its thread panics, so that
/// a failed assertion ends the test instead of stalling grace periods.
struct OfflineOnDrop<'a>(&'a Rcu<SimPlatform>, u32);

impl Drop for OfflineOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cpu_offline(CpuId::new(self.1));
    }
}

/// Sets the flag when dropped, also when the test thread panics, so that
/// helper threads waiting for it stop and a failure is reported instead of
/// hanging the test run.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Runs `f` on CPUs 1..n in threads (CPU 0 is the calling thread); each
/// thread goes offline when `f` returns.
fn on_cpus(rcu: &Rcu<SimPlatform>, n: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for cpu in 1..n {
            let f = &f;
            s.spawn(move || {
                sim::set_cpu(cpu as u32);
                let _offline = OfflineOnDrop(rcu, cpu as u32);
                f(cpu);
            });
        }
    });
}

#[test]
fn snap_waits_for_a_whole_grace_period() {
    assert_eq!(seq_snap(4), 6);
    assert_eq!(seq_snap(5), 8);
    assert_eq!(seq_snap(0), 2);
}

#[test]
fn synchronize_waits_for_readers_that_began_before_it() {
    let rcu = rcu(2);
    let in_reader = AtomicBool::new(false);
    let reader_done = AtomicBool::new(false);
    let sync_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            sim::set_cpu(1);
            {
                let _g = rcu.read_lock();
                in_reader.store(true, SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                // Ticks inside the section are not quiescent states.
                tick(&rcu);
                reader_done.store(true, SeqCst);
            }
            while !sync_done.load(SeqCst) {
                tick(&rcu);
                std::thread::yield_now();
            }
        });
        let _stop = SetOnDrop(&sync_done);
        while !in_reader.load(SeqCst) {
            std::hint::spin_loop();
        }
        rcu.synchronize_rcu();
        assert!(
            reader_done.load(SeqCst),
            "synchronize_rcu returned while a reader was inside"
        );
        sync_done.store(true, SeqCst);
    });
    assert!(rcu.stats().get(RcuStat::GpCompleted) >= 1);
}

#[test]
fn callback_waits_for_the_reader_then_runs_within_a_few_ticks() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn cb(_: *mut RcuHead) {
        RAN.fetch_add(1, SeqCst);
    }
    let rcu = rcu(2);
    let mut head = RcuHead::new();
    let holding = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            sim::set_cpu(1);
            let g = rcu.read_lock();
            holding.store(true, SeqCst);
            while !release.load(SeqCst) {
                tick(&rcu);
            }
            drop(g);
            while !done.load(SeqCst) {
                tick(&rcu);
            }
        });
        let (_release, _done) = (SetOnDrop(&release), SetOnDrop(&done));
        while !holding.load(SeqCst) {
            core::hint::spin_loop();
        }
        // SAFETY: `head` outlives the callback (we wait for it below).
        unsafe { rcu.call_rcu(&mut head, cb) };
        for _ in 0..1000 {
            tick(&rcu);
        }
        assert_eq!(
            RAN.load(SeqCst),
            0,
            "callback ran while a reader that predates it was inside"
        );
        release.store(true, SeqCst);
        let mut ticks = 0;
        while RAN.load(SeqCst) == 0 {
            tick(&rcu);
            ticks += 1;
            std::thread::yield_now();
            assert!(ticks < 1_000_000, "callback never ran");
        }
        done.store(true, SeqCst);
    });
}

#[test]
fn barrier_waits_for_every_queued_callback() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn cb(_: *mut RcuHead) {
        RAN.fetch_add(1, SeqCst);
    }
    let rcu = rcu(4);
    let heads: Vec<Vec<Box<RcuHead>>> = (0..4)
        .map(|_| (0..250).map(|_| Box::new(RcuHead::new())).collect())
        .collect();
    let queued = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for cpu in 1..4 {
            let (rcu, heads, queued, stop) = (&rcu, &heads, &queued, &stop);
            s.spawn(move || {
                sim::set_cpu(cpu as u32);
                for h in &heads[cpu] {
                    let p = &**h as *const RcuHead as *mut RcuHead;
                    // SAFETY: the boxes outlive the barrier below.
                    unsafe { rcu.call_rcu(p, cb) };
                }
                queued.fetch_add(1, SeqCst);
                while !stop.load(SeqCst) {
                    tick(rcu);
                    std::thread::yield_now();
                }
            });
        }
        let _stop = SetOnDrop(&stop);
        for h in &heads[0] {
            let p = &**h as *const RcuHead as *mut RcuHead;
            // SAFETY: the boxes of `heads` outlive the barrier below, which runs every callback.
            unsafe { rcu.call_rcu(p, cb) };
        }
        while queued.load(SeqCst) < 3 {
            core::hint::spin_loop();
        }
        rcu.rcu_barrier();
        assert_eq!(RAN.load(SeqCst), 1000);
        stop.store(true, SeqCst);
    });
}

/// The reader/writer test: readers follow a published pointer while
/// writers replace it and free the old node through call_rcu. The callback
/// poisons the node (and parks it, so that a late reader reads poison, not
/// freed memory); a reader that ever sees poison proves a grace period
/// ended too early.
fn readers_and_writers(nr_cpus: usize) {
    const LIVE: u64 = 0x11fe_11fe_11fe_11fe;
    const POISON: u64 = 0x6b6b_6b6b_6b6b_6b6b;
    /// Per-test bookkeeping, reached from each node (callbacks get only
    /// the head), so that tests running in parallel do not share it.
    struct Ctx {
        freed: AtomicUsize,
        graveyard: Mutex<Vec<usize>>,
    }
    #[repr(C)]
    struct Node {
        head: RcuHead,
        magic: AtomicU64,
        value: u64,
        ctx: *const Ctx,
    }
    unsafe fn poison(head: *mut RcuHead) {
        let node = head.cast::<Node>();
        // SAFETY: the head is the first field of a leaked Node; after the
        // grace period no reader holds it; its Ctx outlives the test's
        // rcu_barrier.
        let (old, ctx) = unsafe { ((*node).magic.swap(POISON, SeqCst), &*(*node).ctx) };
        assert_eq!(old, LIVE, "node freed twice");
        ctx.freed.fetch_add(1, SeqCst);
        ctx.graveyard.lock().unwrap().push(node as usize);
    }
    let ctx = Ctx {
        freed: AtomicUsize::new(0),
        graveyard: Mutex::new(Vec::new()),
    };
    let ctx_addr = &ctx as *const Ctx as usize;
    let new_node = |value| {
        Box::into_raw(Box::new(Node {
            head: RcuHead::new(),
            magic: AtomicU64::new(LIVE),
            value,
            ctx: ctx_addr as *const Ctx,
        }))
    };

    let rcu = rcu(nr_cpus);
    let shared = RcuPtr::new(new_node(0));
    let replaced = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    let work = |cpu: usize| {
        let mut rng = crate::rand::XorShift64::new(0x9e37_79b9_7f4a_7c15 ^ cpu as u64);
        for i in 0..3000u64 {
            let seed = rng.next_u64();
            if seed.is_multiple_of(4) {
                let old = shared.assign(new_node(i));
                replaced.fetch_add(1, SeqCst);
                // SAFETY: `old` was unpublished by the swap; its head stays
                // valid until the callback parks it.
                unsafe { rcu.call_rcu(&raw mut (*old).head, poison) };
                if seed.is_multiple_of(64) {
                    rcu.synchronize_rcu();
                }
            } else {
                let g = rcu.read_lock();
                let p = shared.load(&g);
                // SAFETY: inside the read-side section the node it points to
                // is not freed (parked at worst, which is what we check).
                let magic = unsafe { (*p).magic.load(SeqCst) };
                assert_eq!(
                    magic, LIVE,
                    "reader saw a node whose grace period had ended"
                );
                // SAFETY: still inside the read-side section: the node is not freed.
                let _ = unsafe { (*p).value };
                if seed % 16 == 1 {
                    std::thread::yield_now();
                }
                if seed % 8 == 3 {
                    // Timer interrupts arriving inside a long section: not
                    // quiescent states. The node must stay intact
                    // throughout, while the other CPUs go on.
                    for _ in 0..20 {
                        rcu.sched_clock_irq();
                        std::thread::yield_now();
                        // SAFETY: still inside the read-side section (ticks are not quiescent
                        // states): the node is not freed.
                        let magic = unsafe { (*p).magic.load(SeqCst) };
                        assert_eq!(magic, LIVE, "node freed under a reader");
                    }
                }
                drop(g);
                reads.fetch_add(1, SeqCst);
            }
            tick(&rcu);
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| on_cpus(&rcu, nr_cpus, work));
        // When done (or failed), stop holding up the others' grace periods.
        let _offline = OfflineOnDrop(&rcu, 0);
        work(0);
    });
    rcu.cpu_online(CpuId::new(0));
    rcu.rcu_barrier();
    assert_eq!(
        ctx.freed.load(SeqCst),
        replaced.load(SeqCst),
        "every replaced node freed once"
    );
    assert!(reads.load(SeqCst) > 0);
    // Teardown: the live node and the parked ones.
    // SAFETY: no readers remain; every pointer was leaked by new_node.
    unsafe {
        drop(Box::from_raw(shared.assign(core::ptr::null_mut())));
        for p in ctx.graveyard.lock().unwrap().drain(..) {
            drop(Box::from_raw(p as *mut Node));
        }
    }
}

#[test]
fn readers_never_see_freed_nodes_1_cpu() {
    readers_and_writers(1);
}

#[test]
fn readers_never_see_freed_nodes_2_cpus() {
    readers_and_writers(2);
}

#[test]
fn readers_never_see_freed_nodes_4_cpus() {
    readers_and_writers(4);
}

#[test]
fn readers_never_see_freed_nodes_8_cpus() {
    readers_and_writers(8);
}

#[test]
fn sleeping_inside_a_reader_is_reported() {
    let rcu = rcu(1);
    let g = rcu.read_lock();
    rcu.note_context_switch();
    rcu.synchronize_rcu(); // reported, returns at once instead of deadlocking
    assert_eq!(rcu.stats().get(RcuStat::BlockedInReader), 2);
    drop(g);
    rcu.note_context_switch();
    assert_eq!(rcu.stats().get(RcuStat::BlockedInReader), 2);
    assert!(!rcu.in_read_section());
}

#[test]
fn nested_readers_end_with_the_outermost() {
    let rcu = rcu(1);
    let a = rcu.read_lock();
    let b = rcu.read_lock();
    assert_eq!(sim::preempt_count(), 2);
    drop(b);
    assert!(rcu.in_read_section());
    drop(a);
    assert!(!rcu.in_read_section());
    assert_eq!(sim::preempt_count(), 0);
}

#[test]
fn double_call_rcu_is_reported_and_ignored() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn cb(_: *mut RcuHead) {
        RAN.fetch_add(1, SeqCst);
    }
    let rcu = rcu(1);
    let mut head = RcuHead::new();
    // One raw pointer for both calls: a second `&mut head` would retag
    // the head and invalidate the pointer the first call queued (Miri's
    // Stacked Borrows reports the queue's later read of it).
    let h = &raw mut head;
    // SAFETY: `head` outlives the barrier below, and is only reached
    // through `h` until then.
    unsafe {
        rcu.call_rcu(h, cb);
        rcu.call_rcu(h, cb);
    }
    assert_eq!(rcu.stats().get(RcuStat::DoubleQueue), 1);
    rcu.rcu_barrier();
    assert_eq!(RAN.load(SeqCst), 1);
}

#[test]
fn a_cpu_without_quiescent_states_stalls_grace_periods_and_is_named() {
    let rcu = rcu(2);
    rcu.set_stall_timeout_ns(20_000_000);
    // CPU 1 is online but never reports (a CPU stuck in a loop).
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn cb(_: *mut RcuHead) {
        RAN.fetch_add(1, SeqCst);
    }
    let mut head = RcuHead::new();
    // SAFETY: `head` outlives the barrier below.
    unsafe { rcu.call_rcu(&mut head, cb) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(60) {
        tick(&rcu);
    }
    assert_eq!(RAN.load(SeqCst), 0);
    assert_eq!(
        rcu.stats().get(RcuStat::Stalls),
        1,
        "one warning per grace period"
    );
    // Taking the CPU offline lets the grace period end.
    rcu.cpu_offline(CpuId::new(1));
    rcu.rcu_barrier();
    assert_eq!(RAN.load(SeqCst), 1);
}

#[test]
fn kvfree_rcu_frees_in_batches_after_a_grace_period() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Obj(#[allow(dead_code)] [u64; 4]);
    impl Drop for Obj {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    let rcu = rcu(2);
    let holding = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            sim::set_cpu(1);
            let g = rcu.read_lock();
            holding.store(true, SeqCst);
            while !release.load(SeqCst) {
                std::thread::yield_now();
            }
            drop(g);
            rcu.cpu_offline(CpuId::new(1));
        });
        let _release = SetOnDrop(&release);
        while !holding.load(SeqCst) {
            core::hint::spin_loop();
        }
        for i in 0..10_000u64 {
            rcu.kvfree_rcu(Box::new(Obj([i; 4])));
        }
        // Full batches were submitted, but CPU 1's reader holds the grace
        // period: nothing may be freed yet.
        for _ in 0..100 {
            tick(&rcu);
        }
        assert_eq!(DROPPED.load(SeqCst), 0);
        release.store(true, SeqCst);
    });
    rcu.kvfree_rcu_barrier();
    assert_eq!(DROPPED.load(SeqCst), 10_000);
    let batches = 10_000usize.div_ceil(kvfree::RECORDS) as u64;
    assert_eq!(rcu.stats().get(RcuStat::KvfreeBatches), batches);
    assert_eq!(rcu.stats().get(RcuStat::CallbacksInvoked), batches);
}

#[test]
fn the_tick_submits_old_kvfree_batches() {
    let rcu = rcu(1);
    rcu.set_kvfree_drain_ns(5_000_000);
    rcu.kvfree_rcu(Box::new(7u32));
    tick(&rcu);
    assert_eq!(rcu.stats().get(RcuStat::KvfreeBatches), 0);
    std::thread::sleep(Duration::from_millis(10));
    let start = Instant::now();
    while rcu.stats().get(RcuStat::CallbacksInvoked) == 0 {
        tick(&rcu);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(rcu.stats().get(RcuStat::KvfreeBatches), 1);
}

/// With no memory for a batch block, kvfree_rcu from a context that may
/// sleep waits for the grace period itself and frees the object before it
/// returns (Linux's headless fallback), instead of failing.
#[test]
fn kvfree_rcu_without_a_block_waits_and_frees_at_once() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Obj;
    impl Drop for Obj {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    let rcu = rcu(2);
    let holding = AtomicBool::new(false);
    let returned = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            sim::set_cpu(1);
            let g = rcu.read_lock();
            holding.store(true, SeqCst);
            // The object's grace period waits for this reader.
            for _ in 0..1000 {
                std::thread::yield_now();
            }
            assert!(!returned.load(SeqCst), "returned inside the grace period");
            assert_eq!(DROPPED.load(SeqCst), 0, "freed under a reader");
            drop(g);
            rcu.cpu_offline(CpuId::new(1));
        });
        while !holding.load(SeqCst) {
            core::hint::spin_loop();
        }
        kvfree::FAIL_BLOCKS.with(|n| n.set(1));
        rcu.kvfree_rcu(Box::new(Obj));
        returned.store(true, SeqCst);
        assert_eq!(DROPPED.load(SeqCst), 1, "not freed on return");
    });
    assert_eq!(rcu.stats().get(RcuStat::KvfreeSync), 1);
    assert_eq!(rcu.stats().get(RcuStat::KvfreeBatches), 0);
    // The next object finds memory again: batched as usual.
    rcu.kvfree_rcu(Box::new(Obj));
    rcu.kvfree_rcu_barrier();
    assert_eq!(DROPPED.load(SeqCst), 2);
    assert_eq!(rcu.stats().get(RcuStat::KvfreeBatches), 1);
}

//! In-kernel RCU tests: kernel threads and the real tick.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use mm::rcu::{RcuHead, RcuPtr, RcuStat};

use super::{rcu, read_lock};
use crate::ktest::KTest;
use crate::sched;
use crate::time;

pub const KTESTS: &[KTest] = crate::ktests![
    grace_periods_complete_under_the_tick,
    synchronize_waits_for_a_reader_in_another_thread,
    readers_never_see_freed_nodes,
    barrier_runs_every_queued_callback,
    kvfree_rcu_frees_after_a_grace_period,
];

/// Busy-waits `ns` (ticks keep arriving, the CPU does not switch).
fn spin_ns(ns: u64) {
    let end = time::now_ns() + ns;
    while time::now_ns() < end {
        core::hint::spin_loop();
    }
}

fn grace_periods_complete_under_the_tick() {
    let before = rcu().stats().get(RcuStat::GpCompleted);
    for _ in 0..3 {
        rcu().synchronize_rcu();
    }
    assert!(rcu().stats().get(RcuStat::GpCompleted) >= before + 3);
    assert_eq!(rcu().stats().get(RcuStat::BlockedInReader), 0);
}

fn synchronize_waits_for_a_reader_in_another_thread() {
    static IN_READER: AtomicBool = AtomicBool::new(false);
    static READER_DONE: AtomicBool = AtomicBool::new(false);
    let reader = sched::spawn("rcu-reader", || {
        let g = read_lock();
        IN_READER.store(true, SeqCst);
        // Several ticks arrive inside the section: none is a QS.
        spin_ns(5 * time::TICK_NS);
        READER_DONE.store(true, SeqCst);
        drop(g);
    });
    while !IN_READER.load(SeqCst) {
        sched::yield_now();
    }
    rcu().synchronize_rcu();
    assert!(
        READER_DONE.load(SeqCst),
        "synchronize_rcu returned inside a pre-existing reader"
    );
    reader.join();
}

const LIVE: u64 = 0x11fe_11fe_11fe_11fe;
const POISON: u64 = 0x6b6b_6b6b_6b6b_6b6b;

#[repr(C)]
struct Node {
    head: RcuHead,
    magic: AtomicU64,
}

static SHARED: RcuPtr<Node> = RcuPtr::new(core::ptr::null_mut());
static FREED: AtomicUsize = AtomicUsize::new(0);
static PARKED: spin::Mutex<Vec<usize>> = spin::Mutex::new(Vec::new());

/// The RCU callback: poison the node and park it (so a late reader would
/// read poison rather than reused memory).
unsafe fn poison(head: *mut RcuHead) {
    let node = head.cast::<Node>();
    // SAFETY: the head is the first field of a Node leaked by new_node, and
    // after its grace period no reader holds it.
    let old = unsafe { (*node).magic.swap(POISON, SeqCst) };
    assert_eq!(old, LIVE, "node freed twice");
    FREED.fetch_add(1, SeqCst);
    PARKED.lock().push(node as usize);
}

fn new_node() -> *mut Node {
    Box::into_raw(Box::new(Node {
        head: RcuHead::new(),
        magic: AtomicU64::new(LIVE),
    }))
}

/// Two readers hold the published node across ticks while a writer keeps
/// replacing it and freeing the old one through call_rcu.
fn readers_never_see_freed_nodes() {
    static STOP: AtomicBool = AtomicBool::new(false);
    static READS: AtomicUsize = AtomicUsize::new(0);
    FREED.store(0, SeqCst);
    let first = SHARED.assign(new_node());
    assert!(first.is_null());
    let reader = || {
        while !STOP.load(SeqCst) {
            let g = read_lock();
            let p = SHARED.load(&g);
            for _ in 0..4 {
                // SAFETY: inside the section the node is not freed.
                let magic = unsafe { (*p).magic.load(SeqCst) };
                assert_eq!(
                    magic, LIVE,
                    "reader saw a node whose grace period had ended"
                );
                spin_ns(time::TICK_NS / 2);
            }
            drop(g);
            READS.fetch_add(1, SeqCst);
        }
    };
    let r1 = sched::spawn("rcu-reader-1", reader);
    let r2 = sched::spawn("rcu-reader-2", reader);
    let writer = sched::spawn("rcu-writer", || {
        let mut replaced = 0usize;
        // 400 ms, longer (up to 5 s) until the readers have read 11 times:
        // with two CPUs they run on the other vCPU, which a loaded host
        // may run late.
        let end = time::now_ns() + 400_000_000;
        let hard_end = time::now_ns() + 5_000_000_000;
        while time::now_ns() < end || (READS.load(SeqCst) <= 10 && time::now_ns() < hard_end) {
            let old = SHARED.assign(new_node());
            // SAFETY: `old` is unpublished; its head stays valid until the
            // callback parks it.
            unsafe { rcu().call_rcu(&raw mut (*old).head, poison) };
            replaced += 1;
            if replaced.is_multiple_of(16) {
                rcu().synchronize_rcu();
            }
            spin_ns(time::TICK_NS / 4);
        }
        replaced
    });
    let replaced = writer.join().expect("the writer returns its count");
    STOP.store(true, SeqCst);
    r1.join();
    r2.join();
    rcu().rcu_barrier();
    assert!(replaced > 10 && READS.load(SeqCst) > 10);
    assert_eq!(
        FREED.load(SeqCst),
        replaced,
        "every replaced node freed exactly once"
    );
    let last = SHARED.assign(core::ptr::null_mut());
    // SAFETY: no reader remains; all nodes were leaked by new_node.
    unsafe {
        drop(Box::from_raw(last));
        for p in PARKED.lock().drain(..) {
            drop(Box::from_raw(p as *mut Node));
        }
    }
    log::info!("{replaced} nodes replaced, {} reads", READS.load(SeqCst));
}

fn barrier_runs_every_queued_callback() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe fn count(_: *mut RcuHead) {
        RAN.fetch_add(1, SeqCst);
    }
    let heads: Vec<Box<RcuHead>> = (0..1000).map(|_| Box::new(RcuHead::new())).collect();
    for h in &heads {
        let p = &**h as *const RcuHead as *mut RcuHead;
        // SAFETY: the boxes outlive the barrier below.
        unsafe { rcu().call_rcu(p, count) };
    }
    rcu().rcu_barrier();
    assert_eq!(RAN.load(SeqCst), 1000);
}

fn kvfree_rcu_frees_after_a_grace_period() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Obj(#[allow(dead_code)] u64);
    impl Drop for Obj {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    {
        let _g = read_lock();
        for i in 0..1000 {
            rcu().kvfree_rcu(Box::new(Obj(i)));
        }
        // Inside our own read-side section nothing can have been freed.
        assert_eq!(DROPPED.load(SeqCst), 0);
    }
    rcu().kvfree_rcu_barrier();
    assert_eq!(DROPPED.load(SeqCst), 1000);
}

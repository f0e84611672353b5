//! In-kernel tests of futexes on a real address space (never loaded in
//! CR3: the futex words are reached through the page tables, as every
//! user access is): kernel threads stand in for user threads.
//!
//! - WAIT's checks (EAGAIN, ETIMEDOUT, EINVAL, EFAULT), WAKE's counts
//!   (at least one, Linux's `nr_wake` rule), bitsets.
//! - CMP_REQUEUE (EAGAIN on a changed word, wake + move counts, the moved
//!   waiter woken at its new address) and WAKE_OP (the word updated, the
//!   second address woken only when the comparison holds).
//! - The robust list of a dying owner: its futex becomes
//!   `FUTEX_OWNER_DIED | FUTEX_WAITERS` and a waiter is woken.
//!
//! Every test gives every frame back.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;

use mm::errno::Errno;
use mm::vm::{MapFlags, Mm, Prot};

use super::futex::{self, BITSET_MATCH_ANY, FUTEX_OWNER_DIED, FUTEX_WAITERS};
use super::{KMm, settled_used_pages, vm};
use crate::ktest::KTest;
use crate::sched::{self, JoinHandle};
use crate::time::now_ns;
use crate::uaccess::{copy_from_user, copy_to_user};

pub const KTESTS: &[KTest] = crate::ktests![
    futex_wait_checks_and_wake_counts,
    futex_cmp_requeue_and_wake_op,
    futex_robust_list_marks_owner_died,
];

const BASE: u64 = 0x5000_0000;
const EAGAIN: Errno = Errno(11);
const ETIMEDOUT: Errno = Errno(110);

fn new_mm() -> Arc<KMm> {
    let mm = Arc::new(Mm::new(vm()).expect("mm"));
    let flags = MapFlags::PRIVATE
        .union(MapFlags::ANONYMOUS)
        .union(MapFlags::FIXED);
    mm.mmap(
        BASE,
        2 * mm::PAGE_SIZE,
        Prot::READ.union(Prot::WRITE),
        flags,
        -1,
        0,
    )
    .expect("mmap");
    mm
}

fn put(mm: &KMm, at: u64, v: u32) {
    copy_to_user(mm, at, &v.to_le_bytes()).expect("user word");
}

fn get(mm: &KMm, at: u64) -> u32 {
    let mut b = [0u8; 4];
    copy_from_user(mm, &mut b, at).expect("user word");
    u32::from_le_bytes(b)
}

/// A kernel thread waiting on `(mm, at)` for value `val` with `bitset`.
fn waiter(mm: &Arc<KMm>, at: u64, val: u32, bitset: u32) -> JoinHandle<Result<u64, Errno>> {
    waiter_keyed(mm, at, val, bitset, false)
}

/// [`waiter`], keyed as a shared futex if `shared`.
fn waiter_keyed(
    mm: &Arc<KMm>,
    at: u64,
    val: u32,
    bitset: u32,
    shared: bool,
) -> JoinHandle<Result<u64, Errno>> {
    let mm = mm.clone();
    sched::spawn("futex-waiter", move || {
        futex::wait(&mm, at, val, Some(now_ns() + 5_000_000_000), bitset, shared)
    })
}

/// Yields until `n` waiters are queued in all (the waiters are ours).
fn until_queued(n: usize) {
    let deadline = now_ns() + 5_000_000_000;
    while futex::nr_queued() < n {
        assert!(now_ns() < deadline, "waiters never queued");
        sched::yield_now();
    }
}

fn futex_wait_checks_and_wake_counts() {
    let before = settled_used_pages();
    {
        let mm = new_mm();
        put(&mm, BASE, 5);
        assert_eq!(
            futex::wait(&mm, BASE, 6, None, BITSET_MATCH_ANY, false),
            Err(EAGAIN)
        );
        assert_eq!(
            futex::wait(&mm, BASE + 2, 5, None, BITSET_MATCH_ANY, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            futex::wait(&mm, BASE, 5, None, 0, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            futex::wait(&mm, 1 << 47, 5, None, BITSET_MATCH_ANY, false),
            Err(Errno::EFAULT)
        );
        // No VMA there: the fault-in fails.
        assert_eq!(
            futex::wait(&mm, BASE + 0x10_0000, 0, None, BITSET_MATCH_ANY, false),
            Err(Errno::EFAULT)
        );
        let t0 = now_ns();
        assert_eq!(
            futex::wait(&mm, BASE, 5, Some(t0 + 10_000_000), BITSET_MATCH_ANY, false),
            Err(ETIMEDOUT)
        );
        assert!(now_ns() >= t0 + 10_000_000, "ETIMEDOUT before the deadline");
        assert_eq!(futex::nr_queued(), 0, "a timed-out waiter stayed queued");

        let ws: Vec<_> = (0..3)
            .map(|_| waiter(&mm, BASE, 5, BITSET_MATCH_ANY))
            .collect();
        until_queued(3);
        assert_eq!(
            futex::wake(&mm, BASE + 4, 10, BITSET_MATCH_ANY, false),
            Ok(0)
        );
        assert_eq!(futex::wake(&mm, BASE, 1, BITSET_MATCH_ANY, false), Ok(1));
        // nr_wake 0 still wakes one (`++ret >= nr_wake`).
        assert_eq!(futex::wake(&mm, BASE, 0, BITSET_MATCH_ANY, false), Ok(1));
        assert_eq!(futex::wake(&mm, BASE, 10, BITSET_MATCH_ANY, false), Ok(1));
        for w in ws {
            assert_eq!(w.join(), Some(Ok(0)));
        }
        // Bitsets: a wake must share a bit with the waiter's set.
        let w = waiter(&mm, BASE, 5, 0b01);
        until_queued(1);
        assert_eq!(futex::wake(&mm, BASE, 1, 0b10, false), Ok(0));
        assert_eq!(futex::wake(&mm, BASE, 1, 0b11, false), Ok(1));
        assert_eq!(w.join(), Some(Ok(0)));
        assert_eq!(futex::nr_queued(), 0);
    }
    assert_eq!(settled_used_pages(), before, "frames leaked");
}

fn futex_cmp_requeue_and_wake_op() {
    const CMP_REQUEUE: u32 = 4 | 128;
    const WAKE_OP: u32 = 5 | 128;
    let before = settled_used_pages();
    {
        let mm = new_mm();
        let (a, b) = (BASE, BASE + mm::PAGE_SIZE);
        put(&mm, a, 1);
        put(&mm, b, 0);
        let ws: Vec<_> = (0..3)
            .map(|_| waiter(&mm, a, 1, BITSET_MATCH_ANY))
            .collect();
        until_queued(3);
        // nr_wake 1, nr_requeue (the timeout argument) 1, expected *a = 9: stale.
        assert_eq!(
            futex::sys_futex(&mm, a, CMP_REQUEUE, 1, 1, b, 9),
            Err(EAGAIN)
        );
        assert_eq!(futex::sys_futex(&mm, a, CMP_REQUEUE, 1, 1, b, 1), Ok(2));
        assert!(
            futex::has_waiters(&mm, b),
            "the requeued waiter is not on b"
        );
        assert!(futex::has_waiters(&mm, a), "one waiter stays on a");
        assert_eq!(
            futex::sys_futex(&mm, a, CMP_REQUEUE, 0, u64::MAX, b, 1),
            Err(Errno::EINVAL)
        );
        assert_eq!(futex::wake(&mm, b, 1, BITSET_MATCH_ANY, false), Ok(1));
        // WAKE_OP: *b += 1 (old 0); wake 1 on a, and 1 on b if old == 0.
        let w = waiter(&mm, b, 0, BITSET_MATCH_ANY);
        until_queued(2);
        let add_1_if_eq_0 = (1 << 28) | (1 << 12);
        assert_eq!(
            futex::sys_futex(&mm, a, WAKE_OP, 1, 1, b, add_1_if_eq_0),
            Ok(2)
        );
        assert_eq!(get(&mm, b), 1);
        // The comparison fails now (old 1 != 0): only a's side wakes (none left).
        assert_eq!(
            futex::sys_futex(&mm, a, WAKE_OP, 1, 1, b, add_1_if_eq_0),
            Ok(0)
        );
        assert_eq!(get(&mm, b), 2);
        // An unknown op changes nothing.
        assert_eq!(
            futex::sys_futex(&mm, a, WAKE_OP, 1, 1, b, 7 << 28),
            Err(Errno::ENOSYS)
        );
        assert_eq!(get(&mm, b), 2);
        assert_eq!(w.join(), Some(Ok(0)));
        for w in ws {
            assert_eq!(w.join(), Some(Ok(0)));
        }
        assert_eq!(futex::nr_queued(), 0);
    }
    assert_eq!(settled_used_pages(), before, "frames leaked");
}

fn futex_robust_list_marks_owner_died() {
    let before = settled_used_pages();
    {
        let mm = new_mm();
        const TID: u32 = 4242;
        // head at BASE: { next, futex_offset, list_op_pending }; one entry
        // at BASE + 64 whose futex word sits 16 bytes after it.
        let (head, entry, word) = (BASE, BASE + 64, BASE + 80);
        let mut h = [0u8; 24];
        h[..8].copy_from_slice(&entry.to_le_bytes());
        h[8..16].copy_from_slice(&16u64.to_le_bytes());
        copy_to_user(&mm, head, &h).expect("head");
        copy_to_user(&mm, entry, &head.to_le_bytes()).expect("entry");
        put(&mm, word, TID | FUTEX_WAITERS);
        // The exit path wakes a shared futex (as Linux's
        // handle_futex_death), which glibc's robust waiters wait on.
        let w = waiter_keyed(&mm, word, TID | FUTEX_WAITERS, BITSET_MATCH_ANY, true);
        until_queued(1);
        futex::exit_robust_list(&mm, head, TID);
        assert_eq!(get(&mm, word), FUTEX_OWNER_DIED | FUTEX_WAITERS);
        assert_eq!(w.join(), Some(Ok(0)));
        // Another thread's lock is left alone.
        put(&mm, word, 7);
        futex::exit_robust_list(&mm, head, TID);
        assert_eq!(get(&mm, word), 7);
        // A list that loops on itself ends at the limit.
        copy_to_user(&mm, entry, &entry.to_le_bytes()).expect("loop");
        futex::exit_robust_list(&mm, head, TID);
    }
    assert_eq!(settled_used_pages(), before, "frames leaked");
}

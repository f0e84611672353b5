//! Fast user-space mutexes (Linux's `kernel/futex/{core,waitwake,requeue}.c`).
//!
//! A waiter sleeps on a key, the address space and the user address of a
//! 32-bit word, after checking under its hash bucket's lock that the word
//! still holds the value it expects; a waker takes the same bucket lock,
//! so a wake between the waiter's check and its sleep is never lost:
//!
//! ```text
//!   waiter                               waker
//!   lock bucket                          *uaddr = new value (user)
//!   *uaddr == val? else EAGAIN           lock bucket
//!   queue q; unlock                      dequeue matching q, q.woken = true,
//!   sleep until q.woken || timeout ||    wake q's task; unlock
//!     fatal signal
//!   unqueue q if still queued (lock)
//! ```
//!
//! Keys (`get_futex_key()`) are `(Mm, address)` for private futexes
//! (`FUTEX_PRIVATE_FLAG`): nothing is looked up, only the alignment
//! (`EINVAL`) and the user range (`EFAULT`) are checked. A shared futex
//! is first faulted in as `get_user_pages_fast()` does (for write, or for
//! read if the operation only reads the word; `EFAULT` if neither works).
//! In a shared mapping of a shmem object it is keyed by `(object, byte
//! offset in it)`, so every process that maps the object meets there
//! whatever address it maps it at: the object is named by its inode
//! number, which is never reused (Linux's `i_seq`), tagged with bit 0 (an
//! `Mm`'s address is aligned). On private anonymous memory it is keyed by
//! `(Mm, address)` tagged with bit 1 (Linux's `FUT_OFF_MMSHARED`), so a
//! shared wake does not reach a private waiter of the same word, and a
//! read-only private page is `EFAULT` (such a word never changes). A
//! vfork child shares its parent's `Mm`, so it shares its futexes as well.
//!
//! Operations: `FUTEX_WAIT`, `FUTEX_WAKE`, `FUTEX_WAIT_BITSET` /
//! `FUTEX_WAKE_BITSET`, `FUTEX_REQUEUE` / `FUTEX_CMP_REQUEUE`,
//! `FUTEX_WAKE_OP`, with `FUTEX_PRIVATE_FLAG` and `FUTEX_CLOCK_REALTIME`;
//! the PI operations are `ENOSYS`. Robust lists are walked at thread exit
//! ([`exit_robust_list`]).
//!
//! # Invariants
//!
//! - F1: a queued [`FutexQ`] sits in the bucket of its current key;
//!   `uaddr` changes (requeue) only with both buckets locked.
//! - F2: `woken` is set only by whoever dequeues `q` (under its bucket
//!   lock), before waking its task: a waiter that finds itself no longer
//!   queued was woken, whatever else happened.
//!
//! # Locking
//!
//! Bucket locks are taken one at a time, or two in index order (requeue,
//! wake_op); then a waiter's wait-queue lock, then a runqueue lock. User
//! memory is read under a bucket lock only without faulting
//! (`uaccess::with_user_u32_nofault`); a missing page drops the locks,
//! faults it in and retries.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use mm::errno::Errno;
use mm::pgtable::TASK_SIZE;

use super::KMm;
use crate::sched::WaitQueue;
use crate::sync::{SpinLock, SpinLockGuard};
use crate::uaccess::{copy_from_user, fault_in_user, le64, with_user_u32_nofault};

/// `FUTEX_BITSET_MATCH_ANY`.
pub const BITSET_MATCH_ANY: u32 = u32::MAX;

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const FUTEX_REQUEUE: u32 = 3;
const FUTEX_CMP_REQUEUE: u32 = 4;
const FUTEX_WAKE_OP: u32 = 5;
const FUTEX_LOCK_PI: u32 = 6;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;
const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
const FUTEX_LOCK_PI2: u32 = 13;
const FUTEX_PRIVATE_FLAG: u32 = 128;
const FUTEX_CLOCK_REALTIME: u32 = 256;

/// Robust-futex word bits (`FUTEX_WAITERS`, `FUTEX_OWNER_DIED`,
/// `FUTEX_TID_MASK`).
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// Most entries of a robust list walked (`ROBUST_LIST_LIMIT`): a loop in
/// the user's list ends here.
const ROBUST_LIST_LIMIT: usize = 2048;

const EAGAIN: Errno = Errno(11);
const ETIMEDOUT: Errno = Errno(110);

/// Number of hash buckets (Linux sizes them by CPUs: 256 per CPU).
const NR_BUCKETS: usize = 256;

/// One waiter (Linux's `struct futex_q`).
struct FutexQ {
    /// The key's first part: the `Mm`'s address, or a shmem object's tagged
    /// inode number (F1).
    mm: AtomicUsize,
    /// The key's user address (F1).
    uaddr: AtomicU64,
    /// `FUTEX_WAIT_BITSET`'s bitset (`BITSET_MATCH_ANY` for `FUTEX_WAIT`).
    bitset: u32,
    /// Set by the waker that dequeued it (F2). Release/Acquire.
    woken: AtomicBool,
    /// Where the waiting task sleeps (one task).
    wq: WaitQueue,
}

type Bucket = SpinLock<Vec<Arc<FutexQ>>>;

static BUCKETS: [Bucket; NR_BUCKETS] =
    [const { SpinLock::new("futex.bucket", Vec::new()) }; NR_BUCKETS];

/// Futex events, counted (`/proc/vmstat`-style numbers for tests).
static NR_WAITS: AtomicU64 = AtomicU64::new(0);
static NR_WAKES: AtomicU64 = AtomicU64::new(0);

/// (waits that slept, tasks woken) since boot.
pub fn stats() -> (u64, u64) {
    (
        NR_WAITS.load(Ordering::Relaxed),
        NR_WAKES.load(Ordering::Relaxed),
    )
}

/// The address-space part of a key.
fn mm_key(mm: &KMm) -> usize {
    mm as *const KMm as usize
}

/// Whether an operation writes the futex word (`FUTEX_WRITE`: the
/// second word of `FUTEX_WAKE_OP`) or only reads it (`FUTEX_READ`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rw {
    Read,
    Write,
}

/// The key of the futex word at `uaddr` (`get_futex_key()`): see the
/// module header. `shared`: the operation had no `FUTEX_PRIVATE_FLAG`.
/// `EINVAL` unaligned, `EFAULT` outside user space or, for a shared
/// futex, where the word cannot be faulted in (or is read-only private
/// memory).
fn get_futex_key(mm: &KMm, uaddr: u64, shared: bool, rw: Rw) -> Result<(usize, u64), Errno> {
    check_addr(uaddr)?;
    if !shared {
        return Ok((mm_key(mm), uaddr));
    }
    let writable = fault_in_user(mm, uaddr, true).is_ok();
    if !writable && (rw == Rw::Write || fault_in_user(mm, uaddr, false).is_err()) {
        return Err(Errno::EFAULT);
    }
    match mm.shmem_offset(uaddr) {
        // A shared mapping, or a private one whose page is still the
        // object's (read-only: a write would have copied it).
        Some((ino, offset, is_shared)) if is_shared || !writable => {
            Ok((((ino as usize) << 1) | 1, offset))
        }
        // Read-only private memory never changes: Linux refuses it.
        _ if !writable => Err(Errno::EFAULT),
        _ => Ok((mm_key(mm) | 2, uaddr)),
    }
}

/// The bucket index of a key (a multiplicative hash of both parts).
fn bucket_of(mm: usize, uaddr: u64) -> usize {
    let h = ((mm as u64) ^ (uaddr >> 2)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 56) as usize % NR_BUCKETS
}

/// Checks a futex address as `get_futex_key` does: 4-aligned (`EINVAL`)
/// and in user space (`EFAULT`).
fn check_addr(uaddr: u64) -> Result<(), Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    if uaddr > TASK_SIZE - 4 {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Two buckets locked in index order (one lock if they are the same);
/// dropped in reverse order of locking.
struct DoubleLock<'a> {
    /// The lower-indexed bucket's guard, or the only one.
    first: Option<SpinLockGuard<'a, Vec<Arc<FutexQ>>>>,
    second: Option<SpinLockGuard<'a, Vec<Arc<FutexQ>>>>,
    /// Whether bucket `a` (as passed) is `first`.
    a_first: bool,
}

impl<'a> DoubleLock<'a> {
    fn new(a: usize, b: usize) -> Self {
        if a == b {
            return DoubleLock {
                first: Some(BUCKETS[a].lock()),
                second: None,
                a_first: true,
            };
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let first = BUCKETS[lo].lock();
        let second = BUCKETS[hi].lock();
        DoubleLock {
            first: Some(first),
            second: Some(second),
            a_first: a < b,
        }
    }

    /// Bucket `a` and bucket `b` (the same vector if `a == b`).
    fn get(&mut self) -> (&mut Vec<Arc<FutexQ>>, Option<&mut Vec<Arc<FutexQ>>>) {
        let first = self.first.as_deref_mut().expect("held");
        match self.second.as_deref_mut() {
            None => (first, None),
            Some(second) if self.a_first => (first, Some(second)),
            Some(second) => (second, Some(first)),
        }
    }
}

impl Drop for DoubleLock<'_> {
    fn drop(&mut self) {
        // Reverse order: each guard restores the interrupt state it saw.
        drop(self.second.take());
        drop(self.first.take());
    }
}

/// Dequeues `q` (F2: the caller owns the wakeup) and wakes its task.
fn wake_q(q: Arc<FutexQ>) {
    q.woken.store(true, Ordering::Release);
    q.wq.wake_all();
    NR_WAKES.fetch_add(1, Ordering::Relaxed);
}

/// Takes `q` off its bucket if it is still queued; returns whether it was
/// (false: a waker dequeued it, F2).
fn unqueue(q: &Arc<FutexQ>) -> bool {
    loop {
        let (key, uaddr) = (
            q.mm.load(Ordering::Acquire),
            q.uaddr.load(Ordering::Acquire),
        );
        let mut b = BUCKETS[bucket_of(key, uaddr)].lock();
        if q.uaddr.load(Ordering::Acquire) != uaddr || q.mm.load(Ordering::Acquire) != key {
            continue; // requeued meanwhile (F1)
        }
        return match b.iter().position(|x| Arc::ptr_eq(x, q)) {
            Some(i) => {
                b.remove(i);
                true
            }
            None => false,
        };
    }
}

/// Reads the futex word at `uaddr` under a held bucket lock without
/// faulting; `None` if the page is not there.
fn get_value_locked(mm: &KMm, uaddr: u64) -> Option<u32> {
    with_user_u32_nofault(mm, uaddr, false, |w| w.load(Ordering::SeqCst))
}

/// `FUTEX_WAIT` / `FUTEX_WAIT_BITSET`: sleeps while `*uaddr == val` until
/// woken (0) or `deadline_ns` on the boot clock passes (`ETIMEDOUT`);
/// `EAGAIN` at once if the word differs. A signal ends the sleep as
/// Linux's `futex_wait`: without a timeout `ERESTARTSYS` (the call
/// restarts unless a handler without `SA_RESTART` ran), with one
/// `ERESTART_RESTARTBLOCK`, whose restart waits on to the same deadline.
/// `shared`: keyed as a shared futex (no `FUTEX_PRIVATE_FLAG`).
pub fn wait(
    mm: &KMm,
    uaddr: u64,
    val: u32,
    deadline_ns: Option<u64>,
    bitset: u32,
    shared: bool,
) -> Result<u64, Errno> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let (key, kaddr) = get_futex_key(mm, uaddr, shared, Rw::Read)?;
    let q = Arc::new(FutexQ {
        mm: AtomicUsize::new(key),
        uaddr: AtomicU64::new(kaddr),
        bitset,
        woken: AtomicBool::new(false),
        wq: WaitQueue::new("futex.q"),
    });
    loop {
        let mut b = BUCKETS[bucket_of(key, kaddr)].lock();
        match get_value_locked(mm, uaddr) {
            None => {
                drop(b);
                fault_in_user(mm, uaddr, false)?;
            }
            Some(v) if v != val => return Err(EAGAIN),
            Some(_) => {
                b.push(q.clone());
                break;
            }
        }
    }
    NR_WAITS.fetch_add(1, Ordering::Relaxed);
    let res = q.wq.wait_until_interruptible_deadline(
        || q.woken.load(Ordering::Acquire),
        deadline_ns.unwrap_or(u64::MAX),
    );
    // A waker takes the waiter off its bucket before waking it: off the
    // bucket means woken, whatever ended the sleep.
    if !unqueue(&q) {
        return Ok(0);
    }
    match (res, deadline_ns) {
        (Ok(_), _) => Err(ETIMEDOUT),
        (Err(_), None) => Err(super::signal::ERESTARTSYS),
        (Err(_), Some(deadline_ns)) => {
            if let Some(t) = super::thread::current_thread() {
                t.sig.lock().restart = Some(super::signal::RestartBlock::FutexWait {
                    uaddr,
                    val,
                    bitset,
                    deadline_ns,
                    shared,
                });
            }
            Err(super::signal::ERESTART_RESTARTBLOCK)
        }
    }
}

/// Wakes waiters of `bucket` on `(mm, uaddr)` whose bitset meets `bitset`:
/// at most `nr` of them, but at least one (Linux's `++ret >= nr_wake`
/// test). Returns how many.
fn wake_locked(b: &mut Vec<Arc<FutexQ>>, mm: usize, uaddr: u64, nr: i32, bitset: u32) -> u64 {
    let mut woken = 0u64;
    let mut i = 0;
    while i < b.len() {
        let q = &b[i];
        if q.mm.load(Ordering::Relaxed) != mm
            || q.uaddr.load(Ordering::Relaxed) != uaddr
            || q.bitset & bitset == 0
        {
            i += 1;
            continue;
        }
        wake_q(b.remove(i));
        woken += 1;
        if woken >= i64::from(nr).max(1) as u64 {
            break;
        }
    }
    woken
}

/// `FUTEX_WAKE` / `FUTEX_WAKE_BITSET`: wakes up to `nr` waiters on
/// `uaddr` (see [`wake_locked`]), keyed as a shared futex if `shared`;
/// returns how many (`EINVAL` for an empty bitset, or the key's errors).
pub fn wake(mm: &KMm, uaddr: u64, nr: i32, bitset: u32, shared: bool) -> Result<u64, Errno> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let (key, kaddr) = get_futex_key(mm, uaddr, shared, Rw::Read)?;
    let mut b = BUCKETS[bucket_of(key, kaddr)].lock();
    Ok(wake_locked(&mut b, key, kaddr, nr, bitset))
}

/// `FUTEX_REQUEUE` / `FUTEX_CMP_REQUEUE`: wakes `nr_wake` waiters of
/// `uaddr1` and moves up to `nr_requeue` more to `uaddr2`, after checking
/// `*uaddr1 == cmp` (`EAGAIN`) if given; returns woken + moved.
fn requeue(
    mm: &KMm,
    uaddr1: u64,
    uaddr2: u64,
    nr_wake: i32,
    nr_requeue: i32,
    cmp: Option<u32>,
    shared: bool,
) -> Result<u64, Errno> {
    if nr_wake < 0 || nr_requeue < 0 {
        return Err(Errno::EINVAL);
    }
    let (k1, a1) = get_futex_key(mm, uaddr1, shared, Rw::Read)?;
    let (k2, a2) = get_futex_key(mm, uaddr2, shared, Rw::Read)?;
    let (b1, b2) = (bucket_of(k1, a1), bucket_of(k2, a2));
    loop {
        let mut locks = DoubleLock::new(b1, b2);
        if let Some(cmp) = cmp {
            match get_value_locked(mm, uaddr1) {
                None => {
                    drop(locks);
                    fault_in_user(mm, uaddr1, false)?;
                    continue;
                }
                Some(v) if v != cmp => return Err(EAGAIN),
                Some(_) => {}
            }
        }
        let (hb1, mut hb2) = locks.get();
        let mut count: i64 = 0;
        let mut i = 0;
        while i < hb1.len() {
            if count - i64::from(nr_wake) >= i64::from(nr_requeue) {
                break;
            }
            let q = &hb1[i];
            if q.mm.load(Ordering::Relaxed) != k1 || q.uaddr.load(Ordering::Relaxed) != a1 {
                i += 1;
                continue;
            }
            count += 1;
            if count <= i64::from(nr_wake) {
                wake_q(hb1.remove(i));
                continue;
            }
            // Requeue (F1: both buckets are locked).
            q.mm.store(k2, Ordering::Release);
            q.uaddr.store(a2, Ordering::Release);
            if let Some(hb2) = hb2.as_deref_mut() {
                let q = hb1.remove(i);
                hb2.push(q);
            } else {
                i += 1;
            }
        }
        return Ok(count as u64);
    }
}

/// `FUTEX_WAKE_OP`'s operation on the word at `uaddr2`: returns the old
/// value, or `None` if the page is not there; `Err(ENOSYS)` for an
/// unknown op (nothing written).
fn atomic_op_locked(mm: &KMm, uaddr: u64, op: u32, oparg: i32) -> Result<Option<u32>, Errno> {
    let arg = oparg as u32;
    let f = match op {
        0 => |_: u32, a: u32| a,
        1 => |v: u32, a: u32| v.wrapping_add(a),
        2 => |v: u32, a: u32| v | a,
        3 => |v: u32, a: u32| v & !a,
        4 => |v: u32, a: u32| v ^ a,
        _ => return Err(Errno::ENOSYS),
    };
    Ok(with_user_u32_nofault(mm, uaddr, true, |w| {
        let mut old = w.load(Ordering::Relaxed);
        loop {
            match w.compare_exchange(old, f(old, arg), Ordering::SeqCst, Ordering::Relaxed) {
                Ok(v) => break v,
                Err(v) => old = v,
            }
        }
    }))
}

/// `FUTEX_WAKE_OP`: applies the encoded op to `*uaddr2`, wakes up to
/// `nr_wake` waiters of `uaddr1`, and up to `nr_wake2` of `uaddr2` if the
/// encoded comparison of the old value holds. A shift argument outside
/// 0..=31 is taken modulo 32, as Linux does (it logs "fix this program"
/// and goes on).
fn wake_op(
    mm: &KMm,
    uaddr1: u64,
    uaddr2: u64,
    nr_wake: i32,
    nr_wake2: i32,
    encoded: u32,
    shared: bool,
) -> Result<u64, Errno> {
    let op = (encoded >> 28) & 7;
    let cmp = (encoded >> 24) & 15;
    let mut oparg = (((encoded >> 12) & 0xfff) << 20) as i32 >> 20;
    let cmparg = ((encoded & 0xfff) << 20) as i32 >> 20;
    if encoded & (8 << 28) != 0 {
        oparg = 1 << (oparg & 31);
    }
    let (k1, a1) = get_futex_key(mm, uaddr1, shared, Rw::Read)?;
    let (k2, a2) = get_futex_key(mm, uaddr2, shared, Rw::Write)?;
    let (b1, b2) = (bucket_of(k1, a1), bucket_of(k2, a2));
    loop {
        let mut locks = DoubleLock::new(b1, b2);
        let old = match atomic_op_locked(mm, uaddr2, op, oparg)? {
            Some(old) => old as i32,
            None => {
                drop(locks);
                fault_in_user(mm, uaddr2, true)?;
                continue;
            }
        };
        let hit = match cmp {
            0 => old == cmparg,
            1 => old != cmparg,
            2 => old < cmparg,
            3 => old <= cmparg,
            4 => old > cmparg,
            5 => old >= cmparg,
            _ => return Err(Errno::ENOSYS),
        };
        let (hb1, hb2) = locks.get();
        let mut n = wake_locked(hb1, k1, a1, nr_wake, BITSET_MATCH_ANY);
        if hit {
            let hb2 = match hb2 {
                Some(hb2) => hb2,
                None => hb1,
            };
            n += wake_locked(hb2, k2, a2, nr_wake2, BITSET_MATCH_ANY);
        }
        return Ok(n);
    }
}

/// Reads a `struct timespec` for a futex timeout (`EINVAL` if invalid).
fn read_timeout(mm: &KMm, at: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    copy_from_user(mm, &mut b, at)?;
    let (sec, nsec) = (le64(&b, 0) as i64, le64(&b, 8) as i64);
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64))
}

/// `futex(uaddr, op, val, timeout/val2, uaddr2, val3)` (Linux's
/// `do_futex` with the syscall's argument rules).
pub fn sys_futex(
    mm: &KMm,
    uaddr: u64,
    op: u32,
    val: u32,
    utime: u64,
    uaddr2: u64,
    val3: u32,
) -> Result<u64, Errno> {
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    // The timeout is read and checked first (`EFAULT`, `EINVAL`), for
    // every command that takes one, before the flags are judged.
    // Deadlines on the boot clock (`time::now_ns`, which MONOTONIC is): a
    // relative FUTEX_WAIT timeout from now; FUTEX_WAIT_BITSET's absolute
    // one as given, or moved from the wall clock (FUTEX_CLOCK_REALTIME).
    let deadline = match cmd {
        FUTEX_WAIT | FUTEX_LOCK_PI | FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI | FUTEX_LOCK_PI2
            if utime != 0 =>
        {
            let t = read_timeout(mm, utime)?;
            let now = crate::time::now_ns();
            Some(if cmd == FUTEX_WAIT {
                now.saturating_add(t)
            } else if op & FUTEX_CLOCK_REALTIME != 0 {
                now.saturating_add(t.saturating_sub(crate::time::rtc::realtime_ns()))
            } else {
                t
            })
        }
        _ => None,
    };
    if op & FUTEX_CLOCK_REALTIME != 0
        && !matches!(
            cmd,
            FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI | FUTEX_LOCK_PI2
        )
    {
        return Err(Errno::ENOSYS);
    }
    let val2 = utime as u32 as i32;
    let shared = op & FUTEX_PRIVATE_FLAG == 0;
    match cmd {
        FUTEX_WAIT => wait(mm, uaddr, val, deadline, BITSET_MATCH_ANY, shared),
        FUTEX_WAIT_BITSET => wait(mm, uaddr, val, deadline, val3, shared),
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE {
                BITSET_MATCH_ANY
            } else {
                val3
            };
            wake(mm, uaddr, val as i32, bitset, shared)
        }
        FUTEX_REQUEUE => requeue(mm, uaddr, uaddr2, val as i32, val2, None, shared),
        FUTEX_CMP_REQUEUE => requeue(mm, uaddr, uaddr2, val as i32, val2, Some(val3), shared),
        FUTEX_WAKE_OP => wake_op(mm, uaddr, uaddr2, val as i32, val2, val3, shared),
        _ => Err(Errno::ENOSYS),
    }
}

/// What `handle_futex_death` does with one robust futex of a dying
/// thread `tid`: if the thread owns it, mark it `FUTEX_OWNER_DIED` (keeping
/// `FUTEX_WAITERS`) and wake one waiter; a pending op's word that is 0 gets
/// a wake too. Faults end the walk (`Err`).
fn handle_futex_death(mm: &KMm, uaddr: u64, tid: u32, pi: bool, pending: bool) -> Result<(), ()> {
    if check_addr(uaddr).is_err() {
        return Err(());
    }
    loop {
        let mut v = [0u8; 4];
        copy_from_user(mm, &mut v, uaddr).map_err(|_| ())?;
        let uval = u32::from_le_bytes(v);
        if pending && !pi && uval == 0 {
            let _ = wake(mm, uaddr, 1, BITSET_MATCH_ANY, true);
            return Ok(());
        }
        if uval & FUTEX_TID_MASK != tid {
            return Ok(());
        }
        let mval = (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        let swapped = with_user_u32_nofault(mm, uaddr, true, |w| {
            w.compare_exchange(uval, mval, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        match swapped {
            None => fault_in_user(mm, uaddr, true).map_err(|_| ())?,
            Some(false) => continue,
            Some(true) => {
                if !pi && uval & FUTEX_WAITERS != 0 {
                    let _ = wake(mm, uaddr, 1, BITSET_MATCH_ANY, true);
                }
                return Ok(());
            }
        }
    }
}

/// Reads one user word; `Err` on a fault.
fn read_word(mm: &KMm, at: u64) -> Result<u64, ()> {
    let mut b = [0u8; 8];
    copy_from_user(mm, &mut b, at).map_err(|_| ())?;
    Ok(u64::from_le_bytes(b))
}

/// Walks the robust list at `head` of exiting thread `tid` (Linux's
/// `exit_robust_list`): `struct robust_list_head { next; futex_offset;
/// list_op_pending }`, entries whose bit 0 flags a PI futex, the futex
/// word at `entry + futex_offset`; at most [`ROBUST_LIST_LIMIT`] entries;
/// the pending op's futex last. A fault anywhere ends the walk.
pub fn exit_robust_list(mm: &KMm, head: u64, tid: u32) {
    let _ = walk_robust_list(mm, head, tid);
}

fn walk_robust_list(mm: &KMm, head: u64, tid: u32) -> Result<(), ()> {
    let fetch = |at: u64| -> Result<(u64, bool), ()> {
        let e = read_word(mm, at)?;
        Ok((e & !1, e & 1 != 0))
    };
    let (mut entry, mut pi) = fetch(head)?;
    let offset = read_word(mm, head + 8)? as i64;
    let (pending, pending_pi) = fetch(head + 16)?;
    let mut limit = ROBUST_LIST_LIMIT;
    while entry != head {
        // Fetch the next entry before the futex is released: the owner of
        // the next lock may free this entry once it is.
        let next = fetch(entry);
        if entry != pending {
            handle_futex_death(mm, entry.wrapping_add(offset as u64), tid, pi, false)?;
        }
        let (n, npi) = next?;
        entry = n;
        pi = npi;
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending != 0 {
        handle_futex_death(
            mm,
            pending.wrapping_add(offset as u64),
            tid,
            pending_pi,
            true,
        )?;
    }
    Ok(())
}

/// The count of queued waiters (racy; for tests).
pub fn nr_queued() -> usize {
    BUCKETS.iter().map(|b| b.lock().len()).sum()
}

/// Whether any waiter is queued on `(mm, uaddr)`, private key (for tests).
pub fn has_waiters(mm: &KMm, uaddr: u64) -> bool {
    let key = mm_key(mm);
    BUCKETS[bucket_of(key, uaddr)]
        .lock()
        .iter()
        .any(|q| q.mm.load(Ordering::Relaxed) == key && q.uaddr.load(Ordering::Relaxed) == uaddr)
}

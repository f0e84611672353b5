//! Callback heads and the per-CPU callback list.
//!
//! An [`RcuHead`] lives inside the object to be freed (Linux's
//! `struct rcu_head`), so queueing a callback never allocates: call_rcu is
//! safe to use from allocator and page-table freeing paths. Each CPU keeps
//! its callbacks in one FIFO; every head records the grace-period number it
//! waits for, and since those numbers never decrease along the list, the
//! ready callbacks are always a prefix.
//!
//! # Invariants
//!
//! - H1: a head is on at most one list; while queued its `func` is `Some`.
//! - H2: `gp_seq` values along a list never decrease.
//!
//! This is one of the few modules that use `unsafe`: the lists link raw
//! pointers to heads owned by their callers until the callback runs.

use core::ptr;

/// What a callback does with its head (usually: free the enclosing object).
///
/// # Safety
///
/// Called once, after a grace period, with the head passed to `call_rcu`.
pub type RcuCallback = unsafe fn(*mut RcuHead);

/// The link embedded in an object freed through RCU (`struct rcu_head`).
#[repr(C)]
pub struct RcuHead {
    next: *mut RcuHead,
    func: Option<RcuCallback>,
    /// The grace-period sequence number that must be reached first.
    gp_seq: u64,
}

// SAFETY: a head's fields are touched only by RCU, under its CPU's list
// lock while queued, and by the callback that owns it afterwards; sharing
// the enclosing object between threads shares no unsynchronised access.
unsafe impl Send for RcuHead {}
// SAFETY: `&RcuHead` gives no access to its fields, so sharing one shares nothing unsynchronised.
unsafe impl Sync for RcuHead {}

impl RcuHead {
    /// A head that is not queued.
    pub const fn new() -> Self {
        Self {
            next: ptr::null_mut(),
            func: None,
            gp_seq: 0,
        }
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        Self::new()
    }
}

/// A FIFO of heads (one CPU's callbacks). Lives inside a lock.
pub(super) struct CbList {
    head: *mut RcuHead,
    tail: *mut RcuHead,
    len: usize,
}

// SAFETY: the list only holds pointers to heads whose owners handed them
// over with `call_rcu`; it is always accessed under its CPU's lock, so
// moving it between threads moves exclusive access along with it.
unsafe impl Send for CbList {}

impl CbList {
    pub(super) const fn new() -> Self {
        Self {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
        }
    }

    /// Appends `head` waiting for `gp_seq`. Returns `false` (and does
    /// nothing) if the head is already queued (a double `call_rcu`).
    ///
    /// # Safety
    ///
    /// `head` is valid, not moved or freed until its callback runs, and
    /// `gp_seq` is not below the last queued one (H2).
    pub(super) unsafe fn push(
        &mut self,
        head: *mut RcuHead,
        func: RcuCallback,
        gp_seq: u64,
    ) -> bool {
        // SAFETY: valid per the caller; we hold the list lock, and a head
        // that is not queued is touched by no one else.
        let h = unsafe { &mut *head };
        if h.func.is_some() {
            return false;
        }
        debug_assert!(
            self.tail.is_null() || {
                // SAFETY: the tail is a queued, valid head (H1).
                unsafe { (*self.tail).gp_seq <= gp_seq }
            }
        );
        h.next = ptr::null_mut();
        h.func = Some(func);
        h.gp_seq = gp_seq;
        if self.tail.is_null() {
            self.head = head;
        } else {
            // SAFETY: the tail is a queued, valid head (H1), ours under the lock.
            unsafe { (*self.tail).next = head };
        }
        self.tail = head;
        self.len += 1;
        true
    }

    /// Whether the first callback's grace period `done` says is over.
    pub(super) fn first_ready(&self, done: impl Fn(u64) -> bool) -> bool {
        // SAFETY: a non-null head is a queued, valid head (H1).
        !self.head.is_null() && done(unsafe { (*self.head).gp_seq })
    }

    /// Detaches the prefix of callbacks whose grace period is over.
    pub(super) fn take_ready(&mut self, done: impl Fn(u64) -> bool) -> ReadyList {
        let first = self.head;
        let mut last: *mut RcuHead = ptr::null_mut();
        let mut n = 0;
        let mut cur = self.head;
        // SAFETY: every head on the list is queued and valid (H1).
        while !cur.is_null() && done(unsafe { (*cur).gp_seq }) {
            last = cur;
            // SAFETY: `cur` is a queued head of this list, valid (H1).
            cur = unsafe { (*cur).next };
            n += 1;
        }
        if n == 0 {
            return ReadyList {
                head: ptr::null_mut(),
                len: 0,
            };
        }
        // SAFETY: `last` is a queued head of this list.
        unsafe { (*last).next = ptr::null_mut() };
        self.head = cur;
        if cur.is_null() {
            self.tail = ptr::null_mut();
        }
        self.len -= n;
        ReadyList {
            head: first,
            len: n,
        }
    }
}

/// Callbacks taken off a list, to be invoked without the lock held.
pub(super) struct ReadyList {
    head: *mut RcuHead,
    len: usize,
}

impl ReadyList {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Invokes every callback in order.
    pub(super) fn invoke(self) {
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: the heads were queued (H1) and are ours now: detached
            // from the list, so no other code can reach them. Read `next`
            // and `func` before the callback frees the enclosing object;
            // clear `func` first so that the object may be queued again.
            let (next, func) = unsafe {
                let h = &mut *cur;
                (h.next, h.func.take())
            };
            if let Some(func) = func {
                // SAFETY: the callback's contract: called once, after the
                // grace period its head waited for (take_ready's check).
                unsafe { func(cur) };
            }
            cur = next;
        }
    }
}

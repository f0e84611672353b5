//! Preemption control (Linux's `include/linux/preempt.h`).
//!
//! [`preempt_disable`] adds one to this CPU's preempt count, a single
//! `gs:`-relative instruction; while the count is above 0 the running task
//! is not switched out, neither by the tick nor by a wakeup, so it stays on
//! this CPU and per-CPU data stays its own. [`preempt_enable`] takes one
//! off; when that reaches 0 with a reschedule pending (the slice ran out
//! meanwhile), it preempts right there if interrupts are on and the caller
//! is not in an interrupt handler (Linux's `preempt_schedule`).
//!
//! # Context
//!
//! Any context. Unbalanced calls are reported: `preempt_enable` at count 0
//! panics with `BUG: preempt count underflow`.
#![forbid(unsafe_code)]

use super::core::preempt_schedule;
use crate::percpu;

/// Disables preemption on this CPU (nests).
#[inline]
pub fn preempt_disable() {
    percpu::preempt_count_inc();
}

/// Undoes one [`preempt_disable`]; at 0, reschedules if one is pending.
#[inline]
pub fn preempt_enable() {
    if percpu::preempt_count_dec_and_test() {
        if percpu::need_resched() {
            preempt_schedule();
        }
    } else if percpu::preempt_count() == u32::MAX {
        underflow();
    }
}

/// Undoes one [`preempt_disable`] without rescheduling (Linux's
/// `preempt_enable_no_resched`); a pending reschedule waits for the next
/// preemption point.
#[inline]
pub fn preempt_enable_no_resched() {
    if !percpu::preempt_count_dec_and_test() && percpu::preempt_count() == u32::MAX {
        underflow();
    }
}

#[cold]
fn underflow() -> ! {
    percpu::preempt_count_inc();
    panic!("BUG: preempt count underflow (preempt_enable without preempt_disable)")
}

/// Preemption stays disabled while this guard lives.
#[must_use = "preemption is re-enabled when the guard is dropped"]
pub struct PreemptGuard {
    /// Not Send: must be dropped on the CPU that created it.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl PreemptGuard {
    /// Disables preemption until the guard is dropped.
    pub fn new() -> Self {
        preempt_disable();
        Self {
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Default for PreemptGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreemptGuard {
    fn drop(&mut self) {
        preempt_enable();
    }
}

//! Sleep timers: wake a task at a deadline (Linux's `schedule_timeout` and
//! the timer wheel's expiry in `run_local_timers`, at tick resolution).
//!
//! Each CPU keeps an unsorted list of `(deadline, task)`; the tick wakes
//! every task whose deadline has passed. A sleep therefore ends on the
//! first tick at or after its deadline: up to one tick ([`TICK_NS`], 4 ms)
//! late, as `msleep` on Linux. Lists stay short (one entry per sleeping
//! task), so expiry scans them.
//!
//! # Invariants
//!
//! - M1: an entry is on the list of its task's CPU from just before the task
//!   sleeps until it expires or the task removes it after waking; a task
//!   has at most one entry (it can be in only one `schedule_timeout`).
//!
//! # Locking
//!
//! The per-CPU list lock is taken alone: expiry pops one entry under it,
//! drops it, then wakes the task (runqueue lock).
//!
//! [`TICK_NS`]: crate::time::TICK_NS
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::core::{current, schedule, try_to_wake_up};
use super::task::Task;
use crate::percpu::MAX_CPUS;
use crate::sync::SpinLock;

/// One pending wakeup.
struct SleepTimer {
    deadline_ns: u64,
    id: u64,
    task: Arc<Task>,
}

/// Pending wakeups, by CPU (M1).
static TIMERS: [SpinLock<Vec<SleepTimer>>; MAX_CPUS] =
    [const { SpinLock::new("sleep_timers", Vec::new()) }; MAX_CPUS];

/// Ids telling entries apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sleeps until woken or until `now_ns() >= deadline_ns`, whichever comes
/// first (Linux's `schedule_timeout`): the caller has set its state to a
/// sleeping one, as for `schedule()`.
pub fn schedule_timeout(deadline_ns: u64) {
    let task = current();
    let cpu = task.cpu() as usize;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    TIMERS[cpu].lock().push(SleepTimer {
        deadline_ns,
        id,
        task,
    });
    schedule();
    TIMERS[cpu].lock().retain(|t| t.id != id);
}

/// Wakes the tasks of this CPU whose deadline is at or before `now` (the
/// tick; hard-IRQ context).
pub(super) fn run_local_timers(now: u64) {
    let cpu = crate::percpu::cpu_id() as usize;
    loop {
        let expired = {
            let mut timers = TIMERS[cpu].lock();
            match timers.iter().position(|t| t.deadline_ns <= now) {
                Some(i) => timers.swap_remove(i),
                None => return,
            }
        };
        try_to_wake_up(&expired.task);
    }
}

/// Pending sleep timers on all CPUs (for tests).
pub fn nr_pending() -> usize {
    TIMERS.iter().map(|t| t.lock().len()).sum()
}

//! Wait queues (Linux's `wait_queue_head` and `wait_event`,
//! `kernel/sched/wait.c`).
//!
//! A task that waits for a condition:
//!
//! ```text
//!   loop {
//!       prepare_to_wait(wq, state)   // queue self, set_current_state(state)
//!       if cond() { break }          // checked *after* the state is set
//!       schedule()                   // sleeps unless a wakeup came meanwhile
//!   }
//!   finish_wait(wq)                  // RUNNING, off the queue
//! ```
//!
//! A waker makes the condition true, then calls [`WaitQueue::wake_one`] or
//! [`WaitQueue::wake_all`], which dequeue waiters and `try_to_wake_up` them.
//! No wakeup is lost: a waker that runs between the waiter's check and its
//! `schedule()` finds it queued (it queued itself before the check) and
//! sets it RUNNING, so `schedule()` keeps it runnable. Entries are removed
//! when woken (Linux's `autoremove_wake_function`), and a woken waiter
//! always re-checks its condition, so `wake_one` needs no exclusive flag.
//!
//! # Locking
//!
//! The queue's lock is taken before a runqueue lock (wakeups run under it).
//!
//! # Context
//!
//! Waiting sleeps: task context, preemption and interrupts enabled
//! (checked: `BUG: sleeping function called from invalid context`). Waking
//! works in any context, hard IRQ included.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use super::core::{current, might_sleep, schedule, try_to_wake_up, with_current};
use super::task::{Task, TaskState};
use super::timer::schedule_timeout;
use crate::sync::SpinLock;
use crate::time;

/// An interruptible wait ended because a signal is pending (the caller
/// returns `-ERESTARTSYS`, `-EINTR` or the like: Linux's
/// `signal_pending(current)` after `wait_event_interruptible`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted;

/// A queue of sleeping tasks; see the module docs.
pub struct WaitQueue {
    /// Queued waiters, oldest first. Each task appears at most once.
    waiters: SpinLock<VecDeque<Arc<Task>>>,
}

impl WaitQueue {
    /// An empty queue; `name` shows in lock reports.
    pub const fn new(name: &'static str) -> Self {
        Self {
            waiters: SpinLock::new(name, VecDeque::new()),
        }
    }

    /// Queues the running task (once) and sets its state to `state`
    /// (Linux's `prepare_to_wait`). Follow with a check of the condition,
    /// then `schedule()` or [`schedule_timeout`], then [`Self::finish_wait`].
    pub fn prepare_to_wait(&self, state: TaskState) {
        debug_assert!(matches!(
            state,
            TaskState::Interruptible | TaskState::Uninterruptible | TaskState::Idle
        ));
        let task = current();
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|t| Arc::ptr_eq(t, &task)) {
            waiters.push_back(task.clone());
        }
        task.set_state(state);
    }

    /// Sets the running task RUNNING and takes it off the queue if a wakeup
    /// has not already (Linux's `finish_wait`).
    pub fn finish_wait(&self) {
        let task = current();
        task.set_state(TaskState::Running);
        self.waiters.lock().retain(|t| !Arc::ptr_eq(t, &task));
    }

    /// Sleeps UNINTERRUPTIBLE until `cond()` holds (Linux's `wait_event`):
    /// checked before sleeping and after every wakeup. A sleep longer than
    /// `HUNG_TASK_TIMEOUT_NS` is reported as a hung task. Task context only.
    pub fn wait_until(&self, cond: impl FnMut() -> bool) {
        self.wait_until_state(cond, TaskState::Uninterruptible);
    }

    /// Like [`Self::wait_until`], but sleeps IDLE (Linux's
    /// `wait_event_idle`): for threads that wait for work for as long as
    /// there is none, which the hung-task check must not report.
    pub fn wait_until_idle(&self, cond: impl FnMut() -> bool) {
        self.wait_until_state(cond, TaskState::Idle);
    }

    fn wait_until_state(&self, mut cond: impl FnMut() -> bool, state: TaskState) {
        might_sleep();
        loop {
            self.prepare_to_wait(state);
            if cond() {
                break;
            }
            schedule();
        }
        self.finish_wait();
    }

    /// Like [`Self::wait_until`], but gives up `timeout_ns` after the call
    /// (Linux's `wait_event_timeout`). Returns whether `cond()` held.
    pub fn wait_until_timeout(&self, mut cond: impl FnMut() -> bool, timeout_ns: u64) -> bool {
        might_sleep();
        let deadline = time::now_ns().saturating_add(timeout_ns);
        let met = loop {
            self.prepare_to_wait(TaskState::Interruptible);
            if cond() {
                break true;
            }
            if time::now_ns() >= deadline {
                break false;
            }
            schedule_timeout(deadline);
        };
        self.finish_wait();
        met
    }

    /// Sleeps INTERRUPTIBLE until `cond()` holds or a signal is pending
    /// (Linux's `wait_event_interruptible`); the condition wins when both
    /// hold. Task context only.
    pub fn wait_until_interruptible(&self, cond: impl FnMut() -> bool) -> Result<(), Interrupted> {
        self.wait_until_interruptible_deadline(cond, u64::MAX)
            .map(|_| ())
    }

    /// Like [`Self::wait_until_interruptible`], but gives up at
    /// `deadline_ns` (`time::now_ns`; `u64::MAX`: never). `Ok(met)` says
    /// whether `cond()` held (Linux's
    /// `wait_event_interruptible_hrtimeout`).
    pub fn wait_until_interruptible_deadline(
        &self,
        mut cond: impl FnMut() -> bool,
        deadline_ns: u64,
    ) -> Result<bool, Interrupted> {
        might_sleep();
        let res = loop {
            self.prepare_to_wait(TaskState::Interruptible);
            if cond() {
                break Ok(true);
            }
            if with_current(|t| t.sigpending()) {
                break Err(Interrupted);
            }
            if deadline_ns == u64::MAX {
                schedule();
            } else if time::now_ns() >= deadline_ns {
                break Ok(false);
            } else {
                schedule_timeout(deadline_ns);
            }
        };
        self.finish_wait();
        res
    }

    /// Wakes the oldest waiter, if any (Linux's `wake_up` with one exclusive
    /// waiter). Returns whether there was one.
    pub fn wake_one(&self) -> bool {
        let mut waiters = self.waiters.lock();
        match waiters.pop_front() {
            Some(task) => {
                try_to_wake_up(&task);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter (Linux's `wake_up_all`). Returns how many there
    /// were.
    pub fn wake_all(&self) -> usize {
        let mut waiters = self.waiters.lock();
        let n = waiters.len();
        while let Some(task) = waiters.pop_front() {
            try_to_wake_up(&task);
        }
        n
    }

    /// Whether any task waits (racy).
    pub fn has_waiters(&self) -> bool {
        !self.waiters.lock().is_empty()
    }

    /// Whether the running task is queued here (for tests).
    pub fn is_queued_current(&self) -> bool {
        with_current(|me| self.waiters.lock().iter().any(|t| core::ptr::eq(&**t, me)))
    }
}

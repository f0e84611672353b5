//! Model 2: the per-CPU `LocalTryLock` (Linux's `local_trylock_t`).
//!
//! Follows `mm/src/sync.rs`:
//! - `PerCpuSlots::try_acquire`: `compare_exchange(FREE, owner, Acquire,
//!   Relaxed)` on the CPU's `owner` byte;
//! - `LocalGuard::drop`: `owner.store(FREE, Release)`;
//! - `lock_slots` (`LocalTryLock::lock`): spins on `try_acquire(cpu,
//!   LOCAL)`, asserting that the holder is not `LOCAL` ("taken recursively
//!   ... an interrupt handler must use try_lock");
//! - `LocalTryLock::try_lock`: one `try_acquire(cpu, LOCAL)`, `None` on
//!   failure, never waits;
//! - `LocalTryLock::lock_on`: another CPU's copy as `REMOTE`, spinning.
//!
//! The protected data is a loom `UnsafeCell`, so loom reports any two
//! accesses that the lock fails to order.
//!
//! An interrupt cannot be a loom thread: a handler runs to completion on
//! its CPU while the interrupted task waits, which a separate thread would
//! not respect (the task could spin on a lock the "handler" holds and trip
//! the recursion assert falsely). So the interrupt runs inline on CPU 0's
//! thread at one of the task's program points (before the lock, inside
//! the critical section before and after its update, after the unlock),
//! one model run per point, while CPU 1 flushes CPU 0's copy with
//! `lock_on` (as `flush_cpu_sheaves` does) in every interleaving.
//!
//! Checked: no unordered access to the data (loom), a handler's trylock
//! fails exactly when CPU 0's task holds the lock, and no update is lost
//! (the flushed plus the remaining count equals the successful updates).

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const FREE: u8 = 0;
const LOCAL: u8 = 1;
const REMOTE: u8 = 2;

/// How the model deviates from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Faithful,
    /// The acquiring compare-exchange is `Relaxed` on success.
    RelaxedAcquire,
    /// The guard's release store is `Relaxed`.
    RelaxedRelease,
    /// `try_lock` tests `owner == FREE` with a load, then stores `LOCAL`.
    TestThenSet,
    /// The interrupt handler calls `lock` instead of `try_lock`.
    LockInIrq,
}

/// Where the interrupt arrives in CPU 0's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqAt {
    BeforeLock,
    InsideBeforeUpdate,
    InsideAfterUpdate,
    AfterUnlock,
}

pub const IRQ_POINTS: [IrqAt; 4] = [
    IrqAt::BeforeLock,
    IrqAt::InsideBeforeUpdate,
    IrqAt::InsideAfterUpdate,
    IrqAt::AfterUnlock,
];

struct Slot<T> {
    owner: AtomicU8,
    /// The per-CPU data.
    data: UnsafeCell<T>,
}

/// `LocalTryLock<T>` for two CPUs.
pub struct LocalTryLock<T> {
    slots: [Slot<T>; 2],
    variant: Variant,
}

/// `LocalGuard`.
pub struct Guard<'a, T> {
    lock: &'a LocalTryLock<T>,
    cpu: usize,
}

impl<T> Guard<'_, T> {
    /// The CPU whose copy this is.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Runs `f` on the CPU's copy (`Deref`/`DerefMut` of the code's guard).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.slots[self.cpu].data.with_mut(|d| {
            // SAFETY: the guard holds the CPU's copy (L1: at most one guard
            // per copy), and `&mut self` keeps this borrow unique; loom
            // checks that the previous holder's accesses happened before
            // this one.
            f(unsafe { &mut *d })
        })
    }
}

impl Guard<'_, u64> {
    fn add(&mut self, n: u64) {
        self.with(|d| *d += n);
    }

    fn take(&mut self) -> u64 {
        self.with(std::mem::take)
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // A failed check unwinds out of the loom execution, where loom's
        // atomics may no longer be touched.
        if std::thread::panicking() {
            return;
        }
        let order = if self.lock.variant == Variant::RelaxedRelease {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.lock.slots[self.cpu].owner.store(FREE, order);
    }
}

impl<T> LocalTryLock<T> {
    /// One copy per CPU, made by `init`.
    pub fn new(variant: Variant, mut init: impl FnMut(usize) -> T) -> Self {
        let mut slot = |cpu| Slot {
            owner: AtomicU8::new(FREE),
            data: UnsafeCell::new(init(cpu)),
        };
        Self {
            slots: [slot(0), slot(1)],
            variant,
        }
    }

    /// `PerCpuSlots::try_acquire`.
    fn try_acquire(&self, cpu: usize, owner: u8) -> Result<(), u8> {
        let success = if self.variant == Variant::RelaxedAcquire {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        self.slots[cpu]
            .owner
            .compare_exchange(FREE, owner, success, Ordering::Relaxed)
            .map(|_| ())
    }

    /// `lock_slots` on the current CPU (`LocalTryLock::lock`). Where the
    /// code asserts that the holder is not this CPU, the model returns the
    /// report instead: panicking while CPU 1's thread is still running
    /// would unwind through loom objects outside loom's scheduler, so the
    /// caller panics with the report once the threads are joined.
    pub fn lock(&self, cpu: usize) -> Result<Guard<'_, T>, String> {
        while let Err(owner) = self.try_acquire(cpu, LOCAL) {
            if owner == LOCAL {
                return Err(format!(
                    "BUG: localtry_lock taken recursively on CPU {cpu} (an interrupt handler must use try_lock)"
                ));
            }
            loom::hint::spin_loop();
        }
        Ok(Guard { lock: self, cpu })
    }

    /// `LocalTryLock::try_lock` on the current CPU.
    pub fn try_lock(&self, cpu: usize) -> Option<Guard<'_, T>> {
        if self.variant == Variant::TestThenSet {
            if self.slots[cpu].owner.load(Ordering::Acquire) != FREE {
                return None;
            }
            self.slots[cpu].owner.store(LOCAL, Ordering::Relaxed);
            return Some(Guard { lock: self, cpu });
        }
        self.try_acquire(cpu, LOCAL).ok()?;
        Some(Guard { lock: self, cpu })
    }

    /// `LocalTryLock::lock_on` from CPU `me`.
    pub fn lock_on(&self, me: usize, cpu: usize) -> Guard<'_, T> {
        let owner = if cpu == me { LOCAL } else { REMOTE };
        while let Err(held) = self.try_acquire(cpu, owner) {
            assert!(
                !(owner == LOCAL && held == LOCAL),
                "BUG: localtry_lock taken recursively on CPU {cpu}"
            );
            loom::hint::spin_loop();
        }
        Guard { lock: self, cpu }
    }
}

/// CPU 0's task counts one event under `lock`, with an interrupt at `irq`
/// that counts one under `try_lock` if it gets the lock; CPU 1 flushes
/// CPU 0's count with `lock_on`.
pub fn model(variant: Variant, irq: IrqAt) {
    let lock = Arc::new(LocalTryLock::new(variant, |_| 0u64));
    let flushed = Arc::new(AtomicUsize::new(0));
    let remote = {
        let (lock, flushed) = (lock.clone(), flushed.clone());
        loom::thread::spawn(move || {
            let n = lock.lock_on(1, 0).take();
            flushed.store(n as usize, Ordering::Relaxed);
        })
    };

    let mut handled = 0;
    let mut bug = None;
    let mut interrupt = |task_holds: bool| {
        // The handler: an allocation from interrupt context.
        let got = if variant == Variant::LockInIrq {
            lock.lock(0).map_err(|report| bug = Some(report)).ok()
        } else {
            lock.try_lock(0)
        };
        if task_holds && got.is_some() {
            bug = Some("an interrupt got the lock its task holds".to_string());
        }
        if let Some(mut g) = got {
            g.add(1);
            handled += 1;
        }
    };
    if irq == IrqAt::BeforeLock {
        interrupt(false);
    }
    {
        let mut g = lock.lock(0).expect("CPU 0's task holds nothing");
        if irq == IrqAt::InsideBeforeUpdate {
            interrupt(true);
        }
        g.add(1);
        if irq == IrqAt::InsideAfterUpdate {
            interrupt(true);
        }
    }
    if irq == IrqAt::AfterUnlock {
        interrupt(false);
    }

    remote.join().unwrap();
    if let Some(bug) = bug {
        panic!("{bug}");
    }
    let left = lock.lock(0).expect("all threads done").take();
    let total = flushed.load(Ordering::Relaxed) as u64 + left;
    assert_eq!(total, 1 + handled, "an update was lost");
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::PREEMPTIONS;

    #[test]
    fn localtry_lock() {
        for irq in IRQ_POINTS {
            crate::check(&format!("localtry (irq {irq:?})"), PREEMPTIONS, move || {
                model(Variant::Faithful, irq)
            });
        }
    }

    /// Runs the broken `variant` with the interrupt at each point until
    /// loom fails it; it must fail at one of them, for the expected reason.
    fn caught(name: &str, variant: Variant, expected: &[&str]) {
        for irq in IRQ_POINTS {
            let name = format!("localtry/{name} (irq {irq:?})");
            if let Err(message) = crate::try_check(&name, PREEMPTIONS, move || model(variant, irq))
            {
                assert!(
                    expected.iter().any(|e| message.contains(e)),
                    "{name}: caught, but for another reason: {message}"
                );
                println!("loom model {name}: caught: {message}");
                return;
            }
        }
        panic!("localtry/{name}: loom did not catch the broken variant");
    }

    #[test]
    fn localtry_relaxed_acquire_is_caught() {
        caught(
            "relaxed-acquire",
            Variant::RelaxedAcquire,
            &["Causality violation"],
        );
    }

    #[test]
    fn localtry_relaxed_release_is_caught() {
        caught(
            "relaxed-release",
            Variant::RelaxedRelease,
            &["Causality violation"],
        );
    }

    #[test]
    fn localtry_test_then_set_is_caught() {
        caught(
            "test-then-set",
            Variant::TestThenSet,
            &["Causality violation"],
        );
    }

    #[test]
    fn localtry_lock_in_irq_is_caught() {
        caught("lock-in-irq", Variant::LockInIrq, &["taken recursively"]);
    }
}

//! The kernel's spinlock: interrupts off while held (Linux's
//! `spin_lock_irqsave`), with lockup and recursion reports.
//!
//! Not `mm::sync`, which holds mm's per-CPU locks and bit spinlock.
//!
//! [`SpinLock::lock`] saves the interrupt state, disables interrupts and
//! spins; the guard restores the state when dropped. With interrupts off the
//! holder can be neither interrupted nor preempted on its CPU, so a lock
//! taken from both task and interrupt context cannot deadlock against
//! itself, and a preempted holder can never leave another task spinning on
//! the same CPU. Linux's plain `spin_lock` (preemption off, interrupts on) is
//! not offered: every kernel lock here is short.
//!
//! # Debugging (Linux's `CONFIG_DEBUG_SPINLOCK`)
//!
//! - A CPU that tries to take a lock it already holds panics with
//!   `BUG: spinlock recursion` and the lock's name (with interrupts off, the
//!   owner can only be the same code path: nothing else runs on that CPU).
//! - A CPU that spins longer than [`LOCKUP_NS`] panics with
//!   `BUG: spinlock lockup suspected`, naming the lock and the owner CPU.
//!
//! # Invariants
//!
//! - S1: `owner` is [`UNLOCKED`] or the CPU id of the holder; the data is
//!   accessed only by the holder (through the guard, or the raw API below).
//! - S2: the holder runs with interrupts disabled from acquisition to release.
//!
//! The scheduler hands its runqueue lock across a context switch (taken by
//! the task switching out, released by the task switching in), so it uses
//! the raw [`SpinLock::raw_lock`] / [`SpinLock::raw_unlock`] pair.
//!
//! # Context
//!
//! Any context except NMI and exception handlers (fatal paths take no locks),
//! from `percpu::init_boot_cpu` on: taking a lock reads the CPU id through
//! GS (percpu C2).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::percpu;

/// Value of `owner` when the lock is free.
const UNLOCKED: u32 = u32::MAX;

/// How long a CPU may spin on one lock before it reports a lockup.
pub const LOCKUP_NS: u64 = 5_000_000_000;

/// Spins between two looks at the clock while waiting.
const SPINS_PER_CLOCK_CHECK: u32 = 1 << 14;

/// A spinlock that keeps interrupts off while held; see the module docs.
pub struct SpinLock<T> {
    /// Shown in lockup and recursion reports.
    name: &'static str,
    /// [`UNLOCKED`] or the holder's CPU (S1). Acquire on taking pairs with
    /// the Release on dropping, ordering the critical sections.
    owner: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only by the one holder of the lock (S1), so
// sharing the lock between CPUs shares `T` only as a `Send` would.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: Send> Send for SpinLock<T> {}

/// Holds a [`SpinLock`]; releases it and restores interrupts when dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// Whether interrupts were enabled before `lock`.
    irqs_were_on: bool,
    /// Not Send: interrupts are restored on the CPU that disabled them.
    _not_send: core::marker::PhantomData<*const ()>,
}

/// Disables interrupts and returns whether they were on (`local_irq_save`).
#[inline]
pub fn irq_save() -> bool {
    let on = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    on
}

/// Re-enables interrupts if `was_on` (`local_irq_restore`).
#[inline]
pub fn irq_restore(was_on: bool) {
    if was_on {
        x86_64::instructions::interrupts::enable();
    }
}

impl<T> SpinLock<T> {
    /// A free lock named `name` around `data`.
    pub const fn new(name: &'static str, data: T) -> Self {
        Self {
            name,
            owner: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(data),
        }
    }

    /// Disables interrupts and takes the lock, spinning while it is busy.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let irqs_were_on = irq_save();
        self.raw_lock();
        SpinLockGuard {
            lock: self,
            irqs_were_on,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Takes the lock if it is free, without spinning.
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        let irqs_were_on = irq_save();
        let cpu = percpu::cpu_id();
        if self
            .owner
            .compare_exchange(UNLOCKED, cpu, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(SpinLockGuard {
                lock: self,
                irqs_were_on,
                _not_send: core::marker::PhantomData,
            })
        } else {
            irq_restore(irqs_were_on);
            None
        }
    }

    /// Takes the lock; the caller has disabled interrupts (S2) and must
    /// release it with [`SpinLock::raw_unlock`].
    pub fn raw_lock(&self) {
        debug_assert!(
            !x86_64::instructions::interrupts::are_enabled(),
            "raw_lock of {} with interrupts on",
            self.name
        );
        let cpu = percpu::cpu_id();
        let mut spins = 0u32;
        let mut since = None;
        loop {
            match self.owner.compare_exchange_weak(
                UNLOCKED,
                cpu,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(owner) if owner == cpu => {
                    panic!("BUG: spinlock recursion on CPU#{cpu}, lock {}", self.name)
                }
                Err(_) => {}
            }
            core::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(SPINS_PER_CLOCK_CHECK) {
                let now = crate::time::now_ns();
                let start = *since.get_or_insert(now);
                if now.saturating_sub(start) > LOCKUP_NS {
                    panic!(
                        "BUG: spinlock lockup suspected on CPU#{cpu}, lock {}, owner CPU#{}",
                        self.name,
                        self.owner.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }

    /// Releases a lock taken with [`SpinLock::raw_lock`].
    ///
    /// # Safety
    ///
    /// The lock is held, by this CPU, and no guard or reference obtained
    /// from [`SpinLock::data_ptr`] under this hold is used afterwards.
    pub unsafe fn raw_unlock(&self) {
        debug_assert_eq!(
            self.owner.load(Ordering::Relaxed),
            percpu::cpu_id(),
            "raw_unlock of {} by a CPU that does not hold it",
            self.name
        );
        self.owner.store(UNLOCKED, Ordering::Release);
    }

    /// The protected data, for holders of a raw lock. Dereferencing it is
    /// sound only while this CPU holds the lock (S1).
    pub fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    /// Whether some CPU holds the lock (racy; for assertions and reports).
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != UNLOCKED
    }

    /// The lock's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this CPU holds the lock (S1).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this CPU holds the lock (S1), and `&mut
        // self` that no other reference from this guard is live.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock, and is going away with every
        // reference it handed out.
        unsafe { self.lock.raw_unlock() };
        irq_restore(self.irqs_were_on);
    }
}

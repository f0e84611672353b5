//! Per-CPU locks and the bit spinlock (Linux's `local_lock_t`,
//! `localtry_lock_t` / `local_trylock_t`, and `bit_spin_lock`).
//!
//! Not `kernel::sync`, the kernel's own irqsave spinlock.
//!
//! - [`LocalLock`]: one `T` per CPU; the owner runs with preemption (and
//!   for `lock_irqsave`, interrupts) disabled, so it is alone with its CPU's
//!   copy. Never taken from interrupt context unless every task-context
//!   holder uses `lock_irqsave`.
//! - [`LocalTryLock`]: the same, plus [`LocalTryLock::try_lock`], which may
//!   be called from any context: if this CPU already holds the lock (an
//!   interrupt arrived while its task was inside), it fails instead of
//!   deadlocking or corrupting the per-CPU data. SLUB's sheaves use this
//!   (an interrupt-time allocation then falls back to the slab path).
//!   [`LocalTryLock::lock_on`] takes *another* CPU's copy, spinning while
//!   that CPU holds it, so that one CPU can flush every CPU's caches
//!   (`kmem_cache_shrink`). Linux runs such flushes on each CPU through a
//!   work item instead (`flush_all_cpus_locked`), which keeps its local lock
//!   free of atomics; the simulated machine has no way to run code on
//!   another CPU's thread, so here the lock is a real per-CPU spinlock, as
//!   PREEMPT_RT's `local_lock_t` and the page allocator's `pcp->lock` are.
//!   Its acquisition was an atomic exchange already (it is a compare and
//!   exchange now); only the owner's state is new.
//! - [`BitSpinLock`]: one bit of an atomic word used as a spinlock, the
//!   other bits left for the owner's data (folio MM-id slots share their
//!   word with such a lock bit).
//! - [`SpinLockIrq`]: a spinlock held with interrupts off
//!   (`spin_lock_irqsave()`), for the locks that interrupt context may
//!   take too (the zone lock, SLUB's `list_lock` and barn lock, RCU's
//!   locks). The one guard both unlocks and restores interrupts, in that
//!   order, so no caller pairs an `IrqGuard` with a lock by hand.
//!
//! # Invariants
//!
//! - L1: a CPU's `owner` is not `FREE` exactly while a guard for that CPU's
//!   copy exists, and at most one guard exists per copy (taken by compare
//!   and exchange from `FREE`). `LOCAL` is set and cleared by that CPU,
//!   `REMOTE` by the other CPU that called `lock_on`; both hold preemption
//!   disabled meanwhile.
//!
//! This is one of the few modules with `unsafe`: handing out `&mut T` to a
//! CPU's copy, justified by L1.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::addr::CpuId;
use crate::platform::{IrqGuard, IrqState, Platform};

/// `Slot::owner` values: free, held by its own CPU, held by another CPU.
const FREE: u8 = 0;
const LOCAL: u8 = 1;
const REMOTE: u8 = 2;

struct Slot<T> {
    /// [`FREE`], [`LOCAL`] or [`REMOTE`] (L1). Acquire on taking pairs with
    /// the Release of the previous guard's drop, so each holder sees the
    /// writes of the one before, even on another CPU.
    owner: AtomicU8,
    data: UnsafeCell<T>,
}

/// A `T` per CPU, guarded by the per-CPU `owner` state (L1).
struct PerCpuSlots<T> {
    slots: Box<[Slot<T>]>,
}

// SAFETY: each copy is only reachable through a guard, which exists on one
// CPU at a time (L1); moving or sharing the container shares no `&mut T`.
unsafe impl<T: Send> Sync for PerCpuSlots<T> {}
// SAFETY: moving the container moves the per-CPU copies, which are `Send`; guards borrow it, so
// none is live across the move.
unsafe impl<T: Send> Send for PerCpuSlots<T> {}

impl<T> PerCpuSlots<T> {
    fn new(nr_cpus: usize, init: impl FnMut(CpuId) -> T) -> Self {
        let mut init = init;
        Self {
            slots: (0..nr_cpus)
                .map(|c| Slot {
                    owner: AtomicU8::new(FREE),
                    data: UnsafeCell::new(init(CpuId::new(c as u32))),
                })
                .collect(),
        }
    }

    /// Claims `cpu`'s copy as `owner` ([`LOCAL`] or [`REMOTE`]);
    /// preemption must already be disabled. On failure, the current owner.
    #[inline]
    fn try_acquire(&self, cpu: CpuId, owner: u8) -> Result<(), u8> {
        self.slots[cpu.index()]
            .owner
            .compare_exchange(FREE, owner, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
    }
}

/// Access to one CPU's copy; releases on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LocalGuard<'a, T, P: Platform> {
    slots: &'a PerCpuSlots<T>,
    platform: &'a P,
    cpu: CpuId,
    irq: Option<IrqState>,
    /// Not Send: it must be released on the CPU that took it.
    _not_send: PhantomData<*const ()>,
}

impl<T, P: Platform> LocalGuard<'_, T, P> {
    /// The CPU whose copy this is.
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }
}

impl<T, P: Platform> Deref for LocalGuard<'_, T, P> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: L1: this guard is the only holder of this CPU's copy.
        unsafe { &*self.slots.slots[self.cpu.index()].data.get() }
    }
}

impl<T, P: Platform> DerefMut for LocalGuard<'_, T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: L1, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.slots.slots[self.cpu.index()].data.get() }
    }
}

impl<T, P: Platform> Drop for LocalGuard<'_, T, P> {
    #[inline]
    fn drop(&mut self) {
        self.slots.slots[self.cpu.index()]
            .owner
            .store(FREE, Ordering::Release);
        if let Some(irq) = self.irq {
            self.platform.irq_restore(irq);
        }
        self.platform.preempt_enable();
    }
}

fn lock_slots<'a, T, P: Platform>(
    slots: &'a PerCpuSlots<T>,
    platform: &'a P,
    irqsave: bool,
    what: &str,
) -> LocalGuard<'a, T, P> {
    platform.preempt_disable();
    let irq = irqsave.then(|| platform.irq_save());
    let cpu = platform.cpu_id();
    // Another CPU flushing ours (lock_on) lets go soon; this CPU holding
    // it already is a bug.
    while let Err(owner) = slots.try_acquire(cpu, LOCAL) {
        assert!(
            owner != LOCAL,
            "BUG: {what} taken recursively on CPU {} (an interrupt handler must use try_lock)",
            cpu.index()
        );
        core::hint::spin_loop();
    }
    LocalGuard {
        slots,
        platform,
        cpu,
        irq,
        _not_send: PhantomData,
    }
}

/// A per-CPU `T` protected by disabling preemption (`local_lock_t`).
pub struct LocalLock<T> {
    slots: PerCpuSlots<T>,
}

impl<T: Send> LocalLock<T> {
    /// One copy per CPU, made by `init`.
    pub fn new(nr_cpus: usize, init: impl FnMut(CpuId) -> T) -> Self {
        Self {
            slots: PerCpuSlots::new(nr_cpus, init),
        }
    }

    /// This CPU's copy, preemption disabled (`local_lock`). Taking it again
    /// on the same CPU is a bug and panics with a report.
    pub fn lock<'a, P: Platform>(&'a self, platform: &'a P) -> LocalGuard<'a, T, P> {
        lock_slots(&self.slots, platform, false, "local_lock")
    }

    /// This CPU's copy with interrupts disabled too (`local_lock_irqsave`).
    pub fn lock_irqsave<'a, P: Platform>(&'a self, platform: &'a P) -> LocalGuard<'a, T, P> {
        lock_slots(&self.slots, platform, true, "local_lock")
    }
}

/// A per-CPU `T` with a trylock usable from any context
/// (`localtry_lock_t`, Linux 6.15; `local_trylock_t` since 6.16).
pub struct LocalTryLock<T> {
    slots: PerCpuSlots<T>,
}

impl<T: Send> LocalTryLock<T> {
    /// One copy per CPU, made by `init`.
    pub fn new(nr_cpus: usize, init: impl FnMut(CpuId) -> T) -> Self {
        Self {
            slots: PerCpuSlots::new(nr_cpus, init),
        }
    }

    /// This CPU's copy, preemption disabled (`localtry_lock`). Task
    /// context; taking it twice on one CPU is a bug and panics.
    pub fn lock<'a, P: Platform>(&'a self, platform: &'a P) -> LocalGuard<'a, T, P> {
        lock_slots(&self.slots, platform, false, "localtry_lock")
    }

    /// As [`LocalTryLock::lock`], interrupts disabled too.
    pub fn lock_irqsave<'a, P: Platform>(&'a self, platform: &'a P) -> LocalGuard<'a, T, P> {
        lock_slots(&self.slots, platform, true, "localtry_lock")
    }

    /// This CPU's copy if no one on this CPU holds it (`localtry_trylock`):
    /// from an interrupt that arrived while this CPU's task held the lock it
    /// fails, never waits. Any context.
    #[inline]
    pub fn try_lock<'a, P: Platform>(&'a self, platform: &'a P) -> Option<LocalGuard<'a, T, P>> {
        platform.preempt_disable();
        let cpu = platform.cpu_id();
        if self.slots.try_acquire(cpu, LOCAL).is_err() {
            platform.preempt_enable();
            return None;
        }
        Some(LocalGuard {
            slots: &self.slots,
            platform,
            cpu,
            irq: None,
            _not_send: PhantomData,
        })
    }

    /// `cpu`'s copy, from any CPU, spinning while it is held: the caller's
    /// own copy is taken as [`LocalTryLock::lock`] does, another CPU's as
    /// its remote owner. Meanwhile that CPU's `try_lock` fails (its
    /// allocations take the slow path) and its `lock` spins. Task context;
    /// the caller must not hold any copy of this lock (one remote copy at a
    /// time, so two CPUs flushing each other cannot deadlock).
    pub fn lock_on<'a, P: Platform>(&'a self, cpu: CpuId, platform: &'a P) -> LocalGuard<'a, T, P> {
        platform.preempt_disable();
        let me = if cpu == platform.cpu_id() {
            LOCAL
        } else {
            REMOTE
        };
        while let Err(owner) = self.slots.try_acquire(cpu, me) {
            assert!(
                !(me == LOCAL && owner == LOCAL),
                "BUG: localtry_lock taken recursively on CPU {}",
                cpu.index()
            );
            core::hint::spin_loop();
        }
        LocalGuard {
            slots: &self.slots,
            platform,
            cpu,
            irq: None,
            _not_send: PhantomData,
        }
    }

    /// Whether `cpu`'s copy is held right now (racy; for assertions).
    pub fn is_locked(&self, cpu: CpuId) -> bool {
        self.slots.slots[cpu.index()].owner.load(Ordering::Relaxed) != FREE
    }
}

/// A spinlock in one bit of an atomic word (`bit_spin_lock`); the other
/// bits stay free for the owner's data and may be changed atomically by
/// others meanwhile. Preemption is disabled while held.
pub struct BitSpinLock;

/// Holds bit `bit` of `word` locked; unlocks on drop.
#[must_use = "the bit is unlocked when the guard is dropped"]
pub struct BitSpinGuard<'a, P: Platform> {
    word: &'a AtomicU64,
    mask: u64,
    platform: &'a P,
}

impl BitSpinLock {
    /// Spins until bit `bit` of `word` is taken (`bit_spin_lock`).
    /// Acquire: pairs with the Release of the previous holder's unlock.
    pub fn lock<'a, P: Platform>(
        word: &'a AtomicU64,
        bit: u32,
        platform: &'a P,
    ) -> BitSpinGuard<'a, P> {
        let mask = 1u64 << bit;
        loop {
            platform.preempt_disable();
            if word.fetch_or(mask, Ordering::Acquire) & mask == 0 {
                return BitSpinGuard {
                    word,
                    mask,
                    platform,
                };
            }
            platform.preempt_enable();
            while word.load(Ordering::Relaxed) & mask != 0 {
                core::hint::spin_loop();
            }
        }
    }

    /// Takes the bit if it is free (`bit_spin_trylock`).
    pub fn try_lock<'a, P: Platform>(
        word: &'a AtomicU64,
        bit: u32,
        platform: &'a P,
    ) -> Option<BitSpinGuard<'a, P>> {
        let mask = 1u64 << bit;
        platform.preempt_disable();
        if word.fetch_or(mask, Ordering::Acquire) & mask == 0 {
            Some(BitSpinGuard {
                word,
                mask,
                platform,
            })
        } else {
            platform.preempt_enable();
            None
        }
    }

    /// Whether bit `bit` of `word` is held (`bit_spin_is_locked`).
    pub fn is_locked(word: &AtomicU64, bit: u32) -> bool {
        word.load(Ordering::Relaxed) & (1 << bit) != 0
    }
}

impl<P: Platform> BitSpinGuard<'_, P> {
    /// Unlocks by storing `value` (its lock bit cleared) with one plain
    /// release store instead of an atomic read-modify-write
    /// (`__bit_spin_unlock`). Only for a word whose other bits, too, are
    /// changed only by holders of this lock.
    pub fn unlock_store(self, value: u64) {
        self.word.store(value & !self.mask, Ordering::Release);
        self.platform.preempt_enable();
        core::mem::forget(self);
    }
}

impl<P: Platform> Drop for BitSpinGuard<'_, P> {
    fn drop(&mut self) {
        // Release: the holder's writes are visible to the next holder.
        self.word.fetch_and(!self.mask, Ordering::Release);
        self.platform.preempt_enable();
    }
}

/// A spinlock whose holder runs with interrupts disabled (`spinlock_t`
/// taken with `spin_lock_irqsave()`): an interrupt on the holder's CPU
/// cannot take the lock again and spin forever.
pub struct SpinLockIrq<T> {
    lock: spin::Mutex<T>,
}

/// The guard of [`SpinLockIrq::lock_irqsave`]: unlocks, then restores
/// the interrupt state saved before locking (`spin_unlock_irqrestore()`).
#[must_use = "the lock is released and interrupts restored when the guard is dropped"]
pub struct SpinLockIrqGuard<'a, T, P: Platform + ?Sized> {
    /// Declared before `_irq`: fields drop in order, so the lock is
    /// released while interrupts are still off.
    guard: spin::MutexGuard<'a, T>,
    _irq: IrqGuard<'a, P>,
}

impl<T> SpinLockIrq<T> {
    pub const fn new(data: T) -> Self {
        Self {
            lock: spin::Mutex::new(data),
        }
    }

    /// Disables interrupts, then takes the lock (`spin_lock_irqsave()`).
    #[inline]
    pub fn lock_irqsave<'a, P: Platform + ?Sized>(
        &'a self,
        platform: &'a P,
    ) -> SpinLockIrqGuard<'a, T, P> {
        let irq = IrqGuard::new(platform);
        SpinLockIrqGuard {
            guard: self.lock.lock(),
            _irq: irq,
        }
    }

    /// Disables interrupts and tries the lock once
    /// (`spin_trylock_irqsave()`); on failure interrupts are restored
    /// and `None` returned. Never spins.
    #[inline]
    pub fn try_lock_irqsave<'a, P: Platform + ?Sized>(
        &'a self,
        platform: &'a P,
    ) -> Option<SpinLockIrqGuard<'a, T, P>> {
        let irq = IrqGuard::new(platform);
        let guard = self.lock.try_lock()?;
        Some(SpinLockIrqGuard { guard, _irq: irq })
    }

    /// Takes the lock inside a section the caller already runs with
    /// interrupts off (`spin_lock()` under `local_irq_save()`): `irqs_off`
    /// is the proof, and the guard cannot outlive it. For a caller that
    /// drops and retakes the lock without letting interrupts in between.
    #[inline]
    pub fn lock_irqs_off<'a, P: Platform + ?Sized>(
        &'a self,
        irqs_off: &'a IrqGuard<'_, P>,
    ) -> spin::MutexGuard<'a, T> {
        let _ = irqs_off;
        self.lock.lock()
    }
}

impl<T, P: Platform + ?Sized> Deref for SpinLockIrqGuard<'_, T, P> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T, P: Platform + ?Sized> DerefMut for SpinLockIrqGuard<'_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{self, SimMachine, SimPlatform};

    fn platform(nr_cpus: usize) -> SimPlatform {
        sim::set_cpu(0);
        SimPlatform(SimMachine::new(1, nr_cpus))
    }

    #[test]
    fn trylock_from_an_interrupt_on_the_holding_cpu_fails() {
        let p = platform(2);
        let lock = LocalTryLock::new(2, |_| 0u64);
        let mut g = lock.lock(&p);
        *g += 1;
        assert_eq!(sim::preempt_count(), 1);
        // An interrupt on this CPU: must not get the copy its task holds.
        assert!(sim::in_simulated_irq(|| lock.try_lock(&p).is_none()));
        assert_eq!(
            sim::preempt_count(),
            1,
            "failed trylock restores preemption"
        );
        drop(g);
        assert_eq!(sim::preempt_count(), 0);
        let got = sim::in_simulated_irq(|| lock.try_lock(&p).map(|g| *g));
        assert_eq!(got, Some(1));
        // Another CPU's copy is independent.
        std::thread::scope(|s| {
            let g0 = lock.lock(&p);
            s.spawn(|| {
                sim::set_cpu(1);
                let g1 = lock.try_lock(&p).expect("CPU 1's copy is free");
                assert_eq!(*g1, 0);
            });
            drop(g0);
        });
    }

    #[test]
    fn lock_on_takes_another_cpus_copy_and_excludes_its_owner() {
        let p = platform(2);
        let lock = LocalTryLock::new(2, |_| 0u64);
        let held = std::sync::Barrier::new(2);
        let checked = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                sim::set_cpu(1);
                let g = lock.lock_on(CpuId::new(0), &p);
                assert_eq!(g.cpu(), CpuId::new(0));
                assert!(lock.is_locked(CpuId::new(0)));
                held.wait();
                checked.wait();
            });
            held.wait();
            // CPU 0's own fast path backs off while CPU 1 holds its copy.
            assert!(lock.try_lock(&p).is_none());
            assert_eq!(sim::preempt_count(), 0);
            checked.wait();
        });
        // The owner's lock() and a remote lock_on() exclude each other.
        std::thread::scope(|s| {
            for cpu in 0..2u32 {
                let (lock, p) = (&lock, &p);
                s.spawn(move || {
                    sim::set_cpu(cpu);
                    for _ in 0..20_000 {
                        *lock.lock_on(CpuId::new(0), p) += 1;
                    }
                });
            }
        });
        sim::set_cpu(0);
        assert_eq!(*lock.lock(&p), 40_000);
        assert!(!lock.is_locked(CpuId::new(0)));
    }

    #[test]
    #[should_panic(expected = "taken recursively")]
    fn recursive_lock_on_own_cpu_is_reported() {
        let p = platform(1);
        let lock = LocalTryLock::new(1, |_| ());
        let _a = lock.lock(&p);
        let _b = lock.lock_on(CpuId::new(0), &p);
    }

    #[test]
    #[should_panic(expected = "taken recursively")]
    fn recursive_local_lock_is_reported() {
        let p = platform(1);
        let lock = LocalLock::new(1, |_| ());
        let _a = lock.lock(&p);
        let _b = lock.lock(&p);
    }

    #[test]
    fn per_cpu_copies_are_private() {
        let p = platform(4);
        let lock = LocalLock::new(4, |cpu| cpu.index() as u64 * 1000);
        std::thread::scope(|s| {
            for cpu in 0..4u32 {
                let (lock, p) = (&lock, &p);
                s.spawn(move || {
                    sim::set_cpu(cpu);
                    for _ in 0..10_000 {
                        let mut g = lock.lock_irqsave(p);
                        assert_eq!(g.cpu(), CpuId::new(cpu));
                        *g += 1;
                    }
                });
            }
        });
        for cpu in 0..4u32 {
            sim::set_cpu(cpu);
            assert_eq!(*lock.lock(&p), cpu as u64 * 1000 + 10_000);
        }
        sim::set_cpu(0);
    }

    #[test]
    fn bit_spinlock_excludes_and_keeps_the_other_bits() {
        let p = platform(4);
        let word = AtomicU64::new(0);
        let counter = UnsafeCellCounter(UnsafeCell::new(0));
        std::thread::scope(|s| {
            for cpu in 0..4u32 {
                let (word, counter, p) = (&word, &counter, &p);
                s.spawn(move || {
                    sim::set_cpu(cpu);
                    for i in 0..20_000u64 {
                        let _g = BitSpinLock::lock(word, 63, p);
                        // SAFETY: the lock bit serialises access.
                        unsafe { *counter.0.get() += 1 };
                        // Other bits change under other holders' feet.
                        word.fetch_xor(1 << (i % 8), Ordering::Relaxed);
                    }
                });
            }
        });
        // SAFETY: all threads joined.
        assert_eq!(unsafe { *counter.0.get() }, 80_000);
        // Every data bit was flipped an even number of times, by atomics
        // racing with lock and unlock: none was lost.
        assert_eq!(word.load(Ordering::Relaxed), 0);
        let g = BitSpinLock::try_lock(&word, 63, &p).unwrap();
        assert!(BitSpinLock::try_lock(&word, 63, &p).is_none());
        drop(g);
        assert_eq!(sim::preempt_count(), 0);
    }

    struct UnsafeCellCounter(UnsafeCell<u64>);
    // SAFETY: accessed only under the bit lock in the test.
    unsafe impl Sync for UnsafeCellCounter {}
}

//! A sleeping reader/writer semaphore (Linux's `rw_semaphore`,
//! `kernel/locking/rwsem.c`): the `mmap_lock`.
//!
//! Many readers or one writer hold it. A task that cannot take it sleeps
//! through [`Platform::wait`] instead of spinning, so a thread that faults
//! while another thread of its process is preempted inside `munmap` gives
//! the CPU back rather than spinning out its time slice; the last holder
//! out wakes the sleepers ([`Platform::wake_waiters`]), who re-check.
//!
//! Fairness, as Linux's: once a writer waits, new readers wait behind it
//! (no writer starvation under a stream of faults). So a reader must not
//! take the semaphore again while it holds it (Linux forbids recursive
//! `down_read` for the same reason).
//!
//! # Ordering
//!
//! The no-lost-wakeup rule: a sleeper counts itself in `nr_sleepers`
//! before its last check of the lock (both SeqCst); a releaser drops the
//! lock, then reads `nr_sleepers` (after a SeqCst fence). Either the
//! releaser sees the sleeper and wakes it, or the sleeper sees the lock
//! free. [`Platform::wait`] re-checks its condition after queueing itself,
//! so a wake between the check and the sleep is not lost either.
//!
//! # Context
//!
//! Task context. Where the platform says the caller may not sleep
//! (preemption off, early boot, interrupts), a waiter spins instead.
#![forbid(unsafe_code)]

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

use crate::platform::Platform;

/// Events of a semaphore, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RwSemStat {
    /// A reader got it at once.
    ReadFast,
    /// A reader slept (or spun) before getting it.
    ReadSlow,
    /// A writer got it at once.
    WriteFast,
    /// A writer slept (or spun) before getting it.
    WriteSlow,
}

const NR_RWSEM_STATS: usize = 4;

/// A reader/writer semaphore guarding a `T`; see the module docs.
pub struct RwSem<T> {
    lock: spin::RwLock<T>,
    /// Writers waiting for the lock: new readers queue behind them.
    writers_waiting: AtomicUsize,
    /// Tasks inside `Platform::wait` for this semaphore (Ordering).
    nr_sleepers: AtomicUsize,
    stats: [AtomicU64; NR_RWSEM_STATS],
}

impl<T> RwSem<T> {
    /// A free semaphore holding `data`.
    pub const fn new(data: T) -> Self {
        Self {
            lock: spin::RwLock::new(data),
            writers_waiting: AtomicUsize::new(0),
            nr_sleepers: AtomicUsize::new(0),
            stats: [const { AtomicU64::new(0) }; NR_RWSEM_STATS],
        }
    }

    /// How often `s` happened.
    pub fn stat(&self, s: RwSemStat) -> u64 {
        self.stats[s as usize].load(Ordering::Relaxed)
    }

    fn count(&self, s: RwSemStat) {
        self.stats[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Blocks until `cond()` may hold (or spins once where sleeping is not
    /// allowed); see "Ordering".
    fn sleep<P: Platform>(&self, p: &P, cond: &dyn Fn() -> bool) {
        if !p.may_sleep() {
            core::hint::spin_loop();
            return;
        }
        self.nr_sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !cond() {
            p.wait(cond);
        }
        self.nr_sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Takes it for reading (`down_read`), sleeping while a writer holds
    /// or waits for it.
    pub fn read<'s, 'p, P: Platform>(&'s self, p: &'p P) -> RwSemReadGuard<'s, 'p, T, P> {
        let mut slow = false;
        loop {
            if self.writers_waiting.load(Ordering::SeqCst) == 0
                && let Some(g) = self.lock.try_read()
            {
                self.count(if slow {
                    RwSemStat::ReadSlow
                } else {
                    RwSemStat::ReadFast
                });
                return RwSemReadGuard {
                    guard: Some(g),
                    sem: self,
                    platform: p,
                };
            }
            slow = true;
            self.sleep(p, &|| {
                self.writers_waiting.load(Ordering::SeqCst) == 0 && self.lock.writer_count() == 0
            });
        }
    }

    /// Takes it for writing (`down_write`), sleeping while anyone holds it.
    pub fn write<'s, 'p, P: Platform>(&'s self, p: &'p P) -> RwSemWriteGuard<'s, 'p, T, P> {
        if let Some(g) = self.lock.try_write() {
            self.count(RwSemStat::WriteFast);
            return RwSemWriteGuard {
                guard: Some(g),
                sem: self,
                platform: p,
            };
        }
        self.writers_waiting.fetch_add(1, Ordering::SeqCst);
        let g = loop {
            if let Some(g) = self.lock.try_write() {
                break g;
            }
            self.sleep(p, &|| {
                self.lock.reader_count() == 0 && self.lock.writer_count() == 0
            });
        };
        self.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        self.count(RwSemStat::WriteSlow);
        RwSemWriteGuard {
            guard: Some(g),
            sem: self,
            platform: p,
        }
    }

    /// Wakes sleepers after a release, if there are any (see "Ordering").
    fn release<P: Platform>(&self, p: &P) {
        fence(Ordering::SeqCst);
        if self.nr_sleepers.load(Ordering::SeqCst) != 0 {
            p.wake_waiters();
        }
    }

    /// Whether anyone holds it for writing (racy; for assertions).
    pub fn is_write_locked(&self) -> bool {
        self.lock.writer_count() != 0
    }
}

/// Shared access; releases (and wakes sleepers) on drop.
pub struct RwSemReadGuard<'s, 'p, T, P: Platform> {
    guard: Option<spin::RwLockReadGuard<'s, T>>,
    sem: &'s RwSem<T>,
    platform: &'p P,
}

impl<T, P: Platform> Deref for RwSemReadGuard<'_, '_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("held until drop")
    }
}

impl<T, P: Platform> Drop for RwSemReadGuard<'_, '_, T, P> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.sem.release(self.platform);
    }
}

/// Exclusive access; releases (and wakes sleepers) on drop.
pub struct RwSemWriteGuard<'s, 'p, T, P: Platform> {
    guard: Option<spin::RwLockWriteGuard<'s, T>>,
    sem: &'s RwSem<T>,
    platform: &'p P,
}

impl<T, P: Platform> Deref for RwSemWriteGuard<'_, '_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("held until drop")
    }
}

impl<T, P: Platform> DerefMut for RwSemWriteGuard<'_, '_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("held until drop")
    }
}

impl<T, P: Platform> Drop for RwSemWriteGuard<'_, '_, T, P> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.sem.release(self.platform);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimMachine, SimPlatform};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn readers_share_writers_exclude() {
        let p = &SimPlatform(SimMachine::new(64, 1));
        let sem = RwSem::new(0u64);
        let r1 = sem.read(p);
        let r2 = sem.read(p);
        assert_eq!(*r1 + *r2, 0);
        assert!(!sem.is_write_locked());
        drop((r1, r2));
        let mut w = sem.write(p);
        *w = 5;
        assert!(sem.is_write_locked());
        drop(w);
        assert_eq!(*sem.read(p), 5);
        assert_eq!(sem.stat(RwSemStat::ReadFast), 3);
        assert_eq!(sem.stat(RwSemStat::WriteFast), 1);
    }

    /// Writers and readers on several host threads: every write is seen
    /// whole (two words updated together), and a writer gets in while
    /// readers keep coming (new readers queue behind a waiting writer).
    #[test]
    fn writers_are_exclusive_and_not_starved() {
        let m = Arc::new(SimPlatform(SimMachine::new(64, 4)));
        let sem = Arc::new(RwSem::new((0u64, 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = std::vec::Vec::new();
        for _ in 0..3 {
            let (m, sem, stop) = (m.clone(), sem.clone(), stop.clone());
            readers.push(std::thread::spawn(move || {
                let p = &*m;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = sem.read(p);
                    assert_eq!(g.0, g.1, "a reader saw half a write");
                    n += 1;
                }
                n
            }));
        }
        let mut writers = std::vec::Vec::new();
        for _ in 0..2 {
            let (m, sem) = (m.clone(), sem.clone());
            writers.push(std::thread::spawn(move || {
                let p = &*m;
                for _ in 0..500 {
                    let mut g = sem.write(p);
                    g.0 += 1;
                    std::thread::yield_now();
                    g.1 += 1;
                }
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(*sem.read(&*m), (1000, 1000));
        assert_eq!(
            sem.stat(RwSemStat::WriteFast) + sem.stat(RwSemStat::WriteSlow),
            1000
        );
    }
}

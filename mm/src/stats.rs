//! Named event counters, one enum per subsystem (`vm_event_item` style).
//!
//! [`define_stats!`] declares an enum whose variants are the counters, each
//! with a doc line and its printed name. Two stores for them:
//!
//! - [`Counters`]: one shared atomic per variant, for rare events;
//! - [`PerCpuCounters`]: one block per CPU, each on its own cache lines,
//!   summed when read (SLUB's per-CPU `stat[]` with `this_cpu_inc`), for
//!   events on per-CPU fast paths, where a shared line would bounce
//!   between the CPUs on every event.
//!
//! Tests assert on counters to prove which path ran.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::addr::CpuId;

/// Declares a counter enum with `ALL`, `COUNT` and `name()`.
macro_rules! define_stats {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[doc = $doc:literal])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[doc = $doc])* $v,)* }

        impl $name {
            /// Every counter, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of counters.
            pub const COUNT: usize = Self::ALL.len();
            /// The counter's name as printed (Linux-style, lower case).
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}
pub(crate) use define_stats;

/// One relaxed atomic per counter of an enum with `N` variants.
pub struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Counters<N> {
    /// All zero.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; N])
    }

    /// Adds `n` to counter `i` (an enum variant as usize).
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Relaxed);
    }

    /// The current value of counter `i` (racy snapshot).
    pub fn get(&self, i: usize) -> u64 {
        self.0[i].load(Relaxed)
    }
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// One CPU's block of counters, aligned to a cache line (x86's 64 bytes)
/// so that no two CPUs write the same line.
#[repr(align(64))]
struct CpuCounters<const N: usize>([AtomicU64; N]);

/// A block of `N` counters per CPU, summed when read (`this_cpu_inc` of a
/// per-CPU `stat[]`, `CONFIG_SLUB_STATS`).
///
/// Write, one of two ways, chosen per counter (never both for one counter
/// of one block):
/// - [`PerCpuCounters::add`] with the writer's CPU, a relaxed `fetch_add`
///   on that CPU's line. Not a plain load and store: an interrupt or a
///   task that migrated after reading its CPU id may add to the same slot
///   meanwhile, and Linux's single-instruction `this_cpu_inc` (which is
///   safe against both) has no portable Rust equivalent. The line stays in
///   the writer's cache, so the atomic costs no transfer, but it is still
///   a locked instruction (a full barrier on x86).
/// - [`PerCpuCounters::add_locked`]: a Relaxed load and a Relaxed store
///   (`__this_cpu_add` under a lock), for a counter whose every writer
///   holds one lock per CPU slot, such as SLUB's sheaf counters under that
///   CPU's sheaves lock: the lock excludes the interrupt and the migrated
///   task above, and orders successive holders (its Acquire pairs with the
///   previous holder's Release), so no count is lost.
///
/// Read: [`PerCpuCounters::get`], a racy sum (Relaxed); each slot only
/// grows, so a sum never goes below an earlier sum of the same counter.
pub struct PerCpuCounters<const N: usize> {
    cpus: Box<[CpuCounters<N>]>,
}

impl<const N: usize> PerCpuCounters<N> {
    /// All zero, for `nr_cpus` CPUs.
    pub fn new(nr_cpus: usize) -> Self {
        Self {
            cpus: (0..nr_cpus)
                .map(|_| CpuCounters([const { AtomicU64::new(0) }; N]))
                .collect(),
        }
    }

    /// Adds `n` to counter `i` (an enum variant as usize) of `cpu`, the
    /// CPU the caller runs on (or ran on a moment ago: any slot is correct,
    /// the local one is cheap).
    #[inline]
    pub fn add(&self, cpu: CpuId, i: usize, n: u64) {
        self.cpus[cpu.index()].0[i].fetch_add(n, Relaxed);
    }

    /// Adds `n` to counter `i` of `cpu` with a plain load and store.
    ///
    /// The caller holds a lock that every writer of counter `i` of `cpu`
    /// holds while writing it (for SLUB, `cpu`'s sheaves lock), so that no
    /// other write falls between the load and the store; `cpu` need not be
    /// the caller's CPU (a remote holder of that lock writes the same
    /// slot). Breaking this loses counts, nothing worse: both accesses are
    /// atomic, so readers see the old or the new value, never a torn one.
    #[inline]
    pub fn add_locked(&self, cpu: CpuId, i: usize, n: u64) {
        let slot = &self.cpus[cpu.index()].0[i];
        slot.store(slot.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The sum of counter `i` over all CPUs (racy snapshot).
    pub fn get(&self, i: usize) -> u64 {
        self.cpus
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.0[i].load(Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_counters_are_summed_and_on_separate_lines() {
        let c = PerCpuCounters::<3>::new(4);
        std::thread::scope(|s| {
            for cpu in 0..4u32 {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..1000 {
                        c.add(CpuId::new(cpu), 1, 1);
                    }
                    c.add(CpuId::new(cpu), 2, u64::from(cpu));
                });
            }
        });
        assert_eq!(c.get(0), 0);
        assert_eq!(c.get(1), 4000);
        assert_eq!(c.get(2), 1 + 2 + 3);
        // add_locked: each thread is the only writer of its own slot.
        std::thread::scope(|s| {
            for cpu in 0..4u32 {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..1000 {
                        c.add_locked(CpuId::new(cpu), 0, 2);
                    }
                });
            }
        });
        assert_eq!(c.get(0), 8000);
        // Each CPU's block starts a line and fills whole lines (no sharing).
        assert_eq!(core::mem::size_of::<CpuCounters<3>>(), 64);
        for cpu in &c.cpus[..] {
            assert_eq!(cpu.0.as_ptr() as usize % 64, 0);
        }
    }
}

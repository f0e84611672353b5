//! The TLB state of one address space that a TLB shootdown needs
//! (Linux's `mm_cpumask(mm)` and `mm->context.tlb_gen`, `ctx_id` aside).
//!
//! `mm` only keeps the numbers; the machine acts on them
//! (`Platform::flush_tlb`): the kernel's `arch/tlb.rs` sets a CPU's bit
//! when it loads the address space, bumps the generation for each flush
//! request and sends IPIs to the CPUs of the mask (`flush_tlb_mm_range()`,
//! `arch/x86/mm/tlb.c`). The simulated machine has no TLB and ignores them.
//!
//! # Invariants
//!
//! - T1: `cpumask` is a superset of the CPUs whose TLB may hold
//!   translations of this address space: a CPU sets its bit before it
//!   loads the page tables (and before it reads `tlb_gen`), and clears it
//!   only lazily, when a flush finds that the CPU has moved to another
//!   address space (Linux 6.13's lazy `mm_cpumask` update).
//! - T2: `tlb_gen` only grows; a flush request takes a new generation
//!   *after* its page-table change is visible (the increment is a full
//!   barrier), so a CPU that has flushed up to generation `g` holds no
//!   translation that changed before `g` was taken.
//!
//! # Context
//!
//! Any context: the words are atomics.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};

/// The CPUs a bit mask can name (the kernel's `MAX_CPUS`, Linux x86_64's
/// default `NR_CPUS`).
pub const TLB_MAX_CPUS: usize = 64;

/// `mm_cpumask` and `tlb_gen` of one address space; see the module docs.
#[derive(Debug)]
pub struct TlbContext {
    /// Bit N: CPU N may hold translations of this address space (T1).
    cpumask: AtomicU64,
    /// The newest flush generation requested (T2).
    tlb_gen: AtomicU64,
}

impl Default for TlbContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TlbContext {
    /// A context no CPU has loaded, at generation 1 (Linux's
    /// `init_new_context()`).
    pub const fn new() -> Self {
        TlbContext {
            cpumask: AtomicU64::new(0),
            tlb_gen: AtomicU64::new(1),
        }
    }

    /// The CPUs that may hold translations (T1).
    pub fn cpumask(&self) -> u64 {
        self.cpumask.load(SeqCst)
    }

    /// Whether `cpu`'s bit is set.
    pub fn has_cpu(&self, cpu: u32) -> bool {
        (cpu as usize) < TLB_MAX_CPUS && self.cpumask() & (1 << cpu) != 0
    }

    /// Sets `cpu`'s bit, before the CPU loads the tables (T1). A full
    /// barrier: the caller's later read of [`TlbContext::tlb_gen`] and its
    /// page walks come after it. Sets it only if clear (Linux's
    /// `cpumask_test_cpu` before `cpumask_set_cpu`, to keep the line
    /// shared when the bit is set already).
    pub fn set_cpu(&self, cpu: u32) {
        assert!((cpu as usize) < TLB_MAX_CPUS, "CPU {cpu} beyond the mask");
        if self.cpumask.load(Relaxed) & (1 << cpu) == 0 {
            self.cpumask.fetch_or(1 << cpu, SeqCst);
        } else {
            core::sync::atomic::fence(SeqCst);
        }
    }

    /// Clears `cpu`'s bit: the CPU no longer runs this address space
    /// (T1's lazy clearing).
    pub fn clear_cpu(&self, cpu: u32) {
        if (cpu as usize) < TLB_MAX_CPUS {
            self.cpumask.fetch_and(!(1 << cpu), SeqCst);
        }
    }

    /// The newest generation requested.
    pub fn tlb_gen(&self) -> u64 {
        self.tlb_gen.load(SeqCst)
    }

    /// Takes a new generation for a flush request and returns it
    /// (`inc_mm_tlb_gen()`): a full barrier between the caller's
    /// page-table change and its read of the mask (T2).
    pub fn inc_tlb_gen(&self) -> u64 {
        self.tlb_gen.fetch_add(1, SeqCst) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn cpus_are_set_and_cleared_one_bit_each() {
        let ctx = TlbContext::new();
        assert_eq!(ctx.cpumask(), 0);
        ctx.set_cpu(0);
        ctx.set_cpu(5);
        ctx.set_cpu(5);
        ctx.set_cpu(63);
        assert_eq!(ctx.cpumask(), 1 | 1 << 5 | 1 << 63);
        assert!(ctx.has_cpu(5) && !ctx.has_cpu(4) && !ctx.has_cpu(64));
        ctx.clear_cpu(5);
        ctx.clear_cpu(7);
        assert_eq!(ctx.cpumask(), 1 | 1 << 63);
    }

    #[test]
    fn generations_start_at_1_and_each_request_takes_the_next() {
        let ctx = TlbContext::new();
        assert_eq!(ctx.tlb_gen(), 1);
        assert_eq!(ctx.inc_tlb_gen(), 2);
        assert_eq!(ctx.inc_tlb_gen(), 3);
        assert_eq!(ctx.tlb_gen(), 3);
    }

    #[test]
    fn concurrent_requests_take_distinct_generations() {
        let ctx = std::sync::Arc::new(TlbContext::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ctx = ctx.clone();
                std::thread::spawn(move || (0..1000).map(|_| ctx.inc_tlb_gen()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
        assert_eq!(ctx.tlb_gen(), 4001);
    }
}

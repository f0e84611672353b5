//! TLB shootdown: loading an address space on a CPU and flushing it on
//! every CPU that may cache it (Linux's `arch/x86/mm/tlb.c`, without PCID
//! and without lazy TLB).
//!
//! Each address space carries a [`TlbContext`] (in its `mm::PageTable`):
//! `mm_cpumask`, the CPUs that may hold its translations, and `tlb_gen`,
//! the newest flush generation requested. Each CPU keeps its
//! `cpu_tlbstate` here: which context it has loaded and up to which
//! generation its TLB is flushed.
//!
//! - [`switch_mm_irqs_off`] (every CR3 load, `arch::entry::switch_mm`):
//!   sets the CPU's bit in the next context's mask, then reads its
//!   generation, then loads CR3, which (no PCID) drops every non-global
//!   translation: the CPU is flushed up to that generation. The previous
//!   context's bit stays set (Linux 6.13 clears it lazily, below).
//! - [`flush_tlb_mm_range`] (`Platform::flush_tlb`): takes a new
//!   generation, reads the mask, runs [`flush_tlb_func`] on this CPU if
//!   it is in the mask and on the others by a waited function-call IPI
//!   (`native_flush_tlb_multi`), and returns once all have run it. Up to
//!   [`TLB_SINGLE_PAGE_FLUSH_CEILING`] pages are flushed by `invlpg`, more
//!   by a full flush.
//! - [`flush_tlb_func`], on each target with interrupts off: a CPU that
//!   runs another address space now clears its bit and does nothing (its
//!   CR3 load flushed it, and will again when it comes back); a CPU whose
//!   TLB is flushed up to the request's generation already skips (a later
//!   full flush covered it); a range flush is done only when the request
//!   is the one generation this CPU misses, otherwise everything is
//!   flushed; either way the CPU records the context's generation as
//!   flushed.
//!
//! Every caller frees the pages and page tables it unmapped only after
//! [`flush_tlb_mm_range`] returned (`mmu_gather`: the flush, then
//! `call_rcu` of the tables, then the pages), so no CPU reaches a freed
//! frame through a stale translation.
//!
//! # Invariants
//!
//! - T1 (`mm::pgtable::TlbContext`): a context's mask holds every CPU
//!   whose TLB may hold its translations.
//! - T3: `loaded_mm` of a CPU is the context whose PGD is in its CR3
//!   (null: the boot PGD), written only by that CPU with interrupts off;
//!   it points into a live address space: a task's address space is
//!   dropped only after the task moved off it (process P2), and a CPU
//!   loads only its current task's. Other CPUs compare the pointer and
//!   never dereference it.
//! - T4: `loaded_gen` of a CPU is a generation of its loaded context up
//!   to which its TLB holds no stale translation; only that CPU writes
//!   it, with interrupts off.
//!
//! # Ordering
//!
//! A flusher changes the page tables, then increments `tlb_gen` (a
//! locked read-modify-write), then reads the mask. A CPU switching in
//! sets its bit (a locked read-modify-write), then reads `tlb_gen`, then
//! loads CR3 and walks the tables. So either the flusher sees the bit and
//! sends the IPI, or the switching CPU's walks come after the change.
//!
//! # Context
//!
//! [`switch_mm_irqs_off`]: interrupts off. [`flush_tlb_mm_range`]: task
//! context, preemption may be off; if interrupts are off it still
//! completes (the wait runs calls queued to this CPU, so two CPUs
//! flushing each other cannot deadlock), but no kernel spinlock that an
//! IPI target may spin on with interrupts off may be held.

pub mod bench;
pub mod ktests;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use mm::pgtable::TlbContext;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::PhysFrame;

use crate::percpu::{self, MAX_CPUS};
use crate::sched;
use crate::smp::ipi;

/// Beyond this many pages a range flush becomes a full flush (Linux's
/// `tlb_single_page_flush_ceiling`).
pub const TLB_SINGLE_PAGE_FLUSH_CEILING: u64 = 33;

const _: () = assert!(MAX_CPUS <= mm::pgtable::TLB_MAX_CPUS);

/// One CPU's TLB state (Linux's `cpu_tlbstate`).
struct CpuTlbState {
    /// The context loaded in CR3; null: the boot PGD (T3).
    loaded_mm: AtomicPtr<TlbContext>,
    /// The generation of `loaded_mm` this TLB is flushed up to (T4).
    loaded_gen: AtomicU64,
    /// Flush IPIs this CPU took (`nr_tlb_remote_flush_received`).
    received: AtomicU64,
    /// Of those, or of local requests, the ones that found the TLB
    /// flushed past their generation already (no flush done).
    skipped: AtomicU64,
    /// Of those, the ones that found another address space loaded and
    /// cleared this CPU's stale bit.
    stale: AtomicU64,
}

static CPU_TLBSTATE: [CpuTlbState; MAX_CPUS] = [const {
    CpuTlbState {
        loaded_mm: AtomicPtr::new(core::ptr::null_mut()),
        loaded_gen: AtomicU64::new(0),
        received: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        stale: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// `invlpg`s issued for flush requests of this CPU (Linux's
/// `nr_tlb_local_flush_one` of `/proc/vmstat`, one per page).
pub static NR_TLB_LOCAL_FLUSH_ONE: AtomicU64 = AtomicU64::new(0);
/// Whole-TLB flushes issued for flush requests of this CPU
/// (`nr_tlb_local_flush_all`).
pub static NR_TLB_LOCAL_FLUSH_ALL: AtomicU64 = AtomicU64::new(0);
/// Flush requests that sent IPIs to other CPUs (`nr_tlb_remote_flush`).
pub static NR_TLB_REMOTE_FLUSH: AtomicU64 = AtomicU64::new(0);

/// Flush IPIs taken by all CPUs (`nr_tlb_remote_flush_received`).
pub fn nr_tlb_remote_flush_received() -> u64 {
    CPU_TLBSTATE
        .iter()
        .map(|s| s.received.load(Ordering::Relaxed))
        .sum()
}

/// Flush IPIs CPU `cpu` took.
pub fn nr_received(cpu: u32) -> u64 {
    CPU_TLBSTATE[cpu as usize].received.load(Ordering::Relaxed)
}

/// Flush requests CPU `cpu` found done already (generation skip).
pub fn nr_skipped(cpu: u32) -> u64 {
    CPU_TLBSTATE[cpu as usize].skipped.load(Ordering::Relaxed)
}

/// Flush requests CPU `cpu` took for an address space it no longer ran
/// (its bit cleared lazily).
pub fn nr_stale(cpu: u32) -> u64 {
    CPU_TLBSTATE[cpu as usize].stale.load(Ordering::Relaxed)
}

/// Whether CPU `cpu` has `ctx` loaded now.
pub fn is_loaded_on(ctx: &TlbContext, cpu: u32) -> bool {
    core::ptr::eq(
        CPU_TLBSTATE[cpu as usize].loaded_mm.load(Ordering::Acquire),
        ctx,
    )
}

/// Loads the PGD at `pgd` with its context `next` (`None` for the boot
/// PGD, `pgd` its address) into CR3 if CR3 does not hold it already
/// (Linux's `switch_mm_irqs_off`); see the module docs. Interrupts off.
///
/// # Safety
///
/// `pgd` is the boot PGD or a process PGD whose kernel half is the boot
/// PGD's, and `next` is null or points at its live address space's
/// context, which stays alive while this CPU has it loaded (T3).
pub unsafe fn switch_mm_irqs_off(pgd: u64, next: *const TlbContext) {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    if Cr3::read().0.start_address().as_u64() == pgd {
        return;
    }
    let cpu = percpu::cpu_id();
    let st = &CPU_TLBSTATE[cpu as usize];
    // SAFETY: the caller's contract: null or a live context.
    let tlb_gen = match unsafe { next.as_ref() } {
        Some(ctx) => {
            // T1 before the CR3 load; the generation after the bit
            // (module Ordering).
            ctx.set_cpu(cpu);
            ctx.tlb_gen()
        }
        None => 0,
    };
    st.loaded_mm.store(next.cast_mut(), Ordering::Release);
    st.loaded_gen.store(tlb_gen, Ordering::Relaxed);
    let (_, flags) = Cr3::read();
    // SAFETY: the caller's contract: the running kernel code, its stack
    // and data stay mapped across the switch (the kernel half is shared).
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(x86_64::PhysAddr::new(pgd)),
            flags,
        )
    };
}

/// One flush request (Linux's `struct flush_tlb_info`).
struct FlushInfo<'a> {
    ctx: &'a TlbContext,
    /// `[start, end)`, or `None` for everything.
    range: Option<(u64, u64)>,
    /// The generation this request took.
    new_gen: u64,
}

/// Flushes `root`'s translations of `range` (all for `None`) on every CPU
/// that may hold them and returns when none can use a stale one (Linux's
/// `flush_tlb_mm_range`); see the module docs.
pub fn flush_tlb_mm_range(ctx: &TlbContext, range: Option<(u64, u64)>) {
    let range = range.filter(|&(start, end)| {
        end.saturating_sub(start) <= TLB_SINGLE_PAGE_FLUSH_CEILING * mm::PAGE_SIZE
    });
    let _pin = sched::PreemptGuard::new();
    let info = FlushInfo {
        ctx,
        range,
        new_gen: ctx.inc_tlb_gen(),
    };
    let me = percpu::cpu_id();
    let mask = ctx.cpumask();
    if mask & (1 << me) != 0 {
        x86_64::instructions::interrupts::without_interrupts(|| flush_tlb_func(&info, true));
    }
    if mask & !(1 << me) != 0 {
        NR_TLB_REMOTE_FLUSH.fetch_add(1, Ordering::Relaxed);
        ipi::call_function_many_wait(mask & !(1 << me), &|| flush_tlb_func(&info, false));
    }
}

/// A flush request on this CPU, interrupts off (Linux's
/// `flush_tlb_func`); `local`: run by the requesting CPU itself.
fn flush_tlb_func(f: &FlushInfo<'_>, local: bool) {
    let cpu = percpu::cpu_id();
    let st = &CPU_TLBSTATE[cpu as usize];
    if !local {
        st.received.fetch_add(1, Ordering::Relaxed);
    }
    if !core::ptr::eq(st.loaded_mm.load(Ordering::Relaxed), f.ctx) {
        // Another address space is loaded: its CR3 load flushed this
        // one's translations, and loading it again will (T1's lazy
        // clearing).
        f.ctx.clear_cpu(cpu);
        st.stale.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let local_gen = st.loaded_gen.load(Ordering::Relaxed);
    let mm_gen = f.ctx.tlb_gen();
    if f.new_gen <= local_gen {
        // Flushed past this request already (T4).
        st.skipped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match f.range {
        // Only this request is missing: its range is enough.
        Some((start, end)) if f.new_gen == local_gen + 1 && f.new_gen == mm_gen => {
            let mut va = start & !(mm::PAGE_SIZE - 1);
            let mut n = 0;
            while va < end {
                tlb::flush(x86_64::VirtAddr::new_truncate(va));
                va += mm::PAGE_SIZE;
                n += 1;
            }
            if local {
                NR_TLB_LOCAL_FLUSH_ONE.fetch_add(n, Ordering::Relaxed);
            }
        }
        _ => {
            tlb::flush_all();
            if local {
                NR_TLB_LOCAL_FLUSH_ALL.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // Everything up to mm_gen, read before the flush, is flushed (T2).
    st.loaded_gen.store(mm_gen, Ordering::Relaxed);
}

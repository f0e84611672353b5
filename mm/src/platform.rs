//! The one seam between `mm` and the machine.
//!
//! `mm` never executes a privileged instruction. What it needs from the
//! machine it asks of a [`Platform`]: the kernel implements it on x86_64, and
//! the simulated machine in `crate::sim` (feature `std`) implements it for host tests, so
//! the same allocator code runs in both places.
//!
//! The allocators need the direct map, the CPU number and interrupt
//! masking; RCU needs preemption control, a clock and a way to block;
//! the page tables need TLB flushes.
//!
//! The last group of methods are the simulator's instruments (fault
//! injection, page poisoning and owner tracking, the page-table check):
//! Linux's debug hooks, with default bodies that do nothing. The kernel
//! keeps the defaults, so that after inlining they cost nothing there;
//! `crate::sim` (feature `std`) overrides them.
#![forbid(unsafe_code)]

use core::panic::Location;

use crate::addr::{CpuId, Order, Pfn, PhysAddr};
use crate::gfp::Gfp;
use crate::memmap::MemMap;
use crate::pgtable::TlbContext;

/// Interrupt state saved by [`Platform::irq_save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqState(pub bool);

/// What `mm` needs from the machine it runs on.
pub trait Platform: Send + Sync + 'static {
    /// The kernel virtual address at which physical address `pa` is mapped
    /// (the direct map). Valid for every frame the memmap describes.
    fn phys_to_virt(&self, pa: PhysAddr) -> *mut u8;

    /// The physical address behind a direct-map address, or `None` if `va`
    /// is not in the direct map (`virt_to_phys` / `virt_addr_valid`).
    fn virt_to_phys(&self, va: *const u8) -> Option<PhysAddr>;

    /// The CPU this code runs on. May change the moment it is read unless
    /// the caller runs with preemption or interrupts disabled; callers use it
    /// only to pick a per-CPU structure they then lock.
    fn cpu_id(&self) -> CpuId;

    /// The number of possible CPUs; every `cpu_id()` is below it.
    fn nr_cpus(&self) -> usize;

    /// Disables interrupts on this CPU and returns the previous state.
    /// Nests: `irq_restore` of the returned value undoes exactly this call.
    fn irq_save(&self) -> IrqState;

    /// Restores the interrupt state saved by [`Platform::irq_save`].
    fn irq_restore(&self, state: IrqState);

    /// Disables preemption on this CPU (nests; Linux's `preempt_disable`).
    /// Until the matching [`Platform::preempt_enable`], the caller stays on
    /// this CPU and no other task runs here, so `cpu_id()` is stable.
    fn preempt_disable(&self);

    /// Undoes one [`Platform::preempt_disable`]; at zero the platform may
    /// reschedule if a reschedule was requested meanwhile.
    fn preempt_enable(&self);

    /// Whether the caller runs in interrupt (hard IRQ or exception) context,
    /// where it must not block and must not wait for a lock its own CPU
    /// might hold.
    fn in_interrupt(&self) -> bool;

    /// Whether the caller may block (Linux's `preemptible()`): not in
    /// interrupt context, with preemption and interrupts enabled.
    fn may_sleep(&self) -> bool;

    /// Monotonic time since boot, in nanoseconds.
    fn now_ns(&self) -> u64;

    /// Blocks the calling task until [`Platform::wake_waiters`] is called or
    /// some time passes; returns early if `cond()` already holds. Spurious
    /// returns are allowed: callers loop (`while !cond() { p.wait(&cond) }`).
    /// Must not be called from interrupt context or with preemption disabled.
    fn wait(&self, cond: &dyn Fn() -> bool);

    /// Wakes every task blocked in [`Platform::wait`] so that it re-checks
    /// its condition. Callable from any context, interrupts included.
    fn wake_waiters(&self);

    /// Invalidates the TLB entries of the address space whose top-level
    /// table is at `root`: those of `[start, end)`, or all of them for
    /// `None`, paging-structure caches included (`flush_tlb_mm_range()`).
    /// On return no CPU uses a stale translation of that range: the
    /// platform flushes every CPU of `ctx`'s mask that still runs the
    /// address space (a TLB shootdown) and bumps `ctx`'s generation.
    fn flush_tlb(&self, root: PhysAddr, ctx: &TlbContext, range: Option<(u64, u64)>);

    // ----- Debug hooks: no-ops unless the platform is an instrument -----

    /// Fault injection for the page allocator (`should_fail_alloc_page()`):
    /// true makes this `alloc_pages` call fail with no memory.
    #[inline(always)]
    fn should_fail_alloc_page(&self, _gfp: Gfp, _order: Order) -> bool {
        false
    }

    /// Fault injection for slab allocations (`should_failslab()`): true
    /// makes this object allocation (or sheaf prefill) fail.
    #[inline(always)]
    fn should_failslab(&self, _gfp: Gfp) -> bool {
        false
    }

    /// A block of 2^`order` frames at `pfn` leaves the page allocator,
    /// before it is zeroed (`post_alloc_hook()`: `kernel_unpoison_pages()`
    /// checks the free poison, `set_page_owner()` records `caller`).
    #[inline(always)]
    fn post_alloc_hook(&self, _pfn: Pfn, _order: Order, _caller: &'static Location<'static>) {}

    /// A block of 2^`order` frames at `pfn` is being freed: its last
    /// reference is gone and its checks passed (`free_pages_prepare()`:
    /// `page_table_check_free()`, `kernel_poison_pages()`).
    #[inline(always)]
    fn free_pages_prepare(&self, _pfn: Pfn, _order: Order) {}

    /// Whether leaf PTE writes are reported to [`Platform::page_table_check_set`]
    /// (`CONFIG_PAGE_TABLE_CHECK`). A constant, so that the PTE helpers
    /// compile to plain stores when it is false.
    const PAGE_TABLE_CHECK: bool = false;

    /// A leaf PTE changed from `old` to `new` (raw entries): the page-table
    /// check counts the mappings of each frame (`page_table_check_pte_set()`,
    /// `page_table_check_pte_clear()`). Called only if
    /// [`Platform::PAGE_TABLE_CHECK`].
    #[inline(always)]
    fn page_table_check_set(&self, _old: u64, _new: u64) {}

    /// The page allocator over `memmap` is being torn down: the
    /// simulator's leak check. Never called in the kernel, whose
    /// allocator lives forever.
    #[inline(always)]
    fn page_alloc_teardown(&self, _memmap: &MemMap) {}

    /// A slab cache was destroyed with `objects` still allocated (after
    /// `kmem_cache_destroy` reported them): the simulator's object-level
    /// leak check.
    #[cold]
    fn slab_leak(&self, _cache: &str, _objects: u64) {}
}

/// Preemption stays disabled while this guard lives.
#[must_use = "preemption is re-enabled when the guard is dropped"]
pub struct PreemptGuard<'a, P: Platform + ?Sized> {
    platform: &'a P,
    /// Not Send: must be dropped on the CPU that created it.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl<'a, P: Platform + ?Sized> PreemptGuard<'a, P> {
    /// Disables preemption until the guard is dropped.
    pub fn new(platform: &'a P) -> Self {
        platform.preempt_disable();
        Self {
            platform,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl<P: Platform + ?Sized> Drop for PreemptGuard<'_, P> {
    fn drop(&mut self) {
        self.platform.preempt_enable();
    }
}

/// Interrupts stay disabled while this guard lives (`local_irq_save`).
#[must_use = "interrupts are restored when the guard is dropped"]
pub struct IrqGuard<'a, P: Platform + ?Sized> {
    platform: &'a P,
    state: IrqState,
}

impl<'a, P: Platform + ?Sized> IrqGuard<'a, P> {
    /// Disables interrupts until the guard is dropped.
    pub fn new(platform: &'a P) -> Self {
        let state = platform.irq_save();
        Self { platform, state }
    }
}

impl<P: Platform + ?Sized> Drop for IrqGuard<'_, P> {
    fn drop(&mut self) {
        self.platform.irq_restore(self.state);
    }
}

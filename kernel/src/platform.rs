//! The kernel's implementation of `mm`'s machine seam, [`mm::Platform`].
//!
//! | method            | implementation                                      |
//! |-------------------|-----------------------------------------------------|
//! | `phys_to_virt`    | the bootloader's direct map at `phys_offset`        |
//! | `cpu_id`          | `percpu::cpu_id()` (GS-relative)                    |
//! | `nr_cpus`         | `percpu::nr_possible_cpus()` (`nr_cpu_ids`)         |
//! | `irq_save`        | `pushf; cli`: returns whether IF was set            |
//! | `irq_restore`     | `sti` only if IF was set (nests)                    |
//! | `preempt_disable` | `sched::preempt_disable` (per-CPU count)            |
//! | `preempt_enable`  | `sched::preempt_enable` (may reschedule at 0)       |
//! | `in_interrupt`    | hard-IRQ nesting > 0                                |
//! | `now_ns`          | `time::now_ns()`: calibrated TSC, 0 before init     |
//! | `wait`            | block on the "mm wait queue" with a 1-tick timeout  |
//! | `wake_waiters`    | wake everything on that queue (any context)         |
//! | `flush_tlb`       | `arch::tlb` shootdown: `invlpg` up to 33 pages, else reload CR3, on each CPU of the mask |
//!
//! `nr_cpus` counts *possible* CPUs, as the `Platform` contract asks (every
//! `cpu_id()` is below it) and as `mm` sizes its per-CPU arrays with it: it
//! is fixed at boot before `memory::init`, from the ACPI MADT (`smp`).
//! CPUs that are possible but never come online are RCU's business (its own
//! online/offline API).
//!
//! # Context
//!
//! `wait` sleeps, so it must not be called from interrupt context, with
//! preemption disabled or with interrupts disabled once the scheduler runs
//! (`BUG: sleeping function called from invalid context`); before the
//! scheduler runs it spins once and returns (a spurious return, which the
//! contract allows). Everything else works in any context.
#![forbid(unsafe_code)]

use mm::platform::{IrqState, Platform};
use mm::{CpuId, PhysAddr};

use crate::sched::{self, WaitQueue};
use crate::{percpu, sync, time};

/// The kernel's [`Platform`]: the bootloader's direct map, per-CPU data, the
/// scheduler and the TSC clock.
pub struct KernelPlatform {
    /// Virtual address of physical address 0 in the direct map.
    phys_offset: u64,
}

impl KernelPlatform {
    /// The platform over the direct map at `phys_offset`.
    pub const fn new(phys_offset: u64) -> Self {
        Self { phys_offset }
    }

    /// Virtual address of physical address 0 in the direct map.
    pub fn phys_offset(&self) -> u64 {
        self.phys_offset
    }
}

/// The one queue `Platform::wait` blocks on and `wake_waiters` wakes.
static MM_WAIT: WaitQueue = WaitQueue::new("mm_wait");

/// How long `Platform::wait` blocks at most before re-checking: one tick.
pub const MM_WAIT_TIMEOUT_NS: u64 = time::TICK_NS;

impl Platform for KernelPlatform {
    fn phys_to_virt(&self, pa: PhysAddr) -> *mut u8 {
        (self.phys_offset + pa.as_u64()) as *mut u8
    }

    /// The direct map covers physical addresses below 2^46 (x86_64's
    /// largest); callers check the frame against the memmap.
    fn virt_to_phys(&self, va: *const u8) -> Option<PhysAddr> {
        let offset = (va as u64).checked_sub(self.phys_offset)?;
        (offset < 1 << 46).then(|| PhysAddr::new(offset))
    }

    fn cpu_id(&self) -> CpuId {
        CpuId::new(percpu::cpu_id())
    }

    fn nr_cpus(&self) -> usize {
        percpu::nr_possible_cpus()
    }

    fn irq_save(&self) -> IrqState {
        IrqState(sync::irq_save())
    }

    fn irq_restore(&self, state: IrqState) {
        sync::irq_restore(state.0);
    }

    fn preempt_disable(&self) {
        sched::preempt_disable();
    }

    fn preempt_enable(&self) {
        sched::preempt_enable();
    }

    fn in_interrupt(&self) -> bool {
        percpu::hardirq_count() > 0
    }

    fn may_sleep(&self) -> bool {
        sched::is_running()
            && percpu::preempt_count() == 0
            && percpu::hardirq_count() == 0
            && x86_64::instructions::interrupts::are_enabled()
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn wait(&self, cond: &dyn Fn() -> bool) {
        if !sched::is_running() {
            core::hint::spin_loop();
            return;
        }
        MM_WAIT.wait_until_timeout(cond, MM_WAIT_TIMEOUT_NS);
    }

    fn wake_waiters(&self) {
        MM_WAIT.wake_all();
    }

    /// A TLB shootdown (`arch::tlb::flush_tlb_mm_range`): this CPU and
    /// every other CPU of `ctx`'s mask that still runs the address space,
    /// by IPI, waited for; `invlpg` per page up to 33 pages, else a full
    /// flush (global kernel entries aside, which user mappings never are).
    fn flush_tlb(&self, _root: PhysAddr, ctx: &mm::pgtable::TlbContext, range: Option<(u64, u64)>) {
        crate::arch::tlb::flush_tlb_mm_range(ctx, range);
    }
}

//! The one seam between `mm` and the machine.
//!
//! `mm` never executes a privileged instruction. What it needs from the
//! machine it asks of a [`Platform`]: the kernel implements it on x86_64, and
//! the simulated machine in [`crate::sim`] implements it for host tests, so
//! the same allocator code runs in both places.
//!
//! This allocators need the direct map, the CPU number and interrupt
//! masking; later subsystems add TLB flushes, the page-table root and RCU
//! hooks here.
#![forbid(unsafe_code)]

use crate::addr::{CpuId, PhysAddr};

/// Interrupt state saved by [`Platform::irq_save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqState(pub bool);

/// What `mm` needs from the machine it runs on.
pub trait Platform: Send + Sync {
    /// The kernel virtual address at which physical address `pa` is mapped
    /// (the direct map). Valid for every frame the memmap describes.
    fn phys_to_virt(&self, pa: PhysAddr) -> *mut u8;

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

//! The OOM reaper's address-space half (`mm/oom_kill.c`,
//! `__oom_reap_task_mm()`): the private memory of a process that is
//! dying is unmapped at once, before its threads get to run their exit,
//! so that its frames come back while it is still a process. Used by
//! `process_mrelease()`, which a low-memory killer calls after its
//! SIGKILL.
//!
//! # Context
//!
//! Takes the mmap lock for read, as Linux's reaper does: the VMAs stay,
//! only their pages go, as with `MADV_DONTNEED` racing the owner's faults.
//! Shared memory is left alone (its pages belong to the object and may be
//! mapped elsewhere).
#![forbid(unsafe_code)]

use super::Mm;
use super::vma::VmFlags;
use super::zap::ZapDetails;
use crate::pgtable::MmuGather;
use crate::platform::Platform;

impl<P: Platform> Mm<'_, '_, P> {
    /// Unmaps the pages of every private VMA (`__oom_reap_task_mm()`:
    /// anonymous or not shared; `VM_PFNMAP` skipped) and returns the
    /// number of pages the address space mapped before minus after (its
    /// `MM_ANONPAGES` drop). The VMAs and page tables stay for the exit.
    pub fn oom_reap(&self) -> u64 {
        let _l = self.mmap_lock.read(self.platform());
        let before = self.rss_anon.load(core::sync::atomic::Ordering::Relaxed);
        let mut tlb = MmuGather::new(&self.pt, false);
        for (_, v) in self.vmas_in(0, u64::MAX) {
            if v.flags.intersects(VmFlags::SHARED | VmFlags::PFNMAP) || v.shmem.is_some() {
                continue;
            }
            self.zap_range(&mut tlb, v.start, v.end, ZapDetails::default());
        }
        tlb.finish();
        before.saturating_sub(self.rss_anon.load(core::sync::atomic::Ordering::Relaxed))
    }
}

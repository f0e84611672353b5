//! The anonymous page-fault path (`handle_mm_fault()`,
//! `do_anonymous_page()`, `do_wp_page()`).

use core::sync::atomic::Ordering::Relaxed;

use super::{Mm, VmFlags};
use crate::addr::PAGE_SIZE;
use crate::gfp::Gfp;
use crate::pgtable::{Entry, PteFlags};
use crate::platform::Platform;

/// The access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAccess {
    Read,
    Write,
    Exec,
}

/// `si_code` of the SIGSEGV a refused fault raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegvCode {
    /// No VMA there (`SEGV_MAPERR`).
    MapErr,
    /// The VMA forbids the access (`SEGV_ACCERR`).
    AccErr,
}

/// Why a fault could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// Deliver SIGSEGV (`VM_FAULT_SIGSEGV`).
    Segv(SegvCode),
    /// Out of memory (`VM_FAULT_OOM`).
    Oom,
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Resolves a user fault at `addr` (`handle_mm_fault()`), taking the
    /// mmap lock for read. Returns when the access can be retried.
    pub fn handle_fault(&self, addr: u64, access: FaultAccess) -> Result<(), FaultError> {
        let _l = self.mmap_lock.read();
        let Some(vma) = self.vma_lookup(addr) else {
            return Err(FaultError::Segv(SegvCode::MapErr));
        };
        // access_error(): writes need VM_WRITE, instruction fetches
        // VM_EXEC, reads any access right.
        let allowed = match access {
            FaultAccess::Write => vma.flags.contains(VmFlags::WRITE),
            FaultAccess::Exec => vma.flags.contains(VmFlags::EXEC),
            FaultAccess::Read => vma.flags.intersects(VmFlags::ACCESS),
        };
        if !allowed {
            return Err(FaultError::Segv(SegvCode::AccErr));
        }
        let addr = addr & !(PAGE_SIZE - 1);
        let write = access == FaultAccess::Write;
        let prot = vma.flags.pte_flags();
        // A page allocated with no lock held, used if the PTE is still
        // what we saw (Linux allocates before taking the PTE lock).
        let mut fresh = None;
        loop {
            let mut ptl = self
                .pt
                .pte_alloc_map_lock(addr)
                .map_err(|_| FaultError::Oom)?;
            let pte = ptl.get(addr);
            let need_page = pte.is_none() && (write || vma.flags.contains(VmFlags::SHARED))
                || pte.is_present() && write && !pte.is_writable();
            if pte.is_none() && !need_page {
                // Read fault on private memory: the shared zero page.
                ptl.set(
                    addr,
                    Entry::new(self.vm.zero_page(), prot | PteFlags::SPECIAL),
                );
                break;
            }
            if pte.is_present() && !(write && !pte.is_writable()) {
                // Another thread resolved it (or a spurious fault).
                break;
            }
            // A write to a read-only PTE of a page we map alone: reuse it
            // (`wp_can_reuse_anon_folio()`); fork's shared pages and the
            // zero page are copied.
            if pte.is_present() && !pte.flags().contains(PteFlags::SPECIAL) {
                let page = self.vm.pa.memmap().page(pte.pfn());
                if page.mapcount() == 1 && page.refcount() == 1 {
                    ptl.set(
                        addr,
                        pte.with_flags(pte.flags() | PteFlags::WRITE | PteFlags::DIRTY),
                    );
                    break;
                }
            }
            let Some(pfn) = fresh.take() else {
                drop(ptl);
                let pfn = self
                    .vm
                    .pa
                    .alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, 0)
                    .map_err(|_| FaultError::Oom)?;
                fresh = Some(pfn);
                continue;
            };
            if pte.is_present() && !pte.flags().contains(PteFlags::SPECIAL) {
                self.copy_page(pte.pfn(), pfn);
            }
            let mut flags = prot | PteFlags::DIRTY;
            if write && vma.flags.contains(VmFlags::WRITE) {
                flags |= PteFlags::WRITE;
            }
            self.vm.pa.memmap().page(pfn).mapcount_add(1);
            self.rss_anon.fetch_add(1, Relaxed);
            let old = ptl.get_and_clear(addr);
            ptl.set(addr, Entry::new(pfn, flags));
            if old.is_present() {
                // The old translation must be gone before the old page is
                // released (`ptep_clear_flush()`).
                self.vm
                    .pa
                    .platform()
                    .flush_tlb(self.pt.root(), Some((addr, addr + PAGE_SIZE)));
                if !old.flags().contains(PteFlags::SPECIAL) {
                    let page = self.vm.pa.memmap().page(old.pfn());
                    page.mapcount_add(-1);
                    self.rss_anon.fetch_sub(1, Relaxed);
                    drop(ptl);
                    if let Err(bad) = self.vm.pa.free_pages(old.pfn(), 0) {
                        log::error!("BUG: CoW release of {:?}: {bad:?}", old.pfn());
                    }
                }
            }
            return Ok(());
        }
        if let Some(pfn) = fresh
            && let Err(bad) = self.vm.pa.free_pages(pfn, 0)
        {
            log::error!("BUG: freeing unused fault page {pfn:?}: {bad:?}");
        }
        Ok(())
    }

    fn copy_page(&self, from: crate::addr::Pfn, to: crate::addr::Pfn) {
        let platform = self.vm.pa.platform();
        let src = platform.phys_to_virt(from.phys_addr());
        let dst = platform.phys_to_virt(to.phys_addr());
        // SAFETY: two distinct frames in the direct map: `from` is mapped
        // by the PTE we hold locked, `to` is freshly allocated and ours.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, PAGE_SIZE as usize) };
    }
}

//! Zapping: clearing the PTEs of a range and handing their pages to an
//! mmu_gather (`unmap_page_range()` .. `zap_pte_range()`).

use core::sync::atomic::Ordering::Relaxed;

use super::Mm;
use crate::addr::PAGE_SIZE;
use crate::pgtable::{MmuGather, PMD_SIZE, PteFlags, addr_end};
use crate::platform::Platform;

impl<P: Platform> Mm<'_, '_, P> {
    /// Clears every PTE in `[start, end)`; pages go to `tlb` and are freed
    /// after its flush. The caller holds the mmap lock and keeps the VMAs
    /// of the range stable.
    pub(super) fn zap_range(&self, tlb: &mut MmuGather<'_, '_, P>, start: u64, end: u64) {
        let mut addr = start;
        while addr < end {
            let next = addr_end(addr, end, PMD_SIZE);
            // No table (or it went away meanwhile): nothing mapped here.
            let Some(mut ptl) = self.pt.pte_offset_map_lock(addr) else {
                addr = next;
                continue;
            };
            let mut force_flush = false;
            {
                let mut lazy = ptl.lazy_mmu();
                while addr < next {
                    let here = addr;
                    addr += PAGE_SIZE;
                    if lazy.get(here).is_none() {
                        continue;
                    }
                    let old = lazy.get_and_clear(here);
                    tlb.adjust_range(here, PAGE_SIZE);
                    if !old.is_present() || old.flags().contains(PteFlags::SPECIAL) {
                        continue;
                    }
                    self.vm.pa.memmap().page(old.pfn()).mapcount_add(-1);
                    self.rss_anon.fetch_sub(1, Relaxed);
                    if tlb.remove_page(old.pfn(), here) {
                        force_flush = true;
                        break;
                    }
                }
            }
            // Lazy mode left: the cleared PTEs are in the table. Flush
            // before other CPUs can see the lock free, free after.
            if force_flush {
                tlb.flush_mmu_tlbonly();
            }
            drop(ptl);
            if force_flush {
                tlb.flush_mmu();
            }
        }
    }
}

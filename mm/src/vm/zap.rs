//! Zapping: clearing the PTEs of a range and handing their pages to an
//! mmu_gather (`unmap_page_range()` .. `zap_pte_range()`). A zap with
//! `reclaim_pt` also frees the PTE tables it empties, through
//! `pgtable/pt_reclaim.rs` (Linux 6.14, `mm/pt_reclaim.c`).
//!
//! # Context
//!
//! The caller holds the mmap lock (read for `MADV_DONTNEED`, write for
//! munmap and exit) and keeps the range's VMAs in place.
//!
//! # Ordering
//!
//! `include/asm-generic/tlb.h`'s rule: unhook the page, invalidate the
//! TLB, free the page. PTEs are cleared under the PTE lock and their
//! pages queued on the mmu_gather, which frees them only after its TLB
//! flush. When the gather's batch fills, the TLB is flushed before the
//! PTE lock is dropped (`force_flush`) and the pages freed after.
//!
//! Whether an emptied PTE table may be freed, and how (the fast path
//! under the lock the zap holds, or the slow path's rescan), is
//! `pgtable/pt_reclaim.rs`'s contract.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::Mm;
use crate::addr::{PAGE_SIZE, Pfn};
use crate::folio::Folio;
use crate::pgtable::{Entry, MmuGather, PMD_SIZE, PteFlags, addr_end, reclaim_pt_is_enabled};
use crate::platform::Platform;

/// How to zap (`struct zap_details`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ZapDetails {
    /// Free a PTE table the zap leaves empty (`reclaim_pt`; only
    /// MADV_DONTNEED sets it: munmap and exit free tables through
    /// `free_pgd_range()`).
    pub reclaim_pt: bool,
}

/// Whether `e` is a present, refcounted mapping of frame `pfn` (the
/// next PTE of a folio batch).
pub(super) fn maps_page(e: Entry, pfn: Pfn) -> bool {
    e.is_present() && !e.flags().contains(PteFlags::SPECIAL) && e.pfn() == pfn
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Clears every PTE in `[start, end)`; pages go to `tlb` and are freed
    /// after its flush. The caller holds the mmap lock and keeps the VMAs
    /// of the range stable.
    pub(super) fn zap_range(
        &self,
        tlb: &mut MmuGather<'_, '_, P>,
        start: u64,
        end: u64,
        details: ZapDetails,
    ) {
        self.update_hiwater_rss();
        let mut addr = start;
        while addr < end {
            let next = addr_end(addr, end, PMD_SIZE);
            self.zap_pte_range(tlb, addr, next, details);
            addr = next;
        }
    }

    /// Zaps `[start, end)` within one PTE table (`zap_pte_range()`).
    fn zap_pte_range(
        &self,
        tlb: &mut MmuGather<'_, '_, P>,
        start: u64,
        end: u64,
        details: ZapDetails,
    ) {
        // Only a zap of the whole table can leave it empty for sure
        // (`reclaim_pt_is_enabled()`).
        let can_reclaim = details.reclaim_pt
            && self.vm.pt_reclaim.load(Relaxed)
            && reclaim_pt_is_enabled(start, end);
        // Whether the lock was held from the first entry to the last.
        let mut direct_reclaim = true;
        let mut addr = start;
        let mut cleared_pmd = None;
        loop {
            // No table (or it went away meanwhile): nothing mapped here.
            let Some(mut ptl) = self.pt.pte_offset_map_lock(addr) else {
                return;
            };
            let mut force_flush = false;
            {
                let mut lazy = ptl.lazy_mmu();
                while addr < end {
                    // Runs of none entries are skipped without work.
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
                    let folio = Folio::of(self.vm.pa.memmap(), old.pfn());
                    let idx = folio.page_idx(old.pfn());
                    // zap_present_ptes(): the following PTEs that map the
                    // next pages of the same folio go as one batch
                    // (folio_pte_batch()), with one rmap, RSS and
                    // reference update for all of them.
                    let mut nr = 1;
                    let mut dirty = old.flags().contains(PteFlags::DIRTY);
                    if folio.is_large() {
                        let max = (folio.nr_pages() - idx).min(((end - here) / PAGE_SIZE) as usize);
                        while nr < max && maps_page(lazy.get(addr), old.pfn().add(nr as u64)) {
                            dirty |= lazy.get_and_clear(addr).flags().contains(PteFlags::DIRTY);
                            addr += PAGE_SIZE;
                            nr += 1;
                        }
                    }
                    // zap_present_folio_ptes(): a file (here shmem)
                    // folio keeps the dirtiness its PTEs carried.
                    if dirty && folio.is_shmem() {
                        folio.mark_dirty();
                    }
                    self.vm.remove_rmap_ptes(&folio, idx, nr, self.id());
                    // mm_counter(): shmem pages count apart; the page
                    // stays in its object (the object's reference).
                    if folio.is_shmem() {
                        self.rss_shmem.fetch_sub(nr as u64, Relaxed);
                    } else {
                        self.rss_anon.fetch_sub(nr as u64, Relaxed);
                    }
                    if tlb.remove_folio_pages(old.pfn(), nr, here) {
                        force_flush = true;
                        break;
                    }
                }
            }
            // Lazy mode left: the cleared PTEs are in the table.
            // Fast path: the whole table emptied under one lock hold. A
            // failed PMD trylock leaves it to the slow path.
            if can_reclaim && direct_reclaim && addr == end {
                cleared_pmd = ptl.try_clear_pmd();
            }
            if force_flush {
                // Flush before other CPUs can see the lock free; free the
                // pages after.
                tlb.flush_mmu_tlbonly();
            }
            drop(ptl);
            if force_flush {
                tlb.flush_mmu();
            }
            if addr == end {
                break;
            }
            // The lock was dropped midway: another thread may refill what
            // we scanned, so only a full rescan may free the table (the
            // 6.14-rc fix).
            direct_reclaim = false;
        }
        if !can_reclaim {
            return;
        }
        self.pt.reclaim_pte_table(tlb, cleared_pmd, start);
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Zaps every PTE of this address space in a VMA of `obj` at page
    /// offsets `first` and after, private copies included
    /// (`unmap_mapping_range()` with `even_cows`, as a truncation calls
    /// it). Takes the mmap lock for read.
    pub fn unmap_mapping_range(&self, obj: crate::shmem::ShmemRef, first: u64) {
        self.unmap_mapping_pages(obj, first, u64::MAX, true);
    }

    /// Zaps the PTEs of this address space that map page offsets
    /// `[first, end)` of `obj` (`unmap_mapping_pages()`): with
    /// `even_cows` every PTE of those pages, else only those mapping the
    /// object's own folios, so private copies stay (a hole punch).
    /// Visits only this address space's VMAs of `obj` over the range, as
    /// the object's `i_mmap` lists them. Takes the mmap lock for read.
    pub fn unmap_mapping_pages(
        &self,
        obj: crate::shmem::ShmemRef,
        first: u64,
        end: u64,
        even_cows: bool,
    ) {
        use crate::addr::PAGE_SHIFT;
        if first >= end {
            return;
        }
        let _l = self.mmap_lock.read(self.platform());
        let mut tlb = MmuGather::new(&self.pt, false);
        let mine = obj.i_mmap_query(first, end - 1);
        for e in mine.iter().filter(|e| e.mm == self.id()) {
            // Our entries change only under our mmap write lock (S6).
            let v = self
                .vma_lookup(e.start)
                .expect("an i_mmap entry names a VMA of its address space");
            debug_assert!(v.shmem == Some(obj) && v.start == e.start && v.pgoff == e.pgoff);
            let vend = v.pgoff + v.pages();
            let start = v.start + (first.saturating_sub(v.pgoff) << PAGE_SHIFT);
            let stop = v.end - (vend.saturating_sub(end) << PAGE_SHIFT);
            if even_cows {
                self.zap_range(&mut tlb, start, stop, ZapDetails::default());
                continue;
            }
            let mut addr = start;
            while addr < stop {
                let file_page = self.pt.get_pte(addr).is_some_and(|e| {
                    e.is_present()
                        && !e.flags().contains(PteFlags::SPECIAL)
                        && Folio::of(self.vm.pa.memmap(), e.pfn()).is_shmem()
                });
                if file_page {
                    self.zap_range(&mut tlb, addr, addr + PAGE_SIZE, ZapDetails::default());
                }
                addr += PAGE_SIZE;
            }
        }
        tlb.finish();
    }
}

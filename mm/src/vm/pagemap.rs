//! `/proc/PID/pagemap` entries (Linux's `fs/proc/task_mmu.c`:
//! `pte_to_pagemap_entry()`, `pagemap_pte_hole()`, 6.15's rule for
//! `PM_MMAP_EXCLUSIVE`): one 64-bit word per virtual page.
//!
//! ```text
//!   bits 0..54  PFN, if present (and the reader may see it)
//!   bit  55     soft-dirty (the VMA's VM_SOFTDIRTY; no PTE bit here)
//!   bit  56     exclusively mapped (PM_MMAP_EXCLUSIVE)
//!   bit  61     a file or shared-anonymous page (PM_FILE)
//!   bit  63     present (PM_PRESENT; a PROT_NONE page is present)
//! ```
//!
//! A page is exclusively mapped when, with per-page mapcounts, the page
//! itself is mapped once (`folio_precise_page_mapcount() == 1`), and
//! without them when its folio is certainly mapped by this MM alone
//! (`!folio_maybe_mapped_shared()`): a large folio shared after fork
//! then shows every page not exclusive, even the ones only this MM maps.
//! The zero page is present but neither file nor exclusive
//! (`vm_normal_page()` gives no page for it).
//!
//! # Context
//!
//! Takes the mmap lock for read and each PTE table's lock while reading
//! it, as [`Mm::smaps`](super::Mm::smaps).
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::{Mm, VmFlags, Vma};
use crate::addr::PAGE_SIZE;
use crate::folio::{Folio, MapcountMode};
use crate::pgtable::{Entry, PMD_SIZE, PteFlags, addr_end};
use crate::platform::Platform;

/// Bits 0..54: the page frame number (`PM_PFRAME_MASK`).
pub const PM_PFRAME_MASK: u64 = (1 << 55) - 1;
/// Bit 55: soft-dirty (`PM_SOFT_DIRTY`).
pub const PM_SOFT_DIRTY: u64 = 1 << 55;
/// Bit 56: mapped by this address space alone (`PM_MMAP_EXCLUSIVE`).
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
/// Bit 61: a file page or shared anonymous memory (`PM_FILE`).
pub const PM_FILE: u64 = 1 << 61;
/// Bit 62: swapped out (`PM_SWAP`; no swap yet).
pub const PM_SWAP: u64 = 1 << 62;
/// Bit 63: present (`PM_PRESENT`).
pub const PM_PRESENT: u64 = 1 << 63;

impl<P: Platform> Mm<'_, '_, P> {
    /// The pagemap entries of the pages `[start, end)` (page aligned),
    /// appended to `out`; the PFN only if `show_pfn` (Linux shows it to
    /// `CAP_SYS_ADMIN` only). Addresses outside every VMA give 0.
    pub fn pagemap(&self, start: u64, end: u64, show_pfn: bool, out: &mut Vec<u64>) {
        debug_assert!(start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE));
        let _l = self.mmap_lock.read(self.platform());
        let vmas = self.vmas_in(start, end);
        let mode = self.vm.mapcount_mode();
        let mut vi = 0;
        let mut addr = start;
        while addr < end {
            let next = addr_end(addr, end, PMD_SIZE);
            let ptl = self.pt.pte_offset_map_lock(addr);
            while addr < next {
                while vmas.get(vi).is_some_and(|(_, v)| v.end <= addr) {
                    vi += 1;
                }
                let vma = vmas.get(vi).map(|(_, v)| v).filter(|v| v.start <= addr);
                out.push(match (vma, &ptl) {
                    (None, _) => 0,
                    (Some(v), Some(ptl)) => {
                        self.pte_to_pagemap_entry(v, ptl.get(addr), show_pfn, mode)
                    }
                    (Some(v), None) => soft_dirty(v),
                });
                addr += PAGE_SIZE;
            }
        }
    }

    /// `pte_to_pagemap_entry()` for a PTE of `v`.
    fn pte_to_pagemap_entry(&self, v: &Vma, e: Entry, show_pfn: bool, mode: MapcountMode) -> u64 {
        let mut flags = soft_dirty(v);
        if !e.is_present() {
            return flags;
        }
        flags |= PM_PRESENT;
        let frame = if show_pfn {
            e.pfn().as_u64() & PM_PFRAME_MASK
        } else {
            0
        };
        // vm_normal_page(): the zero page has none.
        if !e.flags().contains(PteFlags::SPECIAL) {
            let folio = Folio::of(self.vm.pa.memmap(), e.pfn());
            if folio.is_shmem() {
                flags |= PM_FILE;
            }
            let idx = folio.page_idx(e.pfn());
            if page_mapped_exclusively(&folio, idx, mode) {
                flags |= PM_MMAP_EXCLUSIVE;
            }
        }
        frame | flags
    }
}

/// `__folio_page_mapped_exclusively()` (6.15).
fn page_mapped_exclusively(folio: &Folio<'_>, idx: usize, mode: MapcountMode) -> bool {
    match mode {
        MapcountMode::PerPage => folio.precise_page_mapcount(idx) == 1,
        MapcountMode::NoPageMapcount => !folio.maybe_mapped_shared(),
    }
}

/// `PM_SOFT_DIRTY` of a VMA marked soft-dirty (`VM_SOFTDIRTY`).
fn soft_dirty(v: &Vma) -> u64 {
    if v.flags.contains(VmFlags::SOFTDIRTY) {
        PM_SOFT_DIRTY
    } else {
        0
    }
}

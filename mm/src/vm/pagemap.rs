//! `/proc/PID/pagemap` entries (Linux's `fs/proc/task_mmu.c`:
//! `pte_to_pagemap_entry()`, `pagemap_pte_hole()`, 6.15's rule for
//! `PM_MMAP_EXCLUSIVE`): one 64-bit word per virtual page.
//!
//! ```text
//!   bits 0..54  PFN, if present (and the reader may see it)
//!   bit  55     soft-dirty (the PTE's, or the VMA's VM_SOFTDIRTY)
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
//! `/proc/PID/clear_refs` ([`Mm::clear_refs`], `clear_refs_write()`)
//! lives here too: it resets what pagemap and smaps report. Soft-dirty
//! tracking (Documentation/admin-guide/mm/soft-dirty.rst): writing 4
//! clears `VM_SOFTDIRTY` on every VMA and the soft-dirty bit of every
//! PTE, and write-protects the present ones, so the next write faults and
//! the fault's `pte_mkdirty()` marks the PTE again. New VMAs (mmap, brk)
//! start soft-dirty as a whole, merges keep the flag (`VM_STICKY`),
//! mremap marks the PTEs it moves.
//!
//! # Context
//!
//! `pagemap` takes the mmap lock for read and each PTE table's lock while
//! reading it, as [`Mm::smaps`](super::Mm::smaps); `clear_refs` the mmap
//! lock for write.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::{Mm, VmFlags, Vma};
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::folio::{Folio, MapcountMode};
use crate::pgtable::{Entry, PMD_SIZE, PteFlags, TASK_SIZE, addr_end};
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
        if e.flags().contains(PteFlags::SOFT_DIRTY) {
            flags |= PM_SOFT_DIRTY;
        }
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

/// What a write to `/proc/PID/clear_refs` asks (`enum clear_refs_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearRefs {
    /// 1: the referenced (accessed) bits of every page.
    All = 1,
    /// 2: those of anonymous memory only (VMAs without a file).
    Anon = 2,
    /// 3: those of file (here shmem) mappings only.
    Mapped = 3,
    /// 4: the soft-dirty bits, write-protecting the pages.
    SoftDirty = 4,
    /// 5: the peak RSS (`VmHWM`) becomes the current RSS.
    MmHiwaterRss = 5,
}

impl ClearRefs {
    /// Parses what was written as `clear_refs_write()` does: at most 12
    /// bytes are looked at, surrounding white space stripped, a decimal
    /// `int` (`kstrtoint()`: an optional sign, a final newline allowed
    /// before the strip already removed it; `ERANGE` on overflow), then
    /// `EINVAL` outside 1..=5.
    pub fn parse(text: &[u8]) -> Result<ClearRefs> {
        let text = &text[..text.len().min(12)];
        let text = core::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Errno::EINVAL);
        }
        let v: i32 = text.parse().map_err(|_| Errno::ERANGE)?;
        Ok(match v {
            1 => ClearRefs::All,
            2 => ClearRefs::Anon,
            3 => ClearRefs::Mapped,
            4 => ClearRefs::SoftDirty,
            5 => ClearRefs::MmHiwaterRss,
            _ => return Err(Errno::EINVAL),
        })
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// `clear_refs_write()` after the parse, under the mmap lock for
    /// write: resets the peak RSS (5), or walks every VMA
    /// (`clear_refs_test_walk()`: 2 skips shmem-backed VMAs, which have a
    /// file in Linux, 3 the others) and clears each present PTE's
    /// accessed bit (1-3), or each PTE's soft-dirty bit with its write
    /// permission and every VMA's `VM_SOFTDIRTY` (4,
    /// `clear_soft_dirty()`). Only 4 flushes the TLB, once for the whole
    /// address space: it removes write permission, which a stale entry
    /// would keep. 1-3 only lose accuracy to a stale entry (a cached
    /// translation does not set the accessed bit again), and Linux's
    /// `ptep_test_and_clear_young()` does not flush for them either.
    pub fn clear_refs(&self, what: ClearRefs) {
        let mut l = self.mmap_lock.write(self.platform());
        if what == ClearRefs::MmHiwaterRss {
            self.reset_hiwater_rss();
            return;
        }
        if what == ClearRefs::SoftDirty {
            for (p, v) in self.vmas_in(0, TASK_SIZE) {
                if v.flags.contains(VmFlags::SOFTDIRTY) {
                    // vm_flags_clear() + vma_set_page_prot(): from now on
                    // a shared VMA maps read faults read-only too.
                    self.set_vma_flags(&mut l, p, v.flags - VmFlags::SOFTDIRTY);
                }
            }
        }
        let mut changed = false;
        for (_, v) in self.vmas_in(0, TASK_SIZE) {
            let file = v.shmem.is_some();
            if v.flags.contains(VmFlags::PFNMAP)
                || (what == ClearRefs::Anon && file)
                || (what == ClearRefs::Mapped && !file)
            {
                continue;
            }
            let mut addr = v.start;
            while addr < v.end {
                let next = addr_end(addr, v.end, PMD_SIZE);
                let Some(mut ptl) = self.pt.pte_offset_map_lock(addr) else {
                    addr = next;
                    continue;
                };
                while addr < next {
                    let e = ptl.get(addr);
                    let f = e.flags();
                    let new = if !e.is_present() {
                        e
                    } else if what == ClearRefs::SoftDirty {
                        e.with_flags(f - PteFlags::WRITE - PteFlags::SOFT_DIRTY)
                    } else if f.contains(PteFlags::SPECIAL) {
                        // vm_normal_folio(): the zero page is skipped.
                        e
                    } else {
                        e.with_flags(f - PteFlags::ACCESSED)
                    };
                    if new != e {
                        ptl.set(addr, new);
                        changed = true;
                    }
                    addr += PAGE_SIZE;
                }
            }
        }
        if changed && what == ClearRefs::SoftDirty {
            self.pt.flush_tlb(None);
        }
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

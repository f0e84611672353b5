//! What `/proc/PID/smaps` and `smaps_rollup` count (Linux's
//! `fs/proc/task_mmu.c`: `struct mem_size_stats`, `smaps_account()`,
//! `smaps_page_accumulate()`, as of 6.15 with and without per-page
//! mapcounts).
//!
//! [`Mm::smaps`] walks every present PTE of every VMA and adds each
//! mapped page to its VMA's [`MemSizeStats`]:
//!
//! - the zero page is not counted at all (`vm_normal_page()` returns no
//!   page for it);
//! - a folio whose only reference is this PTE (`folio_ref_count() == 1`)
//!   is private, its whole size Pss: it can be mapped nowhere else;
//! - otherwise, with per-page mapcounts, each page on its own: mapped
//!   twice or more it is shared and its Pss is `PAGE_SIZE / mapcount`,
//!   else private;
//! - without per-page mapcounts ([`MapcountMode::NoPageMapcount`]), every
//!   page of a folio counts the folio's average mapcount
//!   ([`Folio::average_page_mapcount`]) for its Pss, and is shared when
//!   the folio is maybe mapped by another MM
//!   ([`Folio::maybe_mapped_shared`]). So a 64 KiB folio half copied
//!   away after fork shows Pss 48 KiB in the parent with per-page
//!   mapcounts (8 pages its own, 8 halved) and 32 KiB without (16 pages
//!   at an average of 2), all of it shared: the difference Linux
//!   documents for `CONFIG_NO_PAGE_MAPCOUNT`.
//!
//! Pss is kept in fixed point with [`PSS_SHIFT`] fraction bits, as
//! Linux keeps it, so that thirds add up before the final shift.
//!
//! # Context
//!
//! Takes the mmap lock for read (the VMA set stays), and each PTE
//! table's lock while reading its entries (`pte_offset_map_lock()`); the
//! mapcounts read under it are a snapshot, as Linux's (no folio lock).
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use super::{Mm, VmFlags, Vma};
use crate::addr::PAGE_SIZE;
use crate::folio::{Folio, MapcountMode};
use crate::pgtable::{PMD_SIZE, PteFlags, addr_end};
use crate::platform::Platform;

/// Fraction bits of the Pss sums (Linux's `PSS_SHIFT`).
pub const PSS_SHIFT: u32 = 12;

/// One VMA's (or, summed, an address space's) memory as smaps shows it
/// (`struct mem_size_stats`). Sizes in bytes; the `pss*` and `swap_pss`
/// fields in bytes `<< PSS_SHIFT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemSizeStats {
    pub resident: u64,
    pub shared_clean: u64,
    pub shared_dirty: u64,
    pub private_clean: u64,
    pub private_dirty: u64,
    pub referenced: u64,
    pub anonymous: u64,
    /// Anonymous pages that `MADV_FREE` left clean (none yet: it acts as
    /// `MADV_DONTNEED`).
    pub lazyfree: u64,
    /// PMD-mapped folios (none: folios are PTE-mapped here).
    pub anonymous_thp: u64,
    pub shmem_thp: u64,
    pub file_thp: u64,
    /// Swapped-out pages (no swap yet).
    pub swap: u64,
    pub shared_hugetlb: u64,
    pub private_hugetlb: u64,
    pub ksm: u64,
    pub pss: u64,
    pub pss_anon: u64,
    pub pss_file: u64,
    pub pss_shmem: u64,
    pub pss_dirty: u64,
    pub pss_locked: u64,
    pub swap_pss: u64,
}

impl MemSizeStats {
    /// Adds `o` field by field (`smaps_rollup` sums its VMAs).
    pub fn add(&mut self, o: &MemSizeStats) {
        self.resident += o.resident;
        self.shared_clean += o.shared_clean;
        self.shared_dirty += o.shared_dirty;
        self.private_clean += o.private_clean;
        self.private_dirty += o.private_dirty;
        self.referenced += o.referenced;
        self.anonymous += o.anonymous;
        self.lazyfree += o.lazyfree;
        self.anonymous_thp += o.anonymous_thp;
        self.shmem_thp += o.shmem_thp;
        self.file_thp += o.file_thp;
        self.swap += o.swap;
        self.shared_hugetlb += o.shared_hugetlb;
        self.private_hugetlb += o.private_hugetlb;
        self.ksm += o.ksm;
        self.pss += o.pss;
        self.pss_anon += o.pss_anon;
        self.pss_file += o.pss_file;
        self.pss_shmem += o.pss_shmem;
        self.pss_dirty += o.pss_dirty;
        self.pss_locked += o.pss_locked;
        self.swap_pss += o.swap_pss;
    }

    /// `smaps_page_accumulate()`: `size` bytes of `folio` with `pss`
    /// (fixed point), dirty or clean, private or shared.
    fn page_accumulate(
        &mut self,
        folio: &Folio<'_>,
        size: u64,
        pss: u64,
        dirty: bool,
        locked: bool,
        private: bool,
    ) {
        self.pss += pss;
        if folio.is_shmem() {
            self.pss_shmem += pss;
        } else {
            self.pss_anon += pss;
        }
        if locked {
            self.pss_locked += pss;
        }
        if dirty || folio.is_dirty() {
            self.pss_dirty += pss;
            if private {
                self.private_dirty += size;
            } else {
                self.shared_dirty += size;
            }
        } else if private {
            self.private_clean += size;
        } else {
            self.shared_clean += size;
        }
    }

    /// `smaps_account()` for one present PTE mapping page `idx` of
    /// `folio` (`compound` false: one page).
    fn account(
        &mut self,
        folio: &Folio<'_>,
        idx: usize,
        young: bool,
        dirty: bool,
        locked: bool,
        mode: MapcountMode,
    ) {
        let size = PAGE_SIZE;
        if !folio.is_shmem() {
            // Anonymous, and swap-backed: never lazy-free here.
            self.anonymous += size;
        }
        self.resident += size;
        if young {
            self.referenced += size;
        }
        // A reference count of 1 is this PTE's: mapped exactly once.
        if folio.page(0).refcount() == 1 {
            self.page_accumulate(folio, size, size << PSS_SHIFT, dirty, locked, true);
            return;
        }
        let (mapcount, exclusive) = match mode {
            MapcountMode::PerPage => {
                let m = folio.precise_page_mapcount(idx);
                (m, m < 2)
            }
            MapcountMode::NoPageMapcount => {
                (folio.average_page_mapcount(), !folio.maybe_mapped_shared())
            }
        };
        let mut pss = size << PSS_SHIFT;
        if mapcount >= 2 {
            pss /= mapcount as u64;
        }
        self.page_accumulate(folio, size, pss, dirty, locked, exclusive);
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Every VMA with what its pages count (`show_smap()` of each VMA),
    /// in address order, under one hold of the mmap lock.
    pub fn smaps(&self) -> Vec<(Vma, MemSizeStats)> {
        let _l = self.mmap_lock.read(self.platform());
        self.vmas_in(0, u64::MAX)
            .into_iter()
            .map(|(_, v)| (v, self.gather_stats(&v)))
            .collect()
    }

    /// `smaps_rollup`: the span from the first VMA's start to the last
    /// one's end, and the sum of every VMA's stats (`show_smaps_rollup()`);
    /// `(0, 0)` and zeros without VMAs.
    pub fn smaps_rollup(&self) -> (u64, u64, MemSizeStats) {
        let mut sum = MemSizeStats::default();
        let all = self.smaps();
        for (_, m) in &all {
            sum.add(m);
        }
        match (all.first(), all.last()) {
            (Some((f, _)), Some((l, _))) => (f.start, l.end, sum),
            _ => (0, 0, sum),
        }
    }

    /// `smap_gather_stats()`: walks the present PTEs of `v` (the caller
    /// holds the mmap lock).
    fn gather_stats(&self, v: &Vma) -> MemSizeStats {
        let mut mss = MemSizeStats::default();
        let mode = self.vm.mapcount_mode();
        let locked = v.flags.contains(VmFlags::LOCKED);
        let memmap = self.vm.pa.memmap();
        let mut addr = v.start;
        while addr < v.end {
            let next = addr_end(addr, v.end, PMD_SIZE);
            // No table (or one reclaimed meanwhile): nothing mapped here.
            if let Some(ptl) = self.pt.pte_offset_map_lock(addr) {
                while addr < next {
                    let e = ptl.get(addr);
                    addr += PAGE_SIZE;
                    // vm_normal_page(): the zero page has no page to count.
                    if !e.is_present() || e.flags().contains(PteFlags::SPECIAL) {
                        continue;
                    }
                    let folio = Folio::of(memmap, e.pfn());
                    let idx = folio.page_idx(e.pfn());
                    let f = e.flags();
                    mss.account(
                        &folio,
                        idx,
                        f.contains(PteFlags::ACCESSED),
                        f.contains(PteFlags::DIRTY),
                        locked,
                        mode,
                    );
                }
            }
            addr = next;
        }
        mss
    }

    /// `THPeligible` of smaps (`thp_vma_allowable_orders()` with
    /// `TVA_SMAPS`): an anonymous private VMA, some large folio order
    /// (2 and up: order 1 is not an anonymous mTHP size) enabled in
    /// `anon_orders`, and an aligned folio of that order fitting in the
    /// VMA. Shared memory has its own setting (`shmem_enabled`), never
    /// here.
    pub fn thp_eligible(&self, v: &Vma) -> bool {
        if v.shmem.is_some() || v.flags.intersects(VmFlags::SPECIAL) {
            return false;
        }
        let orders = self.vm.anon_orders.load(Relaxed) & !0b11;
        (2..32).filter(|k| orders & (1 << k) != 0).any(|k| {
            let size = PAGE_SIZE << k;
            v.end
                .checked_sub(size)
                .map(|a| a & !(size - 1))
                .is_some_and(|a| a >= v.start && a + size <= v.end)
        })
    }
}

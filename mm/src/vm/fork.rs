//! fork's address-space copy (`dup_mmap()`, `copy_page_range()`): the
//! child gets every VMA (but `VM_DONTCOPY` ones) and the parent's PTEs
//! (but those of `VM_WIPEONFORK` ones, which the child gets empty);
//! private anonymous pages are write-protected in both and shared with
//! their folios' references and owner slots updated, so that the first
//! write on either side copies (or reuses) the page. Shared (shmem)
//! VMAs copy no PTEs: the child's VMA takes a reference to the same
//! object and its faults map the object's pages.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::zap::maps_page;
use super::{Mm, VmFlags};
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::folio::{Folio, folio_ref_add};
use crate::pgtable::{PMD_SIZE, PteFlags, PteLock, addr_end};
use crate::platform::Platform;

impl<'v, 'a, P: Platform> Mm<'v, 'a, P> {
    /// A copy of this address space for a child (`dup_mmap()`). On
    /// failure (`ENOMEM` midway) the partial child is torn down as at
    /// exit, which returns its frames and the commit charge of the VMAs
    /// it got, and the parent's TLB is flushed all the same: PTEs already
    /// write-protected must not stay writable in a stale translation.
    pub fn fork(&self) -> Result<Mm<'v, 'a, P>> {
        let child = Mm::new(self.vm)?;
        child.set_mm_flags(self.mm_flags().init());
        // The parent's VMAs and PTEs stay put while we copy.
        let l = self.mmap_lock.write(self.platform());
        let copied = (|| {
            let mut cl = child.mmap_lock.write(child.platform());
            cl.start_brk = l.start_brk;
            cl.brk = l.brk;
            cl.mmap_base = l.mmap_base;
            let mut unlocked = false;
            for (_, v) in self.vmas_in(0, u64::MAX) {
                if v.flags.contains(VmFlags::DONTCOPY) {
                    continue;
                }
                // VM_WIPEONFORK: a clean slate in the child, no anon_vma
                // until its first fault, no pages copied.
                let wipe = v.flags.contains(VmFlags::WIPEONFORK);
                let anon_vma = if wipe {
                    None
                } else {
                    self.anon_vma_fork(v.anon_vma, &child)
                };
                // Memory locks are not inherited (dup_mmap() clears
                // VM_LOCKED_MASK).
                let flags = v.flags - super::VM_LOCKED_MASK;
                unlocked |= flags != v.flags;
                child.insert_vma(
                    &mut cl,
                    super::Vma {
                        anon_vma,
                        flags,
                        ..v
                    },
                )?;
                // dup_mmap(): the child commits its own copy, which its
                // teardown uncharges from now on.
                if v.flags.contains(VmFlags::ACCOUNT) {
                    self.vm.vm_acct_memory(v.pages());
                }
                // vma_needs_copy(); a VM_WIPEONFORK child has nothing to copy.
                if !wipe && self.vma_needs_copy(&v) {
                    self.copy_page_range(&child, &v)?;
                }
            }
            // The unlocked copies may now be compatible with their
            // neighbours: merge them (I2; Linux leaves them apart, see
            // mlock.rs's Deviations).
            if unlocked {
                let mut at = 0;
                while let Some(v) = child.find_vma(at) {
                    child.merge_around(&mut cl, v.start)?;
                    at = child.vma_lookup(v.start).map_or(v.end, |m| m.end);
                }
            }
            Ok(())
        })();
        // Write-protected parent PTEs: no stale writable translation.
        self.pt.flush_tlb(None);
        drop(l);
        copied.map(|()| child)
    }

    /// `vma_needs_copy()`: only a VMA with anonymous pages (an anon_vma,
    /// also a private file mapping's copies) or raw PFNs has PTEs a fault
    /// could not fill again; the child of any other (a shared mapping,
    /// private memory that only ever mapped the zero page) faults its
    /// pages in. Without anon_vmas (a model
    /// test's mode) every private VMA is copied.
    fn vma_needs_copy(&self, v: &super::Vma) -> bool {
        if v.flags.intersects(VmFlags::PFNMAP | VmFlags::MIXEDMAP) {
            return true;
        }
        // A private file mapping with an anon_vma has private copies to
        // share (copy-on-write) with the child; its file pages and a
        // shared mapping's are faulted in again.
        v.anon_vma.is_some() || (v.shmem.is_none() && !self.vm.anon_vmas_on.load(Relaxed))
    }

    /// Copies the PTEs of `v` into `child` (`copy_pte_range()`).
    fn copy_page_range(&self, child: &Mm<'_, '_, P>, v: &super::Vma) -> Result<()> {
        let cow = !v.flags.contains(VmFlags::SHARED);
        let mut addr = v.start;
        while addr < v.end {
            let next = addr_end(addr, v.end, PMD_SIZE);
            if self.pt.get_pte(addr).is_none() && self.pt.pte_offset_map_lock(addr).is_none() {
                addr = next;
                continue;
            }
            // The child's table first, then the parent's lock (Linux's
            // order: destination, then source nested).
            let mut dst = child
                .pt
                .pte_alloc_map_lock(addr)
                .map_err(|_| Errno::ENOMEM)?;
            let Some(mut src) = self.pt.pte_offset_map_lock(addr) else {
                addr = next;
                continue;
            };
            while addr < next {
                let mut e = src.get(addr);
                if e.is_present() {
                    if !e.flags().contains(PteFlags::SPECIAL) {
                        let folio = Folio::of(self.vm.pa.memmap(), e.pfn());
                        let idx = folio.page_idx(e.pfn());
                        if folio.is_large() {
                            let nr = self.copy_folio_ptes(
                                child, &mut src, &mut dst, cow, &folio, idx, addr, next,
                            );
                            addr += nr as u64 * PAGE_SIZE;
                            continue;
                        }
                        folio_ref_add(&folio, 1);
                        self.vm.add_rmap_ptes(&folio, idx, 1, child.id());
                        // A page-cache page of a private file mapping
                        // (read-only already) counts as shmem.
                        if folio.is_shmem() {
                            child.rss_shmem.fetch_add(1, Relaxed);
                        } else {
                            child.rss_anon.fetch_add(1, Relaxed);
                        }
                        if cow && e.is_writable() {
                            e = e.with_flags(e.flags() - PteFlags::WRITE);
                            src.set(addr, e);
                        }
                    }
                    dst.set(addr, e);
                }
                addr += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Copies the PTE at `addr`, which maps page `idx` of the large
    /// `folio`, and the following ones (up to `end`) that map the next
    /// pages of the same folio, as one batch (`copy_present_ptes()` with
    /// `folio_pte_batch()`): one reference, rmap and RSS update for all.
    /// Returns how many PTEs it copied.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn copy_folio_ptes(
        &self,
        child: &Mm<'_, '_, P>,
        src: &mut PteLock<'_, P>,
        dst: &mut PteLock<'_, P>,
        cow: bool,
        folio: &Folio<'_>,
        idx: usize,
        addr: u64,
        end: u64,
    ) -> usize {
        let first = folio.head().add(idx as u64);
        let max = (folio.nr_pages() - idx).min(((end - addr) / PAGE_SIZE) as usize);
        let mut nr = 1;
        while nr < max && maps_page(src.get(addr + nr as u64 * PAGE_SIZE), first.add(nr as u64)) {
            nr += 1;
        }
        folio_ref_add(folio, nr as i32);
        self.vm.add_rmap_ptes(folio, idx, nr, child.id());
        child.rss_anon.fetch_add(nr as u64, Relaxed);
        let mut a = addr;
        for _ in 0..nr {
            let mut e = src.get(a);
            if cow && e.is_writable() {
                e = e.with_flags(e.flags() - PteFlags::WRITE);
                src.set(a, e);
            }
            dst.set(a, e);
            a += PAGE_SIZE;
        }
        nr
    }
}

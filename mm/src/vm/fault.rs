//! The page-fault path (`handle_mm_fault()`): anonymous memory
//! (`do_anonymous_page()`, `do_wp_page()`: copy-on-write for private
//! mappings) and shared anonymous memory (`do_shared_fault()` from the
//! VMA's shmem object, `wp_page_shared()` after write protection).
//!
//! # Context
//!
//! Called from a task's fault with no lock held. Takes the mmap lock for
//! read; growing a stack drops it and takes it for write
//! (`expand_stack`, Linux's upgrade in `lock_mm_and_find_vma()`), then
//! looks the VMA up again. Allocations may sleep.
//!
//! # Ordering
//!
//! - A new folio is allocated and zeroed before the PTE lock is taken.
//!   Under the lock the PTEs are checked again (another thread may have
//!   faulted the same range): if any changed, the folio is dropped and
//!   the fault retried. Its references and rmap are set before the PTEs
//!   that publish it.
//! - A CoW copy (`wp_page_copy()`): copy, then under the PTE lock check
//!   the old PTE is unchanged, clear it, flush the TLB, set the new PTE
//!   (`ptep_clear_flush()` then `set_pte_at()`): no CPU may write the old
//!   page once the copy is visible. The old folio's reference is dropped
//!   after the lock.
//! - Reuse in place (`wp_can_reuse_anon_folio()`) is decided under the
//!   PTE lock, from the mapcount and refcount (small folio) or the owner
//!   slots (large folio): no other MM can map the folio meanwhile,
//!   because mapping it needs a PTE lock of ours (fork) or a reference.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::{Mm, VmEvent, VmFlags};
use crate::addr::{Order, PAGE_SIZE};
use crate::folio::{Folio, folio_put, folio_ref_add};
use crate::gfp::Gfp;
use crate::pgtable::{Entry, PTE_DIRTY_BITS, PteFlags};
use crate::platform::Platform;
use crate::shmem::{ShmemFaultError, ShmemRef};

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
    /// Deliver SIGBUS (`VM_FAULT_SIGBUS`): a shared mapping's page beyond
    /// the end of its object.
    Sigbus,
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Grows the stack VMA just above `addr` down to cover it
    /// (`expand_stack()`, `expand_downwards()`, `acct_stack_growth()`):
    /// the VMA must be `VM_GROWSDOWN`, the stack may not come within
    /// `stack_guard_gap` of the accessible VMA below it, nor exceed
    /// [`super::STACK_RLIMIT`]. As Linux since 5.0, the fault address is
    /// not checked against the stack pointer. The grown VMA replaces the
    /// old one (a copy over the larger range; `vm_pgoff` moves down with
    /// the start) and its pages are charged when it is accountable.
    /// `MapErr` when it cannot grow; `Oom` without tree memory.
    pub(super) fn expand_stack(&self, addr: u64) -> Result<(), FaultError> {
        let segv = FaultError::Segv(SegvCode::MapErr);
        let mut l = self.mmap_lock.write(self.platform());
        let Some((p, v)) = self.find_vma_entry(addr) else {
            return Err(segv);
        };
        if v.start <= addr {
            return Ok(()); // Another fault grew it meanwhile.
        }
        if !v.flags.contains(VmFlags::GROWSDOWN) {
            return Err(segv);
        }
        let start = addr & !(PAGE_SIZE - 1);
        if v.end - start > super::STACK_RLIMIT {
            return Err(segv);
        }
        if let Some((_, prev)) = self.prev_vma_entry(v.start)
            && !prev.flags.contains(VmFlags::GROWSDOWN)
            && prev.flags.intersects(VmFlags::ACCESS)
            && start.saturating_sub(prev.end) < super::STACK_GUARD_GAP
        {
            return Err(segv);
        }
        let grow = (v.start - start) / PAGE_SIZE;
        let grown = super::vma::Vma {
            start,
            pgoff: v.pgoff.checked_sub(grow).ok_or(segv)?,
            ..v
        };
        self.insert_vma(&mut l, grown)
            .map_err(|_| FaultError::Oom)?;
        self.retire_vma(&mut l, p);
        if v.flags.contains(VmFlags::ACCOUNT) {
            self.vm.vm_acct_memory(grow);
        }
        self.vm.count(VmEvent::StackGrow);
        Ok(())
    }

    /// Resolves a user fault at `addr` (`handle_mm_fault()`), taking the
    /// mmap lock for read. Returns when the access can be retried.
    pub fn handle_fault(&self, addr: u64, access: FaultAccess) -> Result<(), FaultError> {
        let mut _l = self.mmap_lock.read(self.platform());
        self.vm.count(VmEvent::PgFault);
        let vma = match self.vma_lookup(addr) {
            Some(v) => v,
            None => {
                // Below a stack: grow it (`lock_mm_and_find_vma()`, which
                // upgrades to the write lock for `expand_stack()`).
                drop(_l);
                self.expand_stack(addr)?;
                _l = self.mmap_lock.read(self.platform());
                self.vma_lookup(addr)
                    .ok_or(FaultError::Segv(SegvCode::MapErr))?
            }
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
        match self.handle_pte_fault(&vma, addr, access == FaultAccess::Write) {
            // A droppable mapping's allocation failure is not fatal
            // (handle_mm_fault() clears VM_FAULT_OOM): the access is
            // retried, without an OOM kill.
            Err(FaultError::Oom) if vma.flags.contains(VmFlags::DROPPABLE) => Ok(()),
            r => r,
        }
    }

    /// The fault at the page `addr` of `vma`, access allowed, mmap lock
    /// held for read (`handle_pte_fault()`). A write to a VMA without
    /// `VM_WRITE` (a forced write, `gup.rs`) breaks copy-on-write as any
    /// write fault but leaves the PTE read-only (`maybe_mkwrite()`).
    pub(super) fn handle_pte_fault(
        &self,
        vma: &super::Vma,
        addr: u64,
        write: bool,
    ) -> Result<(), FaultError> {
        let vma = *vma;
        loop {
            let mut ptl = self
                .pt
                .pte_alloc_map_lock(addr)
                .map_err(|_| FaultError::Oom)?;
            let pte = ptl.get(addr);
            if pte.is_none() {
                if let Some(obj) = vma.shmem {
                    // do_shared_fault(), or do_read_fault() of a private
                    // file mapping: the page-cache folio, read-only in a
                    // private VMA. A private write (do_cow_fault()) maps
                    // it so first, and the loop's next pass copies it.
                    drop(ptl);
                    if self.do_shared_fault(&vma, obj, addr, write)? {
                        if write && !vma.flags.contains(VmFlags::SHARED) {
                            continue;
                        }
                        return Ok(());
                    }
                    continue;
                }
                if !write && !vma.flags.contains(VmFlags::SHARED) {
                    // Read fault on private memory: the shared zero page.
                    let zero = Entry::new(
                        self.vm.zero_page(),
                        vma.flags.pte_flags() | PteFlags::SPECIAL,
                    );
                    ptl.set(addr, zero);
                    return Ok(());
                }
                drop(ptl);
                if self.do_anonymous_page(&vma, addr)? {
                    return Ok(());
                }
                continue;
            }
            if !(write && !pte.is_writable()) {
                // Another thread resolved it (or a spurious fault).
                return Ok(());
            }
            if vma.flags.intersects(VmFlags::SHARED | VmFlags::MAYSHARE) {
                // wp_page_shared(): a shared mapping is never copied; its
                // page is made writable where it is (after mprotect took
                // write away, say), so every address space sharing it
                // keeps seeing the same page; the folio is dirtied
                // (`fault_dirty_shared_page()`).
                ptl.set(
                    addr,
                    pte.with_flags(pte.flags() | PteFlags::WRITE | PTE_DIRTY_BITS),
                );
                if !pte.flags().contains(PteFlags::SPECIAL) {
                    Folio::of(self.vm.pa.memmap(), pte.pfn()).mark_dirty();
                }
                return Ok(());
            }
            if !pte.flags().contains(PteFlags::SPECIAL) {
                let folio = Folio::of(self.vm.pa.memmap(), pte.pfn());
                // A page-cache folio in a private mapping is always
                // copied (wp_page_copy() for a non-anonymous folio).
                if !folio.is_shmem() && self.wp_can_reuse(&folio) {
                    ptl.set(
                        addr,
                        pte.with_flags(pte.flags() | maybe_mkwrite(&vma) | PTE_DIRTY_BITS),
                    );
                    return Ok(());
                }
            }
            drop(ptl);
            if self.wp_page_copy(&vma, addr, pte)? {
                return Ok(());
            }
        }
    }

    /// `wp_can_reuse_anon_folio()`: a write to a read-only PTE of this
    /// folio may make it writable in place when the folio is certainly
    /// ours alone and every reference is one of our mappings.
    /// Large folios only while `cow_reuse_large` is on; counted.
    fn wp_can_reuse(&self, folio: &Folio<'_>) -> bool {
        if folio.is_large() && !self.vm.cow_reuse_large.load(Relaxed) {
            return false;
        }
        let reuse = folio.wp_can_reuse();
        if reuse {
            self.vm.count(VmEvent::CowReuse);
            if folio.is_large() {
                self.vm.count(VmEvent::CowReuseLarge);
            }
        }
        reuse
    }

    /// The largest enabled folio order whose naturally aligned range
    /// around `addr` lies in the VMA and is unmapped (`alloc_anon_folio()`),
    /// with its first address; order 0 otherwise.
    fn anon_folio_order(&self, vma: &super::Vma, addr: u64) -> (Order, u64) {
        let orders = self.vm.anon_orders.load(Relaxed);
        for order in (1..=Order::PMD.get()).rev().map(Order::new) {
            if orders & (1 << order.get()) == 0 {
                continue;
            }
            let size = order.bytes();
            let base = addr & !(size - 1);
            if base < vma.start || base + size > vma.end {
                continue;
            }
            let Some(ptl) = self.pt.pte_offset_map_lock(addr) else {
                continue;
            };
            if (0..order.nr_pages()).all(|i| ptl.get(base + i * PAGE_SIZE).is_none()) {
                return (order, base);
            }
        }
        (Order::ZERO, addr)
    }

    /// `do_anonymous_page()` for a write (or shared) fault on a none PTE:
    /// allocate a folio (a large one where enabled and possible), zeroed,
    /// and map all its pages. False if the PTEs changed meanwhile (retry).
    fn do_anonymous_page(&self, vma: &super::Vma, addr: u64) -> Result<bool, FaultError> {
        let pa = self.vm.pa;
        let anon_vma = self
            .anon_vma_prepare(vma, addr)
            .ok_or(FaultError::Segv(SegvCode::MapErr))?;
        let (mut order, mut base) = self.anon_folio_order(vma, addr);
        let pfn = loop {
            match pa.alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO | Gfp::NOWARN, order) {
                Ok(pfn) => break pfn,
                Err(_) if order > Order::ZERO => {
                    self.vm.count(VmEvent::ThpFaultFallback);
                    (order, base) = (Order::ZERO, addr);
                }
                Err(_) => return Err(FaultError::Oom),
            }
        };
        if order > Order::ZERO {
            self.vm.count(VmEvent::ThpFaultAlloc);
        }
        let folio = Folio::prep(pa.memmap(), pfn);
        folio.set_anon(anon_vma, vma.pgoff_at(base));
        let nr = folio.nr_pages() as u64;
        // The table may have been reclaimed since the caller looked (the
        // PTE lock was dropped): the folio goes back if no new one can be had.
        let Ok(mut ptl) = self.pt.pte_alloc_map_lock(addr) else {
            folio_put(pa, pfn);
            return Err(FaultError::Oom);
        };
        if (0..nr).any(|i| !ptl.get(base + i * PAGE_SIZE).is_none()) {
            drop(ptl);
            folio_put(pa, pfn);
            return Ok(false);
        }
        let mut flags = vma.flags.pte_flags() | PTE_DIRTY_BITS;
        if vma.flags.contains(VmFlags::WRITE) {
            flags |= PteFlags::WRITE;
        }
        // One reference per PTE mapping (the allocation's is the first).
        folio_ref_add(&folio, nr as i32 - 1);
        folio.add_new_anon_rmap(self.id(), self.vm.mapcount_mode());
        for i in 0..nr {
            ptl.set(base + i * PAGE_SIZE, Entry::new(pfn.add(i), flags));
        }
        self.rss_anon.fetch_add(nr, Relaxed);
        Ok(true)
    }

    /// `do_shared_fault()` for a none PTE of a shmem VMA: the object's
    /// page at the offset (`shmem_fault()`, which allocates it on first
    /// touch), mapped with a folio reference and a mapcount
    /// (`finish_fault()`, `folio_add_file_rmap_ptes()`). Writable when the
    /// VMA is (shmem needs no write notification: Linux's
    /// `vm_page_prot` of a shared writable mapping), dirty on a write.
    /// False if the PTE changed meanwhile (retry).
    fn do_shared_fault(
        &self,
        vma: &super::Vma,
        obj: ShmemRef,
        addr: u64,
        write: bool,
    ) -> Result<bool, FaultError> {
        let pa = self.vm.pa;
        let pfn = obj
            .get_folio(self.vm, vma.pgoff_at(addr))
            .map_err(|e| match e {
                ShmemFaultError::Beyond => FaultError::Sigbus,
                ShmemFaultError::NoMem => FaultError::Oom,
            })?;
        let Ok(mut ptl) = self.pt.pte_alloc_map_lock(addr) else {
            folio_put(pa, pfn);
            return Err(FaultError::Oom);
        };
        // A truncation that removed the folio meanwhile: retry, and find
        // the offset past the size (`finish_fault()` under the folio lock
        // sees `folio->mapping` gone).
        if !ptl.get(addr).is_none() || !obj.still_has(pfn, pa.memmap(), vma.pgoff_at(addr)) {
            drop(ptl);
            folio_put(pa, pfn);
            return Ok(false);
        }
        let mut flags = vma.flags.pte_flags();
        let shared = vma.flags.contains(VmFlags::SHARED);
        // A read fault maps a shared page writable unless the VMA wants
        // write notification (`vma_wants_writenotify()`): here, soft-dirty
        // tracking (VM_SOFTDIRTY cleared by clear_refs), whose next write
        // must fault to mark the PTE.
        if shared
            && vma.flags.contains(VmFlags::WRITE)
            && (write || !vma.flags.soft_dirty_enabled())
        {
            flags |= PteFlags::WRITE;
        }
        if shared && write {
            flags |= PTE_DIRTY_BITS;
        }
        // The caller's folio reference becomes the PTE's.
        let folio = Folio::of(pa.memmap(), pfn);
        self.vm.add_rmap_ptes(&folio, 0, 1, self.id());
        if write {
            // fault_dirty_shared_page().
            folio.mark_dirty();
        }
        ptl.set(addr, Entry::new(pfn, flags));
        self.rss_shmem.fetch_add(1, Relaxed);
        Ok(true)
    }

    /// `wp_page_copy()`: a private copy of the page (or of the zero page)
    /// replaces the read-only PTE. False if the PTE changed meanwhile.
    fn wp_page_copy(&self, vma: &super::Vma, addr: u64, old: Entry) -> Result<bool, FaultError> {
        let pa = self.vm.pa;
        let anon_vma = self
            .anon_vma_prepare(vma, addr)
            .ok_or(FaultError::Segv(SegvCode::MapErr))?;
        let pfn = pa
            .alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, Order::ZERO)
            .map_err(|_| FaultError::Oom)?;
        let from_zero = old.flags().contains(PteFlags::SPECIAL);
        if !from_zero {
            pa.copy_highpage(pfn, old.pfn());
        }
        let folio = Folio::prep(pa.memmap(), pfn);
        folio.set_anon(anon_vma, vma.pgoff_at(addr));
        // As in do_anonymous_page: the new page goes back on failure.
        let Ok(mut ptl) = self.pt.pte_alloc_map_lock(addr) else {
            folio_put(pa, pfn);
            return Err(FaultError::Oom);
        };
        if ptl.get(addr) != old {
            drop(ptl);
            folio_put(pa, pfn);
            return Ok(false);
        }
        folio.add_new_anon_rmap(self.id(), self.vm.mapcount_mode());
        let flags = vma.flags.pte_flags() | PTE_DIRTY_BITS | maybe_mkwrite(vma);
        ptl.get_and_clear(addr);
        // The old translation must be gone before the old page is
        // released (`ptep_clear_flush()`).
        self.pt.flush_tlb(Some((addr, addr + PAGE_SIZE)));
        ptl.set(addr, Entry::new(pfn, flags));
        if from_zero {
            self.rss_anon.fetch_add(1, Relaxed);
        } else {
            let old_folio = Folio::of(pa.memmap(), old.pfn());
            if old_folio.is_shmem() {
                // A page-cache page of a private file mapping became
                // an anonymous copy (MM_SHMEMPAGES -> MM_ANONPAGES).
                self.rss_shmem.fetch_sub(1, Relaxed);
                self.rss_anon.fetch_add(1, Relaxed);
            }
            let idx = (old.pfn().as_u64() - old_folio.head().as_u64()) as usize;
            self.vm.remove_rmap_ptes(&old_folio, idx, 1, self.id());
            self.vm.count(VmEvent::CowCopy);
        }
        drop(ptl);
        if !from_zero {
            folio_put(pa, old.pfn());
        }
        Ok(true)
    }
}

/// The write bit a PTE of `vma` may get on a write fault
/// (`maybe_mkwrite()`): none without `VM_WRITE` (a forced write).
fn maybe_mkwrite(vma: &super::Vma) -> PteFlags {
    if vma.flags.contains(VmFlags::WRITE) {
        PteFlags::WRITE
    } else {
        PteFlags::empty()
    }
}

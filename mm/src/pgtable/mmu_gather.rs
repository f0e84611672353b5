//! `mmu_gather`: batches the TLB invalidation of a zap or unmap and defers
//! freeing the pages and page tables it removed until after the flush
//! (`mm/mmu_gather.c`, `include/asm-generic/tlb.h`).
//!
//! Order, always: flush the TLB for the gathered range, then hand the
//! table batch to `call_rcu` (tables are freed after a grace period, so
//! that lockless walkers under `rcu_read_lock` never see a freed table:
//! `MMU_GATHER_RCU_TABLE_FREE`, unconditional on x86 since 6.15), then
//! free the pages.
//!
//! The table batch is one page frame from the page allocator, taken with
//! `GFP_NOWAIT` when the gather queues its first table and not zeroed
//! (`__get_free_page()` in `tlb_remove_table()`); the RCU callback frees
//! the tables and then the batch page itself, so the path allocates no
//! heap memory. When no page can be had, the table is freed on its own
//! after a flush and a grace period waited for in place
//! (`tlb_remove_table_one()`).
//!
//! ```text
//!  batch page:  | RcuHead (24) | pa (8) | nr (8) | tables[0 .. MAX_TABLE_BATCH] |
//!                 first: the callback finds the batch from its head
//! ```

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::{PageTable, PtStat};
use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::gfp::Gfp;
use crate::page_alloc::PageAlloc;
use crate::platform::Platform;
use crate::rcu::RcuHead;

/// Pages per gather batch (one page of pointers, as Linux's
/// `MAX_GATHER_BATCH`).
pub const MAX_GATHER_BATCH: usize = (PAGE_SIZE as usize - 16) / 8;
/// Batches a gather may chain before it must flush
/// (`MAX_GATHER_BATCH_COUNT`: about 10000 pages in all).
pub const MAX_GATHER_BATCH_COUNT: usize = 10000 / MAX_GATHER_BATCH;
/// Tables per RCU batch (`MAX_TABLE_BATCH`: a page after the header).
pub const MAX_TABLE_BATCH: usize = (PAGE_SIZE as usize - 40) / 8;
/// Beyond this many pages a range flush becomes a full flush
/// (`tlb_single_page_flush_ceiling`).
const FLUSH_CEILING_PAGES: u64 = 33;
/// Pages the gather holds without allocating (`MMU_GATHER_BUNDLE`).
const GATHER_BUNDLE: usize = 8;

/// Tables waiting for a grace period (`struct mmu_table_batch`), laid
/// over a page frame of the page allocator. Only `tables[..nr]` is
/// initialised.
#[repr(C)]
struct TableBatch<P: Platform> {
    /// First: the RCU callback finds the batch from its head.
    head: RcuHead,
    pa: *const PageAlloc<P>,
    nr: usize,
    tables: [MaybeUninit<Pfn>; MAX_TABLE_BATCH],
}

/// A TLB gather over one address space (`struct mmu_gather`).
pub struct MmuGather<'t, 'a, P: Platform> {
    pt: &'t PageTable<'a, P>,
    /// Tearing down the whole address space (`tlb_gather_mmu_fullmm()`).
    fullmm: bool,
    /// Range still to flush: `[start, end)`, empty when `start >= end`.
    start: u64,
    end: u64,
    /// Tables were unlinked: paging-structure caches need flushing too.
    freed_tables: bool,
    /// Runs of pages of one folio each (Linux's encoded pages with
    /// `ENCODED_PAGE_BIT_NR_PAGES_NEXT`).
    pages: Vec<Gathered>,
    /// Pages in `pages` and `local`, against the gather limit.
    nr_pages: usize,
    /// Runs gathered when no batch memory could be had.
    local: [Gathered; GATHER_BUNDLE],
    nr_local: usize,
    /// The table batch: a page frame owned by this gather until
    /// [`MmuGather::flush_mmu`] hands it to `call_rcu`.
    tables: Option<NonNull<TableBatch<P>>>,
    /// TLB flushes issued by this gather.
    flushes: u64,
}

impl<'t, 'a, P: Platform> MmuGather<'t, 'a, P> {
    /// Starts a gather (`tlb_gather_mmu()`; `fullmm` for exit).
    pub fn new(pt: &'t PageTable<'a, P>, fullmm: bool) -> Self {
        MmuGather {
            pt,
            fullmm,
            start: u64::MAX,
            end: 0,
            freed_tables: false,
            pages: Vec::new(),
            nr_pages: 0,
            local: [Gathered {
                pfn: Pfn::new(0),
                nr: 0,
            }; GATHER_BUNDLE],
            nr_local: 0,
            tables: None,
            flushes: 0,
        }
    }

    /// Widens the range to flush (`tlb_flush_pte_range()`).
    pub fn adjust_range(&mut self, addr: u64, size: u64) {
        self.start = self.start.min(addr);
        self.end = self.end.max(addr.saturating_add(size));
    }

    /// Whether anything is waiting for a flush.
    pub fn pending(&self) -> bool {
        self.start < self.end
            || !self.pages.is_empty()
            || self.nr_local > 0
            || self.tables.is_some()
    }

    /// TLB flushes this gather issued.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Queues a page unmapped at `addr` to be freed after the flush
    /// (`__tlb_remove_page()`). Returns true when the batch has no room
    /// for another page: the caller must then leave lazy MMU mode, flush
    /// the TLB before dropping the PTE lock and [`MmuGather::flush_mmu`]
    /// after (Linux's `force_flush`). Never flushes by itself, so that no
    /// page is freed while a cleared PTE is still queued.
    #[must_use = "a full batch must be flushed before the next page"]
    pub fn remove_page(&mut self, pfn: Pfn, addr: u64) -> bool {
        self.remove_folio_pages(pfn, 1, addr)
    }

    /// Queues `nr` pages of one folio, from `pfn`, unmapped from `addr`
    /// on (`__tlb_remove_folio_pages()`): one entry, whose `nr` mapping
    /// references are dropped together after the flush
    /// (`folio_put_refs()`). Returns true when the batch is full, as
    /// [`MmuGather::remove_page`].
    #[must_use = "a full batch must be flushed before the next page"]
    pub fn remove_folio_pages(&mut self, pfn: Pfn, nr: usize, addr: u64) -> bool {
        self.adjust_range(addr, nr as u64 * PAGE_SIZE);
        let run = Gathered { pfn, nr: nr as u32 };
        self.nr_pages += nr;
        let limit = self.pt.gather_limit.load(Relaxed);
        if self.pages.len() == self.pages.capacity()
            && self.pages.try_reserve_exact(MAX_GATHER_BATCH).is_err()
        {
            // No batch memory: the embedded bundle (MMU_GATHER_BUNDLE).
            assert!(
                self.nr_local < GATHER_BUNDLE,
                "BUG: mmu_gather overflow: flush when full"
            );
            self.local[self.nr_local] = run;
            self.nr_local += 1;
            return self.nr_local == GATHER_BUNDLE;
        }
        self.pages.push(run);
        self.nr_pages >= limit
    }

    /// Queues an unlinked table that mapped from `addr` (`tlb_remove_table()`).
    pub(crate) fn remove_table(&mut self, pfn: Pfn, addr: u64) {
        self.adjust_range(addr, PAGE_SIZE);
        self.freed_tables = true;
        if self.tables.is_none() {
            self.tables = new_batch(self.pt.pa);
        }
        let Some(batch) = self.tables else {
            // tlb_remove_table_one(): no batch memory. Flush, wait for a
            // grace period here, then free: the same guarantee.
            self.pt.inc(PtStat::TableBatchNoMem, 1);
            self.flush_mmu_tlbonly();
            self.pt.rcu.synchronize_rcu();
            PageTable::free_table_now(self.pt.pa, pfn);
            return;
        };
        // SAFETY: 1. `batch` is this gather's own batch page (set up by
        // new_batch, not yet handed to call_rcu: flush_mmu takes it out of
        // `self.tables` before it does); 2. `nr < MAX_TABLE_BATCH`, because
        // a full batch is flushed right below, so the write is in bounds.
        let full = unsafe {
            let b = batch.as_ptr();
            let nr = (*b).nr;
            debug_assert!(nr < MAX_TABLE_BATCH);
            (*b).tables[nr] = MaybeUninit::new(pfn);
            (*b).nr = nr + 1;
            nr + 1 == MAX_TABLE_BATCH
        };
        if full {
            self.flush_mmu();
        }
    }

    /// Flushes the TLB for the gathered range (`tlb_flush_mmu_tlbonly()`).
    pub fn flush_mmu_tlbonly(&mut self) {
        if self.start >= self.end {
            return;
        }
        let range = if self.fullmm || self.end - self.start > FLUSH_CEILING_PAGES * PAGE_SIZE {
            None
        } else {
            Some((self.start, self.end))
        };
        self.pt.flush_tlb(range);
        self.flushes += 1;
        self.start = u64::MAX;
        self.end = 0;
    }

    /// Flushes, then frees what was gathered (`tlb_flush_mmu()`).
    pub fn flush_mmu(&mut self) {
        self.flush_mmu_tlbonly();
        if let Some(batch) = self.tables.take() {
            let head = batch.as_ptr().cast::<RcuHead>();
            // SAFETY: 1. the TLB was flushed above, so the grace period
            // the callback waits for begins after the flush; 2. the batch
            // page leaves this gather here and is touched again only by
            // free_table_batch; 3. its page allocator outlives every RCU
            // callback (owners wait for rcu_barrier before dropping it).
            unsafe { self.pt.rcu.call_rcu(head, free_table_batch::<P>) };
        }
        self.freed_tables = false;
        for run in self.pages.drain(..) {
            crate::folio::folio_put_refs(self.pt.pa, run.pfn, run.nr);
        }
        for run in &self.local[..self.nr_local] {
            crate::folio::folio_put_refs(self.pt.pa, run.pfn, run.nr);
        }
        self.nr_local = 0;
        self.nr_pages = 0;
    }

    /// Ends the gather (`tlb_finish_mmu()`).
    pub fn finish(mut self) {
        self.flush_mmu();
    }
}

impl<P: Platform> Drop for MmuGather<'_, '_, P> {
    fn drop(&mut self) {
        if self.pending() {
            self.flush_mmu();
        }
    }
}

/// Pages `pfn..pfn + nr` of one folio, each holding one reference for
/// the mapping that was removed.
#[derive(Clone, Copy)]
struct Gathered {
    pfn: Pfn,
    nr: u32,
}

/// A table batch in a fresh page frame (`__get_free_page(GFP_NOWAIT)`);
/// `None` when the page allocator has none to give without waiting.
/// Only the header is initialised: the table slots are written as tables
/// come.
fn new_batch<P: Platform>(pa: &PageAlloc<P>) -> Option<NonNull<TableBatch<P>>> {
    const { assert!(core::mem::size_of::<TableBatch<P>>() <= PAGE_SIZE as usize) };
    let pfn = pa.alloc_pages(Gfp::NOWAIT, Order::ZERO).ok()?;
    let b = pa
        .platform()
        .phys_to_virt(pfn.phys_addr())
        .cast::<TableBatch<P>>();
    // SAFETY: 1. `b` is the direct-map address of a page frame we were
    // just given, page aligned and PAGE_SIZE long, which holds a
    // TableBatch (const assert above); 2. no one else can reach the frame,
    // so raw writes of the header fields race with nothing.
    unsafe {
        ptr::addr_of_mut!((*b).head).write(RcuHead::new());
        ptr::addr_of_mut!((*b).pa).write(pa);
        ptr::addr_of_mut!((*b).nr).write(0);
    }
    NonNull::new(b)
}

/// RCU callback: the grace period after the flush has passed; no walker
/// can hold any of these tables. Frees them, then the batch page.
///
/// # Safety
///
/// `head` is the head of a batch page handed to `call_rcu` by
/// [`MmuGather::flush_mmu`].
unsafe fn free_table_batch<P: Platform>(head: *mut RcuHead) {
    let b = head.cast::<TableBatch<P>>();
    // SAFETY: 1. per the contract, `head` starts a batch page (repr(C),
    // head first) that only this callback touches now; 2. `tables[..nr]`
    // were initialised by remove_table; 3. the page allocator outlives RCU
    // callbacks (see flush_mmu).
    let (pa, tables) = unsafe {
        let nr = (*b).nr;
        let tables = ptr::addr_of!((*b).tables).cast::<Pfn>();
        (&*(*b).pa, core::slice::from_raw_parts(tables, nr))
    };
    for &pfn in tables {
        PageTable::free_table_now(pa, pfn);
    }
    let Some(batch_pa) = pa.platform().virt_to_phys(b.cast::<u8>()) else {
        log::error!("BUG: mmu_gather table batch {b:p} outside the direct map (leaked)");
        return;
    };
    if let Err(bad) = pa.free_pages(batch_pa.pfn(), Order::ZERO) {
        log::error!("BUG: freeing mmu_gather table batch {b:p}: {bad:?}");
    }
}

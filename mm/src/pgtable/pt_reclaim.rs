//! Reclaim of the PTE tables a zap empties (Linux 6.14, `mm/pt_reclaim.c`):
//! a size gate, a fast path that never waits, a slow path that rescans
//! all 512 entries under both locks, and freeing only through the
//! mmu_gather. `MADV_DONTNEED` is the one caller (through
//! `vm/zap.rs`'s `zap_pte_range()`); munmap and exit free tables with
//! [`PageTable::free_pgd_range`] instead.
//!
//! # Ordering
//!
//! A PTE table is reclaimed only when it is certainly empty:
//!
//! 1. Gate ([`reclaim_pt_is_enabled`]): the zap covers one whole table.
//! 2. Fast path ([`PteLock::try_clear_pmd`], `try_get_and_clear_pmd()`):
//!    the zap emptied the table under one hold of its PTE lock; the PMD
//!    lock is taken with a trylock only, because the usual order is PMD
//!    lock, then PTE lock. A failed trylock leaves it to the slow path.
//! 3. Slow path ([`PageTable::try_free_pte_table`], `try_to_free_pte()`):
//!    the PMD lock, then the PTE lock, and a rescan of all 512 entries,
//!    because the zap dropped the PTE lock midway and another thread may
//!    have refilled what it scanned.
//! 4. Either way the table leaves the PMD under both locks and is freed
//!    through the mmu_gather ([`PageTable::queue_table_free`]): after the
//!    TLB flush and an RCU grace period, since lockless walkers
//!    (`pte_offset_map_lock()` under `rcu_read_lock`) may still read it.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::*;

use super::{Entry, Level, MmuGather, PMD_SIZE, PageTable, PtStat, PteLock};
use crate::addr::Pfn;
use crate::platform::Platform;
use crate::sync::BitSpinLock;

/// Whether a zap of `[start, end)` may reclaim the PTE table it lies in
/// (the range half of `reclaim_pt_is_enabled()`): only a zap of the whole
/// table can leave it empty for sure.
pub fn reclaim_pt_is_enabled(start: u64, end: u64) -> bool {
    start.is_multiple_of(PMD_SIZE) && end - start == PMD_SIZE
}

impl<P: Platform> PageTable<'_, P> {
    /// Reclaims the PTE table at `start` after a zap that emptied it
    /// (`zap_pte_range()`'s tail): `cleared` is the table the fast path
    /// unlinked, queued as it is; `None` runs the slow path.
    pub fn reclaim_pte_table(
        &self,
        tlb: &mut MmuGather<'_, '_, P>,
        cleared: Option<Pfn>,
        start: u64,
    ) {
        match cleared {
            Some(table) => self.queue_table_free(tlb, table, start),
            None => {
                self.try_free_pte_table(tlb, start);
            }
        }
    }

    /// `try_to_free_pte()` (`mm/pt_reclaim.c`), the slow path of empty
    /// PTE-table reclaim: with the PMD lock, then the PTE lock, rescan all
    /// 512 entries; only if every one is none clear the PMD and queue the
    /// table on `tlb`. False if the table is gone or not empty.
    pub fn try_free_pte_table(&self, tlb: &mut MmuGather<'_, '_, P>, addr: u64) -> bool {
        let rcu = self.rcu.read_lock();
        let Some(pmd) = self.slot(addr, Level::Pmd) else {
            return false;
        };
        let pml = self.pmd_lock(pmd);
        let pmdval = Entry(pmd.load(Acquire));
        if !pmdval.is_present() || pmdval.is_huge() {
            self.inc(PtStat::PtReclaimSlowFail, 1);
            return false;
        }
        let ptl = BitSpinLock::lock(self.ptdesc(pmdval.pfn()).lock_word(), 0, self.pa.platform());
        let empty = self
            .table(pmdval.pfn())
            .iter()
            .all(|e| e.load(Acquire) == 0);
        if empty {
            pmd.store(0, Release);
        }
        drop(ptl);
        drop(pml);
        // The table is unlinked and ours (only the clearer of the PMD
        // frees it): leave the read-side section before queueing it,
        // because without a batch page the gather waits for a grace
        // period in place (`tlb_remove_table_one()`).
        drop(rcu);
        if !empty {
            self.inc(PtStat::PtReclaimSlowFail, 1);
            return false;
        }
        self.inc(PtStat::PtReclaimSlow, 1);
        self.queue_table_free(tlb, pmdval.pfn(), addr & !(PMD_SIZE - 1));
        true
    }
}

impl<P: Platform> PteLock<'_, P> {
    /// Whether every entry of the table is none (reclaim's rescan).
    pub fn all_none(&self) -> bool {
        self.table.iter().all(|e| e.load(Acquire) == 0)
    }

    /// The fast path of empty PTE-table reclaim
    /// (`try_get_and_clear_pmd()`): the caller emptied the whole table
    /// without dropping this lock. Only a trylock of the PMD lock is
    /// allowed here (the usual order is PMD, then PTE); on success the
    /// PMD is cleared and the table is returned, to be queued with
    /// [`PageTable::queue_table_free`] after this lock is dropped.
    pub fn try_clear_pmd(&mut self) -> Option<Pfn> {
        let word = {
            let va = self.pmd as *const AtomicU64 as *const u8;
            let pa = self
                .pt
                .pa
                .platform()
                .virt_to_phys(va)
                .expect("PMD slot in the direct map");
            self.pt.ptdesc(pa.pfn()).lock_word()
        };
        let _pml = BitSpinLock::try_lock(word, 0, self.pt.pa.platform())?;
        debug_assert!(self.all_none(), "reclaiming a PTE table that is not empty");
        self.pmd.store(0, Release);
        self.pt.inc(PtStat::PtReclaimFast, 1);
        Some(self.pfn)
    }
}

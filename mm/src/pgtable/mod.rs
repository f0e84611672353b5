//! Four-level x86_64 page tables of one address space, with Linux's split
//! page-table locks, `pte_offset_map_lock()` retry semantics, lazy MMU
//! mode and RCU-deferred table freeing through [`MmuGather`].
//!
//! Tables are frames from the page allocator, reached through the direct
//! map (`Platform::phys_to_virt`); on the simulated machine they live in
//! simulated RAM. Each table frame's memmap record holds its ptdesc
//! ([`Ptdesc`]): the table lock, the owner's MM id and the level.
//!
//! # Invariants
//!
//! - P1: every table frame's ptdesc records its level and the MM id of
//!   its address space; a table below the PGD is linked from exactly one
//!   entry of the level above, or from none once it is being freed.
//! - P2: `nr_tables` counts the tables linked below the PGD (`VmPTE` is
//!   it times 4 KiB); at drop it is 0, or the tables are leaked and
//!   reported, never freed under a possible walker.
//! - P3: an upper entry (PGD, PUD, PMD) changes only from none to a new,
//!   zeroed table, under its lock, and back to none only when the table
//!   below is freed: by [`PageTable::free_pgd_range`] (upper tables and
//!   PTE tables) or by PTE-table reclaim (PTE tables).
//! - P4: a table that was ever linked is freed only through an
//!   [`MmuGather`]: after the TLB flush and an RCU grace period. A table
//!   that lost an install race was never visible and is freed at once.
//!
//! # Locking (Documentation/mm/process_addrs.rst)
//!
//! - PGD and PUD entries are installed under the address space's
//!   `page_table_lock`; PMD entries under the PMD table's lock
//!   ([`PageTable::pmd_lock`]); PTEs under the PTE table's lock, taken
//!   through [`PageTable::pte_offset_map_lock`]. Order: PMD lock, then PTE
//!   lock.
//! - A PTE table can be unlinked while the mmap lock is held only for
//!   read (empty-table reclaim after `MADV_DONTNEED`, in `pt_reclaim.rs`):
//!   every PTE access is under
//!   `rcu_read_lock` and re-checks the PMD after taking the PTE lock, and
//!   `pte_offset_map_lock()` returns `None` when the table is gone — the
//!   caller retries (a fault faults again, a zap redoes the PMD).
//! - Upper tables (PUD, PMD) are freed only by [`PageTable::free_pgd_range`]
//!   (munmap, exit), with the mmap lock held for write.
//! - Every entry is an atomic word: single-copy atomic reads and writes, as
//!   `READ_ONCE`/`WRITE_ONCE` give Linux.

mod dump;
mod entry;
mod kernel_half;
mod mmu_gather;
mod pt_reclaim;
mod tlb;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

use crate::addr::{Order, PAGE_SIZE, Pfn, PhysAddr};
use crate::gfp::Gfp;
use crate::memmap::{Page, PageFlags};
use crate::page_alloc::PageAlloc;
use crate::platform::Platform;
use crate::rcu::{Rcu, RcuReadGuard};
use crate::stats::{Counters, define_stats};
use crate::sync::{BitSpinGuard, BitSpinLock};

pub use dump::{PtDump, WxReport};
pub use entry::{
    Entry, Level, PGDIR_SIZE, PMD_SHIFT, PMD_SIZE, PTE_DIRTY_BITS, PTRS_PER_TABLE, PUD_SIZE,
    PteFlags, TABLE_FLAGS, TASK_SIZE, USER_PGD_ENTRIES, addr_end,
};
pub use mmu_gather::{MAX_GATHER_BATCH, MAX_GATHER_BATCH_COUNT, MAX_TABLE_BATCH, MmuGather};
pub use pt_reclaim::reclaim_pt_is_enabled;
pub use tlb::{TLB_MAX_CPUS, TlbContext};

define_stats! {
    /// Page-table events of one address space.
    pub enum PtStat {
        /// Tables allocated / handed to the gather for freeing.
        TableAlloc => "pgtable_alloc",
        TableFree => "pgtable_free",
        /// A table allocated for an install that lost the race (freed).
        TableInstallRace => "pgtable_install_race",
        /// `pte_offset_map_lock()` saw the PMD change under it and retried.
        MapLockRetry => "pte_map_lock_retry",
        /// Lazy MMU mode: updates queued, and queue flushes.
        LazyUpdates => "lazy_mmu_updates",
        LazyFlushes => "lazy_mmu_flushes",
        /// Empty PTE tables freed by a zap with `reclaim_pt`: the PMD
        /// cleared under the PTE lock (fast path), after a full rescan
        /// under both locks (slow path), and slow-path attempts that found
        /// the table refilled or gone (`pt_reclaim` events).
        PtReclaimFast => "pt_reclaim_fast",
        PtReclaimSlow => "pt_reclaim_slow",
        PtReclaimSlowFail => "pt_reclaim_slow_fail",
        /// No page for an mmu_gather table batch: the table was freed on
        /// its own after a flush and an in-place grace period
        /// (`tlb_remove_table_one()`).
        TableBatchNoMem => "pgtable_batch_nomem",
    }
}

/// What a freed table's entries are overwritten with when
/// [`POISON_FREED_TABLES`] is on.
pub const TABLE_POISON: u64 = 0x6b6b_6b6b_6b6b_6b6b;

/// Whether freed tables are poisoned: in debug builds (every `cargo test`
/// build, host and kernel), so that tests can catch a walker that reads a
/// table after its grace period; not in release builds, because Linux
/// writes nothing into a page table it frees (only the page allocator's
/// debug options, `init_on_free` and page poisoning, do), and 512 stores
/// per table are most of what freeing one costs.
pub const POISON_FREED_TABLES: bool = cfg!(debug_assertions);

/// No memory for a page table (`-ENOMEM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMem;

/// The page-table view of a table frame's memmap record (`struct ptdesc`).
pub struct Ptdesc<'a>(&'a Page);

impl<'a> Ptdesc<'a> {
    /// Bit 0: the table's lock (split PTE lock, or the PMD lock of a PMD
    /// table).
    fn lock_word(&self) -> &'a AtomicU64 {
        self.0.ext(0)
    }

    /// MM id of the address space the table belongs to.
    pub fn owner(&self) -> u32 {
        self.0.ext(1).load(Relaxed) as u32
    }

    /// The table's level (1: PTE .. 4: PGD).
    pub fn level(&self) -> u64 {
        self.0.ext(2).load(Relaxed)
    }
}

/// The page tables of one address space.
pub struct PageTable<'a, P: Platform> {
    pa: &'a PageAlloc<P>,
    rcu: &'a Rcu<P>,
    pgd: Pfn,
    owner: u32,
    /// `mm->page_table_lock`: installs of PGD and PUD entries.
    page_table_lock: spin::Mutex<()>,
    /// Tables below the PGD (`mm->pgtables_bytes` / PAGE_SIZE).
    nr_tables: AtomicU64,
    /// Per CPU: inside a lazy MMU region of this address space.
    lazy: Vec<AtomicBool>,
    /// Pages an mmu_gather holds before it must flush
    /// ([`MAX_GATHER_BATCH`] x [`MAX_GATHER_BATCH_COUNT`]); lowered by
    /// tests to force flushes midway through a zap.
    gather_limit: core::sync::atomic::AtomicUsize,
    /// `mm_cpumask` and `tlb_gen`: what a TLB shootdown of this address
    /// space needs ([`TlbContext`]).
    tlb: TlbContext,
    stats: Counters<{ PtStat::COUNT }>,
}

/// A locked PTE table (`pte_offset_map_lock()`): holds the RCU read lock
/// and the table's lock; the PMD entry pointing at the table was checked
/// after the lock was taken.
pub struct PteLock<'t, P: Platform> {
    pt: &'t PageTable<'t, P>,
    /// The PMD entry that points at the table.
    pmd: &'t AtomicU64,
    table: &'t [AtomicU64; PTRS_PER_TABLE],
    pfn: Pfn,
    /// Address mapped by entry 0.
    base: u64,
    /// Declared before `_rcu`: unlocked first.
    _lock: BitSpinGuard<'t, P>,
    _rcu: RcuReadGuard<'t, P>,
}

impl<'a, P: Platform> PageTable<'a, P> {
    /// Empty page tables (a zeroed PGD) owned by MM id `owner`.
    pub fn new(pa: &'a PageAlloc<P>, rcu: &'a Rcu<P>, owner: u32) -> Result<Self, NoMem> {
        let mut pt = PageTable {
            pa,
            rcu,
            pgd: Pfn::new(0),
            owner,
            page_table_lock: spin::Mutex::new(()),
            nr_tables: AtomicU64::new(0),
            lazy: (0..pa.platform().nr_cpus())
                .map(|_| AtomicBool::new(false))
                .collect(),
            stats: Counters::new(),
            gather_limit: core::sync::atomic::AtomicUsize::new(
                MAX_GATHER_BATCH * mmu_gather::MAX_GATHER_BATCH_COUNT,
            ),
            tlb: TlbContext::new(),
        };
        pt.pgd = pt.alloc_table(Level::Pgd)?;
        Ok(pt)
    }

    /// Physical address of the PGD (what CR3 would hold).
    pub fn root(&self) -> PhysAddr {
        self.pgd.phys_addr()
    }

    /// The CPUs that may cache this address space's translations and its
    /// flush generation (`mm_cpumask`, `mm->context.tlb_gen`).
    pub fn tlb_context(&self) -> &TlbContext {
        &self.tlb
    }

    /// Invalidates the TLB entries of `[start, end)` (or of everything
    /// with `None`) on every CPU that may hold them, and returns when no
    /// CPU can use a stale translation of the range
    /// (`flush_tlb_mm_range()`, through [`Platform::flush_tlb`]).
    pub fn flush_tlb(&self, range: Option<(u64, u64)>) {
        self.pa.platform().flush_tlb(self.root(), &self.tlb, range);
    }

    pub fn page_alloc(&self) -> &'a PageAlloc<P> {
        self.pa
    }

    pub fn rcu(&self) -> &'a Rcu<P> {
        self.rcu
    }

    /// Bytes of tables below the PGD (`VmPTE`, Linux's `pgtables_bytes`).
    pub fn pgtables_bytes(&self) -> u64 {
        self.nr_tables.load(Relaxed) * PAGE_SIZE
    }

    /// Sets how many pages a gather holds before a forced flush (at
    /// least 1); for tests that need zaps to drop the PTE lock midway.
    pub fn set_gather_limit(&self, pages: usize) {
        self.gather_limit.store(pages.max(1), Relaxed);
    }

    pub fn stat(&self, s: PtStat) -> u64 {
        self.stats.get(s as usize)
    }

    fn inc(&self, s: PtStat, n: u64) {
        self.stats.add(s as usize, n);
    }

    /// The ptdesc of table frame `pfn`.
    pub fn ptdesc(&self, pfn: Pfn) -> Ptdesc<'a> {
        Ptdesc(self.pa.memmap().page(pfn))
    }

    /// The 512 entries of table frame `pfn`.
    fn table(&self, pfn: Pfn) -> &'a [AtomicU64; PTRS_PER_TABLE] {
        let va = self.pa.platform().phys_to_virt(pfn.phys_addr());
        // SAFETY: `pfn` is a table of this address space: a frame we
        // allocated, 4 KiB aligned, accessed only as atomic words. It is
        // freed only after the grace period of every RCU reader that could
        // have reached it, and callers hold RCU, the mmap lock, or own it.
        unsafe { &*va.cast::<[AtomicU64; PTRS_PER_TABLE]>() }
    }

    /// A zeroed table frame with its ptdesc set up.
    fn alloc_table(&self, level: Level) -> Result<Pfn, NoMem> {
        let pfn = self
            .pa
            .alloc_pages(Gfp::KERNEL, Order::ZERO)
            .map_err(|_| NoMem)?;
        for e in self.table(pfn) {
            e.store(0, Relaxed);
        }
        let page = self.pa.memmap().page(pfn);
        page.set_flags(page.flags() | PageFlags::PGTABLE);
        page.ext(0).store(0, Relaxed);
        page.ext(1).store(self.owner as u64, Relaxed);
        page.ext(2).store(level as u64, Relaxed);
        if level != Level::Pgd {
            self.nr_tables.fetch_add(1, Relaxed);
        }
        self.inc(PtStat::TableAlloc, 1);
        Ok(pfn)
    }

    /// Gives a table frame back to the page allocator at once: only for a
    /// table no walker can have reached (never published, or the PGD at
    /// teardown), or after a grace period.
    fn free_table_now(pa: &PageAlloc<P>, pfn: Pfn) {
        if POISON_FREED_TABLES {
            // Poisoned, so that a walker holding a table past its grace
            // period (a bug) reads garbage that tests can recognise.
            let va = pa.platform().phys_to_virt(pfn.phys_addr());
            // SAFETY: the table is unreachable (never published, or its
            // grace period has passed); its frame is ours until freed below.
            let entries = unsafe { &*va.cast::<[AtomicU64; PTRS_PER_TABLE]>() };
            for e in entries {
                e.store(TABLE_POISON, Relaxed);
            }
        }
        let page = pa.memmap().page(pfn);
        page.set_flags(page.flags() - PageFlags::PGTABLE);
        for i in 0..3 {
            page.ext(i).store(0, Relaxed);
        }
        if let Err(bad) = pa.free_pages(pfn, Order::ZERO) {
            log::error!("BUG: freeing page table {pfn:?}: {bad:?}");
        }
    }

    /// The slot for `addr` in the table of `level`, descending through
    /// present entries without locks; `None` when a table above is
    /// missing or a huge entry maps the address. Callers hold the mmap
    /// lock (upper tables stay) and, for the PTE level, RCU.
    pub fn slot(&self, addr: u64, level: Level) -> Option<&'a AtomicU64> {
        let mut table = self.pgd;
        let mut l = Level::Pgd;
        loop {
            let slot = &self.table(table)[l.index(addr)];
            if l == level {
                return Some(slot);
            }
            let e = Entry(slot.load(Acquire));
            if !e.is_present() || e.is_huge() {
                return None;
            }
            table = e.pfn();
            l = l.below().expect("level above the target");
        }
    }

    /// The PTE for `addr`, read locklessly under RCU (`None` when no PTE
    /// table maps it).
    pub fn get_pte(&self, addr: u64) -> Option<Entry> {
        let _rcu = self.rcu.read_lock();
        self.slot(addr, Level::Pte).map(|s| Entry(s.load(Acquire)))
    }

    /// Makes sure the tables down to the PMD level exist for `addr` and
    /// returns the PMD slot (`pud_alloc()`, `pmd_alloc()`).
    fn pmd_alloc(&self, addr: u64) -> Result<&'a AtomicU64, NoMem> {
        let mut slot = &self.table(self.pgd)[Level::Pgd.index(addr)];
        for below in [Level::Pud, Level::Pmd] {
            let mut e = Entry(slot.load(Acquire));
            if e.is_none() {
                let new = self.alloc_table(below)?;
                let guard = self.page_table_lock.lock();
                e = Entry(slot.load(Acquire));
                if e.is_none() {
                    e = Entry::new(new, TABLE_FLAGS);
                    slot.store(e.0, Release);
                    drop(guard);
                } else {
                    drop(guard);
                    self.discard_unpublished(new, below);
                }
            }
            slot = &self.table(e.pfn())[below.index(addr)];
        }
        Ok(slot)
    }

    /// Frees a table allocated for an install that another thread won.
    fn discard_unpublished(&self, pfn: Pfn, level: Level) {
        self.inc(PtStat::TableInstallRace, 1);
        if level != Level::Pgd {
            self.nr_tables.fetch_sub(1, Relaxed);
        }
        Self::free_table_now(self.pa, pfn);
    }

    /// The PMD table's lock (`pmd_lock()`), given the PMD slot.
    pub fn pmd_lock(&self, pmd_slot: &AtomicU64) -> BitSpinGuard<'a, P> {
        let va = pmd_slot as *const AtomicU64 as *const u8;
        let pa = self
            .pa
            .platform()
            .virt_to_phys(va)
            .expect("PMD slot outside the direct map");
        let word = self.ptdesc(pa.pfn()).lock_word();
        BitSpinLock::lock(word, 0, self.pa.platform())
    }

    /// Locks the PTE table mapping `addr` (`pte_offset_map_lock()`):
    /// `None` when there is none (PMD none, huge, or removed meanwhile);
    /// the caller then retries as Linux callers do.
    pub fn pte_offset_map_lock(&self, addr: u64) -> Option<PteLock<'_, P>> {
        loop {
            let rcu = self.rcu.read_lock();
            let pmd = self.slot(addr, Level::Pmd)?;
            let pmdval = Entry(pmd.load(Acquire));
            if !pmdval.is_present() || pmdval.is_huge() {
                return None;
            }
            let lock =
                BitSpinLock::lock(self.ptdesc(pmdval.pfn()).lock_word(), 0, self.pa.platform());
            // A reclaimer clears the PMD while holding this lock: seeing the
            // same value now means the table is still linked.
            if pmd.load(Acquire) != pmdval.0 {
                drop(lock);
                drop(rcu);
                self.inc(PtStat::MapLockRetry, 1);
                continue;
            }
            return Some(PteLock {
                pt: self,
                pmd,
                table: self.table(pmdval.pfn()),
                pfn: pmdval.pfn(),
                base: addr & !(PMD_SIZE - 1),
                _lock: lock,
                _rcu: rcu,
            });
        }
    }

    /// Locks the PTE table mapping `addr`, allocating missing tables
    /// (`pte_alloc_map_lock()`). A new PTE table is installed under the
    /// PMD lock only if the PMD is still none (`pmd_install()`).
    pub fn pte_alloc_map_lock(&self, addr: u64) -> Result<PteLock<'_, P>, NoMem> {
        loop {
            let pmd = self.pmd_alloc(addr)?;
            if Entry(pmd.load(Acquire)).is_none() {
                let new = self.alloc_table(Level::Pte)?;
                let guard = self.pmd_lock(pmd);
                if Entry(pmd.load(Acquire)).is_none() {
                    pmd.store(Entry::new(new, TABLE_FLAGS).0, Release);
                    drop(guard);
                } else {
                    drop(guard);
                    self.discard_unpublished(new, Level::Pte);
                }
            }
            if let Some(ptl) = self.pte_offset_map_lock(addr) {
                return Ok(ptl);
            }
            // The table went away between the install and the lock.
        }
    }

    /// Frees the tables that map only `[addr, end)`, within the
    /// `[floor, ceiling)` window that no VMA occupies (`free_pgd_range()`;
    /// `ceiling` 0 means the top of the address space). The range must be
    /// zapped already. Tables go to `tlb` and are freed after its flush
    /// and a grace period.
    pub fn free_pgd_range(
        &self,
        tlb: &mut MmuGather<'_, '_, P>,
        mut addr: u64,
        mut end: u64,
        floor: u64,
        mut ceiling: u64,
    ) {
        addr &= !(PMD_SIZE - 1);
        if addr < floor {
            addr = addr.wrapping_add(PMD_SIZE);
            if addr == 0 {
                return;
            }
        }
        if ceiling != 0 {
            ceiling &= !(PMD_SIZE - 1);
            if ceiling == 0 {
                return;
            }
        }
        if end.wrapping_sub(1) > ceiling.wrapping_sub(1) {
            end = end.wrapping_sub(PMD_SIZE);
        }
        if addr > end.wrapping_sub(1) {
            return;
        }
        self.free_range(tlb, Level::Pgd, self.pgd, addr, end, floor, ceiling);
    }

    /// `free_p4d_range()` .. `free_pte_range()`: frees the tables below the
    /// `level` table `table` for `[addr, end)`; a lower table goes when
    /// the region it maps lies within `[floor, ceiling)`.
    #[allow(clippy::too_many_arguments)]
    fn free_range(
        &self,
        tlb: &mut MmuGather<'_, '_, P>,
        level: Level,
        table: Pfn,
        addr: u64,
        end: u64,
        floor: u64,
        ceiling: u64,
    ) {
        let size = level.entry_size();
        let child = level.below().expect("a table above the PTE level");
        let mut a = addr;
        loop {
            let next = addr_end(a, end, size);
            let slot = &self.table(table)[level.index(a)];
            let e = Entry(slot.load(Acquire));
            if e.is_present() && !e.is_huge() {
                if child == Level::Pte {
                    slot.store(0, Release);
                    self.queue_table_free(tlb, e.pfn(), a);
                } else {
                    self.free_range(tlb, child, e.pfn(), a, next, floor, ceiling);
                    let mask = !(size - 1);
                    let start = a & mask;
                    let mut c = ceiling;
                    let inside = start >= floor
                        && (c == 0 || {
                            c &= mask;
                            c != 0
                        })
                        && next.wrapping_sub(1) <= c.wrapping_sub(1);
                    if inside {
                        slot.store(0, Release);
                        self.queue_table_free(tlb, e.pfn(), start);
                    }
                }
            }
            a = next;
            if a == end {
                break;
            }
        }
    }

    /// Hands an unlinked table to the gather (`pte_free_tlb()` and
    /// friends; `mm_dec_nr_ptes()`).
    pub fn queue_table_free(&self, tlb: &mut MmuGather<'_, '_, P>, pfn: Pfn, addr: u64) {
        self.nr_tables.fetch_sub(1, Relaxed);
        self.inc(PtStat::TableFree, 1);
        tlb.remove_table(pfn, addr);
    }

    /// Enters lazy MMU mode for this CPU; see [`LazyMmu`].
    fn lazy_enter(&self) -> usize {
        let platform = self.pa.platform();
        assert!(
            !platform.in_interrupt(),
            "BUG: lazy MMU mode entered from interrupt context"
        );
        let cpu = platform.cpu_id().index();
        assert!(
            !self.lazy[cpu].swap(true, Relaxed),
            "BUG: lazy MMU mode regions must not nest (cpu {cpu})"
        );
        cpu
    }
}

impl<P: Platform> Drop for PageTable<'_, P> {
    fn drop(&mut self) {
        let left = self.nr_tables.load(Relaxed);
        if left != 0 {
            // The owner tears down with free_pgd_range() first; tables left
            // here may still be reachable by walkers: leak, don't corrupt.
            log::error!(
                "BUG: page tables of mm {} dropped with {left} tables still linked (leaked)",
                self.owner
            );
            return;
        }
        Self::free_table_now(self.pa, self.pgd);
    }
}

/// Maximum updates a lazy MMU region queues before it flushes.
const LAZY_BATCH: usize = 32;

impl<'t, P: Platform> PteLock<'t, P> {
    fn index(&self, addr: u64) -> usize {
        assert!(
            addr >= self.base && addr - self.base < PMD_SIZE,
            "address {addr:#x} outside the locked PTE table"
        );
        Level::Pte.index(addr)
    }

    /// The locked table's frame.
    pub fn table_pfn(&self) -> Pfn {
        self.pfn
    }

    /// The PTE for `addr` (`ptep_get()`).
    pub fn get(&self, addr: u64) -> Entry {
        Entry(self.table[self.index(addr)].load(Acquire))
    }

    /// Writes the PTE for `addr` (`set_pte_at()`). The caller flushes the
    /// TLB if it replaced a present entry.
    pub fn set(&mut self, addr: u64, e: Entry) {
        let i = self.index(addr);
        self.write(i, e.0);
    }

    /// Stores entry `i`; with the platform's page-table check, through a
    /// swap that reports the old and new values.
    #[inline]
    fn write(&self, i: usize, v: u64) {
        if P::PAGE_TABLE_CHECK {
            let old = self.table[i].swap(v, AcqRel);
            self.pt.pa.platform().page_table_check_set(old, v);
        } else {
            self.table[i].store(v, Release);
        }
    }

    /// Clears the PTE for `addr`, returning the old value
    /// (`ptep_get_and_clear()`).
    pub fn get_and_clear(&mut self, addr: u64) -> Entry {
        let old = self.table[self.index(addr)].swap(0, AcqRel);
        if P::PAGE_TABLE_CHECK {
            self.pt.pa.platform().page_table_check_set(old, 0);
        }
        Entry(old)
    }

    /// Enters lazy MMU mode for updates of this table; leaving it (drop)
    /// applies the queued updates.
    pub fn lazy_mmu(&mut self) -> LazyMmu<'_, 't, P> {
        let cpu = self.pt.lazy_enter();
        LazyMmu {
            ptl: self,
            queue: [(0, 0); LAZY_BATCH],
            len: 0,
            queued: [0; PTRS_PER_TABLE / 64],
            cpu,
        }
    }
}

/// A lazy MMU region (`arch_enter_lazy_mmu_mode()` ..
/// `arch_leave_lazy_mmu_mode()`), with the 2025 rules: regions never nest
/// (checked per CPU: a nested entry is a bug, reported loudly), are not
/// entered from interrupt context (likewise), and generic code may not
/// assume preemption is disabled inside — this implementation runs under
/// the PTE lock, which disables it. PTE updates are queued and applied in
/// a batch when the queue fills, at [`LazyMmu::flush`] and when the region
/// ends; reads may not reflect queued updates until then, as Linux allows.
pub struct LazyMmu<'l, 't, P: Platform> {
    ptl: &'l mut PteLock<'t, P>,
    queue: [(u16, u64); LAZY_BATCH],
    len: usize,
    /// One bit per entry of the table with an update in `queue`, so that
    /// a read-modify-write finds out in O(1) whether it must flush first.
    queued: [u64; PTRS_PER_TABLE / 64],
    cpu: usize,
}

impl<P: Platform> LazyMmu<'_, '_, P> {
    /// The PTE for `addr` as the table holds it (queued updates not
    /// applied).
    pub fn get(&self, addr: u64) -> Entry {
        self.ptl.get(addr)
    }

    /// Queues a write of the PTE for `addr`.
    pub fn set(&mut self, addr: u64, e: Entry) {
        let i = self.ptl.index(addr);
        if self.len == LAZY_BATCH {
            self.flush();
        }
        self.queue[self.len] = (i as u16, e.0);
        self.len += 1;
        self.queued[i / 64] |= 1 << (i % 64);
        self.ptl.pt.inc(PtStat::LazyUpdates, 1);
    }

    /// Clears the PTE for `addr` and returns its value; applies queued
    /// updates first if one concerns this entry.
    pub fn get_and_clear(&mut self, addr: u64) -> Entry {
        let i = self.ptl.index(addr);
        if self.queued[i / 64] & (1 << (i % 64)) != 0 {
            self.flush();
        }
        let old = self.ptl.get(addr);
        self.set(addr, Entry::NONE);
        old
    }

    /// Applies the queued updates (`arch_flush_lazy_mmu_mode()`).
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        for &(i, v) in &self.queue[..self.len] {
            self.ptl.write(i as usize, v);
        }
        self.len = 0;
        self.queued = [0; PTRS_PER_TABLE / 64];
        self.ptl.pt.inc(PtStat::LazyFlushes, 1);
    }
}

impl<P: Platform> Drop for LazyMmu<'_, '_, P> {
    fn drop(&mut self) {
        self.flush();
        self.ptl.pt.lazy[self.cpu].store(false, Relaxed);
    }
}

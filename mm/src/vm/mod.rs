//! Address spaces: an [`Mm`] holds its VMAs in a maple tree and its page
//! tables, and implements the memory syscalls (mmap, munmap, mprotect,
//! madvise, brk) and the anonymous page-fault path, with Linux's
//! semantics and errno rules.
//!
//! A [`Vm`] is what all address spaces of a machine share: the page
//! allocator, RCU, the maple node cache, the zero page, the MM-id
//! allocator and the tunables.
//!
//! Where Linux keeps each piece: `mm.rs` (`kernel/fork.c`'s mm_struct
//! life, `mm/vma.c`'s tree updates), `mmap.rs` (`mm/mmap.c`),
//! `mprotect.rs` (`mm/mprotect.c`), `mlock.rs` (`mm/mlock.c`), `mseal.rs` (`mm/mseal.c`), `madvise.rs` (`mm/madvise.c`), `mremap.rs`
//! (`mm/mremap.c`), `fault.rs` and `zap.rs` (`mm/memory.c`; the reclaim
//! of emptied PTE tables is `pgtable/pt_reclaim.rs`, `mm/pt_reclaim.c`),
//! `fork.rs` (`kernel/fork.c` `dup_mmap()`), `gup.rs` (`mm/gup.c`'s
//! forced access to another address space), `oom_kill.rs` (the OOM
//! reaper's unmapping, `mm/oom_kill.c`),
//! `rmap.rs` (`mm/rmap.c`), `smaps.rs` and `pagemap.rs`
//! (`fs/proc/task_mmu.c`'s counting and page map), `kpage.rs`
//! (`fs/proc/page.c`), `vma.rs` (`mm/vma.c`, `vm_area_struct`).
//!
//! Every file here but `mm.rs` is `#![forbid(unsafe_code)]`: `mm.rs`
//! owns the VMA boxes the maple tree points to (publication, copies read
//! under RCU, frees through RCU: invariants M1 and I6), and the other
//! files change VMAs only through its methods.
//! Frame contents are copied by [`PageAlloc::copy_highpage`](crate::page_alloc::PageAlloc::copy_highpage).
//!
//! # Invariants
//!
//! Checked by [`Mm::validate`] (and, per step, by the model tests):
//!
//! - I1: VMAs are page aligned, non-empty and do not overlap; the maple
//!   tree maps exactly `[start, end - 1]` of each to its [`Vma`].
//! - I2: no two adjacent VMAs are compatible ([`can_merge`]): every
//!   change that could make a pair compatible merges it (`vma_merge`).
//! - I3: every present PTE lies inside a VMA whose flags allow it (no
//!   writable PTE in a VMA without `VM_WRITE`, no executable PTE
//!   without `VM_EXEC`).
//! - I4: `rss_anon` plus `rss_shmem` equals the present PTEs that are
//!   not the zero page (`rss_shmem` those of shmem folios); each mapped
//!   page holds one folio reference and one mapcount per PTE.
//! - I5: the commit charge ([`Vm::committed_pages`]) is the sum of the
//!   pages of every `VM_ACCOUNT` VMA of every address space.
//! - I6: a VMA leaves the tree before it is freed, and is freed only
//!   through RCU ([`Mm::retire_vma`]): a lockless reader that found it
//!   may read it until its grace period ends.
//!
//! # Locking
//!
//! Lock order, outermost first (Linux's order in `mm/rmap.c`'s header,
//! with the locks this kernel has):
//!
//! 1. `Mm::mmap_lock` (`mmap_lock`): write for any change of the VMA set,
//!    a VMA's flags or the break; read for faults and for lookups that
//!    must not see a VMA change under them. Two address spaces' mmap
//!    locks are taken together only by fork: parent, then child (the
//!    child is not yet visible to anyone else). A sleeping rwsem
//!    (`crate::rwsem`): a thread that finds it taken gives up the CPU;
//!    faults of several threads hold it for read together; no recursive
//!    read (a waiting writer blocks new readers).
//! 2. `Vm::anon_vmas`, the anon_vma registry (standing in for
//!    `anon_vma->rwsem`): taken with the mmap lock held for read (a
//!    fault's `anon_vma_prepare`) or write (fork), or alone by exit and
//!    by the reverse-map walk, which reads VMAs under RCU.
//! 3. The maple tree's writer lock (`MapleTree::lock`): held only for one
//!    store, with the mmap lock held for write, or held for read by a
//!    fault's `anon_vma_prepare`, which stores the VMA's copy with its
//!    new anon_vma over exactly its range under the registry lock (that
//!    lock serializes such faults; the read lock keeps writers out).
//!    Nothing in `vm` is taken under it (its node allocations take slab
//!    and page allocator locks).
//! 4. `PageTable::page_table_lock` (`mm->page_table_lock`): installing a
//!    PGD or PUD entry; nothing is taken under it.
//! 5. A PMD table's lock (`pmd_lock()`): installing or clearing a PMD
//!    entry (a PTE table).
//! 6. A PTE table's lock (`pte_offset_map_lock()`): every change of a
//!    PTE. Two PTE locks of one address space are held together only by
//!    mremap's move (old table, then new), under the exclusive mmap lock.
//!    PTE-table reclaim's fast path takes the PMD lock *inside* the PTE
//!    lock with a trylock only (`try_clear_pmd`), which cannot deadlock.
//! 7. A large folio's `_mm_ids` bit lock (`folio_lock_large_mapcount()`):
//!    owner-slot and mapcount updates, under the PTE lock of the mapping
//!    being changed.
//!
//! Under all of them: the page allocator (zone lock, per-CPU lists), the
//! slab caches and RCU's callback queues, which take no `vm` lock.
//!
//! # Context
//!
//! - Every entry point may sleep (`Gfp::KERNEL` allocations, the mmap
//!   lock, `synchronize_rcu` inside an mmu_gather without a batch page),
//!   so none may be called from interrupt context or with preemption
//!   disabled; the kernel calls them from a task's syscall or fault.
//! - Lockless readers (`vma_lookup`, `find_vma` without the mmap lock,
//!   the reverse-map walk) run under `rcu_read_lock` and copy the VMA
//!   out ([`Mm::read`]) before leaving the section.
//! - PTE tables may be unlinked while the mmap lock is held only for read
//!   (PTE-table reclaim after `MADV_DONTNEED`): every PTE access goes
//!   through `pte_offset_map_lock()` and retries when it returns `None`.

mod fault;
mod fork;
mod gup;
mod kpage;
mod madvise;
mod mlock;
mod mm;
mod mmap;
mod mprotect;
mod mremap;
mod mseal;
mod msync;
mod oom_kill;
mod pagemap;
mod rmap;
mod smaps;
mod vma;
mod zap;

#[cfg(any(test, feature = "std"))]
pub mod fuzz;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fail_nth;
#[cfg(test)]
mod tests_fork;
#[cfg(test)]
mod tests_memapi;
#[cfg(test)]
mod tests_mremap;
#[cfg(test)]
mod tests_reclaim;
#[cfg(test)]
mod tests_rmap;
#[cfg(test)]
mod tests_shmem;
#[cfg(test)]
mod tests_smaps;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::folio::{Folio, MapcountMode};
use crate::gfp::Gfp;
use crate::page_alloc::PageAlloc;
use crate::platform::Platform;
use crate::rcu::Rcu;
use crate::slab::KmemCache;
use crate::stats::{Counters, define_stats};

pub use fault::{FaultAccess, FaultError, SegvCode};
pub use kpage::{
    KPF_ANON, KPF_BUDDY, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_DIRTY, KPF_LOCKED, KPF_LRU,
    KPF_MMAP, KPF_NOPAGE, KPF_PGTABLE, KPF_REFERENCED, KPF_RESERVED, KPF_SLAB, KPF_SWAPBACKED,
    KPF_THP, KPF_UPTODATE, KPF_ZERO_PAGE,
};
pub use madvise::Advice;
pub use mlock::{MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_ONFAULT, VM_LOCKED_MASK};
pub use mm::{Mm, MmFlags, MmStatus, map_deny_write_exec};
pub use mmap::{MapFlags, Prot};
pub use mremap::{MremapFlags, MremapStat};
pub use pagemap::{
    ClearRefs, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PFRAME_MASK, PM_PRESENT, PM_SOFT_DIRTY, PM_SWAP,
};
pub use rmap::RmapHit;
pub use smaps::{MemSizeStats, PSS_SHIFT};
pub use vma::{AnonVmaId, VmFlags, Vma, can_merge};

/// Lowest address user mappings may use (`mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x10000;
/// Most VMAs an address space may have (`sysctl_max_map_count`).
pub const MAX_MAP_COUNT: usize = 65530;
/// Largest size a stack VMA grows to (`RLIMIT_STACK`'s default soft
/// limit, 8 MiB; the limit is not per process here).
pub const STACK_RLIMIT: u64 = 8 << 20;

/// Gap kept free below a stack VMA (`stack_guard_gap`, 256 pages).
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

define_stats! {
    /// Address-space events (`/proc/vmstat` style).
    pub enum VmEvent {
        /// Page faults handled.
        PgFault => "pgfault",
        /// Anonymous large folios allocated on fault / fallbacks to a
        /// smaller order (`thp_fault_alloc`, `thp_fault_fallback`).
        ThpFaultAlloc => "thp_fault_alloc",
        ThpFaultFallback => "thp_fault_fallback",
        /// Write faults on a read-only anonymous page: copied, or the page
        /// reused in place (small or large folio).
        CowCopy => "cow_copy",
        CowReuse => "cow_reuse",
        CowReuseLarge => "cow_reuse_large",
        /// A stack VMA grown down to a fault below it (`expand_stack`).
        StackGrow => "stack_grow",
        /// Shared-memory faults that found their page in the object, or
        /// allocated it there (`shmem_fault()`).
        ShmemFaultHit => "shmem_fault_hit",
        ShmemFaultAlloc => "shmem_fault_alloc",
    }
}

/// What every address space of one machine shares.
pub struct Vm<'a, P: Platform> {
    pub pa: &'a PageAlloc<P>,
    pub rcu: &'a Rcu<P>,
    /// Maple tree nodes of every VMA tree (`maple_node_cache`).
    pub node_cache: &'a KmemCache<'a, P>,
    /// The shared zero page, mapped read-only on read faults.
    zero_page: Pfn,
    /// Used MM ids (bit `i` of word `i / 64`; id 0 is never handed out).
    mm_ids: spin::Mutex<Vec<u64>>,
    /// Lowest mappable address (`mmap_min_addr`); tests may lower it to 0.
    pub mmap_min_addr: u64,
    /// Reclaim the PTE tables MADV_DONTNEED empties (`CONFIG_PT_RECLAIM`;
    /// a switch here so that both modes can be measured in one build).
    pub pt_reclaim: AtomicBool,
    /// Folio orders anonymous faults may allocate, bit `k` for order `k`
    /// (mTHP's per-size `enabled` settings; order 0 always works).
    pub anon_orders: AtomicU32,
    /// Large folios without per-page mapcounts (`NO_PAGE_MAPCOUNT`); only
    /// to be changed while no anonymous memory is mapped.
    pub no_page_mapcount: AtomicBool,
    /// Reuse an exclusively mapped large folio on a CoW fault instead of
    /// copying (6.15); a switch to measure the difference.
    pub cow_reuse_large: AtomicBool,
    /// `/proc/vmstat`-style event counters.
    pub events: Counters<{ VmEvent::COUNT }>,
    /// anon_vmas and their families (`rmap`).
    anon_vmas: spin::Mutex<rmap::AnonVmas>,
    /// Give VMAs anon_vmas at their first anonymous page (on by default).
    /// Off, VMAs never get one and folios have no reverse mapping: only for
    /// the address-space model test, whose model does not track anon_vmas
    /// (the merge and page-offset rules they change).
    pub anon_vmas_on: AtomicBool,
    pub max_map_count: usize,
    /// Pages committed by accountable (`VM_ACCOUNT`) mappings of every
    /// address space (`vm_committed_as`). Write: charged when a mapping
    /// gains `VM_ACCOUNT` (mmap, brk, mprotect, mremap growth), uncharged
    /// when such a mapping is unmapped; splits, merges and moves leave it
    /// alone. Racy read: Relaxed. No overcommit limit is enforced yet
    /// (`OVERCOMMIT_ALWAYS`).
    committed: AtomicU64,
    /// Pages in shmem objects (`NR_SHMEM`, `/proc/meminfo` `Shmem:`).
    /// Write: a page enters or leaves an object's index. Racy read: Relaxed.
    nr_shmem: AtomicU64,
    /// Pages of file (here shmem) folios mapped by at least one PTE
    /// (`NR_FILE_MAPPED`, `/proc/meminfo` `Mapped:`). Write: a page's
    /// mapcount leaves or reaches zero (`__folio_mod_stat()` from the
    /// rmap add/remove). Racy read: Relaxed.
    nr_file_mapped: AtomicU64,
    /// Last inode number handed out (`get_next_ino()`).
    last_ino: AtomicU64,
}

impl<'a, P: Platform> Vm<'a, P> {
    /// Sets up the shared state; `None` without memory for the zero page.
    pub fn new(
        pa: &'a PageAlloc<P>,
        rcu: &'a Rcu<P>,
        node_cache: &'a KmemCache<'a, P>,
    ) -> Option<Self> {
        let zero_page = pa.alloc_pages(Gfp::KERNEL | Gfp::ZERO, Order::ZERO).ok()?;
        Some(Vm {
            pa,
            rcu,
            node_cache,
            zero_page,
            mm_ids: spin::Mutex::new(Vec::new()),
            mmap_min_addr: MMAP_MIN_ADDR,
            pt_reclaim: AtomicBool::new(true),
            anon_orders: AtomicU32::new(1),
            no_page_mapcount: AtomicBool::new(false),
            cow_reuse_large: AtomicBool::new(true),
            events: Counters::new(),
            anon_vmas: spin::Mutex::new(rmap::AnonVmas::default()),
            anon_vmas_on: AtomicBool::new(true),
            max_map_count: MAX_MAP_COUNT,
            committed: AtomicU64::new(0),
            nr_shmem: AtomicU64::new(0),
            nr_file_mapped: AtomicU64::new(0),
            last_ino: AtomicU64::new(0),
        })
    }

    pub fn zero_page(&self) -> Pfn {
        self.zero_page
    }

    /// How large folios count their mappings.
    pub fn mapcount_mode(&self) -> MapcountMode {
        if self
            .no_page_mapcount
            .load(core::sync::atomic::Ordering::Relaxed)
        {
            MapcountMode::NoPageMapcount
        } else {
            MapcountMode::PerPage
        }
    }

    pub fn event(&self, e: VmEvent) -> u64 {
        self.events.get(e as usize)
    }

    /// Pages in shmem objects (`Shmem:` in `/proc/meminfo`).
    pub fn nr_shmem_pages(&self) -> u64 {
        self.nr_shmem.load(Relaxed)
    }

    pub(crate) fn shmem_pages_add(&self, n: u64) {
        self.nr_shmem.fetch_add(n, Relaxed);
    }

    pub(crate) fn shmem_pages_sub(&self, n: u64) {
        let old = self.nr_shmem.fetch_sub(n, Relaxed);
        debug_assert!(old >= n, "BUG: shmem page count underflow");
    }

    /// Pages of file folios mapped (`Mapped:` in `/proc/meminfo`).
    pub fn nr_file_mapped(&self) -> u64 {
        self.nr_file_mapped.load(Relaxed)
    }

    /// Maps `nr` pages of `folio` from page `first` into address space
    /// `me` (`folio_add_*_rmap_ptes`), in this machine's mapcount mode,
    /// and counts the pages newly mapped of a file folio in
    /// `NR_FILE_MAPPED` (`__folio_mod_stat()`). Returns those pages.
    pub(crate) fn add_rmap_ptes(
        &self,
        folio: &Folio<'_>,
        first: usize,
        nr: usize,
        me: u32,
    ) -> usize {
        let newly = folio.add_rmap_ptes(first, nr, me, self.mapcount_mode());
        if newly > 0 && folio.is_shmem() {
            self.nr_file_mapped.fetch_add(newly as u64, Relaxed);
        }
        newly
    }

    /// The reverse of [`Vm::add_rmap_ptes`] (`folio_remove_rmap_ptes`).
    pub(crate) fn remove_rmap_ptes(
        &self,
        folio: &Folio<'_>,
        first: usize,
        nr: usize,
        me: u32,
    ) -> usize {
        let gone = folio.remove_rmap_ptes(first, nr, me, self.mapcount_mode());
        if gone > 0 && folio.is_shmem() {
            let old = self.nr_file_mapped.fetch_sub(gone as u64, Relaxed);
            debug_assert!(old >= gone as u64, "BUG: NR_FILE_MAPPED underflow");
        }
        gone
    }

    /// A new inode number (`get_next_ino()`; Linux's start after boot is
    /// arbitrary, ours counts from 1).
    pub fn next_ino(&self) -> u64 {
        self.last_ino.fetch_add(1, Relaxed) + 1
    }

    pub(crate) fn count(&self, e: VmEvent) {
        self.events.add(e as usize, 1);
    }

    /// Pages currently committed (`vm_committed_as`, `Committed_AS` in
    /// `/proc/meminfo`).
    pub fn committed_pages(&self) -> u64 {
        self.committed.load(Relaxed)
    }

    /// Charges `pages` (`vm_acct_memory()`).
    fn vm_acct_memory(&self, pages: u64) {
        self.committed.fetch_add(pages, Relaxed);
    }

    /// Uncharges `pages` (`vm_unacct_memory()`).
    fn vm_unacct_memory(&self, pages: u64) {
        let old = self.committed.fetch_sub(pages, Relaxed);
        debug_assert!(old >= pages, "BUG: committed memory underflow");
    }

    /// The lowest free MM id (`mm_id_alloc()`, an ida): ids are small
    /// unique integers, reused after [`Vm::free_mm_id`].
    fn alloc_mm_id(&self) -> Option<u32> {
        let mut ids = self.mm_ids.lock();
        for (w, word) in ids.iter_mut().enumerate() {
            let free = !*word & if w == 0 { !1 } else { !0 };
            if free != 0 {
                let bit = free.trailing_zeros();
                *word |= 1 << bit;
                return Some((w * 64) as u32 + bit);
            }
        }
        ids.try_reserve(1).ok()?;
        // Id 0 is never handed out: the first word starts with it taken.
        let first = ids.is_empty();
        ids.push(if first { 0b11 } else { 1 });
        Some(((ids.len() - 1) * 64) as u32 + u32::from(first))
    }

    fn free_mm_id(&self, id: u32) {
        let mut ids = self.mm_ids.lock();
        let (w, bit) = (id as usize / 64, id % 64);
        assert!(
            ids.get(w).is_some_and(|x| x & (1 << bit) != 0),
            "BUG: freeing MM id {id} that is not allocated"
        );
        ids[w] &= !(1 << bit);
    }
}

impl<P: Platform> Drop for Vm<'_, P> {
    fn drop(&mut self) {
        if let Err(bad) = self.pa.free_pages(self.zero_page, Order::ZERO) {
            log::error!("BUG: freeing the zero page: {bad:?}");
        }
    }
}

//! The address space (`struct mm_struct`): VMAs in an allocation-range
//! maple tree, page tables, the mmap lock, the MM id and the counters
//! `/proc/PID/status` shows.
//!
//! # Invariants
//!
//! - M1: every tree entry is a leaked `Box<Vma>` owned by this `Mm`. A
//!   VMA is never changed in place: a change stores a new copy over its
//!   range and retires the old one through RCU ([`Mm::retire_vma`]), so
//!   a reader's copy ([`Mm::read`]) is always one consistent VMA.
//! - M2: `map_count` is the number of entries; `total_vm`, `data_vm`,
//!   `stack_vm`, `exec_vm` and `locked_vm` are the pages of the VMAs of
//!   each kind (every insert and retire goes through `account`).
//! - M3: at drop (`exit_mmap()`), every page and table is freed through
//!   one mmu_gather and every VMA is retired; the MM id goes back last.
//!
//! # Locking
//!
//! The lock order is in the [module header](super). The VMA-set changes
//! here (`insert_vma`, `retire_vma`, `replace_vma`, `set_vma_flags`) and
//! the splits and merges built on them in `vma.rs` take `&mut MmLocked`,
//! which only the mmap lock's write guard gives out: the type proves the
//! caller holds it. The counters are Relaxed atomics, read racily for
//! `/proc`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Vm;
use super::mremap::MremapStat;
use super::vma::{VmFlags, Vma};
use super::zap::ZapDetails;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::maple::{MapleTree, MtFlags};
use crate::pgtable::{MmuGather, PageTable, TASK_SIZE};
use crate::platform::Platform;
use crate::stack_vec::StackVec;
use crate::stats::Counters;

/// What the mmap lock protects besides the VMA set.
pub(super) struct MmLocked {
    /// VMAs in the tree (`map_count`).
    pub map_count: usize,
    /// Program break: start of the heap and its current end.
    pub start_brk: u64,
    pub brk: u64,
    /// Top of the top-down mmap area (`mmap_base`).
    pub mmap_base: u64,
    /// Flags every new mapping gets (`mm->def_flags`): the lock flags of
    /// `mlockall(MCL_FUTURE)`.
    pub def_flags: VmFlags,
}

/// `/proc/PID/status` memory lines, in kB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmStatus {
    /// `VmPeak`: the largest `VmSize` seen (`hiwater_vm`, raised before
    /// an unmap lowers `total_vm`).
    pub vm_peak: u64,
    pub vm_size: u64,
    /// `VmHWM`: the largest RSS seen (`hiwater_rss`, raised before a zap
    /// lowers the RSS; `clear_refs` 5 resets it to the current RSS).
    pub vm_hwm: u64,
    /// `RssAnon + RssShmem` (no file pages yet).
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub rss_shmem: u64,
    pub vm_data: u64,
    pub vm_stk: u64,
    pub vm_exe: u64,
    /// `VmLck`: the `VM_LOCKED` VMAs.
    pub vm_lck: u64,
    pub vm_pte: u64,
}

/// One address space.
pub struct Mm<'v, 'a, P: Platform> {
    pub(super) vm: &'v Vm<'a, P>,
    id: u32,
    pub(super) pt: PageTable<'a, P>,
    /// VMAs keyed by `[start, end - 1]`; each entry is a leaked
    /// `Box<Vma>`, freed through RCU when replaced or removed.
    pub(super) vmas: MapleTree<'a, NonNull<Vma>, P>,
    /// The mmap lock (`mmap_lock`, a sleeping rwsem): write for VMA
    /// changes, read for faults and lookups.
    pub(super) mmap_lock: crate::rwsem::RwSem<MmLocked>,
    total_vm: AtomicU64,
    data_vm: AtomicU64,
    stack_vm: AtomicU64,
    exec_vm: AtomicU64,
    /// Pages of the `VM_LOCKED` VMAs (`locked_vm`, `VmLck`).
    locked_vm: AtomicU64,
    /// Anonymous pages mapped (`MM_ANONPAGES`).
    pub(super) rss_anon: AtomicU64,
    /// Shmem pages mapped (`MM_SHMEMPAGES`).
    pub(super) rss_shmem: AtomicU64,
    /// Peak RSS in pages before the last decrease (`hiwater_rss`):
    /// [`Mm::update_hiwater_rss`].
    hiwater_rss: AtomicU64,
    /// Peak `total_vm` before the last decrease (`hiwater_vm`).
    hiwater_vm: AtomicU64,
    /// mremap paths taken; read with [`Mm::mremap_stat`].
    pub(super) mremap_stats: Counters<{ MremapStat::COUNT }>,
    /// `mm->flags` bits this kernel has ([`MmFlags`]): set by prctl,
    /// copied to a child by fork and to the new address space by exec
    /// through [`MmFlags::init`] (`mmf_init_flags()`). Relaxed: each bit is
    /// only ever set, and read by the mm's own threads.
    flags: AtomicU64,
}

bitflags::bitflags! {
    /// The `mm->flags` bits of this kernel (`MMF_*`, Linux's bit numbers).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MmFlags: u64 {
        /// Memory-deny-write-execute (`PR_MDWE_REFUSE_EXEC_GAIN`):
        /// [`map_deny_write_exec`] refuses mappings that gain exec.
        const HAS_MDWE = 1 << 28;
        /// `PR_MDWE_NO_INHERIT`: neither MDWE bit passes to a fork child
        /// or over exec.
        const HAS_MDWE_NO_INHERIT = 1 << 29;
    }
}

impl MmFlags {
    /// The bits a new address space takes from the one it is made from
    /// (`mmf_init_flags()`, fork's and exec's `mm_init()`): MDWE stays
    /// unless `NO_INHERIT` asked for it not to; `NO_INHERIT` itself never
    /// passes (it is not in `MMF_INIT_MASK`).
    pub fn init(self) -> MmFlags {
        if self.contains(MmFlags::HAS_MDWE_NO_INHERIT) {
            return MmFlags::empty();
        }
        self & MmFlags::HAS_MDWE
    }
}

/// `map_deny_write_exec()` (`include/linux/mman.h`): under MDWE a VMA
/// may not become writable and executable, nor executable when it was
/// not (`old` the flags it has, `new` the ones asked for; both the same
/// for a new mapping).
pub fn map_deny_write_exec(mm_flags: MmFlags, old: VmFlags, new: VmFlags) -> bool {
    if !mm_flags.contains(MmFlags::HAS_MDWE) || !new.contains(VmFlags::EXEC) {
        return false;
    }
    new.contains(VmFlags::WRITE) || !old.contains(VmFlags::EXEC)
}

// SAFETY: the VMA pointers in the tree are owned by the Mm and read only
// under the mmap lock or RCU; everything else is atomics and locks.
unsafe impl<P: Platform> Send for Mm<'_, '_, P> {}
// SAFETY: shared use reads VMAs only under the mmap lock or RCU (freed through RCU) and changes
// them under the write lock; the rest is atomics.
unsafe impl<P: Platform> Sync for Mm<'_, '_, P> {}

impl<'v, 'a, P: Platform> Mm<'v, 'a, P> {
    /// An empty address space (`mm_alloc()`).
    pub fn new(vm: &'v Vm<'a, P>) -> Result<Self> {
        let id = vm.alloc_mm_id().ok_or(Errno::ENOMEM)?;
        let pt = match PageTable::new(vm.pa, vm.rcu, id) {
            Ok(pt) => pt,
            Err(_) => {
                vm.free_mm_id(id);
                return Err(Errno::ENOMEM);
            }
        };
        Ok(Mm {
            vm,
            id,
            pt,
            vmas: MapleTree::new(
                vm.node_cache,
                vm.rcu,
                MtFlags::ALLOC_RANGE | MtFlags::USE_RCU,
            ),
            mmap_lock: crate::rwsem::RwSem::new(MmLocked {
                map_count: 0,
                start_brk: 0,
                brk: 0,
                // mmap_base(): below the largest stack gap Linux allows for
                // (128 MiB), without randomization.
                mmap_base: TASK_SIZE - (128 << 20),
                def_flags: VmFlags::empty(),
            }),
            total_vm: AtomicU64::new(0),
            data_vm: AtomicU64::new(0),
            stack_vm: AtomicU64::new(0),
            exec_vm: AtomicU64::new(0),
            locked_vm: AtomicU64::new(0),
            rss_anon: AtomicU64::new(0),
            rss_shmem: AtomicU64::new(0),
            hiwater_rss: AtomicU64::new(0),
            hiwater_vm: AtomicU64::new(0),
            mremap_stats: Counters::new(),
            flags: AtomicU64::new(0),
        })
    }

    /// The `MMF_*` bits ([`MmFlags`]).
    pub fn mm_flags(&self) -> MmFlags {
        MmFlags::from_bits_truncate(self.flags.load(Relaxed))
    }

    /// Sets `MMF_*` bits (`set_bit(.., &mm->flags)`); they are never
    /// cleared in an address space's life.
    pub fn set_mm_flags(&self, f: MmFlags) {
        self.flags.fetch_or(f.bits(), Relaxed);
    }

    /// The MM id (`mm->mm_id`).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn page_table(&self) -> &PageTable<'a, P> {
        &self.pt
    }

    /// The VMA tree (read it under the mmap lock or RCU).
    pub fn vma_tree(&self) -> &MapleTree<'a, NonNull<Vma>, P> {
        &self.vmas
    }

    /// Sets the program break's start (the ELF loader's `start_brk`).
    pub fn set_brk_start(&self, start: u64) {
        let mut l = self.mmap_lock.write(self.platform());
        l.start_brk = start;
        l.brk = start;
    }

    /// The memory lines of `/proc/PID/status`.
    pub fn status(&self) -> MmStatus {
        let kb = |pages: &AtomicU64| pages.load(Relaxed) * (PAGE_SIZE / 1024);
        let pg = PAGE_SIZE / 1024;
        MmStatus {
            vm_peak: self
                .hiwater_vm
                .load(Relaxed)
                .max(self.total_vm.load(Relaxed))
                * pg,
            vm_size: kb(&self.total_vm),
            vm_hwm: self.hiwater_rss.load(Relaxed).max(self.rss()) * pg,
            vm_rss: kb(&self.rss_anon) + kb(&self.rss_shmem),
            rss_anon: kb(&self.rss_anon),
            rss_shmem: kb(&self.rss_shmem),
            vm_data: kb(&self.data_vm),
            vm_stk: kb(&self.stack_vm),
            vm_exe: kb(&self.exec_vm),
            vm_lck: kb(&self.locked_vm),
            vm_pte: self.pt.pgtables_bytes() / 1024,
        }
    }

    /// Resident pages (`get_mm_rss()`).
    pub fn rss(&self) -> u64 {
        self.rss_anon.load(Relaxed) + self.rss_shmem.load(Relaxed)
    }

    /// Records the RSS as a peak before it goes down
    /// (`update_hiwater_rss()`): every zap calls it first.
    pub(super) fn update_hiwater_rss(&self) {
        self.hiwater_rss.fetch_max(self.rss(), Relaxed);
    }

    /// Records `total_vm` as a peak before an unmap lowers it
    /// (`update_hiwater_vm()`).
    pub(super) fn update_hiwater_vm(&self) {
        self.hiwater_vm
            .fetch_max(self.total_vm.load(Relaxed), Relaxed);
    }

    pub(super) fn hiwater_vm(&self) -> u64 {
        self.hiwater_vm.load(Relaxed)
    }

    pub(super) fn set_hiwater_vm(&self, pages: u64) {
        self.hiwater_vm.store(pages, Relaxed);
    }

    /// `reset_mm_hiwater_rss()` (clear_refs 5): the peak becomes the
    /// current RSS.
    pub(super) fn reset_hiwater_rss(&self) {
        self.hiwater_rss.store(self.rss(), Relaxed);
    }

    /// Number of VMAs.
    pub fn map_count(&self) -> usize {
        self.mmap_lock.read(self.platform()).map_count
    }

    /// Copies the VMA behind a tree entry.
    pub(super) fn read(&self, p: NonNull<Vma>) -> Vma {
        let _rcu = self.vm.rcu.read_lock();
        // SAFETY: entries are leaked boxes, freed only through RCU after
        // leaving the tree; we hold the mmap lock or the RCU read lock.
        unsafe { *p.as_ref() }
    }

    /// The first VMA ending above `addr` (`find_vma()`).
    pub fn find_vma(&self, addr: u64) -> Option<Vma> {
        self.find_vma_entry(addr).map(|(_, v)| v)
    }

    pub(super) fn find_vma_entry(&self, addr: u64) -> Option<(NonNull<Vma>, Vma)> {
        self.vmas
            .find(addr, u64::MAX)
            .map(|(_, _, p)| (p, self.read(p)))
    }

    /// The VMA containing `addr` (`vma_lookup()`).
    pub fn vma_lookup(&self, addr: u64) -> Option<Vma> {
        self.vmas.load(addr).map(|p| self.read(p))
    }

    /// Where `addr` lies in a mapping of a shmem object: its inode number,
    /// the byte offset in it, and whether the mapping is `MAP_SHARED`
    /// (`get_futex_key()`'s file case), or `None` outside such mappings.
    /// Takes the mmap lock for read.
    pub fn shmem_offset(&self, addr: u64) -> Option<(u64, u64, bool)> {
        let _l = self.mmap_lock.read(self.platform());
        let v = self.vma_lookup(addr)?;
        let obj = v.shmem?;
        Some((
            obj.ino(),
            (v.pgoff_at(addr) << crate::addr::PAGE_SHIFT) | (addr & (PAGE_SIZE - 1)),
            v.flags.contains(super::VmFlags::SHARED),
        ))
    }

    /// The last VMA starting below `addr` (`find_vma_prev()`'s prev).
    pub(super) fn prev_vma_entry(&self, addr: u64) -> Option<(NonNull<Vma>, Vma)> {
        if addr == 0 {
            return None;
        }
        self.vmas
            .find_prev(addr - 1, 0)
            .map(|(_, _, p)| (p, self.read(p)))
    }

    /// The machine's platform (the mmap lock sleeps through it).
    pub(super) fn platform(&self) -> &'a P {
        self.pt.page_alloc().platform()
    }

    /// Every VMA, in address order.
    pub fn vmas(&self) -> Vec<Vma> {
        let _l = self.mmap_lock.read(self.platform());
        self.vmas
            .iter(0, u64::MAX)
            .map(|(_, _, p)| self.read(p))
            .collect()
    }

    /// VMA entries intersecting `[start, end)`, the first few without a
    /// heap allocation.
    pub(super) fn vmas_in_small(&self, start: u64, end: u64) -> StackVec<(NonNull<Vma>, Vma), 4> {
        let mut out = StackVec::new((NonNull::dangling(), Vma::EMPTY));
        if start < end {
            for (_, _, p) in self.vmas.iter(start, end - 1) {
                out.push((p, self.read(p)));
            }
        }
        out
    }

    /// VMA entries intersecting `[start, end)`.
    pub(super) fn vmas_in(&self, start: u64, end: u64) -> Vec<(NonNull<Vma>, Vma)> {
        if start >= end {
            return Vec::new();
        }
        self.vmas
            .iter(start, end - 1)
            .map(|(_, _, p)| (p, self.read(p)))
            .collect()
    }

    // ----- VMA set changes: the caller holds the mmap lock for write -----

    /// Stores `v` over its range (`vma_iter_store_new()`), overwriting
    /// what is there; accounts it.
    pub(super) fn insert_vma(&self, l: &mut MmLocked, v: Vma) -> Result<NonNull<Vma>> {
        self.store_vma(l, v.start, v.end, Some(v), Gfp::KERNEL)
            .map(|p| p.expect("a VMA was stored"))
    }

    /// The one tree store behind every VMA-set change: `new` (boxed and
    /// accounted), or a hole for `None`, over `[start, end)`. On error
    /// nothing changed and the box is freed.
    pub(super) fn store_vma(
        &self,
        l: &mut MmLocked,
        start: u64,
        end: u64,
        new: Option<Vma>,
        gfp: Gfp,
    ) -> Result<Option<NonNull<Vma>>> {
        let np = new.map(|v| NonNull::from(Box::leak(Box::new(v))));
        if let Err(e) = self.vmas.lock().store_range(start, end - 1, np, gfp) {
            if let Some(p) = np {
                // SAFETY: never published: still ours.
                drop(unsafe { Box::from_raw(p.as_ptr()) });
            }
            return Err(Errno(-e.errno()));
        }
        if let Some(v) = new {
            l.map_count += 1;
            self.account(&v, 1);
            // The VMA in the tree owns a reference to its object.
            if let Some(obj) = v.shmem {
                obj.get();
                obj.i_mmap_insert(self.id(), v.start, v.pgoff, v.pages());
                if v.maps_writable() {
                    obj.account_writable(1);
                }
            }
        }
        Ok(np)
    }

    /// Unaccounts a VMA that left the tree (or whose range was
    /// overwritten) and frees it after a grace period (`vm_area_free()`).
    pub(super) fn retire_vma(&self, l: &mut MmLocked, p: NonNull<Vma>) {
        // SAFETY: a leaked box no longer reachable from the tree; readers
        // that found it keep it until their grace period ends.
        let v = unsafe { Box::from_raw(p.as_ptr()) };
        l.map_count -= 1;
        self.account(&v, -1);
        if let Some(obj) = v.shmem {
            if v.maps_writable() {
                obj.account_writable(-1);
            }
            obj.i_mmap_remove(self.id(), v.start, v.pgoff, v.pages());
            obj.put(self.vm);
        }
        self.vm.rcu.kvfree_rcu(v);
    }

    /// Replaces the tree entry `p` by `v`, a copy over the same range
    /// with the same flags, without `&mut MmLocked` (`anon_vma_prepare`
    /// sets a VMA's anon_vma under the registry lock with the mmap lock
    /// held for read). An exact fit needs no tree memory; no accounting
    /// changes; the old copy is freed after a grace period (M1, I6).
    pub(super) fn swap_vma_exact(&self, p: NonNull<Vma>, v: Vma) {
        let new = NonNull::from(Box::leak(Box::new(v)));
        self.vmas
            .lock()
            .store_range(v.start, v.end - 1, Some(new), Gfp::NOWAIT)
            .expect("an exact-fit store needs no nodes");
        // SAFETY: a leaked box (M1) that left the tree just now; lockless
        // readers that found it may use it until their grace period ends,
        // and `kvfree_rcu` frees it only after that.
        self.vm.rcu.kvfree_rcu(unsafe { Box::from_raw(p.as_ptr()) });
    }

    /// Replaces the VMA `old` by `pieces` (which cover its range, or part
    /// of it when the rest is cleared separately).
    pub(super) fn replace_vma(
        &self,
        l: &mut MmLocked,
        old: NonNull<Vma>,
        pieces: &[Vma],
    ) -> Result<()> {
        for v in pieces {
            self.insert_vma(l, *v)?;
        }
        self.retire_vma(l, old);
        Ok(())
    }

    /// Gives the VMA `p` new flags where it is (`vm_flags_set()`,
    /// `vm_flags_clear()`): a copy stored over exactly its range, which
    /// needs no tree memory. No merging. Returns the new entry.
    pub(super) fn set_vma_flags(
        &self,
        l: &mut MmLocked,
        p: NonNull<Vma>,
        flags: VmFlags,
    ) -> NonNull<Vma> {
        let v = Vma {
            flags,
            ..self.read(p)
        };
        let new = self.insert_vma_exact(l, v);
        self.retire_vma(l, p);
        new
    }

    /// Stores `v` over a range that exactly one tree entry covers, which
    /// needs no nodes; accounts it.
    pub(super) fn insert_vma_exact(&self, l: &mut MmLocked, v: Vma) -> NonNull<Vma> {
        self.store_vma(l, v.start, v.end, Some(v), Gfp::NOWAIT)
            .expect("an exact-fit store needs no nodes")
            .expect("a VMA was stored")
    }

    fn account(&self, v: &Vma, sign: i64) {
        let n = (v.pages() as i64 * sign) as u64;
        self.total_vm.fetch_add(n, Relaxed);
        if v.flags.is_data() {
            self.data_vm.fetch_add(n, Relaxed);
        }
        if v.flags.is_stack() {
            self.stack_vm.fetch_add(n, Relaxed);
        }
        if v.flags.is_exec() {
            self.exec_vm.fetch_add(n, Relaxed);
        }
        if v.flags.contains(VmFlags::LOCKED) {
            self.locked_vm.fetch_add(n, Relaxed);
        }
    }

    /// Checks the address space's invariants: VMAs do not overlap, are
    /// page aligned, adjacent compatible VMAs are merged, every present
    /// PTE lies inside a VMA that allows it, the RSS counter matches
    /// the PTEs, and each shmem object's `i_mmap` holds exactly this
    /// address space's VMAs of it (S6 of `shmem`). For tests and
    /// debugging.
    pub fn validate(&self) -> core::result::Result<(), alloc::string::String> {
        use alloc::format;
        let _l = self.mmap_lock.read(self.platform());
        let vmas: Vec<Vma> = self
            .vmas
            .iter(0, u64::MAX)
            .map(|(_, _, p)| self.read(p))
            .collect();
        for w in vmas.windows(2) {
            if w[0].end > w[1].start {
                return Err(format!("overlapping VMAs {:?} {:?}", w[0], w[1]));
            }
            if super::can_merge(&w[0], &w[1]) {
                return Err(format!("unmerged compatible VMAs {:?} {:?}", w[0], w[1]));
            }
        }
        let (mut rss, mut rss_shmem) = (0, 0);
        for r in self.pt.dump().ranges {
            let mut a = r.start;
            while a < r.end {
                let v = vmas.iter().find(|v| v.contains(a));
                let Some(v) = v else {
                    return Err(format!("PTE at {a:#x} outside every VMA"));
                };
                if r.flags.contains(crate::pgtable::PteFlags::WRITE)
                    && !v.flags.contains(VmFlags::WRITE)
                {
                    return Err(format!("writable PTE at {a:#x} in {v:?}"));
                }
                if !r.flags.contains(crate::pgtable::PteFlags::NX)
                    && !v.flags.contains(VmFlags::EXEC)
                {
                    return Err(format!("executable PTE at {a:#x} in {v:?}"));
                }
                let e = self.pt.get_pte(a).expect("dumped");
                if e.pfn() != self.vm.zero_page() {
                    if crate::folio::Folio::of(self.vm.pa.memmap(), e.pfn()).is_shmem() {
                        rss_shmem += 1;
                    } else {
                        rss += 1;
                    }
                }
                a += PAGE_SIZE;
            }
        }
        if rss != self.rss_anon.load(Relaxed) {
            return Err(format!(
                "RSS counter {} but {rss} anonymous pages mapped",
                self.rss_anon.load(Relaxed)
            ));
        }
        if rss_shmem != self.rss_shmem.load(Relaxed) {
            return Err(format!(
                "RssShmem counter {} but {rss_shmem} shmem pages mapped",
                self.rss_shmem.load(Relaxed)
            ));
        }
        for v in &vmas {
            let Some(obj) = v.shmem else { continue };
            let want = crate::shmem::IMmapEntry {
                mm: self.id(),
                start: v.start,
                pgoff: v.pgoff,
                last: v.pgoff + v.pages() - 1,
            };
            let mine: Vec<_> = obj
                .i_mmap_query(0, u64::MAX)
                .into_iter()
                .filter(|e| e.mm == self.id())
                .collect();
            let in_tree = vmas.iter().filter(|w| w.shmem == Some(obj)).count();
            if !mine.contains(&want) || mine.len() != in_tree {
                return Err(format!(
                    "i_mmap of {obj:?} has {mine:x?} for {in_tree} VMAs, not {want:x?}"
                ));
            }
        }
        Ok(())
    }
}

impl<P: Platform> Drop for Mm<'_, '_, P> {
    /// `exit_mmap()`: zap every VMA, free every table, free the VMAs.
    fn drop(&mut self) {
        let mut l = self.mmap_lock.write(self.platform());
        let all = self.vmas_in(0, u64::MAX);
        let mut tlb = MmuGather::new(&self.pt, true);
        for (_, v) in &all {
            self.zap_range(&mut tlb, v.start, v.end, ZapDetails::default());
        }
        self.pt.free_pgd_range(&mut tlb, 0, TASK_SIZE, 0, 0);
        tlb.finish();
        let mut nr_accounted = 0;
        for (p, v) in all {
            if v.flags.contains(VmFlags::ACCOUNT) {
                nr_accounted += v.pages();
            }
            self.retire_vma(&mut l, p);
        }
        self.vm.vm_unacct_memory(nr_accounted);
        drop(l);
        self.vmas.destroy();
        self.anon_vma_exit();
        self.vm.free_mm_id(self.id);
    }
}

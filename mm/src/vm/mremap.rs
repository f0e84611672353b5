//! mremap: resizes a mapping in place or moves it, page tables and all
//! (`mm/mremap.c`, following the 6.16 `vma_remap_struct` flow).
//!
//! One [`VmaRemap`] ("vrm") carries the user's arguments and the state
//! the steps derive (the VMA, `delta`, the [`RemapType`], the pages
//! charged) through every step, as Linux's `struct vma_remap_struct` does:
//!
//! ```text
//! do_mremap
//!  ├ check_mremap_params          flags, alignment, lengths, overlap
//!  ├ vma_lookup + check_prep_vma  EFAULT/EINVAL, delta, remap_type
//!  │  └ remap_is_valid            (when the call maps anything new)
//!  ├ mremap_to  (FIXED or DONTUNMAP: a new address is implied)
//!  │  ├ FIXED: do_munmap(new range)
//!  │  ├ SHRINK: shrink_vma
//!  │  ├ vrm_set_new_addr
//!  │  └ move_vma
//!  └ mremap_at
//!     ├ NO_RESIZE: nothing       SHRINK: shrink_vma
//!     └ EXPAND: expand_vma_in_place, or with MAYMOVE:
//!               vrm_set_new_addr + move_vma
//!
//! move_vma: prep_move_vma → vrm_calc_charge → copy_vma_and_data
//!           (copy_vma: new VMA, may merge; move_page_tables; on failure
//!           move back and unmap the new range instead) → unmap_source_vma,
//!           or dontunmap_complete with DONTUNMAP
//! ```
//!
//! # Invariants
//!
//! - I1: a move never changes a page's mapcount, RSS or the commit
//!   charge of what moved: each PTE is cleared at its old address and set
//!   at its new one under both tables' locks; only the new tables'
//!   allocations (VmPTE) and, later, the old range's unmap (which frees
//!   the old tables) change the counters.
//! - I2: after a move without DONTUNMAP the pieces of the old VMA left
//!   before and after the moved range carry `VM_ACCOUNT` exactly when it
//!   did. Linux conceals `VM_ACCOUNT` during the unmap so that the moved
//!   pages stay charged, then restores it on those pieces; which pieces
//!   exist is remembered as real booleans (before 6.15 the *addresses*
//!   were kept and tested as booleans, so a VMA starting at address 0
//!   lost `VM_ACCOUNT` on its lower piece).
//! - I3: the commit charge moves with the mapping: a move charges what
//!   it adds (the growth; with DONTUNMAP, the whole new range, as the old
//!   VMA stays), and a failed move uncharges it.
//!
//! # Locking
//!
//! 1. The mmap lock, for write, for the whole call (the populate of a
//!    grown mlocked mapping runs after it is dropped).
//! 2. Moving PTEs holds the old PTE table's lock, then the new one's (one
//!    lock when both ranges share the table). Two PTE locks of one
//!    address space cannot deadlock: every other path takes one at a time,
//!    and the exclusive mmap lock keeps other movers out (Linux's
//!    `move_ptes()` argues the same).
//!
//! # Ordering
//!
//! Per PTE table: clear the old PTE, set the new one, and flush the TLB
//! for the old range before either lock is dropped: until then another
//! CPU could still write through the old translation, and once the new
//! table's lock is free the page could be unmapped and freed at its new
//! address.
//!
//! # Deviations
//!
//! - `old_len == 0` (duplicating a shared mapping) is refused with
//!   `EINVAL` for shared mappings too: there is no shmem object to share.
//! - No `RLIMIT_AS`/`RLIMIT_MEMLOCK` (`may_expand_vm()`,
//!   `mlock_future_ok()`), no `locked_vm`, no PMD-level table moves.
//! - With DONTUNMAP the old VMA keeps `VM_ACCOUNT` (the late-2025 fix
//!   "mm/mremap: correctly account old mapping after MREMAP_DONTUNMAP
//!   remap"; 6.16 cleared it and leaked its charge), and after `VM_LOCKED`
//!   is cleared on it, it is merged with compatible neighbours (Linux
//!   leaves it unmerged; our address spaces keep every compatible pair
//!   merged).
//! - A shrink-and-move charges nothing (the growth after the shrink is
//!   zero); 6.16 charges `delta`, the size of the shrink.
#![forbid(unsafe_code)]

use super::mm::MmLocked;
use super::mmap::page_align;
use super::vma::{VmFlags, Vma};
use super::{MapFlags, Mm};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, Result};
use crate::pgtable::{PMD_SIZE, PteFlags, TASK_SIZE, addr_end};
use crate::platform::Platform;
use crate::stats::define_stats;

bitflags::bitflags! {
    /// `MREMAP_*`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MremapFlags: u64 {
        /// The mapping may move if it cannot be resized in place.
        const MAYMOVE = 1;
        /// Move to `new_addr`, unmapping what is there (needs MAYMOVE).
        const FIXED = 2;
        /// Move, but leave the old VMA in place, emptied (needs MAYMOVE
        /// and `old_len == new_len`).
        const DONTUNMAP = 4;
    }
}

define_stats! {
    /// mremap paths taken, per address space.
    pub enum MremapStat {
        /// Same size, not moved: nothing to do.
        NoResize => "mremap_no_resize",
        /// The tail unmapped in place.
        Shrink => "mremap_shrink",
        /// Grown in place over the free gap after the VMA.
        ExpandInPlace => "mremap_expand_in_place",
        /// Moved to a new range (FIXED, DONTUNMAP or MAYMOVE growth).
        Move => "mremap_move",
        /// Of those, the old VMA left in place (DONTUNMAP).
        DontUnmap => "mremap_dontunmap",
        /// PTEs moved from an old to a new address.
        PtesMoved => "mremap_ptes_moved",
        /// Page tables could not all be moved (no memory): moved back,
        /// the new range unmapped, ENOMEM.
        MoveFailed => "mremap_move_failed",
    }
}

/// What kind of resize (`enum mremap_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RemapType {
    /// Not classified yet.
    Invalid,
    /// `old_len == new_len`: if not moved, nothing to do.
    NoResize,
    Shrink,
    Expand,
}

/// One mremap operation (`struct vma_remap_struct`), threaded through
/// every step; steps update it as the operation changes shape (a shrink
/// before a move sets `old_len` to `new_len`; a failed move makes the new
/// range the one to unmap).
struct VmaRemap {
    // The user's arguments, lengths page-aligned.
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: MremapFlags,
    /// The destination: the user's with FIXED (or as a hint with
    /// DONTUNMAP), else chosen by `vrm_set_new_addr`, or `addr` when the
    /// mapping stays.
    new_addr: u64,
    /// The VMA at `addr`, as last looked up. VMAs are immutable copies:
    /// every step that changes the tree looks it up again.
    vma: Option<Vma>,
    /// `|new_len - old_len|`.
    delta: u64,
    remap_type: RemapType,
    /// An mlocked VMA grew: populate the new part once unlocked.
    mlocked: bool,
    /// Pages charged for `VM_ACCOUNT` by this operation.
    charged: u64,
}

impl VmaRemap {
    /// FIXED or DONTUNMAP: the mapping will go to a new address
    /// (`vrm_implies_new_addr()`).
    fn implies_new_addr(&self) -> bool {
        self.flags
            .intersects(MremapFlags::FIXED | MremapFlags::DONTUNMAP)
    }

    /// Whether new address space gets mapped (`vrm_will_map_new()`).
    fn will_map_new(&self) -> bool {
        self.remap_type == RemapType::Expand || self.implies_new_addr()
    }

    /// Whether the old and new ranges overlap (`vrm_overlaps()`).
    fn overlaps(&self) -> bool {
        let end_old = self.addr.saturating_add(self.old_len);
        let end_new = self.new_addr.saturating_add(self.new_len);
        end_old > self.new_addr && end_new > self.addr
    }

    /// The VMA looked up last; steps run only after `check_prep_vma`
    /// found one.
    fn vma(&self) -> Vma {
        self.vma.expect("mremap step without a VMA")
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// `mremap()`: resizes the mapping at `addr` from `old_len` to
    /// `new_len` bytes, moving it if `flags` allow or ask; returns its
    /// (new) address.
    pub fn mremap(
        &self,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: MremapFlags,
        new_addr: u64,
    ) -> Result<u64> {
        // PAGE_ALIGN wraps to 0 on overflow in Linux: new_len 0 is EINVAL,
        // old_len 0 too (for every mapping here).
        let mut vrm = VmaRemap {
            addr,
            old_len: page_align(old_len).unwrap_or(0),
            new_len: page_align(new_len).unwrap_or(0),
            flags,
            new_addr,
            vma: None,
            delta: 0,
            remap_type: RemapType::Invalid,
            mlocked: false,
            charged: 0,
        };
        self.do_mremap(&mut vrm)
    }

    /// mremap with the arguments in `vrm` (`do_mremap()`).
    fn do_mremap(&self, vrm: &mut VmaRemap) -> Result<u64> {
        let res = {
            let mut l = self.mmap_lock.write(self.platform());
            self.check_mremap_params(&l, vrm).and_then(|()| {
                vrm.vma = self.vma_lookup(vrm.addr);
                self.check_prep_vma(vrm)?;
                if vrm.implies_new_addr() {
                    self.mremap_to(&mut l, vrm)
                } else {
                    self.mremap_at(&mut l, vrm)
                }
            })
        };
        if res.is_ok() && vrm.mlocked && vrm.new_len > vrm.old_len {
            self.populate(vrm.new_addr + vrm.old_len, vrm.new_addr + vrm.new_len);
        }
        res
    }

    /// The argument checks that need no VMA (`check_mremap_params()`).
    fn check_mremap_params(&self, l: &MmLocked, vrm: &VmaRemap) -> Result<()> {
        if !MremapFlags::all().contains(vrm.flags) {
            return Err(Errno::EINVAL);
        }
        if vrm.addr & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        // A zero old_len is Linux's "duplicate a shared mapping"; a zero
        // new_len is nonsense.
        if vrm.new_len == 0 {
            return Err(Errno::EINVAL);
        }
        if vrm.new_len > TASK_SIZE || vrm.new_addr > TASK_SIZE - vrm.new_len {
            return Err(Errno::EINVAL);
        }
        if !vrm.implies_new_addr() {
            return Ok(());
        }
        if vrm.new_addr & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if !vrm.flags.contains(MremapFlags::MAYMOVE) {
            return Err(Errno::EINVAL);
        }
        if vrm.flags.contains(MremapFlags::DONTUNMAP) && vrm.old_len != vrm.new_len {
            return Err(Errno::EINVAL);
        }
        if vrm.overlaps() {
            return Err(Errno::EINVAL);
        }
        // Unmapping the destination and then the source may each split a
        // VMA in three: refuse now rather than fail half-way with the
        // destination already gone.
        if l.map_count + 2 >= self.vm.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// Classifies the operation once the VMA is known
    /// (`check_prep_vma()`).
    fn check_prep_vma(&self, vrm: &mut VmaRemap) -> Result<()> {
        if vrm.vma.is_none() {
            return Err(Errno::EFAULT);
        }
        // A sealed source is neither moved nor resized (mseal.rs).
        if vrm.vma().flags.contains(VmFlags::SEALED) {
            return Err(Errno::EPERM);
        }
        vrm.delta = vrm.old_len.abs_diff(vrm.new_len);
        vrm.remap_type = match vrm.old_len.cmp(&vrm.new_len) {
            core::cmp::Ordering::Equal => RemapType::NoResize,
            core::cmp::Ordering::Greater => RemapType::Shrink,
            core::cmp::Ordering::Less => RemapType::Expand,
        };
        if !vrm.implies_new_addr() {
            vrm.new_addr = vrm.addr;
        }
        if vrm.will_map_new() {
            return self.remap_is_valid(vrm);
        }
        Ok(())
    }

    /// Whether the VMA may be moved or grown as asked
    /// (`remap_is_valid()`).
    fn remap_is_valid(&self, vrm: &VmaRemap) -> Result<()> {
        let v = vrm.vma();
        if vrm.old_len == 0 {
            // Linux duplicates shared mappings here; see "Deviations".
            return Err(Errno::EINVAL);
        }
        if vrm.flags.contains(MremapFlags::DONTUNMAP)
            && v.flags.intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP)
        {
            return Err(Errno::EINVAL);
        }
        // A shrink may cross VMA boundaries in the part it unmaps.
        let old_len = if vrm.remap_type == RemapType::Shrink {
            vrm.new_len
        } else {
            vrm.old_len
        };
        if old_len > v.end - vrm.addr {
            return Err(Errno::EFAULT);
        }
        if vrm.new_len == old_len {
            return Ok(());
        }
        if v.pgoff_at(vrm.addr)
            .checked_add(vrm.new_len >> PAGE_SHIFT)
            .is_none()
        {
            return Err(Errno::EINVAL);
        }
        if v.flags.intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// Moves to an implied new address: FIXED or DONTUNMAP
    /// (`mremap_to()`).
    fn mremap_to(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<u64> {
        if vrm.flags.contains(MremapFlags::FIXED) {
            self.do_munmap(l, vrm.new_addr, vrm.new_len)?;
            // The destination may have been part of the source's VMA.
            vrm.vma = self.vma_lookup(vrm.addr);
            if vrm.vma.is_none() {
                return Err(Errno::EFAULT);
            }
        }
        if vrm.remap_type == RemapType::Shrink {
            self.shrink_vma(l, vrm)?;
            // What is left moves at its new size.
            vrm.old_len = vrm.new_len;
        }
        self.vrm_set_new_addr(l, vrm)?;
        self.move_vma(l, vrm)
    }

    /// Resizes in place, or moves when growing in place is impossible and
    /// MAYMOVE allows (`mremap_at()`).
    fn mremap_at(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<u64> {
        match vrm.remap_type {
            RemapType::NoResize => {
                self.mremap_stats.add(MremapStat::NoResize as usize, 1);
                Ok(vrm.addr)
            }
            RemapType::Shrink => {
                self.shrink_vma(l, vrm)?;
                Ok(vrm.addr)
            }
            RemapType::Expand => self.expand_vma(l, vrm),
            RemapType::Invalid => unreachable!("mremap not classified"),
        }
    }

    /// Unmaps `[addr + new_len, addr + old_len)` (`shrink_vma()`); the
    /// range may extend past the VMA.
    fn shrink_vma(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<()> {
        debug_assert_eq!(vrm.remap_type, RemapType::Shrink);
        let start = vrm.addr + vrm.new_len;
        // do_vmi_munmap()'s own range check.
        if start > TASK_SIZE || vrm.delta > TASK_SIZE - start {
            return Err(Errno::EINVAL);
        }
        self.do_munmap(l, start, vrm.delta)?;
        self.mremap_stats.add(MremapStat::Shrink as usize, 1);
        vrm.vma = self.vma_lookup(vrm.addr);
        if vrm.vma.is_none() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// Grows in place if the range ends at the VMA's end and the gap
    /// after it is free; else moves with MAYMOVE (`expand_vma()`).
    fn expand_vma(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<u64> {
        if self.vrm_can_expand_in_place(vrm) {
            self.expand_vma_in_place(l, vrm)?;
            return Ok(vrm.addr);
        }
        if !vrm.flags.contains(MremapFlags::MAYMOVE) {
            return Err(Errno::ENOMEM);
        }
        self.vrm_set_new_addr(l, vrm)?;
        self.move_vma(l, vrm)
    }

    /// `vrm_can_expand_in_place()` and `vma_expandable()`.
    fn vrm_can_expand_in_place(&self, vrm: &VmaRemap) -> bool {
        let v = vrm.vma();
        if v.end - vrm.addr != vrm.old_len {
            return false;
        }
        let Some(end) = v.end.checked_add(vrm.delta) else {
            return false;
        };
        if self.find_vma(v.end).is_some_and(|n| n.start < end) {
            return false;
        }
        end <= TASK_SIZE
    }

    /// Extends the VMA by `delta` and merges it with the next one if they
    /// now touch and are compatible (`expand_vma_in_place()`,
    /// `vma_merge_extend()`).
    fn expand_vma_in_place(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<()> {
        let v = vrm.vma();
        self.vrm_calc_charge(vrm);
        let p = self.vmas.load(v.start).expect("the VMA being grown");
        let grown = Vma {
            end: v.end + vrm.delta,
            ..v
        };
        if let Err(e) = self
            .replace_vma(l, p, &[grown])
            .and_then(|()| self.merge_around(l, grown.start))
        {
            self.vrm_uncharge(vrm);
            return Err(e);
        }
        vrm.vma = self.vma_lookup(vrm.addr);
        vrm.mlocked = v.flags.contains(VmFlags::LOCKED);
        self.mremap_stats.add(MremapStat::ExpandInPlace as usize, 1);
        Ok(())
    }

    /// Picks the destination (`vrm_set_new_addr()`): FIXED takes
    /// `new_addr` as MAP_FIXED would (already unmapped), DONTUNMAP alone
    /// takes it as a hint, else anywhere.
    fn vrm_set_new_addr(&self, l: &MmLocked, vrm: &mut VmaRemap) -> Result<()> {
        let v = vrm.vma();
        let hint = if vrm.implies_new_addr() {
            vrm.new_addr
        } else {
            0
        };
        let mut map_flags = MapFlags::empty();
        if vrm.flags.contains(MremapFlags::FIXED) {
            map_flags |= MapFlags::FIXED;
        }
        if v.flags.contains(VmFlags::MAYSHARE) {
            map_flags |= MapFlags::SHARED;
        }
        let addr = self.get_unmapped_area(l, hint, vrm.new_len, map_flags)?;
        // security_mmap_addr(): nothing below mmap_min_addr.
        if addr < self.vm.mmap_min_addr {
            return Err(Errno::EPERM);
        }
        vrm.new_addr = addr;
        Ok(())
    }

    /// Charges what the operation adds to an accountable mapping
    /// (`vrm_calc_charge()`): the growth, or with DONTUNMAP the whole new
    /// range since the old one stays. No overcommit limit: never fails.
    fn vrm_calc_charge(&self, vrm: &mut VmaRemap) {
        if !vrm.vma().flags.contains(VmFlags::ACCOUNT) {
            return;
        }
        let bytes = if vrm.flags.contains(MremapFlags::DONTUNMAP) {
            vrm.new_len
        } else {
            vrm.new_len.saturating_sub(vrm.old_len)
        };
        vrm.charged = bytes >> PAGE_SHIFT;
        self.vm.vm_acct_memory(vrm.charged);
    }

    /// Gives back what [`Mm::vrm_calc_charge`] charged
    /// (`vrm_uncharge()`).
    fn vrm_uncharge(&self, vrm: &mut VmaRemap) {
        self.vm.vm_unacct_memory(vrm.charged);
        vrm.charged = 0;
    }

    /// Moves `[addr, addr + old_len)` to `[new_addr, new_addr +
    /// new_len)` (`move_vma()`).
    fn move_vma(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<u64> {
        // prep_move_vma(): the unmap of the source may split a VMA in
        // three; refuse before changing anything.
        if l.map_count >= self.vm.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        self.vrm_calc_charge(vrm);
        let err = self.copy_vma_and_data(l, vrm)?;
        vrm.mlocked = vrm.vma.is_some_and(|v| v.flags.contains(VmFlags::LOCKED));
        self.mremap_stats.add(MremapStat::Move as usize, 1);
        if err.is_none() && vrm.flags.contains(MremapFlags::DONTUNMAP) {
            self.dontunmap_complete(l, vrm);
        } else {
            self.unmap_source_vma(l, vrm);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(vrm.new_addr),
        }
    }

    /// Creates the destination VMA and moves the page tables into it
    /// (`copy_vma_and_data()`). `Err`: nothing changed. `Ok(Some(e))`:
    /// the page tables could not all be moved; they were moved back and
    /// `vrm` now names the new range as the one to unmap.
    fn copy_vma_and_data(&self, l: &mut MmLocked, vrm: &mut VmaRemap) -> Result<Option<Errno>> {
        let v = vrm.vma();
        // copy_vma(): an anonymous VMA that never had a page faulted in
        // (no anon_vma) takes the offset of its new place, so that it can
        // merge there.
        // A shmem VMA keeps its offset in the object.
        let pgoff = if v.anon_vma.is_none() && v.shmem.is_none() {
            vrm.new_addr >> PAGE_SHIFT
        } else {
            v.pgoff_at(vrm.addr)
        };
        let new = Vma {
            start: vrm.new_addr,
            end: vrm.new_addr + vrm.new_len,
            flags: v.flags,
            pgoff,
            anon_vma: v.anon_vma,
            shmem: v.shmem,
        };
        if let Err(e) = self.map_new_range(l, new) {
            self.vrm_uncharge(vrm);
            return Err(e);
        }
        // The source may have merged into the new VMA.
        vrm.vma = self.vma_lookup(vrm.addr);
        let moved = self.move_page_tables(vrm.addr, vrm.new_addr, vrm.old_len);
        if moved == vrm.old_len {
            return Ok(None);
        }
        // Out of memory for a page table: move back what moved (the old
        // tables are all still there) and unmap the new range instead.
        self.mremap_stats.add(MremapStat::MoveFailed as usize, 1);
        let back = self.move_page_tables(vrm.new_addr, vrm.addr, moved);
        debug_assert_eq!(back, moved, "moving back needs no new table");
        if !vrm.flags.contains(MremapFlags::DONTUNMAP) {
            // The new range is unmapped with VM_ACCOUNT concealed below:
            // give back what was charged for it. (With DONTUNMAP it is
            // unmapped accountably and uncharges its own new_len.)
            self.vrm_uncharge(vrm);
        }
        vrm.vma = self.vma_lookup(vrm.new_addr);
        vrm.old_len = vrm.new_len;
        vrm.addr = vrm.new_addr;
        Ok(Some(Errno::ENOMEM))
    }

    /// Unmaps the source after a move (`unmap_source_vma()`), keeping
    /// the moved pages charged: `VM_ACCOUNT` is concealed on the VMA for
    /// the unmap and restored on the pieces left before and after (I2).
    fn unmap_source_vma(&self, l: &mut MmLocked, vrm: &mut VmaRemap) {
        let (addr, len) = (vrm.addr, vrm.old_len);
        let p = self.vmas.load(addr).expect("the source VMA");
        let v = self.read(p);
        vrm.vma = None;
        // With DONTUNMAP this runs only on failure, to unmap the new
        // range, which should then be uncharged.
        let accountable_move =
            v.flags.contains(VmFlags::ACCOUNT) && !vrm.flags.contains(MremapFlags::DONTUNMAP);
        // Booleans, not the addresses: a VMA may start at 0 (the 6.15 fix).
        let (mut account_before, mut account_after) = (false, false);
        if accountable_move {
            self.set_vma_flags(l, p, v.flags - VmFlags::ACCOUNT);
            account_before = v.start < addr;
            account_after = v.end > addr + len;
        }
        // move_vma(): the unmap of the source must not count the moved
        // range twice in VmPeak (hiwater_vm saved and restored).
        let hiwater_vm = self.hiwater_vm();
        let unmapped = self.do_munmap(l, addr, len);
        self.set_hiwater_vm(hiwater_vm);
        if unmapped.is_err() {
            // Out of memory splitting: the source stays mapped (empty:
            // its pages moved) and accountable, so it is charged again:
            // the moved pages stay charged to the new VMA ("OOM: unable
            // to split vma, just get accounts right").
            if accountable_move {
                for (q, w) in self.vmas_in(v.start, v.end) {
                    if !w.flags.contains(VmFlags::ACCOUNT) {
                        self.set_vma_flags(l, q, w.flags | VmFlags::ACCOUNT);
                    }
                }
                self.vm.vm_acct_memory(len >> PAGE_SHIFT);
            }
            return;
        }
        if account_before {
            let q = self.vmas.load(addr - 1).expect("the piece before");
            self.set_vma_flags(l, q, self.read(q).flags | VmFlags::ACCOUNT);
        }
        if account_after {
            let q = self.vmas.load(addr + len).expect("the piece after");
            self.set_vma_flags(l, q, self.read(q).flags | VmFlags::ACCOUNT);
        }
    }

    /// Finishes a DONTUNMAP move (`dontunmap_complete()`): the old VMA
    /// stays, emptied, and is no longer mlocked.
    fn dontunmap_complete(&self, l: &mut MmLocked, vrm: &mut VmaRemap) {
        self.mremap_stats.add(MremapStat::DontUnmap as usize, 1);
        let p = self.vmas.load(vrm.addr).expect("the old VMA");
        let v = self.read(p);
        if v.flags.contains(VmFlags::LOCKED) {
            self.set_vma_flags(l, p, v.flags - VmFlags::LOCKED);
            // See "Deviations": keep compatible neighbours merged. A
            // failed merge only leaves them apart.
            let _ = self.merge_around(l, v.start);
        }
    }

    /// Moves the PTEs of `[old, old + len)` to `[new, new + len)`, one PTE
    /// table's worth at a time (`move_page_tables()`); returns how many
    /// bytes were covered before a table allocation failed.
    fn move_page_tables(&self, old: u64, new: u64, len: u64) -> u64 {
        let mut done = 0;
        while done < len {
            let (o, n) = (old + done, new + done);
            // Up to the next PMD boundary of either side (get_extent()).
            let extent =
                (addr_end(o, old + len, PMD_SIZE) - o).min(PMD_SIZE - (n & (PMD_SIZE - 1)));
            loop {
                // Nothing mapped here: nothing to move.
                if self.pt.pte_offset_map_lock(o).is_none() {
                    break;
                }
                // pte_alloc() of the destination table, before any lock.
                match self.pt.pte_alloc_map_lock(n) {
                    Ok(ptl) => drop(ptl),
                    Err(_) => return done,
                }
                if self.move_ptes(o, n, extent) {
                    break;
                }
                // A table went away meanwhile: look again.
            }
            done += extent;
        }
        done
    }

    /// Moves the PTEs of `[o, o + extent)`, within one PTE table on each
    /// side, to `n` (`move_ptes()`). False when a table was gone; the
    /// caller retries.
    fn move_ptes(&self, o: u64, n: u64, extent: u64) -> bool {
        let Some(mut old_ptl) = self.pt.pte_offset_map_lock(o) else {
            return false;
        };
        let shared = (o & !(PMD_SIZE - 1)) == (n & !(PMD_SIZE - 1));
        let mut new_ptl = if shared {
            None
        } else {
            match self.pt.pte_offset_map_lock(n) {
                Some(ptl) => Some(ptl),
                None => return false,
            }
        };
        let mut force_flush = false;
        let mut nr_moved = 0;
        let mut off = 0;
        while off < extent {
            let (oa, na) = (o + off, n + off);
            off += PAGE_SIZE;
            if old_ptl.get(oa).is_none() {
                continue;
            }
            let mut pte = old_ptl.get_and_clear(oa);
            // A present PTE may be cached in a TLB: flush before unlocking.
            force_flush |= pte.is_present();
            if pte.is_present() {
                // move_soft_dirty_pte(): a moved page is new data at its
                // address for a soft-dirty tracker.
                pte = pte.with_flags(pte.flags() | PteFlags::SOFT_DIRTY);
            }
            let dst = new_ptl.as_mut().unwrap_or(&mut old_ptl);
            debug_assert!(dst.get(na).is_none(), "moving onto a PTE");
            dst.set(na, pte);
            nr_moved += 1;
        }
        if force_flush {
            self.pt.flush_tlb(Some((o, o + extent)));
        }
        drop(new_ptl);
        drop(old_ptl);
        self.mremap_stats
            .add(MremapStat::PtesMoved as usize, nr_moved);
        true
    }

    /// The count of one mremap path.
    pub fn mremap_stat(&self, s: MremapStat) -> u64 {
        self.mremap_stats.get(s as usize)
    }
}

//! mmap, munmap, brk and `get_unmapped_area()` (`mm/mmap.c`, `mm/vma.c`).
//!
//! # Context
//!
//! `mmap`, `munmap` and `brk` take the mmap lock for write;
//! `do_munmap` and `vma.rs`'s `map_new_range` take `&mut MmLocked` (the
//! caller holds it: mremap and `MAP_FIXED` unmap through them). `MAP_POPULATE` and
//! `VM_LOCKED` populate after the lock is dropped, one fault per page as
//! Linux's `mm_populate()`; failures there are not reported.
//!
//! # Ordering
//!
//! munmap (`do_vmi_align_munmap()`): split the VMAs at both ends and
//! clear the range from the tree (the steps that can fail, all before a
//! page is touched), zap the pages, free the page tables only the range
//! used, and flush the TLB in the mmu_gather before any page or table is
//! freed; the VMAs are retired last, through RCU.
#![forbid(unsafe_code)]

use super::mm::{MmLocked, map_deny_write_exec};
use super::vma::{Covering, VmFlags, Vma};
use super::zap::ZapDetails;
use super::{FaultAccess, Mm, STACK_GUARD_GAP};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, Result};
use crate::pgtable::{MmuGather, TASK_SIZE};
use crate::platform::Platform;
use crate::shmem::ShmemRef;

bitflags::bitflags! {
    /// `PROT_*`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Prot: u64 {
        const READ = 0x1;
        const WRITE = 0x2;
        const EXEC = 0x4;
        const GROWSDOWN = 0x0100_0000;
        const GROWSUP = 0x0200_0000;
    }
}

bitflags::bitflags! {
    /// `MAP_*` (x86_64 values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MapFlags: u64 {
        const SHARED = 0x01;
        const PRIVATE = 0x02;
        /// `MAP_DROPPABLE` (6.11): a mapping type of its own (a value of
        /// the `MAP_TYPE` field), anonymous only.
        const DROPPABLE = 0x08;
        const FIXED = 0x10;
        const ANONYMOUS = 0x20;
        const GROWSDOWN = 0x100;
        const DENYWRITE = 0x800;
        const EXECUTABLE = 0x1000;
        const LOCKED = 0x2000;
        const NORESERVE = 0x4000;
        const POPULATE = 0x8000;
        const NONBLOCK = 0x10000;
        const STACK = 0x20000;
        const HUGETLB = 0x40000;
        const SYNC = 0x80000;
        const FIXED_NOREPLACE = 0x100000;
    }
}

impl MapFlags {
    /// `MAP_SHARED_VALIDATE`: the type field value 3.
    pub const SHARED_VALIDATE: MapFlags = MapFlags::SHARED.union(MapFlags::PRIVATE);
}

/// Rounds up to a page; `None` on overflow (`PAGE_ALIGN`).
pub(super) fn page_align(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1).map(|l| l & !(PAGE_SIZE - 1))
}

/// `calc_vm_prot_bits()`.
pub(super) fn prot_to_vm(prot: Prot) -> VmFlags {
    let mut f = VmFlags::empty();
    if prot.contains(Prot::READ) {
        f |= VmFlags::READ;
    }
    if prot.contains(Prot::WRITE) {
        f |= VmFlags::WRITE;
    }
    if prot.contains(Prot::EXEC) {
        f |= VmFlags::EXEC;
    }
    f
}

impl<P: Platform> Mm<'_, '_, P> {
    /// Whether `[addr, addr + len)` is free, stack guard gaps included.
    fn range_free(&self, addr: u64, len: u64) -> bool {
        let end = addr + len;
        match self.find_vma(addr) {
            Some(next) => end <= next.start_gap(STACK_GUARD_GAP),
            None => true,
        }
    }

    /// Picks the address of a new mapping (`__get_unmapped_area()`,
    /// top-down): `MAP_FIXED` takes `addr`; else a free hint; else the
    /// highest gap below `mmap_base` (`unmapped_area_topdown()`), then
    /// bottom-up from the lowest address as Linux's fallback does.
    pub(super) fn get_unmapped_area(
        &self,
        l: &MmLocked,
        addr: u64,
        len: u64,
        flags: MapFlags,
    ) -> Result<u64> {
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        if flags.contains(MapFlags::FIXED) {
            if addr & (PAGE_SIZE - 1) != 0 {
                return Err(Errno::EINVAL);
            }
            if addr > TASK_SIZE - len {
                return Err(Errno::ENOMEM);
            }
            return Ok(addr);
        }
        let low = PAGE_SIZE.max(self.vm.mmap_min_addr);
        if addr != 0
            && let Some(hint) = page_align(addr)
            && hint >= low
            && hint <= TASK_SIZE - len
            && self.range_free(hint, len)
        {
            return Ok(hint);
        }
        let mut high = l.mmap_base.min(TASK_SIZE);
        // Highest gap: retry below a stack whose guard gap the area would
        // intrude on.
        while high > low && high - low >= len {
            match self.vmas.empty_area_rev(low, high - 1, len) {
                Ok(start) => {
                    if self.range_free(start, len) {
                        return Ok(start);
                    }
                    let next = self.find_vma(start).expect("a VMA above the gap");
                    high = next.start_gap(STACK_GUARD_GAP).min(high);
                    if high <= start {
                        high = start;
                    }
                }
                Err(_) => break,
            }
        }
        let mut from = low;
        while from <= TASK_SIZE - len {
            match self.vmas.empty_area(from, TASK_SIZE - 1, len) {
                Ok(start) if self.range_free(start, len) => return Ok(start),
                Ok(start) => from = start + PAGE_SIZE,
                Err(_) => break,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// `mmap()` of anonymous memory (`do_mmap()`, `mmap_region()`):
    /// returns the address. A shared mapping gets a new shmem object.
    /// Without `MAP_ANONYMOUS` this is a file mapping, which the caller
    /// resolves from `fd` and passes to [`Self::mmap_file`]: here it is
    /// `EBADF` for a negative `fd`, else `ENODEV` (not mappable).
    pub fn mmap(
        &self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        fd: i64,
        offset: u64,
    ) -> Result<u64> {
        self.do_mmap(addr, len, prot, flags, fd, offset, None)
    }

    /// `mmap()` of a shmem file (a memfd) with `fd` resolved to `file`
    /// (`do_mmap()` with `shmem_mmap()`). `writable`:
    /// the file is open for writing and not write-sealed; without it a
    /// shared mapping has no `VM_MAYWRITE` (mprotect cannot add write)
    /// and `PROT_WRITE` with `MAP_SHARED` is the caller's `EACCES` /
    /// `EPERM` to return first. (With `MAP_ANONYMOUS` Linux ignores the
    /// fd: the caller calls [`Self::mmap`] then.)
    pub fn mmap_file(
        &self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        (file, writable): (ShmemRef, bool),
        offset: u64,
    ) -> Result<u64> {
        self.do_mmap(addr, len, prot, flags, 0, offset, Some((file, writable)))
    }

    #[allow(clippy::too_many_arguments)]
    fn do_mmap(
        &self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        fd: i64,
        offset: u64,
        file: Option<(ShmemRef, bool)>,
    ) -> Result<u64> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len).ok_or(Errno::ENOMEM)?;
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        if offset & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if (offset >> PAGE_SHIFT)
            .checked_add(len >> PAGE_SHIFT)
            .is_none()
        {
            return Err(Errno::EOVERFLOW);
        }
        // The MAP_TYPE field (0x0f): shared, private, shared-validate or
        // droppable; any other value is EINVAL.
        let ty = MapFlags::from_bits_retain(flags.bits() & 0x0f);
        if ![
            MapFlags::SHARED,
            MapFlags::PRIVATE,
            MapFlags::SHARED_VALIDATE,
            MapFlags::DROPPABLE,
        ]
        .contains(&ty)
        {
            return Err(Errno::EINVAL);
        }
        if ty == MapFlags::SHARED_VALIDATE && !MapFlags::all().contains(flags) {
            return Err(Errno::EOPNOTSUPP);
        }
        if file.is_none() && !flags.contains(MapFlags::ANONYMOUS) {
            return Err(if fd < 0 { Errno::EBADF } else { Errno::ENODEV });
        }
        if flags.contains(MapFlags::HUGETLB) {
            // No hugetlbfs here.
            return Err(Errno::EINVAL);
        }
        if prot.intersects(Prot::GROWSDOWN | Prot::GROWSUP) {
            return Err(Errno::EINVAL);
        }
        let mut vm_flags =
            prot_to_vm(prot) | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
        if ty == MapFlags::DROPPABLE {
            // A locked, stack or hugetlb area makes no sense droppable.
            // Its pages can go at any time: nothing to reserve, nothing to
            // copy on fork or dump (do_mmap()).
            if flags.intersects(MapFlags::LOCKED | MapFlags::HUGETLB | MapFlags::GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
            vm_flags |=
                VmFlags::DROPPABLE | VmFlags::NORESERVE | VmFlags::WIPEONFORK | VmFlags::DONTDUMP;
        } else if ty == MapFlags::PRIVATE {
            if flags.contains(MapFlags::NORESERVE) {
                vm_flags |= VmFlags::NORESERVE;
            }
        } else {
            // MAP_SHARED: a shmem object cannot grow down.
            if flags.contains(MapFlags::GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
            vm_flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
            if let Some((_, false)) = file {
                // A file not open for writing, or write-sealed
                // (`memfd_check_seals_mmap()`): never writable.
                vm_flags -= VmFlags::MAYWRITE;
            }
        }
        if file.is_some() && flags.contains(MapFlags::GROWSDOWN) {
            // Only anonymous mappings grow down.
            return Err(Errno::EINVAL);
        }
        if flags.contains(MapFlags::GROWSDOWN) {
            vm_flags |= VmFlags::GROWSDOWN;
        }
        if flags.contains(MapFlags::LOCKED) {
            vm_flags |= VmFlags::LOCKED;
        }
        if vm_flags.accountable() {
            vm_flags |= VmFlags::ACCOUNT;
        }
        let fixed = flags.intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE);
        let gua_flags = if fixed { MapFlags::FIXED } else { flags };
        let (start, vm_flags) = {
            let mut l = self.mmap_lock.write(self.platform());
            // mlockall(MCL_FUTURE)'s lock flags.
            let vm_flags = vm_flags | l.def_flags;
            let start = self.get_unmapped_area(&l, addr, len, gua_flags)?;
            if fixed && start < self.vm.mmap_min_addr {
                return Err(Errno::EPERM);
            }
            // Only a fixed mapping may replace VMAs: get_unmapped_area
            // checked any other range free (range_free), under this
            // hold of the lock.
            let replaced = fixed && self.find_vma(start).is_some_and(|v| v.start < start + len);
            if replaced && flags.contains(MapFlags::FIXED_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if replaced && self.range_sealed(start, start + len) {
                return Err(Errno::EPERM);
            }
            if !replaced && l.map_count >= self.vm.max_map_count {
                return Err(Errno::ENOMEM);
            }
            // __mmap_region(): MDWE refuses writable+exec and new exec.
            if map_deny_write_exec(self.mm_flags(), vm_flags, vm_flags) {
                return Err(Errno::EACCES);
            }
            // A shared anonymous mapping maps a new shmem object of its
            // size from offset 0 (`shmem_zero_setup()`; do_mmap() ignores
            // the offset); a private one keeps its address as offset.
            // A file mapping maps its object from the offset, with a
            // reference of the mapping's own (`get_file()`).
            let shmem = if let Some((obj, _)) = file {
                obj.get();
                Some(obj)
            } else if vm_flags.contains(VmFlags::SHARED) {
                Some(ShmemRef::zero_setup(self.vm, len >> PAGE_SHIFT).ok_or(Errno::ENOMEM)?)
            } else {
                None
            };
            // New memory is soft-dirty as a whole (`__mmap_complete()`):
            // a tracker must not take it for the data it replaced.
            let new = Vma {
                start,
                end: start + len,
                flags: vm_flags | VmFlags::SOFTDIRTY,
                pgoff: if file.is_some() {
                    offset >> PAGE_SHIFT
                } else if shmem.is_some() {
                    0
                } else {
                    start >> PAGE_SHIFT
                },
                anon_vma: None,
                shmem,
            };
            // MAP_FIXED over mappings: the new VMA replaces them in one
            // store, and only then are their pages unmapped, so that a
            // failure leaves them as they were (Linux 6.12's
            // `__mmap_region()` with `vms_abort_munmap_vmas()`).
            // A range get_unmapped_area chose is free (checked under
            // this hold of the lock): no lookup of the VMAs it replaces.
            let covering = if fixed {
                Covering::Unknown
            } else {
                Covering::Free
            };
            let stored = self.map_new_range_in(&mut l, new, covering);
            // The creator's reference: the VMA took its own, or failed.
            if let Some(obj) = shmem {
                obj.put(self.vm);
            }
            let old = stored?;
            self.unmap_replaced(&old);
            if vm_flags.contains(VmFlags::ACCOUNT) {
                self.vm.vm_acct_memory(len >> PAGE_SHIFT);
            }
            (start, vm_flags)
        };
        let locked = vm_flags & super::VM_LOCKED_MASK == VmFlags::LOCKED;
        if flags.contains(MapFlags::POPULATE) || locked {
            self.populate(start, start + len);
        }
        Ok(start)
    }

    /// Faults in every page of `[start, end)` (`mm_populate()`); failures
    /// are ignored as Linux's MAP_POPULATE does.
    pub(super) fn populate(&self, start: u64, end: u64) {
        let mut a = start;
        while a < end {
            let access = match self.vma_lookup(a) {
                Some(v) if v.flags.contains(VmFlags::WRITE) => FaultAccess::Write,
                Some(_) => FaultAccess::Read,
                None => break,
            };
            if self.handle_fault(a, access).is_err() {
                break;
            }
            a += PAGE_SIZE;
        }
    }

    /// Unmaps the pages of `old`, parts of VMAs that a new VMA replaced
    /// (MAP_FIXED), and uncharges them. The page tables stay: the new
    /// VMA covers them.
    pub(super) fn unmap_replaced(&self, old: &[Vma]) {
        if old.is_empty() {
            return;
        }
        let mut tlb = MmuGather::new(&self.pt, false);
        for v in old {
            self.zap_range(&mut tlb, v.start, v.end, ZapDetails::default());
        }
        tlb.finish();
        let nr_accounted: u64 = old
            .iter()
            .filter(|v| v.flags.contains(VmFlags::ACCOUNT))
            .map(Vma::pages)
            .sum();
        self.vm.vm_unacct_memory(nr_accounted);
    }

    /// `munmap()` (`do_vmi_munmap()`).
    pub fn munmap(&self, addr: u64, len: u64) -> Result<()> {
        if addr & (PAGE_SIZE - 1) != 0 || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len).ok_or(Errno::EINVAL)?;
        if len > TASK_SIZE || addr > TASK_SIZE - len {
            return Err(Errno::EINVAL);
        }
        let mut l = self.mmap_lock.write(self.platform());
        self.do_munmap(&mut l, addr, len)
    }

    /// Unmaps `[start, start + len)` with the mmap lock held for write
    /// (`do_vmi_align_munmap()`): clear the range from the tree in one
    /// store (VMAs at the ends keep their outer parts; on failure nothing
    /// changed), zap it and free the page tables that only it used,
    /// within the gap between the neighbours.
    pub(super) fn do_munmap(&self, l: &mut MmLocked, start: u64, len: u64) -> Result<()> {
        let end = start + len;
        // The VMAs of the range, looked up once: nothing to do without.
        let old = self.vmas_in_small(start, end);
        if old.is_empty() {
            return Ok(());
        }
        // Sealed memory stays (mseal.rs): refused before anything changes.
        if old.iter().any(|(_, v)| v.flags.contains(VmFlags::SEALED)) {
            return Err(Errno::EPERM);
        }
        // Update the high watermark before total_vm goes down
        // (vms_complete_munmap_vmas()).
        self.update_hiwater_vm();
        let doomed = self.vma_store_over(l, start, end, None, &old)?;
        // The neighbours' ends from one walk: [start, end) now lies in
        // one NULL range of the tree (NULL ranges are never adjacent),
        // which runs from the previous VMA's end to the next one's start
        // (0 on either side without one).
        let (lo, hi, none) = self.vmas.walk_range(start);
        debug_assert!(none.is_none() && lo <= start && end - 1 <= hi);
        let floor = lo;
        let ceiling = hi.wrapping_add(1);
        let mut tlb = MmuGather::new(&self.pt, false);
        for v in doomed.iter() {
            self.zap_range(&mut tlb, v.start, v.end, ZapDetails::default());
        }
        if let (Some(lo), Some(hi)) = (doomed.first(), doomed.last()) {
            self.pt
                .free_pgd_range(&mut tlb, lo.start, hi.end, floor, ceiling);
        }
        tlb.finish();
        let nr_accounted: u64 = doomed
            .iter()
            .filter(|v| v.flags.contains(VmFlags::ACCOUNT))
            .map(Vma::pages)
            .sum();
        self.vm.vm_unacct_memory(nr_accounted);
        Ok(())
    }

    /// `brk()`: moves the program break; returns the new break, or the
    /// old one when the request is refused (Linux's convention).
    pub fn brk(&self, brk: u64) -> u64 {
        let mut l = self.mmap_lock.write(self.platform());
        let old = l.brk;
        if brk < l.start_brk || brk > TASK_SIZE {
            return old;
        }
        let (Some(newbrk), Some(oldbrk)) = (page_align(brk), page_align(old)) else {
            return old;
        };
        if newbrk == oldbrk {
            l.brk = brk;
            return brk;
        }
        if brk <= old {
            if self.do_munmap(&mut l, newbrk, oldbrk - newbrk).is_err() {
                return old;
            }
            l.brk = brk;
            return brk;
        }
        // Room up to the next VMA (and its guard gap)?
        if self
            .find_vma(oldbrk)
            .is_some_and(|n| newbrk > n.start_gap(STACK_GUARD_GAP))
        {
            return old;
        }
        // do_brk_flags(): the new heap is soft-dirty.
        let mut flags = VmFlags::DATA_DEFAULT | l.def_flags | VmFlags::SOFTDIRTY;
        if flags.accountable() {
            flags |= VmFlags::ACCOUNT;
        }
        let new = Vma {
            start: oldbrk,
            end: newbrk,
            flags,
            pgoff: oldbrk >> PAGE_SHIFT,
            anon_vma: None,
            shmem: None,
        };
        if l.map_count >= self.vm.max_map_count || self.map_new_range(&mut l, new).is_err() {
            // (Nothing is mapped in [oldbrk, newbrk): nothing replaced.)
            return old;
        }
        self.vm.vm_acct_memory(new.pages());
        l.brk = brk;
        // do_brk_flags() with mlockall(MCL_FUTURE): populated now.
        let populate = l.def_flags & super::VM_LOCKED_MASK == VmFlags::LOCKED;
        drop(l);
        if populate {
            self.populate(new.start, new.end);
        }
        brk
    }
}

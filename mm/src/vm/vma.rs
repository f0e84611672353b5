//! Virtual memory areas (`struct vm_area_struct`), the merge rules, and
//! the VMA-set changes that split and merge them (`mm/vma.c`):
//! [`Mm::vma_store_range`] (splits at the ends of a range),
//! [`Mm::map_new_range`] (`vma_merge_new_range()`),
//! [`Mm::modify_flags`] (`vma_modify_flags()`) and [`Mm::merge_around`]
//! (`vma_merge_existing_range()`).
//!
//! # Context
//!
//! The VMA-set changes take `&mut MmLocked`: the caller holds the mmap
//! lock for write. They store through `mm.rs`'s tree primitives
//! (`insert_vma`, `retire_vma`), which keep its invariants M1 and M2.
//!
//! # Invariants
//!
//! - V1: the VMA entries a caller hands to a change instead of looking
//!   them up again ([`Mm::vma_store_over`]'s `old`, the entry given to
//!   [`Mm::modify_vma_flags`]) were read under the same hold of the
//!   mmap lock for write, with no change of the VMA set in between: they
//!   are exactly what a lookup would find. `old` is every entry that
//!   intersects the range, in address order.
#![forbid(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;

use super::Mm;
use super::mm::MmLocked;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::shmem::ShmemRef;
use crate::stack_vec::StackVec;

bitflags::bitflags! {
    /// `vm_flags` (values as in `include/linux/mm.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VmFlags: u64 {
        const READ = 0x1;
        const WRITE = 0x2;
        const EXEC = 0x4;
        const SHARED = 0x8;
        const MAYREAD = 0x10;
        const MAYWRITE = 0x20;
        const MAYEXEC = 0x40;
        const MAYSHARE = 0x80;
        const GROWSDOWN = 0x100;
        const PFNMAP = 0x400;
        const LOCKED = 0x2000;
        const IO = 0x4000;
        const SEQ_READ = 0x8000;
        const RAND_READ = 0x10000;
        const DONTCOPY = 0x20000;
        const DONTEXPAND = 0x40000;
        const LOCKONFAULT = 0x80000;
        const ACCOUNT = 0x100000;
        const NORESERVE = 0x200000;
        /// `MADV_WIPEONFORK` (and every droppable mapping): a fork child
        /// gets the VMA empty, reading zeros.
        const WIPEONFORK = 0x0200_0000;
        /// `MADV_DONTDUMP`: left out of core dumps.
        const DONTDUMP = 0x0400_0000;
        const SOFTDIRTY = 0x8000000;
        const MIXEDMAP = 0x1000_0000;
        /// `MAP_DROPPABLE` (6.11, bit 40 on 64-bit): memory the kernel may
        /// drop under pressure instead of swapping it; a fault that cannot
        /// allocate is retried rather than fatal.
        const DROPPABLE = 1 << 40;
        /// `mseal()`ed (`VM_SEALED`, a high bit on 64-bit).
        const SEALED = 1 << 63;
    }
}

impl VmFlags {
    /// Never merged, never expanded by mremap (`VM_SPECIAL`).
    pub const SPECIAL: VmFlags = VmFlags::IO
        .union(VmFlags::DONTEXPAND)
        .union(VmFlags::PFNMAP)
        .union(VmFlags::MIXEDMAP);
    /// Flags that do not stop a merge and that the merged VMA keeps when
    /// either part had them (6.19's `VM_STICKY`, `VM_IGNORE_MERGE`).
    pub const STICKY: VmFlags = VmFlags::SOFTDIRTY;
    /// The stack flag of x86 (`VM_STACK` = `VM_GROWSDOWN`).
    pub const STACK: VmFlags = VmFlags::GROWSDOWN;
    pub const ACCESS: VmFlags = VmFlags::READ.union(VmFlags::WRITE).union(VmFlags::EXEC);
    /// Default flags of the data segment and brk (`VM_DATA_DEFAULT_FLAGS`).
    pub const DATA_DEFAULT: VmFlags = VmFlags::READ
        .union(VmFlags::WRITE)
        .union(VmFlags::MAYREAD)
        .union(VmFlags::MAYWRITE)
        .union(VmFlags::MAYEXEC);

    /// `vma_soft_dirty_enabled()`: writes are being tracked (clear_refs 4
    /// cleared VM_SOFTDIRTY), so a write must fault to mark its PTE.
    pub fn soft_dirty_enabled(self) -> bool {
        !self.contains(VmFlags::SOFTDIRTY)
    }

    /// `is_data_mapping()`: private, writable, not stack.
    pub fn is_data(self) -> bool {
        self & (VmFlags::WRITE | VmFlags::SHARED | VmFlags::STACK) == VmFlags::WRITE
    }

    /// `is_stack_mapping()`.
    pub fn is_stack(self) -> bool {
        self.contains(VmFlags::STACK)
    }

    /// `is_exec_mapping()`.
    pub fn is_exec(self) -> bool {
        self & (VmFlags::WRITE | VmFlags::EXEC | VmFlags::STACK) == VmFlags::EXEC
    }

    /// `accountable_mapping()`: private writable memory is committed.
    pub fn accountable(self) -> bool {
        self & (VmFlags::NORESERVE | VmFlags::SHARED | VmFlags::WRITE) == VmFlags::WRITE
    }

    /// Bits of a PTE mapping this VMA's memory (`vm_get_page_prot()`),
    /// without write permission: private pages become writable on a
    /// write fault, shared ones on their first write too.
    pub fn pte_flags(self) -> PteFlags {
        let mut f = PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED;
        if !self.contains(VmFlags::EXEC) {
            f |= PteFlags::NX;
        }
        f
    }
}

/// An anonymous VMA's reverse-map anchor: assigned at its first
/// anonymous page by `anon_vma_prepare()` (`vm/rmap.rs`; a VMA's
/// `anon_vma` is `None` before), inherited by fork through
/// `anon_vma_fork()`. It takes part in the merge rules
/// (`is_mergeable_anon_vma()`).
pub type AnonVmaId = u64;

/// A VMA: `[start, end)` with flags. Immutable once in an address space's
/// tree: a change stores a replacement VMA and frees the old one after a
/// grace period, so lockless readers always see a consistent VMA.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub flags: VmFlags,
    /// Page offset: for anonymous VMAs the virtual page number at
    /// creation (`vm_pgoff`); it moves with the start on a split.
    pub pgoff: u64,
    pub anon_vma: Option<AnonVmaId>,
    /// The shared memory object mapped (`vm_file`: of a shared anonymous
    /// mapping, `shmem_zero_setup()`, or a memfd mapped shared or
    /// private); `pgoff` is then the page offset in it. A VMA in a tree owns one reference to it (`shmem.rs`'s S1):
    /// `mm.rs` takes it when the VMA is stored and drops it when the VMA
    /// is retired.
    pub shmem: Option<ShmemRef>,
}

impl Vma {
    /// An empty VMA at 0 with no flags: a placeholder, never in a tree.
    pub const EMPTY: Vma = Vma {
        start: 0,
        end: 0,
        flags: VmFlags::empty(),
        pgoff: 0,
        anon_vma: None,
        shmem: None,
    };

    /// Pages spanned.
    pub fn pages(&self) -> u64 {
        (self.end - self.start) >> PAGE_SHIFT
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the VMA counts in its object's writable shared mappings
    /// (`mapping_map_writable()`: `VM_SHARED` and `VM_MAYWRITE`, what
    /// `F_SEAL_WRITE` waits to see gone).
    pub fn maps_writable(&self) -> bool {
        self.shmem.is_some() && self.flags.contains(VmFlags::SHARED | VmFlags::MAYWRITE)
    }

    /// Page offset of `addr` in this VMA's object.
    pub fn pgoff_at(&self, addr: u64) -> u64 {
        self.pgoff + ((addr - self.start) >> PAGE_SHIFT)
    }

    /// The piece `[start, end)` of this VMA (a split keeps the offset
    /// consistent).
    pub fn slice(&self, start: u64, end: u64) -> Vma {
        debug_assert!(self.start <= start && start < end && end <= self.end);
        Vma {
            start,
            end,
            pgoff: self.pgoff_at(start),
            ..*self
        }
    }

    /// Lowest address the VMA keeps free below it: a stack's guard gap
    /// (`vm_start_gap()`).
    pub fn start_gap(&self, guard: u64) -> u64 {
        if self.flags.contains(VmFlags::GROWSDOWN) {
            self.start.saturating_sub(guard)
        } else {
            self.start
        }
    }
}

/// What covers the range of a new VMA now, as its caller knows it
/// ([`Mm::map_new_range_in`]; V1).
#[derive(Clone, Copy)]
pub(super) enum Covering {
    /// Look it up.
    Unknown,
    /// No VMA: the range is free.
    Free,
    /// This one VMA entry contains the whole range.
    Within((NonNull<Vma>, Vma)),
}

/// Whether `a` (below) and `b` (directly above) can be one VMA
/// (`is_mergeable_vma()`: the same object, if any; `is_mergeable_anon_vma()`;
/// contiguous offsets).
pub fn can_merge(a: &Vma, b: &Vma) -> bool {
    let ignore = VmFlags::STICKY;
    a.end == b.start
        && !a.flags.intersects(VmFlags::SPECIAL)
        && (a.flags - ignore) == (b.flags - ignore)
        && a.shmem == b.shmem
        && match (a.anon_vma, b.anon_vma) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
        && a.pgoff + a.pages() == b.pgoff
}

impl fmt::Debug for Vma {
    /// `/proc/PID/maps` style: `start-end rwxp pgoff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = self.flags;
        write!(
            f,
            "{:x}-{:x} {}{}{}{} {:08x}",
            self.start,
            self.end,
            if fl.contains(VmFlags::READ) { 'r' } else { '-' },
            if fl.contains(VmFlags::WRITE) {
                'w'
            } else {
                '-'
            },
            if fl.contains(VmFlags::EXEC) { 'x' } else { '-' },
            if fl.contains(VmFlags::MAYSHARE) {
                's'
            } else {
                'p'
            },
            self.pgoff * PAGE_SIZE
        )
    }
}

// ----- Splitting and merging: the caller holds the mmap lock for write -----

impl<P: Platform> Mm<'_, '_, P> {
    /// Stores `new` over `[start, end)`, or a hole for `None`, replacing
    /// what is there (`vma_iter_store()` with the splits of
    /// `vms_gather_munmap_vmas()` and `vma_modify()` folded in). The one
    /// store over the range is the only step that may need memory, so an
    /// error leaves everything as it was. The VMAs that straddle `start`
    /// or `end` then keep their outer parts: copies trimmed to them are
    /// stored over exactly the ranges left to the old entries, exact fits
    /// that need no nodes. Every VMA that overlapped the range is retired.
    /// Returns the parts of those VMAs inside the range, in order.
    /// `ENOMEM` also when the VMA count would pass `max_map_count`.
    pub(super) fn vma_store_range(
        &self,
        l: &mut MmLocked,
        start: u64,
        end: u64,
        new: Option<Vma>,
    ) -> Result<StackVec<Vma, 4>> {
        let old = self.vmas_in_small(start, end);
        self.vma_store_over(l, start, end, new, &old)
    }

    /// [`Mm::vma_store_range`] for a caller that already looked up
    /// `old`, the VMA entries intersecting `[start, end)` (under the same
    /// hold of the mmap lock, for write).
    pub(super) fn vma_store_over(
        &self,
        l: &mut MmLocked,
        start: u64,
        end: u64,
        new: Option<Vma>,
        old: &[(NonNull<Vma>, Vma)],
    ) -> Result<StackVec<Vma, 4>> {
        debug_assert!(new.is_none_or(|v| v.start == start && v.end == end));
        let below = old.first().map(|(_, v)| *v).filter(|v| v.start < start);
        let above = old.last().map(|(_, v)| *v).filter(|v| v.end > end);
        let count = l.map_count - old.len()
            + usize::from(new.is_some())
            + usize::from(below.is_some())
            + usize::from(above.is_some());
        if count > l.map_count && count > self.vm.max_map_count {
            return Err(Errno::ENOMEM);
        }
        self.store_vma(l, start, end, new, Gfp::KERNEL)?;
        if let Some(v) = below {
            self.insert_vma_exact(l, v.slice(v.start, start));
        }
        if let Some(v) = above {
            self.insert_vma_exact(l, v.slice(end, v.end));
        }
        let mut inside = StackVec::new(Vma::EMPTY);
        for &(p, v) in old.iter() {
            inside.push(v.slice(v.start.max(start), v.end.min(end)));
            self.retire_vma(l, p);
        }
        Ok(inside)
    }

    /// Stores a VMA over its range, merging with compatible neighbours
    /// (`vma_merge_new_range()`, else a new VMA). VMAs already in the
    /// range are replaced (their parts outside it stay, and merge like
    /// any neighbour); their parts inside it are returned, for the caller
    /// to unmap or to ignore (a change of flags). One tree store: an
    /// error leaves everything as it was ([`Mm::vma_store_range`]).
    pub(super) fn map_new_range(&self, l: &mut MmLocked, new: Vma) -> Result<StackVec<Vma, 4>> {
        self.map_new_range_in(l, new, Covering::Unknown)
    }

    /// [`Mm::map_new_range`] for a caller that knows what covers `new`'s
    /// range now (V1), so that the VMAs the store replaces are known
    /// without walking the tree again: the neighbours it merges with,
    /// and the VMA of [`Covering::Within`].
    pub(super) fn map_new_range_in(
        &self,
        l: &mut MmLocked,
        new: Vma,
        covering: Covering,
    ) -> Result<StackVec<Vma, 4>> {
        // The neighbours as they will be: the parts of the VMAs around
        // the range that lie outside it (with their entries).
        let prev = (new.start > 0)
            .then(|| self.vmas.load(new.start - 1))
            .flatten()
            .map(|p| (p, self.read(p)))
            .filter(|(_, v)| can_merge(&v.slice(v.start, new.start), &new));
        let next = self
            .vmas
            .load(new.end)
            .map(|p| (p, self.read(p)))
            .filter(|(_, v)| can_merge(&new, &v.slice(new.end, v.end)));
        let mut merged = new;
        if let Some((_, p)) = prev {
            merged.start = p.start;
            merged.pgoff = p.pgoff;
            merged.anon_vma = p.anon_vma.or(new.anon_vma);
            merged.flags |= p.flags & VmFlags::STICKY;
        }
        // Both sides: prev and next must agree with each other too.
        let next = next.filter(|(_, v)| {
            let n = v.slice(new.end, v.end);
            can_merge(
                &Vma {
                    end: n.start,
                    ..merged
                },
                &n,
            )
        });
        if let Some((_, n)) = next {
            merged.end = n.end;
            merged.anon_vma = merged.anon_vma.or(n.anon_vma);
            merged.flags |= n.flags & VmFlags::STICKY;
        }
        let w = match covering {
            Covering::Unknown => {
                let old = self.vma_store_range(l, merged.start, merged.end, Some(merged))?;
                return Ok(Self::parts_inside(&old, &new));
            }
            Covering::Free => None,
            Covering::Within(w) => Some(w),
        };
        // The VMAs over `merged`, in order: the merged neighbours and `w`
        // (a neighbour that is `w` itself counted once).
        let mut over = StackVec::<_, 3>::new((NonNull::dangling(), Vma::EMPTY));
        let not_w = |e: &(NonNull<Vma>, Vma)| w.is_none_or(|w| e.0 != w.0);
        if let Some(pe) = prev.filter(not_w) {
            over.push(pe);
        }
        if let Some(w) = w {
            over.push(w);
        }
        if let Some(ne) = next.filter(not_w) {
            over.push(ne);
        }
        let old = self.vma_store_over(l, merged.start, merged.end, Some(merged), &over)?;
        Ok(Self::parts_inside(&old, &new))
    }

    /// The parts of `old` inside `new`'s range.
    fn parts_inside(old: &[Vma], new: &Vma) -> StackVec<Vma, 4> {
        let mut inside = StackVec::new(Vma::EMPTY);
        for v in old
            .iter()
            .filter(|v| v.end > new.start && v.start < new.end)
        {
            inside.push(v.slice(v.start.max(new.start), v.end.min(new.end)));
        }
        inside
    }

    /// Gives `[s, e)`, which lies inside one VMA, the flags `nf`
    /// (`vma_modify_flags()`): a copy with the new flags, merged with
    /// compatible neighbours, replaces that part in one tree store; the
    /// parts of the VMA outside stay. On error nothing changed.
    pub(super) fn modify_flags(&self, l: &mut MmLocked, s: u64, e: u64, nf: VmFlags) -> Result<()> {
        let p = self.vmas.load(s).expect("a VMA at the start");
        self.modify_vma_flags(l, (p, self.read(p)), s, e, nf)
    }

    /// [`Mm::modify_flags`] for a caller that holds `(p, v)`, the entry
    /// of the VMA that contains `[s, e)`, as read under the same hold of
    /// the mmap lock: no second lookup of it, nor of the VMAs the store
    /// replaces.
    pub(super) fn modify_vma_flags(
        &self,
        l: &mut MmLocked,
        (p, v): (NonNull<Vma>, Vma),
        s: u64,
        e: u64,
        nf: VmFlags,
    ) -> Result<()> {
        debug_assert!(v.start <= s && e <= v.end);
        if v.flags == nf {
            return Ok(());
        }
        let new = Vma {
            flags: nf,
            ..v.slice(s, e)
        };
        let ignore = VmFlags::SOFTDIRTY;
        if v.start < s && e < v.end && (v.flags - ignore) != (nf - ignore) {
            // Strictly inside `v`, whose parts around it cannot merge with
            // it (their flags differ): a split in three with no
            // neighbour to look up, `v` the one VMA replaced.
            self.vma_store_over(l, s, e, Some(new), &[(p, v)])?;
            return Ok(());
        }
        self.map_new_range_in(l, new, Covering::Within((p, v)))?;
        Ok(())
    }

    /// Merges the VMA at `addr` with compatible neighbours
    /// (`vma_merge_existing_range()`).
    pub(super) fn merge_around(&self, l: &mut MmLocked, addr: u64) -> Result<()> {
        let p = self.vmas.load(addr).expect("a VMA");
        let v = self.read(p);
        let prev = self
            .prev_vma_entry(v.start)
            .filter(|(_, pv)| can_merge(pv, &v));
        let next = self
            .find_vma_entry(v.end)
            .filter(|(_, nv)| can_merge(&v, nv));
        if prev.is_none() && next.is_none() {
            return Ok(());
        }
        let mut merged = v;
        if let Some((_, pv)) = prev {
            merged.start = pv.start;
            merged.pgoff = pv.pgoff;
            merged.anon_vma = pv.anon_vma.or(v.anon_vma);
            merged.flags |= pv.flags & VmFlags::STICKY;
        }
        let next = next.filter(|(_, nv)| {
            can_merge(
                &Vma {
                    end: nv.start,
                    ..merged
                },
                nv,
            )
        });
        if let Some((_, nv)) = next {
            merged.end = nv.end;
            merged.anon_vma = merged.anon_vma.or(nv.anon_vma);
            merged.flags |= nv.flags & VmFlags::STICKY;
        }
        self.insert_vma(l, merged)?;
        self.retire_vma(l, p);
        for (q, _) in prev.into_iter().chain(next) {
            self.retire_vma(l, q);
        }
        Ok(())
    }
}

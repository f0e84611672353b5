//! Virtual memory areas (`struct vm_area_struct`) and the merge rules.
#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::pgtable::PteFlags;

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
        const ACCOUNT = 0x100000;
        const NORESERVE = 0x200000;
        const SOFTDIRTY = 0x8000000;
        const MIXEDMAP = 0x1000_0000;
    }
}

impl VmFlags {
    /// Never merged, never expanded by mremap (`VM_SPECIAL`).
    pub const SPECIAL: VmFlags = VmFlags::IO
        .union(VmFlags::DONTEXPAND)
        .union(VmFlags::PFNMAP)
        .union(VmFlags::MIXEDMAP);
    /// The stack flag of x86 (`VM_STACK` = `VM_GROWSDOWN`).
    pub const STACK: VmFlags = VmFlags::GROWSDOWN;
    pub const ACCESS: VmFlags = VmFlags::READ.union(VmFlags::WRITE).union(VmFlags::EXEC);
    /// Default flags of the data segment and brk (`VM_DATA_DEFAULT_FLAGS`).
    pub const DATA_DEFAULT: VmFlags = VmFlags::READ
        .union(VmFlags::WRITE)
        .union(VmFlags::MAYREAD)
        .union(VmFlags::MAYWRITE)
        .union(VmFlags::MAYEXEC);

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
}

impl Vma {
    /// Pages spanned.
    pub fn pages(&self) -> u64 {
        (self.end - self.start) >> PAGE_SHIFT
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
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

/// Whether `a` (below) and `b` (directly above) can be one VMA
/// (`is_mergeable_vma()`, `is_mergeable_anon_vma()`, contiguous offsets).
pub fn can_merge(a: &Vma, b: &Vma) -> bool {
    let ignore = VmFlags::SOFTDIRTY;
    a.end == b.start
        && !a.flags.intersects(VmFlags::SPECIAL)
        && (a.flags - ignore) == (b.flags - ignore)
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

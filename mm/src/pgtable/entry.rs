//! x86_64 page-table entries and address arithmetic (4-level paging; the
//! P4D level is folded into the PGD as Linux does without LA57).
#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn};

/// Entries per table at every level (`PTRS_PER_PTE` and friends).
pub const PTRS_PER_TABLE: usize = 512;
pub const PMD_SHIFT: u32 = 21;
pub const PUD_SHIFT: u32 = 30;
pub const PGDIR_SHIFT: u32 = 39;
/// Bytes mapped by one PTE table (one PMD entry).
pub const PMD_SIZE: u64 = 1 << PMD_SHIFT;
/// Bytes mapped by one PMD table (one PUD entry).
pub const PUD_SIZE: u64 = 1 << PUD_SHIFT;
/// Bytes mapped by one PUD table (one PGD entry).
pub const PGDIR_SIZE: u64 = 1 << PGDIR_SHIFT;
/// Top of the user address space (`TASK_SIZE_MAX`: 2^47 − one page).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// PGD slots of the user half (the kernel half starts at slot 256).
pub const USER_PGD_ENTRIES: usize = PTRS_PER_TABLE / 2;

bitflags::bitflags! {
    /// Entry bits (`_PAGE_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PteFlags: u64 {
        const PRESENT = 1 << 0;
        const WRITE = 1 << 1;
        const USER = 1 << 2;
        const PWT = 1 << 3;
        const PCD = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        /// A leaf above the PTE level (`_PAGE_PSE`).
        const HUGE = 1 << 7;
        const GLOBAL = 1 << 8;
        /// Software, with PRESENT clear: a user page mapped but made
        /// inaccessible by PROT_NONE (`_PAGE_PROTNONE`, the global bit's
        /// alias: user PTEs never set GLOBAL).
        const PROTNONE = 1 << 8;
        /// Software: no `struct page` behind it, or one not to be
        /// refcounted, such as the zero page (`_PAGE_SPECIAL`).
        const SPECIAL = 1 << 9;
        /// Software: written since the last `clear_refs` 4
        /// (`_PAGE_SOFT_DIRTY`, `_PAGE_BIT_SOFTW3`): set with DIRTY by
        /// every kernel write-fault ([`PTE_DIRTY_BITS`], `pte_mkdirty()`),
        /// never by the CPU's own dirty-bit update.
        const SOFT_DIRTY = 1 << 58;
        const NX = 1 << 63;
    }
}

/// What `pte_mkdirty()` sets on x86 (`_PAGE_DIRTY_BITS`): the hardware
/// dirty bit and the soft-dirty bit.
pub const PTE_DIRTY_BITS: PteFlags = PteFlags::DIRTY.union(PteFlags::SOFT_DIRTY);

/// The bits of an entry that hold the frame address.
const PFN_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Bits an entry pointing at a lower table carries (`_PAGE_TABLE`): the
/// leaf decides the real permissions.
pub const TABLE_FLAGS: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITE)
    .union(PteFlags::USER)
    .union(PteFlags::ACCESSED);

/// One entry of any level (`pte_t`, `pmd_t`, `pud_t`, `pgd_t` share the
/// format).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry(pub u64);

impl Entry {
    /// The empty entry (`pte_none`).
    pub const NONE: Entry = Entry(0);

    pub fn new(pfn: Pfn, flags: PteFlags) -> Entry {
        Entry((pfn.as_u64() << PAGE_SHIFT) & PFN_MASK | flags.bits())
    }

    pub fn pfn(self) -> Pfn {
        Pfn::new((self.0 & PFN_MASK) >> PAGE_SHIFT)
    }

    pub fn flags(self) -> PteFlags {
        PteFlags::from_bits_retain(self.0 & !PFN_MASK)
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Maps a frame: present, or PROT_NONE (`pte_present()`).
    pub fn is_present(self) -> bool {
        self.flags()
            .intersects(PteFlags::PRESENT | PteFlags::PROTNONE)
    }

    pub fn is_huge(self) -> bool {
        self.flags().contains(PteFlags::HUGE)
    }

    pub fn is_writable(self) -> bool {
        self.flags().contains(PteFlags::WRITE)
    }

    /// This entry with `flags` replaced (`pte_modify`), same frame.
    pub fn with_flags(self, flags: PteFlags) -> Entry {
        Entry::new(self.pfn(), flags)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return write!(f, "Entry(none)");
        }
        write!(f, "Entry({:?} {:?})", self.pfn(), self.flags())
    }
}

/// Table levels, leaf first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Pte = 1,
    Pmd = 2,
    Pud = 3,
    Pgd = 4,
}

impl Level {
    /// Shift of the address bits that index a table of this level.
    pub const fn shift(self) -> u32 {
        PAGE_SHIFT + 9 * (self as u32 - 1)
    }

    /// Bytes one entry of a table of this level maps.
    pub const fn entry_size(self) -> u64 {
        1 << self.shift()
    }

    /// Index of `addr` in a table of this level (`pte_index()` and so on).
    pub const fn index(self, addr: u64) -> usize {
        ((addr >> self.shift()) & (PTRS_PER_TABLE as u64 - 1)) as usize
    }

    /// The level below (`None` for PTE).
    pub const fn below(self) -> Option<Level> {
        match self {
            Level::Pgd => Some(Level::Pud),
            Level::Pud => Some(Level::Pmd),
            Level::Pmd => Some(Level::Pte),
            Level::Pte => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Pte => "pte",
            Level::Pmd => "pmd",
            Level::Pud => "pud",
            Level::Pgd => "pgd",
        }
    }
}

/// The end of the region of `size` (a power of two) containing `addr`,
/// capped at `end` (`pmd_addr_end()` and friends).
pub fn addr_end(addr: u64, end: u64, size: u64) -> u64 {
    let boundary = (addr & !(size - 1)).wrapping_add(size);
    if boundary.wrapping_sub(1) < end.wrapping_sub(1) {
        boundary
    } else {
        end
    }
}

//! Object memory and debugging: the only raw accesses to slab memory
//! (free pointers, poison, red zones) and the checks that report a bad,
//! double or corrupting free (`mm/slub.c`'s `get_freepointer()`,
//! `set_freepointer()`, `check_object()`, `free_consistency_checks()`).

use core::panic::Location;

use super::freelist::{Slab, decode, encode};
use super::{KmemCache, SlabFlags, SlabStat};
use crate::addr::Pfn;
use crate::platform::Platform;

/// Debug red-zone values (`SLUB_RED_ACTIVE` / `SLUB_RED_INACTIVE`).
pub(super) const RED_ACTIVE: u64 = 0xcccc_cccc_cccc_cccc;
pub(super) const RED_INACTIVE: u64 = 0xbbbb_bbbb_bbbb_bbbb;
/// Poison bytes of a free object (`POISON_FREE`, `POISON_END`).
pub(super) const POISON_FREE: u8 = 0x6b;
pub(super) const POISON_END: u8 = 0xa5;

impl<'a, P: Platform> KmemCache<'a, P> {
    /// Address of the first object of `slab`.
    pub(super) fn slab_base(&self, slab: Pfn) -> u64 {
        self.pa.platform().phys_to_virt(slab.phys_addr()) as u64
    }

    /// Reads the word at `addr`.
    pub(super) fn read_word(addr: u64) -> u64 {
        // SAFETY: callers pass an aligned word inside a slot of one of this
        // cache's slabs (S3 or the free path's checks); slab memory is
        // mapped through the direct map and owned by the cache while the
        // object is free, or by the caller freeing it.
        unsafe { (addr as *const u64).read_volatile() }
    }

    /// Writes the word at `addr`.
    pub(super) fn write_word(addr: u64, v: u64) {
        // SAFETY: as in read_word.
        unsafe { (addr as *mut u64).write_volatile(v) }
    }

    pub(super) fn get_freepointer(&self, obj: u64) -> u64 {
        let slot = obj + self.layout.offset as u64;
        decode(Self::read_word(slot), slot, self.random)
    }

    pub(super) fn set_freepointer(&self, obj: u64, next: u64) {
        let slot = obj + self.layout.offset as u64;
        Self::write_word(slot, encode(next, slot, self.random));
    }

    /// Whether `addr` is the start of an object slot of `slab` (S3).
    #[inline]
    pub(super) fn is_object_of(&self, slab: Pfn, addr: u64) -> bool {
        let base = self.slab_base(slab);
        let objects = self.slab(slab).objects();
        addr >= base
            && addr < base + u64::from(objects) * self.layout.size as u64
            && self.layout.is_slot_offset(addr - base)
    }

    /// Pops the first object of a freelist starting at `head` (in `slab`),
    /// returning it and the new head; reports and cuts a corrupted list.
    pub(super) fn pop_freelist(&self, slab: Pfn, head: u64) -> (u64, u64) {
        let next = self.get_freepointer(head);
        if next != 0 && !self.is_object_of(slab, next) {
            self.stat(SlabStat::FreelistCorrupt);
            log::error!(
                "BUG {}: freelist corrupted: object {head:#x} of slab pfn {slab} points to {next:#x}; \
                 the rest of the list is leaked",
                self.name
            );
            return (head, 0);
        }
        (head, next)
    }

    pub(super) fn fill(&self, obj: u64, len: usize, byte: u8) {
        // SAFETY: [obj, obj + len) lies inside one slot the caller owns.
        unsafe { core::ptr::write_bytes(obj as *mut u8, byte, len) };
    }

    /// Whether the cache has debug flags (`kmem_cache_debug`): the debug
    /// hooks below test this inline and do their work out of line, so
    /// that the fast paths of other caches pay one test per hook.
    #[inline]
    pub(super) fn is_debug(&self) -> bool {
        self.flags
            .intersects(SlabFlags::RED_ZONE | SlabFlags::POISON)
    }

    /// Debug preparation of an object entering the free state.
    #[inline]
    pub(super) fn debug_mark_free(&self, obj: u64) {
        if self.is_debug() {
            self.mark_free_debug(obj);
        }
    }

    #[cold]
    pub(super) fn mark_free_debug(&self, obj: u64) {
        if self.flags.contains(SlabFlags::POISON) {
            let n = self.layout.object_size;
            self.fill(obj, n - 1, POISON_FREE);
            self.fill(obj + n as u64 - 1, 1, POISON_END);
        }
        if let Some(rz) = self.layout.red_zone {
            Self::write_word(obj + rz as u64, RED_INACTIVE);
        }
    }

    /// Debug checks of an object leaving the free state (allocation).
    #[inline]
    pub(super) fn debug_check_alloc(&self, obj: u64) {
        if self.is_debug() {
            self.check_alloc_debug(obj);
        }
    }

    #[cold]
    pub(super) fn check_alloc_debug(&self, obj: u64) {
        if self.flags.contains(SlabFlags::POISON) {
            let n = self.layout.object_size;
            // SAFETY: the object is free and ours to read, n bytes long.
            let bytes = unsafe { core::slice::from_raw_parts(obj as *const u8, n) };
            let bad = bytes[..n - 1]
                .iter()
                .position(|&b| b != POISON_FREE)
                .or((bytes[n - 1] != POISON_END).then_some(n - 1));
            if let Some(at) = bad {
                self.stat(SlabStat::PoisonCorrupt);
                log::error!(
                    "BUG {}: Poison overwritten: object {obj:#x} byte {at} is {:#04x}: written after it was freed",
                    self.name,
                    bytes[at]
                );
            }
        }
        if let Some(rz) = self.layout.red_zone {
            Self::write_word(obj + rz as u64, RED_ACTIVE);
        }
    }

    /// The slab of `addr`, if it is an object slot of this cache.
    #[inline]
    pub(super) fn lookup(&self, addr: u64, caller: &'static Location<'static>) -> Option<Pfn> {
        let platform = self.pa.platform();
        let slab = platform
            .virt_to_phys(addr as *const u8)
            .and_then(|pa| Slab::containing(self.pa.memmap(), pa.pfn()));
        match slab {
            Some(s) if s.cache() == self.id() && self.is_object_of(s.pfn, addr) => Some(s.pfn),
            _ => {
                self.report_bad_free(addr, caller);
                None
            }
        }
    }

    #[cold]
    pub(super) fn report_bad_free(&self, addr: u64, caller: &'static Location<'static>) {
        self.stat(SlabStat::BadFree);
        log::error!(
            "BUG {}: kmem_cache_free of {addr:#x}, which is not an object of this cache, from {caller}; ignored",
            self.name
        );
    }

    /// Red-zone checks at free; false if the free must be refused.
    #[inline]
    pub(super) fn debug_check_free(&self, addr: u64, caller: &'static Location<'static>) -> bool {
        !self.is_debug() || self.check_free_debug(addr, caller)
    }

    #[cold]
    pub(super) fn check_free_debug(&self, addr: u64, caller: &'static Location<'static>) -> bool {
        let Some(rz) = self.layout.red_zone else {
            return true;
        };
        match Self::read_word(addr + rz as u64) {
            RED_ACTIVE => true,
            RED_INACTIVE => {
                self.report_double_free(addr, caller);
                false
            }
            other => {
                self.stat(SlabStat::RedzoneCorrupt);
                log::error!(
                    "BUG {}: Redzone overwritten: object {addr:#x} (size {}) red zone is {other:#x}: \
                     written past its end; freed from {caller}",
                    self.name,
                    self.layout.object_size
                );
                Self::write_word(addr + rz as u64, RED_ACTIVE);
                true
            }
        }
    }

    #[cold]
    pub(super) fn report_double_free(&self, addr: u64, caller: &'static Location<'static>) {
        self.stat(SlabStat::DoubleFree);
        log::error!(
            "BUG {}: double free of object {addr:#x} from {caller}; ignored",
            self.name
        );
    }
}

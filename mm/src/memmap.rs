//! The memmap: one [`Page`] record per 4 KiB frame (Linux's `struct page`).
//!
//! The memmap is a flat array indexed by pfn (FLATMEM), covering frames
//! `0..nr_pages`. Holes, firmware areas, the kernel image and the memmap
//! itself are described too, marked [`PageFlags::RESERVED`], and are never
//! handed to the buddy allocator.
//!
//! ```text
//!   Page (64 bytes)
//!   +--------+-------+-------+------+-------+----------+----------+
//!   | flags  | state | order | zone | mtype | refcount | mapcount |  16 B
//!   +--------+-------+-------+------+-------+----------+----------+
//!   | lru.next (pfn) | lru.prev (pfn) | private                   |  16 B
//!   +----------------+----------------+---------------------------+
//!   | ext[0..4]: overlaid by the frame's owner. Slab head: ext[0] |  32 B
//!   | freelist, ext[1] inuse/objects/frozen (`slab::freelist`).   |
//!   | Page table (ptdesc): ext[0] table lock, ext[1] owner MM id, |
//!   | ext[2] level (`pgtable::Ptdesc`). Later: folio fields.      |
//!   +-------------------------------------------------------------+
//! ```
//!
//! # Invariants
//!
//! - I1: `state` is [`PageState::Buddy`] exactly on the first frame of a
//!   block on a zone free list, [`PageState::Pcp`] exactly on the first
//!   frame of a block on a per-CPU list, [`PageState::Allocated`] exactly on
//!   the first frame of a block handed out by `alloc_pages`; every other
//!   frame (tails of those blocks, reserved frames) is [`PageState::None`].
//! - I2: `order` is meaningful when `state` is not `None`: the block's order.
//! - I3: a frame is on at most one [`PageList`]; its `lru` links are written
//!   only by the holder of the lock that protects that list.
//!
//! # Locking
//!
//! Every field is an atomic, so reading any record is always sound; the
//! locks of the page allocator (zone lock, per-CPU list lock) decide who may
//! *change* the fields of free frames, and the owner of an allocated block
//! decides for it. Relaxed ordering suffices wherever the lock orders the
//! accesses; the exceptions name their partner.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::addr::{Order, Pfn};

bitflags::bitflags! {
    /// Long-lived per-frame flags (Linux's `PG_*` bits).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PageFlags: u32 {
        /// Never given to the page allocator: a hole, firmware, the kernel
        /// image, the memmap itself (`PG_reserved`).
        const RESERVED = 1 << 0;
        /// Head frame of a slab (`PG_slab` / `PageSlab`): the `ext` words
        /// hold the slab fields (see `slab::Slab`).
        const SLAB = 1 << 1;
        /// A tail frame of a multi-frame slab or large kmalloc block:
        /// `private` holds the head's pfn (`compound_head`).
        const TAIL = 1 << 2;
        /// Head frame of a large kmalloc block (from the page allocator).
        const LARGE_KMALLOC = 1 << 3;
        /// A page-table page (`PG_table`): the `ext` words hold its
        /// ptdesc (see `pgtable::Ptdesc`).
        const PGTABLE = 1 << 4;
        /// Head frame of a shmem folio (Linux's `PG_swapbacked` on a
        /// folio that is not anonymous): `mm_counter()` counts its
        /// mappings as `MM_SHMEMPAGES`; the head's `ext[2]` holds its
        /// mapping while it is in a shmem object (see `folio`).
        const SHMEM = 1 << 5;
        /// Head frame of a folio whose contents are newer than its
        /// backing store (`PG_dirty`): set on a shmem folio by a write
        /// fault (`fault_dirty_shared_page()`) or when a dirty PTE of it
        /// is zapped (`folio_mark_dirty()`); anonymous folios keep their
        /// dirtiness in their PTEs only, as on Linux without swap.
        const DIRTY = 1 << 6;
        /// Head frame of a shmem folio whose contents are valid
        /// (`PG_uptodate`): set when a write or a fault fills it, not by
        /// `fallocate()` (`shmem_fallocate()` leaves its folios
        /// `!uptodate`, so `SEEK_DATA` sees them as holes).
        const UPTODATE = 1 << 7;
    }
}

/// Which owner a frame's record belongs to right now (see I1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageState {
    /// A tail frame of a block, or a reserved frame.
    None = 0,
    /// Head of a free block on a zone free list (`PageBuddy`).
    Buddy = 1,
    /// Head of a free block on a per-CPU page list.
    Pcp = 2,
    /// Head of a block handed out by the page allocator.
    Allocated = 3,
}

impl PageState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => PageState::Buddy,
            2 => PageState::Pcp,
            3 => PageState::Allocated,
            _ => PageState::None,
        }
    }
}

/// "No frame" in a list link.
pub(crate) const NIL: u32 = u32::MAX;

/// The metadata record of one 4 KiB frame.
#[repr(C, align(64))]
pub struct Page {
    /// [`PageFlags`]. Write: at boot, or by the owner. Read: anyone.
    flags: AtomicU32,
    /// [`PageState`]. Write: zone lock (Buddy), pcp lock (Pcp), the
    /// allocator on hand-out and free (Allocated, by compare-exchange so that
    /// two racing frees cannot both succeed).
    state: AtomicU8,
    /// Block order when `state != None`. Same rules as `state`.
    order: AtomicU8,
    /// Zone index; written once at boot.
    zone: AtomicU8,
    /// Migratetype: of the per-CPU list the block sits on (state Pcp), or the one requested at allocation (state Allocated; tells movable pages in use apart when a pageblock is claimed).
    migratetype: AtomicU8,
    /// References to an allocated block (1 on hand-out). 0 when free.
    refcount: AtomicI32,
    /// Page-table mappings of the frame. 0 when free.
    mapcount: AtomicI32,
    /// Next frame on the same list, or [`NIL`]. Write: the list's lock.
    lru_next: AtomicU32,
    /// Previous frame on the same list, or [`NIL`]. Write: the list's lock.
    lru_prev: AtomicU32,
    /// Owner-defined word (later: slab cache, ptdesc lock, swap entry).
    private: AtomicU64,
    /// Words its owner overlays with its own fields (see the module
    /// header; accessor: [`Page::ext`]). Write/read: per the owner's rules.
    ext: [AtomicU64; 4],
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);
const _: () = assert!(core::mem::offset_of!(Page, refcount) == 8);
const _: () = assert!(core::mem::offset_of!(Page, lru_next) == 16);
const _: () = assert!(core::mem::offset_of!(Page, private) == 24);
const _: () = assert!(core::mem::offset_of!(Page, ext) == 32);

impl Page {
    /// A reserved frame with every field zero: the state of the memmap
    /// before the page allocator takes frames over.
    pub const fn new_reserved() -> Self {
        Self {
            flags: AtomicU32::new(PageFlags::RESERVED.bits()),
            state: AtomicU8::new(PageState::None as u8),
            order: AtomicU8::new(0),
            zone: AtomicU8::new(0),
            migratetype: AtomicU8::new(0),
            refcount: AtomicI32::new(0),
            mapcount: AtomicI32::new(0),
            lru_next: AtomicU32::new(NIL),
            lru_prev: AtomicU32::new(NIL),
            private: AtomicU64::new(0),
            ext: [const { AtomicU64::new(0) }; 4],
        }
    }

    /// The frame's flags.
    #[inline]
    pub fn flags(&self) -> PageFlags {
        PageFlags::from_bits_retain(self.flags.load(Relaxed))
    }

    pub(crate) fn set_flags(&self, flags: PageFlags) {
        self.flags.store(flags.bits(), Relaxed);
    }

    /// Sets `flags` with one atomic OR (`set_bit()`): for bits that
    /// several mappings' holders may set at once (`PG_dirty`).
    pub(crate) fn set_flags_atomic(&self, flags: PageFlags) {
        self.flags.fetch_or(flags.bits(), Relaxed);
    }

    /// Whether the frame is reserved (never allocatable).
    pub fn is_reserved(&self) -> bool {
        self.flags().contains(PageFlags::RESERVED)
    }

    /// Who owns the record right now (I1).
    pub fn state(&self) -> PageState {
        PageState::from_u8(self.state.load(Relaxed))
    }

    pub(crate) fn set_state(&self, state: PageState) {
        self.state.store(state as u8, Relaxed);
    }

    /// Atomically moves `from` -> `to`; on failure returns the state found.
    pub(crate) fn cmpxchg_state(&self, from: PageState, to: PageState) -> Result<(), PageState> {
        self.state
            .compare_exchange(from as u8, to as u8, Relaxed, Relaxed)
            .map(|_| ())
            .map_err(PageState::from_u8)
    }

    /// The block order recorded on a block head (I2).
    #[inline]
    pub fn order(&self) -> Order {
        Order::from_stored(self.order.load(Relaxed))
    }

    pub(crate) fn set_order(&self, order: Order) {
        self.order.store(order.get() as u8, Relaxed);
    }

    /// The zone index written at boot.
    pub fn zone_idx(&self) -> usize {
        usize::from(self.zone.load(Relaxed))
    }

    pub(crate) fn set_zone_idx(&self, zone: usize) {
        self.zone.store(zone as u8, Relaxed);
    }

    pub(crate) fn migratetype(&self) -> usize {
        usize::from(self.migratetype.load(Relaxed))
    }

    pub(crate) fn set_migratetype(&self, mt: usize) {
        self.migratetype.store(mt as u8, Relaxed);
    }

    /// The reference count.
    pub fn refcount(&self) -> i32 {
        self.refcount.load(Relaxed)
    }

    pub(crate) fn set_refcount(&self, v: i32) {
        self.refcount.store(v, Relaxed);
    }

    /// Takes a reference (`get_page`).
    pub fn get(&self) {
        let old = self.refcount.fetch_add(1, Relaxed);
        debug_assert!(old > 0, "get_page on a free page");
    }

    /// Drops a reference unless it is the last one
    /// (`atomic_add_unless(-1, 1)`); false when the caller holds the last.
    pub(crate) fn refcount_dec_not_one(&self) -> bool {
        let mut c = self.refcount.load(Relaxed);
        while c > 1 {
            match self.refcount.compare_exchange_weak(
                c,
                c - 1,
                core::sync::atomic::Ordering::AcqRel,
                Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Drops `n` references unless they are the last ones: then (the
    /// count was exactly `n`) leaves one, for the caller's final put, and
    /// returns false, as [`Page::refcount_dec_not_one`] does for `n` = 1
    /// (`folio_put_refs()`' first step).
    pub(crate) fn refcount_sub_not_last(&self, n: i32) -> bool {
        let mut c = self.refcount.load(Relaxed);
        loop {
            debug_assert!(c >= n, "put of {n} references with {c} held");
            let new = if c > n { c - n } else { 1 };
            if new == c {
                return false;
            }
            match self.refcount.compare_exchange_weak(
                c,
                new,
                core::sync::atomic::Ordering::AcqRel,
                Relaxed,
            ) {
                Ok(_) => return c > n,
                Err(now) => c = now,
            }
        }
    }

    /// Adds `n` references (`folio_ref_add`).
    pub(crate) fn refcount_add(&self, n: i32) {
        self.refcount.fetch_add(n, Relaxed);
    }

    /// Drops a reference; true when it was the last (`put_page_testzero`).
    /// AcqRel: the last dropper must see every write made under the other
    /// references before the frame is reused.
    pub(crate) fn put_testzero(&self) -> bool {
        self.refcount
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel)
            == 1
    }

    /// The page-table mapping count.
    pub fn mapcount(&self) -> i32 {
        self.mapcount.load(Relaxed)
    }

    /// Adds `n` (may be negative) to the mapping count; returns the new
    /// value. The caller holds the lock of the page table it changes.
    pub(crate) fn mapcount_add(&self, n: i32) -> i32 {
        self.mapcount.fetch_add(n, Relaxed) + n
    }

    /// The owner-defined word.
    #[inline]
    pub fn private(&self) -> u64 {
        self.private.load(Relaxed)
    }

    /// Sets the owner-defined word.
    pub fn set_private(&self, v: u64) {
        self.private.store(v, Relaxed);
    }

    /// Extension word `i` (0..4), drawn in the module header. Its owner
    /// overlays its own fields and documents them (the slab allocator:
    /// `slab::freelist::Slab`).
    #[inline]
    pub(crate) fn ext(&self, i: usize) -> &AtomicU64 {
        &self.ext[i]
    }
}

/// The array of [`Page`] records for frames `0..len()`.
pub struct MemMap {
    pages: NonNull<Page>,
    nr_pages: usize,
    /// Whether we allocated the array (host) and must free it on drop.
    #[cfg(any(test, feature = "std"))]
    owned: bool,
}

// SAFETY: a MemMap is a shared view of an array of `Page`s, whose fields are
// all atomics; handing it to other threads shares only atomics.
unsafe impl Send for MemMap {}
// SAFETY: `&MemMap` hands out only `&Page`, whose fields are atomics (`Page` is `Sync`).
unsafe impl Sync for MemMap {}

impl MemMap {
    /// Bytes of memmap needed to describe `nr_pages` frames.
    pub const fn bytes_for(nr_pages: usize) -> usize {
        nr_pages * core::mem::size_of::<Page>()
    }

    /// Lays a memmap over `bytes` at `base`, every record reserved.
    ///
    /// # Safety
    ///
    /// `base` is 64-byte aligned and points to at least
    /// `MemMap::bytes_for(nr_pages)` writable bytes that nothing else uses,
    /// for as long as the returned value (and anything built on it) lives.
    pub unsafe fn init_at(base: *mut u8, nr_pages: usize) -> Self {
        debug_assert!((base as usize).is_multiple_of(core::mem::align_of::<Page>()));
        let pages = base.cast::<Page>();
        for i in 0..nr_pages {
            // SAFETY: 1. `i < nr_pages`, and the caller guarantees room for
            // `nr_pages` records at `base`, so the write stays in bounds.
            // 2. The memory is ours alone (caller), so no one observes the
            // uninitialised record before this write.
            unsafe { pages.add(i).write(Page::new_reserved()) };
        }
        Self {
            // SAFETY: the caller passes a real (non-null) buffer.
            pages: unsafe { NonNull::new_unchecked(pages) },
            nr_pages,
            #[cfg(any(test, feature = "std"))]
            owned: false,
        }
    }

    /// A heap-allocated memmap for `nr_pages` frames (host tests, benches).
    #[cfg(any(test, feature = "std"))]
    pub fn new_boxed(nr_pages: usize) -> Self {
        let boxed: alloc::boxed::Box<[Page]> =
            (0..nr_pages).map(|_| Page::new_reserved()).collect();
        let pages = NonNull::new(alloc::boxed::Box::into_raw(boxed).cast::<Page>())
            .expect("Box pointers are non-null");
        Self {
            pages,
            nr_pages,
            owned: true,
        }
    }

    /// Number of frames described.
    pub fn len(&self) -> usize {
        self.nr_pages
    }

    /// Whether no frame is described.
    pub fn is_empty(&self) -> bool {
        self.nr_pages == 0
    }

    /// The record of `pfn`, if the memmap describes it.
    #[inline]
    pub fn get(&self, pfn: Pfn) -> Option<&Page> {
        self.as_slice().get(pfn.as_usize())
    }

    /// The record of `pfn`; panics outside the memmap (internal callers that
    /// already checked the range).
    #[inline]
    pub fn page(&self, pfn: Pfn) -> &Page {
        &self.as_slice()[pfn.as_usize()]
    }

    /// Every record, indexed by pfn.
    #[inline]
    pub fn as_slice(&self) -> &[Page] {
        // SAFETY: `pages` points to `nr_pages` initialised records (init_at or
        // new_boxed wrote every one) that live as long as `self`.
        unsafe { core::slice::from_raw_parts(self.pages.as_ptr(), self.nr_pages) }
    }
}

#[cfg(any(test, feature = "std"))]
impl Drop for MemMap {
    fn drop(&mut self) {
        if self.owned {
            let slice = core::ptr::slice_from_raw_parts_mut(self.pages.as_ptr(), self.nr_pages);
            // SAFETY: `owned` is set only by `new_boxed`, whose pointer came
            // from `Box::into_raw` of a boxed slice of exactly this length.
            drop(unsafe { alloc::boxed::Box::from_raw(slice) });
        }
    }
}

/// A doubly linked list of blocks threaded through the `lru` links of their
/// head records (Linux's `list_head` on `page->lru`), by pfn.
///
/// The list does not own a lock: whoever holds the list holds the lock that
/// protects it (I3).
#[derive(Debug)]
pub(crate) struct PageList {
    head: u32,
    tail: u32,
    len: usize,
}

impl PageList {
    pub(crate) const fn new() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn first(&self) -> Option<Pfn> {
        (self.head != NIL).then(|| Pfn::new(u64::from(self.head)))
    }

    pub(crate) fn last(&self) -> Option<Pfn> {
        (self.tail != NIL).then(|| Pfn::new(u64::from(self.tail)))
    }

    pub(crate) fn push_front(&mut self, map: &MemMap, pfn: Pfn) {
        let idx = pfn_u32(pfn);
        let page = map.page(pfn);
        page.lru_prev.store(NIL, Relaxed);
        page.lru_next.store(self.head, Relaxed);
        match self.head {
            NIL => self.tail = idx,
            h => map.as_slice()[h as usize].lru_prev.store(idx, Relaxed),
        }
        self.head = idx;
        self.len += 1;
    }

    pub(crate) fn push_back(&mut self, map: &MemMap, pfn: Pfn) {
        let idx = pfn_u32(pfn);
        let page = map.page(pfn);
        page.lru_next.store(NIL, Relaxed);
        page.lru_prev.store(self.tail, Relaxed);
        match self.tail {
            NIL => self.head = idx,
            t => map.as_slice()[t as usize].lru_next.store(idx, Relaxed),
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Unlinks `pfn`, which must be on this list.
    pub(crate) fn remove(&mut self, map: &MemMap, pfn: Pfn) {
        let page = map.page(pfn);
        let (prev, next) = (page.lru_prev.load(Relaxed), page.lru_next.load(Relaxed));
        match prev {
            NIL => {
                debug_assert_eq!(self.head, pfn_u32(pfn), "{pfn:?} is not on this list");
                self.head = next;
            }
            p => map.as_slice()[p as usize].lru_next.store(next, Relaxed),
        }
        match next {
            NIL => self.tail = prev,
            n => map.as_slice()[n as usize].lru_prev.store(prev, Relaxed),
        }
        page.lru_next.store(NIL, Relaxed);
        page.lru_prev.store(NIL, Relaxed);
        self.len -= 1;
    }

    pub(crate) fn pop_front(&mut self, map: &MemMap) -> Option<Pfn> {
        let pfn = self.first()?;
        self.remove(map, pfn);
        Some(pfn)
    }

    pub(crate) fn pop_back(&mut self, map: &MemMap) -> Option<Pfn> {
        let pfn = self.last()?;
        self.remove(map, pfn);
        Some(pfn)
    }

    /// Iterates the list front to back (the caller holds the list's lock).
    pub(crate) fn iter<'a>(&self, map: &'a MemMap) -> impl Iterator<Item = Pfn> + use<'a> {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let pfn = Pfn::new(u64::from(cur));
            cur = map.as_slice()[cur as usize].lru_next.load(Relaxed);
            Some(pfn)
        })
    }
}

fn pfn_u32(pfn: Pfn) -> u32 {
    u32::try_from(pfn.as_u64())
        .ok()
        .filter(|&v| v != NIL)
        .expect("pfn beyond the 16 TiB a u32 link can name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn list_push_remove_pop() {
        let map = MemMap::new_boxed(16);
        let mut l = PageList::new();
        for i in [3, 5, 7] {
            l.push_back(&map, Pfn::new(i));
        }
        l.push_front(&map, Pfn::new(1));
        let all: Vec<u64> = l.iter(&map).map(|p| p.as_u64()).collect();
        assert_eq!(all, [1, 3, 5, 7]);
        l.remove(&map, Pfn::new(5));
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_back(&map), Some(Pfn::new(7)));
        assert_eq!(l.pop_front(&map), Some(Pfn::new(1)));
        assert_eq!(l.pop_front(&map), Some(Pfn::new(3)));
        assert!(l.is_empty());
        assert_eq!(l.pop_front(&map), None);
    }

    #[test]
    fn fresh_records_are_reserved() {
        let map = MemMap::new_boxed(4);
        assert!(
            map.as_slice()
                .iter()
                .all(|p| p.is_reserved() && p.state() == PageState::None)
        );
        assert!(map.get(Pfn::new(4)).is_none());
    }
}
